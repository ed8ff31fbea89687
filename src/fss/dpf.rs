//! Distributed point function (Boyle–Gilboa–Ishai, CCS'16, Fig. 1) over Z_2^64.
//!
//! Keys for `f(x) = β·[x = α]` on n-bit inputs, n ∈ 1..=64: `eval(k0, x) + eval(k1, x) = f(x)`
//! (mod 2^64), each key alone pseudorandom.
//!
//! **Construction.** The GGM tree of the [module docs](super) with **early termination** by one
//! level: a node at depth n − 1 expands into one block holding both leaves' 64-bit output words,
//! and the final correction has one word per leaf (β placed at α's last bit).
//!
//! **Cost.** Point evaluation: n AES blocks (n − 1 seeds, one output block). Full-domain
//! evaluation of all 2^n points: 2^n − 2 + 2^(n−1) blocks. Key generation: 2 blocks per level and
//! party, 1 at the last level. Key size per party: `16 + 16(n − 1) + 16` bytes (1,040 B at n = 64;
//! the BGI yardstick (docs/protocols.md) is n·(128 + 2) + 128 + 64 bits = 1,064 B).
//!
//! **What a key holder learns.** Nothing about α or β (every correction is masked by the other
//! party's on-path PRG output).

use rayon::prelude::*;

use super::aes::{FixedKeyAes, fixed_aes};
use super::dcf::check_batch;
use super::keys::{KeyBatch, Scheme, prepare_keygen, tiled};
use super::tree::{
    GROUP, PairOut, SEED_MASK, Scatter, VALUE_TWEAK, bit, eval_tiles, gen_full_tile, mask64,
    mask128, par_gen, random_seed, word,
};
use crate::fss::KeyError;
use crate::party::PartyId;
use crate::prg::ChaCha20Rng;

/// Largest input width for full-domain evaluation (2^24 outputs = 128 MiB per key).
pub const MAX_EVAL_ALL_BITS: u32 = 24;

/// Dealer: DPF keys for `β_k·[x = α_k]` on n-bit inputs.
///
/// # Errors
/// [`KeyError::Width`], [`KeyError::BatchLength`], [`KeyError::Domain`] as [`dcf::keygen`](super::dcf::keygen).
pub fn keygen(
    n: u32,
    alphas: &[u64],
    betas: &[u64],
    rng: &mut ChaCha20Rng,
) -> Result<[KeyBatch; 2], KeyError> {
    let mut keys = [KeyBatch::empty(PartyId::P0), KeyBatch::empty(PartyId::P1)];
    keygen_into(n, alphas, betas, rng, &mut keys)?;
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
    generate(n, alphas, betas, rng, keys, true)
}

/// The scalar generator only (the reference the vector tiles are tested against).
/// Check a lookup's arguments: a DPF batch, a table of `2^b` entries, one index and one output
/// per key.
///
/// # Errors
/// [`KeyError::Mismatch`] for non-DPF keys or b above [`MAX_EVAL_ALL_BITS`],
/// [`KeyError::BatchLength`] for the table or batch lengths.
pub fn check_lookup(
    dpf_keys: &KeyBatch,
    table: &[u64],
    masked: &[u64],
    out: &[u64],
) -> Result<(), KeyError> {
    check_table(dpf_keys, table)?;
    if masked.len() != dpf_keys.len() || out.len() != masked.len() {
        return Err(KeyError::BatchLength {
            what: "masked indices",
            expected: dpf_keys.len(),
            found: masked.len(),
        });
    }
    Ok(())
}

/// The keys are DPF keys on at most [`MAX_EVAL_ALL_BITS`] bits and the table has 2^b entries.
fn check_table(dpf_keys: &KeyBatch, table: &[u64]) -> Result<(), KeyError> {
    let b = dpf_keys.input_bits();
    dpf_keys.expect(Scheme::Dpf, dpf_keys.party(), b)?;
    if b > MAX_EVAL_ALL_BITS {
        return Err(KeyError::Mismatch {
            what: "lookup index bits",
            expected: format!("≤ {MAX_EVAL_ALL_BITS}"),
            found: b.to_string(),
        });
    }
    let domain = 1usize << b;
    if table.len() != domain {
        return Err(KeyError::BatchLength { what: "table", expected: domain, found: table.len() });
    }
    Ok(())
}

/// [`check_lookup`] for the keys `first..first + masked.len()` of a batch: the range is whole
/// tiles or reaches the batch's end (as [`check_range`](super::dcf::check_range)).
///
/// # Errors
/// As [`check_lookup`] and [`check_range`](super::dcf::check_range).
pub fn check_lookup_range(
    dpf_keys: &KeyBatch,
    first: usize,
    table: &[u64],
    masked: &[u64],
    out: &[u64],
) -> Result<(), KeyError> {
    check_table(dpf_keys, table)?;
    let b = dpf_keys.input_bits();
    // Indices are used mod 2^b, so only the range and the output length are checked here.
    let wide: Vec<u64> = masked.iter().map(|&x| x & ((1u64 << b) - 1)).collect();
    super::dcf::check_range(dpf_keys, first, &wide, out)
}

/// Lookup tables on the CPU (the reference for the GPU kernel): for DPF keys with α = r mod 2^b
/// and β = 1, `out[k]` is this party's share of `table[(masked[k] − r) mod 2^b]`, computed as
/// `Σ_j T[(x̂ − j) mod 2^b]·e(j)` over the full-domain expansion `e` (the LUT gate of
/// `mpc::gates::lut`).
///
/// # Errors
/// As [`check_lookup`].
pub fn lookup(
    dpf_keys: &KeyBatch,
    table: &[u64],
    masked: &[u64],
    out: &mut [u64],
) -> Result<(), KeyError> {
    check_lookup(dpf_keys, table, masked, out)?;
    lookup_range(dpf_keys, 0, table, masked, out)
}

/// [`lookup`] for the keys `first..first + masked.len()` of a batch, in place (no copy of the
/// keys: the scheduler's split).
///
/// # Errors
/// [`check_lookup_range`]'s errors.
pub fn lookup_range(
    dpf_keys: &KeyBatch,
    first: usize,
    table: &[u64],
    masked: &[u64],
    out: &mut [u64],
) -> Result<(), KeyError> {
    check_lookup_range(dpf_keys, first, table, masked, out)?;
    let b = dpf_keys.input_bits();
    let domain = 1usize << b;
    let mut onehot = vec![0u64; domain * masked.len()];
    let aes = fixed_aes();
    onehot
        .par_chunks_mut(domain)
        .enumerate()
        .for_each(|(k, e)| eval_all_one(aes, dpf_keys, first + k, e));
    for ((y, &x), e) in out.iter_mut().zip(masked).zip(onehot.chunks_exact(domain)) {
        let x = (x as usize) & (domain - 1);
        // Σ_j T[(x̂ − j) mod 2^b]·e(j)
        let mut acc = 0u64;
        for (j, &ej) in e.iter().enumerate() {
            acc = acc.wrapping_add(table[(x.wrapping_sub(j)) & (domain - 1)].wrapping_mul(ej));
        }
        *y = acc;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) fn keygen_scalar(
    n: u32,
    alphas: &[u64],
    betas: &[u64],
    rng: &mut ChaCha20Rng,
) -> [KeyBatch; 2] {
    let mut keys = [KeyBatch::empty(PartyId::P0), KeyBatch::empty(PartyId::P1)];
    generate(n, alphas, betas, rng, &mut keys, false).expect("valid inputs");
    keys
}

fn generate(
    n: u32,
    alphas: &[u64],
    betas: &[u64],
    rng: &mut ChaCha20Rng,
    keys: &mut [KeyBatch; 2],
    vector: bool,
) -> Result<(), KeyError> {
    prepare_keygen(Scheme::Dpf, n, 1, alphas, betas, keys)?;
    let len = alphas.len();
    let [k0, k1] = keys;
    let out = GenOut {
        roots: [Scatter::new(&mut k0.roots), Scatter::new(&mut k1.roots)],
        seed_cw: [Scatter::new(&mut k0.seed_cw), Scatter::new(&mut k1.seed_cw)],

        last_cw: [Scatter::new(&mut k0.last_cw), Scatter::new(&mut k1.last_cw)],
        levels: (n - 1) as usize,
        len,
    };
    let aes = fixed_aes();
    let pair = PairOut {
        roots: &out.roots,
        seed_cw: &out.seed_cw,
        value_cw: None,
        last_cw: &out.last_cw,
        levels: out.levels,
        len,
    };
    par_gen(len, rng, |first, count, rng| {
        let (alphas, betas) = (&alphas[first..first + count], &betas[first..first + count]);
        if gen_full_tile(vector, n, alphas, betas, first, rng, &pair) {
            return;
        }
        gen_group(aes, n, alphas, betas, first, rng, &out)
    });
    Ok(())
}

struct GenOut {
    roots: [Scatter<u128>; 2],
    seed_cw: [Scatter<u128>; 2],
    last_cw: [Scatter<u64>; 2],
    levels: usize,
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

fn gen_group(
    aes: &FixedKeyAes,
    n: u32,
    alphas: &[u64],
    betas: &[u64],
    first: usize,
    rng: &mut ChaCha20Rng,
    out: &GenOut,
) {
    let g = alphas.len();
    let mut seeds = [[0u128; 2]; GROUP];
    let mut ctrl = [[0u8, 1u8]; GROUP];
    for (j, s) in seeds.iter_mut().enumerate().take(g) {
        *s = [random_seed(rng), random_seed(rng)];
        for b in 0..2 {
            // SAFETY: key index first + j belongs to this group only.
            unsafe { out.roots[b].write(first + j, s[b]) };
        }
    }
    let mut blocks = [0u128; 4 * GROUP];
    for i in 0..n - 1 {
        for j in 0..g {
            for b in 0..2 {
                blocks[4 * j + 2 * b] = seeds[j][b];
                blocks[4 * j + 2 * b + 1] = seeds[j][b] | 1;
            }
        }
        aes.hash_in_place(&mut blocks[..4 * g]);
        for j in 0..g {
            let a = bit(alphas[j], n, i);
            let (keep, lose) = (a, 1 - a);
            // Mask selects, no branch or index on α or the control bits (as the DCF's).
            let child = |b: usize, side: usize| {
                let (l, r) = (blocks[4 * j + 2 * b], blocks[4 * j + 2 * b + 1]);
                l ^ ((l ^ r) & mask128(side as u8))
            };
            let seed_cw = (child(0, lose) ^ child(1, lose)) & SEED_MASK;
            let t_left = ((child(0, 0) ^ child(1, 0)) as u8 & 1) ^ a as u8 ^ 1;
            let t_right = ((child(0, 1) ^ child(1, 1)) as u8 & 1) ^ a as u8;
            let t_keep = t_left ^ ((t_left ^ t_right) & keep as u8);
            for b in 0..2 {
                let t = ctrl[j][b];
                seeds[j][b] = (child(b, keep) & SEED_MASK) ^ (seed_cw & mask128(t));
                ctrl[j][b] = (child(b, keep) as u8 & 1) ^ (t & t_keep);
            }
            // SAFETY: index of key first + j at level i, owned by this group.
            unsafe {
                let idx = tiled(out.levels, out.len, i as usize, first + j);
                GenOut::put(&out.seed_cw, idx, seed_cw | t_left as u128 | (t_right as u128) << 1);
            }
        }
    }
    for j in 0..g {
        for b in 0..2 {
            blocks[2 * j + b] = seeds[j][b] | VALUE_TWEAK;
        }
    }
    aes.hash_in_place(&mut blocks[..2 * g]);
    for j in 0..g {
        let a = bit(alphas[j], n, n - 1);
        let neg = mask64(ctrl[j][1]);
        for side in 0..2 {
            let target = betas[j] & mask64((side ^ a ^ 1) as u8);
            let cw = target
                .wrapping_sub(word(blocks[2 * j], side))
                .wrapping_add(word(blocks[2 * j + 1], side));
            // SAFETY: as above.
            unsafe {
                GenOut::put(
                    &out.last_cw,
                    tiled(2, out.len, side, first + j),
                    (cw ^ neg).wrapping_sub(neg),
                )
            };
        }
    }
}

/// Party: evaluate every key at its input, `out[k] = eval(keys[k], xs[k])`, on all threads.
///
/// # Errors
/// [`KeyError::BatchLength`], [`KeyError::Domain`], [`KeyError::Mismatch`] for non-DPF keys.
pub fn eval(keys: &KeyBatch, xs: &[u64], out: &mut [u64]) -> Result<(), KeyError> {
    check_batch(keys, xs, out)?;
    eval_range(keys, 0, xs, out)
}

/// Party: evaluate keys `first..first + xs.len()` in place (see [`dcf::eval_range`](super::dcf::eval_range)).
///
/// # Errors
/// As [`eval`]; [`dcf::check_range`](super::dcf::check_range)'s errors.
pub fn eval_range(
    keys: &KeyBatch,
    first: usize,
    xs: &[u64],
    out: &mut [u64],
) -> Result<(), KeyError> {
    keys.expect(Scheme::Dpf, keys.party, keys.n)?;
    super::dcf::check_range(keys, first, xs, out)?;
    eval_tiles(keys, first, xs, out, true, eval_group);
    Ok(())
}

/// The portable evaluator (any CPU): the reference the vectorised tiles are tested against.
#[cfg(test)]
pub(crate) fn eval_scalar(keys: &KeyBatch, xs: &[u64], out: &mut [u64]) {
    eval_tiles(keys, 0, xs, out, false, eval_group);
}

fn eval_group(aes: &FixedKeyAes, keys: &KeyBatch, first: usize, xs: &[u64], out: &mut [u64]) {
    let (g, n, len) = (xs.len(), keys.n, keys.len);
    let party = keys.party.index() as u8;
    let mut seeds = [0u128; GROUP];
    seeds[..g].copy_from_slice(&keys.roots[first..first + g]);
    let mut ctrl = [party; GROUP];
    let mut blocks = [0u128; GROUP];
    for i in 0..n - 1 {
        for j in 0..g {
            blocks[j] = seeds[j] | bit(xs[j], n, i) as u128;
        }
        aes.hash_in_place(&mut blocks[..g]);
        let level = tiled((n - 1) as usize, len, i as usize, first);
        for (j, &cw) in keys.seed_cw[level..level + g].iter().enumerate() {
            let side = bit(xs[j], n, i);
            let t = ctrl[j];
            seeds[j] = (blocks[j] & SEED_MASK) ^ (cw & SEED_MASK & mask128(t));
            ctrl[j] = (blocks[j] as u8 & 1) ^ (t & (cw >> side) as u8 & 1);
        }
    }
    for j in 0..g {
        blocks[j] = seeds[j] | VALUE_TWEAK;
    }
    aes.hash_in_place(&mut blocks[..g]);
    for j in 0..g {
        let side = bit(xs[j], n, n - 1);
        let total = word(blocks[j], side)
            .wrapping_add(keys.last_cw[tiled(2, len, side, first + j)] & mask64(ctrl[j]));
        out[j] = if party == 0 { total } else { total.wrapping_neg() };
    }
}

/// Party: full-domain evaluation. `out[k·2^n + x] = eval(keys[k], x)` for every x in 0..2^n.
///
/// # Errors
/// [`KeyError::Mismatch`] for non-DPF keys or n above [`MAX_EVAL_ALL_BITS`],
/// [`KeyError::BatchLength`] when `out` is not `len·2^n` long.
pub fn eval_all(keys: &KeyBatch, out: &mut [u64]) -> Result<(), KeyError> {
    keys.expect(Scheme::Dpf, keys.party, keys.n)?;
    if keys.n > MAX_EVAL_ALL_BITS {
        return Err(KeyError::Mismatch {
            what: "input width for full-domain evaluation",
            expected: format!("≤ {MAX_EVAL_ALL_BITS}"),
            found: keys.n.to_string(),
        });
    }
    let domain = 1usize << keys.n;
    if out.len() != keys.len * domain {
        return Err(KeyError::BatchLength {
            what: "outputs",
            expected: keys.len * domain,
            found: out.len(),
        });
    }
    let aes = fixed_aes();
    out.par_chunks_mut(domain.max(1))
        .enumerate()
        .for_each(|(k, out)| eval_all_one(aes, keys, k, out));
    Ok(())
}

fn eval_all_one(aes: &FixedKeyAes, keys: &KeyBatch, k: usize, out: &mut [u64]) {
    let (n, len) = (keys.n, keys.len);
    let party = keys.party.index() as u8;
    // Breadth first: `nodes` holds (seed | control bit) of every node of the current depth.
    let mut nodes = vec![keys.roots[k] | party as u128];
    let mut blocks = Vec::with_capacity(1 << (n - 1));
    for i in 0..n - 1 {
        let cw = keys.seed_cw[tiled((n - 1) as usize, len, i as usize, k)];
        blocks.clear();
        for &node in &nodes {
            let s = node & SEED_MASK;
            blocks.push(s);
            blocks.push(s | 1);
        }
        aes.hash_in_place(&mut blocks);
        nodes = blocks
            .iter()
            .enumerate()
            .map(|(c, &child)| {
                let t = nodes[c / 2] as u8 & 1;
                let seed = (child & SEED_MASK) ^ (cw & SEED_MASK & mask128(t));
                seed | ((child as u8 & 1) ^ (t & (cw >> (c & 1)) as u8 & 1)) as u128
            })
            .collect();
    }
    blocks.clear();
    blocks.extend(nodes.iter().map(|&node| (node & SEED_MASK) | VALUE_TWEAK));
    aes.hash_in_place(&mut blocks);
    let last = [keys.last_cw[tiled(2, len, 0, k)], keys.last_cw[tiled(2, len, 1, k)]];
    for (j, (&block, &node)) in blocks.iter().zip(&nodes).enumerate() {
        let t = mask64(node as u8 & 1);
        for side in 0..2 {
            let total = word(block, side).wrapping_add(last[side] & t);
            out[2 * j + side] = if party == 0 { total } else { total.wrapping_neg() };
        }
    }
}
