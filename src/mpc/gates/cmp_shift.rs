//! Exact right shifts from one-bit comparison keys and opened masked bits (one below 64 bits).
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
//! **No wrap comparison below 64 bits.** For m < 64 the gate works modulo 2^(m+1), one bit
//! above the input's range: with y ∈ [0, 2^m) and r uniform mod 2^(m+1), y + r wraps only when
//! r ≥ 2^(m+1) − 2^m, and then exactly when û < 2^m (otherwise û ≥ r ≥ 2^m). So
//! `w = c·[û < 2^m]` with the dealer's bit `c = [r ≥ 2^(m+1) − 2^m]` (shared, premultiplied
//! by 2^(m+1−s)) and a public comparison: only the borrow needs a key and an opened bit. This
//! makes the input's range a contract on the whole ring value (the protocols guarantee it:
//! their unshifted outputs are bounded by construction), not only on its low m bits.
//!
//! **Privacy:** the keys hide r; the opened bits are masked by ρ_w and ρ_b, known to neither
//! party; û is uniform modulo the gate's modulus.
//!
//! **Cost per element per party:** one round of 1 bit (m < 64; 2 bits at m = 64); one
//! evaluation of s − 6 AES blocks (and one of m − 6 at m = 64); key `16·max(s − 7, 0) + 32`
//! bytes, 1 bit and 24 bytes (⟨c·2^(m+1−s)⟩, ⟨ρ_b⟩, ⟨⌊r/2^s⌋⟩) — 328 B at (m, s) = (50, 24)
//! where the DCF gate takes 1,800 B — plus `16·(m − 7) + 32` bytes and a bit for the wrap key at
//! m = 64.

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
    /// Comparison on m bits, α = r mod 2^m (m = 64 only; an empty batch below).
    pub(crate) wrap: KeyBatch,
    /// Comparison on s bits, α = r mod 2^s.
    pub(crate) borrow: KeyBatch,
    /// XOR shares of the opened bits' masks, packed 64 per word: (ρ_w, ρ_b) at bits 2k and
    /// 2k + 1 for m = 64, ρ_b at bit k below.
    pub(crate) flips: Vec<u64>,
    /// Per element, 3 words: shares of ρ_w (m = 64) or of c·2^(m+1−s) (below), of ρ_b, and of
    /// ⌊(r mod 2^M) / 2^s⌋ with M the gate's modulus (64, or m + 1).
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

impl CmpShiftKeys {
    /// Opened bits per element: the borrow, and the wrap at m = 64.
    pub(crate) fn bits_per_element(width: u32) -> usize {
        if width == 64 { 2 } else { 1 }
    }

    /// Drop the comparison keys once [`masked_bits`] has used them (they zero themselves):
    /// [`finish`] and [`finish_affine`] need only the width, the shift and the terms, and a
    /// gate whose opening is deferred keeps the keys until then.
    pub(crate) fn release_comparisons(&mut self) {
        let party = self.borrow.party();
        self.wrap = KeyBatch::empty(party);
        self.borrow = KeyBatch::empty(party);
    }
}

/// The gate's modulus bits for inputs of width m.
fn modulus(width: u32) -> u32 {
    if width == 64 { 64 } else { width + 1 }
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
    let per = CmpShiftKeys::bits_per_element(width);
    let big = modulus(width);
    let words = super::cmp_relu::packed_words(per * len);
    let mut flips = [vec![0u64; words], vec![0u64; words]];
    let mut terms = [Vec::with_capacity(3 * len), Vec::with_capacity(3 * len)];
    let mut wrap_alpha = Vec::new();
    let mut borrow_alpha = Vec::with_capacity(len);
    let split = |secret: u64, terms: &mut [Vec<u64>; 2], rng: &mut ChaCha20Rng| {
        let share: u64 = rng.random();
        terms[0].push(share);
        terms[1].push(secret.wrapping_sub(share));
    };
    let mut flip = |at: usize, secret_bit: u64, rng: &mut ChaCha20Rng| {
        let z0 = rng.random::<u64>() & 1;
        flips[0][at / 64] |= z0 << (at % 64);
        flips[1][at / 64] |= (z0 ^ secret_bit) << (at % 64);
    };
    for (k, &r) in masks.iter().enumerate() {
        let rm = reduce(r, big);
        borrow_alpha.push(reduce(rm, shift));
        let rho_b = rng.random::<u64>() & 1;
        if width == 64 {
            wrap_alpha.push(rm);
            let rho_w = rng.random::<u64>() & 1;
            flip(2 * k, rho_w, rng);
            flip(2 * k + 1, rho_b, rng);
            split(rho_w, &mut terms, rng);
        } else {
            // c = [r ≥ 2^M − 2^m] = [r ≥ 2^m] (M = m + 1): the only masks for which y + r can
            // wrap.
            let c = u64::from(rm >= 1u64 << width);
            flip(k, rho_b, rng);
            split(c << (big - shift), &mut terms, rng);
        }
        split(rho_b, &mut terms, rng);
        split(rm >> shift, &mut terms, rng);
    }
    let [w0, w1] = if width == 64 {
        cmp::keygen(width, &wrap_alpha, rng)?
    } else {
        [KeyBatch::empty(PartyId::P0), KeyBatch::empty(PartyId::P1)]
    };
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
    let (m, s, party) = (keys.width, keys.shift, keys.borrow.party());
    let per = CmpShiftKeys::bits_per_element(m);
    if m == 64 {
        keys.wrap.expect(Scheme::Cmp, party, m)?;
    }
    keys.borrow.expect(Scheme::Cmp, party, s)?;
    let len = masked.len();
    if (m == 64 && keys.wrap.len() != len)
        || keys.borrow.len() != len
        || keys.flips.len() != super::cmp_relu::packed_words(per * len)
        || keys.terms.len() != 3 * len
    {
        return Err(KeyError::BatchLength {
            what: "masked inputs",
            expected: keys.borrow.len(),
            found: len,
        }
        .into());
    }
    let hat = offset_inputs(keys, masked);
    let lows: Vec<u64> = hat.iter().map(|&u| reduce(u, s)).collect();
    let mut b = vec![0u64; len];
    backend.eval_fss(&keys.borrow, &lows, &mut b)?;
    let mut bits = keys.flips.clone();
    if m == 64 {
        let mut w = vec![0u64; len];
        backend.eval_fss(&keys.wrap, &hat, &mut w)?;
        for k in 0..len {
            bits[(2 * k) / 64] ^= w[k] << ((2 * k) % 64);
            bits[(2 * k + 1) / 64] ^= b[k] << ((2 * k + 1) % 64);
        }
    } else {
        for (k, &b) in b.iter().enumerate() {
            bits[k / 64] ^= b << (k % 64);
        }
    }
    Ok(bits)
}

/// û = x̂ + 2^(m−1) modulo the gate's modulus.
fn offset_inputs(keys: &CmpShiftKeys, masked: &[u64]) -> Vec<u64> {
    let half = 1u64 << (keys.width - 1);
    let big = modulus(keys.width);
    masked.iter().map(|&x| reduce(x.wrapping_add(half), big)).collect()
}

/// Party, after the opening (`opened`: the masked wrap and borrow bits at m = 64, the masked
/// borrow bit below, packed as [`masked_bits`] made them): shares of ⌊x / 2^s⌋.
pub fn finish(keys: &CmpShiftKeys, party: PartyId, masked: &[u64], opened: &[u64]) -> Vec<u64> {
    let hat = offset_inputs(keys, masked);
    hat.iter()
        .enumerate()
        .map(|(k, &u)| {
            let (public, c) = affine_element(keys, k, u, opened);
            share_of(party, public, &c, &keys.terms[3 * k..3 * k + 3])
        })
        .collect()
}

/// One element's public part P and coefficients c_t of y = P − Σ_t c_t·D_t (û = `u`).
fn affine_element(keys: &CmpShiftKeys, k: usize, u: u64, opened: &[u64]) -> (u64, [u64; 3]) {
    let (m, s) = (keys.width, keys.shift);
    let half = 1u64 << (m - 1);
    let per = CmpShiftKeys::bits_per_element(m);
    let bit = |i: usize| (opened[(per * k + i) / 64] >> ((per * k + i) % 64)) & 1;
    // An opened bit b̂ = b ⊕ ρ is b = b̂ + (1 − 2b̂)·ρ: public b̂, coefficient −(1 − 2b̂) on ρ.
    let sign = |hat: u64| 1u64.wrapping_sub(hat << 1);
    let b = bit(per - 1);
    // y = ⌊û/2^s⌋ − ⌊half/2^s⌋ + wrap·2^(M−s) − b − ⌊r/2^s⌋.
    let mut public = (u >> s).wrapping_sub(half >> s).wrapping_sub(b);
    let c_wrap = if m == 64 {
        let w = bit(0);
        public = public.wrapping_add(w.wrapping_shl(m - s));
        sign(w).wrapping_shl(m - s).wrapping_neg()
    } else {
        // w·2^(M−s) = [û < 2^m]·D_0 (D_0 = c·2^(M−s)): a public bit times a share.
        u64::from(u < (1u64 << m)).wrapping_neg()
    };
    (public, [c_wrap, sign(b), 1])
}

/// A party's share of y = P − Σ_t c_t·D_t from its shares of the D_t (P added by P0).
fn share_of(party: PartyId, public: u64, c: &[u64; 3], terms: &[u64]) -> u64 {
    let start = if party == PartyId::P0 { public } else { 0 };
    c.iter().zip(terms).fold(start, |acc, (c, t)| acc.wrapping_sub(c.wrapping_mul(*t)))
}

/// The gate's output in affine form: y = P − Σ_t c_t·D_t with P and the c_t public (functions
/// of the opened values) and D_t the dealer's three secrets per element (the wrap term, ρ_b and
/// ⌊r/2^s⌋, whose shares are the key's `terms`). A later product with y then needs only the
/// dealer's products of its own mask with the D_t ([`affine`](crate::mpc::affine)).
pub struct AffineOutput {
    /// This party's share of y: P (P0 only) − Σ_t c_t·⟨D_t⟩.
    pub share: Vec<u64>,
    /// P per element (public).
    pub public: Vec<u64>,
    /// c_t per element, term-major: `coefs[t·len + k]` (public).
    pub coefs: Vec<u64>,
}

/// Terms per element of [`AffineOutput`].
pub const AFFINE_TERMS: usize = 3;

/// The dealer's D_t of each element, term-major (`[t·len + k]`), from both key halves.
pub fn affine_terms(keys: &[CmpShiftKeys; 2]) -> Vec<u64> {
    let len = keys[0].terms.len() / 3;
    let mut d = vec![0u64; AFFINE_TERMS * len];
    for (k, (a, b)) in keys[0].terms.chunks_exact(3).zip(keys[1].terms.chunks_exact(3)).enumerate()
    {
        for t in 0..AFFINE_TERMS {
            d[t * len + k] = a[t].wrapping_add(b[t]);
        }
    }
    d
}

/// As [`finish`], with the output's affine form.
pub fn finish_affine(
    keys: &CmpShiftKeys,
    party: PartyId,
    masked: &[u64],
    opened: &[u64],
) -> AffineOutput {
    let hat = offset_inputs(keys, masked);
    let len = hat.len();
    let mut out = AffineOutput {
        share: Vec::with_capacity(len),
        public: Vec::with_capacity(len),
        coefs: vec![0; AFFINE_TERMS * len],
    };
    for (k, &u) in hat.iter().enumerate() {
        let (public, c) = affine_element(keys, k, u, opened);
        out.share.push(share_of(party, public, &c, &keys.terms[3 * k..3 * k + 3]));
        out.public.push(public);
        for (t, &c) in c.iter().enumerate() {
            out.coefs[t * len + k] = c;
        }
    }
    out
}
