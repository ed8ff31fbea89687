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
//! 1; ρ 3; n 3; y 3). **Backward** (9 rounds) from the saved n, γ (masked) and ρ:
//! dβ = Σ_rows dY, dγ = Σ_rows dY ⊙ n, g = dY ⊙ γ, and
//! dX = ρ ⊙ (g − mean(g) − n ⊙ mean(g ⊙ n)) with every product exact-shifted once (the last
//! in the signed [`GRAD_WIDTH`]-bit range: |dX| < 2^11).
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
    FRAC, GRAD_WIDTH, PRODUCT_WIDTH, add_const, gen_trunc, gen_trunc_cmp, last_dim, row_sums,
    spread, trunc, trunc_cmp, trunc_many,
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

/// The cleartext backward: (dX, dγ, dβ) from the forward's x and dY.
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
        let g: Vec<u64> = dyr
            .iter()
            .zip(gamma)
            .map(|(&a, &b)| rs(a.wrapping_mul(b), FRAC, PRODUCT_WIDTH))
            .collect();
        for j in 0..h {
            db[j] = db[j].wrapping_add(dyr[j]);
            dg_raw[j] = dg_raw[j].wrapping_add(dyr[j].wrapping_mul(n[j]));
        }
        let sgn = g.iter().zip(&n).fold(0u64, |a, (&g, &n)| a.wrapping_add(g.wrapping_mul(n)));
        let sg = g.iter().fold(0u64, |a, &v| a.wrapping_add(v));
        let m2 = rs(sgn.wrapping_mul(c), FRAC + 24, 64);
        let m1 = rs(sg.wrapping_mul(c), 24, 64);
        for j in 0..h {
            let hu = (g[j] << FRAC).wrapping_sub(m1 << FRAC).wrapping_sub(n[j].wrapping_mul(m2));
            dx.push(rs(hu.wrapping_mul(rho), 32, GRAD_WIDTH));
        }
    }
    for j in 0..h {
        dg[j] = rs(dg_raw[j], FRAC, 64);
    }
    (dx, dg, db)
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
    gen_trunc(dealer, &[h], 64, FRAC)?;
    gen_trunc_cmp(dealer, shape, PRODUCT_WIDTH, FRAC)?;
    let g = masked::gen_mask(dealer, shape)?;
    masked::gen_mul(dealer, &g, &plan.n)?;
    gen_trunc(dealer, &[rows], 64, FRAC + 24)?;
    gen_trunc(dealer, &[rows], 64, 24)?;
    let m2 = masked::gen_mask(dealer, &[rows])?;
    masked::gen_mul(dealer, &plan.n, &m2.broadcast(h)?.reshape(shape)?)?;
    let hu = masked::gen_mask(dealer, shape)?;
    masked::gen_mul(dealer, &hu, &rho.broadcast(h)?.reshape(shape)?)?;
    gen_trunc_cmp(dealer, shape, GRAD_WIDTH, 32).map(drop)
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
    let m = masked::mask_many(ctx, &[dy, &saved.rho])?;
    let (dyh, rh) = (&m[0], &m[1]);
    let dg_u = Share::new(col_sums(masked::mul(ctx, dyh, &saved.n)?.tensor(), h)?);
    let g_u = masked::mul(ctx, dyh, &saved.gamma)?;
    let half = 1u64 << (FRAC - 1);
    let (dg_u, g_u) = (add_const(ctx.id, &dg_u, half), add_const(ctx.id, &g_u, half));
    let m = masked::mask_many(ctx, &[&dg_u, &g_u])?;
    let dg = masked::ars(ctx, &m[0], 64, FRAC)?;
    let g = masked::ars_cmp(ctx, &m[1], PRODUCT_WIDTH, FRAC)?;
    let gh = masked::mask(ctx, &g)?;
    let c = mean_scale(h);
    let sgn = Share::new(row_sums(masked::mul(ctx, &gh, &saved.n)?.tensor(), h)?.scale(c));
    let sg = Share::new(row_sums(g.tensor(), h)?.scale(c));
    let t = trunc_many(
        ctx,
        &[
            (&add_const(ctx.id, &sgn, 1 << (FRAC + 23)), 64, FRAC + 24),
            (&add_const(ctx.id, &sg, 1 << 23), 64, 24),
        ],
    )?;
    let (m2, m1) = (&t[0], &t[1]);
    let m2h = masked::mask(ctx, m2)?;
    let nm = masked::mul(ctx, &saved.n, &m2h.broadcast(h)?.reshape(&shape)?)?;
    let m1s = RingTensor::from_vec(&shape, spread(m1.tensor(), h)?.into_vec())?;
    let hu = g.tensor().scale(1 << FRAC).sub(&m1s.scale(1 << FRAC))?.sub(nm.tensor())?;
    let hh = masked::mask(ctx, &Share::new(hu))?;
    let z = masked::mul(ctx, &hh, &rh.broadcast(h)?.reshape(&shape)?)?;
    let dx = trunc_cmp(ctx, &add_const(ctx.id, &z, 1 << 31), GRAD_WIDTH, 32)?;
    Ok((dx, dg, db))
}
