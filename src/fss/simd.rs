//! AVX-512 + VAES evaluation of full key tiles: 32 keys (8 vectors of 4 × 128-bit lanes) walk
//! down their trees together, with the AES rounds, control-bit corrections and output
//! accumulation all in vector registers (no round trip through memory between the AES and the
//! corrections). Bit-identical to the scalar path in [`dcf`](super::dcf) and [`dpf`](super::dpf)
//! (tested); used when the CPU has AVX-512F and VAES and the tile is full.
//!
//! Lane layout: a 128-bit lane holds one key's node (seed with the control bit in bit 0); the
//! key's remaining input bits, output accumulator and loaded corrections live in the lane's low
//! 64-bit half.

#![allow(unsafe_op_in_unsafe_fn)] // every function here is a target-feature island; see SAFETY notes

use std::arch::x86_64::*;

use super::keys::{KeyBatch, TILE, is_full_tile, tiled};

/// Vectors of 4 keys per tile.
const VECS: usize = TILE / 4;

/// `[e(0), e(1), …, e(n − 1)]` of vectors, built in place. A closure (`std::array::from_fn`)
/// would not inherit the caller's target features, so the intrinsics inside it would become
/// function calls — a 5× slowdown measured here.
macro_rules! vecs {
    ($n:expr, |$i:ident| $e:expr) => {{
        let mut out = [_mm512_setzero_si512(); $n];
        for $i in 0..$n {
            out[$i] = $e;
        }
        out
    }};
}

/// Per party (2) arrays of `VECS` vectors.
macro_rules! pair {
    (|$b:ident| $e:expr) => {{
        let mut out = [[_mm512_setzero_si512(); VECS]; 2];
        for $b in 0..2 {
            out[$b] = $e;
        }
        out
    }};
}

#[inline]
#[target_feature(enable = "avx512f,vaes,avx2")]
unsafe fn mmo(x: [__m512i; VECS], rk: &[__m512i; 11]) -> [__m512i; VECS] {
    let mut s: [__m512i; VECS] = vecs!(VECS, |j| _mm512_xor_si512(x[j], rk[0]));
    for key in &rk[1..10] {
        for v in s.iter_mut() {
            *v = _mm512_aesenc_epi128(*v, *key);
        }
    }
    vecs!(VECS, |j| _mm512_xor_si512(_mm512_aesenclast_epi128(s[j], rk[10]), x[j]))
}

/// Load the 64-bit entries of 4 consecutive keys into the low halves of 4 lanes.
#[inline]
#[target_feature(enable = "avx512f,vaes,avx2")]
unsafe fn load_words(p: *const u64) -> __m512i {
    let idx = _mm512_set_epi64(3, 3, 2, 2, 1, 1, 0, 0);
    _mm512_permutexvar_epi64(idx, _mm512_castsi256_si512(_mm256_loadu_si256(p.cast())))
}

/// The 11 round keys, each broadcast to all four lanes.
#[inline]
#[target_feature(enable = "avx512f,vaes,avx2")]
unsafe fn broadcast_round_keys(rk: &[u128; 11]) -> [__m512i; 11] {
    vecs!(11, |i| _mm512_broadcast_i32x4(_mm_loadu_si128(rk.as_ptr().add(i).cast())))
}

/// A full tile's root nodes from key `first` on, with this party's control bit (P1's is 1).
#[inline]
#[target_feature(enable = "avx512f,vaes,avx2")]
unsafe fn load_nodes(keys: &KeyBatch, first: usize) -> [__m512i; VECS] {
    let party = keys.party.index() as i64;
    let party_bit = _mm512_set_epi64(0, party, 0, party, 0, party, 0, party);
    let roots = keys.roots.as_ptr().add(first).cast::<__m512i>();
    vecs!(VECS, |j| _mm512_or_si512(_mm512_loadu_si512(roots.add(j).cast()), party_bit))
}

/// A tile's n-bit values, left-aligned in each lane's low half (high half zero), so the next
/// input bit is always bit 63.
#[inline]
#[target_feature(enable = "avx512f,vaes,avx2")]
unsafe fn left_aligned(values: &[u64], n: u32) -> [__m512i; VECS] {
    let shift = _mm512_set1_epi64((64 - n) as i64);
    let low_half = _mm512_set_epi64(0, -1, 0, -1, 0, -1, 0, -1);
    vecs!(VECS, |j| {
        _mm512_and_si512(_mm512_sllv_epi64(load_words(values.as_ptr().add(4 * j)), shift), low_half)
    })
}

/// σ(hi ‖ lo) = (hi ⊕ lo) ‖ hi per lane (the comparison keys' orthomorphism): swap the
/// halves, then xor hi into the high half.
#[inline]
#[target_feature(enable = "avx512f,vaes,avx2")]
unsafe fn sigma(x: __m512i) -> __m512i {
    let high_half = _mm512_set_epi64(-1, 0, -1, 0, -1, 0, -1, 0);
    _mm512_xor_si512(_mm512_shuffle_epi32(x, _MM_PERM_BADC), _mm512_and_si512(x, high_half))
}

/// All-ones 128-bit lanes where the lane's control bit (bit 0) is set.
#[inline]
#[target_feature(enable = "avx512f,vaes,avx2")]
unsafe fn control_mask(node: __m512i, one: __m512i) -> __m512i {
    let t = _mm512_sub_epi64(_mm512_setzero_si512(), _mm512_and_si512(node, one));
    _mm512_shuffle_epi32(t, _MM_PERM_BABA)
}

/// Evaluate the full tile starting at key `first` of a one-word DCF batch (`xs` and `out` hold
/// the tile's TILE inputs and outputs): [`dcf_words_tile`] with one word.
///
/// # Safety
/// The CPU must support AVX-512F and VAES; `first` must start a full tile of `keys`.
#[target_feature(enable = "avx512f,vaes,aes,avx2")]
pub(super) unsafe fn dcf_tile(
    rk: &[u128; 11],
    keys: &KeyBatch,
    first: usize,
    xs: &[u64],
    out: &mut [u64],
) {
    dcf_words_tile::<1>(rk, keys, first, xs, out)
}

/// As [`dcf_tile`] for a DPF batch.
///
/// # Safety
/// As [`dcf_tile`].
#[target_feature(enable = "avx512f,vaes,aes,avx2")]
pub(super) unsafe fn dpf_tile(
    rk: &[u128; 11],
    keys: &KeyBatch,
    first: usize,
    xs: &[u64],
    out: &mut [u64],
) {
    tile(rk, keys, first, xs, out)
}

#[inline]
#[target_feature(enable = "avx512f,vaes,aes,avx2")]
unsafe fn tile(rk: &[u128; 11], keys: &KeyBatch, first: usize, xs: &[u64], out: &mut [u64]) {
    debug_assert!(is_full_tile(keys, first, xs, out, 1));
    let (n, len) = (keys.n, keys.len);
    let levels = (n - 1) as usize;
    let rk = broadcast_round_keys(rk);
    // Per lane: low half / high half.
    let one = _mm512_set_epi64(0, 1, 0, 1, 0, 1, 0, 1);
    let two = _mm512_set_epi64(0, 2, 0, 2, 0, 2, 0, 2);
    let seed_mask = _mm512_set_epi64(-1, !3, -1, !3, -1, !3, -1, !3);
    let party = keys.party.index() as i64;

    let mut node = load_nodes(keys, first);
    let mut bits = left_aligned(xs, n);

    for i in 0..levels {
        let base = tiled(levels, len, i, first);
        let cws = keys.seed_cw.as_ptr().add(base).cast::<__m512i>();
        let side: [__m512i; VECS] = vecs!(VECS, |j| _mm512_srli_epi64(bits[j], 63));
        let seed: [__m512i; VECS] = vecs!(VECS, |j| _mm512_and_si512(node[j], seed_mask));
        let child = mmo(vecs!(VECS, |j| _mm512_or_si512(seed[j], side[j])), &rk);
        for j in 0..VECS {
            let tm = control_mask(node[j], one);
            let cw = _mm512_loadu_si512(cws.add(j).cast());
            let cw_side = _mm512_or_si512(
                _mm512_and_si512(cw, seed_mask),
                _mm512_and_si512(_mm512_srlv_epi64(cw, side[j]), one),
            );
            node[j] = _mm512_xor_si512(child[j], _mm512_and_si512(cw_side, tm));
            bits[j] = _mm512_slli_epi64(bits[j], 1);
        }
    }
    // Last level: the output block, and one correction per last input bit.
    let words =
        mmo(vecs!(VECS, |j| _mm512_or_si512(_mm512_and_si512(node[j], seed_mask), two)), &rk);
    let last0 = keys.last_cw.as_ptr().add(tiled(2, len, 0, first));
    let last1 = keys.last_cw.as_ptr().add(tiled(2, len, 1, first));
    let mut lanes = [0u64; 8];
    for j in 0..VECS {
        let side = _mm512_srli_epi64(bits[j], 63);
        let right = _mm512_test_epi64_mask(side, side);
        let v =
            _mm512_mask_blend_epi64(right, words[j], _mm512_shuffle_epi32(words[j], _MM_PERM_DCDC));
        let cw = _mm512_mask_blend_epi64(
            right,
            load_words(last0.add(4 * j)),
            load_words(last1.add(4 * j)),
        );
        let tm = control_mask(node[j], one);
        let total = _mm512_add_epi64(v, _mm512_and_si512(cw, tm));
        _mm512_storeu_si512(lanes.as_mut_ptr().cast(), total);
        for k in 0..4 {
            let y = lanes[2 * k];
            out[4 * j + k] = if party == 0 { y } else { y.wrapping_neg() };
        }
    }
}

/// Evaluate the full tile starting at key `first` of a DCF batch with a `W`-word payload
/// (`out[k·W + q]` is word q of key k; [`dcf_tile`] is W = 1): the DPF walk of [`dpf_tile`]
/// plus W output blocks per level, all in vector registers.
///
/// # Safety
/// As [`dcf_tile`]; the batch must have W words.
#[target_feature(enable = "avx512f,vaes,aes,avx2")]
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
    let one = _mm512_set_epi64(0, 1, 0, 1, 0, 1, 0, 1);
    let seed_mask = _mm512_set_epi64(-1, !3, -1, !3, -1, !3, -1, !3);
    let party = keys.party.index() as i64;
    // The value block of word q hashes (seed ⊕ 4q) | 2.
    let mut tweak = [_mm512_setzero_si512(); W];
    for (q, t) in tweak.iter_mut().enumerate() {
        let v = ((q as i64) << 2) | 2;
        *t = _mm512_set_epi64(0, v, 0, v, 0, v, 0, v);
    }

    let mut node = load_nodes(keys, first);
    let mut bits = left_aligned(xs, n);
    let mut acc = [[_mm512_setzero_si512(); VECS]; W];

    for i in 0..levels {
        let base = tiled(levels, len, i, first);
        let vbase = tiled(levels * W, len, i * W, first);
        let cws = keys.seed_cw.as_ptr().add(base).cast::<__m512i>();
        let side: [__m512i; VECS] = vecs!(VECS, |j| _mm512_srli_epi64(bits[j], 63));
        let seed: [__m512i; VECS] = vecs!(VECS, |j| _mm512_and_si512(node[j], seed_mask));
        let child = mmo(vecs!(VECS, |j| _mm512_or_si512(seed[j], side[j])), &rk);
        for q in 0..W {
            let words = mmo(vecs!(VECS, |j| _mm512_xor_si512(seed[j], tweak[q])), &rk);
            let vcws = keys.value_cw.as_ptr().add(vbase + q * TILE);
            for j in 0..VECS {
                let right = _mm512_test_epi64_mask(side[j], side[j]);
                let v = _mm512_mask_blend_epi64(
                    right,
                    words[j],
                    _mm512_shuffle_epi32(words[j], _MM_PERM_DCDC),
                );
                let tm = control_mask(node[j], one);
                let vcw = _mm512_and_si512(load_words(vcws.add(4 * j)), tm);
                acc[q][j] = _mm512_add_epi64(acc[q][j], _mm512_add_epi64(v, vcw));
            }
        }
        for j in 0..VECS {
            let tm = control_mask(node[j], one);
            let cw = _mm512_loadu_si512(cws.add(j).cast());
            let cw_side = _mm512_or_si512(
                _mm512_and_si512(cw, seed_mask),
                _mm512_and_si512(_mm512_srlv_epi64(cw, side[j]), one),
            );
            node[j] = _mm512_xor_si512(child[j], _mm512_and_si512(cw_side, tm));
            bits[j] = _mm512_slli_epi64(bits[j], 1);
        }
    }
    // Last level: W output blocks, and one correction per word and last input bit.
    let seed: [__m512i; VECS] = vecs!(VECS, |j| _mm512_and_si512(node[j], seed_mask));
    let lbase = tiled(2 * W, len, 0, first);
    let mut lanes = [0u64; 8];
    for q in 0..W {
        let words = mmo(vecs!(VECS, |j| _mm512_xor_si512(seed[j], tweak[q])), &rk);
        let last0 = keys.last_cw.as_ptr().add(lbase + q * TILE);
        let last1 = keys.last_cw.as_ptr().add(lbase + (W + q) * TILE);
        for j in 0..VECS {
            let side = _mm512_srli_epi64(bits[j], 63);
            let right = _mm512_test_epi64_mask(side, side);
            let v = _mm512_mask_blend_epi64(
                right,
                words[j],
                _mm512_shuffle_epi32(words[j], _MM_PERM_DCDC),
            );
            let cw = _mm512_mask_blend_epi64(
                right,
                load_words(last0.add(4 * j)),
                load_words(last1.add(4 * j)),
            );
            let tm = control_mask(node[j], one);
            let total = _mm512_add_epi64(acc[q][j], _mm512_add_epi64(v, _mm512_and_si512(cw, tm)));
            _mm512_storeu_si512(lanes.as_mut_ptr().cast(), total);
            for k in 0..4 {
                let y = lanes[2 * k];
                out[(4 * j + k) * W + q] = if party == 0 { y } else { y.wrapping_neg() };
            }
        }
    }
}

/// Evaluate the full tile starting at key `first` of a comparison batch
/// ([`cmp`](super::cmp)): one hash per level, the right sibling for free.
///
/// # Safety
/// The CPU must support AVX-512F and VAES; `first` must start a full tile of `keys`.
#[target_feature(enable = "avx512f,vaes,aes,avx2")]
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
    let one = _mm512_set_epi64(0, 1, 0, 1, 0, 1, 0, 1);

    let mut node = load_nodes(keys, first);
    let mut bits = left_aligned(xs, n);
    let mut acc = [_mm512_setzero_si512(); VECS];
    for i in 0..levels {
        let h = mmo(vecs!(VECS, |j| sigma(node[j])), &rk);
        let cws = keys.seed_cw.as_ptr().add(tiled(levels, len, i, first)).cast::<__m512i>();
        for j in 0..VECS {
            let tm = control_mask(node[j], one);
            let left =
                _mm512_xor_si512(h[j], _mm512_and_si512(_mm512_loadu_si512(cws.add(j).cast()), tm));
            // All ones over the lane where x's bit is 1 (go right).
            let go_right = _mm512_shuffle_epi32(_mm512_srai_epi64(bits[j], 63), _MM_PERM_BABA);
            let right_bit = _mm512_and_si512(_mm512_xor_si512(left, node[j]), one);
            acc[j] = _mm512_xor_si512(acc[j], _mm512_andnot_si512(go_right, right_bit));
            node[j] = _mm512_xor_si512(left, _mm512_and_si512(go_right, node[j]));
            bits[j] = _mm512_slli_epi64(bits[j], 1);
        }
    }
    let h = mmo(vecs!(VECS, |j| sigma(node[j])), &rk);
    let leaf0 = keys.last_cw.as_ptr().add(tiled(2, len, 0, first));
    let leaf1 = keys.last_cw.as_ptr().add(tiled(2, len, 1, first));
    let low = (1u64 << (n - levels as u32)) - 1;
    let mut leaves = [0u128; 4];
    let mut accs = [0u64; 8];
    for j in 0..VECS {
        let cw = _mm512_unpacklo_epi64(load_words(leaf0.add(4 * j)), load_words(leaf1.add(4 * j)));
        let tm = control_mask(node[j], one);
        _mm512_storeu_si512(
            leaves.as_mut_ptr().cast(),
            _mm512_xor_si512(h[j], _mm512_and_si512(cw, tm)),
        );
        _mm512_storeu_si512(accs.as_mut_ptr().cast(), acc[j]);
        for l in 0..4 {
            let k = 4 * j + l;
            out[k] = accs[2 * l] ^ ((leaves[l] >> (xs[k] & low)) & 1) as u64;
        }
    }
}

/// Key generation for one full tile of comparison keys ([`cmp`](super::cmp)): both parties'
/// hashes of the whole tile in flight together; the same keys, bit for bit, as the scalar
/// generator given the same roots and offsets.
///
/// # Safety
/// The CPU must support AVX-512F and VAES; `cws[b]` must point to the tile's `levels · TILE`
/// seed corrections of party b and `leaves[b]` to its `2 · TILE` leaf words.
#[target_feature(enable = "avx512f,vaes,aes,avx2")]
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
    let one = _mm512_set_epi64(0, 1, 0, 1, 0, 1, 0, 1);
    let mut nodes: [[__m512i; VECS]; 2] =
        pair!(|b| vecs!(VECS, |j| _mm512_loadu_si512(s[b].as_ptr().add(4 * j).cast())));
    let d: [__m512i; VECS] = vecs!(VECS, |j| _mm512_loadu_si512(delta.as_ptr().add(4 * j).cast()));
    let mut abits = left_aligned(alphas, n);
    for i in 0..levels {
        let h: [[__m512i; VECS]; 2] = pair!(|b| mmo(vecs!(VECS, |j| sigma(nodes[b][j])), &rk));
        for j in 0..VECS {
            // All ones over the lane where α's bit is 1 (α's path turns right).
            let right = _mm512_shuffle_epi32(_mm512_srai_epi64(abits[j], 63), _MM_PERM_BABA);
            let cw = _mm512_xor_si512(
                _mm512_xor_si512(h[0][j], h[1][j]),
                _mm512_andnot_si512(right, d[j]),
            );
            for b in 0..2 {
                _mm512_storeu_si512(cws[b].add(i * TILE + 4 * j).cast(), cw);
                let tm = control_mask(nodes[b][j], one);
                let left = _mm512_xor_si512(h[b][j], _mm512_and_si512(cw, tm));
                nodes[b][j] = _mm512_xor_si512(left, _mm512_and_si512(right, nodes[b][j]));
            }
            abits[j] = _mm512_slli_epi64(abits[j], 1);
        }
    }
    let h: [[__m512i; VECS]; 2] = pair!(|b| mmo(vecs!(VECS, |j| sigma(nodes[b][j])), &rk));
    let low = (1u64 << (n - levels as u32)) - 1;
    let mut lanes = [0u128; 4];
    for j in 0..VECS {
        _mm512_storeu_si512(lanes.as_mut_ptr().cast(), _mm512_xor_si512(h[0][j], h[1][j]));
        for l in 0..4 {
            let k = 4 * j + l;
            super::cmp::write_tile_leaf(leaves, k, lanes[l], alphas[k] & low);
        }
    }
}

/// Where one full tile's key material goes: for each party, pointers to the tile's first entry
/// of `roots`, `seed_cw`, `value_cw` (DCF only; one word) and `last_cw` (tile-local layout:
/// level i of key j at `i·TILE + j`).
pub(super) struct TileOut {
    pub roots: [*mut u128; 2],
    pub seed_cw: [*mut u128; 2],
    pub value_cw: [*mut u64; 2],
    pub last_cw: [*mut u64; 2],
}

/// Store the low 64-bit halves of the 4 lanes of `v` at `p`.
#[inline]
#[target_feature(enable = "avx512f,vaes,avx2")]
unsafe fn store_words(p: *mut u64, v: __m512i) {
    let idx = _mm512_set_epi64(6, 4, 2, 0, 6, 4, 2, 0);
    _mm256_storeu_si256(p.cast(), _mm512_castsi512_si256(_mm512_permutexvar_epi64(idx, v)));
}

/// Conditional negation of the low halves: `−x` where `m` is all ones, `x` where zero.
#[inline]
#[target_feature(enable = "avx512f,vaes,avx2")]
unsafe fn negate_if(x: __m512i, m: __m512i) -> __m512i {
    _mm512_sub_epi64(_mm512_xor_si512(x, m), m)
}

/// Key generation for one full tile of DCF (one-word payload) or DPF keys: the same keys, bit
/// for bit, as the scalar generator given the same root seeds.
///
/// # Safety
/// The CPU must support AVX-512F and VAES; `out` must point to a full tile's entries in
/// batches of input width `n`.
#[target_feature(enable = "avx512f,vaes,aes,avx2")]
pub(super) unsafe fn gen_tile(
    rk: &[u128; 11],
    n: u32,
    comparison: bool,
    alphas: &[u64],
    betas: &[u64],
    roots: &[[u128; 2]],
    out: &TileOut,
) {
    debug_assert!(alphas.len() == TILE && betas.len() == TILE && roots.len() == TILE);
    let levels = (n - 1) as usize;
    let rk = broadcast_round_keys(rk);
    let one = _mm512_set_epi64(0, 1, 0, 1, 0, 1, 0, 1);
    let two = _mm512_set_epi64(0, 2, 0, 2, 0, 2, 0, 2);
    let low_half = _mm512_set_epi64(0, -1, 0, -1, 0, -1, 0, -1);
    let seed_mask = _mm512_set_epi64(-1, !3, -1, !3, -1, !3, -1, !3);

    // Party b's nodes (seed | control bit), 4 keys per vector.
    let mut nodes: [[__m512i; VECS]; 2] = [[_mm512_setzero_si512(); VECS]; 2];
    for b in 0..2 {
        for j in 0..VECS {
            let lanes: [u128; 4] = std::array::from_fn(|l| roots[4 * j + l][b]);
            let v = _mm512_loadu_si512(lanes.as_ptr().cast());
            _mm512_storeu_si512(out.roots[b].add(4 * j).cast(), v);
            nodes[b][j] = if b == 1 { _mm512_or_si512(v, one) } else { v };
        }
    }
    let mut abits = left_aligned(alphas, n);
    let beta: [__m512i; VECS] =
        vecs!(VECS, |j| _mm512_and_si512(load_words(betas.as_ptr().add(4 * j)), low_half));
    let mut on_path = [_mm512_setzero_si512(); VECS];

    for i in 0..levels {
        let seeds: [[__m512i; VECS]; 2] =
            pair!(|b| vecs!(VECS, |j| _mm512_and_si512(nodes[b][j], seed_mask)));
        let left: [[__m512i; VECS]; 2] = pair!(|b| mmo(seeds[b], &rk));
        let right: [[__m512i; VECS]; 2] =
            pair!(|b| mmo(vecs!(VECS, |j| _mm512_or_si512(seeds[b][j], one)), &rk));
        let words: [[__m512i; VECS]; 2] = if comparison {
            pair!(|b| mmo(vecs!(VECS, |j| _mm512_or_si512(seeds[b][j], two)), &rk))
        } else {
            [[_mm512_setzero_si512(); VECS]; 2]
        };
        for j in 0..VECS {
            let a = _mm512_srli_epi64(abits[j], 63);
            let a_low: __mmask8 = _mm512_test_epi64_mask(a, a); // low halves of lanes with α_i = 1
            let a_lane: __mmask8 = a_low | (a_low << 1); // both halves
            let keep: [__m512i; 2] =
                vecs!(2, |b| _mm512_mask_blend_epi64(a_lane, left[b][j], right[b][j]));
            let lose: [__m512i; 2] =
                vecs!(2, |b| _mm512_mask_blend_epi64(a_lane, right[b][j], left[b][j]));
            let seed_cw = _mm512_and_si512(_mm512_xor_si512(lose[0], lose[1]), seed_mask);
            let t_left = _mm512_xor_si512(
                _mm512_xor_si512(
                    _mm512_and_si512(_mm512_xor_si512(left[0][j], left[1][j]), one),
                    a,
                ),
                one,
            );
            let t_right = _mm512_xor_si512(
                _mm512_and_si512(_mm512_xor_si512(right[0][j], right[1][j]), one),
                a,
            );
            let t_keep = _mm512_mask_blend_epi64(a_low, t_left, t_right);
            let cw_word =
                _mm512_or_si512(_mm512_or_si512(seed_cw, t_left), _mm512_slli_epi64(t_right, 1));
            for b in 0..2 {
                _mm512_storeu_si512(out.seed_cw[b].add(i * TILE + 4 * j).cast(), cw_word);
            }
            if comparison {
                // (−1)^{t1} as a mask: all ones where party 1's control bit is set.
                let t1 = _mm512_and_si512(nodes[1][j], one);
                let neg = _mm512_sub_epi64(_mm512_setzero_si512(), t1);
                let hi: [__m512i; 2] =
                    vecs!(2, |b| _mm512_shuffle_epi32(words[b][j], _MM_PERM_DCDC));
                let v_lose: [__m512i; 2] =
                    vecs!(2, |b| _mm512_mask_blend_epi64(a_low, hi[b], words[b][j]));
                let v_keep: [__m512i; 2] =
                    vecs!(2, |b| _mm512_mask_blend_epi64(a_low, words[b][j], hi[b]));
                let beta_if = _mm512_maskz_mov_epi64(a_low, beta[j]);
                let target = _mm512_add_epi64(
                    _mm512_sub_epi64(_mm512_sub_epi64(v_lose[1], v_lose[0]), on_path[j]),
                    beta_if,
                );
                let value_cw = negate_if(target, neg);
                // Vα += vKeep0 − vKeep1 + (−1)^{t1}·VCW, and (−1)^{t1}·VCW = target.
                on_path[j] = _mm512_add_epi64(
                    on_path[j],
                    _mm512_add_epi64(_mm512_sub_epi64(v_keep[0], v_keep[1]), target),
                );
                for b in 0..2 {
                    store_words(out.value_cw[b].add(i * TILE + 4 * j), value_cw);
                }
            }
            for b in 0..2 {
                let tm = control_mask(nodes[b][j], one);
                let t = _mm512_and_si512(nodes[b][j], one);
                let seed = _mm512_xor_si512(
                    _mm512_and_si512(keep[b], seed_mask),
                    _mm512_and_si512(seed_cw, tm),
                );
                let ctrl =
                    _mm512_xor_si512(_mm512_and_si512(keep[b], one), _mm512_and_si512(t, t_keep));
                nodes[b][j] = _mm512_or_si512(seed, ctrl);
            }
            abits[j] = _mm512_slli_epi64(abits[j], 1);
        }
    }
    // Last level: one output block per party; one correction per last input bit.
    let words: [[__m512i; VECS]; 2] = pair!(|b| {
        mmo(vecs!(VECS, |j| _mm512_or_si512(_mm512_and_si512(nodes[b][j], seed_mask), two)), &rk)
    });
    for j in 0..VECS {
        let a = _mm512_srli_epi64(abits[j], 63);
        let a_low: __mmask8 = _mm512_test_epi64_mask(a, a);
        let neg = _mm512_sub_epi64(_mm512_setzero_si512(), _mm512_and_si512(nodes[1][j], one));
        for side in 0..2 {
            let w: [__m512i; 2] = vecs!(2, |b| {
                if side == 0 {
                    words[b][j]
                } else {
                    _mm512_shuffle_epi32(words[b][j], _MM_PERM_DCDC)
                }
            });
            // DCF: β where side < α_n (side 0, α_n = 1), minus Vα. DPF: β where side = α_n.
            let target = match (comparison, side) {
                (true, 0) => _mm512_sub_epi64(_mm512_maskz_mov_epi64(a_low, beta[j]), on_path[j]),
                (true, _) => _mm512_sub_epi64(_mm512_setzero_si512(), on_path[j]),
                (false, 0) => _mm512_maskz_mov_epi64(!a_low & 0x55, beta[j]),
                (false, _) => _mm512_maskz_mov_epi64(a_low, beta[j]),
            };
            let cw = negate_if(_mm512_add_epi64(_mm512_sub_epi64(target, w[0]), w[1]), neg);
            for b in 0..2 {
                store_words(out.last_cw[b].add(side * TILE + 4 * j), cw);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use crate::fss::aes::{AesImpl, best_impl};
    use crate::fss::{dcf, dpf};
    use crate::prg::insecure_seeded_rng;

    #[test]
    fn vector_key_generation_equals_the_scalar_generator() {
        if best_impl() != AesImpl::Vaes512 {
            eprintln!("skipped: this CPU has no AVX-512/VAES, the vector path is not used here");
            return;
        }
        let mut rng = insecure_seeded_rng(2);
        for n in [1u32, 2, 17, 64] {
            let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
            for len in [32usize, 64 + 5, 600] {
                let alphas: Vec<u64> = (0..len).map(|_| rng.random::<u64>() & mask).collect();
                let betas: Vec<u64> = (0..len).map(|_| rng.random()).collect();
                let seed: u64 = rng.random();
                let fast = dcf::keygen(n, &alphas, &betas, &mut insecure_seeded_rng(seed)).unwrap();
                let slow = dcf::keygen_scalar(n, &alphas, &betas, &mut insecure_seeded_rng(seed));
                assert_eq!(fast, slow, "DCF n={n} len={len}");
                let fast = dpf::keygen(n, &alphas, &betas, &mut insecure_seeded_rng(seed)).unwrap();
                let slow = dpf::keygen_scalar(n, &alphas, &betas, &mut insecure_seeded_rng(seed));
                assert_eq!(fast, slow, "DPF n={n} len={len}");
            }
        }
    }

    /// The AVX-512 tiles where the CPU has them, else the AVX2 ones (DCF only; DPF batches
    /// stay scalar there).
    #[test]
    fn vector_tiles_equal_the_scalar_path_per_party() {
        if !matches!(best_impl(), AesImpl::Vaes512 | AesImpl::Vaes256) {
            eprintln!("skipped: this CPU has no VAES, the vector paths are not used here");
            return;
        }
        let mut rng = insecure_seeded_rng(1);
        for n in [1u32, 2, 17, 63, 64] {
            let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
            for len in [32usize, 33, 64 + 31, 1000] {
                let alphas: Vec<u64> = (0..len).map(|_| rng.random::<u64>() & mask).collect();
                let betas: Vec<u64> = (0..len).map(|_| rng.random()).collect();
                let xs: Vec<u64> =
                    alphas.iter().map(|a| (a ^ (rng.random::<u64>() & 7)) & mask).collect();
                for dcf_scheme in [true, false] {
                    let keys = if dcf_scheme {
                        dcf::keygen(n, &alphas, &betas, &mut rng).unwrap()
                    } else {
                        dpf::keygen(n, &alphas, &betas, &mut rng).unwrap()
                    };
                    for k in &keys {
                        let (mut fast, mut slow) = (vec![0; len], vec![0; len]);
                        if dcf_scheme {
                            dcf::eval(k, &xs, &mut fast).unwrap();
                            dcf::eval_scalar(k, &xs, &mut slow);
                        } else {
                            dpf::eval(k, &xs, &mut fast).unwrap();
                            dpf::eval_scalar(k, &xs, &mut slow);
                        }
                        assert_eq!(fast, slow, "n={n} len={len} dcf={dcf_scheme}");
                    }
                }
            }
        }
    }
}
