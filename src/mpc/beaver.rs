//! Beaver-triple products: elementwise product, square and matrix product.
//!
//! Beaver (CRYPTO'91). With a dealer triple (a, b, c = a·b) shared between the parties, the
//! parties open d = x − a and e = y − b — uniformly random because a and b are — and compute
//! ⟨xy⟩ = ⟨c⟩ + d·⟨b⟩ + ⟨a⟩·e + d·e (the last term added by P0 only). Correctness is exact in
//! Z_2^64; privacy: each party sees only d and e, which are one-time-padded by a and b.
//!
//! The local products and sums run on the party's [`Backend`] (`ctx.backend()`).
//!
//! Cost per party (online): one round; elementwise product 16·n bytes, square 8·n bytes,
//! matrix product (m×k)·(k×n) 8·(mk + kn) bytes. Preprocessing: 3 tensors per triple.
//! Fixed-point products carry 2f fractional bits; follow them with
//! [`trunc_local`](super::trunc::trunc_local).

use super::error::Result;
use crate::backend::{Backend, ElemOp};
use crate::net::{Channel, exchange};
use crate::ring::{RingTensor, check_shape};

use super::preproc::MaterialKind;
use super::{Dealer, MpcError, PartyCtx, PartyId, Share};

/// Dealer: one triple for an elementwise product of tensors of `shape`.
///
/// # Errors
/// [`MpcError::Shape`] for a shape above [`MAX_ELEMENTS`](crate::ring::MAX_ELEMENTS).
pub fn gen_mul(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    check_shape("beaver::gen_mul", shape)?;
    let a = RingTensor::random(shape, dealer.rng());
    let b = RingTensor::random(shape, dealer.rng());
    let c = a.mul_elem(&b)?;
    dealer.deal(MaterialKind::ElemTriple, shape, vec![a, b, c])
}

/// Dealer: one pair for an elementwise square of a tensor of `shape`.
///
/// # Errors
/// As [`gen_mul`].
pub fn gen_square(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    check_shape("beaver::gen_square", shape)?;
    let a = RingTensor::random(shape, dealer.rng());
    let c = a.mul_elem(&a)?;
    dealer.deal(MaterialKind::SquarePair, shape, vec![a, c])
}

/// Dealer: one triple for an (m×k)·(k×n) matrix product.
///
/// # Errors
/// As [`gen_mul`].
pub fn gen_matmul(dealer: &mut Dealer, m: usize, k: usize, n: usize) -> Result<()> {
    for shape in [[m, k], [k, n], [m, n]] {
        check_shape("beaver::gen_matmul", &shape)?;
    }
    let a = RingTensor::random(&[m, k], dealer.rng());
    let b = RingTensor::random(&[k, n], dealer.rng());
    let c = a.matmul(&b)?;
    dealer.deal(MaterialKind::MatTriple, &[m, k, n], vec![a, b, c])
}

/// `a op b` elementwise on the backend.
fn elem(backend: &dyn Backend, op: ElemOp, a: &RingTensor, b: &RingTensor) -> Result<RingTensor> {
    if a.shape() != b.shape() {
        return Err(MpcError::Shape {
            op: "beaver (elementwise)",
            left: a.shape().to_vec(),
            right: b.shape().to_vec(),
        });
    }
    let mut out = vec![0; a.len()];
    backend.elementwise(op, a.as_slice(), b.as_slice(), &mut out)?;
    Ok(RingTensor::from_vec(a.shape(), out)?)
}

/// `a (m×k) · b (k×n)` on the backend.
fn mat(backend: &dyn Backend, a: &RingTensor, b: &RingTensor) -> Result<RingTensor> {
    let (m, k) = a.dims2("beaver::matmul")?;
    let (_, n) = b.dims2("beaver::matmul")?;
    let mut out = vec![0; m * n];
    backend.matmul(a.as_slice(), b.as_slice(), (m, k, n), &mut out)?;
    Ok(RingTensor::from_vec(&[m, n], out)?)
}

/// Open the masked differences (one message, one round): returns (d, e) as full tensors.
fn open_masked<C: Channel>(
    ctx: &mut PartyCtx<C>,
    op: &'static str,
    mine: &[&RingTensor],
) -> Result<Vec<RingTensor>> {
    let mut payload = Vec::new();
    for t in mine {
        payload.extend_from_slice(&t.to_le_bytes());
    }
    let len = payload.len();
    let theirs = exchange(ctx.channel(), op, payload, len)?;
    let mut offset = 0;
    mine.iter()
        .map(|t| {
            let bytes = &theirs[offset..offset + t.len() * 8];
            offset += t.len() * 8;
            Ok(t.add(&RingTensor::from_le_bytes(t.shape(), bytes)?)?)
        })
        .collect()
}

/// ⟨x⊙y⟩ from ⟨x⟩, ⟨y⟩ (elementwise, ring product; no truncation).
///
/// # Errors
/// [`Error::Shape`](crate::Error::Shape) on mismatched shapes, preprocessing errors (no triple of
/// this shape), channel errors.
pub fn mul<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share, y: &Share) -> Result<Share> {
    let shape = x.shape().to_vec();
    if y.shape() != shape {
        return Err(MpcError::Shape { op: "beaver::mul", left: shape, right: y.shape().to_vec() });
    }
    let [a, b, c]: [Share; 3] =
        ctx.preproc.take(MaterialKind::ElemTriple, &shape)?.try_into().expect("3 tensors");
    let d_mine = x.sub(&a)?;
    let e_mine = y.sub(&b)?;
    let opened = open_masked(ctx, "beaver::mul", &[d_mine.tensor(), e_mine.tensor()])?;
    let (d, e) = (&opened[0], &opened[1]);
    let be = ctx.backend();
    let db = elem(be, ElemOp::Mul, d, b.tensor())?;
    let ae = elem(be, ElemOp::Mul, a.tensor(), e)?;
    let mut z = elem(be, ElemOp::Add, &elem(be, ElemOp::Add, c.tensor(), &db)?, &ae)?;
    if ctx.id == PartyId::P0 {
        z = elem(be, ElemOp::Add, &z, &elem(be, ElemOp::Mul, d, e)?)?;
    }
    Ok(Share::new(z))
}

/// ⟨x⊙x⟩ from ⟨x⟩ with a square pair (a, a²): open d = x − a; x² = a² + 2d·a + d².
///
/// # Errors
/// Preprocessing errors, channel errors.
pub fn square<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
    let shape = x.shape().to_vec();
    let [a, c]: [Share; 2] =
        ctx.preproc.take(MaterialKind::SquarePair, &shape)?.try_into().expect("2 tensors");
    let d_mine = x.sub(&a)?;
    let d = open_masked(ctx, "beaver::square", &[d_mine.tensor()])?.remove(0);
    let be = ctx.backend();
    let da = elem(be, ElemOp::Mul, &d, a.tensor())?;
    let mut z = elem(be, ElemOp::Add, c.tensor(), &elem(be, ElemOp::Add, &da, &da)?)?;
    if ctx.id == PartyId::P0 {
        z = elem(be, ElemOp::Add, &z, &elem(be, ElemOp::Mul, &d, &d)?)?;
    }
    Ok(Share::new(z))
}

/// ⟨X·Y⟩ from ⟨X⟩ (m×k) and ⟨Y⟩ (k×n): open D = X − A and E = Y − B, then
/// ⟨Z⟩ = ⟨C⟩ + D·⟨B⟩ + ⟨A⟩·E (+ D·E at P0).
///
/// # Errors
/// [`Error::Shape`](crate::Error::Shape) unless both are 2-D with equal inner dimensions;
/// preprocessing and channel errors.
pub fn matmul<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share, y: &Share) -> Result<Share> {
    let (m, k) = x.tensor().dims2("beaver::matmul")?;
    let (k2, n) = y.tensor().dims2("beaver::matmul")?;
    if k != k2 {
        return Err(MpcError::Shape {
            op: "beaver::matmul",
            left: x.shape().to_vec(),
            right: y.shape().to_vec(),
        });
    }
    let [a, b, c]: [Share; 3] =
        ctx.preproc.take(MaterialKind::MatTriple, &[m, k, n])?.try_into().expect("3 tensors");
    let d_mine = x.sub(&a)?;
    let e_mine = y.sub(&b)?;
    let opened = open_masked(ctx, "beaver::matmul", &[d_mine.tensor(), e_mine.tensor()])?;
    let (d, e) = (&opened[0], &opened[1]);
    let be = ctx.backend();
    let (db, ae) = (mat(be, d, b.tensor())?, mat(be, a.tensor(), e)?);
    let mut z = elem(be, ElemOp::Add, &elem(be, ElemOp::Add, c.tensor(), &db)?, &ae)?;
    if ctx.id == PartyId::P0 {
        z = elem(be, ElemOp::Add, &z, &mat(be, d, e)?)?;
    }
    Ok(Share::new(z))
}
