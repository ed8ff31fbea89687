//! Softmax over rows with an additive attention mask, forward and backward.
//!
//! **Spec** ([`spec`]), for rows of L entries x (and mask entries a, |x + a| < 256 — a mask
//! value of −64 or below silences an entry, e^−64 being far below the last bit):
//!
//! 1. z = x + a; the row maximum M by a tree of ⌈log₂ L⌉ levels of max(u, v) = v + ReLU(u − v)
//!    (26-bit ReLU gates, exact);
//! 2. e = exp(z − M) by [`exp_approx`] (exp's fit, tighter), in [0, 1], the maximum giving
//!    exactly 1 — on the comparison spline by default, or the DCF spline ([`ExpGate`]);
//! 3. S = Σ e ∈ [1, L]; P(S) = the unshifted [`Approx`] of 1/S on [1, L) (1/L from L on), at
//!    2^(16+24);
//! 4. y = ⌊(e · P(S) + 2^39) / 2^40⌋, exact.
//!
//! A fully masked row (every a ≤ −64) is shifted as a whole, so it gives the softmax of its own
//! scores — finite, summing to 1 — as PyTorch does with a finite mask value; never garbage.
//! Error (measured by the tests on random rows): ≤ 2^−10 per entry, rows summing to 1 ± 2^−9.
//!
//! **Rounds:** ⌈log₂ L⌉ (max tree) + 3 (exp: z − M masked, its p − 1 breakpoint bits opened, the
//! exact shift) + 1 (e and S masked together) + 1 (P(S) masked) + 1 (the final shift) =
//! ⌈log₂ L⌉ + 6: 11 for L = 32. **Bytes per entry per party:** 8·(L − 1)/L (the tree) + 16 +
//! (p − 1)/8 (exp, p = 19 pieces) + 8 + 8 + 8/L·2.
//!
//! **The exponential's gate** ([`ExpGate`]). The default evaluates exp on the comparison spline
//! (one AES block per level, 19 walks of 20 blocks per entry); [`ExpGate::Dcf`] on the DCF
//! spline (one round fewer, ⌈log₂ L⌉ + 5 = 10 for L = 32, and no opened bits, but 18
//! evaluations of a three-word DCF, 4 blocks per level: about 1,800 AES blocks per entry). Same
//! function bit for bit. `prifft bench protocols --ops softmax` at 2^16 entries on a 2-core
//! EPYC: 176–212 ms on `lan` against 398–495 ms for the DCF spline, 614–653 against 831–884 ms
//! on `wan`, keys 3,295 against 3,589 bytes per entry.
//!
//! **Backward** (2 rounds, 24 bytes per entry per party): dX = Y ⊙ (dY − rowsum(dY ⊙ Y)): Y
//! and dY masked together, p = dY ⊙ Y (at 2^32, local), q = ⌊(2^16·dY − rowsum(p)) / 2^16⌋
//! (local truncation), q masked, dX = ⌊Y ⊙ q / 2^16⌋ (local truncation). Both truncations act
//! on values at 2^32, where a local truncation's wrap has probability about |v|/2^63, and each
//! adds at most one ulp ([`BACKWARD_ULPS`] in all, Y ≤ 1). Before, the product at 2^48 ended
//! with one exact shift (3 rounds, 32 bytes and an 850-byte key per entry); now the keys are
//! three masks and two correlations, 40 bytes.
//!
//! **What each party learns:** nothing (every opening is under a fresh mask).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::approx::{Approx, FIT_SHARE, FitSpec};
use super::exp;
use super::{FRAC, add_const, floor_mul, gen_trunc, last_dim, row_sums, spread, trunc};
use crate::mpc::error::Result;
use crate::mpc::gates;
use crate::mpc::gates::shift::ars_spec;
use crate::mpc::masked;
use crate::mpc::{Dealer, PartyCtx, Share};
use crate::net::Channel;
use crate::ring::RingTensor;

/// Width of the max tree's comparisons (and of exp's input).
pub const WIDTH: u32 = exp::WIDTH;
/// The reciprocal's output shift.
const RECIP_SHIFT: u32 = 24;
/// Width of the final shift.
const OUT_WIDTH: u32 = 60;

/// The softmax's exponential: e^x fitted so that every piece is within 2^−13 of f64 on the
/// fit's sample, where exp's own fit aims at 0.85·2^−12. A row's other entries add their
/// errors into the sum S, so the softmax needs the tighter one to stay within 2^−10 per entry:
/// with exp's own fit (15 pieces instead of 19) `prifft bench protocols` measured a largest
/// error of 1.4·10^−3 per entry, with this one 7.9·10^−4.
pub fn exp_approx() -> &'static Approx {
    static A: OnceLock<Approx> = OnceLock::new();
    A.get_or_init(|| exp::fit("softmax exp", 2f64.powi(-13) / FIT_SHARE))
}

/// The reciprocal of the row sum for rows of `len` entries (fitted once per length; each
/// piece within 2^−12 relative on the fit's sample, for the same reason as [`exp_approx`]).
pub fn reciprocal(len: usize) -> Arc<Approx> {
    static CACHE: OnceLock<Mutex<HashMap<usize, Arc<Approx>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    map.entry(len)
        .or_insert_with(|| {
            let top = (len.max(2)) as f64;
            let width = FRAC + (usize::BITS - (len.max(2) - 1).leading_zeros()) + 2;
            Arc::new(
                Approx::fit(&FitSpec {
                    name: "softmax reciprocal",
                    f: &|x| 1.0 / x,
                    width,
                    region: (1.0, top),
                    left: [1.0, 0.0],
                    right: [1.0 / top, 0.0],
                    tol: &|x| 2f64.powi(-12) / (FIT_SHARE * x),
                    shift: RECIP_SHIFT,
                })
                .expect("the softmax reciprocal's fit is valid"),
            )
        })
        .clone()
}

fn check_len(len: usize) -> Result<()> {
    if len > 1 << 12 {
        return Err(crate::mpc::MpcError::Param {
            op: "softmax",
            what: format!("rows of {len}; at most 4096 entries"),
        });
    }
    Ok(())
}

/// The cleartext forward on rows of `len` (`mask` of the same length as `x`, or none).
pub fn spec(x: &[u64], mask: Option<&[u64]>, len: usize) -> Vec<u64> {
    let recip = reciprocal(len);
    let mut out = Vec::with_capacity(x.len());
    for (i, row) in x.chunks(len).enumerate() {
        let z: Vec<u64> = match mask {
            Some(m) => row.iter().zip(&m[i * len..]).map(|(&a, &b)| a.wrapping_add(b)).collect(),
            None => row.to_vec(),
        };
        let mut cur = z.clone();
        while cur.len() > 1 {
            let h = cur.len() / 2;
            let mut next: Vec<u64> = (0..h)
                .map(|j| {
                    cur[h + j].wrapping_add(gates::relu::spec(cur[j].wrapping_sub(cur[h + j])))
                })
                .collect();
            if cur.len() % 2 == 1 {
                next.push(cur[2 * h]);
            }
            cur = next;
        }
        let e: Vec<u64> = z.iter().map(|&v| exp_approx().spec(v.wrapping_sub(cur[0]))).collect();
        let s = e.iter().fold(0u64, |a, &v| a.wrapping_add(v));
        let inv = recip.raw_spec(s);
        let half = 1u64 << (FRAC + RECIP_SHIFT - 1);
        out.extend(e.iter().map(|&v| {
            ars_spec(v.wrapping_mul(inv).wrapping_add(half), OUT_WIDTH, FRAC + RECIP_SHIFT)
        }));
    }
    out
}

/// Largest distance, in ulps, between the protocol's backward and [`backward_spec`] (two local
/// truncations; the first one's ulp is scaled by Y ≤ 1).
pub const BACKWARD_ULPS: u64 = 2;

/// The cleartext backward on rows of `len`: q = ⌊(2^16·dY − Σ dY·Y) / 2^16⌋,
/// dX = ⌊Y·q / 2^16⌋, floors exact.
pub fn backward_spec(y: &[u64], dy: &[u64], len: usize) -> Vec<u64> {
    let mut out = Vec::with_capacity(y.len());
    for (yr, dr) in y.chunks(len).zip(dy.chunks(len)) {
        let s = yr.iter().zip(dr).fold(0u64, |a, (&y, &d)| a.wrapping_add(y.wrapping_mul(d)));
        out.extend(yr.iter().zip(dr).map(|(&y, &d)| {
            let q = (((d << FRAC).wrapping_sub(s)) as i64 >> FRAC) as u64;
            floor_mul(y, q, 1, FRAC)
        }));
    }
    out
}

/// How the softmax evaluates its exponential (the same function, bit for bit, either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExpGate {
    /// The comparison spline ([`Approx::eval_cmp`]): one AES block per level and one opened bit
    /// per breakpoint — one round more (⌈log₂ L⌉ + 6: 11 for L = 32), about 4× fewer AES blocks
    /// and 0.3 KB less key per entry. The default: faster on every network setting measured,
    /// `wan` included (module docs).
    #[default]
    Comparison,
    /// The DCF spline ([`Approx::eval_one_round`]): ⌈log₂ L⌉ + 5 rounds (10 for L = 32), for a
    /// caller held to that round count. Slower on every network setting measured, `wan`
    /// (20 ms one way) included: the DCF walks cost more than the round they save.
    Dcf,
}

/// Dealer: one forward over `shape` (rows are the last dimension), exp on the comparison spline
/// ([`ExpGate::Comparison`]).
///
/// # Errors
/// Shape and key errors; [`MpcError::Param`](crate::mpc::MpcError::Param) for rows over 4096.
pub fn gen_forward(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    gen_forward_with(dealer, shape, ExpGate::Comparison)
}

/// Dealer: as [`gen_forward`] with the exponential's gate chosen.
///
/// # Errors
/// As [`gen_forward`].
pub fn gen_forward_with(dealer: &mut Dealer, shape: &[usize], exp_gate: ExpGate) -> Result<()> {
    let (rows, len) = last_dim("softmax", shape)?;
    check_len(len)?;
    let mut cur = len;
    while cur > 1 {
        gates::gen_relu(dealer, WIDTH, rows * (cur / 2))?;
        cur = cur / 2 + cur % 2;
    }
    match exp_gate {
        ExpGate::Comparison => exp_approx().deal_cmp(dealer, shape)?,
        ExpGate::Dcf => exp_approx().deal_one_round(dealer, shape)?,
    }
    let e = masked::gen_mask(dealer, shape)?;
    let s = masked::gen_mask(dealer, &[rows])?;
    let recip = reciprocal(len);
    recip.gen_raw_on(dealer, &s, 0)?;
    let inv = masked::gen_mask(dealer, &[rows])?;
    masked::gen_mul(dealer, &e, &inv.broadcast(len)?.reshape(shape)?)?;
    gen_trunc(dealer, shape, OUT_WIDTH, FRAC + RECIP_SHIFT).map(drop)
}

/// Dealer: one backward over `shape`.
///
/// # Errors
/// As [`gen_forward`].
pub fn gen_backward(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    let dy = masked::gen_mask(dealer, shape)?;
    let y = masked::gen_mask(dealer, shape)?;
    masked::gen_mul(dealer, &dy, &y)?;
    let q = masked::gen_mask(dealer, shape)?;
    masked::gen_mul(dealer, &y, &q)
}

fn columns(x: &RingTensor, len: usize, range: std::ops::Range<usize>) -> Vec<u64> {
    x.as_slice().chunks(len).flat_map(|row| row[range.clone()].to_vec()).collect()
}

/// Party: ⟨softmax(x + mask)⟩ over the last dimension, with keys from [`gen_forward`].
///
/// # Errors
/// Preprocessing, channel and backend errors; [`MpcError::Shape`](crate::mpc::MpcError::Shape)
/// when the mask's shape is not x's.
pub fn forward<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &Share,
    mask: Option<&Share>,
) -> Result<Share> {
    forward_with(ctx, x, mask, ExpGate::Comparison)
}

/// Party: as [`forward`] with keys from [`gen_forward_with`] for the same `exp_gate`.
///
/// # Errors
/// As [`forward`]; keys dealt for the other gate are a preprocessing error.
pub fn forward_with<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &Share,
    mask: Option<&Share>,
    exp_gate: ExpGate,
) -> Result<Share> {
    let shape = x.shape().to_vec();
    let (rows, len) = last_dim("softmax", &shape)?;
    check_len(len)?;
    let z = match mask {
        Some(m) => x.add(m)?,
        None => x.clone(),
    };
    // The max tree: each level compares the first half of the remaining columns with the second.
    let mut cur = z.tensor().clone();
    let mut width = len;
    while width > 1 {
        let h = width / 2;
        let a = RingTensor::from_vec(&[rows, h], columns(&cur, width, 0..h))?;
        let b = RingTensor::from_vec(&[rows, h], columns(&cur, width, h..2 * h))?;
        let r = gates::relu(ctx, &Share::new(a.sub(&b)?), WIDTH)?;
        let m = b.add(r.tensor())?;
        let next_width = h + width % 2;
        let mut next = Vec::with_capacity(rows * next_width);
        for (i, row) in m.as_slice().chunks(h).enumerate() {
            next.extend_from_slice(row);
            if width % 2 == 1 {
                next.push(cur.as_slice()[i * width + 2 * h]);
            }
        }
        cur = RingTensor::from_vec(&[rows, next_width], next)?;
        width = next_width;
    }
    let max = RingTensor::from_vec(&[rows], cur.into_vec())?;
    let d =
        Share::new(z.tensor().sub(&RingTensor::from_vec(&shape, spread(&max, len)?.into_vec())?)?);
    let e = match exp_gate {
        ExpGate::Comparison => exp_approx().eval_cmp(ctx, &d)?,
        ExpGate::Dcf => exp_approx().eval_one_round(ctx, &d)?,
    };
    let s = Share::new(row_sums(e.tensor(), len)?);
    let m = masked::mask_many(ctx, &[&e, &s])?;
    let inv = reciprocal(len).eval_raw_on(ctx, &m[1], 0)?;
    let inv = masked::mask(ctx, &inv)?;
    let prod = masked::mul(ctx, &m[0], &inv.broadcast(len)?.reshape(&shape)?)?;
    let prod = add_const(ctx.id, &prod, 1 << (FRAC + RECIP_SHIFT - 1));
    trunc(ctx, &prod, OUT_WIDTH, FRAC + RECIP_SHIFT)
}

/// Party: ⟨Y ⊙ (dY − rowsum(dY ⊙ Y))⟩ from the saved output y ([`backward_spec`], within
/// [`BACKWARD_ULPS`]).
///
/// # Errors
/// As [`forward`].
pub fn backward<C: Channel>(ctx: &mut PartyCtx<C>, y: &Share, dy: &Share) -> Result<Share> {
    let shape = y.shape().to_vec();
    let (_, len) = last_dim("softmax backward", &shape)?;
    let m = masked::mask_many(ctx, &[dy, y])?;
    let p = masked::mul(ctx, &m[0], &m[1])?;
    let s = spread(&row_sums(p.tensor(), len)?, len)?;
    let q = dy.tensor().scale(1 << FRAC).sub(&RingTensor::from_vec(&shape, s.into_vec())?)?;
    let q = crate::mpc::trunc::trunc(ctx, &Share::new(q), FRAC)?;
    let qh = masked::mask(ctx, &q)?;
    let z = masked::mul(ctx, &m[1], &qh)?;
    crate::mpc::trunc::trunc(ctx, &z, FRAC)
}
