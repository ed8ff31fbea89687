//! GELU in its erf form, GELU(x) = x·Φ(x) = ½x(1 + erf(x/√2)), as BERT uses it; forward and
//! backward.
//!
//! **Spec.** Piecewise quadratics ([`Approx`]) on [−5, 5) in the signed [`WIDTH`]-bit range
//! (|x| < 128): 0 below −5 (|GELU(−5)| < 2^−19), the identity from 5 on
//! (|GELU(x) − x| < 2^−19). Error ≤ 2^−9 vs f64 (fitted to [`FIT_SHARE`](super::approx::FIT_SHARE) of it on a dense sample, checked on every input).
//!
//! **Training forward computes the derivative too.** GELU′(x) = Φ(x) + x·φ(x) depends on x
//! only, and a spline gate's comparisons do not depend on the polynomial: so the forward fits
//! GELU and GELU′ on **one** set of breakpoints ([`joint`], [`Approx::fit_joint`]: 15 pieces,
//! where GELU alone needs 11 and GELU′ alone 14; GELU′ to 2^−10) and evaluates both from one
//! [comparison-spline](crate::mpc::gates::cmp_spline) key — one comparison walk per breakpoint
//! and element, one opened bit per breakpoint; GELU′ costs no AES and no bytes there. Both
//! unshifted outputs are then masked in one message: GELU is rounded by the one-round DCF shift
//! (its share goes on to the next layer), GELU′ by the shift from one-bit comparisons, whose
//! masked bit is **not** opened in the forward ([`masked::PendingShift`]) but travels with the
//! backward's opening of dY ([`affine::mul_deferred`]). So the backward is one product,
//! dX = ⌊dY ⊙ GELU′(x) / 2^16⌋ (or one more: local truncation), from one opening, with GELU′ in
//! the gate's affine form ([`crate::mpc::affine`]); error ≤ 2^−10 vs the f64 derivative for
//! |dY| ≤ 1. [`spec`] is the training forward's function; [`inference`] evaluates GELU's own
//! 11-piece fit ([`inference_spec`]) for layers that are never differentiated (frozen ones).
//!
//! **Cost per element per party:** training forward 3 rounds, 24 bytes + 14 bits; backward
//! 1 round, 8 bytes + 1 bit (32 bytes of keys: dY's mask and three correlations); inference
//! 3 rounds, 16 bytes + 10 bits. Evaluation: 15 comparison walks of 18 AES blocks, one DCF
//! walk and one comparison walk for the two shifts, per element.
//!
//! **What each party learns:** nothing (openings under fresh masks).

use std::sync::OnceLock;

use super::approx::{Approx, FitSpec};
use super::{FRAC, floor_mul};
use crate::mpc::affine::{self, DealerAffine};
use crate::mpc::error::Result;
use crate::mpc::masked::{self, MaskedTensor};
use crate::mpc::{Dealer, PartyCtx, Share};
use crate::net::Channel;

/// Input width: the signed 24-bit range, |x| < 128.
pub const WIDTH: u32 = 24;

fn phi(x: f64) -> f64 {
    0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

/// GELU in f64 (the reference).
pub fn gelu_f64(x: f64) -> f64 {
    x * phi(x)
}

/// GELU′ in f64 (the reference).
pub fn gelu_grad_f64(x: f64) -> f64 {
    phi(x) + x * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// GELU's own fit (11 pieces), for [`inference`].
pub fn approx() -> &'static Approx {
    static A: OnceLock<Approx> = OnceLock::new();
    A.get_or_init(|| Approx::fit(&fit_spec()).expect("GELU's fit is valid"))
}

/// GELU and GELU′ on one set of breakpoints, for the training forward.
pub fn joint() -> &'static [Approx; 2] {
    static A: OnceLock<[Approx; 2]> = OnceLock::new();
    A.get_or_init(|| {
        Approx::fit_joint([&fit_spec(), &grad_fit_spec()]).expect("GELU's joint fit is valid")
    })
}

/// The fitted GELU′ of the training forward.
pub fn grad_approx() -> &'static Approx {
    &joint()[1]
}

fn fit_spec() -> FitSpec<'static> {
    FitSpec {
        name: "gelu",
        f: &gelu_f64,
        width: WIDTH,
        region: (-5.0, 5.0),
        left: [0.0, 0.0],
        right: [0.0, 1.0],
        tol: &|_| 2f64.powi(-9),
        shift: 24,
    }
}

fn grad_fit_spec() -> FitSpec<'static> {
    FitSpec {
        name: "gelu'",
        f: &gelu_grad_f64,
        width: WIDTH,
        region: (-5.0, 5.0),
        left: [0.0, 0.0],
        right: [1.0, 0.0],
        // With the backward's one local truncation this keeps dX within 2^−10 of dY·GELU′ for
        // |dY| ≤ 1 (every input's worst is under 0.9 of the tolerance); 2^−11 took 17 joint
        // pieces instead of 15.
        tol: &|_| 2f64.powi(-10),
        shift: 24,
    }
}

/// The training forward's function.
pub fn spec(x: u64) -> u64 {
    joint()[0].spec(x)
}

/// The function of [`inference`].
pub fn inference_spec(x: u64) -> u64 {
    approx().spec(x)
}

/// Cleartext backward from the saved input x: ⌊dY·GELU′(x) / 2^16⌋ (the protocol gives this or
/// one more).
pub fn backward_spec(x: u64, dy: u64) -> u64 {
    floor_mul(dy, grad_approx().spec(x), 1, FRAC)
}

/// The dealer's plan for one GELU layer: GELU′'s affine terms, which the backward's product
/// needs. Dealer-only.
#[derive(Debug)]
pub struct Plan {
    grad: DealerAffine,
}

/// What a party keeps from the forward for the backward: GELU′(x)'s exact shift, evaluated but
/// not yet opened (its masked bit travels with the backward's opening of dY).
#[derive(Debug)]
pub struct Saved {
    grad: masked::PendingShift,
}

/// Dealer: one training forward over `shape`.
///
/// # Errors
/// Shape and key errors.
pub fn gen_forward(dealer: &mut Dealer, shape: &[usize]) -> Result<Plan> {
    let [f, g] = joint();
    debug_assert_eq!((f.out_width(), f.shift()), (g.out_width(), g.shift()));
    let (w, s) = (f.out_width(), f.shift());
    let x = masked::gen_mask(dealer, shape)?;
    // One comparison-spline key serves both fits (same breakpoints).
    masked::gen_cmp_spline_tagged(dealer, f.spline(), &x, 0)?;
    // GELU's and GELU′'s unshifted outputs are masked together (one message): GELU rounded by
    // the one-round DCF shift, GELU′ by one-bit comparisons whose bit is opened later.
    let yf = masked::gen_mask(dealer, shape)?;
    let yg = masked::gen_mask(dealer, shape)?;
    masked::gen_shift(dealer, w, s, &yf)?;
    Ok(Plan { grad: masked::gen_shift_cmp_saved(dealer, w, s, &yg)? })
}

/// Dealer: the backward of the forward planned as `plan`.
///
/// # Errors
/// Shape and key errors.
pub fn gen_backward(dealer: &mut Dealer, plan: &Plan) -> Result<()> {
    affine::gen_mul(dealer, &plan.grad)
}

/// Party: ⟨GELU(x)⟩ ([`spec`]), and GELU′(x) kept for the backward. Three rounds: open x̂, open
/// the breakpoint bits, open both unshifted outputs.
///
/// # Errors
/// Preprocessing, channel and backend errors.
pub fn forward<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<(Share, Saved)> {
    let [f, g] = joint();
    let (w, s) = (f.out_width(), f.shift());
    let xh = masked::mask(ctx, x)?;
    let raw = masked::cmp_splines_tagged(ctx, &[f.spline(), g.spline()], &xh, 0)?;
    let [fh, gh] = <[MaskedTensor; 2]>::try_from(masked::mask_many(ctx, &[&raw[0], &raw[1]])?)
        .expect("two tensors masked, two returned");
    let y = masked::ars(ctx, &fh, w, s)?;
    Ok((y, Saved { grad: masked::ars_cmp_deferred(ctx, &gh, w, s)? }))
}

/// Party: ⟨dY ⊙ GELU′(x)⟩ ([`backward_spec`] or one more): one round, 8 bytes and 1 bit per
/// element (dY's opening carries GELU′'s deferred bit).
///
/// # Errors
/// As [`forward`].
pub fn backward<C: Channel>(ctx: &mut PartyCtx<C>, saved: &Saved, dy: &Share) -> Result<Share> {
    affine::fmul_deferred(ctx, dy, &saved.grad, 1, FRAC).map(|(dx, _)| dx)
}

/// Dealer: one [`inference`] over `shape`.
///
/// # Errors
/// Shape and key errors.
pub fn gen_inference(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    approx().deal_cmp(dealer, shape)
}

/// Party: ⟨GELU(x)⟩ alone ([`inference_spec`]), for a layer without a backward.
///
/// # Errors
/// As [`forward`].
pub fn inference<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
    approx().eval_cmp(ctx, x)
}
