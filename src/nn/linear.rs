//! The dense map y = x·Wᵀ + b (W is out × in, as Hugging Face stores it) on shares, with mask
//! reuse: Ŵ is opened once (per step for trainable weights, per run for frozen ones) and serves
//! the forward x·Wᵀ and the backward dY·W; x̂, opened once in the forward, serves dW = dYᵀ·x.
//!
//! **Cost per party** (rows r, widths i → o): forward 1 round and 8·r·i bytes to open x (none
//! when x is already masked: Q, K and V share one opening), backward 1 round and 8·r·o bytes to
//! open dY; the products themselves are local. Key material: the masks and one correlation
//! R_A·R_B per product (8 bytes per element of the product, per party).
//!
//! **What each party learns:** nothing (x̂, Ŵ and dŶ are one-time-padded).

use super::{Result, col_sums, gen_matmul, matmul_t};
use crate::mpc::masked::{self, DealerMask, MaskedTensor};
use crate::mpc::{Dealer, PartyCtx, Share};
use crate::net::Channel;

/// A party's dense map for one step: Ŵ in masked form and its share of the bias.
#[derive(Clone, Debug)]
pub struct Dense {
    /// The weight, out × in, masked.
    pub w: MaskedTensor,
    /// The bias, out.
    pub b: Share,
}

/// Gradients of one dense map (at 2^16, summed over the rows).
#[derive(Debug)]
pub struct Grads {
    /// ∂L/∂x (when asked for).
    pub dx: Option<Share>,
    /// ∂L/∂W, out × in.
    pub dw: Share,
    /// ∂L/∂b.
    pub db: Share,
}

/// Dealer: the forward product for an input masked by `x` (rows × in) and the weight mask `w`.
///
/// # Errors
/// Shape errors.
pub fn gen_forward_on(dealer: &mut Dealer, w: &DealerMask, x: &DealerMask) -> Result<()> {
    gen_matmul(dealer, x, &w.t()?)
}

/// Party: y = x̂·Ŵᵀ + b from an already masked input.
///
/// # Errors
/// Shape and preprocessing errors.
pub fn forward_on<C: Channel>(ctx: &mut PartyCtx<C>, d: &Dense, x: &MaskedTensor) -> Result<Share> {
    let y = matmul_t(ctx, x, &d.w.t()?)?;
    super::add_rows(&y, &d.b)
}

/// Dealer: the backward products for dY masked by `dy`, the forward's input mask `x`; the dX
/// product only when `need_dx`.
///
/// # Errors
/// Shape errors.
pub fn gen_backward_on(
    dealer: &mut Dealer,
    w: &DealerMask,
    x: &DealerMask,
    dy: &DealerMask,
    need_dx: bool,
) -> Result<()> {
    if need_dx {
        gen_matmul(dealer, dy, w)?;
    }
    gen_matmul(dealer, &dy.t()?, x)
}

/// Party: dX = dŶ·Ŵ (when `need_dx`), dW = dŶᵀ·x̂, db = Σ_rows dY, from dY (`dy`, additive)
/// and its masked form `dyh`.
///
/// # Errors
/// Shape and preprocessing errors.
pub fn backward_on<C: Channel>(
    ctx: &mut PartyCtx<C>,
    d: &Dense,
    x: &MaskedTensor,
    dy: &Share,
    dyh: &MaskedTensor,
    need_dx: bool,
) -> Result<Grads> {
    let dx = if need_dx { Some(matmul_t(ctx, dyh, &d.w)?) } else { None };
    let dw = matmul_t(ctx, &dyh.t()?, x)?;
    let out = d.b.tensor().len();
    let db = Share::new(col_sums(dy.tensor(), out)?);
    Ok(Grads { dx, dw, db })
}

/// Dealer: a whole forward (the input masked here) — returns the input's mask for the backward.
///
/// # Errors
/// Shape errors.
pub fn gen_forward(dealer: &mut Dealer, w: &DealerMask, x_shape: &[usize]) -> Result<DealerMask> {
    let x = masked::gen_mask(dealer, x_shape)?;
    gen_forward_on(dealer, w, &x)?;
    Ok(x)
}

/// Party: a whole forward, opening x: (y, x̂).
///
/// # Errors
/// Shape, channel and preprocessing errors.
pub fn forward<C: Channel>(
    ctx: &mut PartyCtx<C>,
    d: &Dense,
    x: &Share,
) -> Result<(Share, MaskedTensor)> {
    let xh = masked::mask(ctx, x)?;
    Ok((forward_on(ctx, d, &xh)?, xh))
}

/// Dealer: a whole backward (dY masked here).
///
/// # Errors
/// Shape errors.
pub fn gen_backward(
    dealer: &mut Dealer,
    w: &DealerMask,
    x: &DealerMask,
    dy_shape: &[usize],
    need_dx: bool,
) -> Result<()> {
    let dy = masked::gen_mask(dealer, dy_shape)?;
    gen_backward_on(dealer, w, x, &dy, need_dx)
}

/// Party: a whole backward, opening dY.
///
/// # Errors
/// Shape, channel and preprocessing errors.
pub fn backward<C: Channel>(
    ctx: &mut PartyCtx<C>,
    d: &Dense,
    x: &MaskedTensor,
    dy: &Share,
    need_dx: bool,
) -> Result<Grads> {
    let dyh = masked::mask(ctx, dy)?;
    backward_on(ctx, d, x, dy, &dyh, need_dx)
}
