//! Faithful right shifts (truncation) and digit decomposition with two DCF evaluations.
//!
//! **Function.** For unsigned `y ∈ [0, 2^m)`: `lrs(y, s) = ⌊y / 2^s⌋`. For signed
//! `x ∈ [−2^(m−1), 2^(m−1))`: `ars(x, s) = ⌊x / 2^s⌋` — **exact**, unlike local probabilistic
//! truncation (which is off by one ulp and wraps with small probability). The result is a full
//! Z_2^64 sharing (sign-extended), so the gate also lifts an m-bit value back to 64 bits.
//!
//! **Construction** (Boyle et al., EUROCRYPT'21, faithful truncation). With `N = 2^m`,
//! `û = y + r mod N`, writing `low(z) = z mod 2^s`, over the integers:
//!
//! ```text
//! ⌊y / 2^s⌋ = ⌊û / 2^s⌋ − ⌊r / 2^s⌋ + 2^(m−s)·[û < r] − [low(û) < low(r)]
//! ```
//!
//! (the first correction undoes the wrap of `û − r`, the second the borrow out of the low `s`
//! bits). The dealer gives an m-bit DCF with `α = r, β = 2^(m−s)`, an s-bit DCF with
//! `α = low(r), β = −1`, and shares of `⌊r / 2^s⌋`; for signed inputs the gate shifts by
//! `2^(m−1)` before and `2^(m−1−s)` after. Digits of `y` in base `2^ℓ` follow from shifts at
//! each digit boundary: `d_i = lrs(y, ℓi) − 2^ℓ·lrs(y, ℓ(i+1))`.
//!
//! **Privacy:** as the DCF. **Cost:** one m-bit and one s-bit DCF evaluation per element; key
//! `16 + 24(m−1) + 16 + 16 + 24(s−1) + 16 + 8` bytes.

use rand::Rng;

use super::reduce;
use crate::backend::Backend;
use crate::fss::KeyError;
use crate::fss::{KeyBatch, Scheme, dcf};
use crate::mpc::MpcError;
use crate::party::PartyId;
use crate::prg::ChaCha20Rng;

/// One party's keys for a batch of right shifts by `shift` bits of m-bit values.
/// Secret: prints its width and its key batches' public parameters only, and zeroes its share
/// vectors when dropped (the key batches zero themselves); no `Clone`.
pub struct ShiftKeys {
    /// Input width m.
    pub(crate) width: u32,
    /// Shift s, 1 ≤ s < m.
    pub(crate) shift: u32,
    /// m-bit DCF, α = r mod 2^m, β = 2^(m−s) (an empty batch in range mode).
    pub(crate) wrap: KeyBatch,
    /// s-bit DCF, α = r mod 2^s, β = −1.
    pub(crate) borrow: KeyBatch,
    /// Shares of ⌊(r mod 2^M) / 2^s⌋ (M = m, or m + 1 in range mode).
    pub(crate) mask_high: Vec<u64>,
    /// Range mode ([`keygen_in_range`]): shares of c·2^(m+1−s) with c = [r mod 2^(m+1) ≥ 2^m];
    /// empty otherwise.
    pub(crate) region: Vec<u64>,
}

impl std::fmt::Debug for ShiftKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShiftKeys")
            .field("width", &self.width)
            .field("shift", &self.shift)
            .field("wrap", &self.wrap)
            .field("borrow", &self.borrow)
            .finish_non_exhaustive()
    }
}

impl Drop for ShiftKeys {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.mask_high);
        zeroize::Zeroize::zeroize(&mut self.region);
    }
}

impl ShiftKeys {
    /// Whether these keys are in range mode (no wrap key; see [`keygen_in_range`]).
    pub(crate) fn in_range(&self) -> bool {
        self.wrap.is_empty() && !self.region.is_empty()
    }
}

/// Cleartext logical shift of an unsigned m-bit value.
pub fn lrs_spec(y: u64, width: u32, shift: u32) -> u64 {
    reduce(y, width) >> shift
}

/// Cleartext arithmetic shift of a signed m-bit value (result sign-extended to 64 bits).
pub fn ars_spec(x: u64, width: u32, shift: u32) -> u64 {
    (super::signed_in(reduce(x, width), width) >> shift) as u64
}

/// Dealer: shift keys for inputs masked by `masks`.
///
/// # Errors
/// [`KeyError::Width`] unless 2 ≤ m ≤ 64 and 1 ≤ s < m.
pub fn keygen(
    width: u32,
    shift: u32,
    masks: &[u64],
    rng: &mut ChaCha20Rng,
) -> Result<[ShiftKeys; 2], KeyError> {
    if !(2..=64).contains(&width) || !(1..width).contains(&shift) {
        return Err(KeyError::Width { n: if (2..=64).contains(&width) { shift } else { width } });
    }
    let rs: Vec<u64> = masks.iter().map(|&r| reduce(r, width)).collect();
    let lows: Vec<u64> = rs.iter().map(|&r| reduce(r, shift)).collect();
    let wrap_beta = 1u64 << (width - shift);
    let [w0, w1] = dcf::keygen(width, &rs, &vec![wrap_beta; rs.len()], rng)?;
    let [b0, b1] = dcf::keygen(shift, &lows, &vec![u64::MAX; rs.len()], rng)?;
    let (mut h0, mut h1) = (Vec::with_capacity(rs.len()), Vec::with_capacity(rs.len()));
    for &r in &rs {
        let share: u64 = rng.random();
        h0.push(share);
        h1.push((r >> shift).wrapping_sub(share));
    }
    Ok([
        ShiftKeys { width, shift, wrap: w0, borrow: b0, mask_high: h0, region: Vec::new() },
        ShiftKeys { width, shift, wrap: w1, borrow: b1, mask_high: h1, region: Vec::new() },
    ])
}

/// Dealer: shift keys in **range mode**, for inputs whose whole ring value (after the signed
/// offset, for [`ars`]) lies in [0, 2^m) — not only its low m bits. The gate then works modulo
/// 2^(m+1), where y + r wraps only for masks r ≥ 2^m, and then exactly when û < 2^m: the wrap
/// is the dealer's bit c = [r ≥ 2^m] (shared, premultiplied by 2^(m+1−s)) times a public
/// comparison, and needs no DCF. Key: the s-bit DCF and two words, `16 + 24(s−1) + 16 + 16`
/// bytes. For m = 64 (no room above) this is [`keygen`].
///
/// # Errors
/// As [`keygen`].
pub fn keygen_in_range(
    width: u32,
    shift: u32,
    masks: &[u64],
    rng: &mut ChaCha20Rng,
) -> Result<[ShiftKeys; 2], KeyError> {
    if width == 64 || masks.is_empty() {
        return keygen(width, shift, masks, rng);
    }
    if !(2..64).contains(&width) || !(1..width).contains(&shift) {
        return Err(KeyError::Width { n: if (2..64).contains(&width) { shift } else { width } });
    }
    let big = width + 1;
    let rs: Vec<u64> = masks.iter().map(|&r| reduce(r, big)).collect();
    let lows: Vec<u64> = rs.iter().map(|&r| reduce(r, shift)).collect();
    let [b0, b1] = dcf::keygen(shift, &lows, &vec![u64::MAX; rs.len()], rng)?;
    let (mut h, mut c) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for &r in &rs {
        for (secret, out) in
            [(r >> shift, &mut h), (u64::from(r >= 1 << width) << (big - shift), &mut c)]
        {
            let share: u64 = rng.random();
            out[0].push(share);
            out[1].push(secret.wrapping_sub(share));
        }
    }
    let [h0, h1] = h;
    let [c0, c1] = c;
    let empty = |p| KeyBatch::empty(p);
    Ok([
        ShiftKeys { width, shift, wrap: empty(PartyId::P0), borrow: b0, mask_high: h0, region: c0 },
        ShiftKeys { width, shift, wrap: empty(PartyId::P1), borrow: b1, mask_high: h1, region: c1 },
    ])
}

/// Party: shares of `⌊y / 2^s⌋` for unsigned m-bit `y`, from masked inputs `ŷ = y + r`.
///
/// # Errors
/// [`KeyError::BatchLength`] / [`KeyError::Mismatch`] for mismatched inputs or keys.
pub fn lrs(
    backend: &dyn Backend,
    keys: &ShiftKeys,
    masked: &[u64],
    out: &mut [u64],
) -> Result<(), MpcError> {
    shift_with_offset(backend, keys, masked, 0, out)
}

/// Party: shares of `⌊x / 2^s⌋` for signed m-bit `x` (exact, sign-extended to 64 bits).
///
/// # Errors
/// As [`lrs`].
pub fn ars(
    backend: &dyn Backend,
    keys: &ShiftKeys,
    masked: &[u64],
    out: &mut [u64],
) -> Result<(), MpcError> {
    let half = 1u64 << (keys.width - 1);
    shift_with_offset(backend, keys, masked, half, out)?;
    if keys.borrow.party() == PartyId::P0 {
        let back = half >> keys.shift;
        out.iter_mut().for_each(|y| *y = y.wrapping_sub(back));
    }
    Ok(())
}

fn shift_with_offset(
    backend: &dyn Backend,
    keys: &ShiftKeys,
    masked: &[u64],
    offset: u64,
    out: &mut [u64],
) -> Result<(), MpcError> {
    let (m, s) = (keys.width, keys.shift);
    let party = keys.borrow.party();
    keys.borrow.expect(Scheme::Dcf, party, s)?;
    if keys.in_range() {
        return shift_in_range(backend, keys, masked, offset, out);
    }
    keys.wrap.expect(Scheme::Dcf, party, m)?;
    if masked.len() != keys.mask_high.len() || out.len() != masked.len() {
        return Err(KeyError::BatchLength {
            what: "masked inputs",
            expected: keys.mask_high.len(),
            found: masked.len(),
        }
        .into());
    }
    let hat: Vec<u64> = masked.iter().map(|&x| reduce(x.wrapping_add(offset), m)).collect();
    let lows: Vec<u64> = hat.iter().map(|&u| reduce(u, s)).collect();
    let mut borrow = vec![0u64; hat.len()];
    backend.eval_fss(&keys.wrap, &hat, out)?;
    backend.eval_fss(&keys.borrow, &lows, &mut borrow)?;
    for (((y, &b), &h), &u) in out.iter_mut().zip(&borrow).zip(&keys.mask_high).zip(&hat) {
        let local = y.wrapping_add(b).wrapping_sub(h);
        *y = if party == PartyId::P0 { local.wrapping_add(u >> s) } else { local };
    }
    Ok(())
}

fn shift_in_range(
    backend: &dyn Backend,
    keys: &ShiftKeys,
    masked: &[u64],
    offset: u64,
    out: &mut [u64],
) -> Result<(), MpcError> {
    let (m, s) = (keys.width, keys.shift);
    let party = keys.borrow.party();
    let len = masked.len();
    if keys.mask_high.len() != len || keys.region.len() != len || out.len() != len {
        return Err(KeyError::BatchLength {
            what: "masked inputs",
            expected: keys.mask_high.len(),
            found: len,
        }
        .into());
    }
    let hat: Vec<u64> = masked.iter().map(|&x| reduce(x.wrapping_add(offset), m + 1)).collect();
    let lows: Vec<u64> = hat.iter().map(|&u| reduce(u, s)).collect();
    backend.eval_fss(&keys.borrow, &lows, out)?;
    for (k, (y, &u)) in out.iter_mut().zip(&hat).enumerate() {
        // ⌊y/2^s⌋ = ⌊û/2^s⌋ − ⌊r/2^s⌋ + [û < 2^m]·c·2^(m+1−s) − borrow.
        let wrap = u64::from(u < 1 << m).wrapping_mul(keys.region[k]);
        let local = y.wrapping_add(wrap).wrapping_sub(keys.mask_high[k]);
        *y = if party == PartyId::P0 { local.wrapping_add(u >> s) } else { local };
    }
    Ok(())
}
