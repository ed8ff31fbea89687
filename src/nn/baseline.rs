//! The same encoder layers, pooling, head and loss gradient with the CrypTen-style protocol set
//! ([`crate::mpc::baseline`]): what a fine-tuning step costs with "existing secret sharing", for
//! the step ratios of `prifft finetune`.
//!
//! Every linear map is a Beaver matrix product with local truncation (CrypTen opens both
//! operands, and the weight again in the backward); attention products are Beaver products per
//! head (one round each here; CrypTen batches them into one round — rounds only, the bytes are
//! the same); softmax, layer norm, GELU (x·σ(1.702x), CrypTen's), dropout and their backward are
//! the baseline's. The SGD update is the same local one as the PriFFT side.
//!
//! **What each party learns:** nothing (Beaver openings are one-time padded).

use super::{Dims, FRAC, Result, add_rows, col_sums, enc_at, from_heads, scale_trunc, to_heads};
use crate::mpc::baseline as bl;
use crate::mpc::{Dealer, PartyCtx, Share};
use crate::net::Channel;
use crate::ring::RingTensor;

/// A party's shares of one layer's parameters (weights out × in at 2^16, as [`super::encoder::DENSE`]).
#[derive(Clone, Debug)]
pub struct Layer {
    /// (W, b) of Q, K, V, attention output, intermediate, output.
    pub dense: [(Share, Share); 6],
    /// (γ, β) of the two layer norms.
    pub norms: [(Share, Share); 2],
}

/// What the backward needs.
pub struct Saved {
    dims: Dims,
    x: Share,
    q: Share,
    k: Share,
    v: Share,
    probs: Share,
    pd: Share,
    c: Share,
    h1: Share,
    g: Share,
    keep: [Share; 3],
    ln: [bl::LayerNormSaved; 2],
    gelu: bl::GeluSaved,
}

impl std::fmt::Debug for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("baseline::Saved").field("dims", &self.dims).finish_non_exhaustive()
    }
}

/// Gradients of one layer, as [`super::encoder::LayerGrads`].
#[derive(Debug)]
pub struct Grads {
    /// (dW, db) per dense map.
    pub dense: Vec<(Share, Share)>,
    /// (dγ, dβ) per layer norm.
    pub norms: Vec<(Share, Share)>,
    /// ∂L/∂x when asked.
    pub dx: Option<Share>,
}

fn head_slice(t: &RingTensor, i: usize) -> Result<Share> {
    let s = t.shape();
    let (m, n) = (s[1], s[2]);
    Ok(Share::new(RingTensor::from_vec(
        &[m, n],
        t.as_slice()[i * m * n..(i + 1) * m * n].to_vec(),
    )?))
}

fn stack(parts: Vec<Share>, shape: &[usize]) -> Result<Share> {
    let data = parts.into_iter().flat_map(|p| p.into_tensor().into_vec()).collect();
    super::share(shape, data)
}

fn t(x: &Share) -> Result<Share> {
    Ok(bl::transpose(x)?)
}

fn gen_mm(dealer: &mut Dealer, m: usize, k: usize, n: usize) -> Result<()> {
    Ok(bl::gen_matmul(dealer, m, k, n)?)
}

fn mm<C: Channel>(ctx: &mut PartyCtx<C>, a: &Share, b: &Share) -> Result<Share> {
    Ok(bl::matmul(ctx, a, b)?)
}

/// Per head: A_h · B_h (or with either transposed), each a Beaver product.
fn mm_heads<C: Channel>(
    ctx: &mut PartyCtx<C>,
    a: &Share,
    b: &Share,
    ta: bool,
    tb: bool,
) -> Result<Share> {
    let heads = a.shape()[0];
    let mut out = Vec::with_capacity(heads);
    for h in 0..heads {
        let ah = head_slice(a.tensor(), h)?;
        let bh = head_slice(b.tensor(), h)?;
        let ah = if ta { t(&ah)? } else { ah };
        let bh = if tb { t(&bh)? } else { bh };
        out.push(mm(ctx, &ah, &bh)?);
    }
    let (m, n) = (out[0].shape()[0], out[0].shape()[1]);
    stack(out, &[heads, m, n])
}

fn dense_fwd<C: Channel>(ctx: &mut PartyCtx<C>, d: &(Share, Share), x: &Share) -> Result<Share> {
    add_rows(&mm(ctx, x, &t(&d.0)?)?, &d.1)
}

/// Dealer: one layer forward (dropout rate `p` when training).
///
/// # Errors
/// Shape errors.
pub fn gen_forward(dealer: &mut Dealer, dims: &Dims, p: Option<f64>) -> Result<()> {
    let (r, d, f, l, hs) = (dims.rows(), dims.hidden, dims.ffn, dims.seq, dims.head_size());
    let bh = dims.batch * dims.heads;
    for _ in 0..3 {
        gen_mm(dealer, r, d, d)?;
    }
    for _ in 0..bh {
        gen_mm(dealer, l, hs, l)?;
    }
    bl::gen_softmax(dealer, &[bh * l, l])?;
    if p.is_some() {
        bl::gen_dropout(dealer, &[bh * l, l])?;
    }
    for _ in 0..bh {
        gen_mm(dealer, l, l, hs)?;
    }
    gen_mm(dealer, r, d, d)?;
    if p.is_some() {
        bl::gen_dropout(dealer, &[r, d])?;
    }
    bl::gen_layernorm(dealer, &[r, d])?;
    gen_mm(dealer, r, d, f)?;
    bl::gen_gelu(dealer, &[r, f])?;
    gen_mm(dealer, r, f, d)?;
    if p.is_some() {
        bl::gen_dropout(dealer, &[r, d])?;
    }
    Ok(bl::gen_layernorm(dealer, &[r, d])?)
}

/// Party: one layer forward with the shared padding mask rows `amask` ([batch·heads·L, L]).
///
/// # Errors
/// Shape, channel and preprocessing errors.
pub fn forward<C: Channel>(
    ctx: &mut PartyCtx<C>,
    prm: &Layer,
    x: &Share,
    amask: &Share,
    dims: &Dims,
    p: Option<f64>,
    eps: f64,
) -> Result<(Share, Saved)> {
    let (l, hs) = (dims.seq, dims.head_size());
    let bh = dims.batch * dims.heads;
    let c = enc_at(1.0 / (hs as f64).sqrt(), FRAC);
    let q = dense_fwd(ctx, &prm.dense[0], x)?;
    let q = scale_trunc(ctx, &q, c, FRAC)?;
    let k = dense_fwd(ctx, &prm.dense[1], x)?;
    let v = dense_fwd(ctx, &prm.dense[2], x)?;
    let (q, k, v) = (
        Share::new(to_heads(q.tensor(), dims)?),
        Share::new(to_heads(k.tensor(), dims)?),
        Share::new(to_heads(v.tensor(), dims)?),
    );
    let s = mm_heads(ctx, &q, &k, false, true)?;
    let s = super::share(&[bh * l, l], s.into_tensor().into_vec())?.add(amask)?;
    let probs = bl::softmax(ctx, &s, None)?;
    let drop = |ctx: &mut PartyCtx<C>, x: Share| -> Result<(Share, Share)> {
        match p {
            Some(p) => Ok(bl::dropout(ctx, &x, p)?),
            None => Ok((x.clone(), x)),
        }
    };
    let (pd, k1) = drop(ctx, probs.clone())?;
    let pd = super::share(&[bh, l, l], pd.into_tensor().into_vec())?;
    let cx = mm_heads(ctx, &pd, &v, false, false)?;
    let cx = Share::new(from_heads(cx.tensor(), dims)?);
    let a = dense_fwd(ctx, &prm.dense[3], &cx)?;
    let (a, k2) = drop(ctx, a)?;
    let (h1, ln1) = bl::layernorm(ctx, &a.add(x)?, &prm.norms[0].0, &prm.norms[0].1, eps)?;
    let u = dense_fwd(ctx, &prm.dense[4], &h1)?;
    let (g, gs) = bl::gelu(ctx, &u)?;
    let o = dense_fwd(ctx, &prm.dense[5], &g)?;
    let (o, k3) = drop(ctx, o)?;
    let (y, ln2) = bl::layernorm(ctx, &o.add(&h1)?, &prm.norms[1].0, &prm.norms[1].1, eps)?;
    let saved = Saved {
        dims: *dims,
        x: x.clone(),
        q,
        k,
        v,
        probs,
        pd,
        c: cx,
        h1,
        g,
        keep: [k1, k2, k3],
        ln: [ln1, ln2],
        gelu: gs,
    };
    Ok((y, saved))
}

/// Dealer: one layer backward.
///
/// # Errors
/// Shape errors.
pub fn gen_backward(dealer: &mut Dealer, dims: &Dims, need_dx: bool) -> Result<()> {
    let (r, d, f, l, hs) = (dims.rows(), dims.hidden, dims.ffn, dims.seq, dims.head_size());
    let bh = dims.batch * dims.heads;
    bl::gen_layernorm_backward(dealer, &[r, d])?;
    bl::gen_by_bit_backward(dealer, &[r, d])?;
    gen_mm(dealer, r, d, f)?;
    gen_mm(dealer, d, r, f)?;
    bl::gen_gelu_backward(dealer, &[r, f])?;
    gen_mm(dealer, r, f, d)?;
    gen_mm(dealer, f, r, d)?;
    bl::gen_layernorm_backward(dealer, &[r, d])?;
    bl::gen_by_bit_backward(dealer, &[r, d])?;
    gen_mm(dealer, r, d, d)?;
    gen_mm(dealer, d, r, d)?;
    for _ in 0..bh {
        gen_mm(dealer, l, hs, l)?;
    }
    for _ in 0..bh {
        gen_mm(dealer, l, l, hs)?;
    }
    bl::gen_by_bit_backward(dealer, &[bh * l, l])?;
    bl::gen_softmax_backward(dealer, &[bh * l, l])?;
    for _ in 0..bh {
        gen_mm(dealer, l, l, hs)?;
    }
    for _ in 0..bh {
        gen_mm(dealer, l, l, hs)?;
    }
    for _ in 0..3 {
        if need_dx {
            gen_mm(dealer, r, d, d)?;
        }
        gen_mm(dealer, d, r, d)?;
    }
    Ok(())
}

/// Party: one layer backward (dropout rate `p` as in the forward).
///
/// # Errors
/// Shape, channel and preprocessing errors.
pub fn backward<C: Channel>(
    ctx: &mut PartyCtx<C>,
    prm: &Layer,
    s: &Saved,
    dy: &Share,
    p: f64,
    need_dx: bool,
) -> Result<Grads> {
    let dims = &s.dims;
    let (l, hs, bh) = (dims.seq, dims.head_size(), dims.batch * dims.heads);
    let (dr2, dg2, db2) = bl::layernorm_backward(ctx, &s.ln[1], dy)?;
    let dout = bl::dropout_backward(ctx, &s.keep[2], &dr2, p)?;
    let lin = |ctx: &mut PartyCtx<C>, w: &Share, x: &Share, dy: &Share| -> Result<(Share, Share)> {
        let dx = mm(ctx, dy, w)?;
        let dw = mm(ctx, &t(dy)?, x)?;
        Ok((dx, dw))
    };
    let (dg, dw5) = lin(ctx, &prm.dense[5].0, &s.g, &dout)?;
    let du = bl::gelu_backward(ctx, &s.gelu, &dg)?;
    let (dh1p, dw4) = lin(ctx, &prm.dense[4].0, &s.h1, &du)?;
    let (dr1, dg1, db1) = bl::layernorm_backward(ctx, &s.ln[0], &dr2.add(&dh1p)?)?;
    let da = bl::dropout_backward(ctx, &s.keep[1], &dr1, p)?;
    let (dc, dw3) = lin(ctx, &prm.dense[3].0, &s.c, &da)?;
    let dc = Share::new(to_heads(dc.tensor(), dims)?);
    let dpd = mm_heads(ctx, &dc, &s.v, false, true)?;
    let dv = mm_heads(ctx, &s.pd, &dc, true, false)?;
    let dpd = super::share(&[bh * l, l], dpd.into_tensor().into_vec())?;
    let dp = bl::dropout_backward(ctx, &s.keep[0], &dpd, p)?;
    let ds = bl::softmax_backward(ctx, &s.probs, &dp)?;
    let ds = super::share(&[bh, l, l], ds.into_tensor().into_vec())?;
    let dq = mm_heads(ctx, &ds, &s.k, false, false)?;
    let dk = mm_heads(ctx, &ds, &s.q, true, false)?;
    let c = enc_at(1.0 / (hs as f64).sqrt(), FRAC);
    let dq = scale_trunc(ctx, &Share::new(from_heads(dq.tensor(), dims)?), c, FRAC)?;
    let dk = Share::new(from_heads(dk.tensor(), dims)?);
    let dv = Share::new(from_heads(dv.tensor(), dims)?);
    let mut dx = if need_dx { Some(dr1) } else { None };
    let mut dense = Vec::with_capacity(6);
    for (i, g) in [dq, dk, dv].iter().enumerate() {
        if let Some(acc) = dx.as_mut() {
            *acc = acc.add(&mm(ctx, g, &prm.dense[i].0)?)?;
        }
        let dw = mm(ctx, &t(g)?, &s.x)?;
        dense.push((dw, Share::new(col_sums(g.tensor(), dims.hidden)?)));
    }
    let f = dims.ffn;
    dense.push((dw3, Share::new(col_sums(da.tensor(), dims.hidden)?)));
    dense.push((dw4, Share::new(col_sums(du.tensor(), f)?)));
    dense.push((dw5, Share::new(col_sums(dout.tensor(), dims.hidden)?)));
    Ok(Grads { dense, norms: vec![(dg1, db1), (dg2, db2)], dx })
}

/// Dealer: pooling, head, loss gradient and their backward.
///
/// # Errors
/// Shape errors.
pub fn gen_head(dealer: &mut Dealer, dims: &Dims) -> Result<()> {
    let (b, l, d) = (dims.batch, dims.seq, dims.hidden);
    for _ in 0..b {
        gen_mm(dealer, 1, l, d)?;
    }
    gen_mm(dealer, b, d, 2)?;
    bl::gen_softmax(dealer, &[b, 2])?;
    gen_mm(dealer, b, 2, d)?;
    gen_mm(dealer, 2, b, d)?;
    for _ in 0..b {
        gen_mm(dealer, l, 1, d)?;
    }
    Ok(())
}

/// Party: pooling, head, loss gradient and their backward: (logits, (dW, db), dH).
///
/// # Errors
/// Shape, channel and preprocessing errors.
pub fn head<C: Channel>(
    ctx: &mut PartyCtx<C>,
    w: &(Share, Share),
    h: &Share,
    pool: &Share,
    onehot: &Share,
    dims: &Dims,
) -> Result<(Share, (Share, Share), Share)> {
    let (b, l, d) = (dims.batch, dims.seq, dims.hidden);
    let row = |x: &Share, i: usize, n: usize, shape: &[usize]| -> Result<Share> {
        super::share(shape, x.tensor().as_slice()[i * n..(i + 1) * n].to_vec())
    };
    let mut pooled = Vec::with_capacity(b);
    for i in 0..b {
        pooled.push(mm(ctx, &row(pool, i, l, &[1, l])?, &row(h, i, l * d, &[l, d])?)?);
    }
    let pooled = stack(pooled, &[b, d])?;
    let logits = dense_fwd(ctx, w, &pooled)?;
    let dl = bl::softmax(ctx, &logits, None)?.sub(onehot)?;
    let dp = mm(ctx, &dl, &w.0)?;
    let dw = mm(ctx, &t(&dl)?, &pooled)?;
    let db = Share::new(col_sums(dl.tensor(), 2)?);
    let mut dh = Vec::with_capacity(b);
    for i in 0..b {
        dh.push(mm(ctx, &row(pool, i, l, &[l, 1])?, &row(&dp, i, d, &[1, d])?)?);
    }
    Ok((logits, (dw, db), stack(dh, &[b * l, d])?))
}
