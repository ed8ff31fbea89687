"""A Flower deployment on 127.0.0.1 (scripts/flower-deployment.sh): a SuperLink, SuperNodes and
the ServerApp as separate processes."""

import csv
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("PRIFFT_REQUIRE_FLOWER") != "1":
    pytest.importorskip("flwr")

from conftest import MNIST_5K, ROOT, run

SCRIPT = ROOT / "scripts" / "flower-deployment.sh"


def deployment(tmp_path, nodes, run_config, env_extra=None, app_dir=None):
    env = dict(os.environ)
    env.update(
        NODES=str(nodes),
        BASE_PORT=str(20000 + os.getpid() % 20000),
        PYTHON_BIN=str(Path(sys.executable).parent),
        LOG_DIR=str(tmp_path / "logs"),
        **(env_extra or {}),
    )
    if app_dir:
        env["APP_DIR"] = str(app_dir)
    common = f"dataset='mnist-5k' data='{MNIST_5K}' lr=0.05 out='{tmp_path / 'acc.csv'}'"
    return subprocess.Popen(
        ["bash", str(SCRIPT), "--run-config", f"{common} {run_config}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )


def finish(proc, timeout=420):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail("the deployment did not finish:\n" + out[-4000:])
    return out


def accuracies(path):
    with open(path) as f:
        return [float(r["test_accuracy"]) for r in csv.DictReader(f)]


def test_two_rounds_of_fedproc_on_three_supernodes_equal_prifft_fl(prifft_bin, tmp_path, mnist5k):
    proc = deployment(tmp_path, 3, "algo='fedproc' num-server-rounds=2")
    out = finish(proc)
    assert proc.returncode == 0, out[-4000:]
    assert "prifft: 3 nodes hold partitions [0, 1, 2]" in out, out[-4000:]
    cli = tmp_path / "cli.csv"
    run([prifft_bin, "fl", "--dataset", "mnist-5k", "--data", MNIST_5K, "--clients", "3",
         "--rounds", "2", "--lr", "0.05", "--algo", "fedproc", "--out", cli])
    with open(cli) as f:
        theirs = [float(r["test_accuracy"]) for r in csv.DictReader(f)]
    assert accuracies(tmp_path / "acc.csv") == theirs


CORRUPTING_APP = '''
"""prifft's apps, except that a node whose config has corrupt=1 replies with NaN weights."""
import numpy as np
from flwr.app import Array, ArrayRecord, Message
from flwr.clientapp import ClientApp
from prifft.flower import client_app, server_app

server = server_app()
_inner = client_app()
client = ClientApp()


@client.query()
def query(msg, context):
    return _inner(msg, context)


@client.train()
def train(msg, context):
    reply = _inner(msg, context)
    if int(context.node_config.get("corrupt", 0)):
        arrays = reply.content.array_records["arrays"]
        bad = {k: Array(np.full(v.numpy().shape, np.nan, np.float32)) for k, v in arrays.items()}
        reply.content["arrays"] = ArrayRecord(bad)
    return reply
'''


def test_a_killed_supernode_and_a_malformed_reply_leave_the_others_aggregated(tmp_path, mnist5k):
    # Four SuperNodes: node 2 replies with NaN weights (rejected and logged), node 3 is killed
    # in round 1 (its reply never comes); both rounds finish with nodes 0 and 1.
    app = tmp_path / "app"
    app.mkdir()
    toml = (ROOT / "python" / "flower-app" / "pyproject.toml").read_text()
    (app / "pyproject.toml").write_text(toml.replace('"prifft_app:', '"corrupting_app:'))
    (app / "corrupting_app.py").write_text(CORRUPTING_APP)
    proc = deployment(
        tmp_path, 4, "algo='fedavg' num-server-rounds=2 local-epochs=3 timeout=30.0",
        env_extra={"NODE_CONFIG_2": "corrupt=1"}, app_dir=app,
    )
    lines = []
    killed = False
    for line in proc.stdout:
        lines.append(line)
        if not killed and "configure_train:" in line:
            # Round 1's messages are out; node 3 (1,009 samples × 3 epochs) cannot have answered.
            pid = int((tmp_path / "logs" / "supernode-3.pid").read_text())
            os.kill(pid, signal.SIGKILL)
            killed = True
    proc.wait(timeout=420)
    out = "".join(lines)
    assert killed and proc.returncode == 0, out[-4000:]
    assert re.search(r"rejected the reply of node \d+ in round 1: .*NaN", out), out[-4000:]
    rounds = re.findall(r"Aggregated MetricRecord: \{'num-examples': (\d+), 'clients': (\d+)\}", out)
    assert [c for _, c in rounds] == ["2", "2"], out[-4000:]
    parts = __import__("prifft").partition(mnist5k[0], 4, 0.5, 1)
    assert int(rounds[0][0]) == len(parts[0]) + len(parts[1])
    assert len(accuracies(tmp_path / "acc.csv")) == 2
