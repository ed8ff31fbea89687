//! Secure aggregation with pairwise masks (Bonawitz et al., CCS'17, without dropout recovery).
//!
//! Every client holds an X25519 key pair; the public keys are exchanged through the server.
//! Clients i and j derive the same Diffie–Hellman secret `DH(sk_i, pk_j)`, refuse it when the
//! peer's key is of low order (an all-zero or other non-contributory key would make the pair's
//! mask public), and derive the pair's mask seed with HKDF-SHA256 from it, bound to both public
//! keys (lower index first), the session id and the round: a key pair reused across sessions or
//! rounds gives unrelated masks. ChaCha20 expands the seed into a mask vector `m_ij` over Z_2^64. Client i uploads its
//! fixed-point vector plus `Σ_{j>i} m_ij − Σ_{j<i} m_ji`; in the server's sum every mask cancels,
//! so the server learns the **total** exactly (fixed-point, wrapping) and, from one upload,
//! nothing: each upload is one-time-padded by masks the server cannot compute.
//!
//! Privacy holds against the server and any coalition that excludes at least two of the honest
//! participants' pairwise keys; a client that drops out after the key exchange leaves its masks
//! uncancelled (this module reports that as an error rather than a wrong sum — recovering needs
//! the secret-shared seeds of the full protocol, not built here). Key pairs are fresh per
//! session, drawn from the OS-seeded CSPRNG.

use hkdf::Hkdf;
use rand::{Rng, SeedableRng};
use sha2::Sha256;
/// A participant's X25519 public key (32 bytes; `PublicKey::from([u8; 32])`).
pub use x25519_dalek::PublicKey;
use x25519_dalek::StaticSecret;

use crate::error::{Error, Result};
use crate::prg::{ChaCha20Rng, os_rng};
use crate::ring::FixedPoint;

/// One client's key pair for a secure-aggregation session.
pub struct Participant {
    /// This client's index among the session's participants.
    pub index: usize,
    secret: StaticSecret,
    /// Sent to the other participants (through the server).
    pub public: PublicKey,
}

impl std::fmt::Debug for Participant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Participant").field("index", &self.index).finish_non_exhaustive()
    }
}

impl Participant {
    /// A fresh key pair from the OS-seeded CSPRNG.
    pub fn new(index: usize) -> Self {
        Self::from_secret(index, os_rng().random())
    }

    /// **Insecure**: a key pair from a public seed, for reproducible tests only.
    pub fn insecure_from_seed(index: usize, seed: u64) -> Self {
        Self::from_secret(index, crate::prg::insecure_seeded_rng(seed).random())
    }

    /// A key pair from a secret key that [`secret_key`](Self::secret_key) exported, for a
    /// participant that must keep its key between two messages of one session in storage only
    /// it reads (a Flower node's state). Give it nowhere else.
    pub fn restore(index: usize, secret: [u8; 32]) -> Self {
        Self::from_secret(index, secret)
    }

    /// The secret key, for [`restore`](Self::restore) (zeroised when dropped).
    pub fn secret_key(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.secret.to_bytes())
    }

    fn from_secret(index: usize, bytes: [u8; 32]) -> Self {
        let secret = StaticSecret::from(bytes);
        Self { index, public: PublicKey::from(&secret), secret }
    }

    /// Mask `values` (encoded in fixed point) for `round` of `session`, given every
    /// participant's public key in index order.
    ///
    /// # Errors
    /// [`Error::Data`] when this participant's index is out of range or a peer's public key is of
    /// low order; fixed-point range errors.
    pub fn mask(
        &self,
        values: &[f64],
        fixed: FixedPoint,
        publics: &[PublicKey],
        session: &SessionId,
        round: u64,
    ) -> Result<Vec<u64>> {
        if self.index >= publics.len() {
            return Err(Error::Data(format!(
                "secure aggregation: participant {} of {}",
                self.index,
                publics.len()
            )));
        }
        let mut out = fixed.encode_slice(values)?;
        for (j, pk) in publics.iter().enumerate() {
            if j == self.index {
                continue;
            }
            let shared = self.secret.diffie_hellman(pk);
            if !shared.was_contributory() {
                return Err(Error::Data(format!(
                    "secure aggregation: participant {j}'s public key is of low order (e.g. all zero); refusing it, since the pair's mask would be public"
                )));
            }
            let (low, high) = if self.index < j { (&self.public, pk) } else { (pk, &self.public) };
            let mut prg =
                ChaCha20Rng::from_seed(pair_seed(shared.as_bytes(), low, high, session, round));
            for v in out.iter_mut() {
                let m: u64 = prg.random();
                // The lower index adds the pair's mask, the higher one subtracts it.
                *v = if self.index < j { v.wrapping_add(m) } else { v.wrapping_sub(m) };
            }
        }
        Ok(out)
    }
}

/// A secure-aggregation session's public, unique label (chosen by the server, sent with the
/// public keys): part of every pair's key derivation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionId(pub [u8; 16]);

impl SessionId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(os_rng().random())
    }
}

/// Domain separation of the pairwise key derivation.
const KDF_SALT: &[u8] = b"prifft secure aggregation v1";

/// The pair's ChaCha20 seed: HKDF-SHA256(salt, DH secret) expanded with the info
/// `pk_low ‖ pk_high ‖ session ‖ round (LE)`.
fn pair_seed(
    shared: &[u8; 32],
    low: &PublicKey,
    high: &PublicKey,
    session: &SessionId,
    round: u64,
) -> [u8; 32] {
    let mut info = Vec::with_capacity(32 + 32 + 16 + 8);
    info.extend_from_slice(low.as_bytes());
    info.extend_from_slice(high.as_bytes());
    info.extend_from_slice(&session.0);
    info.extend_from_slice(&round.to_le_bytes());
    let mut seed = [0u8; 32];
    Hkdf::<Sha256>::new(Some(KDF_SALT), shared)
        .expand(&info, &mut seed)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    seed
}

/// The server's side: add the masked uploads and decode the total.
///
/// # Errors
/// [`Error::Data`] when the uploads have different lengths, or when fewer uploads arrive than
/// there were participants (their masks would not cancel).
pub fn aggregate(uploads: &[Vec<u64>], participants: usize, fixed: FixedPoint) -> Result<Vec<f64>> {
    if uploads.len() != participants {
        return Err(Error::Data(format!(
            "secure aggregation: {} of {participants} uploads arrived; without dropout recovery the masks cannot cancel",
            uploads.len()
        )));
    }
    let len = uploads.first().map_or(0, Vec::len);
    if uploads.iter().any(|u| u.len() != len) {
        return Err(Error::Data("secure aggregation: uploads of different lengths".into()));
    }
    let mut sum = vec![0u64; len];
    for u in uploads {
        for (s, &v) in sum.iter_mut().zip(u) {
            *s = s.wrapping_add(v);
        }
    }
    Ok(fixed.decode_slice(&sum))
}

/// One whole session in one process, as the federated simulation runs it: every vector's owner
/// gets a fresh key pair, the server picks a fresh session id, the public keys are exchanged,
/// each owner masks its vector for `round`, and the server adds the uploads. Returns the total,
/// decoded from `fixed`.
///
/// # Errors
/// Fixed-point range errors (a value outside `fixed`'s range); uploads of different lengths.
pub fn sum_in_session(vectors: &[Vec<f64>], fixed: FixedPoint, round: u64) -> Result<Vec<f64>> {
    let participants: Vec<Participant> = (0..vectors.len()).map(Participant::new).collect();
    let publics: Vec<PublicKey> = participants.iter().map(|p| p.public).collect();
    let session = SessionId::random();
    let uploads = participants
        .iter()
        .zip(vectors)
        .map(|(p, v)| p.mask(v, fixed, &publics, &session, round))
        .collect::<Result<Vec<_>>>()?;
    aggregate(&uploads, vectors.len(), fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: SessionId = SessionId([7; 16]);

    fn session(n: usize) -> (Vec<Participant>, Vec<PublicKey>) {
        let ps: Vec<Participant> =
            (0..n).map(|i| Participant::insecure_from_seed(i, 100 + i as u64)).collect();
        let publics = ps.iter().map(|p| p.public).collect();
        (ps, publics)
    }

    #[test]
    fn os_seeded_participants_agree_on_pairwise_masks() {
        let fixed = FixedPoint::default();
        let ps: Vec<Participant> = (0..3).map(Participant::new).collect();
        let publics: Vec<PublicKey> = ps.iter().map(|p| p.public).collect();
        let uploads: Vec<Vec<u64>> =
            ps.iter().map(|p| p.mask(&[1.0, -2.0], fixed, &publics, &S, 0).unwrap()).collect();
        assert_eq!(aggregate(&uploads, 3, fixed).unwrap(), vec![3.0, -6.0]);
    }

    #[test]
    fn masked_sum_equals_the_plain_fixed_point_sum_exactly() {
        let fixed = FixedPoint::new(24).unwrap();
        let (ps, publics) = session(5);
        let mut rng = crate::prg::insecure_seeded_rng(1);
        let values: Vec<Vec<f64>> =
            (0..5).map(|_| (0..100).map(|_| rng.random_range(-3.0..3.0)).collect()).collect();
        let uploads: Vec<Vec<u64>> = ps
            .iter()
            .zip(&values)
            .map(|(p, v)| p.mask(v, fixed, &publics, &S, 7).unwrap())
            .collect();
        let total = aggregate(&uploads, 5, fixed).unwrap();
        // The plain fixed-point sum, computed the same way without masks.
        for k in 0..100 {
            let plain: u64 =
                values.iter().map(|v| fixed.encode(v[k]).unwrap()).fold(0, u64::wrapping_add);
            assert_eq!(total[k], fixed.decode(plain));
        }
        assert!(aggregate(&uploads[..4], 5, fixed).is_err());
    }

    #[test]
    fn one_masked_upload_looks_uniform() {
        // Chi-square test on the top byte of 40,000 masked copies of the value 0 (256 bins,
        // 255 degrees of freedom: the 99.9th percentile is about 330).
        let fixed = FixedPoint::default();
        let (ps, publics) = session(3);
        let upload = ps[0].mask(&vec![0.0; 40_000], fixed, &publics, &S, 1).unwrap();
        let mut bins = [0f64; 256];
        for v in &upload {
            bins[(v >> 56) as usize] += 1.0;
        }
        let expected = 40_000.0 / 256.0;
        let chi2: f64 = bins.iter().map(|&o| (o - expected).powi(2) / expected).sum();
        assert!(chi2 < 330.0, "chi-square {chi2}");
        // A different round gives different masks.
        let other = ps[0].mask(&[0.0; 4], fixed, &publics, &S, 2).unwrap();
        assert_ne!(&other[..], &upload[..4]);
    }

    #[test]
    fn the_same_key_pairs_in_two_sessions_give_unrelated_masks() {
        let fixed = FixedPoint::default();
        let (ps, publics) = session(3);
        let zeros = vec![0.0; 4096];
        let a = ps[0].mask(&zeros, fixed, &publics, &SessionId([1; 16]), 5).unwrap();
        let b = ps[0].mask(&zeros, fixed, &publics, &SessionId([2; 16]), 5).unwrap();
        // Unrelated: no position agrees, and their difference looks uniform too.
        assert_eq!(a.iter().zip(&b).filter(|(x, y)| x == y).count(), 0);
        let mut bins = [0f64; 16];
        for (x, y) in a.iter().zip(&b) {
            bins[(x.wrapping_sub(*y) >> 60) as usize] += 1.0;
        }
        let expected = 4096.0 / 16.0;
        let chi2: f64 = bins.iter().map(|&o| (o - expected).powi(2) / expected).sum();
        assert!(chi2 < 37.7, "chi-square {chi2} (15 dof, 99.9th percentile 37.7)");
    }

    #[test]
    fn low_order_peer_keys_are_refused() {
        // Regression: an all-zero (or other low-order) public key made that pair's mask public.
        let fixed = FixedPoint::default();
        let (ps, mut publics) = session(3);
        for bad in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            publics[2] = PublicKey::from(bad);
            let err = ps[0].mask(&[1.0], fixed, &publics, &S, 0).unwrap_err();
            assert!(err.to_string().contains("low order"), "{err}");
        }
    }
}
