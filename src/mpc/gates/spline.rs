//! Piecewise polynomials (splines) in one round: one vector-payload DCF for all pieces.
//!
//! **Function.** Public breakpoints `−2^(m−1) = b_0 < b_1 < … < b_k = 2^(m−1)` and public
//! coefficients `c_{i,j}` (ring elements, degree ≤ d): for `x ∈ [b_i, b_(i+1))`,
//! `f(x) = Σ_j c_{i,j}·x^j` computed exactly in Z_2^64 (fixed-point callers encode the
//! coefficients at their scale and truncate afterwards).
//!
//! **Construction** (after Boyle et al., EUROCRYPT'21, splines). Write `x = x̂ − r`. Expanding,
//! `f(x) = Σ_i Σ_e coef_{i,e}(x̂) · ([x ∈ piece i]·r^e)` where
//! `coef_{i,e}(x̂) = (−1)^e Σ_{j≥e} C(j, e)·c_{i,j}·x̂^(j−e)` is public. The products
//! `[x ∈ piece i]·r^e` come from the interval formula of [`interval`](super::interval) with a
//! DCF whose payload is `(1, r, …, r^d)`: evaluated at each breakpoint it gives shares of
//! `[· < r_m]·r^e`, and the dealer adds shares of `r^e` for the public terms. One key serves
//! all pieces; each breakpoint costs one evaluation.
//!
//! **Privacy:** as the DCF. **Cost:** one m-bit DCF key with d + 1 words, k evaluations for
//! k pieces (the domain's two ends share one; d + 2 AES blocks per level each) per element.

use rand::Rng;

use super::reduce;
use crate::backend::Backend;
use crate::fss::KeyError;
use crate::fss::{KeyBatch, Scheme, dcf};
use crate::mpc::MpcError;
use crate::prg::ChaCha20Rng;

/// A public piecewise polynomial on signed m-bit inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spline {
    /// Input width m.
    pub width: u32,
    /// Inner breakpoints b_1 < … < b_(k−1) (the outer ones are the ends of the range).
    pub breaks: Vec<i64>,
    /// Coefficients per piece, lowest degree first; every piece has degree + 1 entries.
    pub coeffs: Vec<Vec<u64>>,
}

impl Spline {
    /// Degree d (coefficients per piece − 1).
    pub fn degree(&self) -> usize {
        self.coeffs.first().map_or(0, |c| c.len().saturating_sub(1))
    }

    pub(crate) fn check(&self) -> Result<(), KeyError> {
        let half = 1i128 << (self.width - 1);
        let bad = !(1..=64).contains(&self.width)
            || self.coeffs.len() != self.breaks.len() + 1
            || self.coeffs.iter().any(|c| c.len() != self.degree() + 1)
            || self.degree() + 1 > crate::fss::keys::MAX_WORDS as usize
            || self.breaks.windows(2).any(|w| w[0] >= w[1])
            || self.breaks.iter().any(|&b| !(-half < b as i128 && (b as i128) < half));
        if bad {
            return Err(KeyError::Mismatch {
                what: "spline",
                expected: "increasing inner breakpoints inside the range, one coefficient list per piece, degree < 16".into(),
                found: format!("{} breakpoints, {} pieces", self.breaks.len(), self.coeffs.len()),
            });
        }
        Ok(())
    }

    /// The cleartext function.
    pub fn spec(&self, x: u64) -> u64 {
        let xs = super::signed_in(reduce(x, self.width), self.width);
        let piece = self.breaks.iter().filter(|&&b| b <= xs).count();
        let mut power = 1u64;
        let mut acc = 0u64;
        for &c in &self.coeffs[piece] {
            acc = acc.wrapping_add(c.wrapping_mul(power));
            power = power.wrapping_mul(x);
        }
        acc
    }
}

/// (−1)^e·C(j, e) mod 2^64 for j, e < `words` (Pascal's rule: no divisions), `[j][e]`.
pub(crate) fn signed_binomials(words: usize) -> Vec<[u64; crate::fss::keys::MAX_WORDS as usize]> {
    let mut b = vec![[0u64; crate::fss::keys::MAX_WORDS as usize]; words];
    for j in 0..words {
        b[j][0] = 1;
        for e in 1..=j {
            let above = b[j - 1][e - 1].wrapping_neg();
            b[j][e] = above.wrapping_add(b[j - 1][e]);
        }
    }
    b
}

/// One party's spline keys (for one spline's degree and width).
/// Secret: prints its width and its key batches' public parameters only, and zeroes its share
/// vectors when dropped (the key batches zero themselves); no `Clone`.
pub struct SplineKeys {
    /// Input width m.
    pub(crate) width: u32,
    /// DCF on m bits with payload (1, r, …, r^d).
    pub(crate) dcf: KeyBatch,
    /// Shares of r^e, e = 0..=d, per element.
    pub(crate) mask_powers: Vec<u64>,
}

impl std::fmt::Debug for SplineKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplineKeys")
            .field("width", &self.width)
            .field("dcf", &self.dcf)
            .finish_non_exhaustive()
    }
}

impl Drop for SplineKeys {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.mask_powers);
    }
}

/// Dealer: keys for evaluating degree-`degree` splines on inputs masked by `masks`.
///
/// # Errors
/// [`KeyError::Width`] for a bad width, [`KeyError::Mismatch`] for a degree ≥ 16.
pub fn keygen(
    width: u32,
    degree: usize,
    masks: &[u64],
    rng: &mut ChaCha20Rng,
) -> Result<[SplineKeys; 2], KeyError> {
    if !(1..=64).contains(&width) {
        return Err(KeyError::Width { n: width });
    }
    let words = degree + 1;
    let alphas: Vec<u64> = masks.iter().map(|&r| reduce(r, width)).collect();
    let mut betas = Vec::with_capacity(words * masks.len());
    let (mut p0, mut p1) =
        (Vec::with_capacity(betas.capacity()), Vec::with_capacity(betas.capacity()));
    for &r in masks {
        let mut power = 1u64;
        for _ in 0..words {
            betas.push(power);
            let share: u64 = rng.random();
            p0.push(share);
            p1.push(power.wrapping_sub(share));
            power = power.wrapping_mul(r);
        }
    }
    let [k0, k1] = dcf::keygen_words(width, words as u32, &alphas, &betas, rng)?;
    Ok([
        SplineKeys { width, dcf: k0, mask_powers: p0 },
        SplineKeys { width, dcf: k1, mask_powers: p1 },
    ])
}

/// Party: shares of `spline(x)` for each masked input.
///
/// # Errors
/// [`KeyError::Mismatch`] for an invalid spline or keys of another width or degree;
/// [`KeyError::BatchLength`] for mismatched lengths.
pub fn eval(
    backend: &dyn Backend,
    keys: &SplineKeys,
    spline: &Spline,
    masked: &[u64],
    out: &mut [u64],
) -> Result<(), MpcError> {
    eval_many(backend, keys, &[spline], masked, out)
}

/// Party: shares of several splines **on the same breakpoints** (same width and degree, only
/// the coefficients differ) at each masked input, from one key: the DCF is evaluated once per
/// breakpoint and folded into every output, so the second function costs no AES at all.
/// `out` holds `splines.len()` blocks of `masked.len()` outputs, spline by spline.
///
/// # Errors
/// As [`eval`]; [`KeyError::Mismatch`] when the splines' breakpoints differ.
pub fn eval_many(
    backend: &dyn Backend,
    keys: &SplineKeys,
    splines: &[&Spline],
    masked: &[u64],
    out: &mut [u64],
) -> Result<(), MpcError> {
    let Some(&spline) = splines.first() else {
        return Ok(());
    };
    for s in splines {
        s.check()?;
        if (s.width, &s.breaks, s.degree()) != (spline.width, &spline.breaks, spline.degree()) {
            let describe = |f: &Spline| {
                format!(
                    "{} breakpoints at width {}, degree {}",
                    f.breaks.len(),
                    f.width,
                    f.degree()
                )
            };
            return Err(KeyError::Mismatch {
                what: "splines evaluated together (the same breakpoints)",
                expected: describe(spline),
                found: describe(s),
            }
            .into());
        }
    }
    let (m, party) = (keys.width, keys.dcf.party());
    let words = spline.degree() + 1;
    keys.dcf.expect(Scheme::Dcf, party, m)?;
    if spline.width != m || keys.dcf.words() as usize != words {
        return Err(KeyError::Mismatch {
            what: "spline keys",
            expected: format!("width {} and {} words", spline.width, words),
            found: format!("width {m} and {} words", keys.dcf.words()),
        }
        .into());
    }
    let len = masked.len();
    if keys.mask_powers.len() != words * len || out.len() != splines.len() * len {
        return Err(KeyError::BatchLength {
            what: "masked inputs",
            expected: keys.dcf.len(),
            found: len,
        }
        .into());
    }
    let half = 1u64 << (m - 1);
    let hat: Vec<u64> = masked.iter().map(|&x| reduce(x.wrapping_add(half), m)).collect();
    // Unsigned boundaries c_t ∈ [0, N]: 0, inner breakpoints shifted, N.
    let mut bounds: Vec<i128> = vec![0];
    bounds.extend(spline.breaks.iter().map(|&b| b as i128 + half as i128));
    bounds.push(1i128 << m);
    // E_t[e] = shares of [y < c_t]·r^e  =  D(û − c_t)[e] − D(û)[e] + [û < c_t]·⟨r^e⟩.
    // D(û) cancels between consecutive boundaries, so only D(û − c_t) and the public part are kept.
    // The first and last boundaries (0 and N) evaluate the DCF at the same points (û − 0 and
    // û − N agree mod N): one evaluation serves both.
    // Piece i's indicator times r^e is E_(i+1) − E_i, so
    //   out = Σ_i Σ_e coef_{i,e}(x̂)·(E_(i+1)[e] − E_i[e])
    //       = Σ_t Σ_e E_t[e]·(coef_{t−1,e}(x̂) − coef_{t,e}(x̂))   (coef_{−1} = coef_k = 0):
    // the boundaries stream through one buffer, each folded into every output as it is evaluated.
    let pieces = spline.coeffs.len();
    let signed_binom = signed_binomials(words);
    let coef = |f: &Spline, k: usize, i: usize, e: usize| -> u64 {
        if i >= pieces {
            return 0;
        }
        // coef_{i,e}(x̂) = (−1)^e Σ_{j≥e} C(j,e)·c_{i,j}·x̂^(j−e)
        let (coeffs, xh) = (&f.coeffs[i], masked[k]);
        let mut c = 0u64;
        let mut power = 1u64;
        for j in e..words {
            c = c.wrapping_add(signed_binom[j][e].wrapping_mul(coeffs[j]).wrapping_mul(power));
            power = power.wrapping_mul(xh);
        }
        c
    };
    out.fill(0);
    // coef_{t−1,e}(x̂) of the previous boundary, per spline, element and e.
    let mut prev = vec![0u64; splines.len() * words * len];
    let mut at_zero: Vec<u64> = Vec::new();
    let mut y = vec![0u64; words * len];
    let mut points = vec![0u64; len];
    for (t, &c) in bounds.iter().enumerate() {
        if t + 1 == bounds.len() && t > 0 {
            std::mem::swap(&mut y, &mut at_zero);
        } else {
            for (p, &u) in points.iter_mut().zip(&hat) {
                *p = reduce(u.wrapping_sub(c as u64), m);
            }
            backend.eval_fss(&keys.dcf, &points, &mut y)?;
            if t == 0 {
                at_zero.clone_from(&y);
            }
        }
        for k in 0..len {
            let below = (hat[k] as i128) < c;
            let v: [u64; crate::fss::keys::MAX_WORDS as usize] = std::array::from_fn(|e| {
                if e >= words {
                    return 0;
                }
                let v = y[k * words + e];
                if below { v.wrapping_add(keys.mask_powers[k * words + e]) } else { v }
            });
            for (f, spline) in splines.iter().enumerate() {
                let mut acc = out[f * len + k];
                for (e, &v) in v.iter().enumerate().take(words) {
                    let cur = coef(spline, k, t, e);
                    let slot = &mut prev[(f * len + k) * words + e];
                    let weight = slot.wrapping_sub(cur);
                    *slot = cur;
                    acc = acc.wrapping_add(weight.wrapping_mul(v));
                }
                out[f * len + k] = acc;
            }
        }
    }
    Ok(())
}
