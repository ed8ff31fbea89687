//! The reciprocal 1/x, forward and backward.
//!
//! **Spec.** [`Approx`] of 1/x on [1/16, 32) in the signed [`WIDTH`]-bit range (|x| < 128).
//! Relative error ≤ 2^−10 vs f64 on the range. Out of range, by construction: x < 1/16 —
//! including 0 and every negative x — gives 16 (the value at the range's lower end); x ≥ 32
//! gives 1/32. Backward: d(1/x)/dx = −1/x², dX = −dY ⊙ Y ⊙ Y from the saved output (two rounded
//! products).
//!
//! **Cost per element per party:** forward 3 rounds, 16 bytes + 1 bit; backward 4 rounds, 40 bytes.
//!
//! **What each party learns:** nothing (openings under fresh masks).

use std::sync::OnceLock;

use super::approx::{Approx, FitSpec};
use super::{fmul, fmul_spec, fsquare, gen_fmul, gen_fsquare};
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

/// Cleartext backward from the saved output y.
pub fn backward_spec(y: u64, dy: u64) -> u64 {
    fmul_spec(dy, fmul_spec(y, y).wrapping_neg())
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
    gen_fmul(dealer, shape)
}

/// Party: ⟨1/x⟩.
///
/// # Errors
/// Preprocessing, channel and backend errors.
pub fn forward<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
    approx().eval(ctx, x)
}

/// Party: ⟨−dY ⊙ y²⟩ from the saved output y.
///
/// # Errors
/// As [`forward`].
pub fn backward<C: Channel>(ctx: &mut PartyCtx<C>, y: &Share, dy: &Share) -> Result<Share> {
    let sq = fsquare(ctx, y)?;
    fmul(ctx, dy, &Share::new(sq.tensor().neg()))
}
