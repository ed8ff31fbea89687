"""The binding's federated learning against the Rust command line, bit for bit."""

import csv
import json
import struct
import threading
import time

import numpy as np
import pytest

import prifft
from conftest import FASHION, MNIST_5K, run


def read_safetensors(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    dtypes = {"F32": np.float32, "I64": np.int64}
    body = raw[8 + n :]
    return {
        k: np.frombuffer(body[v["data_offsets"][0] : v["data_offsets"][1]], dtypes[v["dtype"]]).reshape(
            v["shape"]
        )
        for k, v in header.items()
    }


def test_local_update_equals_the_rust_run_bit_for_bit(prifft_bin, tmp_path, mnist5k):
    # `prifft fl-trace` records round 1 of `prifft fl`'s FedAvg (another process, the Rust
    # code path): the initial model, each client's epoch orders and trained weights.
    train, _ = mnist5k
    out = tmp_path / "trace.safetensors"
    seed, clients, epochs = 2, 5, 2
    run([prifft_bin, "fl-trace", "--dataset", "mnist-5k", "--data", MNIST_5K, "--clients", clients,
         "--seed", seed, "--local-epochs", epochs, "--out", out])
    trace = read_safetensors(out)
    model, plan = prifft.schedule("fedavg", seed, clients, 1)
    names = model.weight_names()
    for name, w in zip(names, model.get_weights()):
        assert np.array_equal(w, trace[f"initial.{name}"]), name
    parts = prifft.partition(train, clients, 0.5, seed)
    assert sorted(c for c, _ in plan[0]) == list(range(clients))
    for client, local_seed in plan[0]:
        orders = prifft.epoch_orders(parts[client], local_seed, epochs)
        assert np.array_equal(np.concatenate(orders), trace[f"client{client}.order"])
        local = model.local_update(train, parts[client], seed=local_seed, epochs=epochs)
        for name, w in zip(names, local.get_weights()):
            assert np.array_equal(w, trace[f"client{client}.{name}"]), f"client {client} {name}"
        # The same update through one epoch at a time on the trace's orders.
        again = model.copy()
        again.set_weights(model.get_weights())
        for order in orders:
            again.train_epoch(train, order)
        for a, b in zip(again.get_weights(), local.get_weights()):
            assert np.array_equal(a, b)


def cli_curves(prifft_bin, tmp_path, args):
    out = tmp_path / "fl.csv"
    run([prifft_bin, "fl", *args, "--out", out])
    curves = {}
    with open(out) as f:
        for row in csv.DictReader(f):
            curves.setdefault(row["algo"].split()[0], []).append(float(row["test_accuracy"]))
    return curves


def test_simulation_reproduces_prifft_fl_for_every_algorithm(prifft_bin, tmp_path, mnist5k):
    # Sampling (fraction 0.6), local seeds, the four losses, MOON's previous models, FedProc's
    # prototypes and α schedule, and float64 averaging: the accuracy after every round equals
    # the command line's (1,000 test images: the CSV's four decimals are the exact count).
    train, test = mnist5k
    args = ["--dataset", "mnist-5k", "--data", MNIST_5K, "--clients", "5", "--rounds", "3",
            "--fraction", "0.6", "--local-epochs", "2", "--lr", "0.05",
            "--algo", "fedavg,fedprox,moon,fedproc"]
    curves = cli_curves(prifft_bin, tmp_path, args)
    parts = prifft.partition(train, 5, 0.5, 1)
    for algo in ["fedavg", "fedprox", "moon", "fedproc"]:
        ours = prifft.simulate(train, test, parts, algo, rounds=3, seed=1, fraction=0.6, local_epochs=2, lr=0.05)
        assert [round(a, 4) for a in ours] == curves[algo], algo
    assert curves["fedavg"][-1] > 0.3, "training should lift the model above chance (10 %)"


def test_fashion_mnist_round_matches_the_command_line(prifft_bin, tmp_path, fashion):
    train, test = fashion
    assert (len(train), len(test), train.classes) == (60000, 10000, 10)
    args = ["--clients", "10", "--rounds", "1", "--fraction", "0.2", "--algo", "fedproc",
            "--data", FASHION]
    curves = cli_curves(prifft_bin, tmp_path, args)
    parts = prifft.partition(train, 10, 0.5, 1)
    ours = prifft.simulate(train, test, parts, "fedproc", rounds=1, seed=1, fraction=0.2)
    # 10,000 test images: four decimals are one image, so compare the count.
    assert round(ours[0] * 10000) == round(curves["fedproc"][0] * 10000)


def test_weights_round_trip_and_bad_weights_are_refused(mnist5k):
    model = prifft.SimpleCnn(seed=3)
    weights = model.get_weights()
    assert [w.dtype for w in weights] == [np.float32] * len(weights)
    other = prifft.SimpleCnn(seed=4)
    other.set_weights(weights)
    for a, b in zip(other.get_weights(), weights):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="conv1.weight: expected shape"):
        other.set_weights([w.reshape(-1) for w in weights])
    with pytest.raises(ValueError, match="expected 14 weight arrays"):
        other.set_weights(weights[:3])
    bad = [w.copy() for w in weights]
    bad[0][0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        other.set_weights(bad)


def test_bad_arguments_raise_clear_errors(mnist5k, tmp_path):
    train, _ = mnist5k
    model = prifft.SimpleCnn(seed=1)
    idx = np.arange(10, dtype=np.int64)
    with pytest.raises(ValueError, match="unknown algorithm"):
        model.local_update(train, idx, algo="fedsgd", seed=1)
    with pytest.raises(ValueError, match="needs the global prototypes"):
        model.local_update(train, idx, algo="fedproc", seed=1, alpha=0.5)
    with pytest.raises(ValueError, match="outside the data set"):
        model.local_update(train, np.array([4000], np.int64), seed=1)
    with pytest.raises(ValueError, match="negative index"):
        model.class_sums(train, np.array([-1], np.int64))
    with pytest.raises(ValueError, match="lr must be positive"):
        model.local_update(train, idx, seed=1, lr=0.0)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        prifft.load_fashion_mnist(tmp_path / "nothing-here")
    with pytest.raises(ValueError, match="label 10 is outside"):
        prifft.Dataset(np.zeros((2, 28, 28), np.float32), np.array([1, 10], np.int64), 10)
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        prifft.Dataset(np.zeros((2, 28, 28), np.float32), np.array([1, 2, 3], np.int64), 10)


def test_dataset_from_numpy_trains_like_the_loaded_one(mnist5k):
    train, _ = mnist5k
    copy = prifft.Dataset(train.images(), train.labels(), train.classes)
    assert len(copy) == len(train) and np.array_equal(copy.class_counts(), train.class_counts())
    idx = np.arange(200, dtype=np.int64)
    a = prifft.SimpleCnn(seed=9).local_update(train, idx, seed=3)
    b = prifft.SimpleCnn(seed=9).local_update(copy, idx, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))
    sums, counts = a.class_sums(train, idx)
    assert sums.shape == (10, 256) and counts.sum() == 200


def test_training_releases_the_interpreter(mnist5k):
    # While one thread trains in Rust, another Python thread keeps running.
    train, _ = mnist5k
    model = prifft.SimpleCnn(seed=1)
    idx = np.arange(len(train), dtype=np.int64)
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    start = time.perf_counter()
    model.local_update(train, idx, seed=1, epochs=2)
    end = time.perf_counter()
    done.set()
    t.join()
    during = [x for x in ticks if start < x < end]
    assert len(during) >= 10, f"only {len(during)} ticks while training for {end - start:.2f} s"


def test_partition_schemes_cover_every_sample_once(mnist5k):
    train, _ = mnist5k
    labels = train.labels()
    for scheme in ["dirichlet", "iid", "shards"]:
        parts = prifft.partition(train, 8, seed=3, scheme=scheme)
        allidx = np.sort(np.concatenate(parts))
        assert np.array_equal(allidx, np.arange(len(train))), scheme
    iid = prifft.partition(train, 8, seed=3, scheme="iid")
    assert max(map(len, iid)) - min(map(len, iid)) <= 1
    shards = prifft.partition(train, 8, seed=3, scheme="shards", shards_per_client=2)
    assert max(len(np.unique(labels[p])) for p in shards) <= 4  # two label-sorted shards each
    with pytest.raises(ValueError, match="unknown scheme"):
        prifft.partition(train, 8, scheme="pathological")
    with pytest.raises(ValueError, match="beta must be positive"):
        prifft.partition(train, 8, beta=0.0)


def test_data_the_network_cannot_take_is_an_error_not_a_panic():
    model = prifft.SimpleCnn(classes=3, seed=1)
    small = prifft.Dataset(np.zeros((4, 10, 10), np.float32), np.arange(4, dtype=np.int64), 10)
    many = prifft.Dataset(np.zeros((4, 28, 28), np.float32), np.array([0, 1, 2, 9], np.int64), 10)
    idx = np.arange(4, dtype=np.int64)
    for data, message in [(small, "28×28 images"), (many, "10 classes, the network scores 3")]:
        for call in [lambda: model.local_update(data, idx, seed=1), lambda: model.evaluate(data),
                     lambda: model.class_sums(data), lambda: model.train_epoch(data, idx)]:
            with pytest.raises(ValueError, match=message):
                call()
