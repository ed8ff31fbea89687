//! Smooth functions on masked inputs: a fitted piecewise quadratic from one spline gate, shifted
//! back exactly.
//!
//! **Function.** For a public f, an input width m (x in the signed m-bit range, i.e.
//! |x| < 2^(m−1−16) in real terms), a fitted region [lo, hi) and linear tails outside it, the
//! spec is
//!
//! ```text
//! spec(x) = ⌊ P_i(x) / 2^s ⌋,   P_i(x) = A_0 + A_1·(x − C_i) + A_2·(x − C_i)²   for x in piece i
//! ```
//!
//! computed exactly in Z_2^64 (integers A_k = round(a_k · 2^(16+s−16k)) + [k = 0]·2^(s−1), so the
//! shift rounds to nearest), with the pieces laid from left to right, each as wide as the quantised
//! quadratic (least squares on the piece, centred at its midpoint C_i) can be while it meets
//! [`FIT_SHARE`] of the stated tolerance on a dense sample. Centring keeps the coefficients' precision independent of where
//! the piece lies; expanding Σ A_k (x − C_i)^k into powers of x is exact in the ring, so the
//! spline gate (which works in powers of x) computes the centred polynomial bit for bit.
//!
//! **Protocol.** On a masked input x̂ (one opening, shared with the previous layer's when the
//! input is already masked): the spline gate gives ⟨P(x)⟩ locally; masking it (one round, 8
//! bytes per element) feeds the faithful shift gate, which gives ⟨spec(x)⟩ locally. Rounds: 2
//! from an additive input (1 from a masked one); bytes per element per party: 16 (8).
//!
//! **Key bytes per element per party** (k pieces including the two tails, m the input width,
//! w = [`Approx::out_width`], s = [`Approx::shift`]): the spline gate 16 + 40(m − 1) + 48 + 24 +
//! 8, the shift gate 56 + 24(w − 1) + 24(s − 1) + 8, and two masks (16). Evaluation: k + 1 DCF
//! evaluations of m levels with a 3-word payload, one of w levels and one of s levels.
//!
//! **What each party learns:** nothing beyond f, m, the pieces (public): both openings are of
//! values under fresh uniform masks.

use super::{FRAC, gen_trunc, gen_trunc_cmp, trunc, trunc_cmp};
use crate::mpc::error::Result;
use crate::mpc::gates::shift::ars_spec;
use crate::mpc::gates::spline::Spline;
use crate::mpc::masked::{self, DealerMask, MaskedTensor};
use crate::mpc::{Dealer, MpcError, PartyCtx, Share};
use crate::net::Channel;

/// The share of its tolerance a piece may use on the fit's sample (513 points per piece); the
/// rest covers what the sample misses between its points. Every function's spec is checked
/// against the **whole** tolerance on every fixed-point input of its range
/// (`tests/nonlinear.rs`, `every_fit_is_within_its_bound_on_every_input`): worst 0.86–0.96 of
/// the bound. Against fitting to half the tolerance (as before) this takes 12–21 % fewer pieces,
/// i.e. comparison walks per element: sigmoid and tanh 16 → 14, exp 19 → 15, GELU with GELU′
/// 20 → 17, 1/x 30 → 25, 1/√x 33 → 28. The softmax passes tighter tolerances for its exp and
/// 1/S ([`softmax::exp_approx`](super::softmax::exp_approx)), whose errors add up over a row.
pub const FIT_SHARE: f64 = 0.85;

/// What to fit: f on [lo, hi) with linear tails a + b·x outside, to a pointwise tolerance.
pub struct FitSpec<'a> {
    /// For error messages and docs.
    pub name: &'static str,
    /// The real function.
    pub f: &'a dyn Fn(f64) -> f64,
    /// Input width m (signed).
    pub width: u32,
    /// The fitted region [lo, hi).
    pub region: (f64, f64),
    /// a + b·x below lo (a constant: b = 0).
    pub left: [f64; 2],
    /// a + b·x at and above hi.
    pub right: [f64; 2],
    /// The allowed absolute error at x (the fit aims at [`FIT_SHARE`] of it).
    pub tol: &'a dyn Fn(f64) -> f64,
    /// Output shift s: the polynomial is evaluated at 2^(16+s) (s ≥ 16).
    pub shift: u32,
}

/// A fitted function: its spline (at 2^(16+s)), the exact shift s and the shift's width.
#[derive(Clone, Debug)]
pub struct Approx {
    name: &'static str,
    spline: Spline,
    shift: u32,
    out_width: u32,
}

/// Centred quantised coefficients of one piece: (C, [A_0, A_1, A_2]).
type Piece = (i64, [i128; 3]);

impl Approx {
    /// Fit `spec` (deterministic: the dealer and both parties get the same pieces).
    ///
    /// # Errors
    /// [`MpcError::Param`] when the region lies outside the width, the shift is not in
    /// [16, 40] or the output does not fit 64 bits.
    pub fn fit(spec: &FitSpec<'_>) -> Result<Approx> {
        let [one] = Self::fit_joint([spec])?;
        Ok(one)
    }

    /// Fit several functions on **one** set of breakpoints: every piece is as wide as the
    /// narrowest that all of them allow, so a single spline key evaluated once per breakpoint
    /// serves them all ([`masked::cmp_splines_tagged`]); their outputs share one shift and one
    /// shift width (the widest). The specs must agree on width, region and shift; tails and
    /// tolerances are each function's own.
    ///
    /// # Errors
    /// As [`fit`](Self::fit); [`MpcError::Param`] when the specs disagree.
    pub fn fit_joint<const N: usize>(specs: [&FitSpec<'_>; N]) -> Result<[Approx; N]> {
        let first = specs[0];
        if specs
            .iter()
            .any(|s| (s.width, s.region, s.shift) != (first.width, first.region, first.shift))
        {
            return Err(MpcError::Param {
                op: first.name,
                what: "a joint fit needs one width, region and shift".into(),
            });
        }
        let scale = f64::from(1u32 << FRAC);
        let (lo, hi) =
            ((first.region.0 * scale).round() as i64, (first.region.1 * scale).round() as i64);
        let half = 1i64 << (first.width.clamp(2, 62) - 1);
        let valid = (2..=62).contains(&first.width)
            && -half < lo
            && lo < hi
            && hi < half
            && (FRAC..=40).contains(&first.shift);
        if !valid {
            return Err(MpcError::Param {
                op: first.name,
                what: format!(
                    "region {:?}, width {}, shift {}: the region must lie inside the signed width and the shift in [16, 40]",
                    first.region, first.width, first.shift
                ),
            });
        }
        let mut starts = Vec::new();
        fit_range(&specs, lo, hi, &mut starts);
        let mut breaks = starts.clone();
        breaks.push(hi);
        let mut bounds = vec![-half];
        bounds.extend(&breaks);
        bounds.push(half - 1);
        let s = first.shift as i32;
        let tail = |[a, b]: [f64; 2]| -> Piece {
            (
                0,
                [
                    (a * 2f64.powi(FRAC as i32 + s)).round() as i128 + (1i128 << (s - 1)),
                    (b * 2f64.powi(s)).round() as i128,
                    0,
                ],
            )
        };
        let mut out_width = 0;
        let mut all_pieces = Vec::with_capacity(N);
        for spec in specs {
            let mut all = vec![tail(spec.left)];
            let ends = starts.iter().skip(1).copied().chain([hi]);
            all.extend(starts.iter().zip(ends).map(|(&a, b)| fit_piece(spec, a, b)));
            all.push(tail(spec.right));
            // The output's magnitude: dense samples of every piece and the tails at the range ends.
            let mut peak: i128 = 0;
            for (i, p) in all.iter().enumerate() {
                let (a, b) = (bounds[i], bounds[i + 1]);
                for j in 0..=64 {
                    let x = a + ((b - a) as i128 * j / 64) as i64;
                    peak = peak.max(eval_piece(p, x).abs());
                }
            }
            out_width = out_width.max((128 - peak.leading_zeros()) + 2);
            all_pieces.push(all);
        }
        if out_width > 64 {
            return Err(MpcError::Param {
                op: first.name,
                what: format!(
                    "the unshifted output needs {out_width} bits (at most 64): lower the shift"
                ),
            });
        }
        let mut fitted = all_pieces.into_iter().zip(specs);
        Ok(std::array::from_fn(|_| {
            let (all, spec) = fitted.next().expect("one fit per spec");
            let coeffs = all
                .iter()
                .map(|&(c, [a0, a1, a2])| {
                    let (c, a0, a1, a2) = (c as u64, a0 as u64, a1 as u64, a2 as u64);
                    vec![
                        a0.wrapping_sub(a1.wrapping_mul(c))
                            .wrapping_add(a2.wrapping_mul(c).wrapping_mul(c)),
                        a1.wrapping_sub(a2.wrapping_mul(c).wrapping_mul(2)),
                        a2,
                    ]
                })
                .collect();
            let spline = Spline { width: first.width, breaks: breaks.clone(), coeffs };
            Approx { name: spec.name, spline, shift: first.shift, out_width }
        }))
    }

    /// The function's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The spline before the shift (output at 2^(16+s)).
    pub fn spline(&self) -> &Spline {
        &self.spline
    }

    /// Input width m.
    pub fn width(&self) -> u32 {
        self.spline.width
    }

    /// The exact output shift s.
    pub fn shift(&self) -> u32 {
        self.shift
    }

    /// Width of the shift gate (the unshifted output lies in its signed range).
    pub fn out_width(&self) -> u32 {
        self.out_width
    }

    /// Pieces, the two tails included.
    pub fn pieces(&self) -> usize {
        self.spline.coeffs.len()
    }

    /// The unshifted output P(x) (at 2^(16+s)), as the spline gate computes it.
    pub fn raw_spec(&self, x: u64) -> u64 {
        self.spline.spec(x)
    }

    /// The cleartext function: ⌊P(x) / 2^s⌋ (rounded to nearest by P's constant term).
    pub fn spec(&self, x: u64) -> u64 {
        ars_spec(self.raw_spec(x), self.out_width, self.shift)
    }

    /// Dealer: spline keys (under use tag `tag`) for the masked tensor of `mask`, and the
    /// output's truncation by one-bit comparisons ([`trunc_cmp`]: the smaller keys, one more
    /// round).
    ///
    /// # Errors
    /// Key and shape errors; [`PreprocError::Reused`](crate::mpc::PreprocError::Reused) when
    /// `mask` already has spline keys under `tag`.
    pub fn gen_on(&self, dealer: &mut Dealer, mask: &DealerMask, tag: u8) -> Result<()> {
        self.gen_raw_on(dealer, mask, tag)?;
        gen_trunc_cmp(dealer, mask.shape(), self.out_width, self.shift).map(drop)
    }

    /// As [`gen_on`](Self::gen_on) with the one-round truncation ([`trunc`], DCF keys): for
    /// compositions where rounds count more than key bytes (the softmax).
    ///
    /// # Errors
    /// As [`gen_on`](Self::gen_on).
    pub fn gen_on_one_round(&self, dealer: &mut Dealer, mask: &DealerMask, tag: u8) -> Result<()> {
        self.gen_raw_on(dealer, mask, tag)?;
        gen_trunc(dealer, mask.shape(), self.out_width, self.shift).map(drop)
    }

    /// Dealer: only the spline keys (for [`eval_raw_on`](Self::eval_raw_on)).
    ///
    /// # Errors
    /// As [`gen_on`](Self::gen_on).
    pub fn gen_raw_on(&self, dealer: &mut Dealer, mask: &DealerMask, tag: u8) -> Result<()> {
        masked::gen_spline_tagged(dealer, self.spline.width, 2, mask, tag)
    }

    /// Dealer: a training forward ([`eval_train`](Self::eval_train)): the plain forward's
    /// material ([`deal_cmp`](Self::deal_cmp)) and, on the output's mask, the shift by one-bit
    /// comparisons as well, whose affine terms the backward's products need.
    ///
    /// # Errors
    /// As [`gen_on`](Self::gen_on).
    pub fn deal_train(&self, dealer: &mut Dealer, shape: &[usize]) -> Result<super::Plan> {
        let m = masked::gen_mask(dealer, shape)?;
        masked::gen_cmp_spline_tagged(dealer, &self.spline, &m, 0)?;
        let y = masked::gen_mask(dealer, shape)?;
        masked::gen_shift(dealer, self.out_width, self.shift, &y)?;
        let y = masked::gen_shift_cmp_saved(dealer, self.out_width, self.shift, &y)?;
        Ok(super::Plan { y })
    }

    /// Party: ⟨spec(x)⟩ for an additive x with keys from [`deal_train`](Self::deal_train) —
    /// the plain forward ([`eval_cmp`](Self::eval_cmp): three rounds, 16 bytes and p − 1 bits
    /// per element) — and, for the backward, the output's second exact shift on the same
    /// opening, by one-bit comparisons, evaluated but not opened: its bit travels with the
    /// backward's first opening, which leaves the output in affine form
    /// ([`affine::mul_deferred`](crate::mpc::affine::mul_deferred)).
    ///
    /// # Errors
    /// As [`eval_on`](Self::eval_on).
    pub fn eval_train<C: Channel>(
        &self,
        ctx: &mut PartyCtx<C>,
        x: &Share,
    ) -> Result<(Share, super::Saved)> {
        let xh = masked::mask(ctx, x)?;
        let raw = masked::cmp_spline_tagged(ctx, &self.spline, &xh, 0)?;
        let yh = masked::mask(ctx, &raw)?;
        let y = masked::ars(ctx, &yh, self.out_width, self.shift)?;
        let pending = masked::ars_cmp_deferred(ctx, &yh, self.out_width, self.shift)?;
        Ok((y.clone(), super::Saved::new(y, pending)))
    }

    /// Dealer: a mask, comparison-spline keys ([`gates::cmp_spline`](crate::mpc::gates::cmp_spline):
    /// one AES block per level, one opened bit per breakpoint) and the one-round exact shift,
    /// for [`eval_cmp`](Self::eval_cmp).
    ///
    /// # Errors
    /// As [`gen_on`](Self::gen_on).
    pub fn deal_cmp(&self, dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
        let m = masked::gen_mask(dealer, shape)?;
        masked::gen_cmp_spline_tagged(dealer, &self.spline, &m, 0)?;
        gen_trunc(dealer, shape, self.out_width, self.shift).map(drop)
    }

    /// Party: ⟨spec(x)⟩ (the function of [`eval_train`](Self::eval_train)) with keys from
    /// [`deal_cmp`](Self::deal_cmp): three rounds — open x̂, open the p − 1 breakpoint bits,
    /// mask the output for its exact shift — 16 bytes and p − 1 bits per element.
    ///
    /// # Errors
    /// As [`eval_on`](Self::eval_on).
    pub fn eval_cmp<C: Channel>(&self, ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
        let xh = masked::mask(ctx, x)?;
        let y = masked::cmp_spline_tagged(ctx, &self.spline, &xh, 0)?;
        trunc(ctx, &y, self.out_width, self.shift)
    }

    /// Dealer: a mask and [`gen_on_one_round`](Self::gen_on_one_round).
    ///
    /// # Errors
    /// As [`gen_on`](Self::gen_on).
    pub fn deal_one_round(&self, dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
        let m = masked::gen_mask(dealer, shape)?;
        self.gen_on_one_round(dealer, &m, 0)
    }

    /// Party: ⟨spec(x)⟩ for a masked x: two rounds, 8 bytes + 1 bit per element.
    ///
    /// # Errors
    /// Preprocessing (keys for another mask, width or tag), channel and backend errors.
    pub fn eval_on<C: Channel>(
        &self,
        ctx: &mut PartyCtx<C>,
        x: &MaskedTensor,
        tag: u8,
    ) -> Result<Share> {
        let y = self.eval_raw_on(ctx, x, tag)?;
        trunc_cmp(ctx, &y, self.out_width, self.shift)
    }

    /// Party: as [`eval_on`](Self::eval_on) with keys from
    /// [`gen_on_one_round`](Self::gen_on_one_round): one round, 8 bytes per element.
    ///
    /// # Errors
    /// As [`eval_on`](Self::eval_on).
    pub fn eval_on_one_round<C: Channel>(
        &self,
        ctx: &mut PartyCtx<C>,
        x: &MaskedTensor,
        tag: u8,
    ) -> Result<Share> {
        let y = self.eval_raw_on(ctx, x, tag)?;
        trunc(ctx, &y, self.out_width, self.shift)
    }

    /// Party: ⟨P(x)⟩ (unshifted, at 2^(16+s)), locally.
    ///
    /// # Errors
    /// As [`eval_on`](Self::eval_on).
    pub fn eval_raw_on<C: Channel>(
        &self,
        ctx: &mut PartyCtx<C>,
        x: &MaskedTensor,
        tag: u8,
    ) -> Result<Share> {
        masked::spline_tagged(ctx, &self.spline, x, tag)
    }

    /// Party: ⟨spec(x)⟩ for an additive x with keys from [`deal_one_round`](Self::deal_one_round):
    /// two rounds, 16 bytes per element.
    ///
    /// # Errors
    /// As [`eval_on`](Self::eval_on).
    pub fn eval_one_round<C: Channel>(&self, ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
        let xh = masked::mask(ctx, x)?;
        self.eval_on_one_round(ctx, &xh, 0)
    }
}

/// P(x) of one piece, exactly (i128).
fn eval_piece(&(c, a): &Piece, x: i64) -> i128 {
    let t = i128::from(x) - i128::from(c);
    a[0] + a[1] * t + a[2] * t * t
}

/// Least-squares quadratic of f on [a, b) (ring units), centred and quantised.
fn fit_piece(spec: &FitSpec<'_>, a: i64, b: i64) -> Piece {
    let scale = f64::from(1u32 << FRAC);
    let c = a + (b - a) / 2;
    let h = ((b - a) as f64 / 2.0 / scale).max(1e-9);
    // Normal equations in u = (x − C)/h on 33 Chebyshev points of [a, b].
    let mut ata = [[0f64; 3]; 3];
    let mut atb = [0f64; 3];
    for i in 0..33 {
        let u = (std::f64::consts::PI * (f64::from(i) + 0.5) / 33.0).cos();
        let x = c as f64 / scale + u * h;
        let y = (spec.f)(x);
        let p = [1.0, u, u * u];
        for r in 0..3 {
            atb[r] += p[r] * y;
            for k in 0..3 {
                ata[r][k] += p[r] * p[k];
            }
        }
    }
    let bcoef = solve3(ata, atb);
    let s = spec.shift as i32;
    let f = FRAC as i32;
    let q = |k: i32| (bcoef[k as usize] / h.powi(k) * 2f64.powi(f + s - k * f)).round() as i128;
    (c, [q(0) + (1i128 << (s - 1)), q(1), q(2)])
}

fn solve3(mut m: [[f64; 3]; 3], mut v: [f64; 3]) -> [f64; 3] {
    for col in 0..3 {
        let piv =
            (col..3).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs())).unwrap_or(col);
        m.swap(col, piv);
        v.swap(col, piv);
        for row in 0..3 {
            if row != col && m[col][col] != 0.0 {
                let k = m[row][col] / m[col][col];
                let pivot = m[col];
                for (x, p) in m[row].iter_mut().zip(pivot) {
                    *x -= k * p;
                }
                v[row] -= k * v[col];
            }
        }
    }
    [0, 1, 2].map(|i| if m[i][i] == 0.0 { 0.0 } else { v[i] / m[i][i] })
}

/// Whether a piece meets [`FIT_SHARE`] of the tolerance on 513 points (and the piece's last point).
fn piece_ok(spec: &FitSpec<'_>, a: i64, b: i64, p: &Piece) -> bool {
    let scale = f64::from(1u32 << FRAC);
    let (s, f) = (spec.shift, FRAC);
    (0..=512).map(|j| a + ((b - 1 - a) as i128 * j / 512) as i64).all(|x| {
        let out = eval_piece(p, x) >> s;
        let got = out as f64 / f64::from(1u32 << f);
        let want = (spec.f)(x as f64 / scale);
        (got - want).abs() <= FIT_SHARE * (spec.tol)(x as f64 / scale)
    })
}

/// Cover [a, b) with pieces from left to right, each as wide as every spec's tolerance allows
/// (found by doubling, then bisecting its right end to within 16 ulps; pieces under 64 ulps are
/// accepted as they are); pushes each piece's start. Against halving the range until every half
/// fits, this needs about a third fewer pieces, i.e. DCF evaluations per element.
fn fit_range(specs: &[&FitSpec<'_>], a: i64, b: i64, starts: &mut Vec<i64>) {
    let fits = |from: i64, to: i64| {
        specs.iter().all(|spec| piece_ok(spec, from, to, &fit_piece(spec, from, to)))
    };
    let mut from = a;
    while from < b {
        let to = if fits(from, b) {
            b
        } else {
            let mut good = (from + 64).min(b);
            let mut bad = b;
            let mut width = 128;
            while from + width < b {
                if fits(from, from + width) {
                    good = from + width;
                    width *= 2;
                } else {
                    bad = from + width;
                    break;
                }
            }
            while bad - good > 16 {
                let mid = good + (bad - good) / 2;
                if fits(from, mid) {
                    good = mid;
                } else {
                    bad = mid;
                }
            }
            good
        };
        starts.push(from);
        from = to;
    }
}
