//! Distributed comparison function (Boyle et al., EUROCRYPT'21, Fig. 3) over Z_2^64.
//!
//! Keys for `f(x) = β·[x < α]` on n-bit inputs, n ∈ 1..=64: `eval(k0, x) + eval(k1, x) = f(x)`
//! (mod 2^64), and each key alone is pseudorandom (it hides α and β).
//!
//! **Construction.** The GGM tree of the [module docs](super) with one value correction per level,
//! as in the paper, with one change at the last level: instead of a last seed correction plus a
//! final output correction `CW_{n+1}`, the last level carries two value corrections, one per
//! child, chosen so that the on-path leaf (x = α) gets 0 and its sibling gets β·[α_n = 1].
//! This removes one AES block from every evaluation and 80 bits from every key.
//!
//! **Cost.** Evaluation: 2 AES blocks per level (child seed and output words) except 1 at the
//! last level — 2n − 1 blocks. Key generation: 3 blocks per level and party except 1 at the last
//! level. Key size per party: `16 + 24(n − 1) + 16` bytes (1,544 B at n = 64).
//!
//! **What a key holder learns.** Nothing about α or β: every correction word is masked by PRG
//! output of the other party's on-path seed, which the holder cannot compute.

use super::aes::{FixedKeyAes, fixed_aes};
use rayon::prelude::*;

use super::keys::{KeyBatch, MAX_WORDS, Scheme, check_domain, prepare_keygen, tiled};
use super::tree::{
    GROUP, PairOut, SEED_MASK, Scatter, VALUE_TWEAK, bit, eval_tiles, gen_full_tile, mask64,
    mask128, par_gen, random_seed, word,
};
use crate::fss::KeyError;
use crate::party::PartyId;
use crate::prg::ChaCha20Rng;

/// Dealer: DCF keys for `β_k·[x < α_k]` on n-bit inputs, one per (α, β) pair.
///
/// # Errors
/// [`KeyError::Width`] unless 1 ≤ n ≤ 64, [`KeyError::BatchLength`] when the slices differ in
/// length, [`KeyError::Domain`] when an α does not fit in n bits.
pub fn keygen(
    n: u32,
    alphas: &[u64],
    betas: &[u64],
    rng: &mut ChaCha20Rng,
) -> Result<[KeyBatch; 2], KeyError> {
    keygen_words(n, 1, alphas, betas, rng)
}

/// Dealer: DCF keys with a vector payload of `words` ring elements: `f(x) = β_k·[x < α_k]` where
/// `β_k = betas[k·words .. (k+1)·words]`. Evaluation costs one more AES block per level and word.
///
/// # Errors
/// As [`keygen`], and [`KeyError::Mismatch`] unless 1 ≤ words ≤ [`MAX_WORDS`].
pub fn keygen_words(
    n: u32,
    words: u32,
    alphas: &[u64],
    betas: &[u64],
    rng: &mut ChaCha20Rng,
) -> Result<[KeyBatch; 2], KeyError> {
    let mut keys = [KeyBatch::empty(PartyId::P0), KeyBatch::empty(PartyId::P1)];
    keygen_into_words(n, words, alphas, betas, rng, &mut keys)?;
    Ok(keys)
}

/// As [`keygen`], writing into `keys` (P0's and P1's batches) and reusing their memory, so a
/// dealer that produces batch after batch allocates once.
///
/// # Errors
/// As [`keygen`]; `keys` must hold P0's batch then P1's ([`KeyError::Mismatch`] otherwise).
pub fn keygen_into(
    n: u32,
    alphas: &[u64],
    betas: &[u64],
    rng: &mut ChaCha20Rng,
    keys: &mut [KeyBatch; 2],
) -> Result<(), KeyError> {
    keygen_into_words(n, 1, alphas, betas, rng, keys)
}

/// As [`keygen_words`], writing into `keys`.
///
/// # Errors
/// As [`keygen_words`] and [`keygen_into`].
pub fn keygen_into_words(
    n: u32,
    words: u32,
    alphas: &[u64],
    betas: &[u64],
    rng: &mut ChaCha20Rng,
    keys: &mut [KeyBatch; 2],
) -> Result<(), KeyError> {
    generate(n, words, alphas, betas, rng, keys, true)
}

/// The scalar generator only (the reference the vector tiles are tested against).
#[cfg(test)]
pub(crate) fn keygen_scalar(
    n: u32,
    alphas: &[u64],
    betas: &[u64],
    rng: &mut ChaCha20Rng,
) -> [KeyBatch; 2] {
    let mut keys = [KeyBatch::empty(PartyId::P0), KeyBatch::empty(PartyId::P1)];
    generate(n, 1, alphas, betas, rng, &mut keys, false).expect("valid inputs");
    keys
}

fn generate(
    n: u32,
    words: u32,
    alphas: &[u64],
    betas: &[u64],
    rng: &mut ChaCha20Rng,
    keys: &mut [KeyBatch; 2],
    vector: bool,
) -> Result<(), KeyError> {
    if !(1..=MAX_WORDS).contains(&words) {
        return Err(KeyError::Mismatch {
            what: "payload words",
            expected: format!("1..={MAX_WORDS}"),
            found: words.to_string(),
        });
    }
    prepare_keygen(Scheme::Dcf, n, words, alphas, betas, keys)?;
    let w = words as usize;
    let len = alphas.len();
    let [k0, k1] = keys;
    let out = GenOut {
        roots: [Scatter::new(&mut k0.roots), Scatter::new(&mut k1.roots)],
        seed_cw: [Scatter::new(&mut k0.seed_cw), Scatter::new(&mut k1.seed_cw)],
        value_cw: [Scatter::new(&mut k0.value_cw), Scatter::new(&mut k1.value_cw)],
        last_cw: [Scatter::new(&mut k0.last_cw), Scatter::new(&mut k1.last_cw)],
        levels: (n - 1) as usize,
        words: w,
        len,
    };
    let aes = fixed_aes();
    let pair = PairOut {
        roots: &out.roots,
        seed_cw: &out.seed_cw,
        value_cw: Some(&out.value_cw),
        last_cw: &out.last_cw,
        levels: out.levels,
        len,
    };
    par_gen(len, rng, |first, count, rng| {
        let betas = &betas[first * w..(first + count) * w];
        let alphas = &alphas[first..first + count];
        if w == 1 && gen_full_tile(vector, n, alphas, betas, first, rng, &pair) {
            return;
        }
        // Literal word counts let the compiler specialise the common payload widths.
        match w {
            1 => gen_group(aes, n, 1, alphas, betas, first, rng, &out),
            2 => gen_group(aes, n, 2, alphas, betas, first, rng, &out),
            _ => gen_group(aes, n, w, alphas, betas, first, rng, &out),
        }
    });
    Ok(())
}

/// Input of the output-word block `q` of a node with seed `seed`: the value tweak in the low
/// bits, `q` folded into the seed bits (distinct inputs for distinct q; q = 0 is `seed | 2`).
#[inline(always)]
fn value_input(seed: u128, q: usize) -> u128 {
    (seed ^ ((q as u128) << 2)) | VALUE_TWEAK
}

struct GenOut {
    roots: [Scatter<u128>; 2],
    seed_cw: [Scatter<u128>; 2],
    value_cw: [Scatter<u64>; 2],
    last_cw: [Scatter<u64>; 2],
    levels: usize,
    words: usize,
    len: usize,
}

impl GenOut {
    /// Write one correction word to both parties' batches.
    ///
    /// # Safety
    /// Index `idx` must belong to the calling group only.
    unsafe fn put<T: Copy>(arrays: &[Scatter<T>; 2], idx: usize, value: T) {
        // SAFETY: forwarded contract.
        unsafe {
            arrays[0].write(idx, value);
            arrays[1].write(idx, value);
        }
    }
}

/// Key generation for up to [`GROUP`] keys, interleaved level by level.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the group's inputs, its place in the batch and the outputs
fn gen_group(
    aes: &FixedKeyAes,
    n: u32,
    w: usize,
    alphas: &[u64],
    betas: &[u64],
    first: usize,
    rng: &mut ChaCha20Rng,
    out: &GenOut,
) {
    let g = alphas.len();
    debug_assert_eq!(w, out.words);
    let mut seeds = [[0u128; 2]; GROUP];
    let mut ctrl = [[0u8, 1u8]; GROUP];
    // Vα per word: the reconstructed output accumulated along α's path.
    let mut on_path = vec![0u64; g * w];
    for (j, s) in seeds.iter_mut().enumerate().take(g) {
        *s = [random_seed(rng), random_seed(rng)];
        for b in 0..2 {
            // SAFETY: key index first + j belongs to this group only.
            unsafe { out.roots[b].write(first + j, s[b]) };
        }
    }
    // Per key and party: left child, right child, then w output-word blocks.
    let per_party = 2 + w;
    let mut blocks = vec![0u128; 2 * per_party * g];
    let value_levels = out.levels * w;
    for i in 0..n - 1 {
        for j in 0..g {
            for b in 0..2 {
                let base = (2 * j + b) * per_party;
                blocks[base] = seeds[j][b];
                blocks[base + 1] = seeds[j][b] | 1;
                for q in 0..w {
                    blocks[base + 2 + q] = value_input(seeds[j][b], q);
                }
            }
        }
        aes.hash_in_place(&mut blocks);
        for j in 0..g {
            // Branch- and index-free in α and the control bits: every choice below is a mask
            // select, so the dealer's timing does not depend on the secret mask.
            let a = bit(alphas[j], n, i);
            let (keep, lose) = (a, 1 - a);
            let child = |b: usize, side: usize| {
                let (l, r) = (blocks[(2 * j + b) * per_party], blocks[(2 * j + b) * per_party + 1]);
                l ^ ((l ^ r) & mask128(side as u8))
            };
            let value = |b: usize, q: usize, side: usize| {
                word(blocks[(2 * j + b) * per_party + 2 + q], side)
            };
            let seed_cw = (child(0, lose) ^ child(1, lose)) & SEED_MASK;
            let t_left = ((child(0, 0) ^ child(1, 0)) as u8 & 1) ^ a as u8 ^ 1;
            let t_right = ((child(0, 1) ^ child(1, 1)) as u8 & 1) ^ a as u8;
            let neg = mask64(ctrl[j][1]); // (−1)^{t1}: negate where all ones
            let signed = |v: u64| (v ^ neg).wrapping_sub(neg);
            for q in 0..w {
                let acc = &mut on_path[j * w + q];
                let target = value(1, q, lose)
                    .wrapping_sub(value(0, q, lose))
                    .wrapping_sub(*acc)
                    .wrapping_add(betas[j * w + q] & mask64(a as u8));
                let value_cw = signed(target);
                *acc = acc
                    .wrapping_add(value(0, q, keep))
                    .wrapping_sub(value(1, q, keep))
                    .wrapping_add(signed(value_cw));
                // SAFETY: index of key first + j at value level i·w + q, owned by this group.
                unsafe {
                    GenOut::put(
                        &out.value_cw,
                        tiled(value_levels, out.len, i as usize * w + q, first + j),
                        value_cw,
                    )
                };
            }
            let t_keep = t_left ^ ((t_left ^ t_right) & keep as u8);
            for b in 0..2 {
                let t = ctrl[j][b];
                seeds[j][b] = (child(b, keep) & SEED_MASK) ^ (seed_cw & mask128(t));
                ctrl[j][b] = (child(b, keep) as u8 & 1) ^ (t & t_keep);
            }
            let idx = tiled(out.levels, out.len, i as usize, first + j);
            // SAFETY: index of key first + j at level i, owned by this group.
            unsafe {
                GenOut::put(&out.seed_cw, idx, seed_cw | t_left as u128 | (t_right as u128) << 1)
            };
        }
    }
    // Last level: output words only, one correction per child and word.
    for j in 0..g {
        for b in 0..2 {
            for q in 0..w {
                blocks[(2 * j + b) * w + q] = value_input(seeds[j][b], q);
            }
        }
    }
    aes.hash_in_place(&mut blocks[..2 * w * g]);
    for j in 0..g {
        let a = bit(alphas[j], n, n - 1);
        let neg = mask64(ctrl[j][1]);
        for side in 0..2 {
            for q in 0..w {
                let w0 = word(blocks[2 * j * w + q], side);
                let w1 = word(blocks[(2 * j + 1) * w + q], side);
                // β where side < α's last bit (side 0 and a = 1), else 0.
                let target = betas[j * w + q] & mask64(((side ^ 1) & a) as u8);
                let cw = target.wrapping_sub(on_path[j * w + q]).wrapping_sub(w0).wrapping_add(w1);
                let cw = (cw ^ neg).wrapping_sub(neg);
                // SAFETY: as above.
                unsafe {
                    GenOut::put(&out.last_cw, tiled(2 * w, out.len, side * w + q, first + j), cw)
                };
            }
        }
    }
}

/// Party: evaluate every key at its input, `out[k] = eval(keys[k], xs[k])`, on all threads. For
/// a w-word payload, `out[k·w + q]` is word q of key k's output.
///
/// # Errors
/// [`KeyError::BatchLength`] when `xs` or `out` do not match the batch, [`KeyError::Domain`]
/// when an input does not fit in n bits, [`KeyError::Mismatch`] for non-DCF keys.
pub fn eval(keys: &KeyBatch, xs: &[u64], out: &mut [u64]) -> Result<(), KeyError> {
    check_batch(keys, xs, out)?;
    eval_range(keys, 0, xs, out)
}

/// Party: evaluate keys `first..first + xs.len()` of the batch — a part of it, in place, without
/// copying key material (how the scheduler splits a batch across devices). `first` must start a
/// tile ([`TILE`](super::keys::TILE) keys).
///
/// # Errors
/// As [`eval`]; [`check_range`]'s errors.
pub fn eval_range(
    keys: &KeyBatch,
    first: usize,
    xs: &[u64],
    out: &mut [u64],
) -> Result<(), KeyError> {
    keys.expect(Scheme::Dcf, keys.party, keys.n)?;
    check_range(keys, first, xs, out)?;
    let aes = fixed_aes();
    if keys.words > 1 {
        let w = keys.words as usize;
        out.par_chunks_mut(GROUP * w).zip(xs.par_chunks(GROUP)).enumerate().for_each(
            |(c, (out, xs))| {
                let at = first + c * GROUP;
                if !words_tile(aes, keys, at, xs, out) {
                    eval_group_words(aes, keys, at, xs, out);
                }
            },
        );
        return Ok(());
    }
    eval_tiles(keys, first, xs, out, true, eval_group);
    Ok(())
}

/// The portable evaluator (any CPU): the reference the vectorised tiles are tested against.
#[cfg(test)]
pub(crate) fn eval_scalar(keys: &KeyBatch, xs: &[u64], out: &mut [u64]) {
    eval_tiles(keys, 0, xs, out, false, eval_group);
}

/// Check a part `first..first + xs.len()` of a batch (DCF or DPF): it starts a tile and ends at a
/// tile boundary or the batch's end (so each of its tiles keeps its layout), lies inside the
/// batch, `out` has `xs.len()` × words entries, and every input fits.
///
/// # Errors
/// [`KeyError::BatchLength`] for a misplaced range or output, [`KeyError::Domain`].
pub fn check_range(keys: &KeyBatch, first: usize, xs: &[u64], out: &[u64]) -> Result<(), KeyError> {
    let tile = super::keys::TILE;
    let end = first.checked_add(xs.len()).filter(|&e| e <= keys.len);
    let aligned = end.is_some_and(|e| e == keys.len || e.is_multiple_of(tile));
    if !first.is_multiple_of(tile) || !aligned {
        return Err(KeyError::BatchLength {
            what: "key range (whole tiles, or up to the batch's end)",
            expected: keys.len,
            found: first.saturating_add(xs.len()),
        });
    }
    let expected = xs.len() * keys.words as usize;
    if out.len() != expected {
        return Err(KeyError::BatchLength { what: "outputs", expected, found: out.len() });
    }
    check_domain("input", xs, keys.n)
}

pub(crate) fn check_batch(keys: &KeyBatch, xs: &[u64], out: &[u64]) -> Result<(), KeyError> {
    if xs.len() != keys.len {
        return Err(KeyError::BatchLength { what: "inputs", expected: keys.len, found: xs.len() });
    }
    let expected = keys.len * keys.words as usize;
    if out.len() != expected {
        return Err(KeyError::BatchLength { what: "outputs", expected, found: out.len() });
    }
    check_domain("input", xs, keys.n)
}

/// Evaluation of up to [`GROUP`] consecutive keys, interleaved level by level.
fn eval_group(aes: &FixedKeyAes, keys: &KeyBatch, first: usize, xs: &[u64], out: &mut [u64]) {
    let (g, n, len) = (xs.len(), keys.n, keys.len);
    let party = keys.party.index() as u128;
    // A node is its seed with its control bit in bit 0 (bit 1 is ignored).
    let mut nodes = [0u128; GROUP];
    // Input bits still to read, most significant first, at the top of the word.
    let mut bits = [0u64; GROUP];
    for j in 0..g {
        nodes[j] = keys.roots[first + j] | party;
        bits[j] = xs[j] << (64 - n);
    }
    let mut acc = [0u64; GROUP];
    let mut blocks = [0u128; 2 * GROUP];
    for i in 0..(n - 1) as usize {
        for j in 0..g {
            let seed = nodes[j] & SEED_MASK;
            blocks[j] = seed | (bits[j] >> 63) as u128;
            blocks[GROUP + j] = seed | VALUE_TWEAK;
        }
        if g == GROUP {
            aes.hash_in_place(&mut blocks);
        } else {
            aes.hash_in_place(&mut blocks[..g]);
            aes.hash_in_place(&mut blocks[GROUP..GROUP + g]);
        }
        let level = tiled((n - 1) as usize, len, i, first);
        let seed_cws = &keys.seed_cw[level..level + g];
        let value_cws = &keys.value_cw[level..level + g];
        for j in 0..g {
            let side = (bits[j] >> 63) as u32;
            bits[j] <<= 1;
            let t = nodes[j] as u8 & 1;
            acc[j] = acc[j]
                .wrapping_add(word(blocks[GROUP + j], side as usize))
                .wrapping_add(value_cws[j] & mask64(t));
            // Correction with this side's control-bit correction moved into bit 0: one XOR
            // updates seed and control bit together.
            let cw = seed_cws[j];
            let cw_side = (cw & SEED_MASK) | ((cw >> side) & 1);
            nodes[j] = blocks[j] ^ (cw_side & mask128(t));
        }
    }
    for j in 0..g {
        blocks[j] = (nodes[j] & SEED_MASK) | VALUE_TWEAK;
    }
    aes.hash_in_place(&mut blocks[..g]);
    for j in 0..g {
        let side = (bits[j] >> 63) as usize;
        let last = keys.last_cw[tiled(2, len, side, first + j)];
        let total = acc[j]
            .wrapping_add(word(blocks[j], side))
            .wrapping_add(last & mask64(nodes[j] as u8 & 1));
        out[j] = if party == 0 { total } else { total.wrapping_neg() };
    }
}

/// Evaluation of up to [`GROUP`] consecutive keys with a multi-word payload.
/// A full tile of a 2-, 3- or 4-word batch on a VAES path (AVX-512 or AVX2); false when the tile
/// must go to the scalar evaluator (another width, a partial tile, no VAES).
#[allow(unused_variables)] // everything is unused on other architectures
fn words_tile(
    aes: &FixedKeyAes,
    keys: &KeyBatch,
    first: usize,
    xs: &[u64],
    out: &mut [u64],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use super::aes::AesImpl;
        if xs.len() != GROUP {
            return false;
        }
        let rk = aes.round_keys();
        // SAFETY: Vaes512 implies AVX-512F and VAES, Vaes256 AVX2 and VAES; `first` starts a
        // full tile (the range starts on a tile and groups are tile-sized) of a batch with this
        // many words.
        unsafe {
            match (aes.implementation(), keys.words) {
                (AesImpl::Vaes512, 2) => super::simd::dcf_words_tile::<2>(rk, keys, first, xs, out),
                (AesImpl::Vaes512, 3) => super::simd::dcf_words_tile::<3>(rk, keys, first, xs, out),
                (AesImpl::Vaes512, 4) => super::simd::dcf_words_tile::<4>(rk, keys, first, xs, out),
                (AesImpl::Vaes256, 2) => {
                    super::simd256::dcf_words_tile::<2>(rk, keys, first, xs, out)
                }
                (AesImpl::Vaes256, 3) => {
                    super::simd256::dcf_words_tile::<3>(rk, keys, first, xs, out)
                }
                (AesImpl::Vaes256, 4) => {
                    super::simd256::dcf_words_tile::<4>(rk, keys, first, xs, out)
                }
                _ => return false,
            }
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

fn eval_group_words(aes: &FixedKeyAes, keys: &KeyBatch, first: usize, xs: &[u64], out: &mut [u64]) {
    let (g, n, len, w) = (xs.len(), keys.n, keys.len, keys.words as usize);
    let levels = (n - 1) as usize;
    let party = keys.party.index() as u128;
    let mut nodes: Vec<u128> = (0..g).map(|j| keys.roots[first + j] | party).collect();
    let mut acc = vec![0u64; g * w];
    // Per key: the chosen child, then w output-word blocks.
    let mut blocks = vec![0u128; g * (1 + w)];
    for i in 0..n {
        let last = i == n - 1;
        let per_key = if last { w } else { 1 + w };
        for j in 0..g {
            let seed = nodes[j] & SEED_MASK;
            let base = j * per_key;
            if !last {
                blocks[base] = seed | bit(xs[j], n, i) as u128;
            }
            for q in 0..w {
                blocks[base + per_key - w + q] = value_input(seed, q);
            }
        }
        aes.hash_in_place(&mut blocks[..g * per_key]);
        for j in 0..g {
            let side = bit(xs[j], n, i);
            let t = nodes[j] as u8 & 1;
            let base = j * per_key;
            for q in 0..w {
                let cw = if last {
                    keys.last_cw[tiled(2 * w, len, side * w + q, first + j)]
                } else {
                    keys.value_cw[tiled(levels * w, len, i as usize * w + q, first + j)]
                };
                let v = word(blocks[base + per_key - w + q], side);
                acc[j * w + q] = acc[j * w + q].wrapping_add(v).wrapping_add(cw & mask64(t));
            }
            if !last {
                let cw = keys.seed_cw[tiled(levels, len, i as usize, first + j)];
                let cw_side = (cw & SEED_MASK) | ((cw >> side) & 1);
                nodes[j] = blocks[base] ^ (cw_side & mask128(t));
            }
        }
    }
    for (y, a) in out.iter_mut().zip(acc) {
        *y = if party == 0 { a } else { a.wrapping_neg() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prg::insecure_seeded_rng;
    use rand::Rng;

    #[test]
    fn multi_word_vector_tiles_equal_the_scalar_evaluator_per_party() {
        let mut rng = insecure_seeded_rng(9);
        for words in 2u32..=5 {
            for n in [1u32, 2, 17, 26, 64] {
                let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
                for len in [32usize, 33, 95] {
                    let alphas: Vec<u64> = (0..len).map(|_| rng.random::<u64>() & mask).collect();
                    let betas: Vec<u64> = (0..len * words as usize).map(|_| rng.random()).collect();
                    let xs: Vec<u64> =
                        alphas.iter().map(|a| (a ^ (rng.random::<u64>() & 7)) & mask).collect();
                    let keys = keygen_words(n, words, &alphas, &betas, &mut rng).unwrap();
                    let w = words as usize;
                    let mut sum = vec![0u64; len * w];
                    for k in &keys {
                        let (mut fast, mut slow) = (vec![0; len * w], vec![0; len * w]);
                        eval(k, &xs, &mut fast).unwrap();
                        for (g, (out, xs)) in
                            slow.chunks_mut(GROUP * w).zip(xs.chunks(GROUP)).enumerate()
                        {
                            eval_group_words(fixed_aes(), k, g * GROUP, xs, out);
                        }
                        assert_eq!(fast, slow, "words={words} n={n} len={len}");
                        for (s, f) in sum.iter_mut().zip(&fast) {
                            *s = s.wrapping_add(*f);
                        }
                    }
                    for i in 0..len {
                        for q in 0..w {
                            let want = if xs[i] < alphas[i] { betas[i * w + q] } else { 0 };
                            assert_eq!(sum[i * w + q], want, "words={words} n={n} key {i}");
                        }
                    }
                }
            }
        }
    }
}
