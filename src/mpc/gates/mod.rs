//! Gates on masked inputs, built on the DCF and DPF, as two-party protocols.
//!
//! Each gate is three pieces: a dealer `gen_*` (here) that samples the input mask r, makes both
//! parties' keys (`<gate>::keygen`) and files them with shares of r as one-time typed material
//! ([`material`]); a party-side evaluation (`<gate>::<eval>`) that does its FSS work through a
//! [`Backend`] (CPU, GPU or the scheduler, all giving the same bits); and the protocol
//! ([`drelu`], [`relu()`], [`spline()`], …), which is always [`run_gate`]: take the keys, open
//! `x + r` ([`open_masked`], one round, 8 bytes per element each way), evaluate.
//!
//! Every gate works on a **masked** input `x̂ = x + r (mod 2^64)`, where `r` is the dealer's
//! random mask (parties hold additive shares of `r`; opening `x̂` is the one round that turns an
//! additive sharing of `x` into the masked form). The dealer, knowing `r`, makes the keys; each
//! party evaluates locally on the public `x̂` and obtains **additive shares over Z_2^64** of the
//! result (1-bit results are 0/1 ring elements; their low bits are XOR shares).
//!
//! **Bit-width reduction.** Each gate takes a width `m` and assumes the documented input range
//! (`x ∈ [−2^(m−1), 2^(m−1))` for signed gates): shares and masks reduce mod 2^m locally, so an
//! m-bit DCF/DPF does the work of a 64-bit one, with `(m/64)` of the key size and time.
//!
//! | gate | keys per element | evaluations | one party's key bytes |
//! |---|---|---|---|
//! | [`sign::msb`] / DReLU / less-than a constant | 1 DCF on m − 1 bits + 1 word | 1 | 16 + 24(m − 2) + 16 + 8 |
//! | [`interval::contains`] `[p ≤ x < q)` | 1 DCF on m bits | 2 | 16 + 24(m − 1) + 16 |
//! | [`lut::lookup`] `T[x]`, b-bit index | 1 DPF on b bits | full domain (2^b) | 16 + 16(b − 1) + 16 |
//! | [`relu::relu`] (DReLU and select in one round) | 1 two-word DCF on m − 1 bits + 3 words | 1 | 16 + 32(m − 2) + 32 + 24 |
//! | [`spline::eval`], k pieces of degree d | 1 (d+1)-word DCF on m bits + d + 1 words | k | 16 + (16 + 8(d+1))(m − 1) + 16(d+1) + 8(d+1) |
//! | [`cmp_relu`] DReLU / ReLU with one opened bit (one more round) | 1 comparison key on m − 1 bits + 1 bit + 1–2 words | 1 (m − 6 AES blocks) | 16·(m − 8) + 32 + ⅛ + 8 (+ 8) |
//! | [`cmp_shift`] exact `⌊x / 2^s⌋` with one opened bit (one more round; no wrap key below m = 64) | comparison on s bits + 1 bit + 3 words | 1 | 16·(s − 7) + 32 + ⅛ + 24 |
//! | [`shift::ars`] / [`shift::lrs`] exact `⌊x / 2^s⌋` (truncation, digits) | 1 DCF on m bits + 1 on s bits + 1 word | 2 | 56 + 24(m − 1) + 24(s − 1) |

// Index loops over elements (k), pieces (i) and powers (e, j) mirror the formulas in the docs
// and touch several parallel arrays at once; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

use rand::Rng;

use super::error::Result;
use super::{Dealer, PartyCtx, Share};
use crate::backend::Backend;
use crate::net::{Channel, exchange};
use crate::ring::RingTensor;
use material::{FssItem, FssMaterial, Masked};

pub mod cmp_relu;
pub mod cmp_shift;
pub mod cmp_spline;
pub mod interval;
pub mod lut;
pub mod material;
pub mod relu;
pub mod shift;
pub mod sign;
pub mod spline;

/// The step every gate starts with: open `x̂ = x + r` (r the dealer's mask for this gate, of
/// which this party holds `mask`). Each party sends its share of `x + r` and adds the peer's:
/// one round, `8·n` bytes each way. Both learn `x̂`, which is uniform because `r` is.
///
/// # Errors
/// [`MpcError::Shape`](super::MpcError::Shape) when `mask` does not match `x`; channel errors.
pub fn open_masked<C: Channel>(
    ctx: &mut PartyCtx<C>,
    op: &'static str,
    x: &Share,
    mask: &[u64],
) -> Result<Vec<u64>> {
    let xs = x.tensor().as_slice();
    if xs.len() != mask.len() {
        return Err(super::MpcError::Shape { op, left: vec![xs.len()], right: vec![mask.len()] });
    }
    let mine: Vec<u64> = xs.iter().zip(mask).map(|(&a, &r)| a.wrapping_add(r)).collect();
    let bytes: Vec<u8> = mine.iter().flat_map(|v| v.to_le_bytes()).collect();
    let theirs = exchange(ctx.channel(), op, bytes, 8 * mine.len())?;
    Ok(mine
        .iter()
        .zip(theirs.chunks_exact(8))
        .map(|(&a, b)| a.wrapping_add(u64::from_le_bytes(b.try_into().expect("8 bytes"))))
        .collect())
}

/// A whole gate: take this party's keys of type `K` with shape key `dims` from the store (one
/// time), [`open_masked`], then `eval` on the party's backend. One round, `8·n` bytes sent per
/// party; the result is a share of the same shape as `x`.
///
/// # Errors
/// Preprocessing errors (no such keys, another width or length), channel and backend errors.
pub fn run_gate<C: Channel, K>(
    ctx: &mut PartyCtx<C>,
    op: &'static str,
    x: &Share,
    dims: &[usize],
    eval: impl FnOnce(&dyn Backend, &K, &[u64], &mut [u64]) -> Result<()>,
) -> Result<Share>
where
    Masked<K>: FssItem,
{
    let item: Masked<K> = ctx.preproc.take_fss(dims)?;
    let masked = open_masked(ctx, op, x, &item.mask)?;
    let mut out = vec![0u64; masked.len()];
    eval(ctx.backend(), &item.keys, &masked, &mut out)?;
    Ok(Share::new(RingTensor::from_vec(x.shape(), out)?))
}

/// Dealer: `len` fresh input masks and their two additive shares.
///
/// # Errors
/// [`RingError::Shape`](crate::ring::RingError) for a batch above
/// [`MAX_ELEMENTS`](crate::ring::MAX_ELEMENTS).
fn masks(dealer: &mut Dealer, len: usize) -> Result<(Vec<u64>, [Vec<u64>; 2])> {
    crate::ring::check_shape("gates (dealer)", &[len])?;
    let rng = dealer.rng();
    let r: Vec<u64> = (0..len).map(|_| rng.random()).collect();
    let s0: Vec<u64> = (0..len).map(|_| rng.random()).collect();
    let s1 = r.iter().zip(&s0).map(|(&r, &a)| r.wrapping_sub(a)).collect();
    Ok((r, [s0, s1]))
}

/// Dealer: file a gate's two halves with their mask shares.
fn deal_gate<K>(dealer: &mut Dealer, shares: [Vec<u64>; 2], keys: [K; 2]) -> Result<()>
where
    Masked<K>: FssItem,
{
    let [s0, s1] = shares;
    let [k0, k1] = keys;
    dealer.deal_fss([
        Masked { mask: s0, keys: k0 }.into_material(),
        Masked { mask: s1, keys: k1 }.into_material(),
    ])
}

/// Dealer: keys for `len` sign / DReLU / less-than gates of width m ([`drelu`]).
///
/// # Errors
/// [`KeyError::Width`](crate::fss::KeyError::Width) unless 2 ≤ m ≤ 64.
pub fn gen_sign(dealer: &mut Dealer, width: u32, len: usize) -> Result<()> {
    let (r, shares) = masks(dealer, len)?;
    let keys = sign::keygen(width, &r, dealer.rng())?;
    deal_gate(dealer, shares, keys)
}

/// Dealer: keys for `len` ReLU gates of width m ([`relu()`]).
///
/// # Errors
/// [`KeyError::Width`](crate::fss::KeyError::Width) unless 2 ≤ m ≤ 64.
pub fn gen_relu(dealer: &mut Dealer, width: u32, len: usize) -> Result<()> {
    let (r, shares) = masks(dealer, len)?;
    let keys = relu::keygen(width, &r, dealer.rng())?;
    deal_gate(dealer, shares, keys)
}

/// Dealer: keys for `len` interval gates of width m ([`contains`]).
///
/// # Errors
/// [`KeyError::Width`](crate::fss::KeyError::Width) unless 1 ≤ m ≤ 64.
pub fn gen_interval(dealer: &mut Dealer, width: u32, len: usize) -> Result<()> {
    let (r, shares) = masks(dealer, len)?;
    let keys = interval::keygen(width, &r, dealer.rng())?;
    deal_gate(dealer, shares, keys)
}

/// Dealer: keys for `len` evaluations of degree-`degree` splines of width m ([`spline()`]).
///
/// # Errors
/// Key errors for a bad width or a degree ≥ 16.
pub fn gen_spline(dealer: &mut Dealer, width: u32, degree: usize, len: usize) -> Result<()> {
    let (r, shares) = masks(dealer, len)?;
    let keys = spline::keygen(width, degree, &r, dealer.rng())?;
    deal_gate(dealer, shares, keys)
}

/// Dealer: keys for `len` lookups with a b-bit index ([`lookup`]).
///
/// # Errors
/// [`KeyError::Width`](crate::fss::KeyError::Width) unless 1 ≤ b ≤ 24.
pub fn gen_lut(dealer: &mut Dealer, index_bits: u32, len: usize) -> Result<()> {
    let (r, shares) = masks(dealer, len)?;
    let keys = lut::keygen(index_bits, &r, dealer.rng())?;
    deal_gate(dealer, shares, keys)
}

/// Dealer: keys for `len` exact shifts by s of width-m values ([`ars`], [`lrs`]).
///
/// # Errors
/// [`KeyError::Width`](crate::fss::KeyError::Width) unless 2 ≤ m ≤ 64 and 1 ≤ s < m.
pub fn gen_shift(dealer: &mut Dealer, width: u32, shift: u32, len: usize) -> Result<()> {
    let (r, shares) = masks(dealer, len)?;
    let keys = shift::keygen(width, shift, &r, dealer.rng())?;
    deal_gate(dealer, shares, keys)
}

/// Dealer: a raw DCF key batch (`words`-word payloads) for evaluation points chosen by the
/// caller, filed as [`MaterialKind::DcfKeys`](super::preproc::MaterialKind::DcfKeys).
///
/// # Errors
/// The DCF's key errors.
pub fn gen_dcf(
    dealer: &mut Dealer,
    n: u32,
    words: u32,
    alphas: &[u64],
    betas: &[u64],
) -> Result<()> {
    let [k0, k1] = crate::fss::dcf::keygen_words(n, words, alphas, betas, dealer.rng())?;
    dealer.deal_fss([FssMaterial::Dcf(k0), FssMaterial::Dcf(k1)])
}

/// `⟨[x ≥ 0]⟩` for x in the signed m-bit range ([`sign::drelu`]).
///
/// # Errors
/// As [`run_gate`].
pub fn drelu<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share, width: u32) -> Result<Share> {
    run_gate(ctx, "gates::drelu", x, &[x.tensor().len(), width as usize], sign::drelu)
}

/// `⟨[x < c]⟩` for a public c, with x − c in the signed m-bit range ([`sign::less_than`]).
///
/// # Errors
/// As [`run_gate`].
pub fn less_than<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &Share,
    width: u32,
    c: u64,
) -> Result<Share> {
    let dims = [x.tensor().len(), width as usize];
    run_gate(ctx, "gates::less_than", x, &dims, |b, k, m, o| sign::less_than(b, k, m, c, o))
}

/// `⟨max(x, 0)⟩` for x in the signed m-bit range ([`relu::relu`]).
///
/// # Errors
/// As [`run_gate`].
pub fn relu<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share, width: u32) -> Result<Share> {
    run_gate(ctx, "gates::relu", x, &[x.tensor().len(), width as usize], relu::relu)
}

/// `⟨[p ≤ x < q]⟩` ([`interval::contains`]).
///
/// # Errors
/// As [`run_gate`]; bounds outside the m-bit range.
pub fn contains<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &Share,
    width: u32,
    (p, q): (i64, i64),
) -> Result<Share> {
    let dims = [x.tensor().len(), width as usize];
    run_gate(ctx, "gates::contains", x, &dims, |b, k, m, o| interval::contains(b, k, m, p, q, o))
}

/// `⟨f(x)⟩` for a public spline f ([`spline::eval`]).
///
/// # Errors
/// As [`run_gate`]; an invalid spline.
pub fn spline<C: Channel>(ctx: &mut PartyCtx<C>, f: &spline::Spline, x: &Share) -> Result<Share> {
    let dims = [x.tensor().len(), f.width as usize, f.degree()];
    run_gate(ctx, "gates::spline", x, &dims, |b, k, m, o| spline::eval(b, k, f, m, o))
}

/// `⟨T[x]⟩` for a public table of 2^b entries and x ∈ [0, 2^b) ([`lut::lookup`]).
///
/// # Errors
/// As [`run_gate`]; a table of another length.
pub fn lookup<C: Channel>(
    ctx: &mut PartyCtx<C>,
    index_bits: u32,
    table: &[u64],
    x: &Share,
) -> Result<Share> {
    let dims = [x.tensor().len(), index_bits as usize];
    run_gate(ctx, "gates::lookup", x, &dims, |b, k, m, o| lut::lookup(b, k, table, m, o))
}

/// `⟨⌊x / 2^s⌋⟩`, exact, for signed m-bit x ([`shift::ars`]).
///
/// # Errors
/// As [`run_gate`].
pub fn ars<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share, width: u32, s: u32) -> Result<Share> {
    let dims = [x.tensor().len(), width as usize, s as usize];
    run_gate(ctx, "gates::ars", x, &dims, shift::ars)
}

/// `⟨⌊y / 2^s⌋⟩`, exact, for unsigned m-bit y ([`shift::lrs`]).
///
/// # Errors
/// As [`run_gate`].
pub fn lrs<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share, width: u32, s: u32) -> Result<Share> {
    let dims = [x.tensor().len(), width as usize, s as usize];
    run_gate(ctx, "gates::lrs", x, &dims, shift::lrs)
}

/// `x mod 2^m` for m in 1..=64.
#[inline]
pub(crate) fn reduce(x: u64, m: u32) -> u64 {
    if m == 64 { x } else { x & ((1u64 << m) - 1) }
}

/// Reads an m-bit value as signed (two's complement in m bits).
#[inline]
pub fn signed_in(x: u64, m: u32) -> i64 {
    let shift = 64 - m;
    ((x << shift) as i64) >> shift
}
