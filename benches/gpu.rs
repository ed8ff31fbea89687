//! GPU kernels: 64-bit DCF evaluation (keys uploaded each call, and resident) and the Z_2^64
//! matmul, beside the CPU. Every GPU call waits for its readback, so the times include the
//! device work (no unsynchronised timing). Without an adapter only the CPU rows run. On lavapipe
//! these are correctness runs, not GPU performance.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::Rng;

use prifft::backend::{Backend, Cpu};
use prifft::fss::dcf;
use prifft::prg::insecure_seeded_rng;

fn bench(c: &mut Criterion) {
    let mut rng = insecure_seeded_rng(1);
    let len = 1 << 14;
    let alphas: Vec<u64> = (0..len).map(|_| rng.random()).collect();
    let [k0, _] = dcf::keygen(64, &alphas, &alphas, &mut rng).unwrap();
    let d = 256;
    let a: Vec<u64> = (0..d * d).map(|_| rng.random()).collect();

    #[allow(unused_mut)] // only the gpu feature adds a backend
    let mut backends: Vec<Box<dyn Backend>> = vec![Box::new(Cpu)];
    #[cfg(feature = "gpu")]
    if let Ok(Some(gpu)) = prifft::backend::gpu::GpuDevice::open_default() {
        backends.push(Box::new(gpu));
    }
    let mut group = c.benchmark_group("dcf64_eval_with_upload");
    group.sample_size(10).throughput(Throughput::Elements(len as u64));
    for backend in &backends {
        let mut out = vec![0; len];
        group.bench_function(BenchmarkId::from_parameter(backend.name()), |b| {
            b.iter(|| backend.eval_fss(&k0, &alphas, &mut out).unwrap())
        });
    }
    group.finish();
    #[cfg(feature = "gpu")]
    if let Ok(Some(gpu)) = prifft::backend::gpu::GpuDevice::open_default() {
        let mut group = c.benchmark_group("dcf64_eval_resident");
        group.sample_size(10).throughput(Throughput::Elements(len as u64));
        group.bench_function(BenchmarkId::from_parameter(gpu.info().name.clone()), |b| {
            b.iter_custom(|iters| {
                let (t, _) = gpu.time_fss(&k0, &alphas, iters as usize).unwrap();
                std::time::Duration::from_secs_f64(t.dispatch * iters as f64)
            })
        });
        group.finish();
    }
    let mut group = c.benchmark_group("matmul_256");
    group.sample_size(10).throughput(Throughput::Elements((d * d * d) as u64));
    for backend in &backends {
        let mut out = vec![0; d * d];
        group.bench_function(BenchmarkId::from_parameter(backend.name()), |b| {
            b.iter(|| backend.matmul(&a, &a, (d, d, d), &mut out).unwrap())
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Criterion's plots draw text with the system's fonts, which a fresh server lacks (the run
    // then panics after measuring); the estimates are printed and kept under target/criterion.
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
