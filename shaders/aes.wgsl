// Fixed-key AES-128 in Matyas–Meyer–Oseas mode, H(x) = AES_K(x) ⊕ x, with T-tables in
// workgroup memory. Included (textually) by the FSS kernels; the host prepends nothing.
//
// A 128-bit block is vec4<u32> of little-endian words (word 0 = bytes 0..3), the same bytes as
// the CPU's little-endian u128. AES columns are these words: byte r of column c is
// (w[c] >> 8r) & 0xff. The single table T0[x] = 2S(x) | S(x)<<8 | S(x)<<16 | 3S(x)<<24 covers
// SubBytes+MixColumns for row 0; rows 1–3 use its byte rotations.

struct AesParams {
    round_keys: array<vec4<u32>, 11>,
}

// T0 and the S-box, filled from the `aes_tables` storage buffer by each workgroup.
var<workgroup> t0_table: array<u32, 256>;
var<workgroup> sbox_table: array<u32, 256>;

fn load_aes_tables(local_index: u32, workgroup_size: u32) {
    for (var i = local_index; i < 256u; i += workgroup_size) {
        t0_table[i] = aes_tables[i];
        sbox_table[i] = aes_tables[256u + i];
    }
    workgroupBarrier();
}

fn rotl(x: u32, r: u32) -> u32 {
    return (x << r) | (x >> (32u - r));
}

fn byte_of(x: u32, r: u32) -> u32 {
    return (x >> (8u * r)) & 0xffu;
}

fn aes_round(s: vec4<u32>, rk: vec4<u32>) -> vec4<u32> {
    var out: vec4<u32>;
    for (var j = 0u; j < 4u; j++) {
        out[j] = t0_table[byte_of(s[j], 0u)]
            ^ rotl(t0_table[byte_of(s[(j + 1u) % 4u], 1u)], 8u)
            ^ rotl(t0_table[byte_of(s[(j + 2u) % 4u], 2u)], 16u)
            ^ rotl(t0_table[byte_of(s[(j + 3u) % 4u], 3u)], 24u)
            ^ rk[j];
    }
    return out;
}

fn aes_last_round(s: vec4<u32>, rk: vec4<u32>) -> vec4<u32> {
    var out: vec4<u32>;
    for (var j = 0u; j < 4u; j++) {
        out[j] = sbox_table[byte_of(s[j], 0u)]
            | (sbox_table[byte_of(s[(j + 1u) % 4u], 1u)] << 8u)
            | (sbox_table[byte_of(s[(j + 2u) % 4u], 2u)] << 16u)
            | (sbox_table[byte_of(s[(j + 3u) % 4u], 3u)] << 24u);
        out[j] ^= rk[j];
    }
    return out;
}

// H(x) = AES_K(x) ⊕ x.
fn mmo(x: vec4<u32>) -> vec4<u32> {
    var s = x ^ aes.round_keys[0];
    for (var r = 1u; r < 10u; r++) {
        s = aes_round(s, aes.round_keys[r]);
    }
    return aes_last_round(s, aes.round_keys[10]) ^ x;
}
