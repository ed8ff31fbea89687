//! The inverse square root 1/√x (layer norm's), forward and backward.
//!
//! **Spec.** [`Approx`] of x^(−1/2) on [2^−6, 2^8) in the signed [`WIDTH`]-bit range
//! (|x| < 2^11). Relative error ≤ 2^−10 vs f64 on the range. Out of range: x < 2^−6 — including
//! 0 and negative x — gives 8; x ≥ 2^8 gives 1/16. Backward: d(x^(−1/2))/dx = −½·y³, so
//! dX = −½((dY ⊙ Y) ⊙ Y) ⊙ Y from the output kept in its shift gate's affine form
//! ([`crate::mpc::affine`]): three products, each truncated locally ([`backward_spec`], within
//! [`BACKWARD_ULPS`]).
//!
//! **Cost per element per party:** forward 3 rounds, 16 bytes + 1 bit; backward 3 rounds, 24 bytes
//! (96 bytes of keys).
//!
//! **What each party learns:** nothing (openings under fresh masks).

use std::sync::OnceLock;

use super::approx::{Approx, FitSpec};
use super::{FRAC, Plan, Saved, floor_mul, gen_products, saved_fmul};
use crate::mpc::error::Result;
use crate::mpc::{Dealer, PartyCtx, Share};
use crate::net::Channel;

/// Input width: the signed 28-bit range, |x| < 2^11.
pub const WIDTH: u32 = 28;
/// The range where the relative bound holds.
pub const RANGE: (f64, f64) = (1.0 / 64.0, 256.0);

/// The fitted function.
pub fn approx() -> &'static Approx {
    static A: OnceLock<Approx> = OnceLock::new();
    A.get_or_init(|| {
        Approx::fit(&FitSpec {
            name: "rsqrt",
            f: &|x| 1.0 / x.sqrt(),
            width: WIDTH,
            region: RANGE,
            left: [1.0 / RANGE.0.sqrt(), 0.0],
            right: [1.0 / RANGE.1.sqrt(), 0.0],
            tol: &|x| 2f64.powi(-10) / x.abs().sqrt(),
            shift: 36,
        })
        .expect("rsqrt's fit is valid")
    })
}

/// The cleartext function.
pub fn spec(x: u64) -> u64 {
    approx().spec(x)
}

/// Largest distance, in ulps, between the protocol's backward and [`backward_spec`]: each of its
/// 3 product(s) is truncated locally ([`affine::fmul`](crate::mpc::affine::fmul): the floor or one
/// more), and an earlier product's extra ulp is scaled by |y| in the next.
pub const BACKWARD_ULPS: u64 = 37;

/// Cleartext backward from the forward's output y: ⌊−⌊⌊dY·y / 2^16⌋·y / 2^16⌋·y / 2^17⌋, each product's floor exact
/// (the protocol reconstructs to within [`BACKWARD_ULPS`] of it).
pub fn backward_spec(y: u64, dy: u64) -> u64 {
    let t = floor_mul(floor_mul(dy, y, 1, FRAC), y, 1, FRAC);
    floor_mul(t, y, u64::MAX, FRAC + 1)
}

/// Dealer: one forward over `shape`.
///
/// # Errors
/// Shape and key errors.
pub fn gen_forward(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    approx().deal_cmp(dealer, shape)
}

/// Dealer: one training forward over `shape`, planned for its backward ([`forward_train`]).
///
/// # Errors
/// Shape and key errors.
pub fn gen_forward_train(dealer: &mut Dealer, shape: &[usize]) -> Result<Plan> {
    approx().deal_train(dealer, shape)
}

/// Dealer: the backward of the forward planned as `plan`: 3 product(s) with its output.
///
/// # Errors
/// Shape errors.
pub fn gen_backward(dealer: &mut Dealer, plan: &Plan) -> Result<()> {
    gen_products(dealer, plan, 3)
}

/// Party: ⟨1/√x⟩.
///
/// # Errors
/// Preprocessing, channel and backend errors.
pub fn forward<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
    approx().eval_cmp(ctx, x)
}

/// Party: ⟨1/√x⟩ (the function of [`forward`]) and the output in affine form for the
/// backward, with keys from [`gen_forward_train`].
///
/// # Errors
/// As [`forward`].
pub fn forward_train<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<(Share, Saved)> {
    approx().eval_train(ctx, x)
}

/// Party: ⟨−½·dY ⊙ y³ = −½((dY ⊙ y) ⊙ y) ⊙ y⟩ from the forward's saved output: 3 rounds, 24 bytes per element (dY and
/// each intermediate opened once; the output is never opened again).
///
/// # Errors
/// As [`forward`].
pub fn backward<C: Channel>(ctx: &mut PartyCtx<C>, saved: &Saved, dy: &Share) -> Result<Share> {
    let t = saved_fmul(ctx, dy, saved, 1, FRAC)?;
    let t = saved_fmul(ctx, &t, saved, 1, FRAC)?;
    saved_fmul(ctx, &t, saved, u64::MAX, FRAC + 1)
}
