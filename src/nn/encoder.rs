//! One post-LayerNorm BERT encoder layer on shares, forward and backward.
//!
//! Forward (x: rows × d, rows = batch · L):
//!
//! 1. x̂ (1 round); Q, K, V = x̂·Ŵᵀ + b (local); Q scaled by 1/√(d/h);
//! 2. Q, K, V in head layout masked together (1 round); S = Q̂·K̂ᵀ (local);
//! 3. P = softmax(S + padding mask) per row; dropout on P (trainable layers);
//! 4. P̂ (1 round); C = P̂·V̂ (local); Ĉ (1 round); A = Ĉ·Ŵ_oᵀ + b_o; dropout;
//! 5. H₁ = LayerNorm(A + x);
//! 6. Ĥ₁ (1 round); U = Ĥ₁·Ŵ_iᵀ + b_i; G = GELU(U); Ĝ (1 round); O = Ĝ·Ŵ_2ᵀ + b_2; dropout;
//! 7. y = LayerNorm(O + H₁).
//!
//! The backward reverses it by the chain rule, reusing every masked value of the forward (x̂,
//! Q̂, K̂, V̂, P̂, Ĉ, Ĥ₁, Ĝ and the weights Ŵ) so that each product of the backward opens only
//! the incoming gradient. The protocols' own backward functions give softmax, GELU, layer norm
//! and dropout. The bottom trainable layer skips dX (nothing below it trains).
//!
//! Dropout acts where Hugging Face's BERT puts it (on P, after the output projection, after the
//! feed-forward block), in the order [`crate::model::bert::EncoderLayer`] draws its masks, so a
//! replayed mask stream gives the plaintext model's masks exactly.
//!
//! **What each party learns:** nothing (every opening is under a fresh mask; see [`super`]).

use super::linear::{self, Dense};
use super::{
    Dims, FRAC, Result, enc_at, from_heads, gen_masks, gen_matmul, mask_many, matmul_t,
    scale_trunc, to_heads,
};
use crate::mpc::masked::{self, DealerMask, MaskedTensor};
use crate::mpc::nonlinear::{dropout, gelu, layernorm, softmax};
use crate::mpc::{Dealer, PartyCtx, Share};
use crate::net::Channel;
use crate::prg::ChaCha20Rng;
use crate::ring::RingTensor;

/// Names of a layer's six dense maps, in the order they are kept everywhere (Hugging Face's
/// names under `encoder.layer.{i}.`).
pub const DENSE: [&str; 6] = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
];

/// Names of a layer's two layer norms.
pub const NORMS: [&str; 2] = ["attention.output.LayerNorm", "output.LayerNorm"];

/// A party's view of one layer's parameters for a step: the six dense maps (masked weights,
/// shared biases) and the two layer norms' shared γ and β.
#[derive(Clone, Debug)]
pub struct LayerParams {
    /// Q, K, V, attention output, intermediate, output (as [`DENSE`]).
    pub dense: [Dense; 6],
    /// (γ, β) of the attention and the output layer norm.
    pub norms: [(Share, Share); 2],
}

/// The dealer's masks of one layer's six weight matrices (as [`DENSE`]).
#[derive(Debug)]
pub struct LayerMasks {
    /// Weight masks.
    pub w: [DealerMask; 6],
}

/// Gradients of one layer (at 2^16, summed over the batch).
#[derive(Debug)]
pub struct LayerGrads {
    /// (dW, db) of each dense map (as [`DENSE`]).
    pub dense: Vec<(Share, Share)>,
    /// (dγ, dβ) of each layer norm (as [`NORMS`]).
    pub norms: Vec<(Share, Share)>,
    /// ∂L/∂x, unless the layer was told nothing below it trains.
    pub dx: Option<Share>,
}

/// Dropout settings of a forward: none (evaluation, frozen layers) or probabilities for the
/// attention probabilities and the hidden states.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// On the attention probabilities.
    pub attention: f64,
    /// After the attention output and the feed-forward block.
    pub hidden: f64,
}

/// What the dealer keeps from a forward for its backward.
#[derive(Debug)]
pub struct Plan {
    dims: Dims,
    x: DealerMask,
    q: DealerMask,
    k: DealerMask,
    v: DealerMask,
    p: DealerMask,
    c: DealerMask,
    h1: DealerMask,
    g: DealerMask,
    drops: Option<[dropout::Plan; 3]>,
    ln: [layernorm::Plan; 2],
    /// `None` for an inference forward.
    gelu: Option<gelu::Plan>,
}

/// What a party keeps from a forward for its backward.
#[derive(Debug)]
pub struct Saved {
    dims: Dims,
    x: MaskedTensor,
    q: MaskedTensor,
    k: MaskedTensor,
    v: MaskedTensor,
    probs: Share,
    p: MaskedTensor,
    c: MaskedTensor,
    h1: MaskedTensor,
    g: MaskedTensor,
    drops: Option<[dropout::Saved; 3]>,
    ln: [layernorm::Saved; 2],
    /// `None` for an inference forward.
    gelu: Option<gelu::Saved>,
}

fn no_backward() -> crate::Error {
    crate::Error::Usage("an inference forward (no dropout given) has no backward".into())
}

fn score_scale(d: &Dims) -> u64 {
    enc_at(1.0 / (d.head_size() as f64).sqrt(), FRAC)
}

fn gen_drop(
    dealer: &mut Dealer,
    shape: &[usize],
    p: f64,
    replay: Option<&mut ChaCha20Rng>,
) -> Result<dropout::Plan> {
    Ok(dropout::gen_forward_replay(dealer, shape, p, replay)?)
}

/// Dealer: one forward of a layer with weight masks `w` on `dims`. `drop` given makes it a
/// training forward: dropout (keep-masks from `replay` when given, else the dealer's CSPRNG)
/// and GELU with its derivative for the backward; without it, an inference forward (a frozen
/// layer: GELU alone, no backward).
///
/// # Errors
/// Shape and key errors.
pub fn gen_forward(
    dealer: &mut Dealer,
    w: &LayerMasks,
    dims: &Dims,
    drop: Option<Dropout>,
    eps: f64,
    mut replay: Option<&mut ChaCha20Rng>,
) -> Result<Plan> {
    dims.check()?;
    let (r, d, f, hs) = (dims.rows(), dims.hidden, dims.ffn, dims.head_size());
    let bh = dims.batch * dims.heads;
    let x = masked::gen_mask(dealer, &[r, d])?;
    for wi in &w.w[..3] {
        linear::gen_forward_on(dealer, wi, &x)?;
    }
    let m = gen_masks(dealer, &[&[bh, dims.seq, hs], &[bh, dims.seq, hs], &[bh, dims.seq, hs]])?;
    let [q, k, v]: [DealerMask; 3] = m.try_into().expect("three masks");
    gen_matmul(dealer, &q, &k.t()?)?;
    let rows_p = [bh * dims.seq, dims.seq];
    softmax::gen_forward(dealer, &rows_p)?;
    let d1 =
        drop.map(|o| gen_drop(dealer, &rows_p, o.attention, replay.as_deref_mut())).transpose()?;
    let p = masked::gen_mask(dealer, &[bh, dims.seq, dims.seq])?;
    gen_matmul(dealer, &p, &v)?;
    let c = linear::gen_forward(dealer, &w.w[3], &[r, d])?;
    let d2 =
        drop.map(|o| gen_drop(dealer, &[r, d], o.hidden, replay.as_deref_mut())).transpose()?;
    let ln1 = layernorm::gen_forward(dealer, &[r, d], eps)?;
    let h1 = linear::gen_forward(dealer, &w.w[4], &[r, d])?;
    let gelu = match drop {
        Some(_) => Some(gelu::gen_forward(dealer, &[r, f])?),
        None => {
            gelu::gen_inference(dealer, &[r, f])?;
            None
        }
    };
    let g = linear::gen_forward(dealer, &w.w[5], &[r, f])?;
    let d3 = drop.map(|o| gen_drop(dealer, &[r, d], o.hidden, replay)).transpose()?;
    let ln2 = layernorm::gen_forward(dealer, &[r, d], eps)?;
    let drops = match (d1, d2, d3) {
        (Some(a), Some(b), Some(c)) => Some([a, b, c]),
        _ => None,
    };
    Ok(Plan { dims: *dims, x, q, k, v, p, c, h1, g, drops, ln: [ln1, ln2], gelu })
}

fn drop_fwd<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: Share,
    p: Option<f64>,
) -> Result<(Share, Option<dropout::Saved>)> {
    match p {
        Some(p) => {
            let (y, s) = dropout::forward(ctx, &x, p)?;
            Ok((y, Some(s)))
        }
        None => Ok((x, None)),
    }
}

/// Party: one forward of a layer on x (rows × d) with the padding mask `amask` (the additive
/// mask as [batch·heads·L, L] rows, see [`attention_mask_rows`]); a training forward (dropout,
/// GELU′ kept) when `drop` is given, else an inference forward whose [`Saved`] has no backward.
///
/// # Errors
/// Shape, channel and preprocessing errors.
pub fn forward<C: Channel>(
    ctx: &mut PartyCtx<C>,
    prm: &LayerParams,
    x: &Share,
    amask: &Share,
    dims: &Dims,
    drop: Option<Dropout>,
    eps: f64,
) -> Result<(Share, Saved)> {
    dims.check()?;
    let (r, d) = (dims.rows(), dims.hidden);
    let bh = dims.batch * dims.heads;
    let xh = masked::mask(ctx, x)?;
    let q = linear::forward_on(ctx, &prm.dense[0], &xh)?;
    let k = linear::forward_on(ctx, &prm.dense[1], &xh)?;
    let v = linear::forward_on(ctx, &prm.dense[2], &xh)?;
    let q = scale_trunc(ctx, &q, score_scale(dims), FRAC)?;
    let heads: Vec<Share> = [&q, &k, &v]
        .iter()
        .map(|t| Ok(Share::new(to_heads(t.tensor(), dims)?)))
        .collect::<Result<_>>()?;
    let m = mask_many(ctx, &[&heads[0], &heads[1], &heads[2]])?;
    let [qh, kh, vh]: [MaskedTensor; 3] = m.try_into().expect("three masked tensors");
    let s = matmul_t(ctx, &qh, &kh.t()?)?;
    let rows_p = [bh * dims.seq, dims.seq];
    let s = Share::new(RingTensor::from_vec(&rows_p, s.into_tensor().into_vec())?);
    let probs = softmax::forward(ctx, &s, Some(amask))?;
    let (pd, s1) = drop_fwd(ctx, probs.clone(), drop.map(|o| o.attention))?;
    let pd =
        Share::new(RingTensor::from_vec(&[bh, dims.seq, dims.seq], pd.into_tensor().into_vec())?);
    let ph = masked::mask(ctx, &pd)?;
    let c = matmul_t(ctx, &ph, &vh)?;
    let c = Share::new(from_heads(c.tensor(), dims)?);
    let (a, ch) = linear::forward(ctx, &prm.dense[3], &c)?;
    let (a, s2) = drop_fwd(ctx, a, drop.map(|o| o.hidden))?;
    let (g1, b1) = &prm.norms[0];
    let (h1, ln1) = layernorm::forward(ctx, &a.add(x)?, g1, b1, eps)?;
    let (u, h1h) = linear::forward(ctx, &prm.dense[4], &h1)?;
    let (g, gs) = match drop {
        Some(_) => {
            let (g, gs) = gelu::forward(ctx, &u)?;
            (g, Some(gs))
        }
        None => (gelu::inference(ctx, &u)?, None),
    };
    let (o, gh) = linear::forward(ctx, &prm.dense[5], &g)?;
    let (o, s3) = drop_fwd(ctx, o, drop.map(|o| o.hidden))?;
    let (g2, b2) = &prm.norms[1];
    let (y, ln2) = layernorm::forward(ctx, &o.add(&h1)?, g2, b2, eps)?;
    debug_assert_eq!(y.shape(), &[r, d]);
    let drops = match (s1, s2, s3) {
        (Some(a), Some(b), Some(c)) => Some([a, b, c]),
        _ => None,
    };
    let saved = Saved {
        dims: *dims,
        x: xh,
        q: qh,
        k: kh,
        v: vh,
        probs,
        p: ph,
        c: ch,
        h1: h1h,
        g: gh,
        drops,
        ln: [ln1, ln2],
        gelu: gs,
    };
    Ok((y, saved))
}

/// Dealer: the backward of `plan`'s forward; dX only when `need_dx`.
///
/// # Errors
/// Shape and key errors.
pub fn gen_backward(dealer: &mut Dealer, w: &LayerMasks, plan: &Plan, need_dx: bool) -> Result<()> {
    let dims = &plan.dims;
    let (r, d, f, hs) = (dims.rows(), dims.hidden, dims.ffn, dims.head_size());
    let bh = dims.batch * dims.heads;
    layernorm::gen_backward(dealer, &plan.ln[1])?;
    if let Some(dr) = &plan.drops {
        dropout::gen_backward(dealer, &dr[2])?;
    }
    linear::gen_backward(dealer, &w.w[5], &plan.g, &[r, d], true)?;
    gelu::gen_backward(dealer, plan.gelu.as_ref().ok_or_else(no_backward)?)?;
    linear::gen_backward(dealer, &w.w[4], &plan.h1, &[r, f], true)?;
    layernorm::gen_backward(dealer, &plan.ln[0])?;
    if let Some(dr) = &plan.drops {
        dropout::gen_backward(dealer, &dr[1])?;
    }
    linear::gen_backward(dealer, &w.w[3], &plan.c, &[r, d], true)?;
    let dc = masked::gen_mask(dealer, &[bh, dims.seq, hs])?;
    gen_matmul(dealer, &dc, &plan.v.t()?)?;
    gen_matmul(dealer, &plan.p.t()?, &dc)?;
    if let Some(dr) = &plan.drops {
        dropout::gen_backward(dealer, &dr[0])?;
    }
    softmax::gen_backward(dealer, &[bh * dims.seq, dims.seq])?;
    let ds = masked::gen_mask(dealer, &[bh, dims.seq, dims.seq])?;
    gen_matmul(dealer, &ds, &plan.k)?;
    gen_matmul(dealer, &ds.t()?, &plan.q)?;
    let m = gen_masks(dealer, &[&[r, d], &[r, d], &[r, d]])?;
    for (wi, dy) in w.w[..3].iter().zip(&m) {
        linear::gen_backward_on(dealer, wi, &plan.x, dy, need_dx)?;
    }
    Ok(())
}

fn drop_bwd<C: Channel>(
    ctx: &mut PartyCtx<C>,
    s: Option<&dropout::Saved>,
    dy: Share,
) -> Result<Share> {
    match s {
        Some(s) => Ok(dropout::backward(ctx, s, &dy)?),
        None => Ok(dy),
    }
}

/// Party: the backward of a forward saved as `saved` with parameters `prm`, from dY.
///
/// # Errors
/// Shape, channel and preprocessing errors.
pub fn backward<C: Channel>(
    ctx: &mut PartyCtx<C>,
    prm: &LayerParams,
    saved: &Saved,
    dy: &Share,
    need_dx: bool,
) -> Result<LayerGrads> {
    let dims = &saved.dims;
    let bh = dims.batch * dims.heads;
    let drop = |i: usize| saved.drops.as_ref().map(|d| &d[i]);
    let (dr2, dg2, db2) = layernorm::backward(ctx, &saved.ln[1], dy)?;
    let dout = drop_bwd(ctx, drop(2), dr2.clone())?;
    let g5 = linear::backward(ctx, &prm.dense[5], &saved.g, &dout, true)?;
    let gs = saved.gelu.as_ref().ok_or_else(no_backward)?;
    let du = gelu::backward(ctx, gs, g5.dx.as_ref().expect("dX asked"))?;
    let g4 = linear::backward(ctx, &prm.dense[4], &saved.h1, &du, true)?;
    let dh1 = dr2.add(g4.dx.as_ref().expect("dX asked"))?;
    let (dr1, dg1, db1) = layernorm::backward(ctx, &saved.ln[0], &dh1)?;
    let da = drop_bwd(ctx, drop(1), dr1.clone())?;
    let g3 = linear::backward(ctx, &prm.dense[3], &saved.c, &da, true)?;
    let dc = Share::new(to_heads(g3.dx.as_ref().expect("dX asked").tensor(), dims)?);
    let dch = masked::mask(ctx, &dc)?;
    let dpd = matmul_t(ctx, &dch, &saved.v.t()?)?;
    let dv = matmul_t(ctx, &saved.p.t()?, &dch)?;
    let rows_p = [bh * dims.seq, dims.seq];
    let dpd = Share::new(RingTensor::from_vec(&rows_p, dpd.into_tensor().into_vec())?);
    let dp = drop_bwd(ctx, drop(0), dpd)?;
    let ds = softmax::backward(ctx, &saved.probs, &dp)?;
    let ds =
        Share::new(RingTensor::from_vec(&[bh, dims.seq, dims.seq], ds.into_tensor().into_vec())?);
    let dsh = masked::mask(ctx, &ds)?;
    let dq = matmul_t(ctx, &dsh, &saved.k)?;
    let dk = matmul_t(ctx, &dsh.t()?, &saved.q)?;
    let dq = scale_trunc(ctx, &dq, score_scale(dims), FRAC)?;
    let flat: Vec<Share> = [&dq, &dk, &dv]
        .iter()
        .map(|t| Ok(Share::new(from_heads(t.tensor(), dims)?)))
        .collect::<Result<_>>()?;
    let m = mask_many(ctx, &[&flat[0], &flat[1], &flat[2]])?;
    let mut dense = Vec::with_capacity(6);
    let mut dx = if need_dx { Some(dr1) } else { None };
    for i in 0..3 {
        let g = linear::backward_on(ctx, &prm.dense[i], &saved.x, &flat[i], &m[i], need_dx)?;
        if let (Some(acc), Some(part)) = (dx.as_mut(), g.dx.as_ref()) {
            *acc = acc.add(part)?;
        }
        dense.push((g.dw, g.db));
    }
    for g in [g3, g4, g5] {
        dense.push((g.dw, g.db));
    }
    Ok(LayerGrads { dense, norms: vec![(dg1, db1), (dg2, db2)], dx })
}

/// The additive padding mask of a batch as the softmax's rows: `mask` is [batch, L] (the
/// additive value per key position) and the result [batch·heads·L, L], each sentence's row
/// repeated for every head and query position. Local.
///
/// # Errors
/// Shape errors.
pub fn attention_mask_rows(mask: &Share, dims: &Dims) -> Result<Share> {
    let src = mask.tensor().as_slice();
    let l = dims.seq;
    let mut out = Vec::with_capacity(dims.batch * dims.heads * l * l);
    for b in 0..dims.batch {
        let row = &src[b * l..(b + 1) * l];
        for _ in 0..dims.heads * l {
            out.extend_from_slice(row);
        }
    }
    super::share(&[dims.batch * dims.heads * l, l], out)
}
