//! DReLU and ReLU from a one-bit comparison key: small keys, one opened bit.
//!
//! **Function.** `d = [x ≥ 0]` and `relu(x) = d·x` for `x ∈ [−2^(m−1), 2^(m−1))` over its full
//! Z_2^64 value (the same functions as [`sign`](mod@super::sign) and [`relu`](mod@super::relu)).
//!
//! **Construction** (SIGMA's DReLU and select, on our masked form). With x̂ = x + r public,
//! `a` the top bit of x̂ mod 2^m, `μ` that of r and `c = [x̂ mod 2^(m−1) < r mod 2^(m−1)]` (the
//! borrow), `d = 1 ⊕ a ⊕ μ ⊕ c`. The parties get XOR shares of `c` from a
//! [comparison key](crate::fss::cmp) on m − 1 bits (one AES block per level), and the dealer
//! gives XOR shares of `μ ⊕ ρ` for a fresh random bit ρ, so each party holds a share of
//! `d ⊕ ρ`; they open `d̂ = d ⊕ ρ` (one bit each way, one round). Then, with arithmetic shares
//! of ρ, r and ρ·r from the dealer: `⟨d⟩ = P0·d̂ + (1 − 2d̂)⟨ρ⟩` and
//! `⟨d·r⟩ = d̂⟨r⟩ + (1 − 2d̂)⟨ρr⟩`, so `⟨relu(x)⟩ = ⟨d⟩·x̂ − ⟨d·r⟩`: public values times shares.
//!
//! **Privacy:** the comparison key hides r; the opened d̂ is d masked by the uniform bit ρ,
//! which neither party knows. **Cost per element per party:** one comparison evaluation
//! (m − 6 AES blocks for m ≥ 8), one round with ⌈len/8⌉ bytes; key 16·(m − 8) + 32 bytes
//! (m ≥ 8) + 1 bit + 8 bytes (⟨ρ⟩) + 8 bytes (⟨ρr⟩, ReLU only), beside the item's mask share.
//! Against [`relu`](mod@super::relu) (one round fewer: its DCF carries the select's payload) the
//! key is about 2.7× smaller at m = 24 (288 + 17 B against 776 B).

use rand::Rng;

use super::reduce;
use crate::backend::Backend;
use crate::fss::{KeyBatch, KeyError, Scheme, cmp};
use crate::mpc::MpcError;
use crate::party::PartyId;
use crate::prg::ChaCha20Rng;

/// One party's keys for DReLU (and, with `select`, ReLU) by a one-bit comparison.
/// Secret: prints its width and its key batch's public parameters only, zeroes its share
/// vectors when dropped (the key batch zeroes itself); no `Clone`.
pub struct CmpReluKeys {
    /// Gate width m (2..=64).
    pub(crate) width: u32,
    /// Whether the keys also give relu(x) (the ⟨ρr⟩ shares are present).
    pub(crate) select: bool,
    /// Comparison keys on m − 1 bits, α = r mod 2^(m−1).
    pub(crate) cmp: KeyBatch,
    /// This party's XOR shares of μ ⊕ ρ, packed 64 per word (bit k of word k / 64).
    pub(crate) flips: Vec<u64>,
    /// Shares of ρ per element.
    pub(crate) rho: Vec<u64>,
    /// Shares of ρ·r per element (empty without `select`).
    pub(crate) rho_r: Vec<u64>,
}

impl std::fmt::Debug for CmpReluKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmpReluKeys")
            .field("width", &self.width)
            .field("select", &self.select)
            .field("cmp", &self.cmp)
            .finish_non_exhaustive()
    }
}

impl Drop for CmpReluKeys {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.flips.zeroize();
        self.rho.zeroize();
        self.rho_r.zeroize();
    }
}

/// Words of packed bits for `len` elements.
pub(crate) fn packed_words(len: usize) -> usize {
    len.div_ceil(64)
}

/// Dealer: keys for inputs masked by `masks` (full 64-bit masks); `select` adds ReLU's terms.
///
/// # Errors
/// [`KeyError::Width`] unless 2 ≤ width ≤ 64.
pub fn keygen(
    width: u32,
    select: bool,
    masks: &[u64],
    rng: &mut ChaCha20Rng,
) -> Result<[CmpReluKeys; 2], KeyError> {
    if !(2..=64).contains(&width) {
        return Err(KeyError::Width { n: width });
    }
    let len = masks.len();
    let low_bits = width - 1;
    let alphas: Vec<u64> = masks.iter().map(|&r| reduce(r, low_bits)).collect();
    let mut flips = [vec![0u64; packed_words(len)], vec![0u64; packed_words(len)]];
    let (mut rho, mut rho_r) =
        ([Vec::with_capacity(len), Vec::with_capacity(len)], [Vec::new(), Vec::new()]);
    let split = |secret: u64, out: &mut [Vec<u64>; 2], rng: &mut ChaCha20Rng| {
        let share: u64 = rng.random();
        out[0].push(share);
        out[1].push(secret.wrapping_sub(share));
    };
    for (k, &r) in masks.iter().enumerate() {
        let mu = reduce(r, width) >> low_bits;
        let rho_bit = rng.random::<u64>() & 1;
        let z0 = rng.random::<u64>() & 1;
        let z1 = z0 ^ mu ^ rho_bit;
        flips[0][k / 64] |= z0 << (k % 64);
        flips[1][k / 64] |= z1 << (k % 64);
        split(rho_bit, &mut rho, rng);
        if select {
            split(rho_bit.wrapping_mul(r), &mut rho_r, rng);
        }
    }
    let [k0, k1] = cmp::keygen(low_bits, &alphas, rng)?;
    let [f0, f1] = flips;
    let [p0, p1] = rho;
    let [q0, q1] = rho_r;
    Ok([
        CmpReluKeys { width, select, cmp: k0, flips: f0, rho: p0, rho_r: q0 },
        CmpReluKeys { width, select, cmp: k1, flips: f1, rho: p1, rho_r: q1 },
    ])
}

/// Party, before the opening: this party's share of d̂ = d ⊕ ρ for each masked input, packed.
///
/// # Errors
/// [`KeyError::Mismatch`] / [`KeyError::BatchLength`] for keys of another width, party or
/// length.
pub fn masked_bits(
    backend: &dyn Backend,
    keys: &CmpReluKeys,
    masked: &[u64],
) -> Result<Vec<u64>, MpcError> {
    let (m, party) = (keys.width, keys.cmp.party());
    keys.cmp.expect(Scheme::Cmp, party, m - 1)?;
    let len = masked.len();
    if keys.cmp.len() != len
        || keys.flips.len() != packed_words(len)
        || keys.rho.len() != len
        || keys.rho_r.len() != if keys.select { len } else { 0 }
    {
        return Err(KeyError::BatchLength {
            what: "masked inputs",
            expected: keys.cmp.len(),
            found: len,
        }
        .into());
    }
    let lows: Vec<u64> = masked.iter().map(|&x| reduce(x, m - 1)).collect();
    let mut c = vec![0u64; len];
    backend.eval_fss(&keys.cmp, &lows, &mut c)?;
    let mut bits = keys.flips.clone();
    for (k, (&c, &xh)) in c.iter().zip(masked).enumerate() {
        let own = if party == PartyId::P0 { 1 ^ (reduce(xh, m) >> (m - 1)) } else { 0 };
        bits[k / 64] ^= (c ^ own) << (k % 64);
    }
    Ok(bits)
}

/// Party, after the opening of d̂ (`opened`, packed): shares of d, and of relu(x) when the keys
/// have `select` (empty otherwise; `mask` is this party's share of r).
pub fn finish(
    keys: &CmpReluKeys,
    party: PartyId,
    masked: &[u64],
    mask: &[u64],
    opened: &[u64],
) -> (Vec<u64>, Vec<u64>) {
    let p0 = u64::from(party == PartyId::P0);
    let mut d = Vec::with_capacity(masked.len());
    let mut y = Vec::with_capacity(if keys.select { masked.len() } else { 0 });
    for (k, &xh) in masked.iter().enumerate() {
        let dh = (opened[k / 64] >> (k % 64)) & 1;
        let flip = |v: u64| if dh == 1 { v.wrapping_neg() } else { v }; // (1 − 2d̂)·v
        let dk = (p0 & dh).wrapping_add(flip(keys.rho[k]));
        d.push(dk);
        if keys.select {
            let d_r = dh.wrapping_mul(mask[k]).wrapping_add(flip(keys.rho_r[k]));
            y.push(dk.wrapping_mul(xh).wrapping_sub(d_r));
        }
    }
    (d, y)
}

/// Packed bits to bytes (little-endian words), `len` elements: ⌈len/8⌉ bytes.
pub(crate) fn bits_to_bytes(bits: &[u64], len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = bits.iter().flat_map(|w| w.to_le_bytes()).collect();
    out.truncate(len.div_ceil(8));
    out
}

/// Bytes back to packed words; bits beyond `len` must be zero (a peer that sets them sends
/// garbage, reported as `None`).
pub(crate) fn bytes_to_bits(bytes: &[u8], len: usize) -> Option<Vec<u64>> {
    if bytes.len() != len.div_ceil(8) {
        return None;
    }
    let mut out = vec![0u64; packed_words(len)];
    for (i, &b) in bytes.iter().enumerate() {
        out[i / 8] |= (b as u64) << (8 * (i % 8));
    }
    (!bits_beyond(&out, len)).then_some(out)
}

/// Whether packed words hold a set bit at or beyond `len` (garbage in a well-formed vector).
pub(crate) fn bits_beyond(words: &[u64], len: usize) -> bool {
    let tail = len % 64;
    tail != 0 && words.last().is_some_and(|w| w >> tail != 0)
}
