//! Comparison keys with one AES block per level: `[x < α]` as XOR shares of one bit.
//!
//! A distributed comparison function specialised to one-bit outputs, as the best FSS systems
//! build their comparisons (SIGMA's DReLU): the parties walk a point-function tree for α and
//! pick up, at each level where x turns left, the control bit of the right sibling — it is set
//! (in XOR) exactly when α's path turns right there, that is when x < α is decided at that level.
//! Two changes make it cheap:
//!
//! - **One AES block per level** (the correlated tree of Half-Tree, Guo et al., EUROCRYPT'23).
//!   With `H(x) = π(σ(x)) ⊕ σ(x)` — π the fixed-key AES of [`aes`](super::aes), σ the linear
//!   orthomorphism `σ(x_hi ‖ x_lo) = (x_hi ⊕ x_lo) ‖ x_hi` — a node `s` has children
//!   `l = H(s) ⊕ t·CW` and `r = l ⊕ s` (t = bit 0 of s, the control bit). The two parties' seeds
//!   are equal off α's path and differ by one secret Δ (bit 0 set) on it; the level's correction
//!   `CW = H(s⁰) ⊕ H(s¹) ⊕ (1 − α_i)·Δ` makes the off-path child equal and keeps Δ on the path.
//!   Both children cost one block, so the right sibling's control bit is free.
//! - **Early termination**: the last 7 input bits index a 128-bit leaf
//!   `H(s) ⊕ t·CW_leaf` whose on-path XOR is the truth table of `y < α mod 2^7`.
//!
//! **Cost.** Evaluation: `max(n − 7, 0) + 1` AES blocks (58 at n = 64, 26 at n = 32).
//! Key generation: twice that (both parties' seeds). Key size per party:
//! `16 + 16·max(n − 7, 0) + 16` bytes (944 B at n = 64, 432 B at n = 32; 32 B for n ≤ 7) in the
//! [`KeyBatch`] layout with scheme [`Scheme::Cmp`]: `seed_cw` holds the level corrections,
//! `last_cw` the leaf correction as two 64-bit words (low, high), roots as for the other schemes
//! (bits 0–1 zero; P1's control bit 1 is implied).
//!
//! **What a key holder learns.** Nothing about α: with H circular correlation robust for the
//! secret offset Δ (Guo–Katz–Wang–Yu, S&P'20, for `π(σ(x)) ⊕ σ(x)` and a random permutation π),
//! every correction is masked by a hash of the other party's seed. Δ has 126 random bits
//! (bit 0 is 1, bit 1 is 0 so that P1's root follows the root convention); the security level
//! is the same ≈ 2^126 as the DCF's and DPF's seeds.
//!
//! **Output.** Each party's bit (0 or 1 in a `u64`); the two XOR to `[x < α]`. The gates turn
//! it into what they need (a masked bit opened in one round, [`mpc::gates`](crate::mpc::gates)).

use rand::Rng;

use super::aes::{AesImpl, FixedKeyAes, fixed_aes};
use super::keys::{KeyBatch, Scheme, check_domain, check_party_order, check_width, tiled};
use super::tree::{GROUP, SEED_MASK, Scatter, bit, eval_tiles, mask128, par_gen, random_seed};
use crate::fss::KeyError;
use crate::party::PartyId;
use crate::prg::ChaCha20Rng;

/// Input bits resolved by the leaf (the last levels, folded into one 128-bit block).
pub const LEAF_BITS: u32 = 7;

/// σ(x_hi ‖ x_lo) = (x_hi ⊕ x_lo) ‖ x_hi: the linear orthomorphism of the hash.
#[inline(always)]
pub(crate) fn sigma(x: u128) -> u128 {
    let (hi, lo) = ((x >> 64) as u64, x as u64);
    (((hi ^ lo) as u128) << 64) | hi as u128
}

/// The leaf's truth table: bit y set for y < a (a < 2^7).
#[inline(always)]
fn truth_table(a: u64) -> u128 {
    if a == 0 { 0 } else { u128::MAX >> (128 - a as u32) }
}

/// Key `k` of a tile's leaf correction — the XOR of both parties' leaf hashes and the truth
/// table of α's last bits `alpha_low` — written to both parties' tile-local leaf words (low
/// word at k, high word at TILE + k). The vector generators' last step.
///
/// # Safety
/// `leaves[b]` must point to a tile's `2 · TILE` leaf words and `k < TILE`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) unsafe fn write_tile_leaf(
    leaves: [*mut u64; 2],
    k: usize,
    hashes: u128,
    alpha_low: u64,
) {
    let cw = hashes ^ truth_table(alpha_low);
    for leaf in leaves {
        // SAFETY: the caller's contract.
        unsafe {
            leaf.add(k).write(cw as u64);
            leaf.add(super::keys::TILE + k).write((cw >> 64) as u64);
        }
    }
}

/// Dealer: comparison keys for `[x < α_k]` on n-bit inputs, one per α.
///
/// # Errors
/// [`KeyError::Width`] unless 1 ≤ n ≤ 64, [`KeyError::Domain`] when an α does not fit in n bits.
pub fn keygen(n: u32, alphas: &[u64], rng: &mut ChaCha20Rng) -> Result<[KeyBatch; 2], KeyError> {
    let mut keys = [KeyBatch::empty(PartyId::P0), KeyBatch::empty(PartyId::P1)];
    keygen_into(n, alphas, rng, &mut keys)?;
    Ok(keys)
}

/// As [`keygen`], writing into `keys` (P0's and P1's batches) and reusing their memory.
///
/// # Errors
/// As [`keygen`]; `keys` must hold P0's batch then P1's ([`KeyError::Mismatch`] otherwise).
pub fn keygen_into(
    n: u32,
    alphas: &[u64],
    rng: &mut ChaCha20Rng,
    keys: &mut [KeyBatch; 2],
) -> Result<(), KeyError> {
    generate(fixed_aes(), n, alphas, rng, keys)
}

/// Key generation with `aes` (the process-wide instance, or the portable one for the scalar
/// reference the vector tiles are tested against).
fn generate(
    aes: &FixedKeyAes,
    n: u32,
    alphas: &[u64],
    rng: &mut ChaCha20Rng,
    keys: &mut [KeyBatch; 2],
) -> Result<(), KeyError> {
    check_width(n)?;
    check_domain("alpha", alphas, n)?;
    check_party_order(keys)?;
    let len = alphas.len();
    for k in keys.iter_mut() {
        k.reset(Scheme::Cmp, n, len, 1);
    }
    let levels = keys[0].levels();
    let [k0, k1] = keys;
    let roots = [Scatter::new(&mut k0.roots), Scatter::new(&mut k1.roots)];
    let cws = [Scatter::new(&mut k0.seed_cw), Scatter::new(&mut k1.seed_cw)];
    let leaves = [Scatter::new(&mut k0.last_cw), Scatter::new(&mut k1.last_cw)];
    par_gen(len, rng, |first, count, rng| {
        // SAFETY: keys first..first + count belong to this task alone.
        unsafe {
            gen_group(
                aes,
                n,
                levels,
                len,
                &alphas[first..first + count],
                first,
                rng,
                &roots,
                &cws,
                &leaves,
            )
        }
    });
    Ok(())
}

/// Generate the keys `first..first + alphas.len()` (at most [`GROUP`]), level by level with both
/// parties' hashes of the whole group in one AES batch.
///
/// # Safety
/// No other task may write those keys' entries.
#[allow(clippy::too_many_arguments)]
unsafe fn gen_group(
    aes: &FixedKeyAes,
    n: u32,
    levels: usize,
    len: usize,
    alphas: &[u64],
    first: usize,
    rng: &mut ChaCha20Rng,
    roots: &[Scatter<u128>; 2],
    cws: &[Scatter<u128>; 2],
    leaves: &[Scatter<u64>; 2],
) {
    let g = alphas.len();
    let mut s = [[0u128; GROUP]; 2];
    let mut delta = [0u128; GROUP];
    for j in 0..g {
        let root = random_seed(rng);
        delta[j] = (rng.random::<u128>() & SEED_MASK) | 1;
        s[0][j] = root;
        s[1][j] = root ^ delta[j];
        // SAFETY: this task's keys (the caller's contract).
        unsafe {
            roots[0].write(first + j, root);
            roots[1].write(first + j, s[1][j] & SEED_MASK);
        }
    }
    #[cfg(target_arch = "x86_64")]
    if g == GROUP && matches!(aes.implementation(), AesImpl::Vaes512 | AesImpl::Vaes256) {
        // SAFETY: Vaes512 implies AVX-512F and VAES, Vaes256 AVX2 and VAES; the runs are this
        // task's full tile (bounds-checked by `run`), level-major inside the tile.
        unsafe {
            let cw =
                std::array::from_fn(|b| cws[b].run(tiled(levels, len, 0, first), levels * GROUP));
            let leaf = std::array::from_fn(|b| leaves[b].run(tiled(2, len, 0, first), 2 * GROUP));
            let tile = if aes.implementation() == AesImpl::Vaes512 {
                super::simd::cmp_gen_tile
            } else {
                super::simd256::cmp_gen_tile
            };
            tile(aes.round_keys(), n, levels, alphas, &s, &delta, cw, leaf);
        }
        return;
    }
    let mut h = [0u128; 2 * GROUP];
    for i in 0..levels {
        for j in 0..g {
            h[2 * j] = sigma(s[0][j]);
            h[2 * j + 1] = sigma(s[1][j]);
        }
        aes.hash_in_place(&mut h[..2 * g]);
        for j in 0..g {
            let right = bit(alphas[j], n, i as u32) == 1;
            let (h0, h1) = (h[2 * j], h[2 * j + 1]);
            let cw = h0 ^ h1 ^ if right { 0 } else { delta[j] };
            let at = tiled(levels, len, i, first + j);
            // SAFETY: as above.
            unsafe {
                cws[0].write(at, cw);
                cws[1].write(at, cw);
            }
            for b in 0..2 {
                let node = s[b][j];
                let left = [h0, h1][b] ^ (cw & mask128(node as u8 & 1));
                s[b][j] = if right { left ^ node } else { left };
            }
            debug_assert_eq!(s[0][j] ^ s[1][j], delta[j]);
        }
    }
    for j in 0..g {
        h[2 * j] = sigma(s[0][j]);
        h[2 * j + 1] = sigma(s[1][j]);
    }
    aes.hash_in_place(&mut h[..2 * g]);
    let low = (1u64 << (n - levels as u32)) - 1;
    for j in 0..g {
        let cw = h[2 * j] ^ h[2 * j + 1] ^ truth_table(alphas[j] & low);
        for (w, half) in [cw as u64, (cw >> 64) as u64].into_iter().enumerate() {
            let at = tiled(2, len, w, first + j);
            // SAFETY: as above.
            unsafe {
                leaves[0].write(at, half);
                leaves[1].write(at, half);
            }
        }
    }
}

/// The scalar generator only (the reference the vector tiles are tested against).
#[cfg(test)]
pub(crate) fn keygen_scalar(n: u32, alphas: &[u64], rng: &mut ChaCha20Rng) -> [KeyBatch; 2] {
    let mut keys = [KeyBatch::empty(PartyId::P0), KeyBatch::empty(PartyId::P1)];
    let portable = FixedKeyAes::new(super::aes::AesImpl::Portable);
    generate(&portable, n, alphas, rng, &mut keys).expect("valid inputs");
    keys
}

/// Party: evaluate every key of the batch at its input: `out[k]` is this party's bit of
/// `[xs[k] < α_k]`.
///
/// # Errors
/// [`KeyError::Mismatch`] unless the batch is a comparison batch; [`KeyError::BatchLength`]
/// unless `xs` and `out` have one entry per key; [`KeyError::Domain`] for an input wider than n.
pub fn eval(keys: &KeyBatch, xs: &[u64], out: &mut [u64]) -> Result<(), KeyError> {
    super::dcf::check_batch(keys, xs, out)?;
    eval_range(keys, 0, xs, out)
}

/// As [`eval`] for keys `first..first + xs.len()` (whole tiles, or up to the batch's end), in
/// place.
///
/// # Errors
/// As [`eval`] and [`check_range`](super::dcf::check_range).
pub fn eval_range(
    keys: &KeyBatch,
    first: usize,
    xs: &[u64],
    out: &mut [u64],
) -> Result<(), KeyError> {
    keys.expect(Scheme::Cmp, keys.party, keys.n)?;
    super::dcf::check_range(keys, first, xs, out)?;
    eval_unchecked(keys, first, xs, out, true);
    Ok(())
}

/// Evaluation without the vector tiles (the reference they are tested against).
#[cfg(test)]
pub(crate) fn eval_scalar(keys: &KeyBatch, xs: &[u64], out: &mut [u64]) {
    eval_unchecked(keys, 0, xs, out, false);
}

fn eval_unchecked(keys: &KeyBatch, offset: usize, xs: &[u64], out: &mut [u64], vector: bool) {
    eval_tiles(keys, offset, xs, out, vector, eval_group);
}

/// Evaluation of up to [`GROUP`] consecutive keys, level by level with the group's hashes in one
/// AES batch.
fn eval_group(aes: &FixedKeyAes, keys: &KeyBatch, first: usize, xs: &[u64], out: &mut [u64]) {
    let (n, len, g) = (keys.n, keys.len, xs.len());
    let levels = keys.levels();
    let party = keys.party.index() as u128;
    let mut node = [0u128; GROUP];
    let mut h = [0u128; GROUP];
    let mut acc = [0u64; GROUP];
    for j in 0..g {
        node[j] = keys.roots[first + j] | party;
    }
    for i in 0..levels {
        for j in 0..g {
            h[j] = sigma(node[j]);
        }
        aes.hash_in_place(&mut h[..g]);
        for j in 0..g {
            let cw = keys.seed_cw[tiled(levels, len, i, first + j)];
            let left = h[j] ^ (cw & mask128(node[j] as u8 & 1));
            let right = left ^ node[j];
            if bit(xs[j], n, i as u32) == 0 {
                acc[j] ^= (right & 1) as u64;
                node[j] = left;
            } else {
                node[j] = right;
            }
        }
    }
    for j in 0..g {
        h[j] = sigma(node[j]);
    }
    aes.hash_in_place(&mut h[..g]);
    let low = (1u64 << (n - levels as u32)) - 1;
    for j in 0..g {
        let k = first + j;
        let cw = keys.last_cw[tiled(2, len, 0, k)] as u128
            | (keys.last_cw[tiled(2, len, 1, k)] as u128) << 64;
        let leaf = h[j] ^ (cw & mask128(node[j] as u8 & 1));
        out[j] = acc[j] ^ ((leaf >> (xs[j] & low)) & 1) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prg::insecure_seeded_rng;

    fn check(n: u32, alphas: &[u64], xs: &[u64], seed: u64) {
        let mut rng = insecure_seeded_rng(seed);
        let keys = keygen(n, alphas, &mut rng).unwrap();
        let mut y = [vec![0; xs.len()], vec![0; xs.len()]];
        for b in 0..2 {
            eval(&keys[b], xs, &mut y[b]).unwrap();
        }
        for k in 0..xs.len() {
            assert!(y[0][k] <= 1 && y[1][k] <= 1);
            assert_eq!(y[0][k] ^ y[1][k], (xs[k] < alphas[k]) as u64, "n {n} key {k}");
        }
    }

    #[test]
    fn reconstructs_the_comparison_at_every_width() {
        let mut rng = insecure_seeded_rng(5);
        for n in [1, 2, 6, 7, 8, 9, 16, 23, 33, 63, 64] {
            let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
            let len = 200;
            let alphas: Vec<u64> = (0..len).map(|_| rng.random::<u64>() & mask).collect();
            // Random inputs, and inputs at α − 1, α, α + 1 and the domain's ends.
            let xs: Vec<u64> = (0..len)
                .map(|k| match k % 6 {
                    0 => alphas[k].wrapping_sub(1) & mask,
                    1 => alphas[k],
                    2 => alphas[k].wrapping_add(1) & mask,
                    3 => [0, mask][k % 2],
                    _ => rng.random::<u64>() & mask,
                })
                .collect();
            check(n, &alphas, &xs, n as u64);
        }
    }

    #[test]
    fn exhaustive_at_small_widths() {
        for n in [1u32, 3, 8, 9] {
            let size = 1u64 << n;
            let alphas: Vec<u64> = (0..size).flat_map(|a| (0..size).map(move |_| a)).collect();
            let xs: Vec<u64> = (0..size).flat_map(|_| 0..size).collect();
            check(n, &alphas, &xs, 11);
        }
    }

    #[test]
    fn key_size_is_16_per_level_plus_32() {
        assert_eq!(KeyBatch::key_bytes(Scheme::Cmp, 64), 944);
        assert_eq!(KeyBatch::key_bytes(Scheme::Cmp, 32), 432);
        assert_eq!(KeyBatch::key_bytes(Scheme::Cmp, 5), 32);
        let mut rng = insecure_seeded_rng(1);
        let keys = keygen(64, &[3, 9], &mut rng).unwrap();
        assert_eq!(keys[0].to_bytes().len(), 32 + 2 * 944);
        let back = KeyBatch::from_bytes(&keys[1].to_bytes()).unwrap();
        assert!(back == keys[1]);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_tiles_equal_the_scalar_path_per_party() {
        let mut rng = insecure_seeded_rng(8);
        for n in [7u32, 8, 24, 64] {
            let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
            let len = 3 * GROUP + 5;
            let alphas: Vec<u64> = (0..len).map(|_| rng.random::<u64>() & mask).collect();
            let xs: Vec<u64> = (0..len).map(|_| rng.random::<u64>() & mask).collect();
            let keys = keygen(n, &alphas, &mut rng).unwrap();
            for key in &keys {
                let (mut a, mut b) = (vec![0; len], vec![0; len]);
                eval(key, &xs, &mut a).unwrap();
                eval_scalar(key, &xs, &mut b);
                assert_eq!(a, b, "n {n}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_key_generation_equals_the_scalar_generator() {
        // Same RNG stream, same keys: the tiles draw the roots and offsets in the scalar order.
        // (Without VAES both sides are the scalar generator and this only checks determinism.)
        let mut rng = insecure_seeded_rng(12);
        for n in [7u32, 8, 20, 64] {
            let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
            let len = 2 * GROUP + 3;
            let alphas: Vec<u64> = (0..len).map(|_| rng.random::<u64>() & mask).collect();
            let seed: u64 = rng.random();
            // The same stream: par_gen draws its task seeds in order, whatever the threads.
            let fast = keygen(n, &alphas, &mut insecure_seeded_rng(seed)).unwrap();
            let slow = keygen_scalar(n, &alphas, &mut insecure_seeded_rng(seed));
            for b in 0..2 {
                assert!(fast[b] == slow[b], "n {n} party {b}");
            }
        }
    }

    #[test]
    fn a_key_reveals_nothing_obvious_about_alpha() {
        // The corrections of keys for α = 0 and α = 2^n − 1 are uniformly distributed: about
        // half their bits are set either way (a leak such as CW = Δ would show up here).
        let mut rng = insecure_seeded_rng(3);
        for alpha in [0u64, u32::MAX as u64] {
            let keys = keygen(32, &vec![alpha; 256], &mut rng).unwrap();
            let ones: u32 = keys[0].seed_cw.iter().map(|c| c.count_ones()).sum();
            let total = 128 * keys[0].seed_cw.len() as u32;
            let frac = ones as f64 / total as f64;
            assert!((frac - 0.5).abs() < 0.01, "α {alpha}: {frac}");
        }
    }

    #[test]
    fn other_schemes_are_refused() {
        let mut rng = insecure_seeded_rng(2);
        let keys = super::super::dcf::keygen(16, &[1], &[1], &mut rng).unwrap();
        assert!(matches!(eval(&keys[0], &[0], &mut [0]), Err(KeyError::Mismatch { .. })));
        let keys = keygen(16, &[1, 2], &mut rng).unwrap();
        assert!(eval(&keys[0], &[0], &mut [0]).is_err());
        assert!(eval(&keys[0], &[0, 1 << 16], &mut [0, 0]).is_err());
    }
}
