//! tanh, forward and backward.
//!
//! **Spec.** [`Approx`] of tanh on [−6, 6) in the signed [`WIDTH`]-bit range (|x| < 128),
//! saturating at ∓1 outside (1 − tanh 6 < 2^−15). Error ≤ 2^−10 vs f64 (fitted to [`FIT_SHARE`](super::approx::FIT_SHARE) of it on a dense sample, checked on every input).
//! Backward: tanh′ = 1 − tanh² from the saved output: dX = dY − (dY ⊙ Y) ⊙ Y, two products with
//! the output kept in its shift gate's affine form ([`crate::mpc::affine`]), each truncated
//! locally ([`backward_spec`], within [`BACKWARD_ULPS`]); error ≤ 2^−9 vs the f64 derivative
//! for |dY| ≤ 1 (the forward's error δ ≤ 2^−10 moves 1 − y² by up to 2|y|δ + δ²).
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

/// The fitted function.
pub fn approx() -> &'static Approx {
    static A: OnceLock<Approx> = OnceLock::new();
    A.get_or_init(|| {
        Approx::fit(&FitSpec {
            name: "tanh",
            f: &f64::tanh,
            width: WIDTH,
            region: (-6.0, 6.0),
            left: [-1.0, 0.0],
            right: [1.0, 0.0],
            tol: &|_| 2f64.powi(-10),
            shift: 24,
        })
        .expect("tanh's fit is valid")
    })
}

/// The cleartext function.
pub fn spec(x: u64) -> u64 {
    approx().spec(x)
}

/// Largest distance, in ulps, between the protocol's backward and [`backward_spec`]: each of its
/// 2 product(s) is truncated locally ([`affine::fmul`](crate::mpc::affine::fmul): the floor or one
/// more), and an earlier product's extra ulp is scaled by |y| in the next.
pub const BACKWARD_ULPS: u64 = 2;

/// Cleartext backward from the forward's output y: dY − ⌊⌊dY·y / 2^16⌋·y / 2^16⌋, each product's floor exact
/// (the protocol reconstructs to within [`BACKWARD_ULPS`] of it).
pub fn backward_spec(y: u64, dy: u64) -> u64 {
    dy.wrapping_sub(floor_mul(floor_mul(dy, y, 1, FRAC), y, 1, FRAC))
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

/// Party: ⟨tanh(x)⟩.
///
/// # Errors
/// Preprocessing, channel and backend errors.
pub fn forward<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
    approx().eval_cmp(ctx, x)
}

/// Party: ⟨tanh(x)⟩ (the function of [`forward`]) and the output in affine form for the
/// backward, with keys from [`gen_forward_train`].
///
/// # Errors
/// As [`forward`].
pub fn forward_train<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<(Share, Saved)> {
    approx().eval_train(ctx, x)
}

/// Party: ⟨dY ⊙ (1 − y²) = dY − (dY ⊙ y) ⊙ y⟩ from the forward's saved output: 2 rounds, 16 bytes per element (dY and
/// each intermediate opened once; the output is never opened again).
///
/// # Errors
/// As [`forward`].
pub fn backward<C: Channel>(ctx: &mut PartyCtx<C>, saved: &Saved, dy: &Share) -> Result<Share> {
    let t = saved_fmul(ctx, dy, saved, 1, FRAC)?;
    let u = saved_fmul(ctx, &t, saved, 1, FRAC)?;
    dy.sub(&u)
}
