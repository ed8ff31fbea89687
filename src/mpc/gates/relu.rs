//! ReLU in one round: DReLU and the select `d·x` from one two-word (m − 1)-bit DCF.
//!
//! **Function.** `relu(x) = max(x, 0)` for `x ∈ [−2^(m−1), 2^(m−1))`, over the full Z_2^64
//! value of `x` (no truncation, no range loss).
//!
//! **Construction.** As in [`sign`](super::sign), `d = [x ≥ 0] = (1 − a) − (1 − 2a)(μ ⊕ c)` with
//! `a` public, `μ` the mask's top bit and `c = [x̂_low < r_low]` from the DCF. Since
//! `x = x̂ − r` with `x̂` public, `d·x = d·x̂ − d·r`, and
//! `d·r = (1 − a)·r − (1 − 2a)·(μ ⊕ c)·r` with `(μ ⊕ c)·r = μr + (1 − 2μ)c·r`. So the DCF
//! carries the payload `β = (1 − 2μ, (1 − 2μ)·r)` and the dealer adds shares of `μ`, `r` and
//! `μr`: every remaining term is a public value times a share. The select costs no round of
//! its own (SIGMA's ReLU takes a second round for it).
//!
//! **Privacy:** as the DCF. **Cost:** one two-word (m − 1)-bit DCF evaluation (3 AES blocks per
//! level) per element; key `16 + 32(m − 2) + 32 + 24` bytes.

use rand::Rng;

use super::reduce;
use crate::backend::Backend;
use crate::fss::KeyError;
use crate::fss::{KeyBatch, Scheme, dcf};
use crate::mpc::MpcError;
use crate::party::PartyId;
use crate::prg::ChaCha20Rng;

/// One party's ReLU keys.
/// Secret: prints its width and its key batches' public parameters only, and zeroes its share
/// vectors when dropped (the key batches zero themselves); no `Clone`.
pub struct ReluKeys {
    /// Gate width m (2..=64).
    pub(crate) width: u32,
    /// Two-word DCF on m − 1 bits.
    pub(crate) dcf: KeyBatch,
    /// Shares of μ, r and μ·r per element (interleaved, 3 words each).
    pub(crate) mask_terms: Vec<u64>,
}

impl std::fmt::Debug for ReluKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReluKeys")
            .field("width", &self.width)
            .field("dcf", &self.dcf)
            .finish_non_exhaustive()
    }
}

impl Drop for ReluKeys {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.mask_terms);
    }
}

/// The cleartext function on the ring element `x` (read as signed 64-bit).
pub fn spec(x: u64) -> u64 {
    if (x as i64) < 0 { 0 } else { x }
}

/// Dealer: ReLU keys for inputs masked by `masks` (full 64-bit masks).
///
/// # Errors
/// [`KeyError::Width`] unless 2 ≤ width ≤ 64.
pub fn keygen(width: u32, masks: &[u64], rng: &mut ChaCha20Rng) -> Result<[ReluKeys; 2], KeyError> {
    if !(2..=64).contains(&width) {
        return Err(KeyError::Width { n: width });
    }
    let low_bits = width - 1;
    let mut alphas = Vec::with_capacity(masks.len());
    let mut betas = Vec::with_capacity(2 * masks.len());
    let (mut t0, mut t1) =
        (Vec::with_capacity(3 * masks.len()), Vec::with_capacity(3 * masks.len()));
    for &r in masks {
        let rm = reduce(r, width);
        let mu = rm >> low_bits;
        let sign = 1u64.wrapping_sub(2 * mu);
        alphas.push(reduce(rm, low_bits));
        betas.extend([sign, sign.wrapping_mul(r)]);
        for secret in [mu, r, mu.wrapping_mul(r)] {
            let share: u64 = rng.random();
            t0.push(share);
            t1.push(secret.wrapping_sub(share));
        }
    }
    let [k0, k1] = dcf::keygen_words(low_bits, 2, &alphas, &betas, rng)?;
    Ok([ReluKeys { width, dcf: k0, mask_terms: t0 }, ReluKeys { width, dcf: k1, mask_terms: t1 }])
}

/// Party: shares of `relu(x)` for each masked input `x̂ = x + r`.
///
/// # Errors
/// [`KeyError::BatchLength`] / [`KeyError::Mismatch`] for mismatched inputs or keys.
pub fn relu(
    backend: &dyn Backend,
    keys: &ReluKeys,
    masked: &[u64],
    out: &mut [u64],
) -> Result<(), MpcError> {
    let (m, party) = (keys.width, keys.dcf.party());
    keys.dcf.expect(Scheme::Dcf, party, m - 1)?;
    if keys.dcf.words() != 2
        || keys.mask_terms.len() != 3 * masked.len()
        || out.len() != masked.len()
    {
        return Err(KeyError::BatchLength {
            what: "masked inputs",
            expected: keys.dcf.len(),
            found: masked.len(),
        }
        .into());
    }
    let lows: Vec<u64> = masked.iter().map(|&x| reduce(x, m - 1)).collect();
    let mut y = vec![0u64; 2 * masked.len()];
    backend.eval_fss(&keys.dcf, &lows, &mut y)?;
    let p0 = party == PartyId::P0;
    for (k, (o, &xh)) in out.iter_mut().zip(masked).enumerate() {
        let a = reduce(xh, m) >> (m - 1);
        let flip = |v: u64| if a == 1 { v.wrapping_neg() } else { v }; // (1 − 2a)·v
        let (mu, r, mu_r) =
            (keys.mask_terms[3 * k], keys.mask_terms[3 * k + 1], keys.mask_terms[3 * k + 2]);
        let mu_xor_c = mu.wrapping_add(y[2 * k]);
        let mu_xor_c_r = mu_r.wrapping_add(y[2 * k + 1]);
        let d =
            if p0 { (1 - a).wrapping_sub(flip(mu_xor_c)) } else { flip(mu_xor_c).wrapping_neg() };
        let d_r = (1 - a).wrapping_mul(r).wrapping_sub(flip(mu_xor_c_r));
        *o = d.wrapping_mul(xh).wrapping_sub(d_r);
    }
    Ok(())
}
