//! The softmax–cross-entropy gradient: ∂L/∂logits = softmax(logits) − onehot(label) per row.
//!
//! **Spec:** [`softmax::spec`] of the logits minus the one-hot rows
//! (enc(1) at the label), exact after the softmax. The labels are an additive sharing of the
//! one-hot rows (the client's input); a batch mean's 1/B is left to the caller (folded into the
//! learning rate). **Cost:** the softmax's (⌈log₂ C⌉ + 5 rounds for C classes) plus a local
//! subtraction. **What each party learns:** nothing.

use super::softmax;
use crate::mpc::error::Result;
use crate::mpc::{Dealer, PartyCtx, Share};
use crate::net::Channel;

/// The cleartext gradient for `logits` rows of `classes` and `onehot` (enc(1) at each label).
pub fn spec(logits: &[u64], onehot: &[u64], classes: usize) -> Vec<u64> {
    softmax::spec(logits, None, classes)
        .iter()
        .zip(onehot)
        .map(|(&p, &t)| p.wrapping_sub(t))
        .collect()
}

/// Dealer: one gradient over logits of `shape` ([batch, classes]).
///
/// # Errors
/// As [`softmax::gen_forward`].
pub fn gen_grad(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    softmax::gen_forward(dealer, shape)
}

/// Party: ⟨softmax(logits) − onehot⟩.
///
/// # Errors
/// As [`softmax::forward`]; a shape error when `onehot` is not shaped as `logits`.
pub fn grad<C: Channel>(ctx: &mut PartyCtx<C>, logits: &Share, onehot: &Share) -> Result<Share> {
    softmax::forward(ctx, logits, None)?.sub(onehot)
}
