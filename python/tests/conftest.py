"""Shared fixtures: the repository, the `prifft` binary (for checks against the command line)
and the data sets, which are required (not skipped) when PRIFFT_REQUIRE_DATA=1, as in CI."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import prifft

ROOT = Path(__file__).resolve().parents[2]
MNIST_5K = ROOT / "assets" / "mnist_5k.csv.gz"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def _require(path: Path, how: str):
    if not path.exists():
        if os.environ.get("PRIFFT_REQUIRE_DATA") == "1":
            pytest.fail(f"{path} is missing ({how}) and PRIFFT_REQUIRE_DATA=1")
        pytest.skip(f"{path} is missing ({how})")


@pytest.fixture(scope="session")
def prifft_bin() -> Path:
    """The command-line binary: $PRIFFT_BIN, else target/release or target/debug."""
    env = os.environ.get("PRIFFT_BIN")
    candidates = [Path(env)] if env else [ROOT / "target/release/prifft", ROOT / "target/debug/prifft"]
    for c in candidates:
        if c.exists():
            return c
    found = shutil.which("prifft")
    if found:
        return Path(found)
    pytest.fail("no prifft binary: run `cargo build` first or set PRIFFT_BIN")


@pytest.fixture(scope="session")
def mnist5k():
    _require(MNIST_5K, "bash scripts/fetch-assets.sh")
    return prifft.load_mnist_5k(MNIST_5K)


@pytest.fixture(scope="session")
def fashion():
    _require(FASHION, "apt-get install dataset-fashion-mnist")
    return prifft.load_fashion_mnist(FASHION)


def run(cmd, cwd=ROOT) -> str:
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout
