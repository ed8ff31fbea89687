//! ReLU, forward and backward, from one opening of x and one opened bit.
//!
//! **Spec.** max(x, 0) for x in the signed [`WIDTH`]-bit range (|x| < 128), exact; backward
//! dX = dY ⊙ [x ≥ 0], exact. The forward opens x̂ = x + r, evaluates a one-bit comparison key
//! (one AES block per level, [`gates::cmp_relu`](crate::mpc::gates::cmp_relu)) and opens the
//! masked bit d ⊕ ρ; that one key gives both ⟨relu(x)⟩ and ⟨[x ≥ 0]⟩, which the backward keeps.
//!
//! **Cost per element per party:** forward 2 rounds, 8 bytes + 1 bit; backward 1 round, 8 bytes:
//! the forward keeps the bit in its gate's affine form d = d̂ + (1 − 2d̂)·ρ
//! ([`crate::mpc::affine`]), so only dY is opened and the product is local and exact
//! (the bit is an integer: no truncation). Backward keys: dY's mask and ⟨r·ρ⟩, 16 bytes. Keys: 16·(m − 8) + 32 bytes of comparison key (288 B at m = 24) + 1 bit + 16 bytes,
//! plus the mask shares — against 1,369 B with the one-round DCF gates
//! ([`masked::gen_relu`] + [`masked::gen_drelu`], which the softmax's max tree keeps, since there
//! rounds matter more).
//!
//! **What each party learns:** nothing (openings under fresh masks; the bit under ρ).

use crate::mpc::affine::{self, Affine, DealerAffine};
use crate::mpc::error::Result;
use crate::mpc::masked;
use crate::mpc::{Dealer, PartyCtx, Share};
use crate::net::Channel;

/// Input width: the signed 24-bit range, |x| < 128.
pub const WIDTH: u32 = 24;

/// The cleartext forward.
pub fn spec(x: u64) -> u64 {
    crate::mpc::gates::relu::spec(x)
}

/// The cleartext backward.
pub fn backward_spec(x: u64, dy: u64) -> u64 {
    if (x as i64) < 0 { 0 } else { dy }
}

/// The dealer's plan for one ReLU layer: the bit's affine term (dealer-only).
#[derive(Debug)]
pub struct Plan {
    bit: DealerAffine,
}

/// What a party keeps for the backward: [x ≥ 0] in affine form.
#[derive(Debug)]
pub struct Saved {
    bit: Affine,
}

/// Dealer: one forward over `shape`.
///
/// # Errors
/// Shape and key errors.
pub fn gen_forward(dealer: &mut Dealer, shape: &[usize]) -> Result<Plan> {
    let m = masked::gen_mask(dealer, shape)?;
    Ok(Plan { bit: masked::gen_relu_cmp_saved(dealer, WIDTH, true, &m)? })
}

/// Dealer: the backward of the forward planned as `plan`.
///
/// # Errors
/// Shape errors.
pub fn gen_backward(dealer: &mut Dealer, plan: &Plan) -> Result<()> {
    affine::gen_mul(dealer, &plan.bit)
}

/// Party: ⟨max(x, 0)⟩ and the saved bit.
///
/// # Errors
/// Preprocessing, channel and backend errors.
pub fn forward<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<(Share, Saved)> {
    let xh = masked::mask(ctx, x)?;
    let (y, bit) = masked::relu_cmp_saved(ctx, &xh, WIDTH)?;
    Ok((y, Saved { bit }))
}

/// Party: ⟨dY ⊙ [x ≥ 0]⟩.
///
/// # Errors
/// As [`forward`].
pub fn backward<C: Channel>(ctx: &mut PartyCtx<C>, saved: &Saved, dy: &Share) -> Result<Share> {
    affine::mul(ctx, dy, &saved.bit)
}
