//! `prifft bench`: throughput on this machine, in one process (medians of repeated runs); the
//! measurements themselves are in [`measure`].

mod measure;

use std::path::PathBuf;

use clap::Subcommand;

#[cfg(not(feature = "gpu"))]
use prifft::Error;
use prifft::Result;

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// FSS keygen and evaluation, ns per key, for DCF and DPF at several input widths, on one
    /// thread and on all threads, with the AES bound of this CPU beside them.
    Fss {
        /// Print one JSON list of rows instead of a table.
        #[arg(long)]
        json: bool,
        /// log2 of the batch size.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(0..=22))]
        batch_log2: u32,
        /// Input widths in bits.
        #[arg(long, value_delimiter = ',', default_value = "16,32,64", value_parser = clap::value_parser!(u32).range(1..=64))]
        widths: Vec<u32>,
    },
    /// One local epoch of the simple CNN (cross-entropy, batch 64) over 6,000 Fashion-MNIST
    /// images: the federated clients' unit of work.
    Fl {
        /// Directory of the Fashion-MNIST IDX files.
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// One plaintext fine-tuning step of the BERT classifier (f32, candle, CPU): a batch of
    /// sentences through every layer, cross-entropy, backward through the top K layers and the
    /// head, SGD with momentum; and the same step starting from stored frozen-layer outputs.
    /// Uses all-MiniLM-L6-v2 from assets/minilm when present, random weights of its shape
    /// otherwise (the time does not depend on the values).
    Finetune {
        /// Sentences per step.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Tokens per sentence.
        #[arg(long, default_value_t = 32)]
        seq_len: usize,
        /// Trainable top layers (comma-separated list: one row each).
        #[arg(long, value_delimiter = ',', default_value = "2")]
        layers_trainable: Vec<usize>,
        /// Timed steps per row (the median is reported).
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Print one JSON list of rows instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// GPU kernels on every adapter beside the CPU, in one run: 64-bit DCF/DPF evaluation with
    /// resident keys (upload, dispatch and readback separated) and the Z_2^64 matmul in GMAC/s.
    /// Each GPU result is checked against the CPU's before it is reported. Software adapters
    /// (lavapipe) give correctness, not GPU performance.
    Gpu {
        /// Print one JSON list of rows instead of a table.
        #[arg(long)]
        json: bool,
        /// log2 of the number of keys.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(0..=24))]
        keys_log2: u32,
        /// Side of the square matmul.
        #[arg(long, default_value_t = 512)]
        matmul: usize,
        /// Time the DCF/DPF kernels in every shape the adapter can run — AES table copies in
        /// workgroup memory (1, 16, 32) × invocations per workgroup (64, 256, 1024) — not only
        /// the default (16 copies, 256); rows are labelled t<copies>/w<invocations>.
        #[arg(long)]
        sweep: bool,
    },
    /// Each secure protocol, forward and backward (exp, reciprocal, rsqrt, sigmoid, tanh, GELU,
    /// ReLU, dropout, softmax over rows of 32, layer norm over rows of 64, a 64-wide linear
    /// layer), PriFFT's and the CrypTen-style baseline's on the same inputs, between two parties
    /// in this process: online time of the slower party under each network setting, dealer
    /// time, bytes and rounds per party, preprocessing bytes per element, the error against f64
    /// (a result off by more than a sanity bound fails the bench), and the baseline/PriFFT
    /// ratios of time and bytes.
    Protocols {
        /// Elements per protocol (rounded down to whole rows for softmax, layer norm, matmul).
        #[arg(long, default_value_t = 1 << 14)]
        n: usize,
        /// Where the parties compute.
        #[arg(long, value_enum, default_value = "cpu")]
        backend: crate::cli::party::BackendArg,
        /// Network settings: mem (no delay), lan (1 Gbit/s, 0.2 ms one way), wan (100 Mbit/s,
        /// 20 ms one way).
        #[arg(long, value_delimiter = ',', default_value = "mem,lan")]
        net: Vec<NetArg>,
        /// Only these protocols (e.g. exp,softmax_bwd); all by default.
        #[arg(long, value_delimiter = ',')]
        ops: Option<Vec<String>>,
        /// Print one JSON list of rows instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// A network setting of `bench protocols`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NetArg {
    /// In memory, no delay.
    Mem,
    /// 1 Gbit/s, 0.2 ms one way.
    Lan,
    /// 100 Mbit/s, 20 ms one way.
    Wan,
}

/// Run one benchmark.
///
/// # Errors
/// Missing data; a GPU result that differs from the CPU's.
pub fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Fss { json, batch_log2, widths } => bench_fss(json, 1 << batch_log2, &widths),
        BenchCmd::Gpu { json, keys_log2, matmul, sweep } => {
            bench_gpu(json, keys_log2, matmul, sweep)
        }
        BenchCmd::Fl { data } => bench_fl(data),
        BenchCmd::Protocols { n, backend, net, ops, json } => {
            bench_protocols(n, backend, &net, ops.as_deref(), json)
        }
        BenchCmd::Finetune { batch, seq_len, layers_trainable, steps, json } => {
            let rows = measure::finetune(batch, seq_len, &layers_trainable, steps)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows).expect("serialisable"));
                return Ok(());
            }
            println!(
                "plaintext fine-tuning step (f32, candle on the CPU, {} thread(s)), batch {batch}, L = {seq_len}, {} weights, median of {steps}:",
                candle_core::utils::get_num_threads(),
                rows.first().map_or("", |r| r.weights.as_str())
            );
            for r in &rows {
                println!(
                    "  k = {}: whole network forward + top {} backward {:.1} ms; from stored frozen outputs {:.1} ms",
                    r.trainable, r.trainable, r.step_ms, r.from_frozen_ms
                );
            }
            Ok(())
        }
    }
}

fn bench_fl(data: Option<PathBuf>) -> Result<()> {
    use prifft::fl::model::{LocalLoss, SimpleCnn};
    let (train, _) = prifft::fl::data::fashion_mnist(data.as_deref())?;
    let cfg = prifft::fl::model::SgdConfig::default();
    let subset: Vec<usize> = (0..6000).collect();
    println!(
        "one local epoch (cross-entropy, SGD, batch 64) over 6,000 Fashion-MNIST images, {} thread(s), median of 3:",
        rayon::current_num_threads()
    );
    for (name, projection) in [
        ("simple CNN, classifier on r (84 → 10)", None),
        ("+ projection head 84→84→256, classifier 256 → 10 (MOON)", Some(false)),
        ("+ projection head, L2-normalised z (FedProc)", Some(true)),
    ] {
        let mut rng = prifft::prg::insecure_seeded_rng(1);
        let mut model = match projection {
            Some(normalize) => SimpleCnn::with_projection(train.classes, normalize, &mut rng),
            None => SimpleCnn::new(train.classes, &mut rng),
        };
        let mut ce = LocalLoss::CrossEntropy;
        model.train_epoch(&train, &subset[..640], &cfg, &mut ce, &mut rng); // warm-up
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = std::time::Instant::now();
            model.train_epoch(&train, &subset, &cfg, &mut ce, &mut rng);
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        println!("  {name}: {:.3} s (runs {times:.3?})", times[1]);
    }
    Ok(())
}

fn bench_protocols(
    n: usize,
    backend: crate::cli::party::BackendArg,
    nets: &[NetArg],
    ops: Option<&[String]>,
    json: bool,
) -> Result<()> {
    use prifft::net::NetModel;
    if n == 0 {
        return Err(prifft::Error::Usage("bench protocols: --n must be at least 1".into()));
    }
    if let Some(ops) = ops {
        let known = prifft::mpc::suite::op_names();
        if let Some(bad) = ops.iter().find(|o| !known.contains(o)) {
            return Err(prifft::Error::Usage(format!(
                "bench protocols: unknown protocol {bad:?}; known: {}",
                known.join(", ")
            )));
        }
    }
    let nets: Vec<(String, Option<NetModel>)> = nets
        .iter()
        .map(|n| match n {
            NetArg::Mem => ("mem".to_string(), None),
            NetArg::Lan => ("lan".to_string(), Some(NetModel::LAN)),
            NetArg::Wan => ("wan".to_string(), Some(NetModel::WAN)),
        })
        .collect();
    let backend = backend.open(false)?;
    if !json {
        println!(
            "PriFFT's protocols (P) against the CrypTen-style baseline (B), two parties in this process, backend {} (each party on its own {} thread(s)):",
            backend.name(),
            prifft::mpc::local::party_threads()
        );
        println!(
            "{:<15}{:>7}{:>5}{:>10}{:>10}{:>7}{:>11}{:>11}{:>7}{:>5}{:>5}{:>8}{:>8}{:>10}{:>10}{:>10}{:>10}",
            "op",
            "n",
            "net",
            "P ms",
            "B ms",
            "time×",
            "P bytes",
            "B bytes",
            "bytes×",
            "P rd",
            "B rd",
            "P key",
            "B pre",
            "P err",
            "B err",
            "P deal ms",
            "B deal ms"
        );
    }
    let rows = prifft::mpc::suite::run(n, ops, backend, &nets, |r| {
        if !json {
            println!(
                "{:<15}{:>7}{:>5}{:>10.2}{:>10.2}{:>7.2}{:>11}{:>11}{:>7.2}{:>5}{:>5}{:>8.0}{:>8.0}{:>10.2e}{:>10.2e}{:>10.2}{:>10.2}",
                r.op,
                r.n,
                r.net,
                r.prifft_s * 1e3,
                r.baseline_s * 1e3,
                r.time_ratio,
                r.prifft_bytes,
                r.baseline_bytes,
                r.bytes_ratio,
                r.prifft_rounds,
                r.baseline_rounds,
                r.prifft_key_bytes,
                r.baseline_preproc_bytes,
                r.prifft_max_err,
                r.baseline_max_err,
                r.prifft_dealer_s * 1e3,
                r.baseline_dealer_s * 1e3
            );
        }
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("serialisable"));
    } else {
        println!(
            "time× = B ms / P ms, bytes× = B bytes / P bytes (per party); key/pre = one party's preprocessing bytes per element; err = max |error| vs f64."
        );
    }
    Ok(())
}

fn bench_fss(json: bool, batch: usize, widths: &[u32]) -> Result<()> {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: Vec<usize> = if all > 1 { vec![1, all] } else { vec![1] };
    let aes = prifft::fss::aes::fixed_aes().implementation();
    if !json {
        println!(
            "FSS on this machine: {all} hardware thread(s), AES implementation {aes:?}, batch {batch}"
        );
        println!(
            "{:<6}{:>4}{:>9}{:>14}{:>12}{:>14}{:>12}",
            "scheme", "n", "threads", "keygen ns/key", "eval ns/key", "AES bound ns", "key bytes"
        );
    }
    let rows = measure::fss(widths, batch, &threads, |r| {
        if !json {
            println!(
                "{:<6}{:>4}{:>9}{:>14.1}{:>12.1}{:>14.1}{:>12}",
                r.scheme, r.n, r.threads, r.keygen_ns, r.eval_ns, r.aes_bound_ns, r.key_bytes
            );
        }
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("serialisable"));
        return Ok(());
    }
    println!(
        "AES bound: blocks per evaluation (DCF 2n−1, DPF n) × this CPU's measured ns per block, per thread."
    );
    let lut_batch = (batch >> 4).max(1);
    println!(
        "\nLookup tables, {lut_batch} elements, all threads: DPF full-domain expansion vs one-hot shares"
    );
    println!(
        "{:>4}{:>16}{:>14}{:>12}{:>16}{:>14}{:>12}",
        "b",
        "DPF deal ns",
        "DPF eval ns",
        "DPF key B",
        "1-hot deal ns",
        "1-hot eval ns",
        "1-hot key B"
    );
    for r in measure::lut_choice(&[4, 8, 12], lut_batch) {
        println!(
            "{:>4}{:>16.0}{:>14.0}{:>12}{:>16.0}{:>14.0}{:>12}",
            r.index_bits, r.dpf.0, r.dpf.1, r.dpf.2, r.onehot.0, r.onehot.1, r.onehot.2
        );
    }
    Ok(())
}

#[cfg(feature = "gpu")]
fn bench_gpu(json: bool, keys_log2: u32, matmul: usize, sweep: bool) -> Result<()> {
    if !json {
        println!(
            "{:<44}{:>24}{:>10}{:>11}{:>11}{:>11}{:>12}{:>10}{:>10}",
            "device",
            "kernel",
            "size",
            "upload s",
            "dispatch s",
            "readback s",
            "ns/eval",
            "best ns",
            "GMAC/s"
        );
    }
    let rows = measure::gpu(keys_log2, matmul, sweep, |r| {
        if !json {
            let opt =
                |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
            let kernel = match (r.aes_copies, r.workgroup) {
                (Some(c), Some(w)) => format!("{} t{c}/w{w}", r.kernel),
                _ => r.kernel.clone(),
            };
            println!(
                "{:<44}{:>24}{:>10}{:>11.4}{:>11.5}{:>11.4}{:>12}{:>10}{:>10}",
                r.device.chars().take(43).collect::<String>(),
                kernel,
                r.size,
                r.upload_s,
                r.dispatch_s,
                r.readback_s,
                opt(r.ns_per_eval, 2),
                opt(r.ns_per_eval_best, 2),
                opt(r.gmac_per_s, 1)
            );
        }
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("serialisable"));
    } else if rows.iter().all(|r| r.device.starts_with("CPU")) {
        println!("No GPU adapter: only the CPU rows above.");
    }
    Ok(())
}

#[cfg(not(feature = "gpu"))]
fn bench_gpu(_json: bool, _keys_log2: u32, _matmul: usize, _sweep: bool) -> Result<()> {
    Err(Error::Gpu("this build has no GPU support (built without the `gpu` feature)".into()))
}
