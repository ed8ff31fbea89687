//! Piecewise polynomials from one comparison key: one AES block per level, one opened bit per
//! breakpoint.
//!
//! **Function.** The [`Spline`] of [`spline`](mod@super::spline): on signed m-bit inputs, piece i's
//! polynomial Σ_j c_{i,j}·x^j, exactly in Z_2^64. The same function bit for bit; only the
//! construction differs.
//!
//! **Construction.** With u = x + 2^(m−1) ∈ [0, 2^m) and û = u + r mod 2^m public, the
//! breakpoint comparisons are `[u < β] = [(û − β) mod 2^m < r] ⊕ [û < r] ⊕ [û < β]` (the
//! arithmetic identity of [`spline`](mod@super::spline)'s interval formula takes values in {0, 1},
//! where it agrees with the XOR). Every `[z < r]` comes from **one** [one-bit comparison
//! key](crate::fss::cmp) for α = r mod 2^m — one AES block per level instead of the
//! d + 2 of the (d + 1)-word DCF — evaluated at p points per element (the p − 1 inner
//! breakpoints and û). The parties open each breakpoint's bit under a dealer bit ρ_k (one round,
//! p − 1 bits per element each way) and, with the dealer's ⟨r^e⟩ and ⟨ρ_k·r^e⟩, finish
//! locally: `[u < β_k]·r^e = d̂_k·r^e + (1 − 2d̂_k)·ρ_k·r^e`, and
//! f(x) = poly_last(x) + Σ_k 1{u < β_k}·(poly_(k−1) − poly_k)(x) with x = x̂ − r expanded in r.
//!
//! **Against the DCF spline** (per element, p pieces, degree d, width m): AES blocks
//! p·(m − 6) against (p − 1)·(m − 1)·(d + 2) — about 4.5× fewer at m = 24, d = 2 — for one more
//! round of p − 1 bits; keys `16·(m − 7) + 32` bytes of comparison key, (p − 1) bits and
//! `8·(d + 1)·p` bytes of shares (≈ 690 B at p = 16, m = 24) against `16 + (16 + 8(d+1))(m − 1)
//! + 8(d+1)` bytes of DCF and `8·(d + 1)` of shares (≈ 970 B).
//!
//! **Privacy:** the key hides r; each opened bit is masked by its ρ_k, known to neither party.

use rand::Rng;
use zeroize::Zeroize;

use super::cmp_relu::packed_words;
use super::reduce;
use super::spline::{Spline, signed_binomials};
use crate::backend::Backend;
use crate::fss::{KeyBatch, KeyError, Scheme, cmp};
use crate::mpc::MpcError;
use crate::party::PartyId;
use crate::prg::ChaCha20Rng;

/// One party's keys for a spline with `pieces` pieces of degree `degree` on signed m-bit inputs.
/// Secret: prints its parameters and the key batch's public parameters only, zeroes its share
/// vectors when dropped; no `Clone`.
pub struct CmpSplineKeys {
    /// Input width m.
    pub(crate) width: u32,
    /// Polynomial degree d.
    pub(crate) degree: usize,
    /// Pieces p (p − 1 inner breakpoints, each with an opened bit).
    pub(crate) pieces: usize,
    /// Comparison on m bits, α = r mod 2^m.
    pub(crate) cmp: KeyBatch,
    /// XOR shares of ρ_k, packed: bit `elem·(p − 1) + k`.
    pub(crate) flips: Vec<u64>,
    /// Shares of r^e, e = 0..=d, per element (`elem·(d + 1) + e`).
    pub(crate) mask_powers: Vec<u64>,
    /// Shares of ρ_k·r^e per element and inner breakpoint (`(elem·(p − 1) + k)·(d + 1) + e`).
    pub(crate) rho_powers: Vec<u64>,
}

impl std::fmt::Debug for CmpSplineKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmpSplineKeys")
            .field("width", &self.width)
            .field("degree", &self.degree)
            .field("pieces", &self.pieces)
            .field("cmp", &self.cmp)
            .finish_non_exhaustive()
    }
}

impl Drop for CmpSplineKeys {
    fn drop(&mut self) {
        self.flips.zeroize();
        self.mask_powers.zeroize();
        self.rho_powers.zeroize();
    }
}

impl CmpSplineKeys {
    /// Opened bits per element: one per inner breakpoint.
    pub(crate) fn bits_per_element(&self) -> usize {
        self.pieces.saturating_sub(1)
    }

    /// The lengths every vector must have for `len` elements (flips, powers, ρ powers).
    pub(crate) fn lengths(len: usize, degree: usize, pieces: usize) -> Option<[usize; 3]> {
        let inner = pieces.checked_sub(1)?;
        let words = degree.checked_add(1)?;
        Some([
            packed_words(len.checked_mul(inner)?),
            len.checked_mul(words)?,
            len.checked_mul(inner)?.checked_mul(words)?,
        ])
    }
}

/// Dealer: keys for splines of `pieces` pieces and degree `degree` on signed m-bit inputs masked
/// by `masks` (full 64-bit masks).
///
/// # Errors
/// [`KeyError::Width`] unless 1 ≤ m ≤ 64; [`KeyError::Mismatch`] for no pieces or a degree ≥ 16.
pub fn keygen(
    width: u32,
    degree: usize,
    pieces: usize,
    masks: &[u64],
    rng: &mut ChaCha20Rng,
) -> Result<[CmpSplineKeys; 2], KeyError> {
    if !(1..=64).contains(&width) {
        return Err(KeyError::Width { n: width });
    }
    let len = masks.len();
    let Some([flip_words, _, _]) = CmpSplineKeys::lengths(len, degree, pieces)
        .filter(|_| degree < crate::fss::keys::MAX_WORDS as usize)
    else {
        return Err(KeyError::Mismatch {
            what: "comparison spline",
            expected: "at least one piece and a degree below 16".into(),
            found: format!("{pieces} pieces of degree {degree}"),
        });
    };
    let inner = pieces - 1;
    let words = degree + 1;
    let alphas: Vec<u64> = masks.iter().map(|&r| reduce(r, width)).collect();
    let [c0, c1] = cmp::keygen(width, &alphas, rng)?;
    // Party 0's shares and both bit vectors in bulk from the generator (one call each, not one
    // per value); party 1's shares are the secrets minus party 0's.
    let bulk = |n: usize, rng: &mut ChaCha20Rng| {
        let mut v = vec![0u64; n];
        rng.fill(&mut v[..]);
        v
    };
    // ρ (the opened bits' masks) and party 0's XOR shares of them, bit `elem·(p − 1) + k`;
    // the bits past the last element stay zero.
    let valid = |w: usize| -> u64 {
        let bits = (len * inner).saturating_sub(w * 64).min(64);
        if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 }
    };
    let mut rho_bits = bulk(flip_words, rng);
    let mut f0 = bulk(flip_words, rng);
    for (w, (r, z)) in rho_bits.iter_mut().zip(&mut f0).enumerate() {
        *r &= valid(w);
        *z &= valid(w);
    }
    let f1: Vec<u64> = f0.iter().zip(&rho_bits).map(|(z, r)| z ^ r).collect();
    let p0 = bulk(len * words, rng);
    let q0 = bulk(len * inner * words, rng);
    let mut p1 = Vec::with_capacity(p0.len());
    let mut q1 = Vec::with_capacity(q0.len());
    for (k, &r) in masks.iter().enumerate() {
        let mut pows = [0u64; crate::fss::keys::MAX_WORDS as usize];
        let mut p = 1u64;
        for (e, slot) in pows[..words].iter_mut().enumerate() {
            *slot = p;
            p1.push(p.wrapping_sub(p0[k * words + e]));
            p = p.wrapping_mul(r);
        }
        for b in 0..inner {
            let at = k * inner + b;
            // All ones where ρ = 1.
            let rho = ((rho_bits[at / 64] >> (at % 64)) & 1).wrapping_neg();
            for (e, &p) in pows[..words].iter().enumerate() {
                q1.push((rho & p).wrapping_sub(q0[at * words + e]));
            }
        }
    }
    rho_bits.zeroize();
    Ok([
        CmpSplineKeys {
            width,
            degree,
            pieces,
            cmp: c0,
            flips: f0,
            mask_powers: p0,
            rho_powers: q0,
        },
        CmpSplineKeys {
            width,
            degree,
            pieces,
            cmp: c1,
            flips: f1,
            mask_powers: p1,
            rho_powers: q1,
        },
    ])
}

/// Checks that the keys fit the spline and the batch.
fn check(keys: &CmpSplineKeys, spline: &Spline, len: usize) -> Result<(), MpcError> {
    spline.check()?;
    let party = keys.cmp.party();
    keys.cmp.expect(Scheme::Cmp, party, keys.width)?;
    let pieces = spline.coeffs.len();
    if (spline.width, spline.degree(), pieces) != (keys.width, keys.degree, keys.pieces) {
        return Err(KeyError::Mismatch {
            what: "comparison spline keys",
            expected: format!(
                "width {}, degree {}, {} pieces",
                spline.width,
                spline.degree(),
                pieces
            ),
            found: format!("width {}, degree {}, {} pieces", keys.width, keys.degree, keys.pieces),
        }
        .into());
    }
    let lengths = CmpSplineKeys::lengths(len, keys.degree, keys.pieces);
    let found = [keys.flips.len(), keys.mask_powers.len(), keys.rho_powers.len()];
    if keys.cmp.len() != len || lengths != Some(found) {
        return Err(KeyError::BatchLength {
            what: "masked inputs",
            expected: keys.cmp.len(),
            found: len,
        }
        .into());
    }
    Ok(())
}

/// û = x̂ + 2^(m−1) mod 2^m and the unsigned inner breakpoints β_k.
fn offsets(spline: &Spline, masked: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let m = spline.width;
    let half = 1u64 << (m - 1);
    let hat = masked.iter().map(|&x| reduce(x.wrapping_add(half), m)).collect();
    let betas = spline.breaks.iter().map(|&b| (b as u64).wrapping_add(half)).collect();
    (hat, betas)
}

/// Party, before the opening: this party's shares of the masked bits d̂_k = 1{u < β_k} ⊕ ρ_k,
/// packed (bit `elem·(p − 1) + k`). p comparison evaluations per element on the backend.
///
/// # Errors
/// [`KeyError::Mismatch`] / [`KeyError::BatchLength`] for keys of another spline, party or
/// length.
pub fn masked_bits(
    backend: &dyn Backend,
    keys: &CmpSplineKeys,
    spline: &Spline,
    masked: &[u64],
) -> Result<Vec<u64>, MpcError> {
    use rayon::prelude::*;
    let len = masked.len();
    check(keys, spline, len)?;
    let m = keys.width;
    let p0 = u64::from(keys.cmp.party() == PartyId::P0);
    let (hat, betas) = offsets(spline, masked);
    let inner = keys.bits_per_element();
    let mut wrap = vec![0u64; len];
    backend.eval_fss(&keys.cmp, &hat, &mut wrap)?;
    let mut bits = keys.flips.clone();
    let mut points = vec![0u64; len];
    let mut c = vec![0u64; len];
    // Elements per parallel task: whole groups of 64, whose `inner` bits fill `inner` words.
    const GROUPS: usize = 16;
    for (b, &beta) in betas.iter().enumerate() {
        points.par_chunks_mut(64 * GROUPS).zip(hat.par_chunks(64 * GROUPS)).for_each(|(z, u)| {
            for (z, &u) in z.iter_mut().zip(u) {
                *z = reduce(u.wrapping_sub(beta), m);
            }
        });
        backend.eval_fss(&keys.cmp, &points, &mut c)?;
        bits.par_chunks_mut(inner * GROUPS).enumerate().for_each(|(g, words)| {
            let first = g * 64 * GROUPS;
            for k in first..(first + 64 * GROUPS).min(len) {
                let public = p0 & u64::from(hat[k] < beta);
                let at = (k - first) * inner + b;
                words[at / 64] ^= (c[k] ^ wrap[k] ^ public) << (at % 64);
            }
        });
    }
    Ok(bits)
}

/// Party, after the opening (`opened`: the masked bits, packed as [`masked_bits`] made them):
/// shares of spline(x) for each masked input, for each of `splines` — splines with the
/// breakpoints, width and degree the keys were made for (one spline, or a joint fit whose
/// polynomials share the bits). One parallel pass over the keys for all of them.
///
/// Per element, with x = x̂ − r, d̂_b the opened bit of breakpoint b, Δ_b = poly_b − poly_(b+1)
/// and R_(b,e) the shares of ρ_b·r^e:
///
/// ```text
/// f(x) = (poly_last + Σ_b d̂_b·Δ_b)(x) + Σ_b (1 − 2d̂_b)·ρ_b·Δ_b(x),
/// ρ_b·Δ_b(x) = Σ_e R_(b,e)·c_(b,e)(x̂),   c_(b,e)(x̂) = (−1)^e Σ_(j≥e) C(j, e)·Δ_b[j]·x̂^(j−e)
/// ```
///
/// The first polynomial has public coefficients (one expansion in the shares of r^e per element);
/// the second is summed as Σ_(e,t) x̂^t·Σ_b γ_(b,e,t)·(±R_(b,e)) with the public
/// γ_(b,e,t) = (−1)^e C(e + t, e)·Δ_b[e + t]: (d + 1)(d + 2)/2 independent multiply-adds per
/// breakpoint and spline (6 at d = 2), no multiplications for the opened part.
///
/// # Errors
/// As [`masked_bits`], for each spline.
pub fn finish(
    keys: &CmpSplineKeys,
    splines: &[&Spline],
    masked: &[u64],
    opened: &[u64],
) -> Result<Vec<Vec<u64>>, MpcError> {
    for spline in splines {
        check(keys, spline, masked.len())?;
    }
    Ok(match keys.degree + 1 {
        1 => finish_words::<1>(keys, splines, masked, opened),
        2 => finish_words::<2>(keys, splines, masked, opened),
        3 => finish_words::<3>(keys, splines, masked, opened),
        4 => finish_words::<4>(keys, splines, masked, opened),
        _ => {
            finish_words::<{ crate::fss::keys::MAX_WORDS as usize }>(keys, splines, masked, opened)
        }
    })
}

/// One spline's public parts for [`finish_words`]: the last piece, Δ_b and γ_(b,e,t).
struct Finisher<const W: usize> {
    last: [u64; W],
    diffs: Vec<[u64; W]>,
    gammas: Vec<[[u64; W]; W]>,
}

/// [`finish`] with at most `W` coefficient words (exactly `W` for the common degrees, so the
/// loops unroll); the words beyond the spline's degree stay zero.
fn finish_words<const W: usize>(
    keys: &CmpSplineKeys,
    splines: &[&Spline],
    masked: &[u64],
    opened: &[u64],
) -> Vec<Vec<u64>> {
    use rayon::prelude::*;
    let words = keys.degree + 1;
    debug_assert!(words <= W);
    let inner = keys.bits_per_element();
    let binom = signed_binomials(words);
    let padded = |c: &[u64]| -> [u64; W] {
        let mut out = [0u64; W];
        out[..words].copy_from_slice(&c[..words]);
        out
    };
    let finishers: Vec<Finisher<W>> = splines
        .iter()
        .map(|spline| {
            let diffs: Vec<[u64; W]> = (0..inner)
                .map(|b| {
                    let mut d = padded(&spline.coeffs[b]);
                    for (x, &y) in d.iter_mut().zip(&padded(&spline.coeffs[b + 1])) {
                        *x = x.wrapping_sub(y);
                    }
                    d
                })
                .collect();
            // γ_(b,e,t) = (−1)^e C(e + t, e)·Δ_b[e + t] (zero where e + t > d).
            let gammas = diffs
                .iter()
                .map(|d| {
                    let mut g = [[0u64; W]; W];
                    for e in 0..words {
                        for t in 0..words - e {
                            g[e][t] = binom[e + t][e].wrapping_mul(d[e + t]);
                        }
                    }
                    g
                })
                .collect();
            Finisher { last: padded(&spline.coeffs[inner]), diffs, gammas }
        })
        .collect();
    let count = finishers.len();
    // Element k's outputs at `k·count + spline`.
    // `public` and `acc`: one slot per spline, reused across a chunk's elements.
    let element = |k: usize,
                   out: &mut [u64],
                   public: &mut [[u64; W]],
                   acc: &mut [[[u64; W]; W]]| {
        let xh = masked[k];
        let mut xp = [1u64; W];
        for j in 1..words {
            xp[j] = xp[j - 1].wrapping_mul(xh);
        }
        let pow = &keys.mask_powers[k * words..(k + 1) * words];
        for ((p, a), f) in public.iter_mut().zip(acc.iter_mut()).zip(&finishers) {
            *p = f.last;
            *a = [[0u64; W]; W];
        }
        for b in 0..inner {
            let at = k * inner + b;
            let dh = (opened[at / 64] >> (at % 64)) & 1;
            // All ones when d̂ = 1: selects Δ_b and negates ρ_b's terms without branches.
            let ones = dh.wrapping_neg();
            let rho = &keys.rho_powers[at * words..(at + 1) * words];
            let mut signed = [0u64; W];
            for e in 0..words {
                signed[e] = (rho[e] ^ ones).wrapping_add(dh);
            }
            for ((f, public), acc) in finishers.iter().zip(public.iter_mut()).zip(acc.iter_mut()) {
                for j in 0..words {
                    public[j] = public[j].wrapping_add(f.diffs[b][j] & ones);
                }
                for e in 0..words {
                    for t in 0..words - e {
                        acc[e][t] =
                            acc[e][t].wrapping_add(f.gammas[b][e][t].wrapping_mul(signed[e]));
                    }
                }
            }
        }
        for ((y, public), acc) in out.iter_mut().zip(public.iter()).zip(acc.iter()) {
            let mut v = 0u64;
            for e in 0..words {
                // coef_e(public, x̂) = (−1)^e Σ_(j≥e) C(j, e)·public[j]·x̂^(j−e), times ⟨r^e⟩.
                let coef = (e..words).fold(0u64, |a, j| {
                    a.wrapping_add(binom[j][e].wrapping_mul(public[j]).wrapping_mul(xp[j - e]))
                });
                v = v.wrapping_add(coef.wrapping_mul(pow[e]));
                for t in 0..words - e {
                    v = v.wrapping_add(acc[e][t].wrapping_mul(xp[t]));
                }
            }
            *y = v;
        }
    };
    let len = masked.len();
    let mut all = vec![0u64; len * count];
    if count > 0 {
        all.par_chunks_mut(1024 * count).enumerate().for_each(|(c, chunk)| {
            let mut public = vec![[0u64; W]; count];
            let mut acc = vec![[[0u64; W]; W]; count];
            for (i, out) in chunk.chunks_mut(count).enumerate() {
                element(c * 1024 + i, out, &mut public, &mut acc);
            }
        });
    }
    (0..count).map(|s| all.iter().skip(s).step_by(count).copied().collect()).collect()
}
