//! FSS material as typed, one-time preprocessing: raw DCF/DPF key batches and every gate's
//! composite key, each beside this party's share of the gate's input mask, with a checked wire
//! format.
//!
//! | kind | shape key (`dims`) | body |
//! |---|---|---|
//! | [`MaterialKind::DcfKeys`] | `[len, n, words]` | batch |
//! | [`MaterialKind::DpfKeys`] | `[len, n]` | batch |
//! | [`MaterialKind::SignKeys`] | `[len, m]` | mask, DCF (m − 1 bits), μ shares |
//! | [`MaterialKind::ReluKeys`] | `[len, m]` | mask, 2-word DCF (m − 1 bits), (μ, r, μr) shares |
//! | [`MaterialKind::IntervalKeys`] | `[len, m]` | mask, DCF (m bits) |
//! | [`MaterialKind::SplineKeys`] | `[len, m, degree]` | mask, (d + 1)-word DCF (m bits), r^e shares |
//! | [`MaterialKind::LutKeys`] | `[len, b]` | mask, DPF (b bits) |
//! | [`MaterialKind::ShiftKeys`] | `[len, m, s]` | mask, DCF (m bits; empty in range mode), DCF (s bits), ⌊r/2^s⌋ shares, range mode: c·2^(m+1−s) shares |
//! | [`MaterialKind::CmpKeys`] | `[len, n]` | batch |
//! | [`MaterialKind::CmpShiftKeys`] | `[len, m, s]` | mask, comparison on m bits (m = 64 only), comparison on s bits, packed flip bits (2 per element at m = 64, else 1), 3 share words per element |
//! | [`MaterialKind::CmpReluKeys`] | `[len, m, select]` | mask, comparison (m − 1 bits), packed flip bits, ρ shares, ρr shares (select 1) |
//! | [`MaterialKind::CmpSplineKeys`] | `[len, m, degree, pieces]` | mask, comparison (m bits), packed flip bits (p − 1 per element), r^e shares, ρ_k·r^e shares |
//!
//! Every item is built by a dealer `gen_*` or by the file loader, which checks each
//! section; the key structs' fields are private to the crate, so a caller cannot assemble an
//! inconsistent one.
//!
//! A body is a sequence of sections: a u64 vector is `count u64 | count × u64`, a key batch is
//! `bytes u64 | KeyBatch wire bytes`. Loading checks every section against the shape key and
//! the store's party (scheme, width, payload words, batch length, vector lengths), so material
//! of the wrong kind, width, party or word count never reaches a protocol.

use super::cmp_relu::{CmpReluKeys, packed_words};
use super::cmp_shift::CmpShiftKeys;
use super::cmp_spline::CmpSplineKeys;
use super::interval::IntervalKeys;
use super::lut::LutKeys;
use super::relu::ReluKeys;
use super::shift::ShiftKeys;
use super::sign::SignKeys;
use super::spline::SplineKeys;
use crate::fss::{KeyBatch, Scheme};
use crate::mpc::error::PreprocError;
use crate::mpc::preproc::{MaterialKind, Reader};
use crate::party::PartyId;

/// One party's half of a gate's keys with its share of the input mask `r` (the gate opens
/// `x + r`). Prints the mask's length and the keys' public parameters; zeroes the mask share
/// when dropped.
pub struct Masked<K> {
    /// This party's additive share of the input mask, one per element.
    pub(crate) mask: Vec<u64>,
    /// The gate's keys.
    pub(crate) keys: K,
}

impl<K> Masked<K> {
    /// Elements (one mask share each).
    pub fn len(&self) -> usize {
        self.mask.len()
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.mask.is_empty()
    }

    /// The gate's keys.
    pub fn keys(&self) -> &K {
        &self.keys
    }
}

impl<K: std::fmt::Debug> std::fmt::Debug for Masked<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masked")
            .field("len", &self.mask.len())
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl<K> Drop for Masked<K> {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.mask);
    }
}

/// Typed FSS material, as the preprocessing store holds it.
#[derive(Debug)]
pub enum FssMaterial {
    /// A DCF key batch.
    Dcf(KeyBatch),
    /// A DPF key batch.
    Dpf(KeyBatch),
    /// Sign / DReLU / less-than keys.
    Sign(Masked<SignKeys>),
    /// ReLU keys.
    Relu(Masked<ReluKeys>),
    /// Interval-containment keys.
    Interval(Masked<IntervalKeys>),
    /// Spline keys.
    Spline(Masked<SplineKeys>),
    /// Lookup-table keys.
    Lut(Masked<LutKeys>),
    /// Exact-shift keys.
    Shift(Masked<ShiftKeys>),
    /// A one-bit comparison key batch.
    Cmp(KeyBatch),
    /// DReLU / ReLU keys from a one-bit comparison.
    CmpRelu(Masked<CmpReluKeys>),
    /// Exact-shift keys from one-bit comparisons.
    CmpShift(Masked<CmpShiftKeys>),
    /// Spline keys from one comparison key and opened bits.
    CmpSpline(Masked<CmpSplineKeys>),
}

/// A type of FSS material the store can hand out ([`Preproc::take_fss`](super::super::Preproc::take_fss)).
pub trait FssItem: Sized {
    /// Its kind in the store.
    const KIND: MaterialKind;
    /// Wrap into the store's enum.
    fn into_material(self) -> FssMaterial;
    /// Unwrap from the store's enum (`None` for another kind).
    fn from_material(m: FssMaterial) -> Option<Self>;
}

macro_rules! fss_item {
    ($ty:ty, $kind:ident, $variant:ident) => {
        impl FssItem for $ty {
            const KIND: MaterialKind = MaterialKind::$kind;
            fn into_material(self) -> FssMaterial {
                FssMaterial::$variant(self)
            }
            fn from_material(m: FssMaterial) -> Option<Self> {
                match m {
                    FssMaterial::$variant(k) => Some(k),
                    _ => None,
                }
            }
        }
    };
}
fss_item!(Masked<SignKeys>, SignKeys, Sign);
fss_item!(Masked<ReluKeys>, ReluKeys, Relu);
fss_item!(Masked<IntervalKeys>, IntervalKeys, Interval);
fss_item!(Masked<SplineKeys>, SplineKeys, Spline);
fss_item!(Masked<LutKeys>, LutKeys, Lut);
fss_item!(Masked<ShiftKeys>, ShiftKeys, Shift);
fss_item!(Masked<CmpReluKeys>, CmpReluKeys, CmpRelu);
fss_item!(Masked<CmpShiftKeys>, CmpShiftKeys, CmpShift);
fss_item!(Masked<CmpSplineKeys>, CmpSplineKeys, CmpSpline);

impl FssMaterial {
    /// The store kind.
    pub fn kind(&self) -> MaterialKind {
        match self {
            FssMaterial::Dcf(_) => MaterialKind::DcfKeys,
            FssMaterial::Dpf(_) => MaterialKind::DpfKeys,
            FssMaterial::Sign(_) => MaterialKind::SignKeys,
            FssMaterial::Relu(_) => MaterialKind::ReluKeys,
            FssMaterial::Interval(_) => MaterialKind::IntervalKeys,
            FssMaterial::Spline(_) => MaterialKind::SplineKeys,
            FssMaterial::Lut(_) => MaterialKind::LutKeys,
            FssMaterial::Shift(_) => MaterialKind::ShiftKeys,
            FssMaterial::Cmp(_) => MaterialKind::CmpKeys,
            FssMaterial::CmpRelu(_) => MaterialKind::CmpReluKeys,
            FssMaterial::CmpShift(_) => MaterialKind::CmpShiftKeys,
            FssMaterial::CmpSpline(_) => MaterialKind::CmpSplineKeys,
        }
    }

    /// The shape key (see the module docs).
    pub fn dims(&self) -> Vec<usize> {
        let n = |b: &KeyBatch| b.input_bits() as usize;
        match self {
            FssMaterial::Dcf(b) => vec![b.len(), n(b), b.words() as usize],
            FssMaterial::Dpf(b) => vec![b.len(), n(b)],
            FssMaterial::Sign(k) => vec![k.mask.len(), k.keys.width as usize],
            FssMaterial::Relu(k) => vec![k.mask.len(), k.keys.width as usize],
            FssMaterial::Interval(k) => vec![k.mask.len(), k.keys.width as usize],
            FssMaterial::Spline(k) => {
                vec![k.mask.len(), k.keys.width as usize, k.keys.dcf.words() as usize - 1]
            }
            FssMaterial::Lut(k) => vec![k.mask.len(), k.keys.index_bits as usize],
            FssMaterial::Shift(k) => {
                vec![k.mask.len(), k.keys.width as usize, k.keys.shift as usize]
            }
            FssMaterial::Cmp(b) => vec![b.len(), n(b)],
            FssMaterial::CmpRelu(k) => {
                vec![k.mask.len(), k.keys.width as usize, usize::from(k.keys.select)]
            }
            FssMaterial::CmpShift(k) => {
                vec![k.mask.len(), k.keys.width as usize, k.keys.shift as usize]
            }
            FssMaterial::CmpSpline(k) => {
                vec![k.mask.len(), k.keys.width as usize, k.keys.degree, k.keys.pieces]
            }
        }
    }

    /// The party every key batch inside belongs to (they agree: the dealer makes each half for
    /// one party, and loading checks it).
    pub fn party(&self) -> PartyId {
        match self {
            FssMaterial::Dcf(b) | FssMaterial::Dpf(b) | FssMaterial::Cmp(b) => b.party(),
            FssMaterial::CmpRelu(k) => k.keys.cmp.party(),
            FssMaterial::CmpShift(k) => k.keys.borrow.party(),
            FssMaterial::CmpSpline(k) => k.keys.cmp.party(),
            FssMaterial::Sign(k) => k.keys.dcf.party(),
            FssMaterial::Relu(k) => k.keys.dcf.party(),
            FssMaterial::Interval(k) => k.keys.dcf.party(),
            FssMaterial::Spline(k) => k.keys.dcf.party(),
            FssMaterial::Lut(k) => k.keys.dpf.party(),
            FssMaterial::Shift(k) => k.keys.borrow.party(),
        }
    }

    /// Append the body (see the module docs) to `out`, or only count its bytes ([`Sink::count`]).
    pub(crate) fn write(&self, out: &mut Sink<'_>) {
        match self {
            FssMaterial::Dcf(b) | FssMaterial::Dpf(b) | FssMaterial::Cmp(b) => put_batch(out, b),
            FssMaterial::CmpRelu(k) => {
                put_words(out, &k.mask);
                put_batch(out, &k.keys.cmp);
                put_words(out, &k.keys.flips);
                put_words(out, &k.keys.rho);
                put_words(out, &k.keys.rho_r);
            }
            FssMaterial::CmpShift(k) => {
                put_words(out, &k.mask);
                if k.keys.width == 64 {
                    put_batch(out, &k.keys.wrap);
                }
                put_batch(out, &k.keys.borrow);
                put_words(out, &k.keys.flips);
                put_words(out, &k.keys.terms);
            }
            FssMaterial::CmpSpline(k) => {
                put_words(out, &k.mask);
                put_batch(out, &k.keys.cmp);
                put_words(out, &k.keys.flips);
                put_words(out, &k.keys.mask_powers);
                put_words(out, &k.keys.rho_powers);
            }
            FssMaterial::Sign(k) => {
                put_words(out, &k.mask);
                put_batch(out, &k.keys.dcf);
                put_words(out, &k.keys.mask_msb);
            }
            FssMaterial::Relu(k) => {
                put_words(out, &k.mask);
                put_batch(out, &k.keys.dcf);
                put_words(out, &k.keys.mask_terms);
            }
            FssMaterial::Interval(k) => {
                put_words(out, &k.mask);
                put_batch(out, &k.keys.dcf);
            }
            FssMaterial::Spline(k) => {
                put_words(out, &k.mask);
                put_batch(out, &k.keys.dcf);
                put_words(out, &k.keys.mask_powers);
            }
            FssMaterial::Lut(k) => {
                put_words(out, &k.mask);
                put_batch(out, &k.keys.dpf);
            }
            FssMaterial::Shift(k) => {
                put_words(out, &k.mask);
                put_batch(out, &k.keys.wrap);
                put_batch(out, &k.keys.borrow);
                put_words(out, &k.keys.mask_high);
                if k.keys.in_range() {
                    put_words(out, &k.keys.region);
                }
            }
        }
    }

    /// Read and check a body of `kind` with shape key `dims` for `party`.
    ///
    /// # Errors
    /// [`PreprocError::Malformed`] naming the first section that disagrees with the shape key or
    /// the party; [`PreprocError::Truncated`].
    pub(crate) fn read(
        r: &mut Reader<'_>,
        kind: MaterialKind,
        dims: &[usize],
        party: PartyId,
    ) -> Result<Self, PreprocError> {
        let malformed = |what: String| PreprocError::Malformed(format!("{kind}: {what}"));
        let rank = match kind {
            MaterialKind::DcfKeys
            | MaterialKind::SplineKeys
            | MaterialKind::ShiftKeys
            | MaterialKind::CmpReluKeys
            | MaterialKind::CmpShiftKeys => 3,
            MaterialKind::CmpSplineKeys => 4,
            _ => 2,
        };
        if dims.len() != rank {
            return Err(malformed(format!("shape key of rank {}, expected {rank}", dims.len())));
        }
        let len = dims[0];
        let width = u32::try_from(dims[1])
            .ok()
            .filter(|w| (1..=64).contains(w))
            .ok_or_else(|| malformed(format!("width {} outside 1..=64", dims[1])))?;
        let checked = |b: KeyBatch, scheme: Scheme, n: u32, words: u32| {
            if b.scheme() != scheme
                || b.party() != party
                || b.input_bits() != n
                || b.words() != words
                || b.len() != len
            {
                return Err(malformed(format!(
                    "key batch is {} of {} with {} bits, {} word(s), {} keys; expected {scheme} of {party} with {n} bits, {words} word(s), {len} keys",
                    b.scheme(),
                    b.party(),
                    b.input_bits(),
                    b.words(),
                    b.len()
                )));
            }
            Ok(b)
        };
        let gate_width = |min: u32| {
            if width < min {
                Err(malformed(format!("gate width {width} below {min}")))
            } else {
                Ok(width)
            }
        };
        Ok(match kind {
            MaterialKind::DcfKeys => {
                let words = u32::try_from(dims[2]).unwrap_or(u32::MAX);
                FssMaterial::Dcf(checked(get_batch(r)?, Scheme::Dcf, width, words)?)
            }
            MaterialKind::DpfKeys => {
                FssMaterial::Dpf(checked(get_batch(r)?, Scheme::Dpf, width, 1)?)
            }
            MaterialKind::SignKeys => {
                let m = gate_width(2)?;
                let mask = get_words(r, len)?;
                let dcf = checked(get_batch(r)?, Scheme::Dcf, m - 1, 1)?;
                let mask_msb = get_words(r, len)?;
                FssMaterial::Sign(Masked { mask, keys: SignKeys { width: m, dcf, mask_msb } })
            }
            MaterialKind::ReluKeys => {
                let m = gate_width(2)?;
                let mask = get_words(r, len)?;
                let dcf = checked(get_batch(r)?, Scheme::Dcf, m - 1, 2)?;
                let mask_terms = get_words(r, len.checked_mul(3).ok_or_else(|| too_long(kind))?)?;
                FssMaterial::Relu(Masked { mask, keys: ReluKeys { width: m, dcf, mask_terms } })
            }
            MaterialKind::IntervalKeys => {
                let mask = get_words(r, len)?;
                let dcf = checked(get_batch(r)?, Scheme::Dcf, width, 1)?;
                FssMaterial::Interval(Masked { mask, keys: IntervalKeys { width, dcf } })
            }
            MaterialKind::SplineKeys => {
                let words = dims[2]
                    .checked_add(1)
                    .filter(|&w| w <= crate::fss::keys::MAX_WORDS as usize)
                    .ok_or_else(|| malformed(format!("degree {} too large", dims[2])))?;
                let mask = get_words(r, len)?;
                let dcf = checked(get_batch(r)?, Scheme::Dcf, width, words as u32)?;
                let powers = get_words(r, len.checked_mul(words).ok_or_else(|| too_long(kind))?)?;
                FssMaterial::Spline(Masked {
                    mask,
                    keys: SplineKeys { width, dcf, mask_powers: powers },
                })
            }
            MaterialKind::LutKeys => {
                if width > crate::fss::dpf::MAX_EVAL_ALL_BITS {
                    return Err(malformed(format!("index width {width} too large")));
                }
                let mask = get_words(r, len)?;
                let dpf = checked(get_batch(r)?, Scheme::Dpf, width, 1)?;
                FssMaterial::Lut(Masked { mask, keys: LutKeys { index_bits: width, dpf } })
            }
            MaterialKind::ShiftKeys => {
                let m = gate_width(2)?;
                let shift = u32::try_from(dims[2])
                    .ok()
                    .filter(|s| (1..m).contains(s))
                    .ok_or_else(|| malformed(format!("shift {} outside 1..{m}", dims[2])))?;
                let mask = get_words(r, len)?;
                // Range mode (`shift::keygen_in_range`) files an empty wrap batch and the region
                // shares after the mask's high part.
                let wrap = get_batch(r)?;
                let in_range = wrap.is_empty() && len > 0;
                let wrap = if in_range { wrap } else { checked(wrap, Scheme::Dcf, m, 1)? };
                if in_range && (wrap.party() != party || m == 64) {
                    return Err(malformed(
                        "range-mode shift keys of another party or width 64".into(),
                    ));
                }
                let borrow = checked(get_batch(r)?, Scheme::Dcf, shift, 1)?;
                let mask_high = get_words(r, len)?;
                let region = if in_range { get_words(r, len)? } else { Vec::new() };
                FssMaterial::Shift(Masked {
                    mask,
                    keys: ShiftKeys { width: m, shift, wrap, borrow, mask_high, region },
                })
            }
            MaterialKind::CmpKeys => {
                FssMaterial::Cmp(checked(get_batch(r)?, Scheme::Cmp, width, 1)?)
            }
            MaterialKind::CmpReluKeys => {
                let m = gate_width(2)?;
                let select = match dims[2] {
                    0 => false,
                    1 => true,
                    s => return Err(malformed(format!("select {s} is not 0 or 1"))),
                };
                let mask = get_words(r, len)?;
                let cmp = checked(get_batch(r)?, Scheme::Cmp, m - 1, 1)?;
                let flips = get_bits(r, len)?;
                let rho = get_words(r, len)?;
                let rho_r = get_words(r, if select { len } else { 0 })?;
                FssMaterial::CmpRelu(Masked {
                    mask,
                    keys: CmpReluKeys { width: m, select, cmp, flips, rho, rho_r },
                })
            }
            MaterialKind::CmpShiftKeys => {
                let m = gate_width(2)?;
                let shift = u32::try_from(dims[2])
                    .ok()
                    .filter(|s| (1..m).contains(s))
                    .ok_or_else(|| malformed(format!("shift {} outside 1..{m}", dims[2])))?;
                let mask = get_words(r, len)?;
                let wrap = if m == 64 {
                    checked(get_batch(r)?, Scheme::Cmp, m, 1)?
                } else {
                    KeyBatch::empty(party)
                };
                let borrow = checked(get_batch(r)?, Scheme::Cmp, shift, 1)?;
                let bits = len
                    .checked_mul(CmpShiftKeys::bits_per_element(m))
                    .ok_or_else(|| too_long(kind))?;
                let flips = get_bits(r, bits)?;
                let terms = get_words(r, len.checked_mul(3).ok_or_else(|| too_long(kind))?)?;
                FssMaterial::CmpShift(Masked {
                    mask,
                    keys: CmpShiftKeys { width: m, shift, wrap, borrow, flips, terms },
                })
            }
            MaterialKind::CmpSplineKeys => {
                let (degree, pieces) = (dims[2], dims[3]);
                let lengths = CmpSplineKeys::lengths(len, degree, pieces)
                    .filter(|_| degree < crate::fss::keys::MAX_WORDS as usize);
                let Some([_, powers, rhos]) = lengths else {
                    return Err(malformed(format!("{pieces} pieces of degree {degree}")));
                };
                let mask = get_words(r, len)?;
                let cmp = checked(get_batch(r)?, Scheme::Cmp, width, 1)?;
                let flips = get_bits(r, len * (pieces - 1))?;
                let mask_powers = get_words(r, powers)?;
                let rho_powers = get_words(r, rhos)?;
                FssMaterial::CmpSpline(Masked {
                    mask,
                    keys: CmpSplineKeys {
                        width,
                        degree,
                        pieces,
                        cmp,
                        flips,
                        mask_powers,
                        rho_powers,
                    },
                })
            }
            other => return Err(malformed(format!("{other} is not FSS material"))),
        })
    }
}

fn too_long(kind: MaterialKind) -> PreprocError {
    PreprocError::Malformed(format!("{kind}: batch length overflows"))
}

/// Where [`FssMaterial::write`] puts a body: it always counts the bytes, and appends them only
/// when it has a buffer — the stream and the fine-tuning report count gigabytes of keys per step,
/// which must not mean serialising them.
pub(crate) struct Sink<'a> {
    bytes: Option<&'a mut Vec<u8>>,
    /// Bytes written (or that would have been).
    pub(crate) count: usize,
}

impl<'a> Sink<'a> {
    /// Append to `out`.
    pub(crate) fn bytes(out: &'a mut Vec<u8>) -> Self {
        Self { bytes: Some(out), count: 0 }
    }

    /// Only count.
    pub(crate) fn count() -> Self {
        Self { bytes: None, count: 0 }
    }
}

fn put_words(out: &mut Sink<'_>, words: &[u64]) {
    out.count += 8 + 8 * words.len();
    if let Some(out) = out.bytes.as_deref_mut() {
        out.extend_from_slice(&(words.len() as u64).to_le_bytes());
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }
}

fn put_batch(out: &mut Sink<'_>, batch: &KeyBatch) {
    out.count += 8 + batch.wire_len();
    if let Some(out) = out.bytes.as_deref_mut() {
        out.extend_from_slice(&(batch.wire_len() as u64).to_le_bytes());
        batch.append_to(out);
    }
}

/// A u64 vector of exactly `expected` words.
fn get_words(r: &mut Reader<'_>, expected: usize) -> Result<Vec<u64>, PreprocError> {
    let count = r.u64()?;
    if count != expected as u64 {
        return Err(PreprocError::Malformed(format!(
            "vector of {count} words where the shape key implies {expected}"
        )));
    }
    let bytes = r.take(
        expected
            .checked_mul(8)
            .ok_or_else(|| PreprocError::Malformed("vector length overflows".into()))?,
    )?;
    Ok(bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
}

/// `bits` packed bits (a u64 vector of ⌈bits/64⌉ words with nothing set beyond `bits`).
fn get_bits(r: &mut Reader<'_>, bits: usize) -> Result<Vec<u64>, PreprocError> {
    let words = get_words(r, packed_words(bits))?;
    if super::cmp_relu::bits_beyond(&words, bits) {
        return Err(PreprocError::Malformed("packed bits set beyond the batch length".into()));
    }
    Ok(words)
}

fn get_batch(r: &mut Reader<'_>) -> Result<KeyBatch, PreprocError> {
    let len = r.u64()?;
    let len = usize::try_from(len)
        .map_err(|_| PreprocError::Malformed("key batch length overflows".into()))?;
    let bytes = r.take(len)?;
    KeyBatch::from_bytes(bytes).map_err(|e| PreprocError::Malformed(format!("key batch: {e}")))
}
