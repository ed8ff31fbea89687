//! Randomness for keys, masks and shares.
//!
//! All secret randomness comes from ChaCha20 ([`rand_chacha::ChaCha20Rng`]) seeded from the
//! operating system's entropy source ([`os_rng`]). Library code never fixes a seed; the only
//! seeded constructor, [`insecure_seeded_rng`], is named for what it is and exists for
//! reproducible tests. (The fixed-key AES PRG of the FSS GGM trees lives with the FSS code.)

use rand::SeedableRng;
pub use rand_chacha::ChaCha20Rng;

/// A ChaCha20 CSPRNG seeded from the operating system.
///
/// # Panics
/// If the operating system cannot provide entropy — there is no safe way to continue then.
pub fn os_rng() -> ChaCha20Rng {
    ChaCha20Rng::from_os_rng()
}

/// **Insecure**: a ChaCha20 generator with a fixed, public seed. Anything generated from it is
/// known to whoever knows the seed. For tests and reproducible examples only.
pub fn insecure_seeded_rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}
