//! Exact right shifts from two one-bit comparison keys and two opened bits.
//!
//! **Function.** The same as [`shift`](super::shift): `ars(x, s) = ⌊x / 2^s⌋` for signed
//! `x ∈ [−2^(m−1), 2^(m−1))`, exact, as a full Z_2^64 sharing.
//!
//! **Construction.** The faithful-truncation identity of [`shift`](super::shift) (with the
//! signed offset 2^(m−1)): `⌊y / 2^s⌋ = ⌊û / 2^s⌋ − ⌊r / 2^s⌋ + 2^(m−s)·w − b` with the wrap
//! `w = [û < r]` (m bits) and the borrow `b = [low(û) < low(r)]` (s bits). Here each comparison
//! is a [one-bit key](crate::fss::cmp) (one AES block per level) giving XOR shares; the dealer
//! adds XOR shares of fresh random bits ρ_w, ρ_b, the parties open `ŵ = w ⊕ ρ_w` and
//! `b̂ = b ⊕ ρ_b` (two bits each way per element, one round) and finish with
//! `⟨w⟩ = P0·ŵ + (1 − 2ŵ)⟨ρ_w⟩` (and the same for b) from the dealer's arithmetic shares of ρ.
//!
//! **Privacy:** the keys hide r; the opened bits are masked by ρ_w and ρ_b, known to neither
//! party. **Cost per element per party:** one round of 2 bits; evaluations of m − 6 and
//! s − 6 AES blocks (at least 1 each); key `16·max(m − 7, 0) + 32 + 16·max(s − 7, 0) + 32` bytes,
//! 2 bits and 24 bytes (⟨ρ_w⟩, ⟨ρ_b⟩, ⟨⌊r/2^s⌋⟩) — 1,048 B at (m, s) = (50, 24) where the DCF
//! gate takes 1,800 B, for one more round.

use rand::Rng;

use super::reduce;
use crate::backend::Backend;
use crate::fss::{KeyBatch, KeyError, Scheme, cmp};
use crate::mpc::MpcError;
use crate::party::PartyId;
use crate::prg::ChaCha20Rng;

/// One party's keys for exact arithmetic shifts by one-bit comparisons.
/// Secret: prints its parameters and key batches' public parameters only, zeroes its share
/// vectors when dropped; no `Clone`.
pub struct CmpShiftKeys {
    /// Input width m.
    pub(crate) width: u32,
    /// Shift s, 1 ≤ s < m.
    pub(crate) shift: u32,
    /// Comparison on m bits, α = r mod 2^m.
    pub(crate) wrap: KeyBatch,
    /// Comparison on s bits, α = r mod 2^s.
    pub(crate) borrow: KeyBatch,
    /// XOR shares of (ρ_w, ρ_b), bits 2k and 2k + 1, packed 64 per word.
    pub(crate) flips: Vec<u64>,
    /// Shares of ρ_w, ρ_b and ⌊(r mod 2^m) / 2^s⌋ per element (interleaved, 3 words each).
    pub(crate) terms: Vec<u64>,
}

impl std::fmt::Debug for CmpShiftKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmpShiftKeys")
            .field("width", &self.width)
            .field("shift", &self.shift)
            .field("wrap", &self.wrap)
            .field("borrow", &self.borrow)
            .finish_non_exhaustive()
    }
}

impl Drop for CmpShiftKeys {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.flips.zeroize();
        self.terms.zeroize();
    }
}

/// Dealer: keys for signed m-bit inputs masked by `masks` (full 64-bit masks), shift s.
///
/// # Errors
/// [`KeyError::Width`] unless 2 ≤ m ≤ 64 and 1 ≤ s < m.
pub fn keygen(
    width: u32,
    shift: u32,
    masks: &[u64],
    rng: &mut ChaCha20Rng,
) -> Result<[CmpShiftKeys; 2], KeyError> {
    if !(2..=64).contains(&width) || !(1..width).contains(&shift) {
        return Err(KeyError::Width { n: width });
    }
    let len = masks.len();
    let words = super::cmp_relu::packed_words(2 * len);
    let mut flips = [vec![0u64; words], vec![0u64; words]];
    let mut terms = [Vec::with_capacity(3 * len), Vec::with_capacity(3 * len)];
    let mut wrap_alpha = Vec::with_capacity(len);
    let mut borrow_alpha = Vec::with_capacity(len);
    for (k, &r) in masks.iter().enumerate() {
        let rm = reduce(r, width);
        wrap_alpha.push(rm);
        borrow_alpha.push(reduce(rm, shift));
        for (i, secret_bit) in
            [rng.random::<u64>() & 1, rng.random::<u64>() & 1].into_iter().enumerate()
        {
            let z0 = rng.random::<u64>() & 1;
            let at = 2 * k + i;
            flips[0][at / 64] |= z0 << (at % 64);
            flips[1][at / 64] |= (z0 ^ secret_bit) << (at % 64);
            let share: u64 = rng.random();
            terms[0].push(share);
            terms[1].push(secret_bit.wrapping_sub(share));
        }
        let share: u64 = rng.random();
        terms[0].push(share);
        terms[1].push((rm >> shift).wrapping_sub(share));
    }
    let [w0, w1] = cmp::keygen(width, &wrap_alpha, rng)?;
    let [b0, b1] = cmp::keygen(shift, &borrow_alpha, rng)?;
    let [f0, f1] = flips;
    let [t0, t1] = terms;
    Ok([
        CmpShiftKeys { width, shift, wrap: w0, borrow: b0, flips: f0, terms: t0 },
        CmpShiftKeys { width, shift, wrap: w1, borrow: b1, flips: f1, terms: t1 },
    ])
}

/// Party, before the opening: this party's shares of (ŵ, b̂) per element, packed (bits 2k,
/// 2k + 1).
///
/// # Errors
/// [`KeyError::Mismatch`] / [`KeyError::BatchLength`] for keys of another width, shift, party
/// or length.
pub fn masked_bits(
    backend: &dyn Backend,
    keys: &CmpShiftKeys,
    masked: &[u64],
) -> Result<Vec<u64>, MpcError> {
    let (m, s, party) = (keys.width, keys.shift, keys.wrap.party());
    keys.wrap.expect(Scheme::Cmp, party, m)?;
    keys.borrow.expect(Scheme::Cmp, party, s)?;
    let len = masked.len();
    if keys.wrap.len() != len
        || keys.borrow.len() != len
        || keys.flips.len() != super::cmp_relu::packed_words(2 * len)
        || keys.terms.len() != 3 * len
    {
        return Err(KeyError::BatchLength {
            what: "masked inputs",
            expected: keys.wrap.len(),
            found: len,
        }
        .into());
    }
    let half = 1u64 << (m - 1);
    let hat: Vec<u64> = masked.iter().map(|&x| reduce(x.wrapping_add(half), m)).collect();
    let lows: Vec<u64> = hat.iter().map(|&u| reduce(u, s)).collect();
    let (mut w, mut b) = (vec![0u64; len], vec![0u64; len]);
    backend.eval_fss(&keys.wrap, &hat, &mut w)?;
    backend.eval_fss(&keys.borrow, &lows, &mut b)?;
    let mut bits = keys.flips.clone();
    for k in 0..len {
        for (i, v) in [w[k], b[k]].into_iter().enumerate() {
            let at = 2 * k + i;
            bits[at / 64] ^= v << (at % 64);
        }
    }
    Ok(bits)
}

/// Party, after the opening (`opened`: ŵ, b̂ packed): shares of ⌊x / 2^s⌋.
pub fn finish(keys: &CmpShiftKeys, party: PartyId, masked: &[u64], opened: &[u64]) -> Vec<u64> {
    let (m, s) = (keys.width, keys.shift);
    let p0 = party == PartyId::P0;
    let half = 1u64 << (m - 1);
    masked
        .iter()
        .enumerate()
        .map(|(k, &x)| {
            let bit = |i: usize| (opened[(2 * k + i) / 64] >> ((2 * k + i) % 64)) & 1;
            let arith = |hat: u64, rho: u64| {
                let flipped = if hat == 1 { rho.wrapping_neg() } else { rho };
                flipped.wrapping_add(if p0 { hat } else { 0 })
            };
            let w = arith(bit(0), keys.terms[3 * k]);
            let b = arith(bit(1), keys.terms[3 * k + 1]);
            let local = w.wrapping_shl(m - s).wrapping_sub(b).wrapping_sub(keys.terms[3 * k + 2]);
            if p0 {
                let u = reduce(x.wrapping_add(half), m);
                local.wrapping_add(u >> s).wrapping_sub(half >> s)
            } else {
                local
            }
        })
        .collect()
}
