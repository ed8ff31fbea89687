//! The inverse square root 1/√x (layer norm's), forward and backward.
//!
//! **Spec.** [`Approx`] of x^(−1/2) on [2^−6, 2^8) in the signed [`WIDTH`]-bit range
//! (|x| < 2^11). Relative error ≤ 2^−10 vs f64 on the range. Out of range: x < 2^−6 — including
//! 0 and negative x — gives 8; x ≥ 2^8 gives 1/16. Backward: d(x^(−1/2))/dx = −½·y³, so
//! dX = dY ⊙ ⌊−y·y²/2⌉ from the saved output (three rounded products).
//!
//! **Cost per element per party:** forward 3 rounds, 16 bytes + 1 bit; backward 6 rounds, 64 bytes.
//!
//! **What each party learns:** nothing (openings under fresh masks).

use std::sync::OnceLock;

use super::approx::{Approx, FitSpec};
use super::{fmul, fmul_by, fmul_by_spec, fmul_spec, fsquare, gen_fmul, gen_fmul_by, gen_fsquare};
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

/// Cleartext backward from the saved output y: dY ⊙ (−½·y·y²), each product rounded.
pub fn backward_spec(y: u64, dy: u64) -> u64 {
    let h = fmul_by_spec(y, fmul_spec(y, y), u64::MAX, super::FRAC + 1);
    fmul_spec(dy, h)
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
    gen_fsquare(dealer, shape)?;
    gen_fmul_by(dealer, shape, super::FRAC + 1)?;
    gen_fmul(dealer, shape)
}

/// Party: ⟨1/√x⟩.
///
/// # Errors
/// Preprocessing, channel and backend errors.
pub fn forward<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
    approx().eval(ctx, x)
}

/// Party: ⟨dY ⊙ (−½ y³)⟩ from the saved output y; the −½ is folded into the second
/// product's exact shift ([`fmul_by`] with c = −1, s = 17).
///
/// # Errors
/// As [`forward`].
pub fn backward<C: Channel>(ctx: &mut PartyCtx<C>, y: &Share, dy: &Share) -> Result<Share> {
    let sq = fsquare(ctx, y)?;
    let h = fmul_by(ctx, y, &sq, u64::MAX, super::FRAC + 1)?;
    fmul(ctx, dy, &h)
}
