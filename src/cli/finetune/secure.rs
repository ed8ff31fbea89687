//! `prifft finetune` in its default, secure mode: the server (P0, the weights) and the client
//! (P1, the sentences and labels) fine-tune all-MiniLM-L6-v2 on shares, beside plaintext
//! training from the same state, and the summary compares them.

use std::collections::HashMap;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use prifft::finetune::{self, ClientData, DropoutMasks, Progress, SecureConfig, ServerModel};
use prifft::model::text::{self, Corpus};
use prifft::model::train::{self, FineTuneConfig};
use prifft::model::{Assets, Classifier, Pooling};
use prifft::net::NetModel;
use prifft::nn::head::SgdConfig;
use prifft::{Error, Result};

use super::{FinetuneArgs, PoolingArg, RevealArg};
use crate::cli::bench::NetArg;

/// The JSON summary of a secure run.
#[derive(Debug, Serialize)]
struct Summary {
    secure_acc: f64,
    plain_acc: f64,
    initial_acc: f64,
    agree_frac: f64,
    step_s: f64,
    step_bytes: u64,
    step_rounds: u64,
    baseline_step_s: Option<f64>,
    baseline_step_bytes: Option<u64>,
    baseline_step_rounds: Option<u64>,
    key_bytes_per_step: u64,
    dealer_step_s: f64,
    dealer_frozen_s: f64,
    peak_rss_bytes: Option<u64>,
    rss_after_first_step: Option<u64>,
    rss_after_last_step: Option<u64>,
    steps: usize,
    train_sentences: usize,
    test_sentences: usize,
    truncated_sentences: usize,
    trainable_layers: usize,
    batch: usize,
    seq_len: usize,
    lr: f64,
    momentum: f64,
    seed: u64,
    net: String,
    backend: String,
    setup_s: f64,
    setup_bytes: u64,
    frozen_s: f64,
    frozen_bytes: u64,
    frozen_key_bytes_per_batch: u64,
    secure_losses: Vec<f64>,
    plain_losses: Vec<f64>,
    max_weight_diff: f64,
    recompute_frozen: bool,
}

fn refs(t: &[String]) -> Vec<&str> {
    t.iter().map(String::as_str).collect()
}

fn mean_ce(logits: &[f64], labels: &[u32]) -> f64 {
    let n = labels.len().max(1) as f64;
    logits
        .chunks(2)
        .zip(labels)
        .map(|(z, &y)| {
            let m = z[0].max(z[1]);
            m + ((z[0] - m).exp() + (z[1] - m).exp()).ln() - z[y as usize]
        })
        .sum::<f64>()
        / n
}

/// One progress bar per phase of a secure run (frozen part, steps), as its party reports.
#[derive(Default)]
pub(super) struct Bars(std::sync::Mutex<Option<ProgressBar>>);

impl Bars {
    pub(super) fn update(&self, p: Progress) {
        let mut guard = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (done, total, name) = match p {
            Progress::Frozen { done, total } => (done, total, "frozen"),
            Progress::Step { done, total } => (done, total, "secure"),
        };
        let b = guard.get_or_insert_with(|| bar(total, name));
        if b.prefix() != name {
            b.finish_and_clear();
            *b = bar(total, name);
        }
        b.set_position(done as u64);
        if done == total {
            b.finish_and_clear();
            *guard = None;
        }
    }
}

fn bar(len: usize, prefix: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix:>10} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    ProgressBar::new(len as u64).with_style(style).with_prefix(prefix.to_string())
}

/// Run the secure mode.
///
/// # Errors
/// Missing assets, bad options, any party's failure.
pub fn run(args: &FinetuneArgs) -> Result<()> {
    if !matches!(args.pooling, PoolingArg::Mean) {
        return Err(Error::Usage(
            "secure fine-tuning pools by the mean (the client enters the pooling weights); --pooling cls is for --plaintext"
                .into(),
        ));
    }
    let seed = args.seed.unwrap_or_else(|| rand::Rng::random(&mut prifft::prg::os_rng()));
    let assets = Assets::open(args.model_dir.as_deref())?;
    let layers = assets.config.num_hidden_layers;
    if args.layers_trainable >= layers {
        return Err(Error::Usage(format!(
            "--layers-trainable {} : secure fine-tuning trains at most {} layers (the embeddings stay frozen)",
            args.layers_trainable,
            layers - 1
        )));
    }
    if args.seq_len < 2 || args.seq_len > assets.config.max_position_embeddings {
        return Err(Error::Usage(format!(
            "--seq-len {} must be in 2..={}",
            args.seq_len, assets.config.max_position_embeddings
        )));
    }
    let sentences = text::load(Corpus::Movies, args.data_dir.as_deref())?;
    let (train_set, test_set) = text::split(&sentences, seed, args.test, args.train)?;
    let texts = |s: &[text::Sentence]| s.iter().map(|x| x.text.clone()).collect::<Vec<_>>();
    let train_texts = texts(&train_set);
    let test_texts = texts(&test_set);
    let train_tokens = assets.tokenizer.encode_batch(&refs(&train_texts), Some(args.seq_len))?;
    let test_tokens = assets.tokenizer.encode_batch(&refs(&test_texts), Some(args.seq_len))?;
    let mut truncated = 0;
    for t in train_texts.iter().chain(&test_texts) {
        truncated += usize::from(assets.tokenizer.encode(t)?.len() > args.seq_len);
    }
    if truncated > 0 {
        eprintln!(
            "{truncated} of {} sentences are longer than L = {} tokens and were truncated ([SEP] kept last)",
            train_texts.len() + test_texts.len(),
            args.seq_len
        );
    }
    let train_labels: Vec<u32> = train_set.iter().map(|s| u32::from(s.label)).collect();
    let test_labels: Vec<u32> = test_set.iter().map(|s| u32::from(s.label)).collect();
    let (net_name, net) = match args.net.unwrap_or(NetArg::Lan) {
        NetArg::Mem => ("mem", None),
        NetArg::Lan => ("lan", Some(NetModel::LAN)),
        NetArg::Wan => ("wan", Some(NetModel::WAN)),
    };
    let backend = args.backend.open(false)?;
    let backend_name = backend.name();
    eprintln!(
        "secure fine-tuning of all-MiniLM-L6-v2 between the server (weights) and the client (sentences, labels): top {} of {layers} layers + head trainable on shares, SGD lr {} momentum {}, batch {}, L = {}, {} training / {} test Rotten Tomatoes sentences, {} epoch(s), seed {seed}, link {net_name}, backend {backend_name}",
        args.layers_trainable,
        args.lr,
        args.momentum,
        args.batch,
        args.seq_len,
        train_set.len(),
        test_set.len(),
        args.epochs,
    );

    // Plaintext training from the same state (the oracle).
    let plain = Classifier::new(&assets.weights, args.layers_trainable, Pooling::Mean, seed)?;
    let head = (plain.trainable_values("head.weight")?, plain.trainable_values("head.bias")?);
    let order = train::batch_order(seed, train_set.len(), args.batch, args.epochs);

    let config = FineTuneConfig {
        lr: args.lr,
        momentum: args.momentum,
        batch: args.batch,
        seq_len: args.seq_len,
        epochs: args.epochs,
        seed,
        reuse_frozen: !args.recompute_frozen,
    };
    let bars = Bars::default();
    let mut plain_losses = Vec::new();
    let plain_summary = {
        let b = bar(order.len(), "plaintext");
        let summary = train::fine_tune(
            &plain,
            &assets.tokenizer,
            &train_set,
            &test_set,
            &config,
            &mut |p| {
                if let train::Progress::Step { loss, .. } = p {
                    plain_losses.push(loss);
                    b.inc(1);
                }
            },
        )?;
        b.finish_and_clear();
        summary
    };
    let plain_acc = plain_summary.epochs.last().map_or(0.0, |e| e.test_accuracy);
    eprintln!(
        "plaintext: test accuracy {:.2} % before, {:.2} % after training",
        100.0 * plain_summary.initial_test_accuracy,
        100.0 * plain_acc
    );

    // Secure training.
    let cfg = SecureConfig {
        trainable: args.layers_trainable,
        sgd: SgdConfig { lr: args.lr, momentum: args.momentum, batch: args.batch },
        frozen_batch: args.frozen_batch.max(1),
        recompute_frozen: args.recompute_frozen,
        dropout: if args.dealer_dropout {
            DropoutMasks::Dealer
        } else {
            DropoutMasks::Replay(Box::new(train::stream(seed, 2)))
        },
        net,
        offline_first: args.offline_first,
    };
    let server = ServerModel { weights: &assets.weights, head };
    let data = ClientData { tokens: train_tokens, labels: train_labels.clone() };
    let progress = |p: Progress| bars.update(p);
    let run = finetune::train(&server, &data, &order, &cfg, backend, &progress)?;

    // The CrypTen-style step on the first batches, same link and backend.
    let baseline = if args.baseline_steps > 0 {
        let n = args.baseline_steps.min(order.len());
        eprintln!("the CrypTen-style protocol set on the first {n} step(s)");
        let costs =
            finetune::baseline_steps(&server, &data, &order[..n], &cfg, args.backend.open(false)?)?;
        Some(costs)
    } else {
        None
    };
    let base_s =
        baseline.as_ref().map(|c| c.iter().map(|s| s.seconds).sum::<f64>() / c.len() as f64);
    let base_bytes =
        baseline.as_ref().map(|c| c.iter().map(|s| s.bytes_sent).sum::<u64>() / c.len() as u64);
    let base_rounds = baseline.as_ref().and_then(|c| c.first().map(|s| s.rounds));

    // Evaluate the securely fine-tuned weights (reconstructed here for the measurement).
    let revealed = run.reveal()?;
    let secure = Classifier::new(&assets.weights, args.layers_trainable, Pooling::Mean, seed)?;
    for (name, _, v) in &revealed {
        secure.set_trainable(name, v)?;
    }
    let secure_pred = train::predictions(&secure, &test_tokens)?;
    let plain_pred = train::predictions(&plain, &test_tokens)?;
    let n_test = test_labels.len().max(1) as f64;
    let acc =
        |p: &[u32]| p.iter().zip(&test_labels).filter(|(a, b)| a == b).count() as f64 / n_test;
    let secure_acc = acc(&secure_pred);
    let agree = secure_pred.iter().zip(&plain_pred).filter(|(a, b)| a == b).count() as f64 / n_test;
    let mut max_weight_diff = 0.0f64;
    for (name, _, v) in &revealed {
        let p = plain.trainable_values(name)?;
        for (a, b) in v.iter().zip(&p) {
            max_weight_diff = max_weight_diff.max((a - b).abs());
        }
    }
    let secure_losses: Vec<f64> = (0..order.len())
        .map(|i| {
            let y: Vec<u32> = order[i].iter().map(|&j| train_labels[j]).collect();
            run.logits(i).map(|z| mean_ce(&z, &y))
        })
        .collect::<Result<_>>()?;
    let steps = run.steps.len().max(1) as f64;
    let summary = Summary {
        secure_acc,
        plain_acc,
        initial_acc: plain_summary.initial_test_accuracy,
        agree_frac: agree,
        step_s: run.steps.iter().map(|s| s.seconds).sum::<f64>() / steps,
        step_bytes: (run.steps.iter().map(|s| s.bytes_sent).sum::<u64>() as f64 / steps) as u64,
        step_rounds: run.steps.first().map_or(0, |s| s.rounds),
        baseline_step_s: base_s,
        baseline_step_bytes: base_bytes,
        baseline_step_rounds: base_rounds,
        key_bytes_per_step: run.key_bytes_per_step,
        dealer_step_s: run.dealer_seconds[1],
        dealer_frozen_s: run.dealer_seconds[0],
        peak_rss_bytes: finetune::peak_rss_bytes(),
        rss_after_first_step: run.steps.first().and_then(|s| s.rss_bytes),
        rss_after_last_step: run.steps.last().and_then(|s| s.rss_bytes),
        steps: run.steps.len(),
        train_sentences: train_set.len(),
        test_sentences: test_set.len(),
        truncated_sentences: truncated,
        trainable_layers: args.layers_trainable,
        batch: args.batch,
        seq_len: args.seq_len,
        lr: args.lr,
        momentum: args.momentum,
        seed,
        net: net_name.into(),
        backend: backend_name,
        setup_s: run.setup.seconds,
        setup_bytes: run.setup.bytes_sent + run.setup.bytes_received,
        frozen_s: run.frozen.seconds,
        frozen_bytes: run.frozen.bytes_sent,
        frozen_key_bytes_per_batch: run.frozen_key_bytes,
        secure_losses,
        plain_losses,
        max_weight_diff,
        recompute_frozen: args.recompute_frozen,
    };
    print_summary(&summary);
    if let Some(RevealArg::Server) = args.reveal_to {
        write_weights(&args.weights_out, &revealed)?;
        eprintln!("the model owner's fine-tuned weights: {}", args.weights_out.display());
    }
    if let Some(path) = &args.json {
        super::write_json(path, &summary)?;
    }
    plot(&args.plot, &summary)?;
    eprintln!("wrote {}", args.plot.display());
    Ok(())
}

/// The loss of every step, secure and plaintext, and their difference.
fn plot(path: &std::path::Path, s: &Summary) -> Result<()> {
    use prifft::fl::plot::{Panel, panels_over};
    let per_step = |v: &[f64]| -> Vec<(f64, f64)> {
        v.iter().enumerate().map(|(i, &y)| ((i + 1) as f64, y)).collect()
    };
    let diff: Vec<f64> =
        s.secure_losses.iter().zip(&s.plain_losses).map(|(a, b)| (a - b).abs()).collect();
    let loss = Panel {
        y_desc: "cross-entropy of the step's batch".into(),
        series: vec![
            ("secure (shares)".into(), per_step(&s.secure_losses)),
            ("plaintext (f32)".into(), per_step(&s.plain_losses)),
        ],
    };
    let gap = Panel {
        y_desc: "|secure − plaintext|".into(),
        series: vec![("loss difference".into(), per_step(&diff))],
    };
    let title = format!(
        "secure vs plaintext fine-tuning: top {} layers, lr {}, batch {}, L = {}, {} sentences; test accuracy {:.1} % / {:.1} %",
        s.trainable_layers,
        s.lr,
        s.batch,
        s.seq_len,
        s.train_sentences,
        100.0 * s.secure_acc,
        100.0 * s.plain_acc
    );
    panels_over(path, &title, "step", &[loss, gap])
}

pub(super) fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

fn print_summary(s: &Summary) {
    let last = |v: &[f64]| v.last().copied().unwrap_or(f64::NAN);
    println!("                         secure (shares)   plaintext (f32)");
    println!(
        "test accuracy            {:>13.2} %   {:>13.2} %",
        100.0 * s.secure_acc,
        100.0 * s.plain_acc
    );
    println!(
        "last step's loss         {:>15.4}   {:>15.4}",
        last(&s.secure_losses),
        last(&s.plain_losses)
    );
    println!(
        "same test predictions    {:.2} % of {} sentences; largest weight difference {:.2e}",
        100.0 * s.agree_frac,
        s.test_sentences,
        s.max_weight_diff
    );
    println!(
        "per step ({} link, {}): {:.2} s, {:.1} MB sent per party, {} rounds, {:.1} MB of preprocessing per party",
        s.net,
        s.backend,
        s.step_s,
        mb(s.step_bytes),
        s.step_rounds,
        mb(s.key_bytes_per_step)
    );
    println!(
        "dealer: {:.2} s per step, {:.1} s for the frozen part (its own thread, sharing the cores)",
        s.dealer_step_s, s.dealer_frozen_s
    );
    if s.recompute_frozen {
        println!(
            "frozen part (embedding lookup, frozen layers) inside every step (--recompute-frozen); setup {:.1} s, {:.1} MB",
            s.setup_s,
            mb(s.setup_bytes)
        );
    } else {
        println!(
            "frozen part once per sentence: {:.1} s, {:.1} MB sent by the server; setup {:.1} s, {:.1} MB",
            s.frozen_s,
            mb(s.frozen_bytes),
            s.setup_s,
            mb(s.setup_bytes)
        );
    }
    if let (Some(bs), Some(bb), Some(br)) =
        (s.baseline_step_s, s.baseline_step_bytes, s.baseline_step_rounds)
    {
        println!(
            "CrypTen-style step: {:.2} s, {:.1} MB, {} rounds — PriFFT's ratios: {:.2}x time, {:.2}x bytes",
            bs,
            mb(bb),
            br,
            bs / s.step_s,
            bb as f64 / s.step_bytes.max(1) as f64
        );
    }
    if let (Some(a), Some(b)) = (s.rss_after_first_step, s.rss_after_last_step) {
        println!(
            "resident memory after the first step {:.0} MB, after step {} {:.0} MB",
            mb(a),
            s.steps,
            mb(b)
        );
    }
    if let Some(p) = s.peak_rss_bytes {
        println!(
            "peak memory (this process: both parties, the dealer and the helper): {:.0} MB",
            mb(p)
        );
    }
}

/// Write the revealed parameters as safetensors (f32, Hugging Face names).
pub(super) fn write_weights(
    path: &std::path::Path,
    revealed: &[(String, Vec<usize>, Vec<f64>)],
) -> Result<()> {
    let mut map = HashMap::new();
    for (name, shape, v) in revealed {
        let t = candle_core::Tensor::from_vec(
            v.iter().map(|&x| x as f32).collect::<Vec<_>>(),
            shape.as_slice(),
            &candle_core::Device::Cpu,
        )
        .map_err(|e| Error::Data(format!("{name}: {e}")))?;
        map.insert(name.clone(), t);
    }
    candle_core::safetensors::save(&map, path)
        .map_err(|e| Error::Data(format!("writing {}: {e}", path.display())))
}
