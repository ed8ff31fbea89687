//! Secure transformer layers on secret shares: BERT's encoder, forward and backward, composed
//! from the protocols of [`crate::mpc`]; pooling, the classification head, the loss gradient and
//! SGD with momentum on shares.
//!
//! Every layer comes as a pair that must be called in the same order: a **dealer** function
//! (`gen_*`, making the layer's one-time material: masks, product correlations, FSS keys) and a
//! **party** function (the two-party computation that consumes it). A dealer `Plan` keeps what
//! the dealer needs to make the backward's material (the masks the backward's products are bound
//! to); a party `Saved` keeps what the backward needs (values in masked form, the nonlinear
//! protocols' saved state). The pairs are checked together by `tests/nn.rs`: the reconstruction
//! is compared with the plaintext f32 model ([`crate::model::bert`]) layer by layer and over
//! whole training steps.
//!
//! **Linear work** is the masked tensor product with mask reuse ([`crate::mpc::masked`]): each
//! weight matrix W is opened once per training step as Ŵ = W + R_W (frozen weights once per
//! run), so the forward X·Wᵀ, the backward dY·W and, with X̂ kept from the forward,
//! dW = dYᵀ·X cost no communication beyond opening X and dY once each. Products are truncated
//! locally ([`crate::mpc::trunc`]): at most one ulp of error per output, and a wrap with
//! probability about |v|·2^32/2^64 per output of real magnitude |v| (docs/finetune.md counts the
//! expected wraps of a run).
//!
//! **Nonlinear work** is PriFFT's FSS protocols ([`crate::mpc::nonlinear`]): softmax with the
//! additive padding mask, GELU, layer norm, dropout, the softmax–cross-entropy gradient.
//!
//! **Fixed point.** Activations and gradients carry [`FRAC`] = 16 fractional bits. Trainable
//! parameters and their momentum are kept at [`MASTER_FRAC`] = 24 fractional bits (as mixed
//! precision keeps f32 master weights), because an SGD update η·v of 0.001 × a small gradient
//! is often below 2^−16; the 16-bit weights each step uses are a local truncation of them.
//! The update multiplies by μ and η as sums of shifts of the value itself, so every local
//! truncation there acts on a value of at most 2^24·|v| and its wrap probability stays below
//! 2^−39·|v| per element.
//!
//! **What each party learns:** only openings of values under fresh one-time masks (uniform to
//! it) and FSS evaluations on such values — nothing about the weights, the inputs, the
//! activations, the gradients or the updated weights, which stay shared.

pub mod baseline;
pub mod embedding;
pub mod encoder;
pub mod head;
pub mod linear;

use crate::mpc::masked::{self, DealerMask, MaskedTensor};
use crate::mpc::{Dealer, PartyCtx, Share};
use crate::net::Channel;
use crate::ring::RingTensor;

pub use crate::mpc::nonlinear::FRAC;

/// Fractional bits of trainable parameters and momentum.
pub const MASTER_FRAC: u32 = 24;

/// The additive attention mask on padding (real: −64): e^−64 is far below the last bit of a
/// softmax output, and |score − 64| stays inside the softmax's input range.
pub const PAD_MASK: f64 = -64.0;

/// The crate's result (nn sits above the error layer).
pub type Result<T> = crate::error::Result<T>;

/// Sizes of one secure forward/backward: `batch` sentences of `seq` tokens, hidden width
/// `hidden` with `heads` heads, feed-forward width `ffn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Sentences.
    pub batch: usize,
    /// Tokens per sentence L.
    pub seq: usize,
    /// Hidden width d.
    pub hidden: usize,
    /// Attention heads h.
    pub heads: usize,
    /// Feed-forward width.
    pub ffn: usize,
}

impl Dims {
    /// Token rows: batch · L.
    pub fn rows(&self) -> usize {
        self.batch * self.seq
    }

    /// d / h.
    pub fn head_size(&self) -> usize {
        self.hidden / self.heads
    }

    /// Check the sizes are usable.
    ///
    /// # Errors
    /// [`crate::Error::Usage`] for a zero size or a width that is not a multiple of the heads.
    pub fn check(&self) -> Result<()> {
        if self.batch == 0
            || self.seq == 0
            || self.hidden == 0
            || self.heads == 0
            || self.ffn == 0
            || !self.hidden.is_multiple_of(self.heads)
        {
            return Err(crate::Error::Usage(format!("unusable layer sizes {self:?}")));
        }
        Ok(())
    }
}

/// `round(v · 2^bits)` in the ring (two's complement).
pub fn enc_at(v: f64, bits: u32) -> u64 {
    (v * 2f64.powi(bits as i32)).round() as i64 as u64
}

/// A tensor of ring values as a share (helper for shapes).
pub(crate) fn share(shape: &[usize], data: Vec<u64>) -> Result<Share> {
    Ok(Share::new(RingTensor::from_vec(shape, data)?))
}

/// [b·L, d] → [b·h, L, d/h]: the heads as a batch of matrices (a local permutation).
pub(crate) fn to_heads(x: &RingTensor, d: &Dims) -> Result<RingTensor> {
    permute_heads(x, d, true)
}

/// [b·h, L, d/h] → [b·L, d], the inverse of [`to_heads`].
pub(crate) fn from_heads(x: &RingTensor, d: &Dims) -> Result<RingTensor> {
    permute_heads(x, d, false)
}

/// Moves each head's block of d/h values between the token-row layout and the head-batch one.
fn permute_heads(x: &RingTensor, d: &Dims, into_heads: bool) -> Result<RingTensor> {
    let (l, h, hs) = (d.seq, d.heads, d.head_size());
    let src = x.as_slice();
    let mut out = vec![0u64; src.len()];
    for b in 0..d.batch {
        for t in 0..l {
            for hi in 0..h {
                let row = (b * l + t) * d.hidden + hi * hs;
                let head = ((b * h + hi) * l + t) * hs;
                let (from, to) = if into_heads { (row, head) } else { (head, row) };
                out[to..to + hs].copy_from_slice(&src[from..from + hs]);
            }
        }
    }
    let shape = if into_heads { vec![d.batch * h, l, hs] } else { vec![d.rows(), d.hidden] };
    Ok(RingTensor::from_vec(&shape, out)?)
}

/// Column sums of a [rows, cols] tensor: [cols].
pub(crate) fn col_sums(x: &RingTensor, cols: usize) -> Result<RingTensor> {
    let mut out = vec![0u64; cols];
    for row in x.as_slice().chunks(cols) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o = o.wrapping_add(v);
        }
    }
    Ok(RingTensor::from_vec(&[cols], out)?)
}

/// `v` ([cols]) added to every row of `x` ([.., cols]).
pub(crate) fn add_rows(x: &Share, v: &Share) -> Result<Share> {
    let cols = v.tensor().len();
    let bias = v.tensor().as_slice();
    let data = x
        .tensor()
        .as_slice()
        .chunks(cols)
        .flat_map(|row| row.iter().zip(bias).map(|(&a, &b)| a.wrapping_add(b)))
        .collect();
    share(x.shape(), data)
}

/// One party's local truncation by `bits`.
pub(crate) fn trunc<C: Channel>(ctx: &PartyCtx<C>, x: &Share, bits: u32) -> Result<Share> {
    Ok(crate::mpc::trunc::trunc(ctx, x, bits)?)
}

/// ⟨c·x⟩ truncated back by `bits` (c a public fixed-point constant at 2^bits).
pub(crate) fn scale_trunc<C: Channel>(
    ctx: &PartyCtx<C>,
    x: &Share,
    c: u64,
    bits: u32,
) -> Result<Share> {
    trunc(ctx, &x.scale(c), bits)
}

/// The masked product ⟨A·B⟩ truncated by [`FRAC`].
pub(crate) fn matmul_t<C: Channel>(
    ctx: &mut PartyCtx<C>,
    a: &MaskedTensor,
    b: &MaskedTensor,
) -> Result<Share> {
    let z = masked::matmul(ctx, a, b)?;
    trunc(ctx, &z, FRAC)
}

/// Dealer side of one masked product.
pub(crate) fn gen_matmul(dealer: &mut Dealer, a: &DealerMask, b: &DealerMask) -> Result<()> {
    Ok(masked::gen_matmul(dealer, a, b)?)
}

/// Dealer side of [`masked::mask`]/[`masked::mask_many`]: one mask per shape, in order.
pub(crate) fn gen_masks(dealer: &mut Dealer, shapes: &[&[usize]]) -> Result<Vec<DealerMask>> {
    shapes.iter().map(|s| Ok(masked::gen_mask(dealer, s)?)).collect()
}

/// Party side: mask several shares in one round.
pub(crate) fn mask_many<C: Channel>(
    ctx: &mut PartyCtx<C>,
    xs: &[&Share],
) -> Result<Vec<MaskedTensor>> {
    Ok(masked::mask_many(ctx, xs)?)
}
