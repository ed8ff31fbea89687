//! Interval containment `[p ≤ x < q)` with one m-bit DCF key evaluated at two points.
//!
//! **Function.** For signed `x ∈ [−2^(m−1), 2^(m−1))` and public bounds
//! `−2^(m−1) ≤ p ≤ q ≤ 2^(m−1)`: `[p ≤ x < q]`.
//!
//! **Construction** (Boyle et al., EUROCRYPT'21, interval containment). Shift to unsigned
//! `y = x + 2^(m−1) ∈ [0, N)`, `N = 2^m`; then `û = y + r mod N` is public. With one DCF
//! `D(z) = [z < r]` (α = r mod N, β = 1), for any public `c ∈ [0, N]`:
//!
//! ```text
//! [y < c] = D((û − c) mod N) − D(û) + [û < c]
//! ```
//!
//! (both wrap cases of `û − r` give the same formula), so
//! `[p' ≤ y < q'] = D(û − q') − D(û − p') + [û < q'] − [û < p']` — the `D(û)` terms cancel.
//! Several intervals over the same input (a spline's pieces) share the key: one more
//! evaluation per bound.
//!
//! **Privacy:** as the DCF; the parties see only `û`. **Cost:** one m-bit DCF key, two
//! evaluations per element.

use super::reduce;
use crate::backend::Backend;
use crate::fss::KeyError;
use crate::fss::{KeyBatch, Scheme, dcf};
use crate::mpc::MpcError;
use crate::party::PartyId;
use crate::prg::ChaCha20Rng;

/// One party's keys for a batch of interval gates on width-m inputs.
/// Secret: prints its width and its key batches' public parameters only, and zeroes its share
/// vectors when dropped (the key batches zero themselves); no `Clone`.
pub struct IntervalKeys {
    /// Gate width m (1..=64).
    pub(crate) width: u32,
    /// DCF keys on m bits with α = r mod 2^m.
    pub(crate) dcf: KeyBatch,
}

impl std::fmt::Debug for IntervalKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntervalKeys")
            .field("width", &self.width)
            .field("dcf", &self.dcf)
            .finish_non_exhaustive()
    }
}

/// The cleartext function.
pub fn spec(x: u64, width: u32, p: i64, q: i64) -> u64 {
    let x = super::signed_in(reduce(x, width), width);
    (p <= x && x < q) as u64
}

/// Dealer: interval keys for inputs masked by `masks`.
///
/// # Errors
/// [`KeyError::Width`] unless 1 ≤ width ≤ 64.
pub fn keygen(
    width: u32,
    masks: &[u64],
    rng: &mut ChaCha20Rng,
) -> Result<[IntervalKeys; 2], KeyError> {
    if !(1..=64).contains(&width) {
        return Err(KeyError::Width { n: width });
    }
    let alphas: Vec<u64> = masks.iter().map(|&r| reduce(r, width)).collect();
    let [k0, k1] = dcf::keygen(width, &alphas, &vec![1; masks.len()], rng)?;
    Ok([IntervalKeys { width, dcf: k0 }, IntervalKeys { width, dcf: k1 }])
}

/// Party: shares of `[p ≤ x < q]` for each masked input.
///
/// # Errors
/// [`KeyError::Domain`] when the bounds are outside `[−2^(m−1), 2^(m−1)]` or `p > q`;
/// [`KeyError::BatchLength`] / [`KeyError::Mismatch`] for mismatched inputs or keys.
pub fn contains(
    backend: &dyn Backend,
    keys: &IntervalKeys,
    masked: &[u64],
    p: i64,
    q: i64,
    out: &mut [u64],
) -> Result<(), MpcError> {
    let width = keys.width;
    keys.dcf.expect(Scheme::Dcf, keys.dcf.party(), width)?;
    let half = 1i128 << (width - 1);
    let (p, q) = (p as i128 + half, q as i128 + half);
    if !(0 <= p && p <= q && q <= 2 * half) {
        return Err(KeyError::Domain { what: "interval bound", index: 0, n: width }.into());
    }
    // Evaluation points use c mod N (c = N wraps to 0, as the formula allows); the public terms
    // compare with the exact c ∈ [0, N].
    let offset = half as u64;
    let hat: Vec<u64> = masked.iter().map(|&x| reduce(x.wrapping_add(offset), width)).collect();
    let at =
        |c: u64| -> Vec<u64> { hat.iter().map(|&u| reduce(u.wrapping_sub(c), width)).collect() };
    let mut below_q = vec![0u64; hat.len()];
    backend.eval_fss(&keys.dcf, &at(q as u64), &mut below_q)?;
    backend.eval_fss(&keys.dcf, &at(p as u64), out)?;
    let p0 = keys.dcf.party() == PartyId::P0;
    for ((y, &dq), &u) in out.iter_mut().zip(&below_q).zip(&hat) {
        let public = (i128::from(u) < q) as u64 - (i128::from(u) < p) as u64;
        let local = dq.wrapping_sub(*y);
        *y = if p0 { local.wrapping_add(public) } else { local };
    }
    Ok(())
}
