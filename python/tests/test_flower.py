"""prifft on Flower: the simulation against `prifft fl`, and the strategy's reply checks."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

if os.environ.get("PRIFFT_REQUIRE_FLOWER") == "1":
    import flwr  # noqa: F401 — CI installs it; a missing flwr fails here instead of skipping
else:
    pytest.importorskip("flwr")

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict

import prifft
from prifft.flower import PrifftStrategy, settings
from conftest import MNIST_5K, ROOT, run

COMMON = ["dataset=mnist-5k", f"data={MNIST_5K}", "num-server-rounds=3", "local-epochs=2", "lr=0.05"]


def cli(prifft_bin, tmp_path, algo, fraction):
    out = tmp_path / "cli.csv"
    run([prifft_bin, "fl", "--dataset", "mnist-5k", "--data", MNIST_5K, "--clients", "5",
         "--rounds", "3", "--fraction", fraction, "--local-epochs", "2", "--lr", "0.05",
         "--algo", algo, "--out", out])
    with open(out) as f:
        return [float(r["test_accuracy"]) for r in csv.DictReader(f)]


def simulate(tmp_path, *settings_):
    out = tmp_path / "flower.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "prifft.flower", "simulate", "--clients", "5", *COMMON,
         *settings_, f"out={out}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0 and out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out) as f:
        return [float(r["test_accuracy"]) for r in csv.DictReader(f)], proc.stdout + proc.stderr


@pytest.mark.parametrize("algo", ["fedavg", "moon", "fedproc"])
def test_flower_simulation_equals_prifft_fl(prifft_bin, tmp_path, mnist5k, algo):
    # Ray runs 5 virtual SuperNodes; PrifftStrategy follows prifft fl's schedule (60 % of the
    # clients per round, their shuffling seeds) and averages as its server: every round's
    # accuracy equals the command line's exactly.
    ours, log = simulate(tmp_path, f"algo={algo}", "fraction-train=0.6")
    theirs = cli(prifft_bin, tmp_path, algo, "0.6")
    assert ours == theirs, log[-2000:]
    assert max(ours) > 0.15


def test_flowers_own_fedavg_averages_the_same_local_models(prifft_bin, tmp_path, mnist5k):
    # Flower's FedAvg samples the nodes itself and averages in float32 in its own order; the
    # clients still train with prifft fl's seeds, so after round 1 its global weights are
    # prifft fl's average up to float32 rounding (prifft fl-trace records that average). The
    # accuracy curves then drift apart (training amplifies the rounding; README, "On Flower").
    from test_fl import read_safetensors

    saved = tmp_path / "final.npz"
    ours, log = simulate(tmp_path, "algo=fedavg", "strategy=flower", f"save={saved}",
                         "num-server-rounds=1")
    trace = tmp_path / "trace.safetensors"
    run([prifft_bin, "fl-trace", "--dataset", "mnist-5k", "--data", MNIST_5K, "--clients", "5",
         "--seed", "1", "--local-epochs", "2", "--lr", "0.05", "--out", trace])
    theirs = read_safetensors(trace)
    final = np.load(saved)
    worst = max(float(np.max(np.abs(final[k] - theirs[f"global.{k}"]))) for k in final.files)
    assert 0 < len(final.files) and worst <= 1e-7, (worst, log[-2000:])


def reply(node, content):
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity._node_id = 1  # the ServerApp's side sends
    request = Message(RecordDict(), message_type=MessageType.TRAIN, dst_node_id=node)
    TaskIdentity._node_id = node  # the node replies
    return Message(content, reply_to=request)


def test_strategy_rejects_malformed_replies_and_averages_the_rest(caplog, monkeypatch):
    from flwr.supercore.task_identity import TaskIdentity

    monkeypatch.setattr(TaskIdentity, "_run_id", 1)  # what a ServerApp process has
    monkeypatch.setattr(TaskIdentity, "_node_id", None)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)
    model = prifft.SimpleCnn(seed=1)
    names, weights = model.weight_names(), model.get_weights()
    strategy = PrifftStrategy("fedavg", 1, 1, 10, names, [w.shape for w in weights])
    strategy.nodes = {0: 100, 1: 101, 2: 102}
    strategy.plan = [[(1, 5), (0, 6), (2, 7)]]

    def content(ws, n, pid):
        arrays = ArrayRecord({k: Array(np.ascontiguousarray(w)) for k, w in zip(names, ws)})
        return RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": n, "partition-id": pid})})

    w0 = [w + 1 for w in weights]
    w1 = [w * 2 for w in weights]
    bad_nan = [w.copy() for w in weights]
    bad_nan[3][0] = np.nan
    replies = [
        reply(100, content(w0, 10, 0)),
        reply(102, content(bad_nan, 5, 2)),                 # NaN
        reply(101, content(w1, 30, 1)),
        reply(102, content([w.ravel() for w in w0], 5, 2)),  # wrong shapes
        reply(102, content(w0, 5, 1)),                       # another node's partition
        reply(102, content(w0, 0, 2)),                       # no examples
    ]
    with caplog.at_level("ERROR"):
        arrays, metrics = strategy.aggregate_train(1, replies)
    expected = prifft.weighted_average([w1, w0], [30, 10])  # the schedule's order: 1, then 0
    for k, e in zip(names, expected):
        assert np.array_equal(arrays[k].numpy(), e)
    assert metrics["num-examples"] == 40 and metrics["clients"] == 2
    assert len(strategy.rejected) == 4 and all(node == 102 for _, node, _ in strategy.rejected)
    assert "rejected the reply of node 102" in caplog.text


def test_settings_refuse_unknown_keys_and_bad_values():
    assert settings({"num-server-rounds": 5}, {"algo": "moon"})["num-server-rounds"] == 5
    with pytest.raises(ValueError, match="unknown setting"):
        settings(None, {"rounds": 3})
    with pytest.raises(ValueError, match="algo"):
        settings(None, {"algo": "fedsgd"})
    with pytest.raises(ValueError, match="FedProc needs strategy = prifft"):
        settings(None, {"algo": "fedproc", "strategy": "flower"})
    proc = subprocess.run([sys.executable, "-m", "prifft.flower", "simulate", "rounds=3"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "unknown setting 'rounds'" in proc.stderr


@pytest.fixture
def flower_identity(monkeypatch):
    from flwr.supercore.task_identity import TaskIdentity

    for name, value in [("_run_id", 1), ("_node_id", None), ("_task_id", 1)]:
        monkeypatch.setattr(TaskIdentity, name, value)


def call(app, node, context, content, message_type):
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity._node_id = 1
    msg = Message(content, message_type=message_type, dst_node_id=node)
    TaskIdentity._node_id = node
    return app(msg, context)


def test_with_secure_aggregation_a_node_sends_only_its_masked_upload(flower_identity, mnist5k):
    from flwr.app import Context

    from prifft.flower import SECAGG_STATE, client_app
    from prifft.fl import upload_vector

    cfg = {"algo": "fedavg", "dataset": "mnist-5k", "data": str(MNIST_5K), "lr": 0.05}
    app = client_app(**cfg)
    contexts = [Context(1, 10 + i, {"partition-id": i, "num-partitions": 2}, RecordDict(), {})
                for i in range(2)]
    keys = []
    for i, ctx in enumerate(contexts):
        r = call(app, 10 + i, ctx, RecordDict({"config": ConfigRecord({"secagg-index": i})}), MessageType.QUERY)
        keys.append(r.content.config_records["secagg"]["public-key"])
        assert SECAGG_STATE in ctx.state.config_records
    model = prifft.SimpleCnn.global_model("fedavg", 1)
    arrays = ArrayRecord({k: Array(w) for k, w in zip(model.weight_names(), model.get_weights())})
    session = prifft.secagg_session_id()
    uploads, vectors = [], []
    parts = prifft.partition(mnist5k[0], 2, 0.5, 1)
    for i, ctx in enumerate(contexts):
        conf = ConfigRecord({"server-round": 1, "local-seed": 5 + i, "secagg-keys": keys,
                             "secagg-session": session, "secagg-round": 1})
        r = call(app, 10 + i, ctx, RecordDict({"arrays": arrays, "config": conf}), MessageType.TRAIN)
        # Nothing in clear: no weights, no sizes, only the masked vector and the partition id.
        assert set(r.content.array_records) == {"secagg"}
        assert dict(r.content.metric_records["metrics"]) == {"partition-id": i}
        assert SECAGG_STATE not in ctx.state.config_records  # the key pair served once
        uploads.append(r.content.array_records["secagg"]["masked"].numpy())
        local = model.local_update(mnist5k[0], parts[i], seed=5 + i, lr=0.05)
        vectors.append(upload_vector(local.get_weights(), len(parts[i])))
    encoded = np.round(vectors[0] * 2**24).astype(np.int64).astype(np.uint64)
    assert np.mean(uploads[0] == encoded) < 0.01
    total = prifft.secagg_aggregate(uploads, 2)
    assert np.max(np.abs(total - (vectors[0] + vectors[1]))) <= 2 * 2.0**-24
    # A second upload with the spent key pair is refused.
    with pytest.raises(ValueError, match="no key pair"):
        call(app, 10, contexts[0], RecordDict({"arrays": arrays, "config": conf}), MessageType.TRAIN)


def test_secure_aggregation_on_flower_equals_prifft_fl_secure_agg(prifft_bin, tmp_path, mnist5k):
    ours, log = simulate(tmp_path, "algo=fedproc", "fraction-train=0.6", "secure-agg=1")
    out = tmp_path / "cli.csv"
    run([prifft_bin, "fl", "--dataset", "mnist-5k", "--data", MNIST_5K, "--clients", "5",
         "--rounds", "3", "--fraction", "0.6", "--local-epochs", "2", "--lr", "0.05",
         "--algo", "fedproc", "--secure-agg", "--out", out])
    with open(out) as f:
        theirs = [float(r["test_accuracy"]) for r in csv.DictReader(f)]
    assert ours == theirs, log[-2000:]
    assert "rejected" not in log
