//! Ring and Beaver protocol throughput: reference matmul, and secure products over the
//! in-memory channel (both parties in this process, so the time covers both parties' work).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use prifft::mpc::{Dealer, beaver, local, sharing};
use prifft::prg::insecure_seeded_rng;
use prifft::ring::RingTensor;

fn ring_matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_matmul");
    let mut rng = insecure_seeded_rng(1);
    for &(m, k, n) in &[(64, 64, 64), (128, 768, 768)] {
        let a = RingTensor::random(&[m, k], &mut rng);
        let b = RingTensor::random(&[k, n], &mut rng);
        group.throughput(Throughput::Elements((m * k * n) as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{m}x{k}x{n}")),
            &(a, b),
            |bench, (a, b)| bench.iter(|| a.matmul(b).unwrap()),
        );
    }
    group.finish();
}

fn beaver_protocols(c: &mut Criterion) {
    let mut group = c.benchmark_group("beaver_two_party");
    group.sample_size(20);
    let mut rng = insecure_seeded_rng(2);
    let n = 1 << 14;
    let x = RingTensor::random(&[n], &mut rng);
    let [x0, x1] = sharing::share_secret(&x, &mut rng);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(BenchmarkId::new("mul", n), |bench| {
        bench.iter_batched(
            || {
                let mut dealer = Dealer::insecure_with_seed(3);
                beaver::gen_mul(&mut dealer, &[n]).unwrap();
                dealer.finish()
            },
            |pre| {
                local::run_two_party(
                    pre,
                    |c| beaver::mul(c, &x0, &x0),
                    |c| beaver::mul(c, &x1, &x1),
                )
                .unwrap()
            },
            criterion::BatchSize::LargeInput,
        )
    });
    let (m, k, nn) = (64, 64, 64);
    let a = RingTensor::random(&[m, k], &mut rng);
    let [a0, a1] = sharing::share_secret(&a, &mut rng);
    group.throughput(Throughput::Elements((m * k * nn) as u64));
    group.bench_function(BenchmarkId::new("matmul", "64x64x64"), |bench| {
        bench.iter_batched(
            || {
                let mut dealer = Dealer::insecure_with_seed(4);
                beaver::gen_matmul(&mut dealer, m, k, nn).unwrap();
                dealer.finish()
            },
            |pre| {
                local::run_two_party(
                    pre,
                    |c| beaver::matmul(c, &a0, &a0),
                    |c| beaver::matmul(c, &a1, &a1),
                )
                .unwrap()
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Criterion's plots draw text with the system's fonts, which a fresh server lacks (the run
    // then panics after measuring); the estimates are printed and kept under target/criterion.
    config = Criterion::default().without_plots();
    targets = ring_matmul, beaver_protocols
}
criterion_main!(benches);
