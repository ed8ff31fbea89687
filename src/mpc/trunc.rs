//! Local probabilistic truncation (SecureML, Mohassel–Zhang S&P'17).
//!
//! Each party shifts its own share, no communication: P0 computes ⌊x0 / 2^f⌋ and P1 computes
//! −⌊−x1 / 2^f⌋ (shares read as unsigned). **Error bound**: if the secret satisfies
//! |x| < 2^ℓ, then with probability at least 1 − 2^(ℓ+1−64) over the (uniform) sharing the
//! result reconstructs to ⌊x / 2^f⌋ or ⌊x / 2^f⌋ + 1, i.e. within one unit of the last place of
//! the exact arithmetic shift. Otherwise (probability ≤ 2^(ℓ+1−64), e.g. 2^−21 for ℓ = 42) the
//! result is off by about 2^(64−f): callers must keep |x| small; the fixed-point range checks
//! and [`FixedPoint`](crate::ring::FixedPoint) docs give the budget. The FSS faithful
//! truncation (exact, one round) comes with the FSS gates.
//!
//! Cost: 0 rounds, 0 bytes, no preprocessing.

use super::error::Result;
use super::{PartyCtx, PartyId, Share};
use crate::net::Channel;
use crate::ring::RingTensor;

/// One party's half of local truncation by `bits` (see the module docs for the error bound).
pub fn trunc_local(party: PartyId, x: &Share, bits: u32) -> Share {
    Share::new(x.tensor().map(|v| crate::backend::trunc_share(party, v, bits)))
}

/// [`trunc_local`] on the party's backend (the same bits on every backend).
///
/// # Errors
/// Backend errors (`bits` ≥ 64, device failures).
pub fn trunc<C: Channel>(ctx: &PartyCtx<C>, x: &Share, bits: u32) -> Result<Share> {
    let mut out = vec![0; x.tensor().len()];
    ctx.backend().trunc_shares(ctx.id, bits, x.tensor().as_slice(), &mut out)?;
    Ok(Share::new(RingTensor::from_vec(x.shape(), out)?))
}
