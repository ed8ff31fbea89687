//! The baseline's elementwise functions, forward and backward (constructions, rounds and bytes
//! in the [module table](super)). Each has a dealer `gen_*` and a party function; the party
//! functions take additive shares and return additive shares at 16 fractional bits.

use super::binary::{self, gen_ltz, ltz};
use super::{add_c, c_minus, div_pow2, fmul, fsquare, pub_mul, select};
use crate::mpc::error::Result;
use crate::mpc::nonlinear::add_const;
use crate::mpc::{Dealer, MpcError, PartyCtx, Share, beaver};
use crate::net::Channel;

/// Squarings in CrypTen's exp (its `exp_iterations`).
pub const EXP_ITERS: u32 = 8;
/// Newton steps in CrypTen's reciprocal (its `reciprocal_nr_iters`).
pub const RECIPROCAL_ITERS: u32 = 10;
/// Newton steps in CrypTen's inverse square root (its `sqrt_nr_iters`).
pub const RSQRT_ITERS: u32 = 3;
/// Newton steps of the reciprocal inside CrypTen's sigmoid (from 0.75; the first is public).
pub const SIGMOID_RECIPROCAL_ITERS: u32 = 3;
/// The sigmoid approximation of GELU CrypTen users run: x·σ(1.702x).
pub const GELU_SIGMOID_SCALE: f64 = 1.702;

/// Dealer: one [`exp`].
///
/// # Errors
/// Shape errors.
pub fn gen_exp(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    (0..EXP_ITERS).try_for_each(|_| beaver::gen_square(dealer, shape))
}

/// Party: e^x ≈ (1 + x/2^8)^(2^8): 8 rounds, 64 bytes per element.
///
/// # Errors
/// Preprocessing and channel errors.
pub fn exp<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
    let mut y = add_c(ctx.id, &div_pow2(ctx, x, EXP_ITERS)?, 1.0);
    for _ in 0..EXP_ITERS {
        y = fsquare(ctx, &y)?;
    }
    Ok(y)
}

/// Dealer: one reciprocal of a positive input ([`reciprocal_positive`]) with `iters` Newton
/// steps from the exp-based start.
pub(crate) fn gen_reciprocal_positive(
    dealer: &mut Dealer,
    shape: &[usize],
    iters: u32,
) -> Result<()> {
    gen_exp(dealer, shape)?;
    gen_newton(dealer, shape, iters)
}

fn gen_newton(dealer: &mut Dealer, shape: &[usize], iters: u32) -> Result<()> {
    for _ in 0..iters {
        beaver::gen_square(dealer, shape)?;
        beaver::gen_mul(dealer, shape)?;
    }
    Ok(())
}

/// Newton steps y ← 2y − x·y² (2 rounds, 24 bytes each).
fn newton<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share, mut y: Share, iters: u32) -> Result<Share> {
    for _ in 0..iters {
        let y2 = fsquare(ctx, &y)?;
        let xy2 = fmul(ctx, x, &y2)?;
        y = y.scale(2).sub(&xy2)?;
    }
    Ok(y)
}

/// Party: 1/x for x > 0 (CrypTen with `all_pos`): y₀ = 3·exp(1 − 2x) + 0.003, then `iters`
/// Newton steps.
pub(crate) fn reciprocal_positive<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &Share,
    iters: u32,
) -> Result<Share> {
    let e = exp(ctx, &add_c(ctx.id, &x.scale(2u64.wrapping_neg()), 1.0))?;
    let y = add_c(ctx.id, &e.scale(3), 0.003);
    newton(ctx, x, y, iters)
}

/// Dealer: one [`reciprocal`].
///
/// # Errors
/// Shape errors.
pub fn gen_reciprocal(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    gen_ltz(dealer, shape)?;
    beaver::gen_mul(dealer, shape)?;
    gen_reciprocal_positive(dealer, shape, RECIPROCAL_ITERS)?;
    beaver::gen_mul(dealer, shape)
}

/// Party: 1/x (CrypTen's default, any sign): s = 1 − 2·\[x < 0\], s·(1/(s·x)). 38 rounds, 552
/// bytes per element.
///
/// # Errors
/// Preprocessing and channel errors.
pub fn reciprocal<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
    let sign = add_const(ctx.id, &ltz(ctx, x)?.scale(2u64.wrapping_neg()), 1);
    let pos = beaver::mul(ctx, &sign, x)?;
    let r = reciprocal_positive(ctx, &pos, RECIPROCAL_ITERS)?;
    beaver::mul(ctx, &sign, &r)
}

/// Dealer: one [`rsqrt`].
///
/// # Errors
/// Shape errors.
pub fn gen_rsqrt(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    gen_exp(dealer, shape)?;
    for _ in 0..RSQRT_ITERS {
        beaver::gen_square(dealer, shape)?;
        beaver::gen_mul(dealer, shape)?;
        beaver::gen_mul(dealer, shape)?;
    }
    Ok(())
}

/// Party: 1/√x (CrypTen's `inv_sqrt`): y₀ = 2.2·exp(−(x/2 + 0.2)) + 0.2 − x/1024, then 3 Newton
/// steps y ← y·(3 − x·y²)/2. 17 rounds, 184 bytes per element.
///
/// # Errors
/// Preprocessing and channel errors.
pub fn rsqrt<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
    let arg = add_c(ctx.id, &div_pow2(ctx, x, 1)?, 0.2).scale(u64::MAX);
    let e = exp(ctx, &arg)?;
    let mut y = add_c(ctx.id, &pub_mul(ctx, &e, 2.2)?, 0.2).sub(&div_pow2(ctx, x, 10)?)?;
    for _ in 0..RSQRT_ITERS {
        let y2 = fsquare(ctx, &y)?;
        let xy2 = fmul(ctx, x, &y2)?;
        let step = fmul(ctx, &y, &c_minus(ctx.id, 3.0, &xy2))?;
        y = div_pow2(ctx, &step, 1)?;
    }
    Ok(y)
}

/// Dealer: one [`sigmoid`].
///
/// # Errors
/// Shape errors.
pub fn gen_sigmoid(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    gen_ltz(dealer, shape)?;
    beaver::gen_mul(dealer, shape)?;
    gen_exp(dealer, shape)?;
    gen_newton(dealer, shape, SIGMOID_RECIPROCAL_ITERS - 1)?;
    beaver::gen_mul(dealer, shape)?;
    beaver::gen_mul(dealer, shape)
}

/// Party: σ(x) (CrypTen's "reciprocal" method): l = \[x < 0\], |x| = (1 − 2l)·x,
/// p = 1/(1 + exp(−|x|)) by Newton from 0.75 (the first step is on public values), then
/// `where(1 − l, p, 1 − p)`. 23 rounds, 376 bytes per element.
///
/// # Errors
/// Preprocessing and channel errors.
pub fn sigmoid<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
    let l = ltz(ctx, x)?;
    let sign = add_const(ctx.id, &l.scale(2u64.wrapping_neg()), 1);
    let pos = beaver::mul(ctx, x, &sign)?;
    let den = add_c(ctx.id, &exp(ctx, &pos.scale(u64::MAX))?, 1.0);
    // The first Newton step from the public 0.75: 2·0.75 − 0.75²·x.
    let y1 = add_c(ctx.id, &pub_mul(ctx, &den, -0.5625)?, 1.5);
    let p = newton(ctx, &den, y1, SIGMOID_RECIPROCAL_ITERS - 1)?;
    let not_l = add_const(ctx.id, &l.scale(u64::MAX), 1);
    select(ctx, &not_l, &p, &c_minus(ctx.id, 1.0, &p))
}

/// Dealer: one [`tanh`].
///
/// # Errors
/// Shape errors.
pub fn gen_tanh(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    gen_sigmoid(dealer, shape)
}

/// Party: tanh(x) = 2·σ(2x) − 1 (as sigmoid: 23 rounds, 376 bytes per element).
///
/// # Errors
/// As [`sigmoid`].
pub fn tanh<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
    let s = sigmoid(ctx, &x.scale(2))?;
    Ok(add_c(ctx.id, &s.scale(2), -1.0))
}

/// What GELU's backward needs: x and s = σ(1.702x).
pub struct GeluSaved {
    x: Share,
    s: Share,
}

/// Dealer: one [`gelu`].
///
/// # Errors
/// Shape errors.
pub fn gen_gelu(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    gen_sigmoid(dealer, shape)?;
    beaver::gen_mul(dealer, shape)
}

/// Party: GELU(x) ≈ x·σ(1.702x): 24 rounds, 392 bytes per element.
///
/// # Errors
/// As [`sigmoid`].
pub fn gelu<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<(Share, GeluSaved)> {
    let s = sigmoid(ctx, &pub_mul(ctx, x, GELU_SIGMOID_SCALE)?)?;
    let y = fmul(ctx, x, &s)?;
    Ok((y, GeluSaved { x: x.clone(), s }))
}

/// Dealer: one [`gelu_backward`].
///
/// # Errors
/// Shape errors.
pub fn gen_gelu_backward(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    (0..3).try_for_each(|_| beaver::gen_mul(dealer, shape))
}

/// Party: dY·(s + 1.702·x·s(1 − s)): 3 rounds, 48 bytes per element.
///
/// # Errors
/// Preprocessing and channel errors.
pub fn gelu_backward<C: Channel>(
    ctx: &mut PartyCtx<C>,
    saved: &GeluSaved,
    dy: &Share,
) -> Result<Share> {
    let t = fmul(ctx, &saved.s, &c_minus(ctx.id, 1.0, &saved.s))?;
    let u = fmul(ctx, &saved.x, &t)?;
    let d = saved.s.add(&pub_mul(ctx, &u, GELU_SIGMOID_SCALE)?)?;
    fmul(ctx, &d, dy)
}

/// Dealer: one [`relu`].
///
/// # Errors
/// Shape errors.
pub fn gen_relu(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    gen_ltz(dealer, shape)?;
    beaver::gen_mul(dealer, shape)
}

/// Party: ReLU(x) = x·\[x > 0\], and the bit (kept for the backward): 9 rounds, 232 bytes per
/// element.
///
/// # Errors
/// Preprocessing and channel errors.
pub fn relu<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<(Share, Share)> {
    let positive = ltz(ctx, &x.scale(u64::MAX))?;
    Ok((beaver::mul(ctx, x, &positive)?, positive))
}

/// Dealer: one backward by a saved bit ([`by_bit_backward`]).
///
/// # Errors
/// Shape errors.
pub fn gen_by_bit_backward(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    beaver::gen_mul(dealer, shape)
}

/// Party: dY times the saved bit (ReLU's backward): 1 round, 16 bytes per element.
///
/// # Errors
/// Preprocessing and channel errors.
pub fn by_bit_backward<C: Channel>(
    ctx: &mut PartyCtx<C>,
    bit: &Share,
    dy: &Share,
) -> Result<Share> {
    beaver::mul(ctx, dy, bit)
}

/// A dropout rate must lie in [0, 1) (1/(1 − p) scales the kept values).
fn check_rate(p: f64) -> Result<()> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(MpcError::Param {
            op: "baseline::dropout",
            what: format!("rate {p}: must be in [0, 1)"),
        })
    }
}

/// Dealer: one [`dropout`].
///
/// # Errors
/// Shape errors.
pub fn gen_dropout(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    binary::gen_rand(dealer, shape)?;
    gen_ltz(dealer, shape)?;
    beaver::gen_mul(dealer, shape)
}

/// Party: dropout with keep probability 1 − p (CrypTen's): r = rand, keep = \[r > p\],
/// x·keep/(1 − p); returns the output and the keep bit. 10 rounds, 360 bytes per element.
///
/// # Errors
/// [`MpcError::Param`] unless 0 ≤ p < 1; preprocessing and channel errors.
pub fn dropout<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share, p: f64) -> Result<(Share, Share)> {
    check_rate(p)?;
    let r = binary::rand(ctx, x.shape())?;
    let keep = ltz(ctx, &c_minus(ctx.id, p, &r))?;
    let kept = beaver::mul(ctx, x, &keep)?;
    let y = pub_mul(ctx, &kept, 1.0 / (1.0 - p))?;
    Ok((y, keep))
}

/// Party: dropout's backward dY·keep/(1 − p) (dealt by [`gen_by_bit_backward`]): 1 round, 16
/// bytes per element.
///
/// # Errors
/// [`MpcError::Param`] unless 0 ≤ p < 1; preprocessing and channel errors.
pub fn dropout_backward<C: Channel>(
    ctx: &mut PartyCtx<C>,
    keep: &Share,
    dy: &Share,
    p: f64,
) -> Result<Share> {
    check_rate(p)?;
    let kept = beaver::mul(ctx, dy, keep)?;
    pub_mul(ctx, &kept, 1.0 / (1.0 - p))
}

/// Dealer: one backward dY·y ([`exp_backward`]).
///
/// # Errors
/// Shape errors.
pub fn gen_exp_backward(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    beaver::gen_mul(dealer, shape)
}

/// Party: exp's backward dY·y: 1 round, 16 bytes per element.
///
/// # Errors
/// Preprocessing and channel errors.
pub fn exp_backward<C: Channel>(ctx: &mut PartyCtx<C>, y: &Share, dy: &Share) -> Result<Share> {
    fmul(ctx, dy, y)
}

/// Dealer: one backward by the square of the output ([`reciprocal_backward`],
/// [`tanh_backward`]).
///
/// # Errors
/// Shape errors.
pub fn gen_square_backward(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    beaver::gen_square(dealer, shape)?;
    beaver::gen_mul(dealer, shape)
}

/// Party: reciprocal's backward −dY·y²: 2 rounds, 24 bytes per element.
///
/// # Errors
/// Preprocessing and channel errors.
pub fn reciprocal_backward<C: Channel>(
    ctx: &mut PartyCtx<C>,
    y: &Share,
    dy: &Share,
) -> Result<Share> {
    let y2 = fsquare(ctx, y)?;
    Ok(fmul(ctx, &y2, dy)?.scale(u64::MAX))
}

/// Party: tanh's backward dY·(1 − y²): 2 rounds, 24 bytes per element.
///
/// # Errors
/// Preprocessing and channel errors.
pub fn tanh_backward<C: Channel>(ctx: &mut PartyCtx<C>, y: &Share, dy: &Share) -> Result<Share> {
    let y2 = fsquare(ctx, y)?;
    fmul(ctx, &c_minus(ctx.id, 1.0, &y2), dy)
}

/// Dealer: one [`rsqrt_backward`].
///
/// # Errors
/// Shape errors.
pub fn gen_rsqrt_backward(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    beaver::gen_square(dealer, shape)?;
    beaver::gen_mul(dealer, shape)?;
    beaver::gen_mul(dealer, shape)
}

/// Party: rsqrt's backward −½·dY·y³: 3 rounds, 40 bytes per element.
///
/// # Errors
/// Preprocessing and channel errors.
pub fn rsqrt_backward<C: Channel>(ctx: &mut PartyCtx<C>, y: &Share, dy: &Share) -> Result<Share> {
    let y2 = fsquare(ctx, y)?;
    let y3 = fmul(ctx, &y2, y)?;
    let g = fmul(ctx, &y3, dy)?;
    pub_mul(ctx, &g, -0.5)
}

/// Dealer: one [`sigmoid_backward`].
///
/// # Errors
/// Shape errors.
pub fn gen_sigmoid_backward(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    beaver::gen_mul(dealer, shape)?;
    beaver::gen_mul(dealer, shape)
}

/// Party: sigmoid's backward dY·y(1 − y): 2 rounds, 32 bytes per element.
///
/// # Errors
/// Preprocessing and channel errors.
pub fn sigmoid_backward<C: Channel>(ctx: &mut PartyCtx<C>, y: &Share, dy: &Share) -> Result<Share> {
    let t = fmul(ctx, y, &c_minus(ctx.id, 1.0, y))?;
    fmul(ctx, &t, dy)
}
