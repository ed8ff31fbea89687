//! Lookup table `T[x]` on a b-bit index with one DPF and full-domain evaluation.
//!
//! **Function.** For a public table `T` of `2^b` ring elements and a secret index
//! `x ∈ [0, 2^b)`: shares of `T[x]`.
//!
//! **Construction.** The dealer gives a DPF with `α = r mod 2^b`, `β = 1`. Each party expands
//! it over the whole domain, getting shares `e_b(j)` of the one-hot vector `[j = r]`, and
//! computes `Σ_j T[(x̂ − j) mod 2^b] · e_b(j)`, which reconstructs to `T[x̂ − r] = T[x]`.
//!
//! **Why DPF eval-all and not one-hot keys (measured).** A one-hot share vector from the dealer
//! ([`onehot_keygen`]) costs `8·2^b` key bytes per element; the DPF key is `16·b + 16` bytes,
//! and expanding it costs about `1.5·2^b` AES blocks. `prifft bench fss` on the 2-core
//! development machine (4,096 elements, both threads): b = 8 — DPF 144 B of key, 41 ns to deal,
//! 1,326 ns to evaluate; one-hot 2,048 B, 1,087 ns, 119 ns. b = 12 — DPF 208 B, 24.6 µs;
//! one-hot 32 KiB, 3.0 µs. One-hot evaluates ~10× faster but ships 14–160× more key material,
//! and moving 2 KiB at 1 Gbit/s alone takes 16 µs — key transfer and storage, not AES, are what
//! limit (docs/protocols.md, "Lookup tables"), so the DPF is the gate; the one-hot variant stays for the measurement.
//!
//! **Privacy:** as the DPF. **Cost:** one b-bit DPF key and `2^b` multiply-adds per element.

use super::reduce;
use crate::backend::Backend;
use crate::fss::KeyError;
use crate::fss::{KeyBatch, Scheme, dpf};
use crate::mpc::MpcError;
use crate::prg::ChaCha20Rng;

/// One party's keys for a batch of lookups with a b-bit index.
/// Secret: prints its width and its key batches' public parameters only, and zeroes its share
/// vectors when dropped (the key batches zero themselves); no `Clone`.
pub struct LutKeys {
    /// Index width b.
    pub(crate) index_bits: u32,
    /// DPF keys on b bits with α = r mod 2^b.
    pub(crate) dpf: KeyBatch,
}

impl std::fmt::Debug for LutKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LutKeys")
            .field("index_bits", &self.index_bits)
            .field("dpf", &self.dpf)
            .finish_non_exhaustive()
    }
}

/// Dealer: lookup keys for indices masked by `masks`.
///
/// # Errors
/// [`KeyError::Width`] unless 1 ≤ b ≤ [`dpf::MAX_EVAL_ALL_BITS`].
pub fn keygen(
    index_bits: u32,
    masks: &[u64],
    rng: &mut ChaCha20Rng,
) -> Result<[LutKeys; 2], KeyError> {
    if !(1..=dpf::MAX_EVAL_ALL_BITS).contains(&index_bits) {
        return Err(KeyError::Width { n: index_bits });
    }
    let alphas: Vec<u64> = masks.iter().map(|&r| reduce(r, index_bits)).collect();
    let [k0, k1] = dpf::keygen(index_bits, &alphas, &vec![1; masks.len()], rng)?;
    Ok([LutKeys { index_bits, dpf: k0 }, LutKeys { index_bits, dpf: k1 }])
}

/// Party: shares of `table[x]` for each masked index `x̂` (only `x̂ mod 2^b` is used).
///
/// # Errors
/// [`KeyError::BatchLength`] when the table is not `2^b` long or the batch lengths differ;
/// [`KeyError::Mismatch`] for wrong keys.
pub fn lookup(
    backend: &dyn Backend,
    keys: &LutKeys,
    table: &[u64],
    masked: &[u64],
    out: &mut [u64],
) -> Result<(), MpcError> {
    keys.dpf.expect(Scheme::Dpf, keys.dpf.party(), keys.index_bits)?;
    Ok(backend.lut(&keys.dpf, table, masked, out)?)
}

/// The alternative the module docs weigh against: the dealer ships each party its additive
/// share of the one-hot vector `[j = r mod 2^b]` directly (`2^b` words per element, no
/// expansion). Kept for the measurement in `prifft bench fss`.
/// Secret: prints its index width only and zeroes its shares when dropped.
pub struct OneHotKeys {
    /// Index width b.
    pub(crate) index_bits: u32,
    /// `2^b` share words per element, element-major.
    pub(crate) shares: Vec<u64>,
}

impl std::fmt::Debug for OneHotKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneHotKeys").field("index_bits", &self.index_bits).finish_non_exhaustive()
    }
}

impl Drop for OneHotKeys {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.shares);
    }
}

/// Dealer: one-hot lookup keys for indices masked by `masks`.
///
/// # Errors
/// [`KeyError::Width`] unless 1 ≤ b ≤ [`dpf::MAX_EVAL_ALL_BITS`].
pub fn onehot_keygen(
    index_bits: u32,
    masks: &[u64],
    rng: &mut ChaCha20Rng,
) -> Result<[OneHotKeys; 2], KeyError> {
    use rand::Rng;
    if !(1..=dpf::MAX_EVAL_ALL_BITS).contains(&index_bits) {
        return Err(KeyError::Width { n: index_bits });
    }
    let domain = 1usize << index_bits;
    let mut s0 = vec![0u64; domain * masks.len()];
    rng.fill(&mut s0[..]);
    let mut s1: Vec<u64> = s0.iter().map(|v| v.wrapping_neg()).collect();
    for (k, &r) in masks.iter().enumerate() {
        let j = k * domain + reduce(r, index_bits) as usize;
        s1[j] = s1[j].wrapping_add(1);
    }
    Ok([OneHotKeys { index_bits, shares: s0 }, OneHotKeys { index_bits, shares: s1 }])
}

/// Party: shares of `table[x]` from one-hot keys.
///
/// # Errors
/// [`KeyError::BatchLength`] for mismatched lengths.
pub fn onehot_lookup(
    keys: &OneHotKeys,
    table: &[u64],
    masked: &[u64],
    out: &mut [u64],
) -> Result<(), KeyError> {
    let b = keys.index_bits;
    let domain = 1usize << b;
    if table.len() != domain
        || keys.shares.len() != domain * masked.len()
        || out.len() != masked.len()
    {
        return Err(KeyError::BatchLength {
            what: "one-hot lookup",
            expected: keys.shares.len() / domain,
            found: masked.len(),
        });
    }
    for ((y, &x), e) in out.iter_mut().zip(masked).zip(keys.shares.chunks_exact(domain)) {
        let x = reduce(x, b) as usize;
        *y = e.iter().enumerate().fold(0u64, |acc, (j, &ej)| {
            acc.wrapping_add(table[x.wrapping_sub(j) & (domain - 1)].wrapping_mul(ej))
        });
    }
    Ok(())
}
