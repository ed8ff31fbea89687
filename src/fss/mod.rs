//! Function secret sharing: DPF and DCF keys, batched evaluation, and gates.
//!
//! - [`aes`]: the fixed-key AES-MMO PRG of the GGM trees (and its security assumption);
//! - [`dpf`] and [`dcf`]: key generation (dealer) and batched evaluation (party), n ∈ 1..=64,
//!   outputs in Z_2^64 (1-bit outputs are the low bit: shares mod 2^64 reduce to XOR shares);
//! - [`cmp`]: one-bit comparisons `[x < α]` with one AES block per level and early termination
//!   (n − 6 blocks per evaluation, 16·(n − 7) + 32 bytes per key), XOR-shared;
//! - [`keys`]: the struct-of-arrays key layout and the versioned wire format.
//!
//! **The GGM trees.** A seed is a `u128` whose two low bits are zero (126 random bits).
//! Expanding seed `s` with the fixed-key AES-MMO hash `H`: `H(s | 0)` and `H(s | 1)` are the left
//! and right children (bit 0 of the block is the child's control bit, bits 2–127 its seed) and
//! `H((s ⊕ q·4) | 2)` gives the node's output words for payload word `q` (low 64 bits for the
//! left child, high 64 for the right). Input bits are read most significant first.
//!
//! All APIs are batch-first: generation takes slices of (α, β), evaluation takes a key batch, a
//! slice of inputs and an output slice, and runs on every rayon thread (wrap the call in a
//! one-thread pool to use one core).

// Index loops over parties (b), levels (i), keys (j) and words (q) mirror the papers'
// notation and touch several parallel arrays at once; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

pub mod aes;
pub mod cmp;
pub mod dcf;
pub mod dpf;
mod error;
pub mod keys;
#[cfg(target_arch = "x86_64")]
mod simd;
#[cfg(target_arch = "x86_64")]
mod simd256;
mod tree;

pub use error::KeyError;
pub use keys::{KeyBatch, Scheme};
