//! Mean pooling, the classification head, the loss gradient and SGD with momentum, on shares.
//!
//! **Pooling.** The client knows its sentences' lengths, so it enters the pooling weights
//! w[b, t] = mask[b, t] / n_b (at 2^16) as a shared input; the pooled vector of sentence b is the
//! product w_b·H_b (1 × L by L × d), a batched masked product whose backward dH_b = w_bᵀ·dP_b
//! reuses ŵ. **Head.** logits = P̂·Ŵ_hᵀ + b_h (a [`linear`] map d → 2). **Loss.** The gradient
//! of the softmax cross-entropy, softmax(logits) − onehot(label), by PriFFT's softmax; summed
//! over the batch (the 1/B of the mean loss is applied in the update, so the backward carries B
//! times more precision).
//!
//! **SGD with momentum on shares** ([`sgd_update`]), PyTorch's rule (no dampening):
//! v ← μ·v + g/B, w ← w − η·v, on parameters and momentum at [`MASTER_FRAC`] fractional bits;
//! every operation is local (public scalings and local truncations). The 16-bit weights of the
//! next step are a local truncation of the 32-bit ones.
//!
//! **What each party learns:** nothing (openings under fresh masks only; the update is local).

use super::linear::{self, Dense};
use super::{Dims, FRAC, MASTER_FRAC, Result, enc_at, gen_matmul, mask_many, matmul_t, trunc};
use crate::mpc::masked::{self, DealerMask, MaskedTensor};
use crate::mpc::nonlinear::cross_entropy;
use crate::mpc::{Dealer, PartyCtx, Share};
use crate::net::Channel;
use crate::ring::RingTensor;

/// The classes of the head.
pub const CLASSES: usize = 2;

/// What the dealer keeps for the head's backward.
#[derive(Debug)]
pub struct Plan {
    dims: Dims,
    w: DealerMask,
    pooled: DealerMask,
}

/// What a party keeps for the head's backward.
#[derive(Debug)]
pub struct Saved {
    dims: Dims,
    w: MaskedTensor,
    pooled: MaskedTensor,
}

/// Gradients of the head and of the token states.
#[derive(Debug)]
pub struct HeadGrads {
    /// (dW, db) of the head.
    pub head: (Share, Share),
    /// ∂L/∂H (rows × d), the input of the pooling.
    pub dh: Share,
}

/// Dealer: pooling + head forward and the loss gradient for `dims`, head weight mask `head`.
///
/// # Errors
/// Shape and key errors.
pub fn gen_forward(dealer: &mut Dealer, head: &DealerMask, dims: &Dims) -> Result<Plan> {
    let (b, l, d) = (dims.batch, dims.seq, dims.hidden);
    let w = masked::gen_mask(dealer, &[b, 1, l])?;
    let h = masked::gen_mask(dealer, &[b, l, d])?;
    gen_matmul(dealer, &w, &h)?;
    let pooled = linear::gen_forward(dealer, head, &[b, d])?;
    cross_entropy::gen_grad(dealer, &[b, CLASSES])?;
    Ok(Plan { dims: *dims, w, pooled })
}

/// Party: the logits (batch × 2) and the loss gradient from the top layer's token states `h`
/// (rows × d), the shared pooling weights `w` ([batch, L]) and one-hot labels (batch × 2).
///
/// # Errors
/// Shape, channel and preprocessing errors.
pub fn forward<C: Channel>(
    ctx: &mut PartyCtx<C>,
    head: &Dense,
    h: &Share,
    w: &Share,
    onehot: &Share,
    dims: &Dims,
) -> Result<(Share, Share, Saved)> {
    let (b, l, d) = (dims.batch, dims.seq, dims.hidden);
    let w3 = Share::new(RingTensor::from_vec(&[b, 1, l], w.tensor().as_slice().to_vec())?);
    let h3 = Share::new(RingTensor::from_vec(&[b, l, d], h.tensor().as_slice().to_vec())?);
    let m = mask_many(ctx, &[&w3, &h3])?;
    let pooled = matmul_t(ctx, &m[0], &m[1])?;
    let pooled = Share::new(RingTensor::from_vec(&[b, d], pooled.into_tensor().into_vec())?);
    let (logits, ph) = linear::forward(ctx, head, &pooled)?;
    let dlogits = cross_entropy::grad(ctx, &logits, onehot)?;
    let saved = Saved { dims: *dims, w: m[0].clone(), pooled: ph };
    Ok((logits, dlogits, saved))
}

/// Dealer: the head's backward.
///
/// # Errors
/// Shape and key errors.
pub fn gen_backward(dealer: &mut Dealer, head: &DealerMask, plan: &Plan) -> Result<()> {
    let (b, d) = (plan.dims.batch, plan.dims.hidden);
    linear::gen_backward(dealer, head, &plan.pooled, &[b, CLASSES], true)?;
    let dp = masked::gen_mask(dealer, &[b, 1, d])?;
    gen_matmul(dealer, &plan.w.t()?, &dp)
}

/// Party: the head's gradients and ∂L/∂H from the loss gradient `dlogits`.
///
/// # Errors
/// Shape, channel and preprocessing errors.
pub fn backward<C: Channel>(
    ctx: &mut PartyCtx<C>,
    head: &Dense,
    saved: &Saved,
    dlogits: &Share,
) -> Result<HeadGrads> {
    let (b, d) = (saved.dims.batch, saved.dims.hidden);
    let g = linear::backward(ctx, head, &saved.pooled, dlogits, true)?;
    let dp = g.dx.expect("dX asked");
    let dp = Share::new(RingTensor::from_vec(&[b, 1, d], dp.into_tensor().into_vec())?);
    let dph = masked::mask(ctx, &dp)?;
    let dh = matmul_t(ctx, &saved.w.t()?, &dph)?;
    let dh =
        Share::new(RingTensor::from_vec(&[saved.dims.rows(), d], dh.into_tensor().into_vec())?);
    Ok(HeadGrads { head: (g.dw, g.db), dh })
}

/// SGD's settings on shares.
#[derive(Clone, Copy, Debug)]
pub struct SgdConfig {
    /// Learning rate η.
    pub lr: f64,
    /// Momentum μ.
    pub momentum: f64,
    /// Sentences per step B (the gradients are batch sums).
    pub batch: usize,
}

/// Shift terms of a constant multiplier (error below 2^−13 relative for every constant used).
const SHIFT_TERMS: usize = 14;

/// The shifts of c ∈ (0, 1) as a greedy binary expansion: c ≈ Σ 2^−kᵢ.
pub fn shift_terms(c: f64) -> Vec<u32> {
    let mut rest = c;
    let mut out = Vec::new();
    for k in 1..63u32 {
        if out.len() == SHIFT_TERMS {
            break;
        }
        let t = 2f64.powi(-(k as i32));
        if rest >= t {
            rest -= t;
            out.push(k);
        }
    }
    out
}

/// ⟨c·x⟩ for a public c ∈ [0, 1) as Σ ⟨x⟩ ≫ kᵢ: each term a local truncation of x itself, so
/// its wrap probability is |x|/2^63 (not |x|·2^f/2^63 as for a product with c at 2^f then a
/// shift). Local.
fn scale_by_shifts<C: Channel>(ctx: &PartyCtx<C>, x: &Share, c: f64) -> Result<Share> {
    let mut acc = Share::new(RingTensor::zeros(x.shape()));
    for k in shift_terms(c) {
        acc = acc.add(&trunc(ctx, x, k)?)?;
    }
    Ok(acc)
}

/// One SGD-with-momentum update of a parameter and its momentum (both at [`MASTER_FRAC`]) from
/// a batch-summed gradient `g` at [`FRAC`]: v ← μ·v + g/B, w ← w − η·v. Local: μ and η are
/// applied as sums of shifts ([`shift_terms`], relative error below 2^−13), g/B as an exact
/// scaling when B divides 2^(MASTER_FRAC − FRAC).
///
/// # Errors
/// Shape errors (the three must have one shape); [`crate::Error::Usage`] for μ or η outside
/// [0, 1).
pub fn sgd_update<C: Channel>(
    ctx: &PartyCtx<C>,
    cfg: &SgdConfig,
    w: &mut Share,
    v: &mut Share,
    g: &Share,
) -> Result<()> {
    let usable = (0.0..1.0).contains(&cfg.momentum) && cfg.lr > 0.0 && cfg.lr < 1.0;
    if !usable || cfg.batch == 0 {
        return Err(crate::Error::Usage(format!(
            "SGD on shares needs 0 ≤ momentum < 1, 0 < lr < 1 and a batch ≥ 1 (got {cfg:?})"
        )));
    }
    let up = 1u64 << (MASTER_FRAC - FRAC);
    let b = cfg.batch as u64;
    let g_master = if up.is_multiple_of(b) {
        g.scale(up / b)
    } else {
        trunc(ctx, &g.scale(enc_at(up as f64 / cfg.batch as f64, FRAC)), FRAC)?
    };
    let nv = scale_by_shifts(ctx, v, cfg.momentum)?.add(&g_master)?;
    let step = scale_by_shifts(ctx, &nv, cfg.lr)?;
    *w = w.sub(&step)?;
    *v = nv;
    Ok(())
}

/// The 16-bit weight used by a step from its 32-bit master copy (local truncation).
///
/// # Errors
/// Backend errors.
pub fn working<C: Channel>(ctx: &PartyCtx<C>, master: &Share) -> Result<Share> {
    trunc(ctx, master, MASTER_FRAC - FRAC)
}
