//! Measurements behind `prifft bench`: FSS key generation and evaluation throughput.
//!
//! Every figure is measured in this process, on this machine, in this run: the median of
//! several repetitions after a warm-up, so ratios between rows are meaningful and absolute
//! numbers say which machine produced them.

use std::time::Instant;

use prifft::fss::KeyError;
use prifft::fss::aes::fixed_aes;
use prifft::fss::{KeyBatch, Scheme, cmp, dcf, dpf};
use prifft::party::PartyId;
use prifft::prg::{ChaCha20Rng, os_rng};

/// One row of `prifft bench fss`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FssRow {
    /// "dcf" or "dpf".
    pub scheme: String,
    /// Input width.
    pub n: u32,
    /// Keys per batch.
    pub batch: usize,
    /// Threads used.
    pub threads: usize,
    /// Dealer time per key (both parties' keys), nanoseconds.
    pub keygen_ns: f64,
    /// One party's evaluation time per key, nanoseconds.
    pub eval_ns: f64,
    /// One party's key size in bytes.
    pub key_bytes: usize,
    /// Lower bound on eval time per key per thread from this machine's measured AES rate.
    pub aes_bound_ns: f64,
}

type KeygenInto =
    fn(u32, &[u64], &[u64], &mut ChaCha20Rng, &mut [KeyBatch; 2]) -> Result<(), KeyError>;
type Eval = fn(&KeyBatch, &[u64], &mut [u64]) -> Result<(), KeyError>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time_ns(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_nanos() as f64
            })
            .collect(),
    )
}

/// Nanoseconds per fixed-key AES-MMO block on one thread (large independent batches).
pub fn aes_ns_per_block() -> f64 {
    let aes = fixed_aes();
    let mut blocks: Vec<u128> = (0..4096u128).collect();
    let rounds = 64;
    time_ns(5, || {
        for _ in 0..rounds {
            aes.hash_in_place(&mut blocks);
        }
    }) / (rounds * blocks.len()) as f64
}

/// AES blocks one evaluation needs.
pub fn blocks_per_eval(scheme: Scheme, n: u32) -> u32 {
    match scheme {
        Scheme::Dcf => 2 * n - 1,
        Scheme::Dpf => n,
        Scheme::Cmp => n.saturating_sub(prifft::fss::cmp::LEAF_BITS) + 1,
    }
}

/// Run the FSS benchmark for the given widths, batch size and thread counts.
///
/// # Panics
/// If a thread pool cannot be built (out of resources).
pub fn fss(
    widths: &[u32],
    batch: usize,
    thread_counts: &[usize],
    mut progress: impl FnMut(&FssRow),
) -> Vec<FssRow> {
    let ns_per_block = {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("thread pool");
        pool.install(aes_ns_per_block)
    };
    let mut rows = Vec::new();
    let mut rng = os_rng();
    for scheme in [Scheme::Dcf, Scheme::Dpf, Scheme::Cmp] {
        for &n in widths {
            let domain_mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
            let alphas: Vec<u64> =
                (0..batch).map(|_| rand::Rng::random::<u64>(&mut rng) & domain_mask).collect();
            let betas: Vec<u64> = (0..batch).map(|_| rand::Rng::random::<u64>(&mut rng)).collect();
            let xs: Vec<u64> =
                (0..batch).map(|_| rand::Rng::random::<u64>(&mut rng) & domain_mask).collect();
            let (keygen, eval): (KeygenInto, Eval) = match scheme {
                Scheme::Dcf => (dcf::keygen_into, dcf::eval),
                Scheme::Dpf => (dpf::keygen_into, dpf::eval),
                Scheme::Cmp => (|n, a, _, rng, keys| cmp::keygen_into(n, a, rng, keys), cmp::eval),
            };
            for &threads in thread_counts {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("thread pool");
                // The dealer reuses its key buffers from batch to batch (as a streaming dealer does).
                let mut keys = [KeyBatch::empty(PartyId::P0), KeyBatch::empty(PartyId::P1)];
                let keygen_ns = pool.install(|| {
                    time_ns(3, || {
                        keygen(n, &alphas, &betas, &mut rng, &mut keys).expect("valid inputs")
                    })
                }) / batch as f64;
                let k0 = &keys[0];
                let mut out = vec![0u64; batch];
                let eval_ns = pool
                    .install(|| time_ns(5, || eval(k0, &xs, &mut out).expect("valid inputs")))
                    / batch as f64;
                let row = FssRow {
                    scheme: scheme.to_string().to_lowercase(),
                    n,
                    batch,
                    threads,
                    keygen_ns,
                    eval_ns,
                    key_bytes: KeyBatch::key_bytes(scheme, n),
                    aes_bound_ns: blocks_per_eval(scheme, n) as f64 * ns_per_block / threads as f64,
                };
                progress(&row);
                rows.push(row);
            }
        }
    }
    rows
}

/// Rounds of the GPU FSS timings (each times every shape once; the median is reported).
#[cfg(feature = "gpu")]
const GPU_ROUNDS: usize = 5;
/// Dispatches per timed submission.
#[cfg(feature = "gpu")]
const GPU_REPS: usize = 10;

/// One row of `prifft bench gpu`.
#[cfg(feature = "gpu")]
#[derive(Clone, Debug, serde::Serialize)]
pub struct GpuRow {
    /// Device (adapter name and backend, or the CPU).
    pub device: String,
    /// What was measured: `dcf64_eval`, `dpf64_eval`, `matmul_limbs`, `matmul_int64`.
    pub kernel: String,
    /// GPU FSS rows: copies of the AES table per workgroup (`prifft::backend::gpu::FssShape`).
    pub aes_copies: Option<u32>,
    /// GPU FSS rows: invocations per workgroup.
    pub workgroup: Option<u32>,
    /// Keys, or m = k = n of the matmul.
    pub size: usize,
    /// Upload seconds (0 on the CPU).
    pub upload_s: f64,
    /// Seconds of one synchronised dispatch with resident inputs (the whole call on the CPU).
    pub dispatch_s: f64,
    /// Readback seconds (0 on the CPU).
    pub readback_s: f64,
    /// Nanoseconds per key evaluation (FSS rows), dispatch only.
    pub ns_per_eval: Option<f64>,
    /// GPU FSS rows: nanoseconds per key evaluation in the fastest of the rounds (`ns_per_eval`
    /// is their median).
    pub ns_per_eval_best: Option<f64>,
    /// Nanoseconds per key including upload and readback (FSS rows, GPU).
    pub ns_per_eval_with_transfer: Option<f64>,
    /// Multiply-accumulates per second / 1e9 (matmul rows).
    pub gmac_per_s: Option<f64>,
}

/// Run the GPU benchmark on every adapter, with the CPU baseline measured in the same run.
/// Every GPU output is compared with the CPU's before its time is reported.
///
/// # Errors
/// Device errors, or [`Error::Gpu`](prifft::Error::Gpu) when a GPU result differs from the CPU.
#[cfg(feature = "gpu")]
pub fn gpu(
    keys_log2: u32,
    matmul: usize,
    sweep: bool,
    mut progress: impl FnMut(&GpuRow),
) -> prifft::Result<Vec<GpuRow>> {
    use prifft::backend::gpu::{AesTables, FssShape, GpuDevice};
    use prifft::backend::{Backend, Cpu};
    use rand::Rng;

    let mut rng = os_rng();
    let batch = 1usize << keys_log2;
    let alphas: Vec<u64> = (0..batch).map(|_| rng.random()).collect();
    let betas: Vec<u64> = (0..batch).map(|_| rng.random()).collect();
    let xs: Vec<u64> = (0..batch).map(|_| rng.random()).collect();
    let a: Vec<u64> = (0..matmul * matmul).map(|_| rng.random()).collect();
    let b: Vec<u64> = (0..matmul * matmul).map(|_| rng.random()).collect();
    let macs = (matmul * matmul * matmul) as f64;
    let mut rows = Vec::new();
    let mut emit = |row: GpuRow, rows: &mut Vec<GpuRow>| {
        progress(&row);
        rows.push(row);
    };

    let cpu_name = Cpu.name();
    let mut cpu_out: Vec<(Scheme, Vec<u64>)> = Vec::new();
    let mut keys_by_scheme = Vec::new();
    for scheme in [Scheme::Dcf, Scheme::Dpf, Scheme::Cmp] {
        let [k0, _] = match scheme {
            Scheme::Dcf => dcf::keygen(64, &alphas, &betas, &mut rng)?,
            Scheme::Dpf => dpf::keygen(64, &alphas, &betas, &mut rng)?,
            Scheme::Cmp => cmp::keygen(64, &alphas, &mut rng)?,
        };
        let mut out = vec![0u64; batch];
        let secs = time_ns(3, || Cpu.eval_fss(&k0, &xs, &mut out).expect("valid")) / 1e9;
        emit(
            GpuRow {
                device: cpu_name.clone(),
                kernel: format!("{}64_eval", scheme.to_string().to_lowercase()),
                aes_copies: None,
                workgroup: None,
                size: batch,
                upload_s: 0.0,
                dispatch_s: secs,
                readback_s: 0.0,
                ns_per_eval: Some(secs * 1e9 / batch as f64),
                ns_per_eval_best: None,
                ns_per_eval_with_transfer: None,
                gmac_per_s: None,
            },
            &mut rows,
        );
        cpu_out.push((scheme, out));
        keys_by_scheme.push(k0);
    }
    let mut cpu_mm = vec![0u64; matmul * matmul];
    let secs =
        time_ns(3, || Cpu.matmul(&a, &b, (matmul, matmul, matmul), &mut cpu_mm).expect("valid"))
            / 1e9;
    emit(
        GpuRow {
            device: cpu_name,
            kernel: "matmul".into(),
            aes_copies: None,
            workgroup: None,
            size: matmul,
            upload_s: 0.0,
            dispatch_s: secs,
            readback_s: 0.0,
            ns_per_eval: None,
            ns_per_eval_best: None,
            ns_per_eval_with_transfer: None,
            gmac_per_s: Some(macs / secs / 1e9),
        },
        &mut rows,
    );

    // Lookup tables: 8-bit index, 2^(keys_log2 − 4) elements, uploads included.
    let lut_len = (batch >> 4).max(1);
    let table: Vec<u64> = (0..256).map(|_| rng.random()).collect();
    let [lut_keys, _] = dpf::keygen(
        8,
        &alphas[..lut_len].iter().map(|a| a & 255).collect::<Vec<_>>(),
        &vec![1; lut_len],
        &mut rng,
    )?;
    let lut_row = |device: String, secs: f64| GpuRow {
        device,
        kernel: "lut8_with_transfer".into(),
        aes_copies: None,
        workgroup: None,
        size: lut_len,
        upload_s: 0.0,
        dispatch_s: secs,
        readback_s: 0.0,
        ns_per_eval: Some(secs * 1e9 / lut_len as f64),
        ns_per_eval_best: None,
        ns_per_eval_with_transfer: None,
        gmac_per_s: None,
    };
    let mut cpu_lut = vec![0u64; lut_len];
    let secs =
        time_ns(3, || Cpu.lut(&lut_keys, &table, &xs[..lut_len], &mut cpu_lut).expect("valid"))
            / 1e9;
    emit(lut_row(Cpu.name(), secs), &mut rows);

    for gpu in GpuDevice::open_all() {
        let name = Backend::name(&gpu);
        let mut got = vec![0u64; lut_len];
        let secs =
            time_ns(3, || gpu.lut(&lut_keys, &table, &xs[..lut_len], &mut got).expect("valid"))
                / 1e9;
        if got != cpu_lut {
            return Err(prifft::Error::Gpu(format!("{name}: lookup outputs differ from the CPU")));
        }
        emit(lut_row(name.clone(), secs), &mut rows);
        // The default shape, or (sweep) every shape the adapter runs.
        let default_shape = gpu.fss_shape();
        let shapes: Vec<FssShape> = if sweep {
            AesTables::ALL
                .into_iter()
                .flat_map(|tables| {
                    FssShape::WORKGROUPS.map(|workgroup| FssShape { tables, workgroup })
                })
                .filter(|s| gpu.fits(*s))
                .collect()
        } else {
            vec![default_shape]
        };
        for (keys, (scheme, want)) in keys_by_scheme.iter().zip(&cpu_out) {
            let (upload, timed) = gpu.time_fss_shapes(keys, &xs, &shapes, GPU_ROUNDS, GPU_REPS)?;
            for t in timed {
                if &t.outputs != want {
                    return Err(prifft::Error::Gpu(format!(
                        "{name}: {scheme} outputs differ from the CPU ({:?})",
                        t.shape
                    )));
                }
                let per_key = |secs: f64| Some(secs * 1e9 / batch as f64);
                emit(
                    GpuRow {
                        device: name.clone(),
                        kernel: format!("{}64_eval", scheme.to_string().to_lowercase()),
                        aes_copies: Some(t.shape.tables.copies()),
                        workgroup: Some(t.shape.workgroup),
                        size: batch,
                        upload_s: upload,
                        dispatch_s: t.dispatch_median,
                        readback_s: t.readback,
                        ns_per_eval: per_key(t.dispatch_median),
                        ns_per_eval_best: per_key(t.dispatch_min),
                        ns_per_eval_with_transfer: per_key(upload + t.dispatch_median + t.readback),
                        gmac_per_s: None,
                    },
                    &mut rows,
                );
            }
        }
        let mut variants = vec![false];
        if gpu.has_int64() {
            variants.push(true);
        }
        for int64 in variants {
            // Median of GPU_ROUNDS timings: the first ones can run at idle clocks.
            let mut timed = Vec::with_capacity(GPU_ROUNDS);
            for _ in 0..GPU_ROUNDS {
                let (t, got) = gpu.time_matmul(&a, &b, (matmul, matmul, matmul), int64, 5)?;
                if got != cpu_mm {
                    return Err(prifft::Error::Gpu(format!("{name}: matmul differs from the CPU")));
                }
                timed.push(t);
            }
            timed.sort_by(|x, y| x.dispatch.total_cmp(&y.dispatch));
            let t = timed[GPU_ROUNDS / 2];
            emit(
                GpuRow {
                    device: name.clone(),
                    kernel: if int64 { "matmul_int64" } else { "matmul_limbs" }.into(),
                    aes_copies: None,
                    workgroup: None,
                    size: matmul,
                    upload_s: t.upload,
                    dispatch_s: t.dispatch,
                    readback_s: t.readback,
                    ns_per_eval: None,
                    ns_per_eval_best: None,
                    ns_per_eval_with_transfer: None,
                    gmac_per_s: Some(macs / t.dispatch / 1e9),
                },
                &mut rows,
            );
        }
    }
    Ok(rows)
}

/// One row of the lookup-table comparison in `prifft bench fss`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LutRow {
    /// Index bits b.
    pub index_bits: u32,
    /// Elements.
    pub batch: usize,
    /// DPF: dealer ns per element (both parties), one party's evaluation ns, key bytes.
    pub dpf: (f64, f64, usize),
    /// One-hot shares: dealer ns per element, evaluation ns, key bytes.
    pub onehot: (f64, f64, usize),
}

/// Lookup tables two ways — DPF full-domain expansion vs one-hot shares from the dealer — at
/// several index widths, on all threads.
///
/// # Panics
/// Never for the widths used (1..=24).
pub fn lut_choice(widths: &[u32], batch: usize) -> Vec<LutRow> {
    use prifft::mpc::gates::lut;
    use rand::Rng;
    let mut rng = os_rng();
    widths
        .iter()
        .map(|&b| {
            let domain = 1usize << b;
            let table: Vec<u64> = (0..domain).map(|_| rng.random()).collect();
            let masks: Vec<u64> = (0..batch).map(|_| rng.random()).collect();
            let masked: Vec<u64> = (0..batch).map(|_| rng.random()).collect();
            let mut out = vec![0u64; batch];
            let mut dpf_keys = None;
            let dpf_gen =
                time_ns(3, || dpf_keys = Some(lut::keygen(b, &masks, &mut rng).expect("valid")))
                    / batch as f64;
            let [d0, _] = dpf_keys.expect("generated");
            let dpf_eval = time_ns(3, || {
                lut::lookup(&prifft::backend::Cpu, &d0, &table, &masked, &mut out).expect("valid")
            }) / batch as f64;
            let mut hot_keys = None;
            let hot_gen = time_ns(3, || {
                hot_keys = Some(lut::onehot_keygen(b, &masks, &mut rng).expect("valid"))
            }) / batch as f64;
            let [h0, _] = hot_keys.expect("generated");
            let hot_eval =
                time_ns(3, || lut::onehot_lookup(&h0, &table, &masked, &mut out).expect("valid"))
                    / batch as f64;
            LutRow {
                index_bits: b,
                batch,
                dpf: (dpf_gen, dpf_eval, KeyBatch::key_bytes(Scheme::Dpf, b)),
                onehot: (hot_gen, hot_eval, 8 * domain),
            }
        })
        .collect()
}

/// One row of `prifft bench finetune`.
#[derive(Debug, serde::Serialize)]
pub struct FinetuneRow {
    /// Trainable top layers.
    pub trainable: usize,
    /// Median ms of a whole step (every layer forward, top `trainable` backward, SGD).
    pub step_ms: f64,
    /// Median ms of a step from stored frozen-layer outputs.
    pub from_frozen_ms: f64,
    /// "all-MiniLM-L6-v2" or "random".
    pub weights: String,
}

/// Time plaintext fine-tuning steps (see `prifft bench finetune`).
///
/// # Errors
/// A malformed model file; too many trainable layers; zero steps or batch.
pub fn finetune(
    batch: usize,
    seq_len: usize,
    trainable: &[usize],
    steps: usize,
) -> prifft::Result<Vec<FinetuneRow>> {
    use prifft::model::bert::Classifier;
    use prifft::model::train::{self, Sgd};
    use prifft::model::{Assets, BertConfig, Pooling, TokenBatch, Weights};
    if steps == 0 || batch == 0 || seq_len < 2 {
        return Err(prifft::Error::Usage(
            "bench finetune needs at least one step, a batch of 1 and a length of 2".into(),
        ));
    }
    let (weights, name) = if Assets::dir(None).join("model.safetensors").is_file() {
        (Assets::open(None)?.weights, "all-MiniLM-L6-v2")
    } else {
        (Weights::random(&BertConfig::minilm_l6(), 1, candle_core::DType::F32)?, "random")
    };
    let vocab = weights.config().vocab_size as u32;
    use rand::Rng;
    let mut rng = prifft::prg::insecure_seeded_rng(7);
    let tokens = TokenBatch {
        ids: (0..batch * seq_len).map(|_| rng.random_range(1000..vocab)).collect(),
        mask: vec![1; batch * seq_len],
        rows: batch,
        seq_len,
    };
    let labels: Vec<u32> = (0..batch).map(|i| (i % 2) as u32).collect();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut rows = Vec::new();
    for &k in trainable {
        let model = Classifier::new(&weights, k, Pooling::Mean, 1)?;
        let vars = model.trainable_vars().into_iter().map(|(_, v)| v).collect();
        let mut sgd = Sgd::new(vars, 1e-4, 0.9);
        let mut dropout = train::stream(1, 2);
        let t = model.tensors(&tokens)?;
        let frozen = model.frozen(&t)?;
        let mut whole = Vec::new();
        let mut cached = Vec::new();
        for i in 0..=steps {
            let t0 = std::time::Instant::now();
            train::step(&model, &mut sgd, &tokens, &labels, &mut dropout)?;
            let ms = 1e3 * t0.elapsed().as_secs_f64();
            let t1 = std::time::Instant::now();
            train::step_from(&model, &mut sgd, &frozen, &t, &labels, &mut dropout)?;
            let ms_cached = 1e3 * t1.elapsed().as_secs_f64();
            if i > 0 {
                // The first pair warms up allocations and thread pools.
                whole.push(ms);
                cached.push(ms_cached);
            }
        }
        rows.push(FinetuneRow {
            trainable: k,
            step_ms: median(whole),
            from_frozen_ms: median(cached),
            weights: name.to_string(),
        });
    }
    Ok(rows)
}
