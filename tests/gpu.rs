//! L2: every GPU kernel returns the CPU's bits, per party, at batch sizes 0, 1, 255, 256, 257,
//! 2^16 and beyond one storage binding, each run twice. Without an adapter the tests skip with a
//! message — unless PRIFFT_REQUIRE_GPU=1 (CI, on lavapipe), where they fail.
#![cfg(feature = "gpu")]

mod common;

use prifft::backend::gpu::GpuDevice;
use prifft::backend::{Backend, Cpu, ElemOp};
use prifft::fss::{cmp, dcf, dpf};
use prifft::mpc::PartyId;
use prifft::prg::insecure_seeded_rng;
use rand::Rng;

fn device() -> Option<GpuDevice> {
    common::gpu_device()
}

const SIZES: [usize; 6] = [0, 1, 255, 256, 257, 1 << 16];

fn random(len: usize, mask: u64, seed: u64) -> Vec<u64> {
    let mut rng = insecure_seeded_rng(seed);
    (0..len).map(|_| rng.random::<u64>() & mask).collect()
}

/// GPU twice vs CPU once, per party.
fn check_fss(gpu: &GpuDevice, scheme_dcf: bool, n: u32, len: usize) {
    let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
    let alphas = random(len, mask, 1 + len as u64);
    let betas = random(len, u64::MAX, 2);
    let mut xs = random(len, mask, 3);
    for k in (0..len).step_by(3) {
        xs[k] = alphas[k]; // hit x = α (DPF) and its neighbourhood
    }
    let mut rng = insecure_seeded_rng(4);
    let keys = if scheme_dcf {
        dcf::keygen(n, &alphas, &betas, &mut rng)
    } else {
        dpf::keygen(n, &alphas, &betas, &mut rng)
    };
    for k in keys.unwrap() {
        let mut want = vec![0; len];
        Cpu.eval_fss(&k, &xs, &mut want).unwrap();
        for run in 0..2 {
            let mut got = vec![1; len];
            gpu.eval_fss(&k, &xs, &mut got).unwrap();
            assert!(
                got == want,
                "{} n={n} len={len} party {} run {run}: GPU != CPU",
                if scheme_dcf { "DCF" } else { "DPF" },
                k.party()
            );
        }
    }
}

#[test]
fn dcf_and_dpf_evaluation_match_the_cpu() {
    let Some(gpu) = device() else { return };
    for len in SIZES {
        for n in [1u32, 16, 64] {
            if len == 1 << 16 && n != 64 {
                continue;
            }
            check_fss(&gpu, true, n, len);
            check_fss(&gpu, false, n, len);
        }
    }
}

/// One-bit comparison keys: GPU twice vs CPU once, per party, and the reconstruction.
fn check_cmp(backend: &dyn Backend, n: u32, len: usize) {
    let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
    let alphas = random(len, mask, 21 + len as u64);
    let mut xs = random(len, mask, 22);
    for k in (0..len).step_by(3) {
        xs[k] = alphas[k].wrapping_sub((k % 2) as u64) & mask; // x = α and x = α − 1
    }
    let keys = cmp::keygen(n, &alphas, &mut insecure_seeded_rng(23)).unwrap();
    let mut shares = Vec::new();
    for k in &keys {
        let mut want = vec![0; len];
        Cpu.eval_fss(k, &xs, &mut want).unwrap();
        for run in 0..2 {
            let mut got = vec![7; len];
            backend.eval_fss(k, &xs, &mut got).unwrap();
            assert!(
                got == want,
                "CMP n={n} len={len} party {} run {run}: {} != CPU",
                k.party(),
                backend.name()
            );
        }
        shares.push(want);
    }
    for i in 0..len {
        assert_eq!(shares[0][i] ^ shares[1][i], (xs[i] < alphas[i]) as u64, "n={n} key {i}");
    }
}

#[test]
fn comparison_evaluation_matches_the_cpu() {
    let Some(gpu) = device() else { return };
    for len in SIZES {
        for n in [1u32, 7, 8, 23, 64] {
            if len == 1 << 16 && n != 64 {
                continue;
            }
            check_cmp(&gpu, n, len);
        }
    }
}

/// Multi-word DCF (ReLU's 2 words, splines' d + 1): GPU twice vs CPU once, per party.
fn check_dcf_words(backend: &dyn Backend, n: u32, words: u32, len: usize) {
    let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
    let alphas = random(len, mask, 20 + len as u64);
    let betas = random(len * words as usize, u64::MAX, 21);
    let mut xs = random(len, mask, 22);
    for k in (0..len).step_by(4) {
        xs[k] = alphas[k].wrapping_sub(k as u64 % 2) & mask; // x = α and x = α − 1
    }
    let keys = dcf::keygen_words(n, words, &alphas, &betas, &mut insecure_seeded_rng(23)).unwrap();
    for k in keys {
        let mut want = vec![0; len * words as usize];
        Cpu.eval_fss(&k, &xs, &mut want).unwrap();
        for run in 0..2 {
            let mut got = vec![1; want.len()];
            backend.eval_fss(&k, &xs, &mut got).unwrap();
            assert!(
                got == want,
                "{}: {words}-word DCF n={n} len={len} party {} run {run}: != CPU",
                backend.name(),
                k.party()
            );
        }
    }
}

#[test]
fn multi_word_dcf_evaluation_matches_the_cpu() {
    let Some(gpu) = device() else { return };
    for words in [2u32, 5] {
        for len in SIZES {
            // The 2^16 batches at n = 32 keep lavapipe's share of the CI time small.
            let widths: &[u32] = if len == 1 << 16 { &[32] } else { &[1, 17, 64] };
            for &n in widths {
                check_dcf_words(&gpu, n, words, len);
            }
        }
    }
    // The largest payload, and chunks of whole tiles under a small binding.
    check_dcf_words(&gpu, 64, prifft::fss::keys::MAX_WORDS, 300);
    let mut small = gpu;
    small.limit_binding(64 << 10);
    check_dcf_words(&small, 64, 5, 1000);
}

#[test]
fn key_batches_larger_than_one_binding_are_chunked() {
    let Some(mut gpu) = device() else { return };
    // 64 KiB bindings: a 64-bit DCF key's seed corrections take 1,008 bytes, so 1,000 keys need
    // 16 chunks (the last one partial); the next test crosses the adapter's real limit.
    gpu.limit_binding(64 << 10);
    check_fss(&gpu, true, 64, 1000);
    check_fss(&gpu, false, 64, 1000);
    check_fss(&gpu, true, 64, 64 + 1);
}

#[test]
fn a_key_batch_one_key_above_the_real_binding_limit() {
    let Some(gpu) = device() else { return };
    // The largest per-key array of a 64-bit DCF key is its seed corrections: 63 levels × 16 B.
    // One key more than fits in one binding at the adapter's real limit (128 MiB by default).
    let len = (gpu.max_binding() / (63 * 16)) as usize + 1;
    check_fss(&gpu, true, 64, len);
}

#[test]
fn elementwise_and_truncation_match_the_cpu() {
    let Some(gpu) = device() else { return };
    for len in SIZES {
        let a = random(len, u64::MAX, 5);
        let mut b = random(len, u64::MAX, 6);
        for (i, v) in [0, 1, 0xffff, 0x1_0000, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, u64::MAX]
            .iter()
            .enumerate()
        {
            if i < len {
                b[i] = *v;
            }
        }
        for op in [ElemOp::Add, ElemOp::Sub, ElemOp::Mul] {
            let mut want = vec![0; len];
            Cpu.elementwise(op, &a, &b, &mut want).unwrap();
            for _ in 0..2 {
                let mut got = vec![1; len];
                gpu.elementwise(op, &a, &b, &mut got).unwrap();
                assert!(got == want, "{op:?} len={len}");
            }
        }
        for party in [PartyId::P0, PartyId::P1] {
            for shift in [1u32, 16, 31, 32, 33, 63] {
                let mut want = vec![0; len];
                Cpu.trunc_shares(party, shift, &a, &mut want).unwrap();
                let mut got = vec![1; len];
                gpu.trunc_shares(party, shift, &a, &mut got).unwrap();
                assert!(got == want, "trunc {party} by {shift}, len={len}");
            }
        }
    }
}

#[test]
fn elementwise_beyond_one_binding() {
    let Some(gpu) = device() else { return };
    // One element more than a binding holds.
    let len = (gpu.max_binding() / 8) as usize + 1;
    let a = random(len, u64::MAX, 7);
    let b = random(len, u64::MAX, 8);
    let mut want = vec![0; len];
    Cpu.elementwise(ElemOp::Mul, &a, &b, &mut want).unwrap();
    for _ in 0..2 {
        let mut got = vec![1; len];
        gpu.elementwise(ElemOp::Mul, &a, &b, &mut got).unwrap();
        assert!(got == want, "len={len}");
    }
}

#[test]
fn matmul_limbs_and_int64_match_the_cpu() {
    let Some(gpu) = device() else { return };
    let mut variants = vec![false];
    if gpu.has_int64() {
        variants.push(true);
    } else {
        eprintln!("this adapter has no SHADER_INT64: only the u32-limb matmul is tested");
    }
    for (m, k, n) in [(0, 3, 4), (1, 1, 1), (1, 257, 1), (17, 33, 15), (64, 64, 64), (130, 96, 70)]
    {
        let a = random(m * k, u64::MAX, 9);
        let b = random(k * n, u64::MAX, 10);
        let mut want = vec![0; m * n];
        Cpu.matmul(&a, &b, (m, k, n), &mut want).unwrap();
        for &int64 in &variants {
            for _ in 0..2 {
                let mut got = vec![1; m * n];
                gpu.matmul(&a, &b, (m, k, n), int64, &mut got).unwrap();
                assert!(got == want, "matmul {m}×{k}·{k}×{n} int64={int64}");
            }
        }
    }
}

#[test]
fn scheduler_over_gpu_and_cpu_gives_the_same_bits_as_one_device() {
    use prifft::backend::Scheduler;
    let Some(gpu) = device() else { return };
    // Equal weights force a real split between the GPU and the CPU; the cross-check recomputes
    // samples of the GPU's parts on the CPU.
    let s = Scheduler::new(vec![Box::new(gpu), Box::new(Cpu)])
        .with_weights(&[1.0, 1.0])
        .with_crosscheck(true);
    let len = 3000;
    let alphas = random(len, u64::MAX, 11);
    let xs = random(len, u64::MAX, 12);
    for keys in dcf::keygen(64, &alphas, &alphas, &mut insecure_seeded_rng(13)).unwrap() {
        let (mut got, mut want) = (vec![0; len], vec![0; len]);
        s.eval_fss(&keys, &xs, &mut got).unwrap();
        Cpu.eval_fss(&keys, &xs, &mut want).unwrap();
        assert!(got == want, "scheduled DCF, party {}", keys.party());
    }
    let (mut got, mut want) = (vec![0; len], vec![0; len]);
    s.elementwise(ElemOp::Mul, &alphas, &xs, &mut got).unwrap();
    Cpu.elementwise(ElemOp::Mul, &alphas, &xs, &mut want).unwrap();
    assert!(got == want);
    let (m, k, n) = (45, 33, 20);
    let (a, b) = (random(m * k, u64::MAX, 14), random(k * n, u64::MAX, 15));
    let (mut got, mut want) = (vec![0; m * n], vec![0; m * n]);
    s.matmul(&a, &b, (m, k, n), &mut got).unwrap();
    Cpu.matmul(&a, &b, (m, k, n), &mut want).unwrap();
    assert!(got == want);
    // Multi-word payloads: each backend's part is count × words output words.
    for words in [2, 5] {
        check_dcf_words(&s, 64, words, 1000);
    }
    check_cmp(&s, 64, 1000);
    check_cmp(&s, 23, 1000);
    // Measured weights (no override) still give the same bits.
    let Some(gpu) = device() else { return };
    let s = Scheduler::new(vec![Box::new(gpu), Box::new(Cpu)]);
    let (mut got, mut want) = (vec![0; len], vec![0; len]);
    s.elementwise(ElemOp::Add, &alphas, &xs, &mut got).unwrap();
    Cpu.elementwise(ElemOp::Add, &alphas, &xs, &mut want).unwrap();
    assert!(got == want, "measured weights {:?}", s.names());
}

#[test]
fn lookup_tables_match_the_cpu() {
    let Some(gpu) = device() else { return };
    for bits in [1u32, 4, 8] {
        let domain = 1usize << bits;
        let table = random(domain, u64::MAX, 16 + bits as u64);
        for len in [0usize, 1, 255, 257] {
            let masks = random(len, u64::MAX, 17);
            let masked = random(len, u64::MAX, 18);
            let alphas: Vec<u64> = masks.iter().map(|m| m & (domain as u64 - 1)).collect();
            let keys =
                dpf::keygen(bits, &alphas, &vec![1; len], &mut insecure_seeded_rng(19)).unwrap();
            for k in &keys {
                let mut want = vec![0; len];
                Cpu.lut(k, &table, &masked, &mut want).unwrap();
                for _ in 0..2 {
                    let mut got = vec![1; len];
                    gpu.lut(k, &table, &masked, &mut got).unwrap();
                    assert!(got == want, "lut b={bits} len={len} party {}", k.party());
                }
            }
        }
    }
}

#[test]
fn dpf_full_domain_evaluation_matches_the_cpu() {
    let Some(mut gpu) = device() else { return };
    for bits in [1u32, 5, 10] {
        for len in [0usize, 1, 33] {
            let alphas = random(len, (1 << bits) - 1, 20);
            let betas = random(len, u64::MAX, 21);
            for k in dpf::keygen(bits, &alphas, &betas, &mut insecure_seeded_rng(22)).unwrap() {
                let mut want = vec![0; len << bits];
                dpf::eval_all(&k, &mut want).unwrap();
                for _ in 0..2 {
                    let mut got = vec![1; len << bits];
                    gpu.dpf_eval_all(&k, &mut got).unwrap();
                    assert!(got == want, "eval-all b={bits} len={len} party {}", k.party());
                }
            }
        }
    }
    // Chunked: 256 B of outputs per key at b = 5, so a 16 KiB binding takes 64 keys at a time.
    gpu.limit_binding(16 << 10);
    let alphas = random(200, 31, 23);
    for k in dpf::keygen(5, &alphas, &alphas, &mut insecure_seeded_rng(24)).unwrap() {
        let (mut want, mut got) = (vec![0; 200 << 5], vec![1; 200 << 5]);
        dpf::eval_all(&k, &mut want).unwrap();
        gpu.dpf_eval_all(&k, &mut got).unwrap();
        assert!(got == want, "chunked eval-all, party {}", k.party());
    }
    // A domain whose tile of outputs cannot fit one binding is a clear error, not a crash.
    let [k0, _] = dpf::keygen(10, &[0], &[1], &mut insecure_seeded_rng(25)).unwrap();
    assert!(gpu.dpf_eval_all(&k0, &mut vec![0; 1 << 10]).is_err());
}

#[test]
fn every_fss_shape_gives_the_cpu_bits() {
    use prifft::backend::gpu::{AesTables, FssShape};
    let Some(mut gpu) = device() else { return };
    let default = gpu.fss_shape();
    assert!(gpu.fits(default), "the default shape must run on {}", gpu.info().name);
    let table = random(16, u64::MAX, 30);
    let masked = random(300, u64::MAX, 31);
    let lut_alphas: Vec<u64> = random(300, 15, 32);
    let lut_keys =
        dpf::keygen(4, &lut_alphas, &vec![1; 300], &mut insecure_seeded_rng(33)).unwrap();
    let mut shapes = 0;
    for tables in AesTables::ALL {
        for workgroup in FssShape::WORKGROUPS {
            let shape = FssShape { tables, workgroup };
            if gpu.set_fss_shape(shape).is_err() {
                assert!(!gpu.fits(shape));
                continue;
            }
            shapes += 1;
            // Batches that fill no, one and several workgroups, and a partial last one.
            check_fss(&gpu, true, 64, 1 + workgroup as usize);
            check_fss(&gpu, false, 20, 300);
            for k in &lut_keys {
                let (mut want, mut got) = (vec![0; 300], vec![1; 300]);
                Cpu.lut(k, &table, &masked, &mut want).unwrap();
                gpu.lut(k, &table, &masked, &mut got).unwrap();
                assert!(got == want, "lut in {shape:?}, party {}", k.party());
            }
        }
    }
    // lavapipe and every real GPU run all nine shapes (32 KiB of workgroup memory, 1024
    // invocations); WebGPU's minimum limits would still run six.
    assert!(shapes >= 6, "only {shapes} shapes fit {}", gpu.info().name);
    let too_big = FssShape { tables: AesTables::Sixteen, workgroup: 96 };
    let err = gpu.set_fss_shape(too_big).unwrap_err().to_string();
    assert!(err.contains("invocations per workgroup"), "{err}");
}
