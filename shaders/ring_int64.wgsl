// The Z_2^64 matrix product with native 64-bit integers (SHADER_INT64). Same bindings and
// results as ring.wgsl's `matmul`; used where the adapter offers the feature.

struct RingParams {
    len: u32,
    op: u32,
    shift: u32,
    row: u32,
    m: u32,
    k: u32,
    n: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: RingParams;
@group(0) @binding(1) var<storage, read> a: array<u64>;
@group(0) @binding(2) var<storage, read> b: array<u64>;
@group(0) @binding(3) var<storage, read_write> c: array<u64>;

const MM_TILE: u32 = 16u;
var<workgroup> tile_a: array<u64, 256>;
var<workgroup> tile_b: array<u64, 256>;

@compute @workgroup_size(16, 16)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wg.y * MM_TILE + lid.y;
    let col = wg.x * MM_TILE + lid.x;
    var acc = 0lu;
    for (var t = 0u; t < params.k; t += MM_TILE) {
        var av = 0lu;
        if (row < params.m && t + lid.x < params.k) {
            av = a[row * params.k + t + lid.x];
        }
        var bv = 0lu;
        if (t + lid.y < params.k && col < params.n) {
            bv = b[(t + lid.y) * params.n + col];
        }
        tile_a[lid.y * MM_TILE + lid.x] = av;
        tile_b[lid.y * MM_TILE + lid.x] = bv;
        workgroupBarrier();
        for (var kk = 0u; kk < MM_TILE; kk++) {
            acc += tile_a[lid.y * MM_TILE + kk] * tile_b[kk * MM_TILE + lid.x];
        }
        workgroupBarrier();
    }
    if (row < params.m && col < params.n) {
        c[row * params.n + col] = acc;
    }
}
