//! The "existing secret sharing" baseline: the same operations done the way CrypTen (0.4.1)
//! does them by default, on the same ring, fixed point, channel metering and [`Backend`](crate::backend::Backend), so
//! that PriFFT's protocols ([`nonlinear`](super::nonlinear)) are measured against it in one run.
//!
//! **Building blocks** (CrypTen's two-party defaults with a trusted first party): additive
//! shares over Z_2^64 with 16 fractional bits; products by Beaver triples from the dealer
//! ([`beaver`]); truncation after a product is local (SecureML, one ulp of error
//! and a wrap with probability ≈ |x|/2^64 per element, as in CrypTen); comparisons through
//! arithmetic-to-binary conversion and a parallel-prefix adder on AND triples
//! ([`binary`]); products with a comparison bit (an integer, not fixed point) are not truncated.
//!
//! | op | construction (CrypTen's default) | rounds | bytes / element / party | CrypTen measured |
//! |---|---|---:|---:|---|
//! | product | Beaver, local truncation | 1 | 16 | 1, 16 |
//! | exp | (1 + x/2^8)^(2^8): 8 Beaver squarings | 8 | 64 | 8, 64 |
//! | reciprocal | sign by a comparison; 3·exp(1 − 2x) + 0.003; 10 Newton steps y ← 2y − x·y² | 38 | 552 | 38, 554 |
//! | rsqrt | y₀ = 2.2·exp(−(x/2 + 0.2)) + 0.2 − x/1024; 3 Newton steps y ← y(3 − x·y²)/2 | 17 | 184 | 17, 185 |
//! | sigmoid | comparison, \|x\|, 1/(1 + exp(−\|x\|)) by 3 Newton steps from 0.75 (the first public), `where` | 23 | 376 | 23, 377 |
//! | tanh | 2·sigmoid(2x) − 1 | 23 | 376 | 23, 377 |
//! | GELU | x·sigmoid(1.702x) | 24 | 392 | 24, 393 |
//! | ReLU | x·\[x > 0\] | 9 | 232 | 9, 233 |
//! | dropout(p) | rand (16 random bits converted), \[rand > p\], product, ·1/(1 − p) | 10 | 360 | 10, 361 |
//! | softmax (rows of L) | max by a log₂ L tree of comparisons and `where`; exp; sum; reciprocal (positive); product | 10·log₂L + 37 | see below | L = 128: 116, 751 |
//! | layer norm (rows) | mean; variance by a square; rsqrt per row; two products | 20 | 40 + 184/H | — |
//!
//! `where(c, a, b)` is CrypTen's: b·(1 − c), then a·c (two products in sequence). The softmax's
//! max tree costs (1 − 1/L)·248 bytes per element (a comparison and a `where` per pair),
//! exp 64, the final product 16 and the row's reciprocal 304/L: 330 bytes at L = 32, 328 at
//! L = 128. **Difference from CrypTen:** CrypTen's `max(dim)` also returns the arg-max, an
//! equality test (two comparisons) on every element and a product, ≈ 450 bytes and 9 rounds
//! more per element — a softmax does not need it, so this baseline leaves it out and is that
//! much *cheaper* than real CrypTen (751 bytes measured at L = 128). Every ratio against it is
//! therefore conservative.
//!
//! **Backward** (CrypTen's autograd rules): exp dY·y (1 round, 16 B); reciprocal −dY·y² (2, 24);
//! rsqrt −½·dY·y³ (3, 40); sigmoid dY·y(1 − y) (2, 32); tanh dY·(1 − y²) (2, 24); GELU from the
//! saved σ(1.702x): dY·(s + 1.702·x·s(1 − s)) (3, 48); ReLU and dropout dY times the saved bit
//! (1, 16); softmax y ⊙ (dY − rowsum(dY ⊙ y)) (2, 32); layer norm from the saved normalised
//! value and rsqrt, with dγ and dβ (5, 80); a linear layer's dX = dY·Wᵀ by a fresh Beaver matrix product (CrypTen
//! opens W again).
//!
//! **What each party learns:** every opened value is a secret minus a fresh uniform dealer
//! value (Beaver differences, AND-triple differences, masked bits), so nothing.
//!
//! ```
//! use prifft::mpc::nonlinear::{dec, enc, exp};
//! use prifft::mpc::{baseline, local, sharing, Dealer};
//! use prifft::ring::RingTensor;
//!
//! let x = RingTensor::from_vec(&[3], vec![enc(-2.0), enc(-0.5), enc(0.0)])?;
//! let [x0, x1] = sharing::share_secret(&x, &mut prifft::prg::os_rng());
//! // The same operation both ways: CrypTen's exp (8 Beaver squarings) and PriFFT's (one spline
//! // gate and one exact shift), each from its own dealer material.
//! let mut dealer = Dealer::new();
//! baseline::gen_exp(&mut dealer, &[3])?;
//! exp::gen_forward(&mut dealer, &[3])?;
//! let run = local::run_two_party(
//!     dealer.finish(),
//!     |ctx| Ok((baseline::exp(ctx, &x0)?, exp::forward(ctx, &x0)?)),
//!     |ctx| Ok((baseline::exp(ctx, &x1)?, exp::forward(ctx, &x1)?)),
//! )?;
//! let (b0, p0) = &run.out0;
//! let (b1, p1) = &run.out1;
//! let crypten = sharing::reconstruct(b0, b1)?;
//! let prifft = sharing::reconstruct(p0, p1)?;
//! for (i, want) in [(-2.0f64).exp(), (-0.5f64).exp(), 1.0].into_iter().enumerate() {
//!     assert!((dec(crypten.as_slice()[i]) - want).abs() < 0.01); // CrypTen's order of error
//!     assert!((dec(prifft.as_slice()[i]) - want).abs() < 2f64.powi(-12));
//! }
//! # Ok::<(), prifft::Error>(())
//! ```

pub mod binary;
pub mod elementwise;
pub mod rows;

use super::error::Result;
use super::nonlinear::{add_const, enc};
use super::{PartyCtx, PartyId, Share, beaver, trunc};
use crate::net::Channel;

pub use elementwise::*;
pub use rows::*;

/// Fractional bits (CrypTen's default precision, the same as PriFFT's).
pub const FRAC: u32 = super::nonlinear::FRAC;

/// P0 adds the fixed-point constant `c`.
fn add_c(party: PartyId, x: &Share, c: f64) -> Share {
    add_const(party, x, enc(c))
}

/// c − x for a public fixed-point c.
fn c_minus(party: PartyId, c: f64, x: &Share) -> Share {
    add_c(party, &x.scale(u64::MAX), c)
}

/// x·c for a public real c: scale by its encoding, truncate locally (0 rounds).
fn pub_mul<C: Channel>(ctx: &PartyCtx<C>, x: &Share, c: f64) -> Result<Share> {
    trunc::trunc(ctx, &x.scale(enc(c)), FRAC)
}

/// x / 2^k by local truncation (CrypTen's division by a public power of two).
fn div_pow2<C: Channel>(ctx: &PartyCtx<C>, x: &Share, k: u32) -> Result<Share> {
    trunc::trunc(ctx, x, k)
}

/// Fixed-point product: Beaver, then local truncation. 1 round, 16 bytes per element.
fn fmul<C: Channel>(ctx: &mut PartyCtx<C>, a: &Share, b: &Share) -> Result<Share> {
    let z = beaver::mul(ctx, a, b)?;
    trunc::trunc(ctx, &z, FRAC)
}

/// Fixed-point square: Beaver square pair, local truncation. 1 round, 8 bytes per element.
fn fsquare<C: Channel>(ctx: &mut PartyCtx<C>, a: &Share) -> Result<Share> {
    let z = beaver::square(ctx, a)?;
    trunc::trunc(ctx, &z, FRAC)
}

/// `where(c, a, b)` = a·c + b·(1 − c) for an integer bit c, as CrypTen computes it: two Beaver
/// products in sequence (2 rounds, 32 bytes per element), no truncation.
fn select<C: Channel>(ctx: &mut PartyCtx<C>, c: &Share, a: &Share, b: &Share) -> Result<Share> {
    let not_c = add_const(ctx.id, &c.scale(u64::MAX), 1);
    let b_masked = beaver::mul(ctx, b, &not_c)?;
    beaver::mul(ctx, a, c)?.add(&b_masked)
}
