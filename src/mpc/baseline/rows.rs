//! The baseline's row-wise operations (softmax, layer norm) and its linear layer, forward and
//! backward (constructions and costs in the [module table](super)).

use super::binary::{gen_ltz, ltz};
use super::elementwise::{gen_exp, gen_reciprocal_positive, reciprocal_positive};
use super::{RECIPROCAL_ITERS, add_c, exp, fmul, fsquare, gen_rsqrt, pub_mul, rsqrt, select};
use crate::mpc::error::Result;
use crate::mpc::nonlinear::{add_const, last_dim, row_sums, spread};
use crate::mpc::{Dealer, MpcError, PartyCtx, Share, beaver, trunc};
use crate::net::Channel;
use crate::ring::RingTensor;

/// The widths compared at each level of the max tree over L columns (a level over w columns
/// compares ⌊w/2⌋ pairs and carries an odd column over).
fn tree_levels(cols: usize) -> Vec<usize> {
    let mut levels = Vec::new();
    let mut w = cols;
    while w > 1 {
        levels.push(w / 2);
        w = w.div_ceil(2);
    }
    levels
}

/// Columns [from, to) of a [rows, cols] tensor.
fn columns(x: &RingTensor, cols: usize, from: usize, to: usize) -> Result<RingTensor> {
    let rows = x.len() / cols.max(1);
    let v = x.as_slice().chunks_exact(cols).flat_map(|r| r[from..to].iter().copied()).collect();
    Ok(RingTensor::from_vec(&[rows, to - from], v)?)
}

/// Concatenate two [rows, ·] tensors along the columns.
fn concat(a: &RingTensor, b: &RingTensor) -> Result<RingTensor> {
    let (rows, ca) = (a.shape()[0], a.shape()[1]);
    let cb = b.shape()[1];
    let mut v = Vec::with_capacity(rows * (ca + cb));
    for (ra, rb) in a.as_slice().chunks_exact(ca.max(1)).zip(b.as_slice().chunks_exact(cb.max(1))) {
        v.extend_from_slice(ra);
        v.extend_from_slice(rb);
    }
    Ok(RingTensor::from_vec(&[rows, ca + cb], v)?)
}

/// One value per row spread over the row's `shape[last]` entries, as a tensor of `shape`.
fn per_row(values: &Share, shape: &[usize]) -> Result<Share> {
    let cols = shape.last().copied().unwrap_or(1);
    Ok(Share::new(RingTensor::from_vec(shape, spread(values.tensor(), cols)?.into_vec())?))
}

/// A [cols] vector repeated over `rows` rows: [rows, cols].
fn tile(v: &RingTensor, rows: usize) -> Result<RingTensor> {
    let data = (0..rows).flat_map(|_| v.as_slice().iter().copied()).collect();
    Ok(RingTensor::from_vec(&[rows, v.len()], data)?)
}

/// Dealer: one [`softmax`] over a [rows, L] tensor.
///
/// # Errors
/// Shape errors.
pub fn gen_softmax(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    let (rows, cols) = last_dim("baseline::gen_softmax", shape)?;
    for h in tree_levels(cols) {
        gen_ltz(dealer, &[rows, h])?;
        beaver::gen_mul(dealer, &[rows, h])?;
        beaver::gen_mul(dealer, &[rows, h])?;
    }
    gen_exp(dealer, &[rows, cols])?;
    gen_reciprocal_positive(dealer, &[rows], RECIPROCAL_ITERS)?;
    beaver::gen_mul(dealer, &[rows, cols])
}

/// Party: softmax over the last dimension of a [rows, L] tensor, with an optional public
/// additive mask (−∞ is −2^15 in fixed point): the row max by a log₂ L tree of comparisons and
/// `where`s, exp of the differences, the row sum, its reciprocal (positive input), one product.
/// 10·⌈log₂ L⌉ + 37 rounds.
///
/// # Errors
/// Shape, preprocessing and channel errors.
pub fn softmax<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &Share,
    mask: Option<&RingTensor>,
) -> Result<Share> {
    let (rows, cols) = last_dim("baseline::softmax", x.shape())?;
    let x = match mask {
        Some(m) => x.add_public(ctx.id, m)?,
        None => x.clone(),
    };
    let x = Share::new(RingTensor::from_vec(&[rows, cols], x.tensor().as_slice().to_vec())?);
    let mut cur = x.clone();
    let mut w = cols;
    for h in tree_levels(cols) {
        let t = cur.tensor();
        let a = Share::new(columns(t, w, 0, h)?);
        let b = Share::new(columns(t, w, h, 2 * h)?);
        let a_ge_b = ltz(ctx, &a.sub(&b)?)?;
        let a_ge_b = add_const(ctx.id, &a_ge_b.scale(u64::MAX), 1);
        let m = select(ctx, &a_ge_b, &a, &b)?;
        cur =
            if w % 2 == 1 { Share::new(concat(m.tensor(), &columns(t, w, w - 1, w)?)?) } else { m };
        w = w.div_ceil(2);
    }
    let max = Share::new(RingTensor::from_vec(&[rows], cur.into_tensor().into_vec())?);
    let logits = x.sub(&per_row(&max, x.shape())?)?;
    let numerator = exp(ctx, &logits)?;
    let den = Share::new(row_sums(numerator.tensor(), cols)?);
    let inv = reciprocal_positive(ctx, &den, RECIPROCAL_ITERS)?;
    fmul(ctx, &numerator, &per_row(&inv, numerator.shape())?)
}

/// Dealer: one [`softmax_backward`].
///
/// # Errors
/// Shape errors.
pub fn gen_softmax_backward(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    beaver::gen_mul(dealer, shape)?;
    beaver::gen_mul(dealer, shape)
}

/// Party: y ⊙ (dY − rowsum(dY ⊙ y)) = y⊙dY − y ⊙ rowsum(y⊙dY): 2 rounds, 32 bytes per element.
///
/// # Errors
/// Shape, preprocessing and channel errors.
pub fn softmax_backward<C: Channel>(ctx: &mut PartyCtx<C>, y: &Share, dy: &Share) -> Result<Share> {
    let (_, cols) = last_dim("baseline::softmax_backward", y.shape())?;
    let a = fmul(ctx, y, dy)?;
    let s = per_row(&Share::new(row_sums(a.tensor(), cols)?), y.shape())?;
    a.sub(&fmul(ctx, y, &s)?)
}

/// What layer norm's backward needs.
pub struct LayerNormSaved {
    normalised: Share,
    inv_std: Share,
    gamma: Share,
}

/// Dealer: one [`layernorm`] over a [rows, H] tensor.
///
/// # Errors
/// Shape errors.
pub fn gen_layernorm(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    let (rows, _) = last_dim("baseline::gen_layernorm", shape)?;
    beaver::gen_square(dealer, shape)?;
    gen_rsqrt(dealer, &[rows])?;
    beaver::gen_mul(dealer, shape)?;
    beaver::gen_mul(dealer, shape)
}

/// Party: layer norm y = γ ⊙ (x − μ)/√(σ² + ε) + β over the last dimension (μ and σ² as row
/// means, local; σ² by a Beaver square; the inverse root per row by [`rsqrt`]; two products):
/// 20 rounds, 40 + 184/H bytes per element. Returns y and what the backward needs.
///
/// # Errors
/// Shape, preprocessing and channel errors.
pub fn layernorm<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &Share,
    gamma: &Share,
    beta: &Share,
    eps: f64,
) -> Result<(Share, LayerNormSaved)> {
    let (rows, h) = last_dim("baseline::layernorm", x.shape())?;
    if gamma.shape() != [h] || beta.shape() != [h] {
        return Err(MpcError::Shape {
            op: "baseline::layernorm (γ, β)",
            left: vec![h],
            right: gamma.shape().to_vec(),
        });
    }
    let row_mean = |ctx: &PartyCtx<C>, t: &RingTensor| -> Result<Share> {
        pub_mul(ctx, &Share::new(row_sums(t, h)?), 1.0 / h as f64)
    };
    let mu = row_mean(ctx, x.tensor())?;
    let centred = x.sub(&per_row(&mu, x.shape())?)?;
    let squares = fsquare(ctx, &centred)?;
    let var = row_mean(ctx, squares.tensor())?;
    let inv_std = rsqrt(ctx, &add_c(ctx.id, &var, eps))?;
    let normalised = fmul(ctx, &centred, &per_row(&inv_std, x.shape())?)?;
    let g = Share::new(RingTensor::from_vec(x.shape(), tile(gamma.tensor(), rows)?.into_vec())?);
    let b = Share::new(RingTensor::from_vec(x.shape(), tile(beta.tensor(), rows)?.into_vec())?);
    let y = fmul(ctx, &normalised, &g)?.add(&b)?;
    Ok((y, LayerNormSaved { normalised, inv_std, gamma: g }))
}

/// Dealer: one [`layernorm_backward`].
///
/// # Errors
/// Shape errors.
pub fn gen_layernorm_backward(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    (0..5).try_for_each(|_| beaver::gen_mul(dealer, shape))
}

/// Party: layer norm's backward from the saved normalised value n and 1/σ: g = dY ⊙ γ,
/// dX = (1/σ) ⊙ (g − mean(g) − n ⊙ mean(g ⊙ n)), dγ = Σ_rows dY ⊙ n, dβ = Σ_rows dY.
/// 5 rounds, 80 bytes per element. Returns (dX, dγ, dβ).
///
/// # Errors
/// Shape, preprocessing and channel errors.
pub fn layernorm_backward<C: Channel>(
    ctx: &mut PartyCtx<C>,
    saved: &LayerNormSaved,
    dy: &Share,
) -> Result<(Share, Share, Share)> {
    let (_, h) = last_dim("baseline::layernorm_backward", dy.shape())?;
    let n = &saved.normalised;
    let g = fmul(ctx, dy, &saved.gamma)?;
    let dgamma = column_sums(fmul(ctx, dy, n)?.tensor(), h)?;
    let dbeta = column_sums(dy.tensor(), h)?;
    let row_mean = |ctx: &PartyCtx<C>, t: &RingTensor| -> Result<Share> {
        per_row(&pub_mul(ctx, &Share::new(row_sums(t, h)?), 1.0 / h as f64)?, dy.shape())
    };
    let mg = row_mean(ctx, g.tensor())?;
    let gn = fmul(ctx, &g, n)?;
    let mgn = row_mean(ctx, gn.tensor())?;
    let t = g.sub(&mg)?.sub(&fmul(ctx, n, &mgn)?)?;
    let inv = per_row(&saved.inv_std, dy.shape())?;
    Ok((fmul(ctx, &inv, &t)?, Share::new(dgamma), Share::new(dbeta)))
}

/// Sums over the rows of a [rows, cols] tensor: [cols].
fn column_sums(x: &RingTensor, cols: usize) -> Result<RingTensor> {
    let mut out = vec![0u64; cols];
    for row in x.as_slice().chunks_exact(cols) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o = o.wrapping_add(v);
        }
    }
    Ok(RingTensor::from_vec(&[cols], out)?)
}

/// Dealer: one [`matmul`] of (m×k)·(k×n).
///
/// # Errors
/// Shape errors.
pub fn gen_matmul(dealer: &mut Dealer, m: usize, k: usize, n: usize) -> Result<()> {
    beaver::gen_matmul(dealer, m, k, n)
}

/// Party: a fixed-point matrix product by a Beaver matrix triple and local truncation: 1 round,
/// 8·(mk + kn) bytes. A linear layer's backward dX = dY·Wᵀ is another call (CrypTen opens W
/// again).
///
/// # Errors
/// Shape, preprocessing and channel errors.
pub fn matmul<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share, w: &Share) -> Result<Share> {
    let z = beaver::matmul(ctx, x, w)?;
    trunc::trunc(ctx, &z, super::FRAC)
}

/// ⟨Wᵀ⟩ (local).
///
/// # Errors
/// Shape errors (W not 2-D).
pub fn transpose(w: &Share) -> Result<Share> {
    Ok(Share::new(w.tensor().transpose()?))
}
