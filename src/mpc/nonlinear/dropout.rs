//! Dropout(p): the dealer samples the Bernoulli keep-mask; the same mask serves the backward.
//!
//! **Spec.** With b ∈ {0, 1} the dealer's keep bit (1 with probability 1 − p, p rounded to a
//! multiple of 2^−32) and K = enc(1/(1 − p)): y = b · ⌊(x·K + 2^15) / 2^16⌋, exact; the
//! backward is the same map on dY with the same b. Inputs |x| < 2^15·(1 − p).
//!
//! **Construction.** The dealer hands b to the parties in masked form (b̂ = b + r_b public,
//! ⟨r_b⟩ shared: [`masked::gen_value`]) with the correlation ⟨r_x ⊙ r_b⟩, so once x is masked
//! ⟨b ⊙ x⟩ is local and exact; ×K and the exact shift make the scaled output. The backward
//! reuses b̂ (kept by each party) with a correlation for dY's mask, and truncates locally
//! ([`backward_spec`]: b·⌊dY·K / 2^16⌋, or one more where b = 1; a dropped entry is exactly 0).
//!
//! **Cost per element per party:** forward 3 rounds, 16 bytes + 1 bit; backward 1 round,
//! 8 bytes (16 bytes of keys).
//! Keys: a masked value (16 bytes), masks, one product correlation (8) and a 48-bit exact shift
//! by a one-bit comparison ([`trunc_cmp`]: 16·9 + 32 + 24 bytes and 1 bit).
//!
//! **What each party learns:** nothing about b or x: b̂ and the openings are under fresh masks.
//! The dealer knows b (it chose it), as it knows every mask.

use rand::Rng;
use zeroize::Zeroize;

use super::{FRAC, PRODUCT_WIDTH, add_const, enc, gen_trunc_cmp, trunc_cmp};
use crate::mpc::error::Result;
use crate::mpc::gates::shift::ars_spec;
use crate::mpc::masked::{self, DealerMask, MaskedTensor};
use crate::mpc::{Dealer, MpcError, PartyCtx, Share};
use crate::net::Channel;
use crate::ring::RingTensor;

/// The fixed-point scale K = enc(1/(1 − p)).
pub fn scale(p: f64) -> u64 {
    enc(1.0 / (1.0 - p))
}

/// The cleartext function for keep bit `keep`.
pub fn spec(x: u64, keep: bool, p: f64) -> u64 {
    if !keep {
        return 0;
    }
    ars_spec(x.wrapping_mul(scale(p)).wrapping_add(1 << (FRAC - 1)), PRODUCT_WIDTH, FRAC)
}

/// The cleartext backward for keep bit `keep`: b·⌊dY·K / 2^16⌋ (the protocol gives this or, where
/// b = 1, one more).
pub fn backward_spec(dy: u64, keep: bool, p: f64) -> u64 {
    if keep { super::floor_mul(dy, scale(p), 1, FRAC) } else { 0 }
}

/// The dealer's plan for one dropout layer: the keep-mask (dealer-only; zeroed on drop) and
/// its masked form's mask.
pub struct Plan {
    keep: Vec<u8>,
    b: DealerMask,
    p: f64,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("dropout::Plan")
            .field("shape", &self.b.shape())
            .field("p", &self.p)
            .finish_non_exhaustive()
    }
}

impl Drop for Plan {
    fn drop(&mut self) {
        self.keep.zeroize();
    }
}

impl Plan {
    /// The keep bits (the dealer's own secret: for the dealer's checks, never sent).
    pub fn keep(&self) -> impl Iterator<Item = bool> + '_ {
        self.keep.iter().map(|&b| b == 1)
    }
}

/// What each party keeps for the backward: b in masked form.
#[derive(Debug)]
pub struct Saved {
    b: MaskedTensor,
    p: f64,
}

/// Dealer: one forward of dropout with drop probability `p` over `shape`.
///
/// # Errors
/// [`MpcError::Param`] unless 0 ≤ p < 1; shape and key errors.
pub fn gen_forward(dealer: &mut Dealer, shape: &[usize], p: f64) -> Result<Plan> {
    gen_forward_replay(dealer, shape, p, None)
}

/// Dealer: as [`gen_forward`], drawing the keep-mask from `replay` instead of the dealer's
/// CSPRNG when given — one 32-bit word per element, dropped when below p·2^32, exactly as
/// [`crate::model::bert::dropout`] draws — so that a secure run can be compared with a
/// plaintext run under the same masks. The masks are then as secret as `replay`'s seed: a
/// measurement mode, not a default.
///
/// # Errors
/// As [`gen_forward`].
pub fn gen_forward_replay(
    dealer: &mut Dealer,
    shape: &[usize],
    p: f64,
    replay: Option<&mut crate::prg::ChaCha20Rng>,
) -> Result<Plan> {
    if !(0.0..1.0).contains(&p) {
        return Err(MpcError::Param {
            op: "dropout",
            what: format!("p = {p}; it must be in [0, 1)"),
        });
    }
    let n: usize = crate::ring::check_shape("dropout", shape)?;
    let threshold = (p * 2f64.powi(32)) as u64;
    let rng = match replay {
        Some(r) => r,
        None => dealer.rng(),
    };
    let keep: Vec<u8> =
        (0..n).map(|_| u8::from(u64::from(rng.random::<u32>()) >= threshold)).collect();
    let value = RingTensor::from_vec(shape, keep.iter().map(|&b| u64::from(b)).collect())?;
    let b = masked::gen_value(dealer, &value)?;
    let x = masked::gen_mask(dealer, shape)?;
    masked::gen_mul(dealer, &x, &b)?;
    gen_trunc_cmp(dealer, shape, PRODUCT_WIDTH, FRAC)?;
    Ok(Plan { keep, b, p })
}

/// Dealer: the backward of `plan`'s forward (the same keep-mask).
///
/// # Errors
/// Shape and key errors.
pub fn gen_backward(dealer: &mut Dealer, plan: &Plan) -> Result<()> {
    let dy = masked::gen_mask(dealer, plan.b.shape())?;
    masked::gen_mul(dealer, &dy, &plan.b)
}

fn apply<C: Channel>(ctx: &mut PartyCtx<C>, b: &MaskedTensor, x: &Share, p: f64) -> Result<Share> {
    let xh = masked::mask(ctx, x)?;
    let z = masked::mul(ctx, &xh, b)?;
    let z = add_const(ctx.id, &Share::new(z.tensor().scale(scale(p))), 1 << (FRAC - 1));
    trunc_cmp(ctx, &z, PRODUCT_WIDTH, FRAC)
}

/// Party: ⟨dropout(x)⟩ with the dealer's next keep-mask, and the saved mask.
///
/// # Errors
/// Preprocessing, channel and backend errors.
pub fn forward<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share, p: f64) -> Result<(Share, Saved)> {
    let b = masked::take_value(ctx, x.shape())?;
    let y = apply(ctx, &b, x, p)?;
    Ok((y, Saved { b, p }))
}

/// Party: ⟨b ⊙ K·dY⟩ with the forward's keep-mask ([`backward_spec`]): one round, 8 bytes.
///
/// # Errors
/// As [`forward`].
pub fn backward<C: Channel>(ctx: &mut PartyCtx<C>, saved: &Saved, dy: &Share) -> Result<Share> {
    let dyh = masked::mask(ctx, dy)?;
    let z = masked::mul(ctx, &dyh, &saved.b)?;
    crate::mpc::trunc::trunc(ctx, &Share::new(z.tensor().scale(scale(saved.p))), FRAC)
}
