//! The logistic sigmoid σ(x) = 1 / (1 + e^−x), forward and backward.
//!
//! **Spec.** [`Approx`] of σ on [−10, 10) in the signed [`WIDTH`]-bit range (|x| < 128),
//! saturating at 0 below and 1 above (1 − σ(10) < 2^−15). Error ≤ 2^−10 vs f64 (fitted to half of it).
//! Backward: σ′ = σ(1 − σ) from the saved output: dX = dY ⊙ (Y ⊙ (1 − Y)), two rounded
//! products ([`fmul_spec`]); error ≤ 2^−10 vs the f64 derivative for |dY| ≤ 1.
//!
//! **Cost per element per party:** forward 3 rounds, 16 bytes + 1 bit; backward 4 rounds, 48 bytes.
//!
//! **What each party learns:** nothing (openings under fresh masks).

use std::sync::OnceLock;

use super::approx::{Approx, FitSpec};
use super::{FRAC, add_const, fmul, fmul_spec, gen_fmul};
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
            name: "sigmoid",
            f: &|x| 1.0 / (1.0 + (-x).exp()),
            width: WIDTH,
            region: (-10.0, 10.0),
            left: [0.0, 0.0],
            right: [1.0, 0.0],
            tol: &|_| 2f64.powi(-10),
            shift: 24,
        })
        .expect("sigmoid's fit is valid")
    })
}

/// The cleartext function.
pub fn spec(x: u64) -> u64 {
    approx().spec(x)
}

/// Cleartext backward from the saved output y.
pub fn backward_spec(y: u64, dy: u64) -> u64 {
    let one_minus = (1u64 << FRAC).wrapping_sub(y);
    fmul_spec(dy, fmul_spec(y, one_minus))
}

/// Dealer: one forward over `shape`.
///
/// # Errors
/// Shape and key errors.
pub fn gen_forward(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    approx().deal(dealer, shape)
}

/// Dealer: one backward over `shape`.
///
/// # Errors
/// As [`gen_forward`].
pub fn gen_backward(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    gen_fmul(dealer, shape)?;
    gen_fmul(dealer, shape)
}

/// Party: ⟨σ(x)⟩.
///
/// # Errors
/// Preprocessing, channel and backend errors.
pub fn forward<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
    approx().eval(ctx, x)
}

/// Party: ⟨dY ⊙ σ′(x)⟩ from the saved output y.
///
/// # Errors
/// As [`forward`].
pub fn backward<C: Channel>(ctx: &mut PartyCtx<C>, y: &Share, dy: &Share) -> Result<Share> {
    let one_minus = add_const(ctx.id, &Share::new(y.tensor().neg()), 1 << FRAC);
    let d = fmul(ctx, y, &one_minus)?;
    fmul(ctx, dy, &d)
}
