//! Lookup table `T[x]` on a b-bit index with one DPF and full-domain evaluation.
//!
//! **Function.** For a public table `T` of `2^b` ring elements and a secret index
//! `x ∈ [0, 2^b)`: shares of `T[x]`.
//!
//! **Construction.** The dealer gives a DPF with `α = r mod 2^b`, `β = 1`. Each party expands
//! it over the whole domain, getting shares `e_b(j)` of the one-hot vector `[j = r]`, and
//! computes `Σ_j T[(x̂ − j) mod 2^b] · e_b(j)`, which reconstructs to `T[x̂ − r] = T[x]`.
//!
//! **Why DPF eval-all and not one-hot keys.** A one-hot share vector from the dealer costs
//! `8·2^b` key bytes per element; the DPF key is `16·b + 16` bytes, and expanding it costs
//! about `1.5·2^b` AES blocks — for the table sizes that nonlinear layers use (b ≤ 12), key
//! transfer and storage, not AES, are what limit (protocols.md §5), so the DPF wins.
//!
//! **Privacy:** as the DPF. **Cost:** one b-bit DPF key and `2^b` multiply-adds per element.

use super::reduce;
use crate::error::KeyError;
use crate::fss::{KeyBatch, Scheme, dpf};
use crate::prg::ChaCha20Rng;

/// One party's keys for a batch of lookups with a b-bit index.
#[derive(Clone, Debug)]
pub struct LutKeys {
    /// Index width b.
    pub index_bits: u32,
    /// DPF keys on b bits with α = r mod 2^b.
    pub dpf: KeyBatch,
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
    keys: &LutKeys,
    table: &[u64],
    masked: &[u64],
    out: &mut [u64],
) -> Result<(), KeyError> {
    keys.dpf.expect(Scheme::Dpf, keys.dpf.party(), keys.index_bits)?;
    lookup_dpf(&keys.dpf, table, masked, out)
}

/// Check a lookup's arguments: a DPF batch, a table of `2^b` entries, one index and one output
/// per key.
///
/// # Errors
/// [`KeyError::Mismatch`] for non-DPF keys or b above [`dpf::MAX_EVAL_ALL_BITS`],
/// [`KeyError::BatchLength`] for the table or batch lengths.
pub fn check_lookup(
    dpf_keys: &KeyBatch,
    table: &[u64],
    masked: &[u64],
    out: &[u64],
) -> Result<(), KeyError> {
    let b = dpf_keys.input_bits();
    dpf_keys.expect(Scheme::Dpf, dpf_keys.party(), b)?;
    if b > dpf::MAX_EVAL_ALL_BITS {
        return Err(KeyError::Mismatch {
            what: "lookup index bits",
            expected: format!("≤ {}", dpf::MAX_EVAL_ALL_BITS),
            found: b.to_string(),
        });
    }
    let domain = 1usize << b;
    if table.len() != domain {
        return Err(KeyError::BatchLength { what: "table", expected: domain, found: table.len() });
    }
    if masked.len() != dpf_keys.len() || out.len() != masked.len() {
        return Err(KeyError::BatchLength {
            what: "masked indices",
            expected: dpf_keys.len(),
            found: masked.len(),
        });
    }
    Ok(())
}

/// The lookup on the CPU from the DPF keys alone (the reference for the GPU kernel).
///
/// # Errors
/// As [`check_lookup`].
pub fn lookup_dpf(
    dpf_keys: &KeyBatch,
    table: &[u64],
    masked: &[u64],
    out: &mut [u64],
) -> Result<(), KeyError> {
    check_lookup(dpf_keys, table, masked, out)?;
    let b = dpf_keys.input_bits();
    let domain = 1usize << b;
    let mut onehot = vec![0u64; domain * masked.len()];
    dpf::eval_all(dpf_keys, &mut onehot)?;
    for ((y, &x), e) in out.iter_mut().zip(masked).zip(onehot.chunks_exact(domain)) {
        let x = reduce(x, b) as usize;
        // Σ_j T[(x̂ − j) mod 2^b]·e(j)
        let mut acc = 0u64;
        for (j, &ej) in e.iter().enumerate() {
            acc = acc.wrapping_add(table[(x.wrapping_sub(j)) & (domain - 1)].wrapping_mul(ej));
        }
        *y = acc;
    }
    Ok(())
}
