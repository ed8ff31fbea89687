//! GELU in its erf form, GELU(x) = x·Φ(x) = ½x(1 + erf(x/√2)), as BERT uses it; forward and
//! backward.
//!
//! **Spec.** [`Approx`] of GELU on [−5, 5) in the signed [`WIDTH`]-bit range (|x| < 128): 0
//! below −5 (|GELU(−5)| < 2^−19), the identity from 5 on (|GELU(x) − x| < 2^−19). Error
//! ≤ 2^−9 vs f64 (fitted to half of it). Backward: GELU′(x) = Φ(x) + x·φ(x), a second [`Approx`] (0 below −5, 1 from 5)
//! **on the forward's own opening of x** — the keys are bound to x's mask, so the backward
//! needs no new opening of x — then dX = dY ⊙ GELU′(x) rounded; error ≤ 2^−10 vs the f64
//! derivative for |dY| ≤ 1.
//!
//! **Cost per element per party:** forward 3 rounds, 16 bytes + 1 bit; backward 4 rounds,
//! 32 bytes + 1 bit.
//!
//! **What each party learns:** nothing (openings under fresh masks).

use std::sync::OnceLock;

use super::approx::{Approx, FitSpec};
use super::{fmul, fmul_spec, gen_fmul};
use crate::mpc::error::Result;
use crate::mpc::masked::{self, DealerMask, MaskedTensor};
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

/// The fitted GELU.
pub fn approx() -> &'static Approx {
    static A: OnceLock<Approx> = OnceLock::new();
    A.get_or_init(|| {
        Approx::fit(&FitSpec {
            name: "gelu",
            f: &gelu_f64,
            width: WIDTH,
            region: (-5.0, 5.0),
            left: [0.0, 0.0],
            right: [0.0, 1.0],
            tol: &|_| 2f64.powi(-9),
            shift: 24,
        })
        .expect("GELU's fit is valid")
    })
}

/// The fitted GELU′.
pub fn grad_approx() -> &'static Approx {
    static A: OnceLock<Approx> = OnceLock::new();
    A.get_or_init(|| {
        Approx::fit(&FitSpec {
            name: "gelu'",
            f: &gelu_grad_f64,
            width: WIDTH,
            region: (-5.0, 5.0),
            left: [0.0, 0.0],
            right: [1.0, 0.0],
            tol: &|_| 2f64.powi(-11),
            shift: 24,
        })
        .expect("GELU′'s fit is valid")
    })
}

/// The cleartext function.
pub fn spec(x: u64) -> u64 {
    approx().spec(x)
}

/// Cleartext backward from the saved input x.
pub fn backward_spec(x: u64, dy: u64) -> u64 {
    fmul_spec(dy, grad_approx().spec(x))
}

/// The dealer's plan for one GELU layer: the mask of its input, which the backward's keys are
/// bound to. Dealer-only (prints nothing secret).
#[derive(Debug)]
pub struct Plan {
    mask: DealerMask,
}

/// What a party keeps from the forward for the backward: x in masked form.
#[derive(Debug)]
pub struct Saved {
    x: MaskedTensor,
}

/// Dealer: one forward over `shape`.
///
/// # Errors
/// Shape and key errors.
pub fn gen_forward(dealer: &mut Dealer, shape: &[usize]) -> Result<Plan> {
    let mask = masked::gen_mask(dealer, shape)?;
    approx().gen_on(dealer, &mask, 0)?;
    Ok(Plan { mask })
}

/// Dealer: the backward of the forward planned as `plan`.
///
/// # Errors
/// As [`gen_forward`]; [`PreprocError::Reused`](crate::mpc::PreprocError::Reused) for a second
/// backward of one forward.
pub fn gen_backward(dealer: &mut Dealer, plan: &Plan) -> Result<()> {
    grad_approx().gen_on(dealer, &plan.mask, 1)?;
    gen_fmul(dealer, plan.mask.shape())
}

/// Party: ⟨GELU(x)⟩ and what the backward needs.
///
/// # Errors
/// Preprocessing, channel and backend errors.
pub fn forward<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<(Share, Saved)> {
    let xh = masked::mask(ctx, x)?;
    let y = approx().eval_on(ctx, &xh, 0)?;
    Ok((y, Saved { x: xh }))
}

/// Party: ⟨dY ⊙ GELU′(x)⟩.
///
/// # Errors
/// As [`forward`].
pub fn backward<C: Channel>(ctx: &mut PartyCtx<C>, saved: &Saved, dy: &Share) -> Result<Share> {
    let d = grad_approx().eval_on(ctx, &saved.x, 1)?;
    fmul(ctx, dy, &d)
}
