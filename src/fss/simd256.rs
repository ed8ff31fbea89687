//! AVX2 + VAES (256-bit) evaluation and generation of full tiles of one-bit comparison keys
//! ([`cmp`](super::cmp)) and evaluation of DCF tiles ([`dcf`](super::dcf)), for CPUs that have
//! VAES but no AVX-512 (AMD Zen 3, Intel Alder Lake and later client cores). Bit-identical to the scalar path (tested); used when
//! [`AesImpl::Vaes256`](super::aes::AesImpl::Vaes256) is the process's AES and the tile is full.
//!
//! The scalar walk spends more time choosing a child than hashing: the input bit decides
//! between two nodes with a branch that is taken at random, so about every other level
//! mispredicts. Here a tile's keys walk in vector registers and pick their child with masks.
//! The comparison evaluation walks a whole tile of [`TILE`] keys at once (16 ymm registers of
//! 2 lanes: the AES chains in flight cover VAES's latency; 22–38 % less time than half tiles
//! on an AMD EPYC without AVX-512); the DCF tiles walk halves of [`HALF`] keys (8
//! vectors), since their W + 1 accumulators per vector would spill with 16.
//!
//! Lane layout as in the AVX-512 tiles: a 128-bit lane holds one key's node (seed with the
//! control bit in bit 0); the key's remaining input bits and output accumulator live in the
//! lane's low 64-bit half.

#![allow(unsafe_op_in_unsafe_fn)] // every function here is a target-feature island; see SAFETY notes

use std::arch::x86_64::*;

use super::keys::{KeyBatch, TILE, is_full_tile, tiled};

/// Keys per pass of the DCF tiles (half a tile: 8 vectors of 2 keys, whose W + 1 accumulators
/// per vector already crowd the 16 ymm registers).
const HALF: usize = 16;
/// Vectors of 2 keys per DCF pass.
const VECS: usize = HALF / 2;
/// Keys per pass of the comparison evaluation: the whole tile. 16 vectors in flight took
/// 22–38 % less time than 8 in `cargo bench --bench fss` on an AMD EPYC without AVX-512; the
/// DCF tiles are slower so.
const CMP_HALF: usize = TILE;
/// Vectors of 2 keys per comparison pass.
const CMP_VECS: usize = CMP_HALF / 2;
/// Vectors per comparison key-generation pass (both parties' nodes).
const GEN_VECS: usize = 8;

/// `[e(0), e(1), …, e(n − 1)]` of vectors, built in place (a closure would not inherit the
/// caller's target features; see the AVX-512 module).
macro_rules! vecs {
    ($n:expr, |$i:ident| $e:expr) => {{
        let mut out = [_mm256_setzero_si256(); $n];
        for $i in 0..$n {
            out[$i] = $e;
        }
        out
    }};
}

#[inline]
#[target_feature(enable = "avx2,vaes,aes")]
unsafe fn mmo<const N: usize>(x: [__m256i; N], rk: &[__m256i; 11]) -> [__m256i; N] {
    let mut s: [__m256i; N] = vecs!(N, |j| _mm256_xor_si256(x[j], rk[0]));
    for key in &rk[1..10] {
        for v in s.iter_mut() {
            *v = _mm256_aesenc_epi128(*v, *key);
        }
    }
    vecs!(N, |j| _mm256_xor_si256(_mm256_aesenclast_epi128(s[j], rk[10]), x[j]))
}

/// The 11 round keys, each broadcast to both lanes.
#[inline]
#[target_feature(enable = "avx2,vaes,aes")]
unsafe fn broadcast_round_keys(rk: &[u128; 11]) -> [__m256i; 11] {
    vecs!(11, |i| _mm256_broadcastsi128_si256(_mm_loadu_si128(rk.as_ptr().add(i).cast())))
}

/// The 64-bit entries of 2 consecutive keys in the low halves of the 2 lanes (the high halves
/// repeat them).
#[inline]
#[target_feature(enable = "avx2,vaes,aes")]
unsafe fn load_words(p: *const u64) -> __m256i {
    _mm256_permute4x64_epi64(_mm256_castsi128_si256(_mm_loadu_si128(p.cast())), 0b01_01_00_00)
}

/// 2·N values, left-aligned in each lane's low half (high half zero), so the next input bit is
/// always bit 63.
#[inline]
#[target_feature(enable = "avx2,vaes,aes")]
unsafe fn left_aligned<const N: usize>(values: &[u64], n: u32) -> [__m256i; N] {
    let shift = _mm_cvtsi64_si128((64 - n) as i64);
    let low_half = _mm256_set_epi64x(0, -1, 0, -1);
    vecs!(N, |j| _mm256_and_si256(
        _mm256_sll_epi64(load_words(values.as_ptr().add(2 * j)), shift),
        low_half
    ))
}

/// σ(hi ‖ lo) = (hi ⊕ lo) ‖ hi per lane: swap the halves, then xor hi into the high half.
#[inline]
#[target_feature(enable = "avx2,vaes,aes")]
unsafe fn sigma(x: __m256i) -> __m256i {
    let high_half = _mm256_set_epi64x(-1, 0, -1, 0);
    _mm256_xor_si256(_mm256_shuffle_epi32(x, 0b01_00_11_10), _mm256_and_si256(x, high_half))
}

/// All-ones 128-bit lanes where the low half's bit 0 is set.
#[inline]
#[target_feature(enable = "avx2,vaes,aes")]
unsafe fn control_mask(node: __m256i, one: __m256i) -> __m256i {
    let t = _mm256_sub_epi64(_mm256_setzero_si256(), _mm256_and_si256(node, one));
    _mm256_shuffle_epi32(t, 0b01_00_01_00)
}

/// All-ones 128-bit lanes where the low half's bit 63 is set (the next input bit is 1).
#[inline]
#[target_feature(enable = "avx2,vaes,aes")]
unsafe fn top_bit_mask(bits: __m256i) -> __m256i {
    _mm256_shuffle_epi32(_mm256_cmpgt_epi64(_mm256_setzero_si256(), bits), 0b01_00_01_00)
}

/// Evaluate the full tile of comparison keys starting at key `first` (`xs` and `out` hold the
/// tile's [`TILE`] inputs and outputs): the same bits as `cmp::eval_group`.
///
/// # Safety
/// The CPU must support AVX2 and VAES; `first` must start a full tile of `keys`, a comparison
/// batch.
#[target_feature(enable = "avx2,vaes,aes")]
pub(super) unsafe fn cmp_tile(
    rk: &[u128; 11],
    keys: &KeyBatch,
    first: usize,
    xs: &[u64],
    out: &mut [u64],
) {
    debug_assert!(is_full_tile(keys, first, xs, out, 1));
    let (n, len) = (keys.n, keys.len);
    let levels = keys.levels();
    let rk = broadcast_round_keys(rk);
    let one = _mm256_set_epi64x(0, 1, 0, 1);
    let party = keys.party.index() as i64;
    let party_bit = _mm256_set_epi64x(0, party, 0, party);
    let low = (1u64 << (n - levels as u32)) - 1;
    let leaf0 = keys.last_cw.as_ptr().add(tiled(2, len, 0, first));
    let leaf1 = keys.last_cw.as_ptr().add(tiled(2, len, 1, first));
    for half in 0..TILE / CMP_HALF {
        let base = half * CMP_HALF;
        let roots = keys.roots.as_ptr().add(first + base).cast::<__m256i>();
        let mut node: [__m256i; CMP_VECS] =
            vecs!(CMP_VECS, |j| _mm256_or_si256(_mm256_loadu_si256(roots.add(j)), party_bit));
        let mut bits: [__m256i; CMP_VECS] = left_aligned(&xs[base..base + CMP_HALF], n);
        let mut acc = [_mm256_setzero_si256(); CMP_VECS];
        for i in 0..levels {
            let h = mmo(vecs!(CMP_VECS, |j| sigma(node[j])), &rk);
            let cws =
                keys.seed_cw.as_ptr().add(tiled(levels, len, i, first) + base).cast::<__m256i>();
            for j in 0..CMP_VECS {
                let tm = control_mask(node[j], one);
                let left =
                    _mm256_xor_si256(h[j], _mm256_and_si256(_mm256_loadu_si256(cws.add(j)), tm));
                let go_right = top_bit_mask(bits[j]);
                let right_bit = _mm256_and_si256(_mm256_xor_si256(left, node[j]), one);
                acc[j] = _mm256_xor_si256(acc[j], _mm256_andnot_si256(go_right, right_bit));
                node[j] = _mm256_xor_si256(left, _mm256_and_si256(go_right, node[j]));
                bits[j] = _mm256_slli_epi64(bits[j], 1);
            }
        }
        let h = mmo(vecs!(CMP_VECS, |j| sigma(node[j])), &rk);
        let mut leaves = [0u128; 2];
        let mut accs = [0u64; 4];
        for j in 0..CMP_VECS {
            let k0 = base + 2 * j;
            let cw = _mm256_unpacklo_epi64(load_words(leaf0.add(k0)), load_words(leaf1.add(k0)));
            let tm = control_mask(node[j], one);
            _mm256_storeu_si256(
                leaves.as_mut_ptr().cast(),
                _mm256_xor_si256(h[j], _mm256_and_si256(cw, tm)),
            );
            _mm256_storeu_si256(accs.as_mut_ptr().cast(), acc[j]);
            for l in 0..2 {
                let k = k0 + l;
                out[k] = accs[2 * l] ^ ((leaves[l] >> (xs[k] & low)) & 1) as u64;
            }
        }
    }
}

/// Key generation for one full tile of comparison keys: both parties' hashes of a half tile in
/// flight together; the same keys, bit for bit, as the scalar generator given the same roots and
/// offsets.
///
/// # Safety
/// The CPU must support AVX2 and VAES; `cws[b]` must point to the tile's `levels · TILE` seed
/// corrections of party b and `leaves[b]` to its `2 · TILE` leaf words.
#[target_feature(enable = "avx2,vaes,aes")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn cmp_gen_tile(
    rk: &[u128; 11],
    n: u32,
    levels: usize,
    alphas: &[u64],
    s: &[[u128; TILE]; 2],
    delta: &[u128; TILE],
    cws: [*mut u128; 2],
    leaves: [*mut u64; 2],
) {
    debug_assert!(alphas.len() == TILE);
    let rk = broadcast_round_keys(rk);
    let one = _mm256_set_epi64x(0, 1, 0, 1);
    let low = (1u64 << (n - levels as u32)) - 1;
    /// Keys per generation pass and vectors per party: both parties' nodes are hashed together
    /// in [`GEN_VECS`] AES chains.
    const GEN: usize = GEN_VECS;
    const GV: usize = GEN / 2;
    for part in 0..TILE / GEN {
        let base = part * GEN;
        // nodes[0..GV] party 0, nodes[GV..] party 1.
        let mut nodes: [__m256i; GEN_VECS] = vecs!(GEN_VECS, |j| {
            let (b, v) = (j / GV, j % GV);
            _mm256_loadu_si256(s[b].as_ptr().add(base + 2 * v).cast())
        });
        let d: [__m256i; GV] =
            vecs!(GV, |v| _mm256_loadu_si256(delta.as_ptr().add(base + 2 * v).cast()));
        let mut abits: [__m256i; GV] = {
            let shift = _mm_cvtsi64_si128((64 - n) as i64);
            let low_half = _mm256_set_epi64x(0, -1, 0, -1);
            vecs!(GV, |v| _mm256_and_si256(
                _mm256_sll_epi64(load_words(alphas.as_ptr().add(base + 2 * v)), shift),
                low_half
            ))
        };
        for i in 0..levels {
            let h = mmo(vecs!(GEN_VECS, |j| sigma(nodes[j])), &rk);
            for v in 0..GV {
                // All ones over the lane where α's bit is 1 (α's path turns right).
                let right = top_bit_mask(abits[v]);
                let cw = _mm256_xor_si256(
                    _mm256_xor_si256(h[v], h[GV + v]),
                    _mm256_andnot_si256(right, d[v]),
                );
                for b in 0..2 {
                    _mm256_storeu_si256(cws[b].add(i * TILE + base + 2 * v).cast(), cw);
                    let node = nodes[b * GV + v];
                    let tm = control_mask(node, one);
                    let left = _mm256_xor_si256(h[b * GV + v], _mm256_and_si256(cw, tm));
                    nodes[b * GV + v] = _mm256_xor_si256(left, _mm256_and_si256(right, node));
                }
                abits[v] = _mm256_slli_epi64(abits[v], 1);
            }
        }
        let h = mmo(vecs!(GEN_VECS, |j| sigma(nodes[j])), &rk);
        let mut lanes = [0u128; 2];
        for v in 0..GV {
            _mm256_storeu_si256(lanes.as_mut_ptr().cast(), _mm256_xor_si256(h[v], h[GV + v]));
            for l in 0..2 {
                let k = base + 2 * v + l;
                super::cmp::write_tile_leaf(leaves, k, lanes[l], alphas[k] & low);
            }
        }
    }
}

/// Evaluate the full tile of a DCF batch with a `W`-word payload starting at key `first`
/// (`out[k·W + q]` is word q of key k): the same bits as the scalar evaluators in
/// [`dcf`](super::dcf), with the child and the side's output word chosen by masks.
///
/// # Safety
/// The CPU must support AVX2 and VAES; `first` must start a full tile of `keys`, a DCF batch
/// with W words.
#[target_feature(enable = "avx2,vaes,aes")]
pub(super) unsafe fn dcf_words_tile<const W: usize>(
    rk: &[u128; 11],
    keys: &KeyBatch,
    first: usize,
    xs: &[u64],
    out: &mut [u64],
) {
    debug_assert!(is_full_tile(keys, first, xs, out, W));
    let (n, len) = (keys.n, keys.len);
    let levels = (n - 1) as usize;
    let rk = broadcast_round_keys(rk);
    let one = _mm256_set_epi64x(0, 1, 0, 1);
    let seed_mask = _mm256_set_epi64x(-1, !3, -1, !3);
    let party = keys.party.index() as i64;
    let party_bit = _mm256_set_epi64x(0, party, 0, party);
    // The value block of word q hashes (seed ⊕ 4q) | 2.
    let mut tweak = [_mm256_setzero_si256(); W];
    for (q, t) in tweak.iter_mut().enumerate() {
        let v = ((q as i64) << 2) | 2;
        *t = _mm256_set_epi64x(0, v, 0, v);
    }
    let lbase = tiled(2 * W, len, 0, first);
    for half in 0..TILE / HALF {
        let base = half * HALF;
        let roots = keys.roots.as_ptr().add(first + base).cast::<__m256i>();
        let mut node: [__m256i; VECS] =
            vecs!(VECS, |j| _mm256_or_si256(_mm256_loadu_si256(roots.add(j)), party_bit));
        let mut bits: [__m256i; VECS] = left_aligned(&xs[base..base + HALF], n);
        let mut acc = [[_mm256_setzero_si256(); VECS]; W];
        for i in 0..levels {
            let cws =
                keys.seed_cw.as_ptr().add(tiled(levels, len, i, first) + base).cast::<__m256i>();
            let vbase = tiled(levels * W, len, i * W, first) + base;
            let side: [__m256i; VECS] = vecs!(VECS, |j| _mm256_srli_epi64(bits[j], 63));
            // All ones in the low half where the side is right (the high half is ignored).
            let right: [__m256i; VECS] =
                vecs!(VECS, |j| _mm256_sub_epi64(_mm256_setzero_si256(), side[j]));
            let seed: [__m256i; VECS] = vecs!(VECS, |j| _mm256_and_si256(node[j], seed_mask));
            let child = mmo(vecs!(VECS, |j| _mm256_or_si256(seed[j], side[j])), &rk);
            for q in 0..W {
                let words = mmo(vecs!(VECS, |j| _mm256_xor_si256(seed[j], tweak[q])), &rk);
                let vcws = keys.value_cw.as_ptr().add(vbase + q * TILE);
                for j in 0..VECS {
                    let v = _mm256_blendv_epi8(
                        words[j],
                        _mm256_shuffle_epi32(words[j], 0b11_10_11_10),
                        right[j],
                    );
                    let tm = control_mask(node[j], one);
                    let vcw = _mm256_and_si256(load_words(vcws.add(2 * j)), tm);
                    acc[q][j] = _mm256_add_epi64(acc[q][j], _mm256_add_epi64(v, vcw));
                }
            }
            for j in 0..VECS {
                let tm = control_mask(node[j], one);
                let cw = _mm256_loadu_si256(cws.add(j));
                let cw_side = _mm256_or_si256(
                    _mm256_and_si256(cw, seed_mask),
                    _mm256_and_si256(_mm256_srlv_epi64(cw, side[j]), one),
                );
                node[j] = _mm256_xor_si256(child[j], _mm256_and_si256(cw_side, tm));
                bits[j] = _mm256_slli_epi64(bits[j], 1);
            }
        }
        // Last level: W output blocks, and one correction per word and last input bit.
        let seed: [__m256i; VECS] = vecs!(VECS, |j| _mm256_and_si256(node[j], seed_mask));
        let mut lanes = [0u64; 4];
        for q in 0..W {
            let words = mmo(vecs!(VECS, |j| _mm256_xor_si256(seed[j], tweak[q])), &rk);
            let last0 = keys.last_cw.as_ptr().add(lbase + q * TILE + base);
            let last1 = keys.last_cw.as_ptr().add(lbase + (W + q) * TILE + base);
            for j in 0..VECS {
                let right =
                    _mm256_sub_epi64(_mm256_setzero_si256(), _mm256_srli_epi64(bits[j], 63));
                let v = _mm256_blendv_epi8(
                    words[j],
                    _mm256_shuffle_epi32(words[j], 0b11_10_11_10),
                    right,
                );
                let cw = _mm256_blendv_epi8(
                    load_words(last0.add(2 * j)),
                    load_words(last1.add(2 * j)),
                    right,
                );
                let tm = control_mask(node[j], one);
                let total =
                    _mm256_add_epi64(acc[q][j], _mm256_add_epi64(v, _mm256_and_si256(cw, tm)));
                _mm256_storeu_si256(lanes.as_mut_ptr().cast(), total);
                for k in 0..2 {
                    let y = lanes[2 * k];
                    out[(base + 2 * j + k) * W + q] = if party == 0 { y } else { y.wrapping_neg() };
                }
            }
        }
    }
}

/// [`dcf_words_tile`] with one word, in the signature of the one-word tile evaluators.
///
/// # Safety
/// As [`dcf_words_tile`].
#[target_feature(enable = "avx2,vaes,aes")]
pub(super) unsafe fn dcf_tile(
    rk: &[u128; 11],
    keys: &KeyBatch,
    first: usize,
    xs: &[u64],
    out: &mut [u64],
) {
    dcf_words_tile::<1>(rk, keys, first, xs, out)
}
