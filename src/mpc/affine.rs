//! Gate outputs kept in affine form, and products with them from one opening.
//!
//! **Why.** A gate that ends by opening masked bits (the exact shift of
//! [`gates::cmp_shift`](super::gates::cmp_shift), the DReLU bit of
//! [`gates::cmp_relu`](super::gates::cmp_relu)) hands each party its output as
//! y = P − Σ_t c_t·D_t: P and the c_t are functions of what was opened (public to both parties),
//! the D_t are secrets the dealer chose (a mask's high bits, the bits ρ that hid the opened
//! bits). A backward that multiplies y by a fresh secret a — dY ⊙ exp(x), dY ⊙ GELU′(x),
//! dY ⊙ [x ≥ 0] — then needs y in no further masked form: with a masked as â = a + r,
//!
//! a·y = â·y − r·P + Σ_t c_t·(r·D_t),
//!
//! and the dealer, who knows r and every D_t, deals ⟨r·D_t⟩ ([`gen_mul`]). So the product costs
//! **one opening of a** (one round, 8 bytes per element per party) where a product of two
//! additive secrets opens both (16 bytes), and nothing of y is opened again.
//!
//! **Dealer coupling.** The dealer must remember the forward's D_t until it deals the backward:
//! [`DealerAffine`] (dealer-only, zeroised on drop) is what a protocol's `Plan` keeps, as
//! [`DealerMask`](super::masked::DealerMask) is for masked products. The product's correlation
//! is bound to both its mask and the affine output by its id, so a product with another
//! forward's output is [`PreprocError::Unbound`](super::PreprocError::Unbound), not a wrong value.
//!
//! **Truncation.** [`mul`] is exact in Z_2^64. [`fmul`] follows it with a *local* truncation
//! ([`trunc`](super::trunc)): 0 rounds, 0 bytes, the result ⌊a·y / 2^s⌋ or one more, and a
//! wrap with probability about |a·y|/2^63 (for gradients at 2^32, below 2^−28 per element) —
//! CrypTen's own truncation, used only in the backward passes, whose outputs feed gradient
//! sums rather than further exact specs.
//!
//! **What each party learns:** â = a + r with r uniform and one-time, nothing else.

use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::error::Result;
use super::masked;
use super::preproc::{MaterialId, MaterialKind};
use super::{Dealer, MpcError, PartyCtx, Share};
use crate::backend::ElemOp;
use crate::net::Channel;
use crate::ring::RingTensor;

/// The dealer's side of an affine output: its id and the secrets D_t (term-major). Dealer-only;
/// prints its shape only and zeroises the secrets on drop.
pub struct DealerAffine {
    id: MaterialId,
    shape: Vec<usize>,
    terms: usize,
    d: Vec<u64>,
}

impl std::fmt::Debug for DealerAffine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DealerAffine")
            .field("shape", &self.shape)
            .field("terms", &self.terms)
            .finish_non_exhaustive()
    }
}

impl Drop for DealerAffine {
    fn drop(&mut self) {
        self.d.zeroize();
    }
}

/// One party's side of an affine output y = P − Σ_t c_t·D_t: its share ⟨y⟩ and the public P
/// and c_t. Prints its shape only; the share zeroes itself (as every [`Share`]).
pub struct Affine {
    id: MaterialId,
    share: Share,
    public: Vec<u64>,
    coefs: Vec<u64>,
}

impl std::fmt::Debug for Affine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Affine").field("shape", &self.share.shape()).finish_non_exhaustive()
    }
}

/// The id of the affine output of a gate on the masked tensor with mask `mask` (use `tag`).
pub(crate) fn output_id(mask: (MaterialId, bool), tag: u8) -> MaterialId {
    digest(b"prifft affine output v1", &[&mask.0.0, &[u8::from(mask.1), tag]])
}

fn digest(domain: &[u8], parts: &[&[u8]]) -> MaterialId {
    let mut h = Sha256::new();
    h.update(domain);
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    MaterialId(h.finalize()[..16].try_into().expect("16 bytes"))
}

/// The id of the correlation for mask `mask` times the affine output `y`.
fn product_id(mask: MaterialId, y: MaterialId) -> MaterialId {
    digest(b"prifft affine product v1", &[&mask.0, &y.0])
}

impl DealerAffine {
    /// The dealer's record for a gate output: `d` holds `terms` rows of one secret per element.
    pub(crate) fn new(id: MaterialId, shape: &[usize], terms: usize, d: Vec<u64>) -> Self {
        debug_assert_eq!(d.len(), terms * shape.iter().product::<usize>());
        DealerAffine { id, shape: shape.to_vec(), terms, d }
    }

    /// The output's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
}

impl Affine {
    /// A party's record of a gate output (`coefs`: `coefs.len() / len` term-major rows).
    pub(crate) fn new(id: MaterialId, share: Share, public: Vec<u64>, coefs: Vec<u64>) -> Self {
        debug_assert_eq!(public.len(), share.tensor().len());
        Affine { id, share, public, coefs }
    }

    /// This party's additive share of y.
    pub fn share(&self) -> &Share {
        &self.share
    }

    /// The output's shape.
    pub fn shape(&self) -> &[usize] {
        self.share.shape()
    }

    fn terms(&self) -> usize {
        self.coefs.len() / self.public.len().max(1)
    }
}

/// Dealer: one product of a fresh additive tensor with the affine output `y` ([`mul`]): a mask
/// r for the tensor and the correlations ⟨r·D_t⟩, bound to both.
///
/// # Errors
/// Shape errors; [`PreprocError::Reused`](super::PreprocError::Reused) never (the mask is fresh).
pub fn gen_mul(dealer: &mut Dealer, y: &DealerAffine) -> Result<()> {
    let r = masked::gen_mask(dealer, &y.shape)?;
    let n = r.value().len();
    let rv = r.value().as_slice();
    let cross: Vec<u64> = (0..y.terms)
        .flat_map(|t| (0..n).map(move |k| (t, k)))
        .map(|(t, k)| rv[k].wrapping_mul(y.d[t * n + k]))
        .collect();
    let cross = RingTensor::from_vec(&[y.terms, n], cross)?;
    let id = product_id(r.id(), y.id);
    dealer.deal_with_id(MaterialKind::AffineProduct, &[n, y.terms], vec![cross], id)
}

/// Party: ⟨a ⊙ y⟩, exact in Z_2^64, for an additive `a` and the affine output `y` (dealt by
/// [`gen_mul`]): one round, 8 bytes per element per party (a's opening); the work runs on
/// `ctx.backend()`.
///
/// # Errors
/// [`MpcError::Shape`] when the shapes differ; [`PreprocError::Unbound`](super::PreprocError::Unbound)
/// when the next correlation was dealt for another output; other preprocessing, channel and
/// backend errors.
pub fn mul<C: Channel>(ctx: &mut PartyCtx<C>, a: &Share, y: &Affine) -> Result<Share> {
    check_shapes(a.shape(), y.shape())?;
    let ah = masked::mask(ctx, a)?;
    product(ctx, &ah, y)
}

/// Party: [`mul`] with an output whose shift's opening was deferred
/// ([`masked::ars_cmp_deferred`]): the shift's masked bits travel in the message that opens a,
/// so the product still takes one round — 8 bytes per element and the shift's bit per element
/// per party — and the deferred gate none of its own. Returns the product and the output, now
/// in affine form, for any further products with it ([`mul`]). Dealt by [`gen_mul`] with the
/// [`DealerAffine`] of [`masked::gen_shift_cmp_saved`].
///
/// # Errors
/// As [`mul`]; a protocol error for a peer's malformed bits.
pub fn mul_deferred<C: Channel>(
    ctx: &mut PartyCtx<C>,
    a: &Share,
    y: &masked::PendingShift,
) -> Result<(Share, Affine)> {
    check_shapes(a.shape(), y.shape())?;
    let (mine, bits) = y.bits();
    let (ah, opened) = masked::mask_with_bits(ctx, a, mine, bits)?;
    let y = y.finish(ctx.id, &opened)?;
    Ok((product(ctx, &ah, &y)?, y))
}

fn check_shapes(a: &[usize], y: &[usize]) -> Result<()> {
    if a != y {
        return Err(MpcError::Shape { op: "affine::mul", left: a.to_vec(), right: y.to_vec() });
    }
    Ok(())
}

/// ⟨a ⊙ y⟩ from the opened â = a + r and the dealer's ⟨r·D_t⟩ for this mask and output.
fn product<C: Channel>(
    ctx: &mut PartyCtx<C>,
    ah: &masked::MaskedTensor,
    y: &Affine,
) -> Result<Share> {
    let n = y.public.len();
    let terms = y.terms();
    let id = product_id(ah.mask_id(), y.id);
    let cross = ctx.preproc.take_bound(MaterialKind::AffineProduct, &[n, terms], id)?;
    let cross = cross.into_iter().next().expect("an affine product holds one tensor");
    let cross = cross.tensor().as_slice();
    let be = ctx.backend();
    let elem = |op: ElemOp, a: &[u64], b: &[u64]| -> Result<Vec<u64>> {
        let mut out = vec![0; a.len()];
        be.elementwise(op, a, b, &mut out)?;
        Ok(out)
    };
    // â ⊙ ⟨y⟩ − P ⊙ ⟨r⟩ + Σ_t c_t ⊙ ⟨r·D_t⟩.
    let mut z = elem(ElemOp::Mul, ah.public().as_slice(), y.share.tensor().as_slice())?;
    let rp = elem(ElemOp::Mul, &y.public, ah.mask_share().tensor().as_slice())?;
    z = elem(ElemOp::Sub, &z, &rp)?;
    for t in 0..terms {
        let c = elem(ElemOp::Mul, &y.coefs[t * n..(t + 1) * n], &cross[t * n..(t + 1) * n])?;
        z = elem(ElemOp::Add, &z, &c)?;
    }
    Ok(Share::new(RingTensor::from_vec(y.shape(), z)?))
}

/// Party: ⟨a ⊙ y⟩ (exact, [`mul`]) scaled by the public `c` and locally truncated by `s` bits:
/// ⌊c·a·y / 2^s⌋ or one more (module docs). One round, 8 bytes per element per party.
///
/// # Errors
/// As [`mul`].
pub fn fmul<C: Channel>(
    ctx: &mut PartyCtx<C>,
    a: &Share,
    y: &Affine,
    c: u64,
    s: u32,
) -> Result<Share> {
    let z = mul(ctx, a, y)?;
    scale_trunc(ctx, z, c, s)
}

/// Party: [`fmul`] with a deferred output ([`mul_deferred`]): one round, 8 bytes and the
/// shift's bit per element per party. Returns the output in affine form too.
///
/// # Errors
/// As [`mul_deferred`].
pub fn fmul_deferred<C: Channel>(
    ctx: &mut PartyCtx<C>,
    a: &Share,
    y: &masked::PendingShift,
    c: u64,
    s: u32,
) -> Result<(Share, Affine)> {
    let (z, y) = mul_deferred(ctx, a, y)?;
    Ok((scale_trunc(ctx, z, c, s)?, y))
}

/// ×c, then the local truncation by s bits.
fn scale_trunc<C: Channel>(ctx: &mut PartyCtx<C>, z: Share, c: u64, s: u32) -> Result<Share> {
    let z = if c == 1 { z } else { Share::new(z.tensor().scale(c)) };
    super::trunc::trunc(ctx, &z, s)
}

/// Cleartext ⌊c·a·y / 2^s⌋ over the integers (what [`fmul`] reconstructs to, or one more).
pub fn fmul_floor(a: u64, y: u64, c: u64, s: u32) -> u64 {
    let p = i128::from(a as i64) * i128::from(y as i64) * i128::from(c as i64);
    (p >> s) as u64
}
