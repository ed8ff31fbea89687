//! PriFFT's nonlinear protocols, forward and backward, on fixed-point shares (f = 16).
//!
//! Each protocol is a module with a **cleartext spec** (the exact integer function the two
//! parties compute, bit for bit), dealer `gen_*` functions, party functions generic over the
//! [`Channel`] whose heavy work (every DCF evaluation, every product) runs on the party's
//! [`Backend`](crate::backend::Backend), and docs giving rounds, online bytes, key bytes, the
//! input range, the error bound and what each party learns.
//!
//! | protocol | forward rounds | backward rounds | module |
//! |---|---|---|---|
//! | exp(x), x ≤ 0 | 3 | 1 | [`exp`] |
//! | 1/x | 3 | 2 | [`reciprocal`] |
//! | 1/√x | 3 | 3 | [`rsqrt`] |
//! | sigmoid | 3 | 2 | [`sigmoid`] |
//! | tanh | 3 | 2 | [`tanh`] |
//! | GELU (erf) | 3 | 1 | [`gelu`] |
//! | ReLU | 2 | 1 | [`relu`] |
//! | dropout(p) | 3 | 1 | [`dropout`] |
//! | softmax over rows of L | ⌈log₂ L⌉ + 5 | 2 | [`softmax`] |
//! | softmax–cross-entropy gradient | as softmax | — | [`cross_entropy`] |
//! | layer norm over rows | 12 | 4 | [`layernorm`] |
//!
//! **Building blocks.** The smooth functions are [`approx::Approx`]: a piecewise quadratic on
//! the masked input with its output at 2^(f+s), then **exactly** shifted back by s. Every
//! forward evaluates it with the **comparison spline**
//! ([`gates::cmp_spline`](crate::mpc::gates::cmp_spline)): one one-bit comparison key evaluated
//! at every breakpoint (one AES block per level), one opened bit per breakpoint, then the
//! one-round DCF shift ([`trunc`]) — 3 rounds, 16 bytes and p − 1 bits per element. (The DCF
//! spline, [`gates::spline`](mod@crate::mpc::gates::spline): one DCF with payload (1, r, r²) at every
//! breakpoint and no opening, computes the same function bit for bit with about 5× the AES work;
//! [`approx::Approx::deal_one_round`] and the softmax's reciprocal of the row sum use it.) The
//! training forwards ([`exp::forward_train`], …, [`gelu::forward`]) also deal, on the output's
//! mask, the shift from one-bit comparisons, evaluated on the same opening but **not opened**
//! ([`masked::PendingShift`]): its output is affine in the dealer's secrets — what makes the
//! backward's products cheap (below) — and its one masked bit per element travels with the
//! backward's first opening ([`affine::mul_deferred`]), so the forward keeps its 3 rounds.
//!
//! Products of two secrets in a forward are masked elementwise products ([`masked::mul`]: local
//! once both operands are masked) followed by the exact shift ([`fmul`]). ReLU uses the one-bit
//! comparison too ([`gates::cmp_relu`](crate::mpc::gates::cmp_relu)); the softmax's max tree
//! keeps the one-round DCF ReLU.
//!
//! **Backward products from the forward's affine output.** The exact shift from a one-bit
//! comparison leaves each party its output as y = P − Σ c_t·D_t (P, c_t public once its bit is
//! opened, D_t the dealer's); ReLU's bit is the same kind of value. The training forward keeps
//! that shift pending ([`Saved`], the dealer its D_t in a [`Plan`]), and every backward product
//! with y opens only the other factor (the first one with the pending bit): exp and GELU
//! backward 1 round and 8 bytes + 1 bit, sigmoid, tanh and 1/x 2 rounds and 16 bytes + 1 bit,
//! 1/√x 3 and 24 + 1 bit — where a product of two additive secrets opens both
//! ([`super::affine`]).
//!
//! **Truncation.** Every truncation in a **forward** is *faithful* (an FSS shift gate: exact
//! floor), because the forward specs are exact functions of x: a local probabilistic truncation
//! is off by one ulp depending on the sharing, and wraps with probability ≈ |x|/2^63. The
//! **backward** products truncate locally ([`trunc_local`](super::trunc::trunc_local), as
//! CrypTen does everywhere): 0 rounds and 0 bytes, each output the floor or one more (each
//! module's `BACKWARD_ULPS` bounds the total against its `backward_spec`), applied to values at
//! 2^32 only, so a wrap has probability below 2^−28 per element for gradients under 2^3. The
//! linear layers' products truncate locally too: the ≤ 1-ulp errors enter once per output
//! element (k products summed, then one truncation), and accumulate along the depth — one ulp
//! per layer forward, and once more in each of dX and dW in the backward.
//!
//! **What each party learns.** Every opening is of a value plus a fresh uniform one-time mask
//! (uniform to the receiver); every gate is an FSS evaluation on such a value. Parties learn
//! the public parameters (shapes, widths, the function) and nothing about inputs, outputs or
//! intermediate values; outputs are additive shares.

pub mod approx;
pub mod cross_entropy;
pub mod dropout;
pub mod exp;
pub mod gelu;
pub mod layernorm;
pub mod reciprocal;
pub mod relu;
pub mod rsqrt;
pub mod sigmoid;
pub mod softmax;
pub mod tanh;

use super::affine::{self, Affine, DealerAffine};
use super::error::Result;
use super::gates::shift::ars_spec;
use super::masked::{self, DealerMask};
use super::{Dealer, PartyCtx, PartyId, Share};
use crate::net::Channel;
use crate::ring::RingTensor;

/// Fractional bits of every fixed-point value here.
pub const FRAC: u32 = 16;

/// Width of the exact shift after a product of two fixed-point values: the product must lie in
/// the signed 48-bit range, i.e. |a·b| < 2^15 in real terms.
pub const PRODUCT_WIDTH: u32 = 48;

/// `round(v · 2^16)` as a ring element (two's complement).
pub fn enc(v: f64) -> u64 {
    (v * f64::from(1u32 << FRAC)).round() as i64 as u64
}

/// The real value of a fixed-point ring element.
pub fn dec(x: u64) -> f64 {
    x as i64 as f64 / f64::from(1u32 << FRAC)
}

/// Cleartext fixed-point product, rounded to nearest, as [`fmul`] computes it:
/// ⌊(a·b + 2^15) / 2^16⌋ in the signed 48-bit range.
pub fn fmul_spec(a: u64, b: u64) -> u64 {
    fmul_by_spec(a, b, 1, FRAC)
}

/// Cleartext [`fmul_by`]: ⌊(c·a·b + 2^(s−1)) / 2^s⌋ in the signed 48-bit range.
pub fn fmul_by_spec(a: u64, b: u64, c: u64, s: u32) -> u64 {
    ars_spec(a.wrapping_mul(b).wrapping_mul(c).wrapping_add(1 << (s - 1)), PRODUCT_WIDTH, s)
}

/// Dealer: the material of one exact truncation of an additive tensor of `shape` (a mask and
/// shift keys bound to it). Returns the mask.
///
/// # Errors
/// Shape and key errors.
pub fn gen_trunc(dealer: &mut Dealer, shape: &[usize], width: u32, s: u32) -> Result<DealerMask> {
    let m = masked::gen_mask(dealer, shape)?;
    masked::gen_shift(dealer, width, s, &m)?;
    Ok(m)
}

/// Party: the exact ⌊y / 2^s⌋ of a signed `width`-bit additive y: one round (mask y), then the
/// shift gate locally. 8 bytes per element per party.
///
/// # Errors
/// Preprocessing, channel and backend errors.
pub fn trunc<C: Channel>(ctx: &mut PartyCtx<C>, y: &Share, width: u32, s: u32) -> Result<Share> {
    let yh = masked::mask(ctx, y)?;
    masked::ars(ctx, &yh, width, s)
}

/// Dealer: as [`gen_trunc`] with the shift by one-bit comparisons
/// ([`masked::gen_shift_cmp`]: about a fifth of the key bytes). Returns the mask.
///
/// # Errors
/// Shape and key errors.
pub fn gen_trunc_cmp(
    dealer: &mut Dealer,
    shape: &[usize],
    width: u32,
    s: u32,
) -> Result<DealerMask> {
    let m = masked::gen_mask(dealer, shape)?;
    masked::gen_shift_cmp(dealer, width, s, &m)?;
    Ok(m)
}

/// Party: the exact ⌊y / 2^s⌋ (the function of [`trunc`]) with keys from [`gen_trunc_cmp`]: two
/// rounds (mask y, open one masked bit), 8 bytes + 1 bit per element per party.
///
/// # Errors
/// As [`trunc`].
pub fn trunc_cmp<C: Channel>(
    ctx: &mut PartyCtx<C>,
    y: &Share,
    width: u32,
    s: u32,
) -> Result<Share> {
    let yh = masked::mask(ctx, y)?;
    masked::ars_cmp(ctx, &yh, width, s)
}

/// The dealer's plan for one training forward of a smooth function ([`exp`], [`sigmoid`],
/// [`tanh`], [`reciprocal`], [`rsqrt`]): the output's affine terms, which the backward's
/// products with the output need. Dealer-only.
#[derive(Debug)]
pub struct Plan {
    y: DealerAffine,
}

/// What a party keeps from a smooth function's training forward: its output's share and the
/// output's exact shift by one-bit comparisons, evaluated but not yet opened
/// ([`masked::PendingShift`]); the backward's first product opens that bit with its operand and
/// leaves the output in affine form for the rest ([`affine::mul_deferred`]).
#[derive(Debug)]
pub struct Saved {
    y: Share,
    pending: masked::PendingShift,
    affine: std::cell::OnceCell<Affine>,
}

impl Saved {
    fn new(y: Share, pending: masked::PendingShift) -> Saved {
        Saved { y, pending, affine: std::cell::OnceCell::new() }
    }

    /// This party's share of the forward's output.
    pub fn output(&self) -> &Share {
        &self.y
    }
}

/// Dealer: the backward's `products` products with the output planned as `plan`.
fn gen_products(dealer: &mut Dealer, plan: &Plan, products: usize) -> Result<()> {
    (0..products).try_for_each(|_| affine::gen_mul(dealer, &plan.y))
}

/// Party: ⌊c·a ⊙ y / 2^s⌋ (or one more) with the saved output y ([`affine::fmul`]).
fn saved_fmul<C: Channel>(
    ctx: &mut PartyCtx<C>,
    a: &Share,
    saved: &Saved,
    c: u64,
    s: u32,
) -> Result<Share> {
    if let Some(y) = saved.affine.get() {
        return affine::fmul(ctx, a, y, c, s);
    }
    let (z, y) = affine::fmul_deferred(ctx, a, &saved.pending, c, s)?;
    // A first product that failed leaves the bit unopened; one that succeeded fixes the form.
    let _ = saved.affine.set(y);
    Ok(z)
}

/// Cleartext ⌊c·a·y / 2^s⌋ over the integers: every `backward_spec`'s product.
pub use super::affine::fmul_floor as floor_mul;

/// Party: several exact truncations in one round (dealt in this order by [`gen_trunc`]).
///
/// # Errors
/// As [`trunc`].
pub fn trunc_many<C: Channel>(
    ctx: &mut PartyCtx<C>,
    ys: &[(&Share, u32, u32)],
) -> Result<Vec<Share>> {
    let shares: Vec<&Share> = ys.iter().map(|y| y.0).collect();
    let masked = masked::mask_many(ctx, &shares)?;
    masked.iter().zip(ys).map(|(yh, &(_, w, s))| masked::ars(ctx, yh, w, s)).collect()
}

/// Dealer: one [`fmul`] of two tensors of `shape`.
///
/// # Errors
/// Shape and key errors.
pub fn gen_fmul(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    gen_fmul_by(dealer, shape, FRAC)
}

/// Party: the fixed-point product ⟨a ⊙ b⟩ rounded to nearest ([`fmul_spec`]): mask both (one
/// round, 16 bytes per element), multiply locally, truncate exactly (one round, 8 bytes).
/// Two rounds, 24 bytes per element per party.
///
/// # Errors
/// Preprocessing, channel and backend errors.
pub fn fmul<C: Channel>(ctx: &mut PartyCtx<C>, a: &Share, b: &Share) -> Result<Share> {
    fmul_by(ctx, a, b, 1, FRAC)
}

/// Party: ⟨⌊(c·a⊙b + 2^(s−1)) / 2^s⌋⟩ for a public integer c and shift s ([`fmul_by_spec`]):
/// a product with a public factor folded into its one exact shift (e.g. c = −1, s = 17 for
/// −½·a·b). Dealt by [`gen_fmul_by`]; costs as [`fmul`].
///
/// # Errors
/// As [`fmul`].
pub fn fmul_by<C: Channel>(
    ctx: &mut PartyCtx<C>,
    a: &Share,
    b: &Share,
    c: u64,
    s: u32,
) -> Result<Share> {
    let m = masked::mask_many(ctx, &[a, b])?;
    let z = Share::new(masked::mul(ctx, &m[0], &m[1])?.tensor().scale(c));
    let z = add_const(ctx.id, &z, 1 << (s - 1));
    trunc(ctx, &z, PRODUCT_WIDTH, s)
}

/// Dealer: one [`fmul_by`] with shift `s` of two tensors of `shape`.
///
/// # Errors
/// Shape and key errors.
pub fn gen_fmul_by(dealer: &mut Dealer, shape: &[usize], s: u32) -> Result<()> {
    let a = masked::gen_mask(dealer, shape)?;
    let b = masked::gen_mask(dealer, shape)?;
    masked::gen_mul(dealer, &a, &b)?;
    gen_trunc(dealer, shape, PRODUCT_WIDTH, s).map(drop)
}

/// Dealer: one [`fsquare`] of a tensor of `shape`.
///
/// # Errors
/// Shape and key errors.
pub fn gen_fsquare(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    let a = masked::gen_mask(dealer, shape)?;
    masked::gen_mul(dealer, &a, &a)?;
    gen_trunc(dealer, shape, PRODUCT_WIDTH, FRAC).map(drop)
}

/// Party: ⟨a ⊙ a⟩ rounded ([`fmul_spec`]`(a, a)`): two rounds, 16 bytes per element per party.
///
/// # Errors
/// As [`fmul`].
pub fn fsquare<C: Channel>(ctx: &mut PartyCtx<C>, a: &Share) -> Result<Share> {
    let m = masked::mask(ctx, a)?;
    let z = masked::mul(ctx, &m, &m)?;
    let z = add_const(ctx.id, &z, 1 << (FRAC - 1));
    trunc(ctx, &z, PRODUCT_WIDTH, FRAC)
}

/// P0 adds the public constant `c` to every element (P1's share is unchanged).
pub fn add_const(party: PartyId, x: &Share, c: u64) -> Share {
    if party == PartyId::P0 { Share::new(x.tensor().map(|v| v.wrapping_add(c))) } else { x.clone() }
}

/// Sums over the last dimension (of length `cols`): [.., cols] → [..].
pub(crate) fn row_sums(x: &RingTensor, cols: usize) -> Result<RingTensor> {
    let shape = x.shape();
    let sums = x
        .as_slice()
        .chunks_exact(cols.max(1))
        .map(|row| row.iter().fold(0u64, |a, &v| a.wrapping_add(v)))
        .collect();
    Ok(RingTensor::from_vec(&shape[..shape.len() - 1], sums)?)
}

/// Each element repeated `cols` times along a new last dimension.
pub(crate) fn spread(x: &RingTensor, cols: usize) -> Result<RingTensor> {
    let mut shape = x.shape().to_vec();
    shape.push(cols);
    let data = x.as_slice().iter().flat_map(|&v| std::iter::repeat_n(v, cols)).collect();
    Ok(RingTensor::from_vec(&shape, data)?)
}

/// The last dimension of a shape (1 for a scalar shape), checked non-empty.
pub(crate) fn last_dim(op: &'static str, shape: &[usize]) -> Result<(usize, usize)> {
    match shape.last() {
        Some(&c) if c > 0 => Ok((shape.iter().product::<usize>() / c, c)),
        _ => Err(super::MpcError::Shape { op, left: shape.to_vec(), right: vec![] }),
    }
}
