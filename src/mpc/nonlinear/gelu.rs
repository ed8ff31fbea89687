//! GELU in its erf form, GELU(x) = x·Φ(x) = ½x(1 + erf(x/√2)), as BERT uses it; forward and
//! backward.
//!
//! **Spec.** Piecewise quadratics ([`Approx`]) on [−5, 5) in the signed [`WIDTH`]-bit range
//! (|x| < 128): 0 below −5 (|GELU(−5)| < 2^−19), the identity from 5 on
//! (|GELU(x) − x| < 2^−19). Error ≤ 2^−9 vs f64 (fitted to half of it).
//!
//! **Training forward computes the derivative too.** GELU′(x) = Φ(x) + x·φ(x) depends on x
//! only, and a spline gate's DCF evaluations do not depend on the polynomial: so the forward
//! fits GELU and GELU′ on **one** set of breakpoints ([`joint`], [`Approx::fit_joint`]: 20
//! pieces, where GELU alone needs 12 and GELU′ alone 21) and evaluates both from one key —
//! GELU′ costs no AES — then rounds both with one shift gate. The forward keeps GELU′(x) in the
//! gate's affine form ([`crate::mpc::affine`]) and the backward is one product,
//! dX = ⌊dY ⊙ GELU′(x) / 2^16⌋ (or one more: local truncation), from one opening of dY; error
//! ≤ 2^−10 vs the f64 derivative for |dY| ≤ 1. A separate backward spline (as this module had) would cost a
//! second key of about the same size and 21 more DCF evaluations per element.
//! [`spec`] is the training forward's function; [`inference`] evaluates GELU's own 12-piece fit
//! ([`inference_spec`]) for layers that are never differentiated (frozen ones).
//!
//! **Cost per element per party:** training forward 3 rounds, 24 bytes + 2 bits; backward
//! 1 round, 8 bytes (32 bytes of keys: dY's mask and three correlations); inference 3 rounds,
//! 16 bytes + 1 bit.
//!
//! **What each party learns:** nothing (openings under fresh masks).

use std::sync::OnceLock;

use super::approx::{Approx, FitSpec};
use super::{FRAC, floor_mul, gen_trunc_cmp_saved, trunc_cmp_saved};
use crate::mpc::affine::{self, Affine, DealerAffine};
use crate::mpc::error::Result;
use crate::mpc::masked;
use crate::mpc::{Dealer, PartyCtx, Share};
use crate::net::Channel;
use crate::ring::RingTensor;

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

/// GELU's own fit (12 pieces), for [`inference`].
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
        tol: &|_| 2f64.powi(-11),
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

/// What a party keeps from the forward for the backward: GELU′(x) in affine form.
#[derive(Debug)]
pub struct Saved {
    grad: Affine,
}

/// Dealer: one training forward over `shape`.
///
/// # Errors
/// Shape and key errors.
pub fn gen_forward(dealer: &mut Dealer, shape: &[usize]) -> Result<Plan> {
    let [f, g] = joint();
    let mask = masked::gen_mask(dealer, shape)?;
    f.gen_raw_on(dealer, &mask, 0)?;
    let both = gen_trunc_cmp_saved(dealer, &stacked(shape), f.out_width(), f.shift())?;
    debug_assert_eq!((f.out_width(), f.shift()), (g.out_width(), g.shift()));
    let n = shape.iter().product();
    Ok(Plan { grad: both.slice(n, shape)? })
}

/// `[2, shape…]`: GELU's and GELU′'s outputs stacked.
fn stacked(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![2];
    s.extend_from_slice(shape);
    s
}

/// Dealer: the backward of the forward planned as `plan`.
///
/// # Errors
/// Shape and key errors.
pub fn gen_backward(dealer: &mut Dealer, plan: &Plan) -> Result<()> {
    affine::gen_mul(dealer, &plan.grad)
}

/// Party: ⟨GELU(x)⟩ and ⟨GELU′(x)⟩ for the backward.
///
/// # Errors
/// Preprocessing, channel and backend errors.
pub fn forward<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<(Share, Saved)> {
    let [f, g] = joint();
    let xh = masked::mask(ctx, x)?;
    // GELU and GELU′ stacked, rounded by one shift gate.
    let raw = masked::splines_tagged(ctx, &[f.spline(), g.spline()], &xh, 0)?;
    let both = trunc_cmp_saved(ctx, &raw, f.out_width(), f.shift())?;
    let n = x.tensor().len();
    let y = both.share().tensor().as_slice()[..n].to_vec();
    let y = Share::new(RingTensor::from_vec(x.shape(), y)?);
    Ok((y, Saved { grad: both.slice(n, x.shape())? }))
}

/// Party: ⟨dY ⊙ GELU′(x)⟩ ([`backward_spec`] or one more): one round, 8 bytes per element.
///
/// # Errors
/// As [`forward`].
pub fn backward<C: Channel>(ctx: &mut PartyCtx<C>, saved: &Saved, dy: &Share) -> Result<Share> {
    affine::fmul(ctx, dy, &saved.grad, 1, FRAC)
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
