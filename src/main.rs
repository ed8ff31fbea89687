//! The `prifft` command line.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use prifft::mpc::{PartyId, Preproc};
use prifft::net::tcp::{Listener, TcpChannel, TcpConfig};
use prifft::net::{Channel, NetModel, Shaped};
use prifft::ring::FixedPoint;
use prifft::session::{self, MatmulSpec, PartyOptions};
use prifft::{Error, Result};

/// prifft: privacy-preserving federated fine-tuning with function secret sharing.
///
/// Two parties — a server (model owner) and a client (data owner) — compute on additive secret
/// shares over Z_2^64 with preprocessing from a trusted dealer. Start with `prifft demo`, which
/// runs the dealer and both parties as separate processes talking TCP on this machine.
#[derive(Parser, Debug)]
#[command(name = "prifft", version, about, long_about)]
struct Cli {
    /// Recompute a random sample of every GPU result on the CPU and fail on any difference
    /// (same as PRIFFT_GPU_CROSSCHECK=1).
    #[arg(long, global = true)]
    gpu_crosscheck: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// List GPU adapters (wgpu) with backend, type, features and limits.
    Devices {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Dealer: write both parties' preprocessing files (Beaver matrix triples) for a session.
    ///
    /// Writes DIR/server.pp and DIR/client.pp (owner-only permissions: they hold secret shares).
    /// Give each file to its party only, and use each pair for one session: the parties refuse
    /// files from different dealer runs, and a store never hands out the same material twice.
    Deal {
        #[command(flatten)]
        shape: ShapeArgs,
        /// Output directory.
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
    },
    /// Run one party of the secure matrix-product session over TCP.
    ///
    /// The client holds X (m×k), the server W (k×n); together they compute shares of X·W in
    /// fixed point with Beaver triples from `prifft deal`. Example (the two parties in two
    /// terminals):
    ///
    ///   prifft deal --out-dir /tmp/pp
    ///   prifft party --role server --listen 127.0.0.1:7000 --preproc /tmp/pp/server.pp
    ///   prifft party --role client --connect 127.0.0.1:7000 --preproc /tmp/pp/client.pp
    #[command(verbatim_doc_comment)]
    Party(PartyArgs),
    /// Split Fashion-MNIST among clients (IID, Dirichlet label skew or shards) and print each
    /// client's class histogram — the non-IID setting of the federated-learning experiments.
    Partition {
        /// iid, dirichlet or shards.
        #[arg(long, default_value = "dirichlet")]
        scheme: String,
        /// Dirichlet concentration β (smaller = more skewed).
        #[arg(long, default_value_t = 0.5)]
        beta: f64,
        /// Number of clients.
        #[arg(long, default_value_t = 10)]
        clients: usize,
        /// Minimum samples per client (Dirichlet).
        #[arg(long, default_value_t = 10)]
        min_per_client: usize,
        /// Shards per client (shards).
        #[arg(long, default_value_t = 2)]
        shards_per_client: usize,
        /// Seed of the split (default: random).
        #[arg(long)]
        seed: Option<u64>,
        /// Also draw the histogram as stacked bars into this PNG file.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Directory of the Fashion-MNIST IDX files.
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Federated training on Fashion-MNIST (or MNIST-5k) split among clients by Dirichlet label
    /// skew: every algorithm on the same partition per seed, with the same rounds, local epochs
    /// and optimiser, on the simple CNN with a projection head (z L2-normalised for FedProc).
    /// Shows a progress bar per run, writes a CSV of the test accuracy after every round
    /// (algo, beta, seed, round, test_accuracy) and a PNG plot of accuracy against round
    /// (mean over seeds, band = range), and prints the final table (mean ± std over seeds).
    ///
    /// Example (the README's table): prifft fl --algo fedavg,fedprox,moon,fedproc
    ///   --fedproc-tau 1,0.5,0.1 --beta 0.1 --rounds 20 --seeds 3
    #[command(verbatim_doc_comment)]
    Fl {
        /// Comma-separated algorithms: fedavg, fedprox, moon, fedproc.
        #[arg(long, value_delimiter = ',', default_value = "fedavg,fedprox,moon,fedproc")]
        algo: Vec<String>,
        /// Dirichlet concentration β (smaller = more skewed).
        #[arg(long, default_value_t = 0.5)]
        beta: f64,
        /// Clients.
        #[arg(long, default_value_t = 10)]
        clients: usize,
        /// Communication rounds.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Local epochs per round.
        #[arg(long, default_value_t = 1)]
        local_epochs: usize,
        /// Fraction of clients per round.
        #[arg(long, default_value_t = 1.0)]
        fraction: f64,
        /// Local SGD learning rate (momentum 0.9, weight decay 1e-5 as fedproc.md).
        #[arg(long, default_value_t = 0.01)]
        lr: f32,
        /// Local batch size.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// FedProx μ.
        #[arg(long, default_value_t = 0.01)]
        mu: f32,
        /// MOON's weight μ of the model-contrastive loss.
        #[arg(long, default_value_t = 1.0)]
        moon_mu: f32,
        /// MOON's temperature τ.
        #[arg(long, default_value_t = 0.5)]
        moon_tau: f32,
        /// FedProc's prototype-loss temperature τ; several values run FedProc once per value
        /// (1 = cosine logits, the paper's choice).
        #[arg(long, value_delimiter = ',', default_value = "1")]
        fedproc_tau: Vec<f32>,
        /// FedProc's α horizon H: α_t = 1 − t/H (default: the number of rounds, as the paper).
        #[arg(long)]
        fedproc_horizon: Option<usize>,
        /// Number of seeds (seeds 1..=K; each seed fixes the partition and the initialisation).
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        /// Aggregate with pairwise masks so the server sees only the sums of the updates (and
        /// of FedProc's per-class sums and counts).
        #[arg(long)]
        secure_agg: bool,
        /// CSV output path.
        #[arg(long, default_value = "fl_results.csv")]
        out: PathBuf,
        /// PNG plot path (default: the CSV path with .png).
        #[arg(long)]
        plot: Option<PathBuf>,
        /// fashion-mnist (60,000 / 10,000 images, Debian's dataset-fashion-mnist) or mnist-5k
        /// (4,000 / 1,000 digits from scripts/fetch-assets.sh: a quick run).
        #[arg(long, default_value = "fashion-mnist")]
        dataset: String,
        /// Directory of the Fashion-MNIST IDX files, or the MNIST-5k file.
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Print `prifft fl`'s table again (with the per-seed difference from FedAvg) and redraw
    /// its plot from one or more of its CSV files, without training. Runs of one algorithm
    /// label across files are matched by seed.
    ///
    /// Example: prifft fl-report --csv docs/results/fl_beta0.5.csv --csv docs/results/fl_h10.csv
    #[command(verbatim_doc_comment)]
    FlReport {
        /// CSV files written by `prifft fl` (algo,beta,seed,round,test_accuracy).
        #[arg(long, required = true)]
        csv: Vec<PathBuf>,
        /// Also draw accuracy against round into this PNG file.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Title of the plot.
        #[arg(long, default_value = "test accuracy per round")]
        title: String,
    },
    /// Train the simple CNN on all of Fashion-MNIST (no federation) and print the test accuracy
    /// after each epoch: the reference the federated runs are compared with.
    Centralized {
        /// Epochs.
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        /// Seed of initialisation and shuffling (default: random).
        #[arg(long)]
        seed: Option<u64>,
        /// Directory of the Fashion-MNIST IDX files.
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Measure throughput on this machine (medians of repeated runs, in one process).
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Run the whole two-process demo on this machine: dealer, server and client processes over
    /// TCP on 127.0.0.1, then print each party's result check, bytes and rounds.
    Demo {
        #[command(flatten)]
        shape: ShapeArgs,
        /// Network model applied to both parties: lan (1 Gbit/s, 0.2 ms), wan (100 Mbit/s,
        /// 20 ms) or MBITS:MILLIS.
        #[arg(long)]
        net: Option<NetModel>,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCmd {
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
}

#[derive(Args, Debug, Clone, Copy)]
struct ShapeArgs {
    /// Rows of the client's matrix X.
    #[arg(long, default_value_t = 64)]
    m: usize,
    /// Columns of X = rows of the server's matrix W.
    #[arg(long, default_value_t = 64)]
    k: usize,
    /// Columns of W.
    #[arg(long, default_value_t = 64)]
    n: usize,
    /// Number of secure products (each uses one fresh triple).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
    /// Fractional bits of the fixed-point encoding.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(0..=30))]
    frac_bits: u32,
}

impl ShapeArgs {
    fn spec(&self) -> Result<MatmulSpec> {
        for (name, v) in [("m", self.m), ("k", self.k), ("n", self.n)] {
            if v == 0 || v > 1 << 14 {
                return Err(Error::Session(format!("--{name} {v}: must be in 1..=16384")));
            }
        }
        Ok(MatmulSpec {
            m: self.m,
            k: self.k,
            n: self.n,
            repeat: self.repeat as usize,
            fixed: FixedPoint::new(self.frac_bits)?,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Role {
    /// P0, the model owner: holds W.
    Server,
    /// P1, the data owner: holds X.
    Client,
}

#[derive(Args, Debug)]
struct PartyArgs {
    /// This party's role.
    #[arg(long, value_enum)]
    role: Role,
    /// Listen on ADDR and wait for the peer (port 0 picks a free port; the address is printed).
    #[arg(long, conflicts_with = "connect", required_unless_present = "connect")]
    listen: Option<String>,
    /// Connect to the peer at ADDR (retries until --connect-timeout).
    #[arg(long)]
    connect: Option<String>,
    /// This party's preprocessing file from `prifft deal`.
    #[arg(long)]
    preproc: PathBuf,
    #[command(flatten)]
    shape: ShapeArgs,
    /// Seed of this party's demo input (default: random). Demo data only, never key material.
    #[arg(long)]
    input_seed: Option<u64>,
    /// Keep the product secret-shared: skip the check that reveals inputs and product.
    #[arg(long)]
    no_check: bool,
    /// Network model (see `prifft demo --help`).
    #[arg(long)]
    net: Option<NetModel>,
    /// Seconds to wait for each message from the peer.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Seconds to wait for the peer to connect or accept.
    #[arg(long, default_value_t = 60.0)]
    connect_timeout: f64,
    /// Write the revealed product here (raw little-endian u64, row-major).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Print the report as JSON on the last line.
    #[arg(long)]
    json: bool,
}

/// Restore the default SIGPIPE action so that `prifft … | head` ends quietly like other Unix
/// tools instead of panicking on a closed stdout (Rust ignores SIGPIPE by default).
#[cfg(unix)]
fn default_sigpipe() {
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    unsafe extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    // SAFETY: called once at start-up, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

#[cfg(not(unix))]
fn default_sigpipe() {}

fn main() -> ExitCode {
    default_sigpipe();
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,wgpu_hal=off"),
    )
    .init();
    let cli = Cli::parse();
    if cli.gpu_crosscheck {
        // SAFETY: set once at start-up, before any thread exists.
        unsafe { std::env::set_var(prifft::backend::CROSSCHECK_ENV, "1") };
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = hint(e.root()) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

fn hint(e: &Error) -> Option<&'static str> {
    match e {
        Error::Net(prifft::net::NetError::PeerClosed) => {
            Some("the other party stopped; see its output for the reason")
        }
        Error::Net(prifft::net::NetError::Timeout(_)) => {
            Some("the other party is unreachable or stalled")
        }
        Error::Io { .. } => Some("preprocessing files come from `prifft deal --out-dir DIR`"),
        _ => None,
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Devices { json } => devices(json),
        Cmd::Deal { shape, out_dir } => deal(&shape.spec()?, &out_dir).map(|_| ()),
        Cmd::Party(args) => party(args),
        Cmd::Demo { shape, net } => demo(shape, net),
        Cmd::Fl {
            algo,
            beta,
            clients,
            rounds,
            local_epochs,
            fraction,
            lr,
            batch,
            mu,
            moon_mu,
            moon_tau,
            fedproc_tau,
            fedproc_horizon,
            seeds,
            secure_agg,
            out,
            plot,
            dataset,
            data,
        } => {
            use prifft::fl::rounds::Algo;
            let mut algos = Vec::new();
            for a in &algo {
                match a.as_str() {
                    "fedavg" => algos.push(Algo::FedAvg),
                    "fedprox" => algos.push(Algo::FedProx { mu }),
                    "moon" => algos.push(Algo::Moon { mu: moon_mu, tau: moon_tau }),
                    "fedproc" => algos.extend(
                        fedproc_tau
                            .iter()
                            .map(|&tau| Algo::FedProc { tau, horizon: fedproc_horizon }),
                    ),
                    other => {
                        return Err(Error::Data(format!(
                            "unknown algorithm {other:?}: use fedavg, fedprox, moon or fedproc"
                        )));
                    }
                }
            }
            if let Some(&tau) = fedproc_tau.iter().find(|t| !(t.is_finite() && **t > 0.0)) {
                return Err(Error::Data(format!("--fedproc-tau {tau}: must be positive")));
            }
            let plot = plot.unwrap_or_else(|| out.with_extension("png"));
            let cfg = prifft::fl::rounds::FlConfig {
                rounds,
                local_epochs,
                fraction,
                sgd: prifft::fl::model::SgdConfig { lr, batch, ..Default::default() },
                seed: 0,
                secure_agg,
            };
            let (name, (train, test)) = match dataset.as_str() {
                "fashion-mnist" => {
                    ("Fashion-MNIST", prifft::fl::data::fashion_mnist(data.as_deref())?)
                }
                "mnist-5k" => ("MNIST-5k", prifft::fl::data::mnist_5k(data.as_deref())?),
                other => {
                    return Err(Error::Data(format!(
                        "--dataset {other:?}: use fashion-mnist or mnist-5k"
                    )));
                }
            };
            fl(&algos, (name, &train, &test), beta, clients, cfg, seeds, (&out, &plot))
        }
        Cmd::FlReport { csv, plot, title } => fl_report(&csv, plot.as_deref(), &title),
        Cmd::Centralized { epochs, seed, data } => {
            let (train, test) = prifft::fl::data::fashion_mnist(data.as_deref())?;
            let seed = seed.unwrap_or_else(|| rand::Rng::random(&mut prifft::prg::os_rng()));
            let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(seed);
            let mut model = prifft::fl::model::SimpleCnn::new(train.classes, &mut rng);
            let cfg = prifft::fl::model::SgdConfig::default();
            let mut ce = prifft::fl::model::LocalLoss::CrossEntropy;
            let all: Vec<usize> = (0..train.len()).collect();
            println!(
                "centralised simple CNN on Fashion-MNIST, SGD lr {} momentum {} wd {} batch {}, seed {seed}",
                cfg.lr, cfg.momentum, cfg.weight_decay, cfg.batch
            );
            for epoch in 1..=epochs {
                let t = std::time::Instant::now();
                let loss = model.train_epoch(&train, &all, &cfg, &mut ce, &mut rng);
                let secs = t.elapsed().as_secs_f64();
                println!(
                    "epoch {epoch:>3}: train loss {loss:.4}, test accuracy {:.2} %, {secs:.1} s",
                    100.0 * model.accuracy(&test)
                );
            }
            Ok(())
        }
        Cmd::Partition {
            scheme,
            beta,
            clients,
            min_per_client,
            shards_per_client,
            seed,
            plot,
            data,
        } => {
            use prifft::fl::partition::{self, Scheme};
            let scheme = match scheme.as_str() {
                "iid" => Scheme::Iid,
                "dirichlet" => Scheme::Dirichlet { beta, min_per_client },
                "shards" => Scheme::Shards { per_client: shards_per_client },
                other => {
                    return Err(Error::Data(format!(
                        "unknown scheme {other:?}: use iid, dirichlet or shards"
                    )));
                }
            };
            let (train, _) = prifft::fl::data::fashion_mnist(data.as_deref())?;
            let seed = seed.unwrap_or_else(|| rand::Rng::random(&mut prifft::prg::os_rng()));
            let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(seed);
            let parts =
                partition::partition(&train.labels, train.classes, clients, scheme, &mut rng)?;
            let how = match scheme {
                Scheme::Iid => "IID".to_string(),
                Scheme::Dirichlet { beta, min_per_client } => {
                    format!("Dirichlet β = {beta}, ≥ {min_per_client} per client")
                }
                Scheme::Shards { per_client } => format!("{per_client} shards per client"),
            };
            let title =
                format!("Fashion-MNIST training set, {clients} clients, {how}, seed {seed}");
            println!("{title}");
            let histogram = partition::class_histogram(&parts, &train.labels, train.classes);
            print!("{}", partition::render_histogram(&histogram));
            if let Some(path) = plot {
                let names = prifft::fl::data::FASHION_MNIST_CLASSES;
                prifft::fl::plot::class_histogram(&path, &title, &histogram, &names)?;
                println!("plot: {}", path.display());
            }
            Ok(())
        }
        Cmd::Bench(BenchCmd::Fss { json, batch_log2, widths }) => {
            bench_fss(json, 1 << batch_log2, &widths)
        }
        Cmd::Bench(BenchCmd::Gpu { json, keys_log2, matmul, sweep }) => {
            bench_gpu(json, keys_log2, matmul, sweep)
        }
        Cmd::Bench(BenchCmd::Fl { data }) => {
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
                    Some(normalize) => {
                        SimpleCnn::with_projection(train.classes, normalize, &mut rng)
                    }
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
    }
}

#[cfg(feature = "gpu")]
fn devices(json: bool) -> Result<()> {
    let adapters = prifft::backend::gpu::list_adapters();
    if json {
        println!("{}", serde_json::to_string_pretty(&adapters).expect("serialisable"));
        return Ok(());
    }
    if adapters.is_empty() {
        println!("No GPU adapter found: prifft will run everything on the CPU.");
        println!(
            "(On Linux without a GPU, `apt-get install mesa-vulkan-drivers libvulkan1` gives the lavapipe software adapter.)"
        );
        return Ok(());
    }
    for (i, a) in adapters.iter().enumerate() {
        println!("[{i}] {} — {} {} ({})", a.name, a.backend, a.device_type, a.driver);
        println!(
            "    shader int64: {}; max storage binding {} MiB; max buffer {} MiB; workgroup storage {} KiB; {} invocations/workgroup; {} workgroups/dim",
            if a.shader_int64 { "yes" } else { "no" },
            a.max_storage_buffer_binding_size >> 20,
            a.max_buffer_size >> 20,
            a.max_compute_workgroup_storage_size >> 10,
            a.max_compute_invocations_per_workgroup,
            a.max_compute_workgroups_per_dimension
        );
    }
    Ok(())
}

#[cfg(not(feature = "gpu"))]
fn devices(_json: bool) -> Result<()> {
    println!(
        "This build has no GPU support (built without the `gpu` feature): everything runs on the CPU."
    );
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
    let rows = prifft::bench::fss(widths, batch, &threads, |r| {
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
    for r in prifft::bench::lut_choice(&[4, 8, 12], lut_batch) {
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
    let rows = prifft::bench::gpu(keys_log2, matmul, sweep, |r| {
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

fn fl(
    algos: &[prifft::fl::rounds::Algo],
    (name, train, test): (&str, &prifft::fl::data::Dataset, &prifft::fl::data::Dataset),
    beta: f64,
    clients: usize,
    cfg: prifft::fl::rounds::FlConfig,
    seeds: u64,
    (out, plot): (&Path, &Path),
) -> Result<()> {
    use prifft::fl::partition::{self, Scheme};
    use prifft::fl::plot::{self as plots, Series};
    use prifft::fl::rounds;
    if !(cfg.fraction > 0.0 && cfg.fraction <= 1.0)
        || clients == 0
        || cfg.rounds == 0
        || cfg.sgd.batch == 0
        || !(cfg.sgd.lr.is_finite() && cfg.sgd.lr > 0.0)
    {
        return Err(Error::Data(
            "--fraction must be in (0, 1], --lr positive, --clients, --rounds and --batch at least 1"
                .into(),
        ));
    }
    let mut csv = String::from("algo,beta,seed,round,test_accuracy\n");
    let mut series: Vec<Series> =
        algos.iter().map(|a| Series { label: a.label(), runs: vec![] }).collect();
    for seed in 1..=seeds {
        let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(seed);
        let parts = partition::partition(
            &train.labels,
            train.classes,
            clients,
            Scheme::Dirichlet { beta, min_per_client: 10 },
            &mut rng,
        )?;
        for (algo, s) in algos.iter().zip(series.iter_mut()) {
            let cfg = rounds::FlConfig { seed, ..cfg };
            let bar = indicatif::ProgressBar::new(cfg.rounds as u64).with_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>24} [{bar:30}] round {pos}/{len} {msg} ({elapsed}, eta {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("{} seed {seed}", algo.label()));
            let acc = rounds::run(*algo, train, test, &parts, &cfg, |round, acc| {
                bar.set_position(round as u64);
                bar.set_message(format!("test accuracy {:.2} %", 100.0 * acc));
            })?;
            bar.finish();
            for (r, a) in acc.iter().enumerate() {
                csv += &format!("{},{beta},{seed},{},{a:.4}\n", algo.label(), r + 1);
            }
            s.runs.push(acc);
        }
        // Keep what is done so far: a long run stopped early still leaves its results.
        std::fs::write(out, &csv)
            .map_err(|source| Error::Io { path: out.to_path_buf(), source })?;
    }
    let title = format!(
        "{name}, {clients} clients, Dirichlet β = {beta}, {} local epoch(s), {seeds} seed(s)",
        cfg.local_epochs
    );
    plots::accuracy_vs_round(plot, &title, &series)?;
    println!(
        "{name}, {clients} clients, Dirichlet β = {beta}, {} rounds × {} local epoch(s), {seeds} seed(s); per-round accuracies in {}, plot in {}",
        cfg.rounds,
        cfg.local_epochs,
        out.display(),
        plot.display()
    );
    print_fl_table(&series);
    Ok(())
}

/// The final table of `prifft fl` and `prifft fl-report`: final accuracy and last-5-round mean,
/// mean ± std over seeds; with a FedAvg series, each other series' difference from it paired
/// by seed (the n-th run of each series is the same seed: same partition and initialisation).
fn print_fl_table(series: &[prifft::fl::plot::Series]) {
    let stats = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * sd)
    };
    let finals = |s: &prifft::fl::plot::Series| -> Vec<f64> {
        s.runs.iter().map(|r| *r.last().unwrap_or(&0.0)).collect()
    };
    let last5 = |s: &prifft::fl::plot::Series| -> Vec<f64> {
        s.runs
            .iter()
            .map(|r| {
                let tail = &r[r.len().saturating_sub(5)..];
                tail.iter().sum::<f64>() / tail.len().max(1) as f64
            })
            .collect()
    };
    println!("{:<22}{:>18}{:>24}", "algorithm", "final accuracy %", "mean of last 5 rounds %");
    for s in series {
        println!("{:<22}{:>18}{:>24}", s.label, stats(&finals(s)), stats(&last5(s)));
    }
    let Some(base) = series.iter().find(|s| s.label == "fedavg") else { return };
    println!("\ndifference from fedavg in points, per seed (mean):");
    let paired = |a: Vec<f64>, b: Vec<f64>| {
        let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| 100.0 * (x - y)).collect();
        let mean = d.iter().sum::<f64>() / d.len().max(1) as f64;
        let each: Vec<String> = d.iter().map(|x| format!("{x:+.1}")).collect();
        format!("{} ({mean:+.2})", each.join(", "))
    };
    for s in series.iter().filter(|s| s.label != "fedavg") {
        println!(
            "{:<22} final {}   last 5 {}",
            s.label,
            paired(finals(s), finals(base)),
            paired(last5(s), last5(base))
        );
    }
}

/// `prifft fl-report`: the table and plot of `prifft fl` again, from its CSV files.
fn fl_report(csvs: &[PathBuf], plot: Option<&Path>, title: &str) -> Result<()> {
    use prifft::fl::plot::Series;
    let mut series: Vec<Series> = Vec::new();
    let mut seeds: Vec<Vec<String>> = Vec::new();
    for path in csvs {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Io { path: path.clone(), source })?;
        for (n, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
            let bad =
                |what: &str| Error::Data(format!("{}: line {}: {what}", path.display(), n + 1));
            let fields: Vec<&str> = line.split(',').collect();
            let [algo, _beta, seed, round, acc] = fields[..] else {
                return Err(bad("expected algo,beta,seed,round,test_accuracy"));
            };
            let acc: f64 = acc.trim().parse().map_err(|_| bad("accuracy is not a number"))?;
            let round: usize = round.trim().parse().map_err(|_| bad("round is not a number"))?;
            let i = match series.iter().position(|s| s.label == algo) {
                Some(i) => i,
                None => {
                    series.push(Series { label: algo.to_string(), runs: vec![] });
                    seeds.push(vec![]);
                    series.len() - 1
                }
            };
            let j = match seeds[i].iter().position(|s| s == seed) {
                Some(j) => j,
                None => {
                    seeds[i].push(seed.to_string());
                    series[i].runs.push(vec![]);
                    seeds[i].len() - 1
                }
            };
            let run = &mut series[i].runs[j];
            if round != run.len() + 1 {
                return Err(bad("rounds of one run must be consecutive from 1"));
            }
            run.push(acc);
        }
    }
    if series.is_empty() {
        return Err(Error::Data("no runs in the CSV file(s)".into()));
    }
    if let Some(plot) = plot {
        prifft::fl::plot::accuracy_vs_round(plot, title, &series)?;
        println!("plot: {}", plot.display());
    }
    print_fl_table(&series);
    Ok(())
}

fn deal(spec: &MatmulSpec, out_dir: &Path) -> Result<[PathBuf; 2]> {
    std::fs::create_dir_all(out_dir)
        .map_err(|source| Error::Io { path: out_dir.to_path_buf(), source })?;
    let [p0, p1] = session::deal(spec)?;
    let paths = [out_dir.join("server.pp"), out_dir.join("client.pp")];
    p0.write_file(&paths[0])?;
    p1.write_file(&paths[1])?;
    println!(
        "dealer: {} matrix triple(s) for ({}×{})·({}×{}) → {} and {}",
        spec.repeat,
        spec.m,
        spec.k,
        spec.k,
        spec.n,
        paths[0].display(),
        paths[1].display()
    );
    Ok(paths)
}

fn secs(v: f64, flag: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(v).map_err(|_| {
        Error::Session(format!("{flag} {v}: must be a non-negative number of seconds"))
    })
}

fn party(args: PartyArgs) -> Result<()> {
    let spec = args.shape.spec()?;
    let id = match args.role {
        Role::Server => PartyId::P0,
        Role::Client => PartyId::P1,
    };
    let preproc =
        Preproc::read_file(&args.preproc).map_err(|e| Error::from(e).during("loading preprocessing"))?;
    let config = TcpConfig {
        read_timeout: secs(args.timeout, "--timeout")?,
        write_timeout: secs(args.timeout, "--timeout")?,
        connect_timeout: secs(args.connect_timeout, "--connect-timeout")?,
        ..TcpConfig::default()
    };
    let tcp = match (&args.listen, &args.connect) {
        (Some(addr), _) => {
            let listener = Listener::bind(addr)
                .map_err(|e| Error::from(e).during(format!("listening on {addr}")))?;
            println!("listening on {}", listener.local_addr()?);
            std::io::stdout().flush().ok();
            listener
                .accept(config)
                .map_err(|e| Error::from(e).during("waiting for the other party"))?
        }
        (None, Some(addr)) => TcpChannel::connect(addr, config)?,
        (None, None) => unreachable!("clap requires --listen or --connect"),
    };
    let channel: Box<dyn Channel> = match args.net {
        Some(model) => Box::new(Shaped::new(tcp, model)),
        None => Box::new(tcp),
    };
    let opts = PartyOptions {
        spec,
        input_seed: args.input_seed,
        check: !args.no_check,
        network: args.net.map(|m| m.to_string()),
    };
    let (report, product) = session::run_party(id, channel, preproc, &opts)?;
    print!("{}", session::render(&report));
    if let (Some(path), Some(product)) = (&args.output, &product) {
        session::write_tensor(path, product)?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report).expect("serialisable"));
    }
    match &report.check {
        Some(c) if !c.ok => {
            Err(Error::Session("the secure product is outside the documented error bound".into()))
        }
        _ => Ok(()),
    }
}

fn demo(shape: ShapeArgs, net: Option<NetModel>) -> Result<()> {
    let spec = shape.spec()?;
    let dir = std::env::temp_dir().join(format!("prifft-demo-{}", std::process::id()));
    let [server_pp, client_pp] = deal(&spec, &dir)?;
    let exe = std::env::current_exe()
        .map_err(|source| Error::Io { path: "current executable".into(), source })?;
    let common = |cmd: &mut Command| {
        cmd.args([
            "--m",
            &spec.m.to_string(),
            "--k",
            &spec.k.to_string(),
            "--n",
            &spec.n.to_string(),
        ]);
        cmd.args([
            "--repeat",
            &spec.repeat.to_string(),
            "--frac-bits",
            &spec.fixed.frac_bits().to_string(),
        ]);
        if let Some(m) = net {
            cmd.args([
                "--net",
                &format!("{}:{}", m.bandwidth_bps / 1e6, m.latency.as_secs_f64() * 1e3),
            ]);
        }
    };
    let spawn_err = |source| Error::Io { path: exe.clone(), source };
    let mut server_cmd = Command::new(&exe);
    server_cmd
        .args(["party", "--role", "server", "--listen", "127.0.0.1:0", "--preproc"])
        .arg(&server_pp);
    common(&mut server_cmd);
    let mut server = server_cmd.stdout(Stdio::piped()).spawn().map_err(spawn_err)?;
    let mut server_out = BufReader::new(server.stdout.take().expect("piped"));
    let mut first = String::new();
    server_out.read_line(&mut first).map_err(spawn_err)?;
    let addr = first.trim().strip_prefix("listening on ").map(str::to_string);
    let Some(addr) = addr else {
        let _ = server.kill();
        return Err(Error::Session("the server process did not start listening".into()));
    };
    println!("server listening on {addr}; starting the client");
    let mut client_cmd = Command::new(&exe);
    client_cmd.args(["party", "--role", "client", "--connect", &addr, "--preproc"]).arg(&client_pp);
    common(&mut client_cmd);
    let client = client_cmd.stdout(Stdio::piped()).spawn().map_err(spawn_err)?;
    let client_out = client.wait_with_output().map_err(spawn_err)?;
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut server_out, &mut rest).map_err(spawn_err)?;
    let server_status = server.wait().map_err(spawn_err)?;
    print!("{rest}{}", String::from_utf8_lossy(&client_out.stdout));
    let _ = std::fs::remove_dir_all(&dir);
    if server_status.success() && client_out.status.success() {
        Ok(())
    } else {
        Err(Error::Session("a party failed (see its message above)".into()))
    }
}
