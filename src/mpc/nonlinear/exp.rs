//! exp(x) for x ≤ 0 (softmax's exponent), forward and backward.
//!
//! **Spec.** [`Approx`] of e^x on [−12, 0) in the signed [`WIDTH`]-bit range (|x| < 512): below
//! −12 the output is 0 (e^−12 < 2^−17), at and above 0 it saturates at 1 — so a large positive
//! input gives 1, never a wrapped value. Error ≤ 2^−12 vs f64 on [−16, 0] (the fit aims at
//! half of it, so the pieces are as few as that bound allows); inputs outside the 26-bit range are outside the contract.
//!
//! **Cost per element per party** (measured by the tests): forward 3 rounds (2 from a masked
//! input), 16 bytes + 1 bit (inside the softmax: 2 rounds, 16 bytes, larger keys); backward dX = dY ⊙ Y ([`fmul`]): 2 rounds, 24 bytes.
//!
//! **What each party learns:** nothing (openings under fresh masks).

use std::sync::OnceLock;

use super::approx::{Approx, FitSpec};
use super::{fmul, gen_fmul};
use crate::mpc::error::Result;
use crate::mpc::{Dealer, PartyCtx, Share};
use crate::net::Channel;

/// Input width: the signed 26-bit range, |x| < 512.
pub const WIDTH: u32 = 26;

/// The fitted function (the same for the dealer and both parties).
pub fn approx() -> &'static Approx {
    static A: OnceLock<Approx> = OnceLock::new();
    A.get_or_init(|| {
        Approx::fit(&FitSpec {
            name: "exp",
            f: &f64::exp,
            width: WIDTH,
            region: (-12.0, 0.0),
            left: [0.0, 0.0],
            right: [1.0, 0.0],
            tol: &|_| 2f64.powi(-12),
            shift: 24,
        })
        .expect("exp's fit is valid")
    })
}

/// The cleartext function the parties compute.
pub fn spec(x: u64) -> u64 {
    approx().spec(x)
}

/// Cleartext backward: dY ⊙ Y rounded ([`fmul_spec`](super::fmul_spec)).
pub fn backward_spec(y: u64, dy: u64) -> u64 {
    super::fmul_spec(dy, y)
}

/// Dealer: material for one forward over a tensor of `shape`.
///
/// # Errors
/// Shape and key errors.
pub fn gen_forward(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    approx().deal(dealer, shape)
}

/// Dealer: material for one backward over a tensor of `shape`.
///
/// # Errors
/// As [`gen_forward`].
pub fn gen_backward(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    gen_fmul(dealer, shape)
}

/// Party: ⟨exp(x)⟩.
///
/// # Errors
/// Preprocessing, channel and backend errors.
pub fn forward<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
    approx().eval(ctx, x)
}

/// Party: ⟨dY ⊙ exp(x)⟩ from the saved output y.
///
/// # Errors
/// As [`forward`].
pub fn backward<C: Channel>(ctx: &mut PartyCtx<C>, y: &Share, dy: &Share) -> Result<Share> {
    fmul(ctx, dy, y)
}
