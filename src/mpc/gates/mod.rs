//! Gates on masked inputs, built on the DCF and DPF.
//!
//! Every gate works on a **masked** input `x̂ = x + r (mod 2^64)`, where `r` is the dealer's
//! random mask (parties hold additive shares of `r`; opening `x̂` is the one round that turns an
//! additive sharing of `x` into the masked form). The dealer, knowing `r`, makes the keys; each
//! party evaluates locally on the public `x̂` and obtains **additive shares over Z_2^64** of the
//! result (1-bit results are 0/1 ring elements; their low bits are XOR shares).
//!
//! **Bit-width reduction.** Each gate takes a width `m` and assumes the documented input range
//! (`x ∈ [−2^(m−1), 2^(m−1))` for signed gates): shares and masks reduce mod 2^m locally, so an
//! m-bit DCF/DPF does the work of a 64-bit one, with `(m/64)` of the key size and time.
//!
//! | gate | keys per element | evaluations | one party's key bytes |
//! |---|---|---|---|
//! | [`sign::msb`] / DReLU / less-than a constant | 1 DCF on m − 1 bits + 1 word | 1 | 16 + 24(m − 2) + 16 + 8 |
//! | [`interval::contains`] `[p ≤ x < q)` | 1 DCF on m bits | 2 | 16 + 24(m − 1) + 16 |
//! | [`lut::lookup`] `T[x]`, b-bit index | 1 DPF on b bits | full domain (2^b) | 16 + 16(b − 1) + 16 |
//! | [`relu::relu`] (DReLU and select in one round) | 1 two-word DCF on m − 1 bits + 3 words | 1 | 16 + 32(m − 2) + 32 + 24 |
//! | [`spline::eval`], k pieces of degree d | 1 (d+1)-word DCF on m bits + d + 1 words | k + 1 | 16 + (16 + 8(d+1))(m − 1) + 16(d+1) + 8(d+1) |
//! | [`shift::ars`] / [`shift::lrs`] exact `⌊x / 2^s⌋` (truncation, digits) | 1 DCF on m bits + 1 on s bits + 1 word | 2 | 56 + 24(m − 1) + 24(s − 1) |

// Index loops over elements (k), pieces (i) and powers (e, j) mirror the formulas in the docs
// and touch several parallel arrays at once; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

pub mod interval;
pub mod lut;
pub mod relu;
pub mod shift;
pub mod sign;
pub mod spline;

/// `x mod 2^m` for m in 1..=64.
#[inline]
pub(crate) fn reduce(x: u64, m: u32) -> u64 {
    if m == 64 { x } else { x & ((1u64 << m) - 1) }
}

/// Reads an m-bit value as signed (two's complement in m bits).
#[inline]
pub fn signed_in(x: u64, m: u32) -> i64 {
    let shift = 64 - m;
    ((x << shift) as i64) >> shift
}
