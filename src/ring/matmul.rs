//! The CPU matrix product over Z_2^64: register-blocked, cache-blocked, parallel, and compiled
//! for AVX-512 (native 64-bit multiplies, `vpmullq`) or AVX2 where the running CPU has them,
//! chosen once at run time. Every path computes the same wrapping sums, so the bits do not
//! depend on the CPU.
//!
//! Layout: the output is split into tasks of [`ROWS_PER_TASK`] rows (rayon); inside a task, a
//! panel of [`NR`] columns of `b` (k × 16 words, ≤ 192 KiB for k ≤ 1536) stays in L2 while every
//! block of [`MR`] rows of `a` sweeps it, accumulating an MR × NR tile in registers
//! (8 zmm registers with AVX-512).

use rayon::prelude::*;

/// Rows of one register tile.
const MR: usize = 4;
/// Columns of one register tile.
const NR: usize = 16;
/// Output rows per parallel task: a multiple of [`MR`], small enough to balance two cores on
/// 64-row products.
const ROWS_PER_TASK: usize = 16;

/// `out = a (m×k) · b (k×n)`, wrapping, row-major. The caller checks the lengths.
pub(crate) fn matmul_into(a: &[u64], b: &[u64], (m, k, n): (usize, usize, usize), out: &mut [u64]) {
    debug_assert!(a.len() == m * k && b.len() == k * n && out.len() == m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(0);
        return;
    }
    let isa = Isa::detect();
    let task = |(t, rows): (usize, &mut [u64])| {
        let i0 = t * ROWS_PER_TASK;
        let r = rows.len() / n;
        isa.rows(&a[i0 * k..(i0 + r) * k], b, k, n, rows);
    };
    // Small products stay on the calling thread: a task costs more than they do.
    if m * k * n < 1 << 16 {
        out.chunks_mut(ROWS_PER_TASK * n).enumerate().for_each(task);
    } else {
        out.par_chunks_mut(ROWS_PER_TASK * n).enumerate().for_each(task);
    }
}

/// The instruction set the kernel runs with.
#[derive(Clone, Copy)]
enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Isa {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
            {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// `out` (r×n) = `a` (r×k) · `b` (k×n).
    fn rows(self, a: &[u64], b: &[u64], k: usize, n: usize, out: &mut [u64]) {
        match self {
            // SAFETY: `detect` saw the features these functions are compiled for.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { rows_avx512(a, b, k, n, out) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { rows_avx2(a, b, k, n, out) },
            Isa::Portable => rows_generic(a, b, k, n, out),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
fn rows_avx512(a: &[u64], b: &[u64], k: usize, n: usize, out: &mut [u64]) {
    rows_generic(a, b, k, n, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rows_avx2(a: &[u64], b: &[u64], k: usize, n: usize, out: &mut [u64]) {
    rows_generic(a, b, k, n, out);
}

/// The blocked loops; inlined into each instruction-set variant so that the compiler
/// vectorises the tile for it.
#[inline(always)]
fn rows_generic(a: &[u64], b: &[u64], k: usize, n: usize, out: &mut [u64]) {
    let r = out.len() / n;
    let full_cols = n - n % NR;
    for j in (0..full_cols).step_by(NR) {
        let mut i = 0;
        while i + MR <= r {
            tile::<MR>(a, b, k, n, i, j, out);
            i += MR;
        }
        while i < r {
            tile::<1>(a, b, k, n, i, j, out);
            i += 1;
        }
    }
    if full_cols < n {
        // The last columns, fewer than NR: plain i-p-j rows.
        for i in 0..r {
            let row = &mut out[i * n + full_cols..(i + 1) * n];
            row.fill(0);
            for (p, &a_ip) in a[i * k..(i + 1) * k].iter().enumerate() {
                let b_row = &b[p * n + full_cols..(p + 1) * n];
                for (o, &b_pj) in row.iter_mut().zip(b_row) {
                    *o = o.wrapping_add(a_ip.wrapping_mul(b_pj));
                }
            }
        }
    }
}

/// One R × NR tile of the output at rows i.., columns j.., summed over all of k in registers.
#[inline(always)]
fn tile<const R: usize>(
    a: &[u64],
    b: &[u64],
    k: usize,
    n: usize,
    i: usize,
    j: usize,
    out: &mut [u64],
) {
    let mut acc = [[0u64; NR]; R];
    for p in 0..k {
        let b_row: &[u64; NR] = b[p * n + j..p * n + j + NR].try_into().expect("NR words");
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let a_ip = a[(i + r) * k + p];
            for (o, &b_pj) in acc_r.iter_mut().zip(b_row) {
                *o = o.wrapping_add(a_ip.wrapping_mul(b_pj));
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        out[(i + r) * n + j..(i + r) * n + j + NR].copy_from_slice(acc_r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn naive(a: &[u64], b: &[u64], (m, k, n): (usize, usize, usize)) -> Vec<u64> {
        let mut out = vec![0u64; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    out[i * n + j] =
                        out[i * n + j].wrapping_add(a[i * k + p].wrapping_mul(b[p * n + j]));
                }
            }
        }
        out
    }

    #[test]
    fn every_instruction_set_and_edge_shape_matches_the_naive_product() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let shapes = [
            (1, 1, 1),
            (3, 5, 7),
            (4, 3, 16),
            (5, 17, 33),
            (17, 9, 31),
            (33, 64, 48),
            (70, 40, 130),
            (2, 0, 3),
        ];
        let mut isas = vec![Isa::Portable, Isa::detect()];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            isas.push(Isa::Avx2);
        }
        for &(m, k, n) in &shapes {
            let a: Vec<u64> = (0..m * k).map(|_| rng.random()).collect();
            let b: Vec<u64> = (0..k * n).map(|_| rng.random()).collect();
            let want = naive(&a, &b, (m, k, n));
            let mut out = vec![1u64; m * n];
            matmul_into(&a, &b, (m, k, n), &mut out);
            assert_eq!(out, want, "{m}×{k}×{n}");
            for isa in &isas {
                let mut out = vec![1u64; m * n];
                isa.rows(&a, &b, k, n, &mut out);
                assert_eq!(out, want, "{m}×{k}×{n}");
            }
        }
    }
}
