"""prifft on Flower (``flwr`` ≥ 1.42, its Message API): a ``ClientApp`` that trains through the
binding, a strategy that reproduces ``prifft fl`` (FedAvg, FedProx, MOON, FedProc — FedProc's
prototypes kept in the strategy and sent with the weights), a ``ServerApp``, and Flower's
simulation engine.

Settings come from the run config (``pyproject.toml``'s ``[tool.flwr.app.config]`` under
``flwr run``) over ``DEFAULTS``; ``client_app(**settings)`` / ``server_app(**settings)`` bind
them in Python (``run_simulation`` has no run config). Keys use Flower's dashes:

- ``algo``: ``fedavg``, ``fedprox``, ``moon`` or ``fedproc``;
- ``strategy``: ``prifft`` (``PrifftStrategy``: the clients each round and their shuffling seeds
  follow ``prifft.schedule``, uploads are averaged in float64 in that order, so a run equals
  ``prifft fl``'s bit for bit) or ``flower`` (Flower's own ``FedAvg`` / ``FedProx``, which sample
  nodes themselves and average in float32; FedAvg, FedProx and MOON only);
- ``num-server-rounds``, ``fraction-train``, ``seed``, ``beta`` (the Dirichlet split of
  ``prifft fl --seeds``), ``local-epochs``, ``lr``, ``batch``, ``mu`` (FedProx's, or MOON's
  when ``algo`` is moon), ``tau`` (MOON's or FedProc's), ``horizon`` (FedProc's α horizon, 0 for
  the number of rounds);
- ``dataset`` (``fashion-mnist`` or ``mnist-5k``) and ``data`` (its path; empty for the default);
- ``out``: a CSV file for the global model's test accuracy after each round (empty: none);
  ``save``: a ``.npz`` file for the final global weights, under PyTorch's names (empty: none);
- ``secure-agg``: 1 to aggregate with prifft's pairwise masks (``strategy = prifft`` only): each
  round the sampled nodes exchange fresh X25519 keys through the server, then upload their
  ``upload_vector`` masked, so the server reads only the totals — weights, FedProc's class
  sums and counts, and the data sizes — as ``prifft fl --secure-agg``; a node lost between the
  key exchange and the upload leaves that round's masks uncancelled, so the round is skipped;
- ``timeout``: seconds to wait for the nodes' replies in a round; ``min-nodes``: the nodes the
  strategy waits for (up to a minute) before it asks them for their partitions.

Each node needs ``partition-id`` and ``num-partitions`` in its node config (the simulation sets
them; ``flower-supernode --node-config "partition-id=0 num-partitions=3"`` in a deployment).
"""

from __future__ import annotations

import hashlib
import time
from logging import ERROR, INFO, WARNING
from typing import Any, Iterable, Optional

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, FedProx
from flwr.supercore import log

from . import _native
from .fl import FedProcServer, split_totals, upload_vector, weighted_average

__all__ = ["DEFAULTS", "PrifftStrategy", "client_app", "run_simulation", "server_app"]

DEFAULTS: dict[str, Any] = {
    "algo": "fedproc",
    "strategy": "prifft",
    "num-server-rounds": 3,
    "fraction-train": 1.0,
    "seed": 1,
    "beta": 0.5,
    "local-epochs": 1,
    "lr": 0.01,
    "batch": 64,
    "mu": 0.0,
    "tau": 0.0,
    "horizon": 0,
    "dataset": "fashion-mnist",
    "data": "",
    "out": "",
    "timeout": 600.0,
    "min-nodes": 1,
    "secure-agg": 0,
    "save": "",
}

ALGOS = ("fedavg", "fedprox", "moon", "fedproc")


def settings(run_config: Optional[dict] = None, overrides: Optional[dict] = None) -> dict[str, Any]:
    """``DEFAULTS`` updated by the run config, then by ``overrides`` (dashes or underscores);
    unknown keys and bad values raise ``ValueError``."""
    cfg = dict(DEFAULTS)
    for source in (run_config or {}, overrides or {}):
        for key, value in source.items():
            key = key.replace("_", "-")
            if key not in DEFAULTS:
                raise ValueError(f"unknown setting {key!r}; known: {', '.join(DEFAULTS)}")
            cfg[key] = type(DEFAULTS[key])(value)
    if cfg["algo"] not in ALGOS:
        raise ValueError(f"algo {cfg['algo']!r}: one of {', '.join(ALGOS)}")
    if cfg["strategy"] not in ("prifft", "flower"):
        raise ValueError(f"strategy {cfg['strategy']!r}: prifft or flower")
    if cfg["strategy"] == "flower" and cfg["secure-agg"]:
        raise ValueError("secure-agg needs strategy = prifft")
    if cfg["strategy"] == "flower" and cfg["algo"] == "fedproc":
        raise ValueError("FedProc needs strategy = prifft (its prototypes live in the strategy)")
    if not 0.0 < cfg["fraction-train"] <= 1.0:
        raise ValueError(f"fraction-train must be in (0, 1], found {cfg['fraction-train']}")
    return cfg


def _algo_params(cfg: dict[str, Any]) -> dict[str, Optional[float]]:
    """μ and τ for ``local_update`` (None: ``prifft fl``'s defaults)."""
    return {"mu": cfg["mu"] or None, "tau": cfg["tau"] or None}


# --------------------------------------------------------------------------------------------
# Data, cached per process (a simulation's workers serve many nodes).

_DATA: dict[tuple, tuple] = {}
_PARTS: dict[tuple, list] = {}


def _datasets(cfg: dict[str, Any]):
    key = (cfg["dataset"], cfg["data"])
    if key not in _DATA:
        path = cfg["data"] or None
        if cfg["dataset"] == "fashion-mnist":
            _DATA[key] = _native.load_fashion_mnist(path)
        elif cfg["dataset"] == "mnist-5k":
            _DATA[key] = _native.load_mnist_5k(path)
        else:
            raise ValueError(f"dataset {cfg['dataset']!r}: fashion-mnist or mnist-5k")
    return _DATA[key]


def _partition(cfg: dict[str, Any], num_partitions: int):
    key = (cfg["dataset"], cfg["data"], num_partitions, cfg["beta"], cfg["seed"])
    if key not in _PARTS:
        train, _ = _datasets(cfg)
        _PARTS[key] = _native.partition(train, num_partitions, cfg["beta"], cfg["seed"])
    return _PARTS[key]


def _node_part(cfg: dict[str, Any], context: Context):
    try:
        pid = int(context.node_config["partition-id"])
        count = int(context.node_config["num-partitions"])
    except KeyError as e:
        raise ValueError(
            f"node config lacks {e}: start the SuperNode with --node-config "
            '"partition-id=<i> num-partitions=<n>"'
        ) from None
    if not 0 <= pid < count:
        raise ValueError(f"partition-id {pid} is outside 0..{count}")
    return pid, _partition(cfg, count)[pid]


def _model(cfg: dict[str, Any], arrays: ArrayRecord) -> _native.SimpleCnn:
    train, _ = _datasets(cfg)
    model = _native.SimpleCnn(train.classes, normalize=cfg["algo"] == "fedproc")
    model.set_weights(_ordered(arrays, model.weight_names()))
    return model


def _ordered(arrays: ArrayRecord, names: list[str]) -> list[np.ndarray]:
    missing = [n for n in names if n not in arrays]
    if missing or len(arrays) != len(names):
        raise ValueError(f"arrays {sorted(arrays)} do not match the model's {names}")
    return [np.ascontiguousarray(arrays[n].numpy(), dtype=np.float32) for n in names]


def _record(names: list[str], weights: list[np.ndarray]) -> ArrayRecord:
    return ArrayRecord({n: Array(np.ascontiguousarray(w)) for n, w in zip(names, weights)})


_SCHEDULES: dict[tuple, list] = {}


def _sums_record(sums: np.ndarray, counts: np.ndarray) -> ArrayRecord:
    """FedProc's per-class sums of z and counts, as a node sends them in the clear."""
    return ArrayRecord({"sums": Array(sums), "counts": Array(counts)})


def _local_seed(cfg: dict[str, Any], server_round: int, pid: int, partitions: int) -> int:
    """The shuffling seed for strategies that send none (Flower's own): ``prifft fl``'s for this
    partition and round when its schedule trains the partition then (always with
    fraction-train = 1), so the clients shuffle as ``prifft fl``'s; else one derived from the
    run's seed, the round and the partition."""
    key = (cfg["algo"], cfg["seed"], partitions, cfg["num-server-rounds"], cfg["fraction-train"])
    if key not in _SCHEDULES:
        _, _SCHEDULES[key] = _native.schedule(
            cfg["algo"], cfg["seed"], partitions, cfg["num-server-rounds"], cfg["fraction-train"]
        )
    plan = _SCHEDULES[key]
    if 1 <= server_round <= len(plan):
        for p, seed in plan[server_round - 1]:
            if p == pid:
                return seed
    digest = hashlib.sha256(f"prifft {cfg['seed']} {server_round} {pid}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


# --------------------------------------------------------------------------------------------
# Secure aggregation on the nodes

SECAGG_STATE = "prifft-secagg"
INITIAL_ROUND = 2**64 - 1  # the label of FedProc's initial prototypes' session, as prifft fl


def _secagg_keygen(conf: ConfigRecord, context: Context) -> ConfigRecord:
    """A fresh key pair for this node's index in the coming upload; the secret stays in the
    node's state until the upload uses it (once)."""
    participant = _native.SecAggParticipant(int(conf["secagg-index"]))
    context.state[SECAGG_STATE] = ConfigRecord(
        {"secret": participant.secret_key, "index": participant.index}
    )
    return ConfigRecord({"public-key": participant.public_key})


def _secagg_mask(conf: ConfigRecord, context: Context, vector: np.ndarray) -> ArrayRecord:
    state = context.state.config_records.get(SECAGG_STATE)
    if state is None:
        raise ValueError("secure aggregation: no key pair from this session's key exchange")
    del context.state[SECAGG_STATE]  # one upload per key pair
    participant = _native.SecAggParticipant(int(state["index"]), secret=bytes(state["secret"]))
    masked = participant.mask(
        np.ascontiguousarray(vector, dtype=np.float64),
        [bytes(k) for k in conf["secagg-keys"]],
        bytes(conf["secagg-session"]),
        int(conf["secagg-round"]),
    )
    return ArrayRecord({"masked": Array(masked)})


# --------------------------------------------------------------------------------------------
# ClientApp


def client_app(**overrides: Any) -> ClientApp:
    """The ``ClientApp``: each node trains on its partition of the data through the binding.

    - ``query``: replies with its ``partition-id`` (and, when asked, FedProc's class sums of the
      model it is sent), so the strategy can address partitions;
    - ``train``: ``local_update`` from the received weights with the run's algorithm, the
      message's ``local-seed`` and ``alpha`` and FedProc's ``prototypes`` when present (else the
      seed of ``prifft fl``'s schedule, see ``_local_seed``); MOON keeps its last local weights in
      the node's state. Replies with the weights, ``num-examples`` and, for FedProc, its class sums.
    - ``evaluate``: accuracy of the received model on the node's partition.
    """
    app = ClientApp()

    def setup(msg: Message, context: Context):
        cfg = settings(context.run_config, overrides)
        pid, part = _node_part(cfg, context)
        data, _ = _datasets(cfg)
        return cfg, pid, part, data, msg.content.config_records.get("config", ConfigRecord())

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        cfg, pid, part, train, conf = setup(msg, context)
        count = int(context.node_config["num-partitions"])
        content = RecordDict({"metrics": MetricRecord({"partition-id": pid, "num-partitions": count})})
        if "secagg-index" in conf:  # key exchange
            content["secagg"] = _secagg_keygen(conf, context)
        elif "arrays" in msg.content.array_records:  # FedProc's initial class sums
            sums, counts = _model(cfg, msg.content.array_records["arrays"]).class_sums(train, part)
            if "secagg-keys" in conf:
                vector = np.concatenate([sums.astype(np.float64).ravel(), counts.astype(np.float64)])
                content["secagg"] = _secagg_mask(conf, context, vector)
            else:
                content["fedproc"] = _sums_record(sums, counts)
        return Message(content, reply_to=msg)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        cfg, pid, part, data, conf = setup(msg, context)
        model = _model(cfg, msg.content.array_records["arrays"])
        names = model.weight_names()
        server_round = int(conf.get("server-round", 0))
        params = _algo_params(cfg)
        if cfg["algo"] == "fedprox" and "proximal-mu" in conf:  # Flower's FedProx sends μ
            params["mu"] = float(conf["proximal-mu"])
        prototypes, previous = None, None
        if cfg["algo"] == "fedproc" and "fedproc" in msg.content.array_records:
            prototypes = np.ascontiguousarray(
                msg.content.array_records["fedproc"]["prototypes"].numpy(), dtype=np.float32
            )
        if cfg["algo"] == "moon":
            if "moon-previous" in context.state.array_records:
                previous = _ordered(context.state.array_records["moon-previous"], names)
            else:  # prifft fl: a client's first negative is the initial model
                previous = _native.SimpleCnn.global_model("moon", cfg["seed"], data.classes).get_weights()
        local = model.local_update(
            data,
            part,
            algo=cfg["algo"],
            seed=int(conf["local-seed"])
            if "local-seed" in conf
            else _local_seed(cfg, server_round, pid, int(context.node_config["num-partitions"])),
            epochs=cfg["local-epochs"],
            lr=cfg["lr"],
            batch=cfg["batch"],
            alpha=float(conf.get("alpha", 0.0)),
            prototypes=prototypes,
            previous=previous,
            **params,
        )
        weights = local.get_weights()
        if cfg["algo"] == "moon":
            context.state["moon-previous"] = _record(names, weights)
        sums, counts = local.class_sums(data, part) if cfg["algo"] == "fedproc" else (None, None)
        if "secagg-keys" in conf:  # only the masked upload leaves the node
            vector = upload_vector(weights, len(part), sums, counts)
            content = RecordDict(
                {
                    "secagg": _secagg_mask(conf, context, vector),
                    "metrics": MetricRecord({"partition-id": pid}),
                }
            )
            return Message(content, reply_to=msg)
        content = RecordDict(
            {
                "arrays": _record(names, weights),
                "metrics": MetricRecord({"num-examples": len(part), "partition-id": pid}),
            }
        )
        if sums is not None:
            content["fedproc"] = _sums_record(sums, counts)
        return Message(content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        cfg, _, part, data, _ = setup(msg, context)
        model = _model(cfg, msg.content.array_records["arrays"])
        acc = model.evaluate(data.subset(part))
        metrics = MetricRecord({"accuracy": acc, "num-examples": len(part)})
        return Message(RecordDict({"metrics": metrics}), reply_to=msg)

    return app


# --------------------------------------------------------------------------------------------
# Strategy


class PrifftStrategy(FedAvg):
    """``prifft fl``'s server as a Flower strategy.

    Before round 1 it asks every connected node for its ``partition-id`` (a ``query`` message;
    for FedProc also the class sums of the initial model, which give the first prototypes). Each
    round it trains the partitions ``prifft.schedule`` samples, sending each its shuffling seed,
    α, and for FedProc the prototypes; a planned partition whose node is gone is skipped and the
    round finishes with the others. Replies are checked — the model's array names and shapes,
    finite values, a positive ``num-examples``, FedProc's sums and counts — and a malformed one is
    rejected with a logged error, leaving the aggregate to the others. The rest are averaged
    weighted by ``num-examples`` in float64 in the schedule's order (``weighted_average``), and
    FedProc's prototypes become the count-weighted mean of the clients' sums.
    """

    def __init__(
        self,
        algo: str,
        num_rounds: int,
        seed: int,
        classes: int,
        weight_names: list[str],
        weight_shapes: list[tuple[int, ...]],
        fraction_train: float = 1.0,
        horizon: Optional[int] = None,
        embedding_width: int = 256,
        timeout: float = 600.0,
        min_nodes: int = 1,
        secure_agg: bool = False,
    ) -> None:
        super().__init__(
            fraction_train=fraction_train,
            fraction_evaluate=0.0,
            min_train_nodes=1,
            min_evaluate_nodes=0,
            min_available_nodes=1,
        )
        self.algo, self.num_rounds, self.seed = algo, num_rounds, seed
        self.timeout, self.min_nodes = timeout, min_nodes
        self.secure_agg = secure_agg
        self.participants: list[int] = []  # this round's partitions in secure-aggregation order
        self.classes = classes
        self.names, self.shapes = weight_names, [tuple(s) for s in weight_shapes]
        self.server = FedProcServer(classes, embedding_width, horizon)
        self.nodes: dict[int, int] = {}  # partition-id → node id
        self.plan: Optional[list[list[tuple[int, int]]]] = None
        self.rejected: list[tuple[int, int, str]] = []  # (round, node, why); round 0: the initial sums

    def summary(self) -> None:
        log(INFO, "\t├──> prifft %s, %d rounds, seed %d", self.algo, self.num_rounds, self.seed)
        super().summary()

    def _discover(self, grid: Grid, arrays: ArrayRecord) -> None:
        content = RecordDict({"config": ConfigRecord()})
        if self.algo == "fedproc" and not self.secure_agg:
            content["arrays"] = arrays
        nodes = list(grid.get_node_ids())
        deadline = time.monotonic() + 60.0
        while len(nodes) < self.min_nodes and time.monotonic() < deadline:  # still connecting
            time.sleep(0.5)
            nodes = list(grid.get_node_ids())
        if len(nodes) < self.min_nodes:
            log(WARNING, "prifft: %d of the %d nodes waited for are connected", len(nodes), self.min_nodes)
        messages = [
            Message(content=content, message_type=MessageType.QUERY, dst_node_id=n) for n in nodes
        ]
        partitions = 0
        sums, tallies = [], []
        replies = []
        for r in grid.send_and_receive(messages, timeout=self.timeout):
            if r.has_error():
                log(ERROR, "prifft: node %d did not answer the query: %s", r.metadata.src_node_id, r.error.reason)
            else:
                replies.append(r)
        replies.sort(key=lambda r: int(r.content.metric_records["metrics"]["partition-id"]))
        for reply in replies:
            pid = int(reply.content.metric_records["metrics"]["partition-id"])
            self.nodes[pid] = reply.metadata.src_node_id
            if self.algo == "fedproc" and "fedproc" in reply.content.array_records:
                rec = reply.content.array_records["fedproc"]
                sums.append(rec["sums"].numpy())
                tallies.append(rec["counts"].numpy())
            # The split's size, as the nodes know it (a missing node must not shrink it).
            partitions = max(partitions, int(reply.content.metric_records["metrics"]["num-partitions"]))
        log(INFO, "prifft: %d nodes hold partitions %s", len(self.nodes), sorted(self.nodes))
        if self.algo == "fedproc" and sums:
            self.server.update(sums, tallies)
        if self.algo == "fedproc" and self.secure_agg and self.nodes:
            self._secure_initial_prototypes(grid, arrays)
        _, self.plan = _native.schedule(
            self.algo, self.seed, partitions, self.num_rounds, self.fraction_train, self.classes
        )

    def _key_exchange(self, grid: Grid, pids: list[int], label: int) -> Optional[dict[str, Any]]:
        """Fresh key pairs on the nodes of ``pids`` (participant i = pids[i]); the config entries
        their masked uploads need, or None (logged) when a node did not answer."""
        messages = [
            Message(
                content=RecordDict({"config": ConfigRecord({"secagg-index": i})}),
                message_type=MessageType.QUERY,
                dst_node_id=self.nodes[pid],
            )
            for i, pid in enumerate(pids)
        ]
        keys: dict[int, bytes] = {}
        for r in grid.send_and_receive(messages, timeout=self.timeout):
            if r.has_error() or "secagg" not in r.content.config_records:
                continue
            pid = int(r.content.metric_records["metrics"]["partition-id"])
            key = r.content.config_records["secagg"].get("public-key")
            if pid in pids and isinstance(key, bytes) and len(key) == 32:
                keys[pid] = key
        if len(keys) != len(pids):
            missing = sorted(set(pids) - set(keys))
            log(ERROR, "prifft: secure aggregation: partitions %s sent no public key", missing)
            return None
        return {
            "secagg-keys": [keys[p] for p in pids],
            "secagg-session": _native.secagg_session_id(),
            "secagg-round": label,
        }

    def _secure_sum(
        self, replies: Iterable[Message], pids: list[int], what: str, server_round: int
    ) -> Optional[np.ndarray]:
        """The decoded sum of every participant's masked upload, or None (logged) when one is
        missing or malformed — its masks would not cancel."""
        uploads: dict[int, np.ndarray] = {}
        for r in replies:
            node = r.metadata.src_node_id
            try:
                if r.has_error():
                    raise ValueError(r.error.reason)
                pid = int(r.content.metric_records["metrics"]["partition-id"])
                if pid not in pids or self.nodes.get(pid) != node:
                    raise ValueError(f"partition {pid} is not this node's")
                masked = r.content.array_records["secagg"]["masked"].numpy()
                if masked.dtype != np.uint64 or masked.ndim != 1:
                    raise ValueError(f"masked upload of {masked.dtype} {masked.shape}")
                uploads[pid] = masked
            except Exception as e:  # noqa: BLE001 — any bad reply is rejected, not fatal
                log(ERROR, "prifft: rejected the reply of node %d (%s): %s", node, what, e)
                self.rejected.append((server_round, node, str(e)))
        if len(uploads) != len(pids) or len({len(u) for u in uploads.values()}) != 1:
            log(ERROR, "prifft: secure aggregation of %s: %d of %d uploads; skipped (the masks would not cancel)",
                what, len(uploads), len(pids))
            return None
        return _native.secagg_aggregate([uploads[p] for p in pids], len(pids))

    def _secure_initial_prototypes(self, grid: Grid, arrays: ArrayRecord) -> None:
        pids = sorted(self.nodes)
        entries = self._key_exchange(grid, pids, INITIAL_ROUND)
        if entries is None:
            return
        messages = []
        for pid in pids:
            conf = ConfigRecord(dict(entries))
            content = RecordDict({"arrays": arrays, "config": conf})
            messages.append(Message(content=content, message_type=MessageType.QUERY, dst_node_id=self.nodes[pid]))
        totals = self._secure_sum(grid.send_and_receive(messages, timeout=self.timeout), pids, "initial class sums", 0)
        if totals is not None:
            classes, width = self.server.prototypes.shape
            self.server.update_totals(totals[: classes * width], totals[classes * width :])

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        if self.plan is None:
            self._discover(grid, arrays)
        assert self.plan is not None
        r = server_round - 1
        alpha = self.server.alpha(r, self.num_rounds) if self.algo == "fedproc" else 0.0
        messages = []
        present = []
        for pid, _ in self.plan[r]:
            if pid in self.nodes:
                present.append(pid)
            else:
                log(WARNING, "prifft: partition %d has no node; the round goes on without it", pid)
        secure: dict[str, Any] = {}
        if self.secure_agg:
            entries = self._key_exchange(grid, present, server_round)
            if entries is None:
                self.participants = []
                return []
            secure = entries
            self.participants = present
        for pid, local_seed in self.plan[r]:
            if pid not in self.nodes:
                continue
            conf = ConfigRecord(dict(config))
            conf.update({"server-round": server_round, "local-seed": local_seed, "alpha": alpha})
            conf.update(secure)
            content = RecordDict({"arrays": arrays, "config": conf})
            if self.algo == "fedproc":
                content["fedproc"] = ArrayRecord({"prototypes": Array(self.server.prototypes.copy())})
            messages.append(
                Message(content=content, message_type=MessageType.TRAIN, dst_node_id=self.nodes[pid])
            )
        log(INFO, "configure_train: %d partitions (schedule of seed %d)", len(messages), self.seed)
        return messages

    def _check(self, msg: Message) -> tuple[int, list[np.ndarray], int, Any]:
        """(partition, weights, num-examples, FedProc's (sums, counts)) of a reply, or ValueError."""
        content = msg.content
        if "arrays" not in content.array_records or "metrics" not in content.metric_records:
            raise ValueError("no 'arrays' or no 'metrics' record")
        metrics = content.metric_records["metrics"]
        n, pid = metrics.get("num-examples"), metrics.get("partition-id")
        if not isinstance(n, int) or n <= 0 or not isinstance(pid, int):
            raise ValueError(f"num-examples {n!r} and partition-id {pid!r} must be integers, n > 0")
        if self.nodes.get(pid) != msg.metadata.src_node_id:
            raise ValueError(f"partition {pid} is not this node's")
        weights = _ordered(content.array_records["arrays"], self.names)
        for name, w, shape in zip(self.names, weights, self.shapes):
            if w.shape != shape:
                raise ValueError(f"{name}: shape {w.shape}, expected {shape}")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"{name}: NaN or infinite values")
        extra = None
        if self.algo == "fedproc":
            rec = content.array_records.get("fedproc")
            if rec is None or "sums" not in rec or "counts" not in rec:
                raise ValueError("no FedProc class sums")
            sums, counts = rec["sums"].numpy(), rec["counts"].numpy()
            if sums.shape != self.server.prototypes.shape or counts.shape != (self.classes,):
                raise ValueError(f"class sums {sums.shape} / counts {counts.shape}")
            if not np.all(np.isfinite(sums)) or np.any(counts < 0) or counts.sum() != n:
                raise ValueError("class sums not finite or counts not matching num-examples")
            extra = (sums, counts)
        return pid, weights, n, extra

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[Optional[ArrayRecord], Optional[MetricRecord]]:
        assert self.plan is not None
        if self.secure_agg:
            if not self.participants:
                return None, None
            totals = self._secure_sum(replies, self.participants, f"round {server_round}", server_round)
            if totals is None:
                return None, None
            fedproc = self.server if self.algo == "fedproc" else None
            averaged, total = split_totals(totals, self.shapes, fedproc)
            metrics = MetricRecord({"num-examples": total, "clients": len(self.participants)})
            return _record(self.names, averaged), metrics
        order = {pid: i for i, (pid, _) in enumerate(self.plan[server_round - 1])}
        good = []
        for msg in replies:
            node = msg.metadata.src_node_id
            if msg.has_error():
                log(ERROR, "prifft: node %d failed in round %d: %s", node, server_round, msg.error.reason)
                self.rejected.append((server_round, node, msg.error.reason))
                continue
            try:
                good.append(self._check(msg))
            except Exception as e:  # noqa: BLE001 — any malformed reply is rejected, not fatal
                log(ERROR, "prifft: rejected the reply of node %d in round %d: %s", node, server_round, e)
                self.rejected.append((server_round, node, str(e)))
        good = [g for g in good if g[0] in order]
        good.sort(key=lambda g: order[g[0]])
        if not good:
            log(WARNING, "prifft: no valid reply in round %d; the model stays", server_round)
            return None, None
        averaged = weighted_average([g[1] for g in good], [g[2] for g in good])
        if self.algo == "fedproc":
            self.server.update([g[3][0] for g in good], [g[3][1] for g in good])
        total = sum(g[2] for g in good)
        return _record(self.names, averaged), MetricRecord({"num-examples": total, "clients": len(good)})


# --------------------------------------------------------------------------------------------
# ServerApp


def server_app(**overrides: Any) -> ServerApp:
    """The ``ServerApp``: the initial model of ``prifft fl``'s run (from ``seed``), the strategy
    the settings name, centralised evaluation on the test set after every round (as
    ``prifft fl``), the accuracies in ``out`` as CSV (``round,test_accuracy``) and the final
    weights in ``save``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        cfg = settings(context.run_config, overrides)
        train, test = _datasets(cfg)
        model = _native.SimpleCnn.global_model(cfg["algo"], cfg["seed"], train.classes)
        names = model.weight_names()
        weights = model.get_weights()
        params = _algo_params(cfg)
        if cfg["strategy"] == "prifft":
            strategy: FedAvg = PrifftStrategy(
                cfg["algo"],
                cfg["num-server-rounds"],
                cfg["seed"],
                train.classes,
                names,
                [w.shape for w in weights],
                fraction_train=cfg["fraction-train"],
                horizon=cfg["horizon"] or None,
                embedding_width=model.embedding_width,
                timeout=cfg["timeout"],
                min_nodes=cfg["min-nodes"],
                secure_agg=bool(cfg["secure-agg"]),
            )
        elif cfg["algo"] == "fedprox":
            strategy = FedProx(
                fraction_train=cfg["fraction-train"],
                fraction_evaluate=0.0,
                min_train_nodes=1,
                min_available_nodes=1,
                proximal_mu=params["mu"] or 0.01,
            )
        else:
            strategy = FedAvg(
                fraction_train=cfg["fraction-train"],
                fraction_evaluate=0.0,
                min_train_nodes=1,
                min_available_nodes=1,
            )
        accuracies: dict[int, float] = {}

        def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
            model.set_weights(_ordered(arrays, names))
            acc = model.evaluate(test)
            accuracies[server_round] = acc
            return MetricRecord({"accuracy": acc})

        result = strategy.start(
            grid=grid,
            initial_arrays=_record(names, weights),
            num_rounds=cfg["num-server-rounds"],
            timeout=cfg["timeout"],
            evaluate_fn=evaluate,
        )
        if cfg["save"]:
            final = result.arrays if result.arrays is not None else _record(names, weights)
            np.savez(cfg["save"], **dict(zip(names, _ordered(final, names))))
        if cfg["out"]:
            with open(cfg["out"], "w") as f:
                f.write("round,test_accuracy\n")
                for r in sorted(k for k in accuracies if k > 0):
                    f.write(f"{r},{accuracies[r]:.4f}\n")

    return app


def run_simulation(clients: int = 10, cpus_per_client: float = 1.0, **overrides: Any) -> None:
    """Flower's simulation engine (Ray) with ``clients`` virtual SuperNodes running
    ``client_app(**overrides)`` and ``server_app(**overrides)``."""
    from flwr.simulation import run_simulation as flwr_run_simulation

    settings(None, overrides)  # refuse bad settings before starting Ray
    flwr_run_simulation(
        server_app=server_app(**overrides),
        client_app=client_app(**overrides),
        num_supernodes=clients,
        backend_config={"client_resources": {"num_cpus": cpus_per_client, "num_gpus": 0.0}},
    )


def main(argv: Optional[list[str]] = None) -> None:
    """``python -m prifft.flower simulate [--clients N] [--cpus-per-client C] [KEY=VALUE ...]``:
    a Flower simulation; KEY is any of ``DEFAULTS`` (e.g. ``algo=fedproc num-server-rounds=20
    out=fedproc.csv``)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m prifft.flower",
        description="prifft's federated learning on Flower's simulation engine (Ray). Settings: "
        + ", ".join(f"{k}={v}" for k, v in DEFAULTS.items()),
    )
    parser.add_argument("command", choices=["simulate"])
    parser.add_argument("--clients", type=int, default=10, help="virtual SuperNodes (partitions)")
    parser.add_argument("--cpus-per-client", type=float, default=1.0, help="Ray CPUs per client")
    parser.add_argument("setting", nargs="*", help="KEY=VALUE, keys as in DEFAULTS")
    args = parser.parse_intermixed_args(argv)
    overrides = {}
    for item in args.setting:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"{item!r}: settings are KEY=VALUE")
        overrides[key] = value
    try:
        settings(None, overrides)
    except ValueError as e:
        parser.error(str(e))
    run_simulation(args.clients, args.cpus_per_client, **overrides)


if __name__ == "__main__":
    # Run the importable module's main, not this __main__ copy's: Ray pickles functions of
    # __main__ by value (with their globals, the data caches), those of a module by reference.
    from prifft.flower import main as _main

    _main()
