// Z_2^64 arithmetic on vec2<u32> = (low word, high word): the portable path for adapters
// without SHADER_INT64. Every function is exact modulo 2^64.

fn add64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    let carry = select(0u, 1u, lo < a.x);
    return vec2<u32>(lo, a.y + b.y + carry);
}

fn sub64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x - b.x;
    let borrow = select(0u, 1u, a.x < b.x);
    return vec2<u32>(lo, a.y - b.y - borrow);
}

fn neg64(a: vec2<u32>) -> vec2<u32> {
    return sub64(vec2<u32>(0u, 0u), a);
}

// Full 32×32 → 64-bit product through 16-bit halves.
fn mul32x32(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let lo_lo = a_lo * b_lo;
    let hi_lo = a_hi * b_lo;
    let lo_hi = a_lo * b_hi;
    let hi_hi = a_hi * b_hi;
    // middle = hi_lo + lo_hi may carry into bit 32.
    let middle = hi_lo + lo_hi;
    let middle_carry = select(0u, 0x10000u, middle < hi_lo);
    let lo = lo_lo + (middle << 16u);
    let lo_carry = select(0u, 1u, lo < lo_lo);
    let hi = hi_hi + (middle >> 16u) + middle_carry + lo_carry;
    return vec2<u32>(lo, hi);
}

// a·b mod 2^64 = lo(a)·lo(b) (full) + (lo(a)·hi(b) + hi(a)·lo(b))·2^32.
fn mul64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let p = mul32x32(a.x, b.x);
    return vec2<u32>(p.x, p.y + a.x * b.y + a.y * b.x);
}

// Logical right shift by 0 ≤ s < 64.
fn shr64(a: vec2<u32>, s: u32) -> vec2<u32> {
    if (s == 0u) {
        return a;
    }
    if (s >= 32u) {
        return vec2<u32>(a.y >> (s - 32u), 0u);
    }
    return vec2<u32>((a.x >> s) | (a.y << (32u - s)), a.y >> s);
}
