//! Creating, opening and reconstructing additive shares.

use rand::{Rng, SeedableRng};

use super::error::{MpcError as Error, Result};
use crate::net::{Channel, NetError, exchange};
use crate::prg::ChaCha20Rng;
use crate::ring::RingTensor;

use super::{PartyCtx, PartyId, Share};

/// Split a secret into two uniformly random shares (x − r, r). Use a CSPRNG.
pub fn share_secret<R: Rng + ?Sized>(secret: &RingTensor, rng: &mut R) -> [Share; 2] {
    let r = RingTensor::random(secret.shape(), rng);
    let s0 = secret.sub(&r).expect("same shape");
    [Share::new(s0), Share::new(r)]
}

/// Add two shares back together (for tests and for results both parties agreed to reveal).
///
/// # Errors
/// [`Error::Shape`] when the shapes differ.
pub fn reconstruct(s0: &Share, s1: &Share) -> Result<RingTensor> {
    Ok(s0.tensor().add(s1.tensor())?)
}

/// Open ⟨x⟩ to both parties: each sends its share (8·n bytes, one round) and adds the peer's.
/// Both parties learn x.
///
/// # Errors
/// Channel errors; [`NetError::Protocol`] when the peer's share has another length.
pub fn open<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<RingTensor> {
    let n = x.tensor().len();
    let theirs = exchange(ctx.channel(), "open", x.tensor().to_le_bytes(), n * 8)?;
    let theirs = RingTensor::from_le_bytes(x.shape(), &theirs)?;
    Ok(x.tensor().add(&theirs)?)
}

/// Bytes of the seed the owner of an input sends in [`share_input`].
pub const INPUT_SEED_BYTES: usize = 32;

/// Secret-share an input that `owner` holds. The owner draws a fresh 256-bit seed from its
/// CSPRNG, sends it (32 bytes, one round), and keeps x − PRG(seed); the other party's share is
/// PRG(seed) (ChaCha20). The other party learns nothing about x (its share is pseudorandom and
/// independent of x); the owner learns nothing new.
///
/// `value` must be `Some` exactly at the owner; `shape` must agree on both sides.
///
/// # Errors
/// [`Error::Shape`] when `value` is missing at the owner or has the wrong shape, channel errors,
/// [`NetError::Protocol`] when the seed has the wrong length.
pub fn share_input<C: Channel>(
    ctx: &mut PartyCtx<C>,
    owner: PartyId,
    value: Option<&RingTensor>,
    shape: &[usize],
) -> Result<Share> {
    if ctx.id == owner {
        let value = value.ok_or_else(|| Error::Shape {
            op: "share_input (owner has no value)",
            left: shape.to_vec(),
            right: vec![],
        })?;
        if value.shape() != shape {
            return Err(Error::Shape {
                op: "share_input",
                left: shape.to_vec(),
                right: value.shape().to_vec(),
            });
        }
        let mut seed = [0u8; INPUT_SEED_BYTES];
        ctx.rng().fill(&mut seed[..]);
        let mask = RingTensor::random(shape, &mut ChaCha20Rng::from_seed(seed));
        ctx.channel().send(seed.to_vec())?;
        Ok(Share::new(value.sub(&mask)?))
    } else {
        let seed = ctx.channel().recv()?;
        let seed: [u8; INPUT_SEED_BYTES] =
            seed.as_slice().try_into().map_err(|_| NetError::Protocol {
                op: "share_input",
                expected: format!("{INPUT_SEED_BYTES}-byte seed"),
                got: format!("{} bytes", seed.len()),
            })?;
        Ok(Share::new(RingTensor::random(shape, &mut ChaCha20Rng::from_seed(seed))))
    }
}
