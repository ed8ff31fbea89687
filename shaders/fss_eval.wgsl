// Batched DCF, DPF and one-bit comparison evaluation: one invocation per key, reading the exact bytes of the CPU's
// `KeyBatch` (tiled struct-of-arrays layout, see src/fss/keys.rs). Prepended on the host with
// the shape constants, u64.wgsl and aes.wgsl. Outputs are bit-identical to the CPU evaluator.

struct FssParams {
    // Input width n (1..=64).
    n: u32,
    // Keys in this dispatch (a run of whole tiles of the batch, or its end).
    len: u32,
    // 0 or 1.
    party: u32,
    // Invocations per row of the 2-D dispatch grid.
    row: u32,
    // `lut_eval` only: 0 accumulates the table lookup, 1 writes the full domain (DPF eval-all).
    mode: u32,
    // `dcf_eval_words` only: 64-bit output words per key (1..=MAX_WORDS).
    words: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> aes: AesParams;
@group(0) @binding(1) var<storage, read> aes_tables: array<u32>;
@group(0) @binding(2) var<uniform> params: FssParams;
@group(0) @binding(3) var<storage, read> roots: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> seed_cw: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> value_cw: array<vec2<u32>>;
@group(0) @binding(6) var<storage, read> last_cw: array<vec2<u32>>;
@group(0) @binding(7) var<storage, read> xs: array<vec2<u32>>;
@group(0) @binding(8) var<storage, read_write> out: array<vec2<u32>>;

const TILE: u32 = 32u;
// WORKGROUP, the invocations per workgroup, is prepended by the host with AES_COPY_BITS
// (src/gpu/shaders.rs, FssShape).

// Index of (level, key) in a tiled array with `levels` entries per key (keys.rs::tiled).
fn tiled(levels: u32, len: u32, level: u32, key: u32) -> u32 {
    let tile_start = key / TILE * TILE;
    let width = min(TILE, len - tile_start);
    return tile_start * levels + level * width + (key - tile_start);
}

// Bit i (0 = most significant) of the n-bit value x.
fn input_bit(x: vec2<u32>, n: u32, i: u32) -> u32 {
    let p = n - 1u - i;
    if (p >= 32u) {
        return (x.y >> (p - 32u)) & 1u;
    }
    return (x.x >> p) & 1u;
}

fn with_low_bits(block: vec4<u32>, bits: u32) -> vec4<u32> {
    return vec4<u32>((block.x & ~3u) | bits, block.y, block.z, block.w);
}

fn output_word(block: vec4<u32>, side: u32) -> vec2<u32> {
    return select(block.xy, block.zw, side == 1u);
}

// Child seed correction with this side's control-bit correction moved into bit 0.
fn corrected(child: vec4<u32>, cw: vec4<u32>, side: u32, t: u32) -> vec4<u32> {
    if (t == 0u) {
        return child;
    }
    let cw_side = vec4<u32>((cw.x & ~3u) | ((cw.x >> side) & 1u), cw.y, cw.z, cw.w);
    return child ^ cw_side;
}

fn key_index(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * params.row;
}

@compute @workgroup_size(WORKGROUP)
fn dcf_eval(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) local: u32) {
    load_aes_tables(local, WORKGROUP);
    let k = key_index(gid);
    if (k >= params.len) {
        return;
    }
    let n = params.n;
    let levels = n - 1u;
    let x = xs[k];
    var node = roots[k] | vec4<u32>(params.party, 0u, 0u, 0u);
    var acc = vec2<u32>(0u, 0u);
    for (var i = 0u; i < levels; i++) {
        let side = input_bit(x, n, i);
        let t = node.x & 1u;
        let child = mmo(with_low_bits(node, side));
        let words = mmo(with_low_bits(node, 2u));
        let idx = tiled(levels, params.len, i, k);
        acc = add64(acc, output_word(words, side));
        if (t == 1u) {
            acc = add64(acc, value_cw[idx]);
        }
        node = corrected(child, seed_cw[idx], side, t);
    }
    let side = input_bit(x, n, levels);
    let words = mmo(with_low_bits(node, 2u));
    var total = add64(acc, output_word(words, side));
    if ((node.x & 1u) == 1u) {
        total = add64(total, last_cw[tiled(2u, params.len, side, k)]);
    }
    if (params.party == 1u) {
        total = neg64(total);
    }
    out[k] = total;
}

// Most output words of a DCF payload (keys.rs::MAX_WORDS).
const MAX_WORDS: u32 = 16u;

// Input of output-word block q of a node (dcf.rs::value_input): the value tweak 2 in the low
// bits and q folded into seed bits 2..5 (q = 0 is the one-word kernel's block).
fn value_block(node: vec4<u32>, q: u32) -> vec4<u32> {
    return vec4<u32>(((node.x & ~3u) ^ (q << 2u)) | 2u, node.y, node.z, node.w);
}

// DCF with a w-word payload (ReLU's 2 words, a degree-d spline's d + 1): one more AES block per
// level and word. `value_cw` is tiled with (n − 1)·w entries per key (word q of level i at
// i·w + q), `last_cw` with 2w (word q of child σ at σ·w + q); out[k·w + q] is word q of key k.
@compute @workgroup_size(WORKGROUP)
fn dcf_eval_words(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) local: u32) {
    load_aes_tables(local, WORKGROUP);
    let k = key_index(gid);
    if (k >= params.len) {
        return;
    }
    let n = params.n;
    let w = params.words;
    let levels = n - 1u;
    let x = xs[k];
    var node = roots[k] | vec4<u32>(params.party, 0u, 0u, 0u);
    var acc: array<vec2<u32>, MAX_WORDS>;
    for (var q = 0u; q < w; q++) {
        acc[q] = vec2<u32>(0u, 0u);
    }
    for (var i = 0u; i < levels; i++) {
        let side = input_bit(x, n, i);
        let t = node.x & 1u;
        for (var q = 0u; q < w; q++) {
            var v = output_word(mmo(value_block(node, q)), side);
            if (t == 1u) {
                v = add64(v, value_cw[tiled(levels * w, params.len, i * w + q, k)]);
            }
            acc[q] = add64(acc[q], v);
        }
        let child = mmo(with_low_bits(node, side));
        node = corrected(child, seed_cw[tiled(levels, params.len, i, k)], side, t);
    }
    let side = input_bit(x, n, levels);
    let t = node.x & 1u;
    for (var q = 0u; q < w; q++) {
        var total = add64(acc[q], output_word(mmo(value_block(node, q)), side));
        if (t == 1u) {
            total = add64(total, last_cw[tiled(2u * w, params.len, side * w + q, k)]);
        }
        if (params.party == 1u) {
            total = neg64(total);
        }
        out[k * w + q] = total;
    }
}

@compute @workgroup_size(WORKGROUP)
fn dpf_eval(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) local: u32) {
    load_aes_tables(local, WORKGROUP);
    let k = key_index(gid);
    if (k >= params.len) {
        return;
    }
    let n = params.n;
    let levels = n - 1u;
    let x = xs[k];
    var node = roots[k] | vec4<u32>(params.party, 0u, 0u, 0u);
    for (var i = 0u; i < levels; i++) {
        let side = input_bit(x, n, i);
        let t = node.x & 1u;
        let child = mmo(with_low_bits(node, side));
        node = corrected(child, seed_cw[tiled(levels, params.len, i, k)], side, t);
    }
    let side = input_bit(x, n, levels);
    let words = mmo(with_low_bits(node, 2u));
    var total = output_word(words, side);
    if ((node.x & 1u) == 1u) {
        total = add64(total, last_cw[tiled(2u, params.len, side, k)]);
    }
    if (params.party == 1u) {
        total = neg64(total);
    }
    out[k] = total;
}

// One-bit comparison keys (src/fss/cmp.rs): one hash per level, H(x) = mmo(σ(x)) with
// σ(hi ‖ lo) = (hi ⊕ lo) ‖ hi; children l = H(s) ⊕ t·CW and r = l ⊕ s; the right sibling's
// control bit is collected where x turns left; the last (at most 7) input bits index a 128-bit
// leaf. Output: this party's XOR share of [x < α] in the low bit.
fn sigma(x: vec4<u32>) -> vec4<u32> {
    return vec4<u32>(x.z, x.w, x.z ^ x.x, x.w ^ x.y);
}

@compute @workgroup_size(WORKGROUP)
fn cmp_eval(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) local: u32) {
    load_aes_tables(local, WORKGROUP);
    let k = key_index(gid);
    if (k >= params.len) {
        return;
    }
    let n = params.n;
    let levels = select(0u, n - 7u, n > 7u);
    let x = xs[k];
    var node = roots[k] | vec4<u32>(params.party, 0u, 0u, 0u);
    var acc = 0u;
    for (var i = 0u; i < levels; i++) {
        var left = mmo(sigma(node));
        if ((node.x & 1u) == 1u) {
            left = left ^ seed_cw[tiled(levels, params.len, i, k)];
        }
        let right = left ^ node;
        if (input_bit(x, n, i) == 0u) {
            acc = acc ^ (right.x & 1u);
            node = left;
        } else {
            node = right;
        }
    }
    var leaf = mmo(sigma(node));
    if ((node.x & 1u) == 1u) {
        let lo = last_cw[tiled(2u, params.len, 0u, k)];
        let hi = last_cw[tiled(2u, params.len, 1u, k)];
        leaf = leaf ^ vec4<u32>(lo.x, lo.y, hi.x, hi.y);
    }
    let low = x.x & ((1u << (n - levels)) - 1u);
    let q = low >> 5u;
    var word = leaf.x;
    if (q == 1u) {
        word = leaf.y;
    } else if (q == 2u) {
        word = leaf.z;
    } else if (q == 3u) {
        word = leaf.w;
    }
    out[k] = vec2<u32>(acc ^ ((word >> (low & 31u)) & 1u), 0u);
}

// Lookup table T[x] from a DPF key with α = r (gates/lut.rs): expand the key over its whole
// b-bit domain, depth first — the nodes of the current path stay in private memory and only the
// part of the path that changes from one leaf pair to the next is recomputed (≈ 1.5·2^b AES
// blocks) — and accumulate Σ_j T[(x̂ − j) mod 2^b]·e(j). `xs` holds the masked indices.
// With params.mode = 1 the same expansion is the DPF's full-domain evaluation instead:
// out[k·2^b + j] = e(j) (`table` and `xs` are then not read).
@group(0) @binding(9) var<storage, read> table: array<vec2<u32>>;

const MAX_LUT_BITS: u32 = 24u;

@compute @workgroup_size(WORKGROUP)
fn lut_eval(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) local: u32) {
    load_aes_tables(local, WORKGROUP);
    let k = key_index(gid);
    if (k >= params.len) {
        return;
    }
    let b = params.n;
    let levels = b - 1u;
    let domain_mask = (1u << b) - 1u;
    let full_domain = params.mode == 1u;
    var index = 0u;
    if (!full_domain) {
        index = xs[k].x & domain_mask;
    }
    var nodes: array<vec4<u32>, MAX_LUT_BITS>;
    nodes[0] = roots[k] | vec4<u32>(params.party, 0u, 0u, 0u);
    var acc = vec2<u32>(0u, 0u);
    let pairs = 1u << levels;
    for (var p = 0u; p < pairs; p++) {
        // Depths whose node changes from leaf pair p − 1 to p (all of them for p = 0).
        var start = 1u;
        if (p > 0u) {
            start = levels - firstLeadingBit(p ^ (p - 1u));
        }
        for (var d = start; d <= levels; d++) {
            let parent = nodes[d - 1u];
            let side = (p >> (levels - d)) & 1u;
            let child = mmo(with_low_bits(parent, side));
            nodes[d] = corrected(child, seed_cw[tiled(levels, params.len, d - 1u, k)], side, parent.x & 1u);
        }
        let leaf = nodes[levels];
        let words = mmo(with_low_bits(leaf, 2u));
        for (var side = 0u; side < 2u; side++) {
            var e = output_word(words, side);
            if ((leaf.x & 1u) == 1u) {
                e = add64(e, last_cw[tiled(2u, params.len, side, k)]);
            }
            if (params.party == 1u) {
                e = neg64(e);
            }
            let j = 2u * p + side;
            if (full_domain) {
                out[(k << b) + j] = e;
            } else {
                acc = add64(acc, mul64(table[(index - j) & domain_mask], e));
            }
        }
    }
    if (!full_domain) {
        out[k] = acc;
    }
}
