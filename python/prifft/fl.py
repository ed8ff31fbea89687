"""The server's side of ``prifft fl``, in Python: weighted averaging, FedProc's prototypes and a
round loop over the binding that reproduces ``prifft fl`` bit for bit.

``simulate`` is the reference a federated engine (Flower) is checked against: it follows
``schedule`` (the clients each round samples and their local seeds), trains each client with
``SimpleCnn.local_update`` and averages the way the Rust server does — float64 sums of
``n_c · w_c`` in the schedule's order, divided by ``Σ n_c``, rounded to float32.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from ._native import Dataset, SimpleCnn, schedule

__all__ = ["FedProcServer", "simulate", "split_totals", "upload_vector", "weighted_average"]


def upload_vector(
    weights: Sequence[np.ndarray],
    size: int,
    sums: Optional[np.ndarray] = None,
    counts: Optional[np.ndarray] = None,
) -> np.ndarray:
    """A client's upload in ``prifft fl``'s layout, for secure aggregation (whose sum the server
    reads): ``size · w`` for every weight (float64, in order), FedProc's class sums and counts
    when given, then ``size`` — so the server learns only the totals, sizes included."""
    parts = [np.asarray(w, dtype=np.float32).astype(np.float64).ravel() * float(size) for w in weights]
    if sums is not None and counts is not None:
        parts.append(np.asarray(sums, dtype=np.float32).astype(np.float64).ravel())
        parts.append(np.asarray(counts, dtype=np.float64).ravel())
    parts.append(np.array([float(size)]))
    return np.concatenate(parts)


def split_totals(
    totals: np.ndarray, shapes: Sequence[tuple], prototypes: Optional["FedProcServer"] = None
) -> tuple[list[np.ndarray], int]:
    """The averaged weights (float32) from the sum of ``upload_vector``s, as ``prifft fl``'s server
    divides them, and the total size; FedProc's prototypes are updated from the summed class sums
    and counts when ``prototypes`` is given."""
    totals = np.asarray(totals, dtype=np.float64)
    total = max(float(totals[-1]), 1.0)
    out, at = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        out.append((totals[at : at + n] / total).astype(np.float32).reshape(shape))
        at += n
    if prototypes is not None:
        classes, width = prototypes.prototypes.shape
        prototypes.update_totals(totals[at : at + classes * width], totals[at + classes * width : -1])
        at += classes * width + classes
    if at != len(totals) - 1:
        raise ValueError(f"{len(totals)} summed values for {at + 1} expected")
    return out, int(round(float(totals[-1])))


def weighted_average(
    weights: Sequence[Sequence[np.ndarray]], sizes: Sequence[float]
) -> list[np.ndarray]:
    """Σ n_c · w_c / Σ n_c per array, accumulated in float64 in the given order (as ``prifft fl``'s
    server does), returned as float32."""
    if len(weights) != len(sizes) or not weights:
        raise ValueError(f"{len(weights)} weight lists but {len(sizes)} sizes; at least one needed")
    total = max(float(sum(float(n) for n in sizes)), 1.0)
    out = []
    for k in range(len(weights[0])):
        acc = np.zeros(np.shape(weights[0][k]), dtype=np.float64)
        for w, n in zip(weights, sizes):
            if np.shape(w[k]) != acc.shape:
                raise ValueError(f"array {k}: shape {np.shape(w[k])} differs from {acc.shape}")
            acc += np.asarray(w[k], dtype=np.float64) * float(n)
        out.append((acc / total).astype(np.float32))
    return out


class FedProcServer:
    """FedProc's global state on the server: class prototypes (classes × z width), the average of
    the clients' per-class sums of z weighted by their counts, and α's schedule α_t = 1 − t/H
    (round 0 is cross-entropy only; H defaults to the number of rounds, as the paper)."""

    def __init__(self, classes: int, width: int = 256, horizon: Optional[int] = None):
        self.prototypes = np.zeros((classes, width), dtype=np.float32)
        self.horizon = horizon

    def alpha(self, round: int, rounds: int) -> float:
        """α for the 0-based ``round`` of ``rounds`` (float32 arithmetic, as ``prifft fl``)."""
        if round == 0:
            return 0.0
        h = max(self.horizon if self.horizon is not None else rounds, 1)
        return float(max(np.float32(1.0) - np.float32(round) / np.float32(h), np.float32(0.0)))

    def update(self, sums: Sequence[np.ndarray], counts: Sequence[np.ndarray]) -> None:
        """New prototypes from the clients' per-class sums and counts (in the order they are
        summed); a class that no client holds keeps its prototype."""
        classes, width = self.prototypes.shape
        total_s = np.zeros((classes, width), dtype=np.float64)
        total_n = np.zeros(classes, dtype=np.float64)
        for s, n in zip(sums, counts):
            total_s += np.asarray(s, dtype=np.float32).astype(np.float64)
            total_n += np.asarray(n, dtype=np.float64)
        self.update_totals(total_s, total_n)

    def update_totals(self, total_s: np.ndarray, total_n: np.ndarray) -> None:
        """New prototypes from already summed class sums (float64, classes × width) and counts
        (e.g. from secure aggregation)."""
        classes, width = self.prototypes.shape
        total_s = np.asarray(total_s, dtype=np.float64).reshape(classes, width)
        total_n = np.asarray(total_n, dtype=np.float64).reshape(classes)
        for k in range(classes):
            n = np.round(total_n[k])
            if n >= 1.0:
                self.prototypes[k] = (total_s[k] / n).astype(np.float32)


def simulate(
    train: Dataset,
    test: Dataset,
    parts: Sequence[np.ndarray],
    algo: str = "fedavg",
    *,
    rounds: int = 20,
    seed: int = 1,
    fraction: float = 1.0,
    local_epochs: int = 1,
    lr: float = 0.01,
    batch: int = 64,
    mu: Optional[float] = None,
    tau: Optional[float] = None,
    horizon: Optional[int] = None,
    on_round: Optional[Callable[[int, float], None]] = None,
) -> list[float]:
    """``prifft fl``'s run of ``algo`` for ``seed`` over the clients' index sets ``parts``, driven
    from Python; returns the global model's test accuracy after each round (equal to the CSV of
    ``prifft fl --seeds`` for that seed)."""
    algo = algo.lower()
    global_model, plan = schedule(algo, seed, len(parts), rounds, fraction, train.classes)
    initial = global_model.get_weights()
    previous: dict[int, list[np.ndarray]] = {}
    server = FedProcServer(train.classes, global_model.embedding_width, horizon)
    if algo == "fedproc":
        uploads = [global_model.class_sums(train, p) for p in parts]
        server.update([s for s, _ in uploads], [n for _, n in uploads])
    accuracies = []
    for r in range(rounds):
        alpha = server.alpha(r, rounds) if algo == "fedproc" else 0.0
        weights, sizes, sums, counts = [], [], [], []
        for client, local_seed in plan[r]:
            local = global_model.local_update(
                train,
                parts[client],
                algo=algo,
                seed=local_seed,
                epochs=local_epochs,
                lr=lr,
                batch=batch,
                mu=mu,
                tau=tau,
                alpha=alpha,
                prototypes=server.prototypes,
                previous=previous.get(client, initial) if algo == "moon" else None,
            )
            w = local.get_weights()
            weights.append(w)
            sizes.append(len(parts[client]))
            if algo == "moon":
                previous[client] = w
            if algo == "fedproc":
                s, n = local.class_sums(train, parts[client])
                sums.append(s)
                counts.append(n)
        global_model.set_weights(weighted_average(weights, sizes))
        if algo == "fedproc":
            server.update(sums, counts)
        acc = global_model.evaluate(test)
        accuracies.append(acc)
        if on_round is not None:
            on_round(r + 1, acc)
    return accuracies
