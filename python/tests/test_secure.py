"""Secure aggregation's masks and FSS keys through the binding."""

import numpy as np
import pytest

import prifft


def test_masked_uploads_sum_to_the_total_and_hide_each_value():
    rng = np.random.default_rng(1)
    values = [rng.normal(size=1000) for _ in range(3)]
    parts = [prifft.SecAggParticipant(i) for i in range(3)]
    keys = [p.public_key for p in parts]
    session = prifft.secagg_session_id()
    assert len(session) == 16 and all(len(k) == 32 for k in keys)
    uploads = [p.mask(v, keys, session, 0) for p, v in zip(parts, values)]
    total = prifft.secagg_aggregate(uploads, 3)
    assert np.max(np.abs(total - sum(values))) <= 3 * 2.0**-24
    # One upload alone is a one-time pad: far from the fixed-point encoding of its values.
    plain = np.round(values[0] * 2**24).astype(np.int64).astype(np.uint64)
    assert np.mean(uploads[0] == plain) < 0.01
    # Another round's masks differ.
    assert not np.array_equal(parts[0].mask(values[0], keys, session, 1), uploads[0])


def test_secure_aggregation_refuses_bad_input():
    parts = [prifft.SecAggParticipant(i) for i in range(2)]
    keys = [p.public_key for p in parts]
    session = prifft.secagg_session_id()
    with pytest.raises(ValueError, match="32 bytes"):
        parts[0].mask(np.ones(4), [keys[0], b"short"], session, 0)
    with pytest.raises(ValueError, match="16 bytes"):
        parts[0].mask(np.ones(4), keys, b"x", 0)
    with pytest.raises(ValueError, match="low order"):
        parts[0].mask(np.ones(4), [keys[0], bytes(32)], session, 0)
    with pytest.raises(ValueError, match="fixed-point range"):
        parts[0].mask(np.array([1e30]), keys, session, 0)
    one = parts[0].mask(np.ones(4), keys, session, 0)
    with pytest.raises(ValueError):
        prifft.secagg_aggregate([one], 2)


@pytest.mark.parametrize("scheme", ["dcf", "dpf"])
def test_fss_keys_reconstruct_their_function(scheme):
    rng = np.random.default_rng(7)
    n = 1000
    alphas = rng.integers(0, 2**20, n, dtype=np.uint64)
    betas = rng.integers(0, 2**63, n, dtype=np.uint64)
    xs = np.where(rng.random(n) < 0.5, alphas, rng.integers(0, 2**20, n, dtype=np.uint64)).astype(np.uint64)
    keygen = prifft.dcf_keygen if scheme == "dcf" else prifft.dpf_keygen
    k0, k1 = keygen(20, alphas, betas)
    total = prifft.fss_eval(k0, xs) + prifft.fss_eval(k1, xs)  # wraps mod 2^64
    hit = xs < alphas if scheme == "dcf" else xs == alphas
    assert np.array_equal(total, np.where(hit, betas, np.uint64(0)))
    # Each party's output alone is not the function.
    assert np.mean(prifft.fss_eval(k0, xs) == np.where(hit, betas, 0)) < 0.01


def test_malformed_keys_are_errors_not_crashes():
    k0, _ = prifft.dcf_keygen(16, np.array([5, 6], np.uint64), np.array([1, 1], np.uint64))
    xs = np.array([1, 2], np.uint64)
    for bad in [k0[: len(k0) // 2], b"", b"\x00" * 64, k0[:-1]]:
        with pytest.raises(ValueError):
            prifft.fss_eval(bad, xs)
    with pytest.raises(ValueError):
        prifft.fss_eval(k0, np.array([1, 2, 3], np.uint64))
    with pytest.raises(ValueError):
        prifft.dcf_keygen(16, np.array([1 << 20], np.uint64), np.array([1], np.uint64))
    with pytest.raises(ValueError, match="does not fit in 16 bits"):
        prifft.fss_eval(k0, np.array([1, 1 << 16], np.uint64))
    with pytest.raises(ValueError, match="C-contiguous"):
        prifft.fss_eval(k0, np.arange(4, dtype=np.uint64)[::2])
