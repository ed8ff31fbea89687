//! Plaintext fine-tuning of a [`Classifier`]: softmax cross-entropy, SGD with momentum on the
//! trainable parameters, test accuracy after every epoch.
//!
//! SGD follows PyTorch's `torch.optim.SGD` (no dampening, no Nesterov, no weight decay):
//! v ← μ·v + g, w ← w − η·v, with v = 0 before the first step. candle's own SGD has no momentum,
//! so this is written here.
//!
//! **Frozen layers are computed once.** The frozen part (embeddings and the bottom n − k layers)
//! runs in evaluation mode, so its output is a fixed function of the sentence. With
//! [`FineTuneConfig::reuse_frozen`] the run computes it once for every training and test sentence
//! and each step starts from the stored token states; without it, every step runs the whole
//! network. Both give the same numbers up to float rounding order (the same ops on the same
//! inputs: in practice identical); the summary records the time of each epoch so the two can be
//! compared (`prifft finetune --plaintext --recompute-frozen`).
//!
//! Every random choice — the head's initial weights, the batch order of each epoch and the
//! dropout masks — comes from its own ChaCha20 stream of the run's seed.

use std::time::Instant;

use candle_core::{DType, Tensor, Var};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::Serialize;

use super::bert::{BatchTensors, Classifier, FrozenOutput};
use super::candle_error;
use super::text::Sentence;
use super::tokenize::{SentenceTokenizer, TokenBatch};
use crate::error::{Error, Result};
use crate::prg::ChaCha20Rng;

/// SGD with momentum over a set of variables.
#[derive(Debug)]
pub struct Sgd {
    vars: Vec<Var>,
    velocity: Vec<Option<Tensor>>,
    lr: f64,
    momentum: f64,
}

impl Sgd {
    /// SGD over `vars` with learning rate `lr` and momentum `momentum`.
    pub fn new(vars: Vec<Var>, lr: f64, momentum: f64) -> Sgd {
        let velocity = vec![None; vars.len()];
        Sgd { vars, velocity, lr, momentum }
    }

    /// Backpropagate `loss` and update every variable.
    ///
    /// # Errors
    /// A candle failure as [`Error::Data`].
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward().map_err(candle_error)?;
        for (i, var) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            let v = match &self.velocity[i] {
                Some(v) => {
                    ((v * self.momentum).map_err(candle_error)? + g).map_err(candle_error)?
                }
                None => g.clone(),
            };
            let updated =
                (var.as_tensor() - (&v * self.lr).map_err(candle_error)?).map_err(candle_error)?;
            var.set(&updated).map_err(candle_error)?;
            self.velocity[i] = Some(v);
        }
        Ok(())
    }
}

/// A fine-tuning run's settings.
#[derive(Clone, Debug, Serialize)]
pub struct FineTuneConfig {
    /// Learning rate η.
    pub lr: f64,
    /// Momentum μ.
    pub momentum: f64,
    /// Sentences per step.
    pub batch: usize,
    /// Tokens per sentence L.
    pub seq_len: usize,
    /// Passes over the training set.
    pub epochs: usize,
    /// Seed of the head, batch order and dropout streams.
    pub seed: u64,
    /// Compute the frozen part once per sentence and reuse it.
    pub reuse_frozen: bool,
}

/// One epoch's results.
#[derive(Clone, Debug, Serialize)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Training accuracy over the epoch (with dropout, as the steps saw it).
    pub train_accuracy: f64,
    /// Test accuracy after the epoch (evaluation mode).
    pub test_accuracy: f64,
    /// Mean test loss after the epoch.
    pub test_loss: f64,
    /// Wall time of the epoch's training steps, seconds.
    pub train_seconds: f64,
    /// Wall time of the evaluation, seconds.
    pub eval_seconds: f64,
}

/// What a run reports as it goes.
#[derive(Clone, Debug)]
pub enum Progress {
    /// The frozen part is being computed for `done` of `total` sentences.
    Frozen {
        /// Sentences done.
        done: usize,
        /// Sentences in all.
        total: usize,
    },
    /// Epoch `epoch` has done `step` of `steps` steps; `loss` is the latest step's loss.
    Step {
        /// 1-based epoch.
        epoch: usize,
        /// Steps done.
        step: usize,
        /// Steps per epoch.
        steps: usize,
        /// The step's loss.
        loss: f64,
    },
    /// An epoch ended.
    Epoch(EpochStats),
}

/// Accuracy before training and per epoch, and the time spent on the frozen part.
#[derive(Clone, Debug, Serialize)]
pub struct FineTuneSummary {
    /// The settings.
    pub config: FineTuneConfig,
    /// Trainable layers k.
    pub trainable_layers: usize,
    /// Trainable scalar parameters (top k layers, the embeddings for k = n, the head).
    pub trainable_parameters: usize,
    /// Training and test sentences.
    pub train_sentences: usize,
    /// Test sentences.
    pub test_sentences: usize,
    /// Test accuracy of the untrained head.
    pub initial_test_accuracy: f64,
    /// Seconds spent computing the frozen part once (0 without reuse).
    pub frozen_seconds: f64,
    /// Per epoch.
    pub epochs: Vec<EpochStats>,
}

/// Sentences of one split, tokenized, with their labels and (when reused) frozen outputs.
struct Split {
    tokens: TokenBatch,
    labels: Vec<u32>,
    frozen: Option<Tensor>,
}

const EVAL_BATCH: usize = 64;

impl Split {
    fn new(tokenizer: &SentenceTokenizer, sentences: &[Sentence], seq_len: usize) -> Result<Split> {
        let texts: Vec<&str> = sentences.iter().map(|s| s.text.as_str()).collect();
        Ok(Split {
            tokens: tokenizer.encode_batch(&texts, Some(seq_len))?,
            labels: sentences.iter().map(|s| u32::from(s.label)).collect(),
            frozen: None,
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    /// The frozen output of rows `which`: gathered from the store, or computed.
    fn frozen_rows(
        &self,
        model: &Classifier,
        which: &[usize],
        t: &BatchTensors,
    ) -> Result<FrozenOutput> {
        match &self.frozen {
            Some(all) => {
                let idx = Tensor::from_vec(
                    which.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                    which.len(),
                    all.device(),
                )
                .map_err(candle_error)?;
                Ok(FrozenOutput(all.index_select(&idx, 0).map_err(candle_error)?))
            }
            None => model.frozen(t),
        }
    }
}

fn labels_tensor(labels: &[u32]) -> Result<Tensor> {
    Tensor::from_vec(labels.to_vec(), labels.len(), &candle_core::Device::Cpu).map_err(candle_error)
}

/// Loss (mean) and correct predictions of `logits` against `labels`.
fn loss_and_correct(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, usize)> {
    let loss = candle_nn::loss::cross_entropy(logits, labels).map_err(candle_error)?;
    let predicted = logits.argmax(1).map_err(candle_error)?;
    let correct = predicted
        .eq(labels)
        .and_then(|c| c.to_dtype(DType::U32))
        .and_then(|c| c.sum_all())
        .and_then(|c| c.to_scalar::<u32>())
        .map_err(candle_error)?;
    Ok((loss, correct as usize))
}

fn scalar(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64).and_then(|t| t.to_scalar::<f64>()).map_err(candle_error)
}

/// Test loss and accuracy of `model` on `split` (evaluation mode).
fn evaluate(model: &Classifier, split: &Split) -> Result<(f64, f64)> {
    let (mut loss_sum, mut correct) = (0.0, 0usize);
    for start in (0..split.len()).step_by(EVAL_BATCH) {
        let which: Vec<usize> = (start..(start + EVAL_BATCH).min(split.len())).collect();
        let batch = split.tokens.select(&which);
        let t = model.tensors(&batch)?;
        let frozen = split.frozen_rows(model, &which, &t)?;
        let logits = model.logits_from(&frozen, &t, None)?;
        let labels: Vec<u32> = which.iter().map(|&i| split.labels[i]).collect();
        let (loss, c) = loss_and_correct(&logits, &labels_tensor(&labels)?)?;
        loss_sum += scalar(&loss)? * which.len() as f64;
        correct += c;
    }
    Ok((loss_sum / split.len() as f64, correct as f64 / split.len() as f64))
}

/// Compute and store the frozen output of every sentence of `split`.
fn store_frozen(
    model: &Classifier,
    split: &mut Split,
    progress: &mut dyn FnMut(Progress),
    done: &mut usize,
    total: usize,
) -> Result<()> {
    let mut parts = Vec::new();
    for start in (0..split.len()).step_by(EVAL_BATCH) {
        let end = (start + EVAL_BATCH).min(split.len());
        let t = model.tensors(&split.tokens.rows(start..end))?;
        parts.push(model.frozen(&t)?.0);
        *done += end - start;
        progress(Progress::Frozen { done: *done, total });
    }
    split.frozen = Some(Tensor::cat(&parts, 0).map_err(candle_error)?);
    Ok(())
}

/// One training step on `which` rows of the training split: forward with dropout, loss,
/// backward, SGD. Returns the loss and the correct predictions.
fn train_step(
    model: &Classifier,
    sgd: &mut Sgd,
    split: &Split,
    which: &[usize],
    dropout: &mut ChaCha20Rng,
) -> Result<(f64, usize)> {
    let batch = split.tokens.select(which);
    let t = model.tensors(&batch)?;
    let frozen = split.frozen_rows(model, which, &t)?;
    let labels: Vec<u32> = which.iter().map(|&i| split.labels[i]).collect();
    forward_backward(model, sgd, &frozen, &t, &labels, dropout)
}

/// The trainable part forward with dropout, the loss, backward and SGD: the loss and the
/// correct predictions.
fn forward_backward(
    model: &Classifier,
    sgd: &mut Sgd,
    frozen: &FrozenOutput,
    t: &BatchTensors,
    labels: &[u32],
    dropout: &mut ChaCha20Rng,
) -> Result<(f64, usize)> {
    let logits = model.logits_from(frozen, t, Some(dropout))?;
    let (loss, correct) = loss_and_correct(&logits, &labels_tensor(labels)?)?;
    sgd.backward_step(&loss)?;
    Ok((scalar(&loss)?, correct))
}

/// The batches of a run over `n` training sentences: for each of `epochs` epochs, a
/// permutation from stream 1 of `seed` cut into batches of `batch` (the last may be smaller).
/// Secure fine-tuning takes the same batches to be compared with plaintext training.
pub fn batch_order(seed: u64, n: usize, batch: usize, epochs: usize) -> Vec<Vec<usize>> {
    let mut rng = stream(seed, 1);
    let mut out = Vec::new();
    for _ in 0..epochs {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        out.extend(order.chunks(batch.max(1)).map(<[usize]>::to_vec));
    }
    out
}

/// The predicted class of every sentence of `tokens` (evaluation mode, the whole network).
///
/// # Errors
/// As [`Classifier::logits`].
pub fn predictions(model: &Classifier, tokens: &TokenBatch) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(tokens.rows);
    for start in (0..tokens.rows).step_by(EVAL_BATCH) {
        let batch = tokens.rows(start..(start + EVAL_BATCH).min(tokens.rows));
        let logits = model.logits(&batch, None)?;
        let p = logits.argmax(1).and_then(|p| p.to_vec1::<u32>()).map_err(candle_error)?;
        out.extend(p);
    }
    Ok(out)
}

/// A ChaCha20 stream `stream` of `seed` (0: head, 1: batch order, 2: dropout).
pub fn stream(seed: u64, stream: u64) -> ChaCha20Rng {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// One training step of `model` on `batch` with `labels` (for benchmarks and tests): the whole
/// network forward with dropout from `dropout`, backward through the trainable part, SGD.
/// Returns the loss.
///
/// # Errors
/// As [`Classifier::logits`]; a label that is not 0 or 1 as [`Error::Data`].
pub fn step(
    model: &Classifier,
    sgd: &mut Sgd,
    batch: &TokenBatch,
    labels: &[u32],
    dropout: &mut ChaCha20Rng,
) -> Result<f64> {
    let t = model.tensors(batch)?;
    let frozen = model.frozen(&t)?;
    step_from(model, sgd, &frozen, &t, labels, dropout)
}

/// One training step from the frozen part's stored output `frozen` of the batch `t`: the
/// trainable part forward with dropout, backward, SGD. Returns the loss.
///
/// # Errors
/// As [`Classifier::logits_from`]; a label that is not 0 or 1 as [`Error::Data`].
pub fn step_from(
    model: &Classifier,
    sgd: &mut Sgd,
    frozen: &FrozenOutput,
    t: &BatchTensors,
    labels: &[u32],
    dropout: &mut ChaCha20Rng,
) -> Result<f64> {
    let rows = t.mask.dims().first().copied().unwrap_or(0);
    if labels.len() != rows || labels.iter().any(|&l| l > 1) {
        return Err(Error::Data(format!(
            "{} labels (each 0 or 1) needed for {rows} sentences",
            labels.len()
        )));
    }
    Ok(forward_backward(model, sgd, frozen, t, labels, dropout)?.0)
}

/// Fine-tune `model` on `train`, evaluating on `test` before training and after every epoch.
///
/// # Errors
/// [`Error::Usage`] for a zero batch, epoch count or sequence length, or an empty split;
/// tokenizer and candle failures.
pub fn fine_tune(
    model: &Classifier,
    tokenizer: &SentenceTokenizer,
    train: &[Sentence],
    test: &[Sentence],
    config: &FineTuneConfig,
    progress: &mut dyn FnMut(Progress),
) -> Result<FineTuneSummary> {
    if config.batch == 0 || config.epochs == 0 || train.is_empty() || test.is_empty() {
        return Err(Error::Usage(
            "fine-tuning needs a batch of at least 1, at least one epoch, and training and test sentences"
                .into(),
        ));
    }
    if !(config.lr > 0.0 && config.lr.is_finite() && (0.0..1.0).contains(&config.momentum)) {
        return Err(Error::Usage(format!(
            "learning rate {} must be positive and momentum {} in [0, 1)",
            config.lr, config.momentum
        )));
    }
    let mut train_split = Split::new(tokenizer, train, config.seq_len)?;
    let mut test_split = Split::new(tokenizer, test, config.seq_len)?;
    let started = Instant::now();
    let mut frozen_seconds = 0.0;
    if config.reuse_frozen && model.trainable_layers() < model.config().num_hidden_layers {
        let (mut done, total) = (0, train.len() + test.len());
        store_frozen(model, &mut train_split, progress, &mut done, total)?;
        store_frozen(model, &mut test_split, progress, &mut done, total)?;
        frozen_seconds = started.elapsed().as_secs_f64();
    }
    let vars: Vec<(String, Var)> = model.trainable_vars();
    let trainable_parameters = vars.iter().map(|(_, v)| v.elem_count()).sum();
    let mut sgd = Sgd::new(vars.into_iter().map(|(_, v)| v).collect(), config.lr, config.momentum);
    let (_, initial_test_accuracy) = evaluate(model, &test_split)?;

    let order = batch_order(config.seed, train.len(), config.batch, config.epochs);
    let mut dropout_rng = stream(config.seed, 2);
    let steps = train.len().div_ceil(config.batch);
    let mut epochs = Vec::new();
    for (epoch, batches) in (1..=config.epochs).zip(order.chunks(steps)) {
        let t0 = Instant::now();
        let (mut loss_sum, mut correct) = (0.0, 0usize);
        for (step, which) in batches.iter().enumerate() {
            let (loss, c) = train_step(model, &mut sgd, &train_split, which, &mut dropout_rng)?;
            if !loss.is_finite() {
                return Err(Error::Usage(format!(
                    "the training loss diverged (not finite) in epoch {epoch}, step {}: lower --lr",
                    step + 1
                )));
            }
            loss_sum += loss * which.len() as f64;
            correct += c;
            progress(Progress::Step { epoch, step: step + 1, steps, loss });
        }
        let train_seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let (test_loss, test_accuracy) = evaluate(model, &test_split)?;
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / train.len() as f64,
            train_accuracy: correct as f64 / train.len() as f64,
            test_accuracy,
            test_loss,
            train_seconds,
            eval_seconds: t1.elapsed().as_secs_f64(),
        };
        progress(Progress::Epoch(stats.clone()));
        epochs.push(stats);
    }
    Ok(FineTuneSummary {
        config: config.clone(),
        trainable_layers: model.trainable_layers(),
        trainable_parameters,
        train_sentences: train.len(),
        test_sentences: test.len(),
        initial_test_accuracy,
        frozen_seconds,
        epochs,
    })
}
