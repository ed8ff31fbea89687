"""prifft from Python.

Federated learning on prifft's Rust engine — the data sets and partitions of ``prifft fl``, its
simple CNN, a client's local update with FedAvg's, FedProx's, MOON's or FedProc's loss (bit for
bit what ``prifft fl`` computes), evaluation, FedProc's per-class sums — plus secure
aggregation's pairwise masks and FSS (DCF/DPF) key generation and evaluation on numpy arrays.

Every call that computes releases the interpreter while Rust works. Errors are ``ValueError``
(bad input) or ``OSError`` (missing files) with prifft's own messages.

>>> import numpy as np, prifft
>>> k0, k1 = prifft.dcf_keygen(16, np.array([1000], np.uint64), np.array([7], np.uint64))
>>> xs = np.array([999], np.uint64)
>>> int((prifft.fss_eval(k0, xs) + prifft.fss_eval(k1, xs))[0])   # 7·[999 < 1000]
7
"""

from ._native import (
    Dataset,
    SecAggParticipant,
    SimpleCnn,
    __version__,
    epoch_orders,
    fss_eval,
    fss_keygen,
    load_fashion_mnist,
    load_mnist_5k,
    partition,
    schedule,
    secagg_aggregate,
    secagg_session_id,
)
from .fl import FedProcServer, simulate, weighted_average


def dcf_keygen(bits, alphas, betas):
    """Dealer: DCF keys for ``β·[x < α]`` on ``bits``-bit inputs (uint64 arrays α, β), from the
    OS-seeded CSPRNG: (party 0's keys, party 1's keys) as bytes for ``fss_eval``."""
    return fss_keygen("dcf", bits, alphas, betas)


def dpf_keygen(bits, alphas, betas):
    """Dealer: DPF keys for ``β·[x = α]``, as ``dcf_keygen``."""
    return fss_keygen("dpf", bits, alphas, betas)

__all__ = [
    "Dataset",
    "FedProcServer",
    "SecAggParticipant",
    "SimpleCnn",
    "__version__",
    "dcf_keygen",
    "dpf_keygen",
    "epoch_orders",
    "fss_eval",
    "fss_keygen",
    "load_fashion_mnist",
    "load_mnist_5k",
    "partition",
    "schedule",
    "secagg_aggregate",
    "secagg_session_id",
    "simulate",
    "weighted_average",
]
