//! DCF, DPF and one-bit comparison key generation and evaluation: prifft (one thread and all
//! threads) beside the `fss-rs` crate (0.6.0, one thread) at the same input widths and batch
//! size, in one run.
//!
//! fss-rs's DCF is run with its 128-bit XOR group `ByteGroup<16>`: with its integer group
//! `U64Group` it does not reconstruct (a sign error), and `ByteGroup<16>` is the smallest group
//! whose DCF verifies — this bench checks its outputs before timing. Its DPF uses the same group
//! for a like-for-like comparison. Build both with the same flags, e.g.
//! `RUSTFLAGS="-C target-cpu=native" cargo bench --bench fss`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fss_rs::PointFn;
use fss_rs::dcf::{BoundState, CmpFn, Dcf, DcfImpl};
use fss_rs::dpf::{Dpf, DpfImpl};
use fss_rs::group::Group;
use fss_rs::group::byte::ByteGroup;
use fss_rs::prg::Aes128MatyasMeyerOseasPrg;
use rand::Rng;

use prifft::fss::{KeyBatch, cmp, dcf, dpf};
use prifft::mpc::PartyId;
use prifft::prg::insecure_seeded_rng;

const BATCH: usize = 1 << 16;
/// fss-rs is timed on a slice of the batch (its keys are separate allocations; the per-key cost
/// does not depend on the batch size).
const FSS_RS_KEYS: usize = 1 << 12;

fn pools() -> Vec<(String, rayon::ThreadPool)> {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut v = vec![(
        "prifft_1t".to_string(),
        rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap(),
    )];
    if all > 1 {
        v.push((
            format!("prifft_{all}t"),
            rayon::ThreadPoolBuilder::new().num_threads(all).build().unwrap(),
        ));
    }
    v
}

fn inputs(n: u32, seed: u64) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let mut rng = insecure_seeded_rng(seed);
    let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
    let mut draw = || (0..BATCH).map(|_| rng.random::<u64>() & mask).collect::<Vec<_>>();
    let alphas = draw();
    let xs = draw();
    let betas = draw();
    (alphas, betas, xs)
}

fn to_be<const B: usize>(x: u64) -> [u8; B] {
    let bytes = x.to_be_bytes();
    std::array::from_fn(|i| bytes[8 - B + i])
}

macro_rules! fss_rs_bench {
    ($c:expr, $name:expr, $n:expr, $in_blen:literal, $alphas:expr, $xs:expr) => {{
        let prg_keys: [[u8; 16]; 4] = std::array::from_fn(|i| [i as u8 + 1; 16]);
        let mut rng = insecure_seeded_rng(99);
        let mut seeds = || -> [[u8; 16]; 2] { [rng.random(), rng.random()] };
        let beta = ByteGroup([7u8; 16]);
        let alphas: Vec<[u8; $in_blen]> =
            $alphas[..FSS_RS_KEYS].iter().map(|&a| to_be::<$in_blen>(a)).collect();
        let xs: Vec<[u8; $in_blen]> =
            $xs[..FSS_RS_KEYS].iter().map(|&x| to_be::<$in_blen>(x)).collect();
        if $name == "dcf" {
            let prg =
                Aes128MatyasMeyerOseasPrg::<16, 2, 4>::new(&std::array::from_fn(|i| &prg_keys[i]));
            let scheme = DcfImpl::<$in_blen, 16, _>::new(prg);
            let f = |a: &[u8; $in_blen]| CmpFn {
                alpha: *a,
                beta: beta.clone(),
                bound: BoundState::LtAlpha,
            };
            let all_seeds: Vec<[[u8; 16]; 2]> = (0..FSS_RS_KEYS).map(|_| seeds()).collect();
            let keys: Vec<_> = alphas
                .iter()
                .zip(&all_seeds)
                .map(|(a, s)| scheme.r#gen(&f(a), [&s[0], &s[1]]))
                .collect();
            // Check its outputs (XOR group): y0 ⊕ y1 = β·[x < α].
            for k in 0..64 {
                let (mut y0, mut y1) = (ByteGroup::zero(), ByteGroup::zero());
                scheme.eval(false, &keys[k], &[&xs[k]], &mut [&mut y0]);
                // Its keys carry both parties' root seeds; party 1 evaluates with its own first.
                let mut k1 = keys[k].clone();
                k1.s0s = vec![keys[k].s0s[1]];
                scheme.eval(true, &k1, &[&xs[k]], &mut [&mut y1]);
                let want = if $xs[k] < $alphas[k] { beta.clone() } else { ByteGroup::zero() };
                assert!((y0 + y1).0 == want.0, "fss-rs DCF does not verify");
            }
            keygen_and_eval(
                $c,
                $name,
                ("fss-rs_1t", $n, FSS_RS_KEYS),
                || {
                    let keys: Vec<_> = alphas
                        .iter()
                        .zip(&all_seeds)
                        .map(|(a, s)| scheme.r#gen(&f(a), [&s[0], &s[1]]))
                        .collect();
                    std::hint::black_box(keys);
                },
                || {
                    let mut y = ByteGroup::zero();
                    for (k, x) in keys.iter().zip(&xs) {
                        scheme.eval(false, k, &[x], &mut [&mut y]);
                    }
                    std::hint::black_box(y);
                },
            );
        } else {
            let prg =
                Aes128MatyasMeyerOseasPrg::<16, 1, 2>::new(&std::array::from_fn(|i| &prg_keys[i]));
            let scheme = DpfImpl::<$in_blen, 16, _>::new(prg);
            let f = |a: &[u8; $in_blen]| PointFn { alpha: *a, beta: beta.clone() };
            let all_seeds: Vec<[[u8; 16]; 2]> = (0..FSS_RS_KEYS).map(|_| seeds()).collect();
            let keys: Vec<_> = alphas
                .iter()
                .zip(&all_seeds)
                .map(|(a, s)| scheme.r#gen(&f(a), [&s[0], &s[1]]))
                .collect();
            for k in 0..64 {
                let x = if k % 2 == 0 { alphas[k] } else { xs[k] };
                let (mut y0, mut y1) = (ByteGroup::zero(), ByteGroup::zero());
                scheme.eval(false, &keys[k], &[&x], &mut [&mut y0]);
                let mut k1 = keys[k].clone();
                k1.s0s = vec![keys[k].s0s[1]];
                scheme.eval(true, &k1, &[&x], &mut [&mut y1]);
                let want = if x == alphas[k] { beta.clone() } else { ByteGroup::zero() };
                assert!((y0 + y1).0 == want.0, "fss-rs DPF does not verify");
            }
            keygen_and_eval(
                $c,
                $name,
                ("fss-rs_1t", $n, FSS_RS_KEYS),
                || {
                    let keys: Vec<_> = alphas
                        .iter()
                        .zip(&all_seeds)
                        .map(|(a, s)| scheme.r#gen(&f(a), [&s[0], &s[1]]))
                        .collect();
                    std::hint::black_box(keys);
                },
                || {
                    let mut y = ByteGroup::zero();
                    for (k, x) in keys.iter().zip(&xs) {
                        scheme.eval(false, k, &[x], &mut [&mut y]);
                    }
                    std::hint::black_box(y);
                },
            );
        }
    }};
}

fn prifft_bench(c: &mut Criterion, name: &str, n: u32) {
    let (alphas, betas, xs) = inputs(n, n as u64);
    type KeygenInto = fn(
        u32,
        &[u64],
        &[u64],
        &mut prifft::prg::ChaCha20Rng,
        &mut [KeyBatch; 2],
    ) -> Result<(), prifft::error::KeyError>;
    type Eval = fn(&KeyBatch, &[u64], &mut [u64]) -> Result<(), prifft::error::KeyError>;
    let (keygen, eval): (KeygenInto, Eval) = match name {
        "dcf" => (dcf::keygen_into, dcf::eval),
        "dpf" => (dpf::keygen_into, dpf::eval),
        _ => (|n, a, _, rng, keys| cmp::keygen_into(n, a, rng, keys), cmp::eval),
    };
    let mut rng = insecure_seeded_rng(5);
    let mut keys = [KeyBatch::empty(PartyId::P0), KeyBatch::empty(PartyId::P1)];
    keygen(n, &alphas, &betas, &mut rng, &mut keys).unwrap();
    // Check before timing: both parties reconstruct β·[x < α] (DCF) or β·[x = α] (DPF).
    let (mut y0, mut y1) = (vec![0; BATCH], vec![0; BATCH]);
    eval(&keys[0], &xs, &mut y0).unwrap();
    eval(&keys[1], &xs, &mut y1).unwrap();
    for k in 0..BATCH {
        match name {
            "dcf" => assert_eq!(y0[k].wrapping_add(y1[k]), betas[k] * (xs[k] < alphas[k]) as u64),
            "dpf" => assert_eq!(y0[k].wrapping_add(y1[k]), betas[k] * (xs[k] == alphas[k]) as u64),
            _ => assert_eq!(y0[k] ^ y1[k], (xs[k] < alphas[k]) as u64),
        }
    }
    let mut out = vec![0u64; BATCH];
    // Key generation is timed into its own reused buffers; evaluation reads the checked keys.
    let mut scratch = [KeyBatch::empty(PartyId::P0), KeyBatch::empty(PartyId::P1)];
    for (label, pool) in pools() {
        keygen_and_eval(
            c,
            name,
            (&label, n, BATCH),
            || pool.install(|| keygen(n, &alphas, &betas, &mut rng, &mut scratch).unwrap()),
            || pool.install(|| eval(&keys[0], &xs, &mut out).unwrap()),
        );
    }
}

/// The `{name}_keygen` and `{name}_eval` groups for one implementation (`label`) at width n,
/// `elements` keys per iteration.
fn keygen_and_eval(
    c: &mut Criterion,
    name: &str,
    (label, n, elements): (&str, u32, usize),
    mut keygen: impl FnMut(),
    mut eval: impl FnMut(),
) {
    for (kind, f) in [("keygen", &mut keygen as &mut dyn FnMut()), ("eval", &mut eval)] {
        let mut group = c.benchmark_group(format!("{name}_{kind}"));
        group.sample_size(10).throughput(Throughput::Elements(elements as u64));
        group.bench_function(BenchmarkId::new(label, n), |b| b.iter(&mut *f));
        group.finish();
    }
}

fn bench(c: &mut Criterion) {
    // The one-bit comparison (fss::cmp) beside the DCF: fss-rs has no such scheme, so its DCF
    // (the `dcf` groups' fss-rs rows) is the baseline for both.
    for n in [16u32, 32, 64] {
        prifft_bench(c, "cmp", n);
    }
    for name in ["dcf", "dpf"] {
        for n in [16u32, 32, 64] {
            prifft_bench(c, name, n);
            let (alphas, _, xs) = inputs(n, n as u64);
            match n {
                16 => fss_rs_bench!(c, name, n, 2, alphas, xs),
                32 => fss_rs_bench!(c, name, n, 4, alphas, xs),
                _ => fss_rs_bench!(c, name, n, 8, alphas, xs),
            }
        }
    }
}

criterion_group! {
    name = benches;
    // Criterion's plots draw text with the system's fonts, which a fresh server lacks (the run
    // then panics after measuring); the estimates are printed and kept under target/criterion.
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
