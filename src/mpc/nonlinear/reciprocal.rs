//! The reciprocal 1/x, forward and backward.
//!
//! **Spec.** [`Approx`] of 1/x on [1/16, 32) in the signed [`WIDTH`]-bit range (|x| < 128).
//! Relative error ≤ 2^−10 vs f64 on the range. Out of range, by construction: x < 1/16 —
//! including 0 and every negative x — gives 16 (the value at the range's lower end); x ≥ 32
//! gives 1/32. Backward: d(1/x)/dx = −1/x², dX = −(dY ⊙ Y) ⊙ Y from the output kept in its shift gate's
//! affine form ([`crate::mpc::affine`]): two products, each truncated locally ([`backward_spec`],
//! within [`BACKWARD_ULPS`]).
//!
//! **Cost per element per party:** forward 3 rounds, 16 bytes + 1 bit; backward 2 rounds, 16 bytes
//! (64 bytes of keys).
//!
//! **What each party learns:** nothing (openings under fresh masks).

use std::sync::OnceLock;

use super::approx::{Approx, FitSpec};
use super::{FRAC, Plan, Saved, floor_mul, gen_products, saved_fmul};
use crate::mpc::error::Result;
use crate::mpc::{Dealer, PartyCtx, Share};
use crate::net::Channel;

/// Input width: the signed 24-bit range, |x| < 128.
pub const WIDTH: u32 = 24;
/// The range where the relative bound holds.
pub const RANGE: (f64, f64) = (1.0 / 16.0, 32.0);

/// The fitted function.
pub fn approx() -> &'static Approx {
    static A: OnceLock<Approx> = OnceLock::new();
    A.get_or_init(|| {
        Approx::fit(&FitSpec {
            name: "reciprocal",
            f: &|x| 1.0 / x,
            width: WIDTH,
            region: RANGE,
            left: [1.0 / RANGE.0, 0.0],
            right: [1.0 / RANGE.1, 0.0],
            tol: &|x| 2f64.powi(-10) / x.abs(),
            shift: 32,
        })
        .expect("the reciprocal's fit is valid")
    })
}

/// The cleartext function.
pub fn spec(x: u64) -> u64 {
    approx().spec(x)
}

/// Largest distance, in ulps, between the protocol's backward and [`backward_spec`]: each of its
/// 2 product(s) is truncated locally ([`affine::fmul`](crate::mpc::affine::fmul): the floor or one
/// more), and an earlier product's extra ulp is scaled by |y| in the next.
pub const BACKWARD_ULPS: u64 = 17;

/// Cleartext backward from the forward's output y: ⌊−⌊dY·y / 2^16⌋·y / 2^16⌋, each product's floor exact
/// (the protocol reconstructs to within [`BACKWARD_ULPS`] of it).
pub fn backward_spec(y: u64, dy: u64) -> u64 {
    floor_mul(floor_mul(dy, y, 1, FRAC), y, u64::MAX, FRAC)
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

/// Dealer: the backward of the forward planned as `plan`: 2 product(s) with its output.
///
/// # Errors
/// Shape errors.
pub fn gen_backward(dealer: &mut Dealer, plan: &Plan) -> Result<()> {
    gen_products(dealer, plan, 2)
}

/// Party: ⟨1/x⟩.
///
/// # Errors
/// Preprocessing, channel and backend errors.
pub fn forward<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
    approx().eval_cmp(ctx, x)
}

/// Party: ⟨1/x⟩ (the function of [`forward`]) and the output in affine form for the
/// backward, with keys from [`gen_forward_train`].
///
/// # Errors
/// As [`forward`].
pub fn forward_train<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<(Share, Saved)> {
    approx().eval_train(ctx, x)
}

/// Party: ⟨−dY ⊙ y² = −(dY ⊙ y) ⊙ y⟩ from the forward's saved output: 2 rounds, 16 bytes per element (dY and
/// each intermediate opened once; the output is never opened again).
///
/// # Errors
/// As [`forward`].
pub fn backward<C: Channel>(ctx: &mut PartyCtx<C>, saved: &Saved, dy: &Share) -> Result<Share> {
    let t = saved_fmul(ctx, dy, saved, 1, FRAC)?;
    saved_fmul(ctx, &t, saved, u64::MAX, FRAC)
}
