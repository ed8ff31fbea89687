"""Type stubs of prifft's extension module (python/src/lib.rs)."""

from os import PathLike
from typing import Optional, Sequence

import numpy as np
import numpy.typing as npt

__version__: str

class Dataset:
    """A labelled image set (images × rows × cols, float32; labels below ``classes``)."""

    def __init__(
        self, images: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], classes: int
    ) -> None: ...
    def __len__(self) -> int: ...
    @property
    def classes(self) -> int: ...
    @property
    def image_shape(self) -> tuple[int, int]: ...
    def images(self) -> npt.NDArray[np.float32]: ...
    def labels(self) -> npt.NDArray[np.int64]: ...
    def class_counts(self) -> npt.NDArray[np.int64]: ...
    def subset(self, indices: npt.NDArray[np.int64]) -> Dataset: ...

def load_fashion_mnist(
    dir: Optional[str | PathLike[str]] = None, standardize: bool = True
) -> tuple[Dataset, Dataset]: ...
def load_mnist_5k(
    path: Optional[str | PathLike[str]] = None, standardize: bool = True
) -> tuple[Dataset, Dataset]: ...
def partition(
    dataset: Dataset,
    clients: int,
    beta: float = 0.5,
    seed: int = 1,
    scheme: str = "dirichlet",
    shards_per_client: int = 2,
) -> list[npt.NDArray[np.int64]]: ...
def epoch_orders(
    indices: npt.NDArray[np.int64], seed: int, epochs: int = 1
) -> list[npt.NDArray[np.int64]]: ...
def schedule(
    algo: str, seed: int, clients: int, rounds: int, fraction: float = 1.0, classes: int = 10
) -> tuple[SimpleCnn, list[list[tuple[int, int]]]]: ...

class SimpleCnn:
    """``prifft fl``'s network: simple CNN, projection head 84 → 84 → 256, classifier."""

    def __init__(self, classes: int = 10, normalize: bool = False, seed: Optional[int] = None) -> None: ...
    @staticmethod
    def global_model(algo: str, seed: int, classes: int = 10) -> SimpleCnn: ...
    def weight_names(self) -> list[str]: ...
    def get_weights(self) -> list[npt.NDArray[np.float32]]: ...
    def set_weights(self, weights: Sequence[npt.NDArray[np.float32]]) -> None: ...
    @property
    def embedding_width(self) -> int: ...
    def local_update(
        self,
        data: Dataset,
        indices: npt.NDArray[np.int64],
        *,
        algo: str = "fedavg",
        seed: int,
        epochs: int = 1,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 1e-5,
        batch: int = 64,
        mu: Optional[float] = None,
        tau: Optional[float] = None,
        alpha: float = 0.0,
        prototypes: Optional[npt.NDArray[np.float32]] = None,
        previous: Optional[Sequence[npt.NDArray[np.float32]]] = None,
    ) -> SimpleCnn: ...
    def train_epoch(
        self,
        data: Dataset,
        order: npt.NDArray[np.int64],
        *,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 1e-5,
        batch: int = 64,
    ) -> float: ...
    def evaluate(self, data: Dataset) -> float: ...
    def class_sums(
        self, data: Dataset, indices: Optional[npt.NDArray[np.int64]] = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
    def copy(self) -> SimpleCnn: ...

class SecAggParticipant:
    """One client's X25519 key pair for a secure-aggregation session (fresh, OS-seeded)."""

    def __init__(self, index: int, secret: Optional[bytes] = None) -> None: ...
    @property
    def index(self) -> int: ...
    @property
    def secret_key(self) -> bytes: ...
    @property
    def public_key(self) -> bytes: ...
    def mask(
        self,
        values: npt.NDArray[np.float64],
        public_keys: Sequence[bytes],
        session: bytes,
        round: int,
        frac_bits: int = 24,
    ) -> npt.NDArray[np.uint64]: ...

def secagg_session_id() -> bytes: ...
def secagg_aggregate(
    uploads: Sequence[npt.NDArray[np.uint64]], participants: int, frac_bits: int = 24
) -> npt.NDArray[np.float64]: ...
def fss_keygen(
    scheme: str, bits: int, alphas: npt.NDArray[np.uint64], betas: npt.NDArray[np.uint64]
) -> tuple[bytes, bytes]: ...
def fss_eval(keys: bytes, xs: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]: ...
