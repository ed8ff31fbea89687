//! exp(x) for x ≤ 0 (softmax's exponent), forward and backward.
//!
//! **Spec.** [`Approx`] of e^x on [−12, 0) in the signed [`WIDTH`]-bit range (|x| < 512): below
//! −12 the output is 0 (e^−12 < 2^−17), at and above 0 it saturates at 1 — so a large positive
//! input gives 1, never a wrapped value. Error ≤ 2^−12 vs f64 on [−16, 0] (the fit aims at
//! [`FIT_SHARE`](super::approx::FIT_SHARE) of it on a dense sample, so the pieces are as few as
//! that bound allows; checked on every input); inputs outside the 26-bit range are outside the contract.
//!
//! **Cost per element per party** (measured by the tests): forward 3 rounds (2 from a masked
//! input), 16 bytes and p − 1 opened bits (p pieces; the softmax evaluates its own, tighter fit
//! the same way, or on the DCF spline in 2 rounds and 16 bytes with larger keys); backward
//! dX = dY ⊙ Y from the output kept in its shift gate's affine form ([`crate::mpc::affine`]):
//! 1 round, 8 bytes (32 bytes of keys).
//!
//! **What each party learns:** nothing (openings under fresh masks).

use std::sync::OnceLock;

use super::approx::{Approx, FitSpec};
use super::{FRAC, Plan, Saved, floor_mul, gen_products, saved_fmul};
use crate::mpc::error::Result;
use crate::mpc::{Dealer, PartyCtx, Share};
use crate::net::Channel;

/// Input width: the signed 26-bit range, |x| < 512.
pub const WIDTH: u32 = 26;

/// The fitted function (the same for the dealer and both parties).
pub fn approx() -> &'static Approx {
    static A: OnceLock<Approx> = OnceLock::new();
    A.get_or_init(|| fit("exp", 2f64.powi(-12)))
}

/// e^x on [−12, 0) with this module's width, tails and shift, to the absolute tolerance `tol`
/// (the softmax fits its own, tighter one).
pub(crate) fn fit(name: &'static str, tol: f64) -> Approx {
    Approx::fit(&FitSpec {
        name,
        f: &f64::exp,
        width: WIDTH,
        region: (-12.0, 0.0),
        left: [0.0, 0.0],
        right: [1.0, 0.0],
        tol: &move |_| tol,
        shift: 24,
    })
    .expect("exp's fit is valid")
}

/// The cleartext function the parties compute.
pub fn spec(x: u64) -> u64 {
    approx().spec(x)
}

/// Largest distance, in ulps, between the protocol's backward and [`backward_spec`]: each of its
/// 1 product(s) is truncated locally ([`affine::fmul`](crate::mpc::affine::fmul): the floor or one
/// more), and an earlier product's extra ulp is scaled by |y| in the next.
pub const BACKWARD_ULPS: u64 = 1;

/// Cleartext backward from the forward's output y: ⌊dY·y / 2^16⌋, each product's floor exact
/// (the protocol reconstructs to within [`BACKWARD_ULPS`] of it).
pub fn backward_spec(y: u64, dy: u64) -> u64 {
    floor_mul(dy, y, 1, FRAC)
}

/// Dealer: material for one forward over a tensor of `shape`.
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

/// Dealer: the backward of the forward planned as `plan`: 1 product(s) with its output.
///
/// # Errors
/// Shape errors.
pub fn gen_backward(dealer: &mut Dealer, plan: &Plan) -> Result<()> {
    gen_products(dealer, plan, 1)
}

/// Party: ⟨exp(x)⟩.
///
/// # Errors
/// Preprocessing, channel and backend errors.
pub fn forward<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
    approx().eval_cmp(ctx, x)
}

/// Party: ⟨exp(x)⟩ (the function of [`forward`]) and the output in affine form for the
/// backward, with keys from [`gen_forward_train`].
///
/// # Errors
/// As [`forward`].
pub fn forward_train<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<(Share, Saved)> {
    approx().eval_train(ctx, x)
}

/// Party: ⟨dY ⊙ exp(x)⟩ from the forward's saved output: 1 round, 8 bytes per element (dY and
/// each intermediate opened once; the output is never opened again).
///
/// # Errors
/// As [`forward`].
pub fn backward<C: Channel>(ctx: &mut PartyCtx<C>, saved: &Saved, dy: &Share) -> Result<Share> {
    saved_fmul(ctx, dy, saved, 1, FRAC)
}
