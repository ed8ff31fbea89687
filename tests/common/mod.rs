//! Helpers shared by the integration tests: real assets, the GPU, tests per backend.
#![allow(dead_code)] // each test binary uses its own subset

use prifft::backend::{Backend, Cpu, Scheduler};

use std::path::Path;

/// Both parties' shares of public test inputs (a fixed seed: test data, not secrets).
pub fn share_inputs(inputs: &[prifft::ring::RingTensor]) -> [Vec<prifft::mpc::Share>; 2] {
    let mut rng = prifft::prg::insecure_seeded_rng(99);
    let (mut s0, mut s1) = (Vec::new(), Vec::new());
    for x in inputs {
        let [a, b] = prifft::mpc::sharing::share_secret(x, &mut rng);
        s0.push(a);
        s1.push(b);
    }
    [s0, s1]
}

/// Whether `path` exists; when it does not, skip (print why and how to get it) — or, under
/// `PRIFFT_REQUIRE_DATA=1` as CI sets it, fail instead of skipping.
pub fn real_asset(path: &Path, how: &str) -> bool {
    if path.exists() {
        return true;
    }
    assert!(
        std::env::var("PRIFFT_REQUIRE_DATA").as_deref() != Ok("1"),
        "PRIFFT_REQUIRE_DATA=1 but {} is missing: {how}",
        path.display()
    );
    eprintln!("skipped: {} is missing ({how})", path.display());
    false
}

/// The GPU the tests run on: the first adapter, real GPUs before software ones. Without one,
/// skip (say so) — or, under `PRIFFT_REQUIRE_GPU=1` as CI sets it (lavapipe), fail.
#[cfg(feature = "gpu")]
pub fn gpu_device() -> Option<prifft::backend::gpu::GpuDevice> {
    use prifft::backend::gpu::GpuDevice;
    match GpuDevice::open_default().expect("an adapter exists but cannot be opened") {
        Some(d) => {
            eprintln!(
                "GPU tests on {} ({}, {})",
                d.info().name,
                d.info().backend,
                d.info().device_type
            );
            Some(d)
        }
        None if std::env::var("PRIFFT_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!(
                "PRIFFT_REQUIRE_GPU=1 but no GPU adapter was found (install mesa-vulkan-drivers for lavapipe)"
            )
        }
        None => {
            eprintln!("skipped: no GPU adapter (set PRIFFT_REQUIRE_GPU=1 to make this a failure)");
            None
        }
    }
}

/// A scheduler that really splits every batch between two devices — the GPU and the CPU where
/// there is a GPU, two CPU backends otherwise — with equal fixed weights, cross-checking
/// samples of the GPU's parts on the CPU.
pub fn two_device_scheduler() -> Scheduler {
    #[allow(unused_mut)] // only the gpu feature changes the first device
    let mut first: Box<dyn Backend> = Box::new(Cpu);
    #[cfg(feature = "gpu")]
    if let Some(gpu) = gpu_device() {
        first = Box::new(gpu);
    }
    Scheduler::new(vec![first, Box::new(Cpu)]).with_weights(&[1.0, 1.0]).with_crosscheck(true)
}

/// Instantiate each named test `fn name(backend: &dyn Backend)` once per backend: `cpu::name`,
/// `gpu::name` (skipped without an adapter unless CI requires one) and `scheduler::name`.
#[macro_export]
macro_rules! per_backend {
    ($($name:ident),* $(,)?) => {
        mod cpu {
            $(#[test] fn $name() { super::$name(&prifft::backend::Cpu) })*
        }
        #[cfg(feature = "gpu")]
        mod gpu {
            $(#[test] fn $name() {
                if let Some(device) = super::common::gpu_device() { super::$name(&device) }
            })*
        }
        mod scheduler {
            $(#[test] fn $name() { super::$name(&super::common::two_device_scheduler()) })*
        }
    };
}

/// `n` random sentences of `seq` token ids for the tiny test models (vocabulary 64: [CLS] = 1,
/// [SEP] = 2, padding 0, each 3..=seq tokens long) and their 0/1 labels, from a seed.
pub fn tiny_sentences(n: usize, seq: usize, seed: u64) -> (prifft::model::TokenBatch, Vec<u32>) {
    use rand::{Rng, SeedableRng};
    let mut rng = prifft::prg::ChaCha20Rng::seed_from_u64(seed);
    let (mut ids, mut mask, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let len = rng.random_range(3..=seq);
        for t in 0..seq {
            let id = match t {
                _ if t >= len => 0,
                0 => 1,
                _ if t == len - 1 => 2,
                _ => rng.random_range(3..64),
            };
            ids.push(id);
            mask.push(u32::from(t < len));
        }
        labels.push(rng.random_range(0..2));
    }
    (prifft::model::TokenBatch { ids, mask, rows: n, seq_len: seq }, labels)
}
