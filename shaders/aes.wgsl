// Fixed-key AES-128 in Matyas–Meyer–Oseas mode, H(x) = AES_K(x) ⊕ x, with a T-table in
// workgroup memory. Included (textually) by the FSS kernels; the host prepends
// `const AES_COPY_BITS: u32 = c;` (src/gpu/shaders.rs), choosing 2^c copies of the table.
//
// A 128-bit block is vec4<u32> of little-endian words (word 0 = bytes 0..3), the same bytes as
// the CPU's little-endian u128. AES columns are these words: byte r of column c is
// (w[c] >> 8r) & 0xff. The single table T0[x] = 2S(x) | S(x)<<8 | S(x)<<16 | 3S(x)<<24 covers
// SubBytes+MixColumns for row 0; rows 1–3 use its byte rotations, and the last round's S-box is
// T0's byte 1 (or 2), so no second table is needed.
//
// Bank conflicts: 32 invocations of a warp looking up 32 random bytes in one 256-word table hit
// the same bank ~3.5 times on average, and every lookup waits for the worst bank. With the table
// stored 2^c times interleaved — entry x of copy l at word (x << c) | l, read by invocation
// `local_index mod 2^c` — copy l lies entirely in bank l (mod 32), so 32 copies (32 KiB) make
// every lookup conflict-free and 16 copies (16 KiB, WebGPU's guaranteed limit) leave at most
// two invocations per bank. All copies hold the same words, so the result does not depend on c.

struct AesParams {
    round_keys: array<vec4<u32>, 11>,
}

const AES_COPIES: u32 = 1u << AES_COPY_BITS;

// T0, 2^c times interleaved; filled from the `aes_tables` storage buffer by each workgroup.
var<workgroup> t0_table: array<u32, 256u * AES_COPIES>;
// This invocation's copy.
var<private> aes_lane: u32;

fn load_aes_tables(local_index: u32, workgroup_size: u32) {
    for (var i = local_index; i < 256u * AES_COPIES; i += workgroup_size) {
        t0_table[i] = aes_tables[i >> AES_COPY_BITS];
    }
    aes_lane = local_index & (AES_COPIES - 1u);
    workgroupBarrier();
}

fn rotl(x: u32, r: u32) -> u32 {
    return (x << r) | (x >> (32u - r));
}

// T0[byte r of w], from this invocation's copy.
fn t0(w: u32, r: u32) -> u32 {
    return t0_table[(((w >> (8u * r)) & 0xffu) << AES_COPY_BITS) | aes_lane];
}

// One AES column of a full round: SubBytes, ShiftRows and MixColumns of bytes 0..3 taken from
// columns a, b, c, d.
fn column(a: u32, b: u32, c: u32, d: u32) -> u32 {
    return t0(a, 0u) ^ rotl(t0(b, 1u), 8u) ^ rotl(t0(c, 2u), 16u) ^ rotl(t0(d, 3u), 24u);
}

fn aes_round(s: vec4<u32>, rk: vec4<u32>) -> vec4<u32> {
    return vec4<u32>(
        column(s.x, s.y, s.z, s.w),
        column(s.y, s.z, s.w, s.x),
        column(s.z, s.w, s.x, s.y),
        column(s.w, s.x, s.y, s.z),
    ) ^ rk;
}

// The last round's column (no MixColumns): S(x) is byte 1 of T0[x], and byte 2.
fn last_column(a: u32, b: u32, c: u32, d: u32) -> u32 {
    return ((t0(a, 0u) >> 8u) & 0xffu)
        | (t0(b, 1u) & 0xff00u)
        | (t0(c, 2u) & 0xff0000u)
        | ((t0(d, 3u) << 16u) & 0xff000000u);
}

fn aes_last_round(s: vec4<u32>, rk: vec4<u32>) -> vec4<u32> {
    return vec4<u32>(
        last_column(s.x, s.y, s.z, s.w),
        last_column(s.y, s.z, s.w, s.x),
        last_column(s.z, s.w, s.x, s.y),
        last_column(s.w, s.x, s.y, s.z),
    ) ^ rk;
}

// H(x) = AES_K(x) ⊕ x, rounds written out so the round keys are constant-buffer operands.
fn mmo(x: vec4<u32>) -> vec4<u32> {
    var s = x ^ aes.round_keys[0];
    s = aes_round(s, aes.round_keys[1]);
    s = aes_round(s, aes.round_keys[2]);
    s = aes_round(s, aes.round_keys[3]);
    s = aes_round(s, aes.round_keys[4]);
    s = aes_round(s, aes.round_keys[5]);
    s = aes_round(s, aes.round_keys[6]);
    s = aes_round(s, aes.round_keys[7]);
    s = aes_round(s, aes.round_keys[8]);
    s = aes_round(s, aes.round_keys[9]);
    return aes_last_round(s, aes.round_keys[10]) ^ x;
}
