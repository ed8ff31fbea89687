//! Shared pieces of the GGM trees: seed conventions, bit order, parallel batching.
//!
//! A seed is a `u128` whose two low bits are zero (126 random bits). Expanding seed `s`:
//! `H(s | 0)` and `H(s | 1)` are the left and right children (bit 0 of the block is the child's
//! control bit, bits 2–127 its seed), `H(s | 2)` gives the node's two 64-bit output words (low
//! half for the left child, high half for the right). Input bits are read most significant
//! first.

use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::prg::ChaCha20Rng;

/// Clears the control-bit slots of a block.
pub(crate) const SEED_MASK: u128 = !3;
/// Tweak of the output-word block.
pub(crate) const VALUE_TWEAK: u128 = 2;
/// Keys evaluated together, level by level, so the AES units see independent blocks.
pub(crate) const GROUP: usize = super::keys::TILE;
/// Keys per parallel task.
pub(crate) const TASK: usize = 512;

/// Bit `i` (0 = most significant) of the n-bit value `x`.
#[inline(always)]
pub(crate) fn bit(x: u64, n: u32, i: u32) -> usize {
    ((x >> (n - 1 - i)) & 1) as usize
}

/// The 64-bit output word of side `side` from an output block.
#[inline(always)]
pub(crate) fn word(block: u128, side: usize) -> u64 {
    (block >> (64 * side)) as u64
}

/// All ones if `t` is 1, zero if 0.
#[inline(always)]
pub(crate) fn mask64(t: u8) -> u64 {
    0u64.wrapping_sub(t as u64)
}

/// All ones if `t` is 1, zero if 0.
#[inline(always)]
pub(crate) fn mask128(t: u8) -> u128 {
    0u128.wrapping_sub(t as u128)
}

/// A fresh root seed.
pub(crate) fn random_seed(rng: &mut ChaCha20Rng) -> u128 {
    rng.random::<u128>() & SEED_MASK
}

/// Raw output arrays that parallel key-generation tasks fill at disjoint indices.
pub(crate) struct Scatter<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: tasks write disjoint indices (each key index belongs to exactly one task), and the
// owner of the underlying Vec does not touch it while tasks run.
unsafe impl<T: Send> Send for Scatter<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Scatter<T> {}

impl<T> Scatter<T> {
    pub(crate) fn new(v: &mut [T]) -> Self {
        Self { ptr: v.as_mut_ptr(), len: v.len() }
    }

    /// Write `value` at `index`.
    ///
    /// # Safety
    /// No other task may access `index` while the scatter is in use.
    #[inline(always)]
    pub(crate) unsafe fn write(&self, index: usize, value: T) {
        assert!(index < self.len, "scatter index {index} out of bounds {}", self.len);
        // SAFETY: in bounds (checked); exclusive by the caller's contract.
        unsafe { self.ptr.add(index).write(value) }
    }

    /// Pointer to `count` entries starting at `index`, for a task that writes all of them.
    ///
    /// # Safety
    /// No other task may access `index..index + count` while the scatter is in use.
    #[inline(always)]
    pub(crate) unsafe fn run(&self, index: usize, count: usize) -> *mut T {
        assert!(
            index + count <= self.len,
            "scatter run {index}+{count} out of bounds {}",
            self.len
        );
        // SAFETY: in bounds (checked).
        unsafe { self.ptr.add(index) }
    }
}

/// Run `task(first_key, count, rng)` over the batch in parallel chunks, each with its own
/// ChaCha20 generator seeded from `rng` (so the dealer's randomness stays a CSPRNG stream).
pub(crate) fn par_gen(
    len: usize,
    rng: &mut ChaCha20Rng,
    task: impl Fn(usize, usize, &mut ChaCha20Rng) + Sync,
) {
    let seeds: Vec<[u8; 32]> = (0..len.div_ceil(TASK)).map(|_| rng.random()).collect();
    seeds.into_par_iter().enumerate().for_each(|(c, seed)| {
        let start = c * TASK;
        let mut local = ChaCha20Rng::from_seed(seed);
        let mut k = start;
        while k < (start + TASK).min(len) {
            let count = GROUP.min(len - k);
            task(k, count, &mut local);
            k += count;
        }
    });
}

/// Run `task(first_key, xs, out)` over groups of at most [`GROUP`] keys, in parallel chunks.
fn par_eval(xs: &[u64], out: &mut [u64], task: impl Fn(usize, &[u64], &mut [u64]) + Sync) {
    out.par_chunks_mut(TASK).zip(xs.par_chunks(TASK)).enumerate().for_each(|(c, (out, xs))| {
        for (g, (out, xs)) in out.chunks_mut(GROUP).zip(xs.chunks(GROUP)).enumerate() {
            task(c * TASK + g * GROUP, xs, out);
        }
    });
}

/// One party-pair of output arrays that a tile of key generation fills.
pub(crate) struct PairOut<'a> {
    pub roots: &'a [Scatter<u128>; 2],
    pub seed_cw: &'a [Scatter<u128>; 2],
    /// DCF only (one-word payload).
    pub value_cw: Option<&'a [Scatter<u64>; 2]>,
    pub last_cw: &'a [Scatter<u64>; 2],
    pub levels: usize,
    pub len: usize,
}

/// Generate the full tile at `first` with the AVX-512/VAES code when `vector` is set and the CPU
/// has it, drawing root seeds from `rng` in the scalar generator's order (so both paths give
/// the same keys). Returns false when the tile must go to the scalar generator instead.
#[allow(unused_variables)] // everything is unused on other architectures
pub(crate) fn gen_full_tile(
    vector: bool,
    n: u32,
    alphas: &[u64],
    betas: &[u64],
    first: usize,
    rng: &mut ChaCha20Rng,
    out: &PairOut<'_>,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let aes = super::aes::fixed_aes();
        if !vector || alphas.len() != GROUP || aes.implementation() != super::aes::AesImpl::Vaes512
        {
            return false;
        }
        let roots: [[u128; 2]; GROUP] =
            std::array::from_fn(|_| [random_seed(rng), random_seed(rng)]);
        let base = super::keys::tiled(out.levels, out.len, 0, first);
        let last = super::keys::tiled(2, out.len, 0, first);
        // SAFETY: the tile's entries belong to this task only; the runs are bounds-checked.
        let tile = unsafe {
            super::simd::TileOut {
                roots: std::array::from_fn(|b| out.roots[b].run(first, GROUP)),
                seed_cw: std::array::from_fn(|b| out.seed_cw[b].run(base, out.levels * GROUP)),
                value_cw: std::array::from_fn(|b| match out.value_cw {
                    Some(v) => v[b].run(base, out.levels * GROUP),
                    None => std::ptr::null_mut(),
                }),
                last_cw: std::array::from_fn(|b| out.last_cw[b].run(last, 2 * GROUP)),
            }
        };
        // SAFETY: Vaes512 implies AVX-512F and VAES; `tile` points at a full tile.
        unsafe {
            super::simd::gen_tile(
                aes.round_keys(),
                n,
                out.value_cw.is_some(),
                alphas,
                betas,
                &roots,
                &tile,
            )
        };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Evaluate a one-word (or one-bit comparison) key batch on all threads: full tiles with the
/// VAES code (AVX-512, or AVX2 for DCF and comparison keys) when `vector` is set and the CPU has
/// it, every other group with the scalar `group` evaluator.
pub(crate) fn eval_tiles(
    keys: &super::KeyBatch,
    offset: usize,
    xs: &[u64],
    out: &mut [u64],
    vector: bool,
    group: impl Fn(&super::aes::FixedKeyAes, &super::KeyBatch, usize, &[u64], &mut [u64]) + Sync,
) {
    let aes = super::aes::fixed_aes();
    #[cfg(target_arch = "x86_64")]
    type Tile = unsafe fn(&[u128; 11], &super::KeyBatch, usize, &[u64], &mut [u64]);
    #[cfg(target_arch = "x86_64")]
    let tile: Option<Tile> = {
        use super::{Scheme, aes::AesImpl};
        match (vector, aes.implementation(), keys.scheme()) {
            (false, _, _) => None,
            (_, AesImpl::Vaes512, Scheme::Dcf) => Some(super::simd::dcf_tile),
            (_, AesImpl::Vaes512, Scheme::Dpf) => Some(super::simd::dpf_tile),
            (_, AesImpl::Vaes512, Scheme::Cmp) => Some(super::simd::cmp_tile),
            (_, AesImpl::Vaes256, Scheme::Dcf) => Some(super::simd256::dcf_tile),
            (_, AesImpl::Vaes256, Scheme::Cmp) => Some(super::simd256::cmp_tile),
            _ => None,
        }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = vector;
    // `xs[i]` belongs to key `offset + i`; `offset` starts a tile, so groups stay tile-aligned.
    par_eval(xs, out, |first, xs, out| {
        let first = offset + first;
        #[cfg(target_arch = "x86_64")]
        if let Some(tile) = tile
            && xs.len() == GROUP
        {
            // SAFETY: the tile matches the AES implementation, whose CPU features `fixed_aes`
            // checked (AVX-512F and VAES, or AVX2 and VAES); `first` starts a full tile (groups
            // are tile-aligned and this one is full).
            unsafe { tile(aes.round_keys(), keys, first, xs, out) };
            return;
        }
        group(aes, keys, first, xs, out)
    });
}
