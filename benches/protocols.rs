//! PriFFT's protocols against the CrypTen-style baseline, the same operation on the same inputs,
//! two parties in this process over the in-memory channel (no network delay): criterion times
//! each side's online phase (fresh dealer material per run, dealt outside the timing), through
//! the same suite `prifft bench protocols` runs (`prifft::mpc::suite`), which also checks every
//! output against f64. Bytes and rounds are exact and reported by the subcommand; this bench is
//! for time, at a smaller size: `cargo bench --bench protocols`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prifft::backend::Cpu;
use prifft::mpc::suite::{self, Side};

const N: usize = 2048;
const OPS: [&str; 10] = [
    "exp",
    "reciprocal",
    "sigmoid",
    "gelu",
    "relu",
    "softmax",
    "softmax_bwd",
    "layernorm",
    "dropout",
    "matmul",
];

fn protocols(c: &mut Criterion) {
    let mut group = c.benchmark_group("protocols");
    group.sample_size(10).measurement_time(Duration::from_secs(2));
    for case in suite::cases(N).into_iter().filter(|c| OPS.contains(&c.op())) {
        for (side, name) in [(Side::Prifft, "prifft"), (Side::Baseline, "baseline")] {
            let n = suite::measure(&case, side, Arc::new(Cpu), None).expect("checked run").n;
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::new(case.op(), name), |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            let m = suite::measure(&case, side, Arc::new(Cpu), None)
                                .expect("checked run");
                            Duration::from_secs_f64(m.online_s)
                        })
                        .sum()
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Criterion's plots draw text with the system's fonts, which a fresh server lacks (the run
    // then panics after measuring); the estimates are printed and kept under target/criterion.
    config = Criterion::default().without_plots();
    targets = protocols
}
criterion_main!(benches);
