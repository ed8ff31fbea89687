// Z_2^64 elementwise operations, local truncation of shares and the tiled matrix product, on
// vec2<u32> limbs (prepended on the host with u64.wgsl). Bit-identical to the CPU backend.

struct RingParams {
    // Elements (elementwise) or rows of A (matmul).
    len: u32,
    // Elementwise operation: 0 add, 1 sub, 2 mul, 3 truncate shares of party 0, 4 of party 1.
    op: u32,
    // Truncation shift.
    shift: u32,
    // Invocations per row of the 2-D dispatch grid (elementwise).
    row: u32,
    // Matmul dimensions: A is m×k, B is k×n.
    m: u32,
    k: u32,
    n: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: RingParams;
@group(0) @binding(1) var<storage, read> a: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> b: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec2<u32>>;

@compute @workgroup_size(256)
fn elementwise(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.row;
    if (i >= params.len) {
        return;
    }
    let x = a[i];
    switch params.op {
        case 0u: { c[i] = add64(x, b[i]); }
        case 1u: { c[i] = sub64(x, b[i]); }
        case 2u: { c[i] = mul64(x, b[i]); }
        // SecureML local truncation: P0 shifts its share, P1 negates, shifts, negates.
        case 3u: { c[i] = shr64(x, params.shift); }
        default: { c[i] = neg64(shr64(neg64(x), params.shift)); }
    }
}

const MM_TILE: u32 = 16u;
var<workgroup> tile_a: array<vec2<u32>, 256>;
var<workgroup> tile_b: array<vec2<u32>, 256>;

@compute @workgroup_size(16, 16)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wg.y * MM_TILE + lid.y;
    let col = wg.x * MM_TILE + lid.x;
    var acc = vec2<u32>(0u, 0u);
    for (var t = 0u; t < params.k; t += MM_TILE) {
        var av = vec2<u32>(0u, 0u);
        if (row < params.m && t + lid.x < params.k) {
            av = a[row * params.k + t + lid.x];
        }
        var bv = vec2<u32>(0u, 0u);
        if (t + lid.y < params.k && col < params.n) {
            bv = b[(t + lid.y) * params.n + col];
        }
        tile_a[lid.y * MM_TILE + lid.x] = av;
        tile_b[lid.y * MM_TILE + lid.x] = bv;
        workgroupBarrier();
        for (var kk = 0u; kk < MM_TILE; kk++) {
            acc = add64(acc, mul64(tile_a[lid.y * MM_TILE + kk], tile_b[kk * MM_TILE + lid.x]));
        }
        workgroupBarrier();
    }
    if (row < params.m && col < params.n) {
        c[row * params.n + col] = acc;
    }
}
