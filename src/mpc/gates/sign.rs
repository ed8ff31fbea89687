//! Sign, DReLU and less-than a public constant with one (m − 1)-bit DCF evaluation.
//!
//! **Function.** For `x ∈ [−2^(m−1), 2^(m−1))`: `msb(x) = [x < 0]`, `drelu(x) = [x ≥ 0]`,
//! `less_than(x, c) = [x < c]` (needs `x − c` in the same range).
//!
//! **Construction** (as SIGMA's DReLU). With `N = 2^m`, `x̂ = x + r mod N`, split off the top
//! bits: `x̂ = a·2^(m−1) + x̂_low`, `r = μ·2^(m−1) + r_low`. Subtracting, the borrow out of the
//! low bits is `c = [x̂_low < r_low]`, so `msb(x) = a ⊕ μ ⊕ c`. The dealer gives a DCF on m − 1
//! bits with `α = r_low` and payload `β = 1 − 2μ`, whose outputs share `(1 − 2μ)·c`, plus shares
//! of `μ`; their sum shares `μ ⊕ c = μ + (1 − 2μ)c`, and `msb = a + (1 − 2a)(μ ⊕ c)` is linear
//! in it because `a` is public.
//!
//! **Privacy.** A party sees `x̂` (uniform, as `r` is) and its key (pseudorandom): nothing about
//! `x`. **Cost:** one evaluation of an (m − 1)-bit DCF per element; no communication beyond the
//! opening of `x̂`.

use super::reduce;
use crate::backend::Backend;
use crate::fss::KeyError;
use crate::fss::{KeyBatch, Scheme, dcf};
use crate::mpc::MpcError;
use crate::party::PartyId;
use crate::prg::ChaCha20Rng;
use rand::Rng;

/// One party's keys for a batch of sign gates.
/// Secret: prints its width and its key batches' public parameters only, and zeroes its share
/// vectors when dropped (the key batches zero themselves); no `Clone`.
pub struct SignKeys {
    /// Gate width m (2..=64).
    pub(crate) width: u32,
    /// DCF keys on m − 1 bits.
    pub(crate) dcf: KeyBatch,
    /// Additive shares of μ = the top bit of the mask (mod 2^m).
    pub(crate) mask_msb: Vec<u64>,
}

impl std::fmt::Debug for SignKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignKeys")
            .field("width", &self.width)
            .field("dcf", &self.dcf)
            .finish_non_exhaustive()
    }
}

impl Drop for SignKeys {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.mask_msb);
    }
}

/// The cleartext function: `[x < 0]` for `x` read as a signed m-bit value.
pub fn msb_spec(x: u64, width: u32) -> u64 {
    (super::signed_in(reduce(x, width), width) < 0) as u64
}

fn check_width(width: u32) -> Result<(), KeyError> {
    if (2..=64).contains(&width) { Ok(()) } else { Err(KeyError::Width { n: width }) }
}

/// Dealer: sign-gate keys for inputs masked by `masks` (the full 64-bit masks r).
///
/// # Errors
/// [`KeyError::Width`] unless 2 ≤ width ≤ 64.
pub fn keygen(width: u32, masks: &[u64], rng: &mut ChaCha20Rng) -> Result<[SignKeys; 2], KeyError> {
    check_width(width)?;
    let low_bits = width - 1;
    let mut alphas = Vec::with_capacity(masks.len());
    let mut betas = Vec::with_capacity(masks.len());
    let (mut mu0, mut mu1) = (Vec::with_capacity(masks.len()), Vec::with_capacity(masks.len()));
    for &r in masks {
        let r = reduce(r, width);
        let mu = r >> low_bits;
        alphas.push(reduce(r, low_bits));
        betas.push(1u64.wrapping_sub(2 * mu));
        let share: u64 = rng.random();
        mu0.push(share);
        mu1.push(mu.wrapping_sub(share));
    }
    let [k0, k1] = dcf::keygen(low_bits, &alphas, &betas, rng)?;
    Ok([SignKeys { width, dcf: k0, mask_msb: mu0 }, SignKeys { width, dcf: k1, mask_msb: mu1 }])
}

/// Party: shares of `[x < 0]` for each masked input `x̂`.
///
/// # Errors
/// [`KeyError::BatchLength`] on length mismatches, [`KeyError::Mismatch`] for wrong keys.
pub fn msb(
    backend: &dyn Backend,
    keys: &SignKeys,
    masked: &[u64],
    out: &mut [u64],
) -> Result<(), MpcError> {
    msb_shifted(backend, keys, masked, 0, out)
}

/// Party: shares of `[x ≥ 0]` (DReLU).
///
/// # Errors
/// As [`msb`].
pub fn drelu(
    backend: &dyn Backend,
    keys: &SignKeys,
    masked: &[u64],
    out: &mut [u64],
) -> Result<(), MpcError> {
    msb(backend, keys, masked, out)?;
    let party = keys.dcf.party();
    for y in out.iter_mut() {
        // 1 − msb: P0 adds the public 1.
        *y = if party == PartyId::P0 { 1u64.wrapping_sub(*y) } else { y.wrapping_neg() };
    }
    Ok(())
}

/// Party: shares of `[x < c]` for a public constant `c` (requires `x − c` in the m-bit signed
/// range).
///
/// # Errors
/// As [`msb`].
pub fn less_than(
    backend: &dyn Backend,
    keys: &SignKeys,
    masked: &[u64],
    c: u64,
    out: &mut [u64],
) -> Result<(), MpcError> {
    msb_shifted(backend, keys, masked, c, out)
}

fn msb_shifted(
    backend: &dyn Backend,
    keys: &SignKeys,
    masked: &[u64],
    c: u64,
    out: &mut [u64],
) -> Result<(), MpcError> {
    let width = keys.width;
    check_width(width)?;
    keys.dcf.expect(Scheme::Dcf, keys.dcf.party(), width - 1)?;
    if keys.mask_msb.len() != masked.len() {
        return Err(KeyError::BatchLength {
            what: "masked inputs",
            expected: keys.mask_msb.len(),
            found: masked.len(),
        }
        .into());
    }
    let low_bits = width - 1;
    let shifted: Vec<u64> = masked.iter().map(|&x| reduce(x.wrapping_sub(c), width)).collect();
    let lows: Vec<u64> = shifted.iter().map(|&x| reduce(x, low_bits)).collect();
    backend.eval_fss(&keys.dcf, &lows, out)?;
    let p0 = keys.dcf.party() == PartyId::P0;
    for ((y, &x), &mu) in out.iter_mut().zip(&shifted).zip(&keys.mask_msb) {
        let a = x >> low_bits;
        let mu_xor_c = mu.wrapping_add(*y);
        let scaled = if a == 1 { mu_xor_c.wrapping_neg() } else { mu_xor_c };
        *y = if p0 { scaled.wrapping_add(a) } else { scaled };
    }
    Ok(())
}
