//! Layer norm over rows, y = γ ⊙ (x − μ)/√(σ² + ε) + β, forward and backward.
//!
//! **Spec** ([`spec`]) for rows of H entries (k = ⌈log₂ H⌉, c = round(2^24 / H)):
//!
//! 1. μ = ⌊(c·Σx + 2^23) / 2^24⌋; d = x − μ;
//! 2. u = ⌊(Σd² + 2^(15+k)) / 2^(16+k)⌋ = H·σ²/2^k at 2^16 (exact);
//! 3. ρ = [`Approx`] of (2^k·u/H + ε)^(−1/2) on u ∈ [2^−11, 2^8) (relative error ≤ 2^−10;
//!    clamped beyond: a constant row gives ρ = ρ(2^−11), never a division by zero);
//! 4. n = ⌊(d·ρ + 2^15) / 2^16⌋; y = ⌊(n·γ + 2^15) / 2^16⌋ + β.
//!
//! Inputs: |x| < 2^15, σ² < 2^10, H ≤ 2^12. **Forward rounds: 12** (μ 1; d and γ masked 1; u
//! 1; ρ 3; n 3; y 3). **Backward** (4 rounds, 24 + 16/H bytes per element) from the saved n,
//! γ (masked) and ρ: dβ = Σ_rows dY, dγ = Σ_rows dY ⊙ n, g = dY ⊙ γ, and
//! dX = ρ ⊙ (g − mean(g) − n ⊙ mean(g ⊙ n)), every product truncated locally (on values at
//! 2^32, or 2^40 for the means' 1/H) as the other backward passes are ([`backward_spec`]'s
//! floors, within [`backward_ulps`] per element). Before, each product was shifted exactly:
//! 9 rounds and 40.8 bytes per element.
//!
//! **Shifts.** The per-element exact shifts (n, y, g, dX) use one-bit comparison keys
//! ([`trunc_cmp`]: one more round and one opened bit each, about half the key bytes of the
//! one-round DCF shift); the per-row and per-column ones (μ, u, the means, dγ) keep the
//! one-round shift, whose keys are few.
//!
//! **What each party learns:** nothing (every opening is under a fresh mask).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::approx::{Approx, FitSpec};
use super::{
    FRAC, PRODUCT_WIDTH, add_const, gen_trunc, gen_trunc_cmp, last_dim, row_sums, spread, trunc,
    trunc_cmp,
};
use crate::mpc::error::Result;
use crate::mpc::gates::shift::ars_spec;
use crate::mpc::masked::{self, DealerMask, MaskedTensor};
use crate::mpc::{Dealer, MpcError, PartyCtx, Share};
use crate::net::Channel;
use crate::ring::RingTensor;

/// Width of ρ's input u (|u| < 2^11).
pub const RSQRT_WIDTH: u32 = 28;

fn log2_ceil(h: usize) -> u32 {
    usize::BITS - (h.max(1) - 1).leading_zeros()
}

fn mean_scale(h: usize) -> u64 {
    ((1u64 << 24) as f64 / h as f64).round() as u64
}

/// ρ for rows of `h` and ε = `eps` (fitted once per pair).
pub fn rsqrt(h: usize, eps: f64) -> Arc<Approx> {
    type Cache = Mutex<HashMap<(usize, u64), Arc<Approx>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    map.entry((h, eps.to_bits()))
        .or_insert_with(|| {
            let k = f64::from(1u32 << log2_ceil(h)) / h as f64;
            let f = move |u: f64| 1.0 / (k * u + eps).sqrt();
            let (lo, hi) = (2f64.powi(-11), 256.0);
            Arc::new(
                Approx::fit(&FitSpec {
                    name: "layer norm rsqrt",
                    f: &f,
                    width: RSQRT_WIDTH,
                    region: (lo, hi),
                    left: [f(lo), 0.0],
                    right: [f(hi), 0.0],
                    tol: &|u| 2f64.powi(-10) * f(u),
                    shift: 36,
                })
                .expect("layer norm's rsqrt fit is valid"),
            )
        })
        .clone()
}

fn check(shape: &[usize], gamma: &[usize]) -> Result<(usize, usize)> {
    let (rows, h) = last_dim("layernorm", shape)?;
    if h > 1 << 12 {
        return Err(MpcError::Param {
            op: "layernorm",
            what: format!("rows of {h}; at most 4096"),
        });
    }
    if gamma != [h] {
        return Err(MpcError::Shape {
            op: "layernorm (γ, β)",
            left: vec![h],
            right: gamma.to_vec(),
        });
    }
    Ok((rows, h))
}

fn tile(v: &RingTensor, rows: usize, shape: &[usize]) -> Result<RingTensor> {
    let data = (0..rows).flat_map(|_| v.as_slice().iter().copied()).collect();
    Ok(RingTensor::from_vec(shape, data)?)
}

fn col_sums(x: &RingTensor, h: usize) -> Result<RingTensor> {
    let mut out = vec![0u64; h];
    for row in x.as_slice().chunks(h) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o = o.wrapping_add(v);
        }
    }
    Ok(RingTensor::from_vec(&[h], out)?)
}

fn rs(x: u64, s: u32, w: u32) -> u64 {
    ars_spec(x.wrapping_add(1 << (s - 1)), w, s)
}

/// The cleartext forward: y for rows of x (γ, β of the row length).
pub fn spec(x: &[u64], gamma: &[u64], beta: &[u64], eps: f64) -> Vec<u64> {
    let h = gamma.len();
    let (k, c) = (log2_ceil(h), mean_scale(h));
    let rho_f = rsqrt(h, eps);
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(h) {
        let sum = row.iter().fold(0u64, |a, &v| a.wrapping_add(v));
        let mu = rs(sum.wrapping_mul(c), 24, 64);
        let d: Vec<u64> = row.iter().map(|&v| v.wrapping_sub(mu)).collect();
        let sq = d.iter().fold(0u64, |a, &v| a.wrapping_add(v.wrapping_mul(v)));
        let u = rs(sq, FRAC + k, 64);
        let rho = rho_f.spec(u);
        for ((&d, &g), &b) in d.iter().zip(gamma).zip(beta) {
            let n = rs(d.wrapping_mul(rho), FRAC, PRODUCT_WIDTH);
            out.push(rs(n.wrapping_mul(g), FRAC, PRODUCT_WIDTH).wrapping_add(b));
        }
    }
    out
}

/// floor(x / 2^s) of a signed ring value.
fn fl(x: u64, s: u32) -> u64 {
    ((x as i64) >> s) as u64
}

/// The cleartext backward: (dX, dγ, dβ) from the forward's x and dY, every truncation a floor
/// (the protocol gives dγ within 1 ulp, dX within [`backward_ulps`], dβ exactly).
pub fn backward_spec(
    x: &[u64],
    gamma: &[u64],
    dy: &[u64],
    eps: f64,
) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let h = gamma.len();
    let (k, c) = (log2_ceil(h), mean_scale(h));
    let rho_f = rsqrt(h, eps);
    let (mut dx, mut dg, mut db) = (Vec::new(), vec![0u64; h], vec![0u64; h]);
    let mut dg_raw = vec![0u64; h];
    for (row, dyr) in x.chunks(h).zip(dy.chunks(h)) {
        let sum = row.iter().fold(0u64, |a, &v| a.wrapping_add(v));
        let mu = rs(sum.wrapping_mul(c), 24, 64);
        let d: Vec<u64> = row.iter().map(|&v| v.wrapping_sub(mu)).collect();
        let sq = d.iter().fold(0u64, |a, &v| a.wrapping_add(v.wrapping_mul(v)));
        let rho = rho_f.spec(rs(sq, FRAC + k, 64));
        let n: Vec<u64> = d.iter().map(|&d| rs(d.wrapping_mul(rho), FRAC, PRODUCT_WIDTH)).collect();
        let g: Vec<u64> =
            dyr.iter().zip(gamma).map(|(&a, &b)| fl(a.wrapping_mul(b), FRAC)).collect();
        for j in 0..h {
            db[j] = db[j].wrapping_add(dyr[j]);
            dg_raw[j] = dg_raw[j].wrapping_add(dyr[j].wrapping_mul(n[j]));
        }
        let sgn = g.iter().zip(&n).fold(0u64, |a, (&g, &n)| a.wrapping_add(g.wrapping_mul(n)));
        let sg = g.iter().fold(0u64, |a, &v| a.wrapping_add(v));
        let m2 = fl(fl(sgn, FRAC).wrapping_mul(c), 24);
        let m1 = fl(sg.wrapping_mul(c), 24);
        for j in 0..h {
            let hu = g[j].wrapping_sub(m1).wrapping_sub(fl(n[j].wrapping_mul(m2), FRAC));
            dx.push(fl(hu.wrapping_mul(rho), FRAC));
        }
    }
    for j in 0..h {
        dg[j] = fl(dg_raw[j], FRAC);
    }
    (dx, dg, db)
}

/// The largest distance, in ulps, between the protocol's dX and [`backward_spec`]'s for a row
/// whose ρ (at 2^16) is `rho`: g, the two means and n ⊙ mean(g ⊙ n) are each off by at most
/// two ulps after their local truncations, so ĝ − mean(g) − … by at most 5, scaled by ρ in
/// the last product, plus its own ulp.
pub fn backward_ulps(rho: u64) -> u64 {
    5 * (rho >> FRAC) + 6
}

/// ρ (at 2^16) of each row of x, as the forward computes it.
pub fn row_rho(x: &[u64], h: usize, eps: f64) -> Vec<u64> {
    let (k, c) = (log2_ceil(h), mean_scale(h));
    x.chunks(h)
        .map(|row| {
            let sum = row.iter().fold(0u64, |a, &v| a.wrapping_add(v));
            let mu = rs(sum.wrapping_mul(c), 24, 64);
            let sq = row.iter().fold(0u64, |a, &v| {
                let d = v.wrapping_sub(mu);
                a.wrapping_add(d.wrapping_mul(d))
            });
            rsqrt(h, eps).spec(rs(sq, FRAC + k, 64))
        })
        .collect()
}

/// The dealer's plan for one layer norm: the masks its backward's products are bound to.
#[derive(Debug)]
pub struct Plan {
    shape: Vec<usize>,
    n: DealerMask,
    gamma: DealerMask,
}

/// What a party keeps for the backward.
#[derive(Debug)]
pub struct Saved {
    n: MaskedTensor,
    gamma: MaskedTensor,
    rho: Share,
}

/// Dealer: one forward over x of `shape` ([.., H]) with ε = `eps`.
///
/// # Errors
/// Shape, parameter and key errors.
pub fn gen_forward(dealer: &mut Dealer, shape: &[usize], eps: f64) -> Result<Plan> {
    let (rows, h) = last_dim("layernorm", shape)?;
    check(shape, &[h])?;
    let k = log2_ceil(h);
    gen_trunc(dealer, &[rows], 64, 24)?;
    let d = masked::gen_mask(dealer, shape)?;
    let gamma = masked::gen_mask(dealer, shape)?;
    masked::gen_mul(dealer, &d, &d)?;
    gen_trunc(dealer, &[rows], 64, FRAC + k)?;
    rsqrt(h, eps).deal_cmp(dealer, &[rows])?;
    let rho = masked::gen_mask(dealer, &[rows])?;
    masked::gen_mul(dealer, &d, &rho.broadcast(h)?.reshape(shape)?)?;
    gen_trunc_cmp(dealer, shape, PRODUCT_WIDTH, FRAC)?;
    let n = masked::gen_mask(dealer, shape)?;
    masked::gen_mul(dealer, &n, &gamma)?;
    gen_trunc_cmp(dealer, shape, PRODUCT_WIDTH, FRAC)?;
    Ok(Plan { shape: shape.to_vec(), n, gamma })
}

/// Dealer: the backward of `plan`'s forward.
///
/// # Errors
/// Shape and key errors.
pub fn gen_backward(dealer: &mut Dealer, plan: &Plan) -> Result<()> {
    let shape = &plan.shape;
    let (rows, h) = last_dim("layernorm", shape)?;
    let dy = masked::gen_mask(dealer, shape)?;
    let rho = masked::gen_mask(dealer, &[rows])?;
    masked::gen_mul(dealer, &dy, &plan.n)?;
    masked::gen_mul(dealer, &dy, &plan.gamma)?;
    let g = masked::gen_mask(dealer, shape)?;
    masked::gen_mul(dealer, &g, &plan.n)?;
    let m2 = masked::gen_mask(dealer, &[rows])?;
    masked::gen_mul(dealer, &plan.n, &m2.broadcast(h)?.reshape(shape)?)?;
    let hu = masked::gen_mask(dealer, shape)?;
    masked::gen_mul(dealer, &hu, &rho.broadcast(h)?.reshape(shape)?)
}

/// Party: ⟨layernorm(x)⟩ with shared γ, β (of the row length) and what the backward needs.
///
/// # Errors
/// Shape errors (γ or β not of the row length), preprocessing, channel and backend errors.
pub fn forward<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &Share,
    gamma: &Share,
    beta: &Share,
    eps: f64,
) -> Result<(Share, Saved)> {
    let shape = x.shape().to_vec();
    let (rows, h) = check(&shape, gamma.shape())?;
    check(&shape, beta.shape())?;
    let k = log2_ceil(h);
    let sum = row_sums(x.tensor(), h)?.scale(mean_scale(h));
    let mu = trunc(ctx, &add_const(ctx.id, &Share::new(sum), 1 << 23), 64, 24)?;
    let d = Share::new(
        x.tensor().sub(&RingTensor::from_vec(&shape, spread(mu.tensor(), h)?.into_vec())?)?,
    );
    let gt = Share::new(tile(gamma.tensor(), rows, &shape)?);
    let m = masked::mask_many(ctx, &[&d, &gt])?;
    let (dh, gh) = (&m[0], m[1].clone());
    let sq = masked::mul(ctx, dh, dh)?;
    let v = add_const(ctx.id, &Share::new(row_sums(sq.tensor(), h)?), 1 << (FRAC + k - 1));
    let u = trunc(ctx, &v, 64, FRAC + k)?;
    let rho = rsqrt(h, eps).eval_cmp(ctx, &u)?;
    let rh = masked::mask(ctx, &rho)?;
    let nu = masked::mul(ctx, dh, &rh.broadcast(h)?.reshape(&shape)?)?;
    let n = trunc_cmp(ctx, &add_const(ctx.id, &nu, 1 << (FRAC - 1)), PRODUCT_WIDTH, FRAC)?;
    let nh = masked::mask(ctx, &n)?;
    let yu = masked::mul(ctx, &nh, &gh)?;
    let y = trunc_cmp(ctx, &add_const(ctx.id, &yu, 1 << (FRAC - 1)), PRODUCT_WIDTH, FRAC)?;
    let y = y.add(&Share::new(tile(beta.tensor(), rows, &shape)?))?;
    Ok((y, Saved { n: nh, gamma: gh, rho }))
}

/// Party: (⟨dX⟩, ⟨dγ⟩, ⟨dβ⟩) from dY and the forward's saved values.
///
/// # Errors
/// Preprocessing, channel and backend errors.
pub fn backward<C: Channel>(
    ctx: &mut PartyCtx<C>,
    saved: &Saved,
    dy: &Share,
) -> Result<(Share, Share, Share)> {
    let shape = saved.n.shape().to_vec();
    let (_, h) = last_dim("layernorm backward", &shape)?;
    if dy.shape() != shape.as_slice() {
        return Err(MpcError::Shape {
            op: "layernorm backward",
            left: shape,
            right: dy.shape().to_vec(),
        });
    }
    let db = Share::new(col_sums(dy.tensor(), h)?);
    let local =
        |ctx: &PartyCtx<C>, v: RingTensor, s: u32| crate::mpc::trunc::trunc(ctx, &Share::new(v), s);
    // Round 1: dY and ρ masked; dγ and g locally.
    let m = masked::mask_many(ctx, &[dy, &saved.rho])?;
    let (dyh, rh) = (&m[0], &m[1]);
    let dg_u = col_sums(masked::mul(ctx, dyh, &saved.n)?.tensor(), h)?;
    let dg = local(ctx, dg_u, FRAC)?;
    let g_u = masked::mul(ctx, dyh, &saved.gamma)?.into_tensor();
    let g = local(ctx, g_u, FRAC)?;
    // Round 2: g masked; the row means of g ⊙ n and g.
    let gh = masked::mask(ctx, &g)?;
    let c = mean_scale(h);
    let sgn_u = row_sums(masked::mul(ctx, &gh, &saved.n)?.tensor(), h)?;
    let sgn = local(ctx, sgn_u, FRAC)?;
    let m2 = local(ctx, sgn.tensor().scale(c), 24)?;
    let m1 = local(ctx, row_sums(g.tensor(), h)?.scale(c), 24)?;
    // Round 3: mean(g ⊙ n) masked; h = g − mean(g) − n ⊙ mean(g ⊙ n).
    let m2h = masked::mask(ctx, &m2)?;
    let nm_u = masked::mul(ctx, &saved.n, &m2h.broadcast(h)?.reshape(&shape)?)?.into_tensor();
    let nm = local(ctx, nm_u, FRAC)?;
    let m1s = RingTensor::from_vec(&shape, spread(m1.tensor(), h)?.into_vec())?;
    let hu = g.tensor().sub(&m1s)?.sub(nm.tensor())?;
    // Round 4: h masked; dX = ρ ⊙ h.
    let hh = masked::mask(ctx, &Share::new(hu))?;
    let dx_u = masked::mul(ctx, &hh, &rh.broadcast(h)?.reshape(&shape)?)?.into_tensor();
    let dx = local(ctx, dx_u, FRAC)?;
    Ok((dx, dg, db))
}
