//! tanh, forward and backward.
//!
//! **Spec.** [`Approx`] of tanh on [−6, 6) in the signed [`WIDTH`]-bit range (|x| < 128),
//! saturating at ∓1 outside (1 − tanh 6 < 2^−15). Error ≤ 2^−10 vs f64 (fitted to half of it).
//! Backward: tanh′ = 1 − tanh² from the saved output: dX = dY ⊙ (1 − Y ⊙ Y), two rounded
//! products; error ≤ 2^−10 vs the f64 derivative for |dY| ≤ 1.
//!
//! **Cost per element per party:** forward 3 rounds, 16 bytes + 1 bit; backward 4 rounds, 40 bytes
//! (the square opens Y once).
//!
//! **What each party learns:** nothing (openings under fresh masks).

use std::sync::OnceLock;

use super::approx::{Approx, FitSpec};
use super::{FRAC, add_const, fmul, fmul_spec, fsquare, gen_fmul, gen_fsquare};
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

/// Cleartext backward from the saved output y.
pub fn backward_spec(y: u64, dy: u64) -> u64 {
    fmul_spec(dy, (1u64 << FRAC).wrapping_sub(fmul_spec(y, y)))
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

/// Party: ⟨tanh(x)⟩.
///
/// # Errors
/// Preprocessing, channel and backend errors.
pub fn forward<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
    approx().eval(ctx, x)
}

/// Party: ⟨dY ⊙ (1 − y²)⟩ from the saved output y.
///
/// # Errors
/// As [`forward`].
pub fn backward<C: Channel>(ctx: &mut PartyCtx<C>, y: &Share, dy: &Share) -> Result<Share> {
    let sq = fsquare(ctx, y)?;
    let d = add_const(ctx.id, &Share::new(sq.tensor().neg()), 1 << FRAC);
    fmul(ctx, dy, &d)
}
