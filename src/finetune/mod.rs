//! Secure fine-tuning of a BERT classifier between the model owner (server, P0) and a data owner
//! (client, P1), with a dealer streaming each phase's one-time material.
//!
//! **Who holds what.** P0 owns the pretrained weights and the head's initial weights; P1 owns
//! the sentences (token ids, lengths) and the labels. Every weight, activation, gradient and
//! updated weight is additively shared between them for the whole run; each party sees only
//! openings of values under fresh one-time masks (see [`crate::nn`]) and, for the embedding
//! lookup, DPF keys that hide the token ([`crate::nn::embedding`]). The fine-tuned weights stay
//! shared at the end ([`SecureRun::shares`]); revealing them to the server is the caller's
//! explicit choice (`prifft finetune --reveal-to server`).
//!
//! **Phases.**
//! 1. *Setup*: P0 shares its weights (a 32-byte seed per tensor, [`crate::mpc::sharing::share_input`]);
//!    the frozen weight matrices are opened once, masked, for the whole run; P0 sends the masked
//!    word table to P1 and the table-mask seeds to the helper.
//! 2. *Frozen part, once per sentence*: the embedding lookup (DPF PIR with the dealer as the
//!    helper), position and type rows, the embeddings' layer norm and the frozen bottom layers,
//!    in evaluation mode. Their output is a fixed function of the sentence, so it is computed
//!    once and kept as shares.
//! 3. *Steps*: the trainable top layers forward with dropout, mean pooling, the head, the
//!    softmax–cross-entropy gradient, the whole backward, SGD with momentum on shares.
//!
//! **The dealer** runs on its own thread and streams one chunk per phase unit (the setup, each
//! frozen batch, each step) through a bounded queue ([`crate::mpc::stream`]), so at most two
//! chunks per party exist at once whatever the number of steps. [`train`] runs everything in one
//! process (the parties and the dealer as threads); [`remote`] runs the server, the client and
//! the dealer as three processes over authenticated links, with the same party code.
//!
//! Dropout keep-masks come from the dealer's CSPRNG, or — to compare with plaintext training
//! under identical masks, in one process — from a replayed stream ([`DropoutMasks::Replay`]),
//! which makes them as secret as that seed.
//!
//! **Losses.** The parties never open the loss. The run returns each step's logits *shares*;
//! [`SecureRun::logits`] reconstructs them for the report, which a deployment would not do.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::fss::KeyBatch;
use crate::model::{TokenBatch, Weights};
use crate::mpc::local::LocalChannel;
use crate::mpc::masked::{DealerMask, MaskedTensor};
use crate::mpc::nonlinear::layernorm;
use crate::mpc::sharing::share_input;
use crate::mpc::stream::{self, ChunkReceiver};
use crate::mpc::{Dealer, PartyCtx, PartyId, Share};
use crate::net::{Channel, Cost, NetModel};
use crate::nn::embedding::{self, Helper, Server, TableSeeds};
use crate::nn::encoder::{self, DENSE, Dropout, LayerMasks, LayerParams, NORMS};
use crate::nn::head::{self, SgdConfig};
use crate::nn::linear::Dense;
use crate::nn::{Dims, FRAC, MASTER_FRAC, PAD_MASK, enc_at};
use crate::prg::ChaCha20Rng;
use crate::ring::RingTensor;

pub mod remote;

/// Where dropout keep-masks come from.
#[derive(Clone, Debug)]
pub enum DropoutMasks {
    /// The dealer's OS-seeded CSPRNG (secret from both parties): the default.
    Dealer,
    /// A replayed ChaCha20 stream, drawn exactly as the plaintext model draws its masks, for a
    /// side-by-side comparison. The masks are as secret as the stream's seed.
    Replay(Box<ChaCha20Rng>),
}

/// Settings of a secure run.
#[derive(Clone, Debug)]
pub struct SecureConfig {
    /// Trainable top layers k (0 ≤ k < layers: the embeddings stay frozen).
    pub trainable: usize,
    /// SGD's learning rate, momentum and batch.
    pub sgd: SgdConfig,
    /// Sentences per frozen-part batch.
    pub frozen_batch: usize,
    /// Run the frozen part (embedding lookup and frozen layers) inside every step, on the step's
    /// batch, instead of once per sentence with its output kept: the cost of a step with every
    /// layer forward (same results).
    pub recompute_frozen: bool,
    /// Dropout keep-masks.
    pub dropout: DropoutMasks,
    /// The network model of the two parties' link (none: memory speed).
    pub net: Option<NetModel>,
    /// Receive each step's whole material before its online phase starts, so the dealer does
    /// not share the cores with the parties while they compute (it still makes the next step's
    /// first layer meanwhile): the online time of a deployment whose dealer runs elsewhere, at
    /// the price of one step's material resident per party.
    pub offline_first: bool,
}

/// What a run reports as it goes (called from P0's thread).
#[derive(Clone, Copy, Debug)]
pub enum Progress {
    /// `done` of `total` sentences through the frozen part.
    Frozen {
        /// Sentences done.
        done: usize,
        /// Sentences in all.
        total: usize,
    },
    /// `done` of `total` steps.
    Step {
        /// Steps done.
        done: usize,
        /// Steps in all.
        total: usize,
    },
}

/// One phase's cost for P0 (the parties' traffic is symmetric up to the inputs' seeds).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PhaseCost {
    /// Wall time, seconds.
    pub seconds: f64,
    /// P0's bytes sent.
    pub bytes_sent: u64,
    /// P0's bytes received.
    pub bytes_received: u64,
    /// Rounds.
    pub rounds: u64,
    /// The process's resident memory at the phase's end (Linux), if known.
    pub rss_bytes: Option<u64>,
}

impl PhaseCost {
    fn new(cost: Cost, seconds: f64) -> PhaseCost {
        PhaseCost {
            seconds,
            bytes_sent: cost.bytes_sent,
            bytes_received: cost.bytes_received,
            rounds: cost.rounds,
            rss_bytes: rss_bytes(),
        }
    }
}

/// The process's resident memory now (`VmRSS` of /proc/self/status), where the OS reports it.
pub fn rss_bytes() -> Option<u64> {
    proc_status_bytes("VmRSS:")
}

/// The process's peak resident memory so far (`VmHWM`), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_bytes("VmHWM:")
}

fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The result of a secure run.
#[derive(Debug)]
pub struct SecureRun {
    /// The trainable parameters' names and shapes (Hugging Face's; `head.weight`, `head.bias`).
    pub names: Vec<(String, Vec<usize>)>,
    /// Each party's shares of the fine-tuned parameters (at 2^24), in `names`' order.
    pub shares: [Vec<Share>; 2],
    /// Each step's logits shares of both parties.
    pub step_logits: Vec<[Share; 2]>,
    /// Setup (sharing, masking the frozen weights, the masked table).
    pub setup: PhaseCost,
    /// The frozen part over all sentences.
    pub frozen: PhaseCost,
    /// Each step.
    pub steps: Vec<PhaseCost>,
    /// One party's preprocessing bytes (keys, masks, correlations) of the first step.
    pub key_bytes_per_step: u64,
    /// One party's preprocessing bytes of the first frozen batch.
    pub frozen_key_bytes: u64,
    /// The dealer's largest chunk (bytes, one party).
    pub peak_chunk_bytes: u64,
    /// The dealer's time: for the setup and the frozen part in all, and per step (seconds, on
    /// its own thread; in one process it shares the cores with the parties).
    pub dealer_seconds: [f64; 2],
}

impl SecureRun {
    /// The logits of step `i` (batch × 2), reconstructed — a measurement for the report; the
    /// parties themselves never open them.
    ///
    /// # Errors
    /// Shape errors.
    pub fn logits(&self, i: usize) -> Result<Vec<f64>> {
        let [a, b] = &self.step_logits[i];
        Ok(a.tensor().add(b.tensor())?.as_slice().iter().map(|&v| dec(v, FRAC)).collect())
    }

    /// The fine-tuned parameters, reconstructed (f64, by name) — for `--reveal-to server` and
    /// the comparison with plaintext training.
    ///
    /// # Errors
    /// Shape errors.
    pub fn reveal(&self) -> Result<Vec<Revealed>> {
        self.names
            .iter()
            .zip(self.shares[0].iter().zip(&self.shares[1]))
            .map(|((n, s), (a, b))| reveal_one(n, s, a.tensor(), b.tensor()))
            .collect()
    }
}

/// A reconstructed parameter: its name, shape and values.
pub type Revealed = (String, Vec<usize>, Vec<f64>);

/// One parameter from both shares (at 2^24).
fn reveal_one(name: &str, shape: &[usize], a: &RingTensor, b: &RingTensor) -> Result<Revealed> {
    let v = a.add(b)?;
    Ok((
        name.to_string(),
        shape.to_vec(),
        v.as_slice().iter().map(|&x| dec(x, MASTER_FRAC)).collect(),
    ))
}

/// A ring value at 2^bits as f64.
pub fn dec(x: u64, bits: u32) -> f64 {
    x as i64 as f64 / 2f64.powi(bits as i32)
}

/// The training data: P1's sentences and labels. Prints only its size.
#[derive(Clone)]
pub struct ClientData {
    /// Token ids and masks of every training sentence.
    pub tokens: TokenBatch,
    /// 0/1 labels.
    pub labels: Vec<u32>,
}

/// The server's model: pretrained weights and the head's initial weights. Prints only its
/// shape.
pub struct ServerModel<'a> {
    /// The pretrained encoder.
    pub weights: &'a Weights,
    /// The head's weight (2 × d, row-major) and bias (2).
    pub head: (Vec<f64>, Vec<f64>),
}

impl std::fmt::Debug for ClientData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientData")
            .field("sentences", &self.labels.len())
            .field("seq_len", &self.tokens.seq_len)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ServerModel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerModel").field("config", self.weights.config()).finish_non_exhaustive()
    }
}

fn tensor_f64(w: &Weights, name: &str) -> Result<(Vec<usize>, Vec<f64>)> {
    let t = w.get(name)?;
    Ok((t.dims().to_vec(), crate::model::values_f64(t)?))
}

fn enc_tensor(shape: &[usize], v: &[f64], bits: u32) -> Result<RingTensor> {
    let limit = 2f64.powi(62 - bits as i32);
    if let Some(x) = v.iter().find(|x| !x.is_finite() || x.abs() >= limit) {
        return Err(Error::Data(format!(
            "a parameter value {x} cannot be encoded with {bits} fractional bits"
        )));
    }
    Ok(RingTensor::from_vec(shape, v.iter().map(|&x| enc_at(x, bits)).collect())?)
}

/// The model's public sizes, which P0 brings to a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ModelShape {
    layers: usize,
    hidden: usize,
    heads: usize,
    ffn: usize,
    vocab: usize,
    max_positions: usize,
    eps: f64,
    attention_dropout: f64,
    hidden_dropout: f64,
}

impl ModelShape {
    fn of(c: &crate::model::BertConfig) -> ModelShape {
        ModelShape {
            layers: c.num_hidden_layers,
            hidden: c.hidden_size,
            heads: c.num_attention_heads,
            ffn: c.intermediate_size,
            vocab: c.vocab_size,
            max_positions: c.max_position_embeddings,
            eps: c.layer_norm_eps,
            attention_dropout: c.attention_probs_dropout_prob,
            hidden_dropout: c.hidden_dropout_prob,
        }
    }
}

/// The data's public sizes, which P1 brings: sentence count, tokens per sentence and each
/// step's batch (indices into its sentences).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct DataShape {
    sentences: usize,
    seq: usize,
    steps: Vec<Vec<usize>>,
}

/// The public plan of a run: shapes and counts both parties and the dealer know.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Shape {
    layers: usize,
    trainable: usize,
    hidden: usize,
    heads: usize,
    ffn: usize,
    seq: usize,
    vocab: usize,
    eps: f64,
    attention_dropout: f64,
    hidden_dropout: f64,
    sentences: usize,
    frozen_batch: usize,
    /// The frozen part runs inside every step (no kept outputs).
    recompute: bool,
    steps: Vec<Vec<usize>>,
}

/// Bounds a plan from another process must keep (far above any BERT-base-sized model), so a
/// wrong or hostile plan is refused before anything is allocated for it.
const MAX_SIZE: usize = 1 << 16;
const MAX_VOCAB: usize = 1 << 22;

impl Shape {
    /// The run's public shape, after checking that it can be run.
    fn new(
        model: &ServerModel<'_>,
        data: &ClientData,
        steps: &[Vec<usize>],
        cfg: &SecureConfig,
    ) -> Result<Shape> {
        let data = data_shape(data, steps)?;
        Shape::from_parts(
            &ModelShape::of(model.weights.config()),
            &data,
            cfg.trainable,
            cfg.frozen_batch,
            cfg.recompute_frozen,
        )
    }

    /// The plan from P0's model sizes and P1's data sizes, checked.
    fn from_parts(
        m: &ModelShape,
        data: &DataShape,
        trainable: usize,
        frozen_batch: usize,
        recompute: bool,
    ) -> Result<Shape> {
        let sizes = [m.layers, m.hidden, m.heads, m.ffn, m.max_positions];
        if sizes.iter().any(|&x| x == 0 || x > MAX_SIZE)
            || m.vocab == 0
            || m.vocab > MAX_VOCAB
            || !m.hidden.is_multiple_of(m.heads)
            || !(m.eps.is_finite() && m.eps > 0.0)
            || ![m.attention_dropout, m.hidden_dropout].iter().all(|p| (0.0..1.0).contains(p))
        {
            return Err(Error::Data(format!("the model's sizes are unusable: {m:?}")));
        }
        if trainable >= m.layers {
            return Err(Error::Usage(format!(
                "secure fine-tuning trains at most {} of the {} layers (the embeddings stay frozen)",
                m.layers - 1,
                m.layers
            )));
        }
        let n = data.sentences;
        if n == 0 || n > MAX_VOCAB || data.seq < 2 {
            return Err(Error::Usage(format!(
                "{n} sentences of {} tokens cannot be trained on",
                data.seq
            )));
        }
        if data.steps.is_empty()
            || data
                .steps
                .iter()
                .any(|s| s.is_empty() || s.len() > MAX_SIZE || s.iter().any(|&i| i >= n))
        {
            return Err(Error::Usage(
                "every step needs a non-empty batch of sentence indices".into(),
            ));
        }
        if data.seq > m.max_positions {
            return Err(Error::Usage(format!(
                "sequence length {} exceeds the model's {} positions",
                data.seq, m.max_positions
            )));
        }
        Ok(Shape {
            layers: m.layers,
            trainable,
            hidden: m.hidden,
            heads: m.heads,
            ffn: m.ffn,
            seq: data.seq,
            vocab: m.vocab,
            eps: m.eps,
            attention_dropout: m.attention_dropout,
            hidden_dropout: m.hidden_dropout,
            sentences: n,
            frozen_batch: frozen_batch.clamp(1, MAX_SIZE),
            recompute,
            steps: data.steps.clone(),
        })
    }

    /// The same plan checked again, as received from another process.
    fn recheck(&self) -> Result<Shape> {
        let model = ModelShape {
            layers: self.layers,
            hidden: self.hidden,
            heads: self.heads,
            ffn: self.ffn,
            vocab: self.vocab,
            max_positions: self.seq,
            eps: self.eps,
            attention_dropout: self.attention_dropout,
            hidden_dropout: self.hidden_dropout,
        };
        let data =
            DataShape { sentences: self.sentences, seq: self.seq, steps: self.steps.clone() };
        Shape::from_parts(&model, &data, self.trainable, self.frozen_batch, self.recompute)
    }

    /// The shapes of one layer's 16 parameter tensors, in the order they are kept: (W, b) of
    /// each dense map, then (γ, β) of each layer norm.
    fn layer_param_shapes(&self) -> Vec<Vec<usize>> {
        let d = self.hidden;
        self.dense_shapes()
            .iter()
            .flat_map(|s| [s.to_vec(), vec![s[0]]])
            .chain([vec![d], vec![d], vec![d], vec![d]])
            .collect()
    }

    fn dims(&self, batch: usize) -> Dims {
        Dims { batch, seq: self.seq, hidden: self.hidden, heads: self.heads, ffn: self.ffn }
    }

    fn frozen_layers(&self) -> usize {
        self.layers - self.trainable
    }

    /// The batches of the frozen part before the steps (none when it runs inside each step).
    fn frozen_batches(&self) -> Vec<Vec<usize>> {
        if self.recompute {
            return Vec::new();
        }
        (0..self.sentences)
            .step_by(self.frozen_batch)
            .map(|s| (s..(s + self.frozen_batch).min(self.sentences)).collect())
            .collect()
    }

    fn dropout(&self) -> Dropout {
        Dropout { attention: self.attention_dropout, hidden: self.hidden_dropout }
    }

    /// The dense weight shapes of one layer (as [`DENSE`]): out × in.
    fn dense_shapes(&self) -> [[usize; 2]; 6] {
        let (d, f) = (self.hidden, self.ffn);
        [[d, d], [d, d], [d, d], [d, d], [f, d], [d, f]]
    }

    /// Trainable parameter names and shapes, in the order they are kept.
    fn trainable_names(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for i in self.frozen_layers()..self.layers {
            for (name, s) in DENSE.iter().zip(self.dense_shapes()) {
                out.push((format!("encoder.layer.{i}.{name}.weight"), s.to_vec()));
                out.push((format!("encoder.layer.{i}.{name}.bias"), vec![s[0]]));
            }
            for name in NORMS {
                out.push((format!("encoder.layer.{i}.{name}.weight"), vec![self.hidden]));
                out.push((format!("encoder.layer.{i}.{name}.bias"), vec![self.hidden]));
            }
        }
        out.push(("head.weight".into(), vec![head::CLASSES, self.hidden]));
        out.push(("head.bias".into(), vec![head::CLASSES]));
        out
    }
}

/// P1's data sizes, after checking the sentences against their labels.
fn data_shape(data: &ClientData, steps: &[Vec<usize>]) -> Result<DataShape> {
    let n = data.labels.len();
    if data.tokens.rows != n || n == 0 || data.labels.iter().any(|&l| l > 1) {
        return Err(Error::Usage(format!(
            "{} sentences with {n} labels (each 0 or 1) cannot be trained on",
            data.tokens.rows
        )));
    }
    Ok(DataShape { sentences: n, seq: data.tokens.seq_len, steps: steps.to_vec() })
}

/// Run secure fine-tuning: P0 with `model`, P1 with `data`, the batches `steps` (indices into
/// the sentences), on `backend`, in one process (two party threads, a dealer thread and the
/// helper thread).
///
/// # Errors
/// [`Error::Usage`] for an impossible configuration (k ≥ layers, empty steps, a batch index out
/// of range, sequence longer than the positions); data errors for unusable weights; any party's
/// protocol, channel or preprocessing error.
pub fn train(
    model: &ServerModel<'_>,
    data: &ClientData,
    steps: &[Vec<usize>],
    cfg: &SecureConfig,
    backend: Arc<dyn Backend>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<SecureRun> {
    train_with_faults(model, data, steps, cfg, backend, progress, Faults::default())
}

/// Failures to inject into a run, for the tests of its error paths: what a run does when the
/// dealer's stream ends early or the client vanishes mid-step. Real runs never set them.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// The dealer stops after this many chunks.
    pub dealer_chunks: Option<usize>,
    /// The client's thread quits in this step, after its layers' forward (its channel, helper
    /// link and stream end drop with it).
    pub client_quits_in_step: Option<usize>,
}

/// [`train`] with injected [`Faults`] (tests only).
///
/// # Errors
/// As [`train`]; the injected failure's consequence.
#[doc(hidden)]
pub fn train_with_faults(
    model: &ServerModel<'_>,
    data: &ClientData,
    steps: &[Vec<usize>],
    cfg: &SecureConfig,
    backend: Arc<dyn Backend>,
    progress: &(dyn Fn(Progress) + Sync),
    faults: Faults,
) -> Result<SecureRun> {
    let shape = Shape::new(model, data, steps, cfg)?;
    let server = server_inputs(model, &shape)?;
    let dealer_seconds = Arc::new(std::sync::Mutex::new([0.0f64; 2]));
    let mut plan = dealer_plan(shape.clone(), cfg.dropout.clone(), dealer_seconds.clone());
    let plan = move |dealer: &mut Dealer, i: usize| match faults.dealer_chunks {
        Some(n) if i >= n => Ok(false),
        _ => plan(dealer, i),
    };
    let ([rx0, rx1], dealer) = stream::spawn(1, plan);
    let (seed_tx, seed_rx) = mpsc::sync_channel::<Vec<u8>>(1);
    let (key_tx, key_rx) = mpsc::sync_channel::<Vec<u8>>(1);
    let (ans_tx, ans_rx) = mpsc::sync_channel::<Result<RingTensor>>(1);
    let helper_backend = backend.clone();
    let (vocab, d) = (shape.vocab, shape.hidden);
    let helper = std::thread::spawn(move || {
        helper_serve(
            &*helper_backend,
            vocab,
            d,
            seed_rx.recv().ok(),
            || Ok(key_rx.recv().ok()),
            |answer| Ok(ans_tx.send(answer).is_ok()),
        )
    });
    let sgd = cfg.sgd;
    let offline_first = cfg.offline_first;
    let run = crate::mpc::local::run_parties(
        cfg.net,
        backend,
        [
            crate::mpc::Preproc::new(PartyId::P0, [0; 16]),
            crate::mpc::Preproc::new(PartyId::P1, [0; 16]),
        ],
        |ctx| {
            let mut helper = LocalHelper { seeds: Some(seed_tx), keys: None, answers: None };
            let io = Io::Server { inputs: &server, helper: &mut helper };
            party(ctx, &shape, &sgd, offline_first, rx0, io, progress)
        },
        |ctx| {
            let quit = faults.client_quits_in_step;
            let mut helper = LocalHelper { seeds: None, keys: Some(key_tx), answers: Some(ans_rx) };
            let io = Io::Client { data, helper: &mut helper, quit };
            party(ctx, &shape, &sgd, offline_first, rx1, io, &|_| {})
        },
    );
    let helper_result = helper.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    let dealt = dealer.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    let run = run?;
    helper_result?;
    let stats = dealt?;
    let (o0, o1) = (run.out0, run.out1);
    Ok(SecureRun {
        names: shape.trainable_names(),
        shares: [o0.params, o1.params],
        step_logits: o0.logits.into_iter().zip(o1.logits).map(|(a, b)| [a, b]).collect(),
        setup: o0.setup,
        frozen: o0.frozen,
        steps: o0.steps,
        key_bytes_per_step: o0.step_key_bytes,
        frozen_key_bytes: o0.frozen_key_bytes,
        peak_chunk_bytes: stats.peak_chunk_bytes,
        dealer_seconds: {
            let d = dealer_seconds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            [d[0], d[1] / steps.len() as f64]
        },
    })
}

/// P0's inputs, encoded.
struct ServerInputs {
    /// Per layer: the six dense (W, b) and two norms (γ, β), at 2^16 (frozen) or 2^24
    /// (trainable).
    layers: Vec<Vec<RingTensor>>,
    /// The embeddings' layer norm (γ, β) at 2^16.
    embed_norm: [RingTensor; 2],
    /// The word table at 2^16.
    words: RingTensor,
    /// Position rows 0..L plus the type-0 row, at 2^16: [L, d].
    positions: RingTensor,
    /// The head (W, b) at 2^24.
    head: [RingTensor; 2],
}

fn server_inputs(model: &ServerModel<'_>, shape: &Shape) -> Result<ServerInputs> {
    let w = model.weights;
    let mut layers = Vec::new();
    for i in 0..shape.layers {
        let bits = if i < shape.frozen_layers() { FRAC } else { MASTER_FRAC };
        let mut ts = Vec::new();
        for name in DENSE {
            for part in ["weight", "bias"] {
                let (s, v) = tensor_f64(w, &format!("encoder.layer.{i}.{name}.{part}"))?;
                ts.push(enc_tensor(&s, &v, bits)?);
            }
        }
        for name in NORMS {
            for part in ["weight", "bias"] {
                let (s, v) = tensor_f64(w, &format!("encoder.layer.{i}.{name}.{part}"))?;
                ts.push(enc_tensor(&s, &v, bits)?);
            }
        }
        layers.push(ts);
    }
    let norm = |p: &str| -> Result<RingTensor> {
        let (s, v) = tensor_f64(w, &format!("embeddings.LayerNorm.{p}"))?;
        enc_tensor(&s, &v, FRAC)
    };
    let (ws, wv) = tensor_f64(w, "embeddings.word_embeddings.weight")?;
    let (_, pv) = tensor_f64(w, "embeddings.position_embeddings.weight")?;
    let (_, tv) = tensor_f64(w, "embeddings.token_type_embeddings.weight")?;
    let d = shape.hidden;
    let pos: Vec<f64> = (0..shape.seq * d).map(|i| pv[i] + tv[i % d]).collect();
    let (hw, hb) = &model.head;
    Ok(ServerInputs {
        layers,
        embed_norm: [norm("weight")?, norm("bias")?],
        words: enc_tensor(&ws, &wv, FRAC)?,
        positions: enc_tensor(&[shape.seq, d], &pos, FRAC)?,
        head: [
            enc_tensor(&[head::CLASSES, d], hw, MASTER_FRAC)?,
            enc_tensor(&[head::CLASSES], hb, MASTER_FRAC)?,
        ],
    })
}

/// The embedding lookup's helper (the dealer) as a party reaches it: in this process through
/// queues ([`LocalHelper`]), or over a link to the dealer's process ([`remote`]).
trait HelperLink: Send {
    /// P0: hand the table-mask seeds to the helper (once, in the setup).
    fn seeds(&mut self, bytes: Vec<u8>) -> Result<()>;
    /// P1: the helper's answer to a batch of DPF keys for `tokens` tokens: [tokens, d].
    fn ask(&mut self, keys: Vec<u8>, tokens: usize) -> Result<RingTensor>;
    /// P1: no more questions (the frozen part is done).
    fn done(&mut self) -> Result<()>;
}

/// The helper in this process: queues to and from its thread.
struct LocalHelper {
    seeds: Option<mpsc::SyncSender<Vec<u8>>>,
    keys: Option<mpsc::SyncSender<Vec<u8>>>,
    answers: Option<mpsc::Receiver<Result<RingTensor>>>,
}

impl HelperLink for LocalHelper {
    fn seeds(&mut self, bytes: Vec<u8>) -> Result<()> {
        let tx = self.seeds.take().ok_or_else(helper_gone)?;
        tx.send(bytes).map_err(|_| helper_gone())
    }

    fn ask(&mut self, keys: Vec<u8>, _tokens: usize) -> Result<RingTensor> {
        let (tx, rx) = self.keys.as_ref().zip(self.answers.as_ref()).ok_or_else(helper_gone)?;
        tx.send(keys).map_err(|_| helper_gone())?;
        rx.recv().map_err(|_| helper_gone())?
    }

    fn done(&mut self) -> Result<()> {
        self.keys = None;
        self.answers = None;
        Ok(())
    }
}

/// The helper's work: P0's seeds (`None`: P0 hung up before sending them), then one answer
/// per key batch from `next_keys` until it returns `None`, each handed to `reply` (which
/// returns false when P1 is gone).
fn helper_serve(
    backend: &dyn Backend,
    vocab: usize,
    d: usize,
    seeds: Option<Vec<u8>>,
    mut next_keys: impl FnMut() -> Result<Option<Vec<u8>>>,
    mut reply: impl FnMut(Result<RingTensor>) -> Result<bool>,
) -> Result<()> {
    let Some(bytes) = seeds else { return Ok(()) };
    let mut helper = Helper::new(&TableSeeds::from_bytes(&bytes)?, vocab, d)?;
    while let Some(k) = next_keys()? {
        let answer = KeyBatch::from_bytes(&k)
            .map_err(|e| Error::from(crate::mpc::MpcError::from(e)))
            .and_then(|k| helper.answer(backend, &k));
        if !reply(answer)? {
            break;
        }
    }
    Ok(())
}

enum Io<'a> {
    Server {
        inputs: &'a ServerInputs,
        helper: &'a mut dyn HelperLink,
    },
    Client {
        data: &'a ClientData,
        helper: &'a mut dyn HelperLink,
        /// An injected failure ([`Faults::client_quits_in_step`]).
        quit: Option<usize>,
    },
}

struct PartyOut {
    params: Vec<Share>,
    logits: Vec<Share>,
    setup: PhaseCost,
    frozen: PhaseCost,
    steps: Vec<PhaseCost>,
    step_key_bytes: u64,
    frozen_key_bytes: u64,
}

/// A trainable parameter: master share and momentum.
struct Param {
    w: Share,
    v: Share,
}

type Ctx = PartyCtx<LocalChannel>;

fn input(
    ctx: &mut Ctx,
    owner: PartyId,
    value: Option<&RingTensor>,
    shape: &[usize],
) -> Result<Share> {
    Ok(share_input(ctx, owner, value.filter(|_| ctx.id == owner), shape)?)
}

/// A party's end of the dealer stream, measuring the chunks' bytes while `measure` is on (the
/// time spent measuring is kept apart so that it does not count as online time).
struct Chunks {
    rx: ChunkReceiver,
    /// Chunks already in the store (received ahead).
    prefetched: usize,
    measure: bool,
    bytes: u64,
    spent: Duration,
}

fn chunk(ctx: &mut Ctx, rx: &mut Chunks) -> Result<()> {
    if rx.prefetched > 0 {
        rx.prefetched -= 1;
        return Ok(());
    }
    rx.rx.next_into(&mut ctx.preproc)?;
    if rx.measure {
        let t = Instant::now();
        rx.bytes += ctx.preproc.wire_bytes() as u64;
        rx.spent += t.elapsed();
    }
    Ok(())
}

/// The cost since `start` (a reading of [`PartyCtx::mark`]) and the time since `t`.
fn phase(ctx: &mut Ctx, t: Instant, start: Cost) -> PhaseCost {
    PhaseCost::new(ctx.mark() - start, t.elapsed().as_secs_f64())
}

#[allow(clippy::too_many_arguments)]
fn party(
    ctx: &mut Ctx,
    shape: &Shape,
    sgd: &SgdConfig,
    offline_first: bool,
    rx: ChunkReceiver,
    mut io: Io<'_>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<PartyOut> {
    let mut rx = Chunks { rx, prefetched: 0, measure: false, bytes: 0, spent: Duration::ZERO };
    let quit = match &io {
        Io::Client { quit, .. } => *quit,
        Io::Server { .. } => None,
    };
    let t0 = Instant::now();
    let c0 = ctx.mark();
    let (server, client) = match &io {
        Io::Server { inputs, .. } => (Some(*inputs), None),
        Io::Client { data, .. } => (None, Some(*data)),
    };
    let p0 = PartyId::P0;
    let d = shape.hidden;
    // Setup: share every weight P0 owns.
    let (frozen_raw, mut params) = share_weights(ctx, shape, server, true)?;
    let embed_norm = [
        input(ctx, p0, server.map(|x| &x.embed_norm[0]), &[d])?,
        input(ctx, p0, server.map(|x| &x.embed_norm[1]), &[d])?,
    ];
    // The frozen weight matrices, opened once (masked) for the whole run.
    chunk(ctx, &mut rx)?;
    let frozen_w: Vec<&Share> =
        frozen_raw.iter().flat_map(|ts| (0..6).map(move |j| &ts[2 * j])).collect();
    let masked = crate::mpc::masked::mask_many(ctx, &frozen_w)?;
    let frozen: Vec<LayerParams> =
        frozen_raw.iter().zip(masked.chunks(6)).map(|(ts, ws)| layer_params(ts, ws)).collect();
    // The masked word table to P1, the seeds to the helper.
    let (emb_server, masked_table) = match &mut io {
        Io::Server { inputs, helper } => {
            let s = TableSeeds::random(ctx.rng());
            let (srv, table) = Server::new(&inputs.words, &s)?;
            ctx.channel().send(table.to_le_bytes())?;
            helper.seeds(s.to_bytes())?;
            (Some(srv), None)
        }
        Io::Client { .. } => {
            let bytes = ctx.channel().recv()?;
            let table = RingTensor::from_le_bytes(&[shape.vocab, d], &bytes).map_err(|_| {
                Error::Data("the server's masked word table has the wrong size".into())
            })?;
            (None, Some(table))
        }
    };
    let setup = phase(ctx, t0, c0);

    // The frozen part, once per sentence.
    let t1 = Instant::now();
    let c1 = ctx.mark();
    let mut cached: Vec<RingTensor> = Vec::with_capacity(shape.sentences);
    let mut frozen_key_bytes = 0;
    let mut frozen_part = FrozenPart {
        layers: &frozen,
        embed_norm: &embed_norm,
        server: emb_server,
        table: masked_table,
    };
    for (bi, which) in shape.frozen_batches().iter().enumerate() {
        rx.measure = bi == 0;
        let h = frozen_part.forward(ctx, &mut rx, &mut io, which, shape)?;
        for s in 0..which.len() {
            let block = h.tensor().as_slice()[s * shape.seq * d..(s + 1) * shape.seq * d].to_vec();
            cached.push(RingTensor::from_vec(&[shape.seq, d], block)?);
        }
        if bi == 0 {
            frozen_key_bytes = rx.bytes;
            rx.measure = false;
        }
        progress(Progress::Frozen { done: cached.len(), total: shape.sentences });
    }
    if let (Io::Client { helper, .. }, false) = (&mut io, shape.recompute) {
        helper.done()?;
    }
    let mut frozen_cost = phase(ctx, t1, c1);
    frozen_cost.seconds -= rx.spent.as_secs_f64();

    // Training steps.
    let mut logits_out = Vec::with_capacity(shape.steps.len());
    let mut step_costs = Vec::with_capacity(shape.steps.len());
    let per_layer = 16;
    let k = shape.trainable;
    let mut step_key_bytes = 0;
    for (si, which) in shape.steps.iter().enumerate() {
        rx.measure = si == 0;
        rx.bytes = 0;
        rx.spent = Duration::ZERO;
        if offline_first {
            let frozen_units = if shape.recompute { 1 + shape.frozen_layers() } else { 0 };
            let units = 2 * shape.trainable + 2 + frozen_units;
            for _ in 0..units {
                rx.rx.next_into(&mut ctx.preproc)?;
            }
            if si == 0 {
                step_key_bytes = ctx.preproc.wire_bytes() as u64;
            }
            rx.measure = false;
            rx.prefetched = units;
        }
        let ts = Instant::now();
        let cs = ctx.mark();
        let dims = shape.dims(which.len());
        let rows = dims.rows();
        let h0 = if shape.recompute {
            frozen_part.forward(ctx, &mut rx, &mut io, which, shape)?
        } else {
            let mut h_data = Vec::with_capacity(rows * d);
            for &i in which {
                h_data.extend_from_slice(cached[i].as_slice());
            }
            Share::new(RingTensor::from_vec(&[rows, d], h_data)?)
        };
        chunk(ctx, &mut rx)?;
        let (amask, pool_w, onehot) = client_batch(ctx, client, which, shape)?;
        let amask = encoder::attention_mask_rows(&amask, &dims)?;
        // The working 16-bit weights, the matrices opened (masked) in one round.
        let working: Vec<Share> =
            params.iter().map(|p| head::working(ctx, &p.w)).collect::<Result<_>>()?;
        let mut mats: Vec<&Share> = Vec::new();
        for l in 0..k {
            for j in 0..6 {
                mats.push(&working[l * per_layer + 2 * j]);
            }
        }
        mats.push(&working[k * per_layer]);
        let masked = crate::mpc::masked::mask_many(ctx, &mats)?;
        let layers: Vec<LayerParams> = (0..k)
            .map(|l| {
                layer_params(
                    &working[l * per_layer..(l + 1) * per_layer],
                    &masked[l * 6..(l + 1) * 6],
                )
            })
            .collect();
        let head_dense = Dense { w: masked[k * 6].clone(), b: working[k * per_layer + 1].clone() };
        // Forward.
        let mut h = h0;
        let mut saved = Vec::with_capacity(k);
        for lp in &layers {
            chunk(ctx, &mut rx)?;
            let (y, s) =
                encoder::forward(ctx, lp, &h, &amask, &dims, Some(shape.dropout()), shape.eps)?;
            saved.push(s);
            h = y;
        }
        if quit == Some(si) {
            return Err(Error::Usage(format!("injected fault: the client quits in step {si}")));
        }
        chunk(ctx, &mut rx)?;
        let (logits, dlogits, hs) = head::forward(ctx, &head_dense, &h, &pool_w, &onehot, &dims)?;
        // Backward.
        let hg = head::backward(ctx, &head_dense, &hs, &dlogits)?;
        let mut grads: Vec<Share> = Vec::with_capacity(params.len());
        let mut dy = hg.dh;
        let mut layer_grads = Vec::with_capacity(k);
        for (l, (lp, s)) in layers.iter().zip(&saved).enumerate().rev() {
            chunk(ctx, &mut rx)?;
            let g = encoder::backward(ctx, lp, s, &dy, l > 0)?;
            if let Some(dx) = &g.dx {
                dy = dx.clone();
            }
            layer_grads.push(g);
        }
        layer_grads.reverse();
        for g in layer_grads {
            for (dw, db) in g.dense {
                grads.push(dw);
                grads.push(db);
            }
            for (dg, db) in g.norms {
                grads.push(dg);
                grads.push(db);
            }
        }
        grads.push(hg.head.0);
        grads.push(hg.head.1);
        for (p, g) in params.iter_mut().zip(&grads) {
            head::sgd_update(ctx, sgd, &mut p.w, &mut p.v, g)?;
        }
        logits_out.push(logits);
        let mut cost = phase(ctx, ts, cs);
        cost.seconds -= rx.spent.as_secs_f64();
        step_costs.push(cost);
        if si == 0 && !offline_first {
            step_key_bytes = rx.bytes;
        }
        progress(Progress::Step { done: si + 1, total: shape.steps.len() });
    }
    // With the frozen part inside the steps, the helper is done only now.
    if let (Io::Client { helper, .. }, true) = (&mut io, shape.recompute) {
        helper.done()?;
    }
    Ok(PartyOut {
        params: params.into_iter().map(|p| p.w).collect(),
        logits: logits_out,
        setup,
        frozen: frozen_cost,
        steps: step_costs,
        step_key_bytes,
        frozen_key_bytes,
    })
}

/// The frozen part's parameters (the frozen layers, the embeddings' layer norm) and the
/// embedding lookup's state (P0's server side, P1's copy of the masked table).
struct FrozenPart<'a> {
    layers: &'a [LayerParams],
    embed_norm: &'a [Share; 2],
    server: Option<Server>,
    table: Option<RingTensor>,
}

impl FrozenPart<'_> {
    /// The frozen part on sentences `which`: the embedding lookup, the positions, the layer norm
    /// and the frozen layers in evaluation mode; shares of the output, [rows, d].
    fn forward(
        &mut self,
        ctx: &mut Ctx,
        rx: &mut Chunks,
        io: &mut Io<'_>,
        which: &[usize],
        shape: &Shape,
    ) -> Result<Share> {
        chunk(ctx, rx)?;
        let d = shape.hidden;
        let dims = shape.dims(which.len());
        let rows = dims.rows();
        let h = match io {
            Io::Server { inputs, .. } => {
                let k0 = KeyBatch::from_bytes(&ctx.channel().recv()?)
                    .map_err(|e| Error::from(crate::mpc::MpcError::from(e)))?;
                if k0.len() != rows {
                    return Err(Error::Data(format!(
                        "{} embedding keys for {rows} tokens",
                        k0.len()
                    )));
                }
                let srv = self.server.as_mut().expect("the server's lookup");
                let s = srv.share(ctx.backend(), &k0)?;
                let pos: Vec<u64> = (0..rows)
                    .flat_map(|r| {
                        let t = r % shape.seq;
                        inputs.positions.as_slice()[t * d..(t + 1) * d].to_vec()
                    })
                    .collect();
                Share::new(s.tensor().add(&RingTensor::from_vec(&[rows, d], pos)?)?)
            }
            Io::Client { data, helper, .. } => {
                let ids: Vec<u32> = which
                    .iter()
                    .flat_map(|&i| data.tokens.ids[i * shape.seq..(i + 1) * shape.seq].to_vec())
                    .collect();
                let [k0, k1] = embedding::query(&ids, shape.vocab, ctx.rng())?;
                ctx.channel().send(k0.to_bytes())?;
                let answer = helper.ask(k1.to_bytes(), ids.len())?;
                embedding::client_share(
                    self.table.as_ref().expect("the masked table"),
                    &ids,
                    &answer,
                )?
            }
        };
        let client = match io {
            Io::Client { data, .. } => Some(*data),
            Io::Server { .. } => None,
        };
        let amask = client_mask(ctx, client, which, shape)?;
        let amask = encoder::attention_mask_rows(&amask, &dims)?;
        let [g, b] = self.embed_norm;
        let (mut h, _) = layernorm::forward(ctx, &h, g, b, shape.eps)?;
        for lp in self.layers {
            chunk(ctx, rx)?;
            h = encoder::forward(ctx, lp, &h, &amask, &dims, None, shape.eps)?.0;
        }
        Ok(h)
    }
}

/// Both parties: share P0's weights — the frozen layers' (when `frozen`, at 2^16, returned per
/// layer) and the trainable layers' and the head's (at 2^24, with zero momentum), in the order
/// [`Shape::trainable_names`] lists them.
fn share_weights(
    ctx: &mut Ctx,
    shape: &Shape,
    server: Option<&ServerInputs>,
    frozen: bool,
) -> Result<(Vec<Vec<Share>>, Vec<Param>)> {
    let p0 = PartyId::P0;
    let first = if frozen { 0 } else { shape.frozen_layers() };
    let shapes = shape.layer_param_shapes();
    let (mut frozen_raw, mut params) = (Vec::new(), Vec::new());
    for i in first..shape.layers {
        let ts = shapes
            .iter()
            .enumerate()
            .map(|(j, s)| input(ctx, p0, server.map(|x| &x.layers[i][j]), s))
            .collect::<Result<Vec<_>>>()?;
        if i < shape.frozen_layers() {
            frozen_raw.push(ts);
        } else {
            params.extend(ts.into_iter().map(|w| Param { v: zero_like(&w), w }));
        }
    }
    let d = shape.hidden;
    for (j, s) in [vec![head::CLASSES, d], vec![head::CLASSES]].iter().enumerate() {
        let w = input(ctx, p0, server.map(|x| &x.head[j]), s)?;
        params.push(Param { v: zero_like(&w), w });
    }
    Ok((frozen_raw, params))
}

fn helper_gone() -> Error {
    Error::Data("the embedding helper (the dealer) stopped".into())
}

fn zero_like(s: &Share) -> Share {
    Share::new(RingTensor::zeros(s.shape()))
}

/// One layer's parameters for the party from its 16 shares (W, b per dense map; γ, β per norm)
/// and the six masked weights.
fn layer_params(ts: &[Share], ws: &[MaskedTensor]) -> LayerParams {
    let dense = std::array::from_fn(|j| Dense { w: ws[j].clone(), b: ts[2 * j + 1].clone() });
    LayerParams {
        dense,
        norms: [(ts[12].clone(), ts[13].clone()), (ts[14].clone(), ts[15].clone())],
    }
}

/// P1's additive padding mask for sentences `range` (a shared input of [batch, L]).
fn client_mask(
    ctx: &mut Ctx,
    data: Option<&ClientData>,
    which: &[usize],
    shape: &Shape,
) -> Result<Share> {
    let l = shape.seq;
    let value = match data {
        Some(data) => Some(RingTensor::from_vec(
            &[which.len(), l],
            which
                .iter()
                .flat_map(|&i| {
                    data.tokens.mask[i * l..(i + 1) * l]
                        .iter()
                        .map(|&m| if m == 0 { enc_at(PAD_MASK, FRAC) } else { 0 })
                        .collect::<Vec<_>>()
                })
                .collect(),
        )?),
        None => None,
    };
    input(ctx, PartyId::P1, value.as_ref(), &[which.len(), l])
}

/// P1's inputs of one step: the padding mask, the pooling weights and the one-hot labels.
fn client_batch(
    ctx: &mut Ctx,
    data: Option<&ClientData>,
    which: &[usize],
    shape: &Shape,
) -> Result<(Share, Share, Share)> {
    let l = shape.seq;
    let b = which.len();
    let (mask, pool, onehot) = match data {
        Some(data) => {
            let mut mask = Vec::with_capacity(b * l);
            let mut pool = Vec::with_capacity(b * l);
            let mut onehot = Vec::with_capacity(b * 2);
            for &i in which {
                let m = &data.tokens.mask[i * l..(i + 1) * l];
                let count = m.iter().filter(|&&x| x != 0).count().max(1);
                mask.extend(m.iter().map(|&x| if x == 0 { enc_at(PAD_MASK, FRAC) } else { 0 }));
                pool.extend(
                    m.iter().map(|&x| if x == 0 { 0 } else { enc_at(1.0 / count as f64, FRAC) }),
                );
                let y = data.labels[i];
                onehot.extend([u64::from(y == 0) << FRAC, u64::from(y == 1) << FRAC]);
            }
            (
                Some(RingTensor::from_vec(&[b, l], mask)?),
                Some(RingTensor::from_vec(&[b, l], pool)?),
                Some(RingTensor::from_vec(&[b, 2], onehot)?),
            )
        }
        None => (None, None, None),
    };
    Ok((
        input(ctx, PartyId::P1, mask.as_ref(), &[b, l])?,
        input(ctx, PartyId::P1, pool.as_ref(), &[b, l])?,
        input(ctx, PartyId::P1, onehot.as_ref(), &[b, 2])?,
    ))
}

/// One chunk of the dealer's stream: what the parties compute with it.
#[derive(Clone, Copy, Debug)]
enum Unit {
    /// The frozen weights' masks.
    Setup,
    /// The embeddings' layer norm of a frozen batch of `n` sentences.
    Embed(usize),
    /// Frozen layer `l` on a frozen batch of `n` sentences.
    Frozen(usize, usize),
    /// The trainable weights' masks of a step.
    Weights,
    /// Trainable layer `l`'s forward in step `s`.
    Forward(usize, usize),
    /// The head, loss gradient and head backward of step `s`.
    Head(usize),
    /// Trainable layer `l`'s backward.
    Backward(usize),
}

/// The chunks in the order the parties use them: one layer's material at a time, so a chunk
/// is bounded by one layer of one batch.
fn units(shape: &Shape) -> Vec<Unit> {
    let mut out = vec![Unit::Setup];
    let frozen = |out: &mut Vec<Unit>, n: usize| {
        out.push(Unit::Embed(n));
        out.extend((0..shape.frozen_layers()).map(|l| Unit::Frozen(n, l)));
    };
    for b in shape.frozen_batches() {
        frozen(&mut out, b.len());
    }
    for s in 0..shape.steps.len() {
        if shape.recompute {
            frozen(&mut out, shape.steps[s].len());
        }
        out.push(Unit::Weights);
        out.extend((0..shape.trainable).map(|l| Unit::Forward(s, l)));
        out.push(Unit::Head(s));
        out.extend((0..shape.trainable).rev().map(Unit::Backward));
    }
    out
}

fn gen_layer_masks(dealer: &mut Dealer, shape: &Shape) -> Result<LayerMasks> {
    let ms = shape
        .dense_shapes()
        .iter()
        .map(|s| Ok(crate::mpc::masked::gen_mask(dealer, s)?))
        .collect::<Result<Vec<DealerMask>>>()?;
    Ok(LayerMasks { w: ms.try_into().expect("six masks") })
}

/// The dealer's plan: the chunks of [`units`], with the step's masks and plans kept between a
/// step's chunks.
fn dealer_plan(
    shape: Shape,
    mut dropout: DropoutMasks,
    seconds: Arc<std::sync::Mutex<[f64; 2]>>,
) -> impl FnMut(&mut Dealer, usize) -> std::result::Result<bool, crate::mpc::MpcError> + Send + 'static
{
    let units = units(&shape);
    let mut frozen_masks: Vec<LayerMasks> = Vec::new();
    let mut masks: Vec<LayerMasks> = Vec::new();
    let mut head_mask: Option<DealerMask> = None;
    let mut plans: Vec<encoder::Plan> = Vec::new();
    move |dealer: &mut Dealer, i: usize| {
        let started = Instant::now();
        let r = (|| -> Result<()> {
            match units[i] {
                Unit::Setup => {
                    for _ in 0..shape.frozen_layers() {
                        frozen_masks.push(gen_layer_masks(dealer, &shape)?);
                    }
                }
                Unit::Embed(n) => {
                    let rows = n * shape.seq;
                    layernorm::gen_forward(dealer, &[rows, shape.hidden], shape.eps)?;
                }
                Unit::Frozen(n, l) => {
                    let dims = shape.dims(n);
                    encoder::gen_forward(dealer, &frozen_masks[l], &dims, None, shape.eps, None)?;
                }
                Unit::Weights => {
                    masks = (0..shape.trainable)
                        .map(|_| gen_layer_masks(dealer, &shape))
                        .collect::<Result<_>>()?;
                    head_mask =
                        Some(crate::mpc::masked::gen_mask(dealer, &[head::CLASSES, shape.hidden])?);
                    plans.clear();
                }
                Unit::Forward(s, l) => {
                    let dims = shape.dims(shape.steps[s].len());
                    let replay = match &mut dropout {
                        DropoutMasks::Replay(r) => Some(&mut **r),
                        DropoutMasks::Dealer => None,
                    };
                    plans.push(encoder::gen_forward(
                        dealer,
                        &masks[l],
                        &dims,
                        Some(shape.dropout()),
                        shape.eps,
                        replay,
                    )?);
                }
                Unit::Head(s) => {
                    let dims = shape.dims(shape.steps[s].len());
                    let hm = head_mask.as_ref().expect("the step's masks come first");
                    let hp = head::gen_forward(dealer, hm, &dims)?;
                    head::gen_backward(dealer, hm, &hp)?;
                }
                Unit::Backward(l) => {
                    encoder::gen_backward(dealer, &masks[l], &plans[l], l > 0)?;
                }
            }
            Ok(())
        })();
        r.map_err(|e| crate::mpc::MpcError::Param { op: "dealer", what: e.to_string() })?;
        let spent = started.elapsed().as_secs_f64();
        let mut acc = seconds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match units[i] {
            Unit::Embed(_) | Unit::Frozen(..) if shape.recompute => acc[1] += spent,
            Unit::Setup | Unit::Embed(_) | Unit::Frozen(..) => acc[0] += spent,
            _ => acc[1] += spent,
        }
        Ok(i + 1 < units.len())
    }
}

/// The CrypTen-style protocol set on the same steps ([`crate::nn::baseline`]): each step's
/// online time, bytes and rounds for P0, from the frozen part's output of each batch (computed
/// here in plaintext and entered as P1's input — the frozen part is not part of a step).
///
/// # Errors
/// As [`train`].
pub fn baseline_steps(
    model: &ServerModel<'_>,
    data: &ClientData,
    steps: &[Vec<usize>],
    cfg: &SecureConfig,
    backend: Arc<dyn Backend>,
) -> Result<Vec<PhaseCost>> {
    let shape = Shape::new(model, data, steps, cfg)?;
    let server = server_inputs(model, &shape)?;
    // The frozen part's output per step, in plaintext (P1's input here).
    let frozen_model = crate::model::Classifier::new(
        model.weights,
        cfg.trainable,
        crate::model::Pooling::Mean,
        0,
    )?;
    let mut frozen = Vec::with_capacity(steps.len());
    for which in steps {
        let t = frozen_model.tensors(&data.tokens.select(which))?;
        let v = crate::model::values_f64(&frozen_model.frozen(&t)?.0)?;
        frozen.push(enc_tensor(&[which.len() * shape.seq, shape.hidden], &v, FRAC)?);
    }
    let dealer_shape = shape.clone();
    let ([rx0, rx1], dealer) = stream::spawn(1, move |dealer: &mut Dealer, i: usize| {
        let k = dealer_shape.trainable;
        let per_step = 2 * k + 1;
        let (s, u) = (i / per_step, i % per_step);
        let dims = dealer_shape.dims(dealer_shape.steps[s].len());
        let p = Some(dealer_shape.hidden_dropout);
        let r = if u < k {
            crate::nn::baseline::gen_forward(dealer, &dims, p)
        } else if u == k {
            crate::nn::baseline::gen_head(dealer, &dims)
        } else {
            let l = 2 * k - u;
            crate::nn::baseline::gen_backward(dealer, &dims, l > 0)
        };
        r.map_err(|e| crate::mpc::MpcError::Param { op: "baseline dealer", what: e.to_string() })?;
        Ok(i + 1 < per_step * dealer_shape.steps.len())
    });
    let sgd = cfg.sgd;
    let offline_first = cfg.offline_first;
    let run = crate::mpc::local::run_parties(
        cfg.net,
        backend,
        [
            crate::mpc::Preproc::new(PartyId::P0, [0; 16]),
            crate::mpc::Preproc::new(PartyId::P1, [0; 16]),
        ],
        |ctx| baseline_party(ctx, &shape, &sgd, offline_first, rx0, Some(&server), None, &frozen),
        |ctx| baseline_party(ctx, &shape, &sgd, offline_first, rx1, None, Some(data), &frozen),
    );
    let dealt = dealer.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    let run = run?;
    dealt?;
    Ok(run.out0)
}

#[allow(clippy::too_many_arguments)]
fn baseline_party(
    ctx: &mut Ctx,
    shape: &Shape,
    sgd: &SgdConfig,
    offline_first: bool,
    rx: ChunkReceiver,
    server: Option<&ServerInputs>,
    data: Option<&ClientData>,
    frozen: &[RingTensor],
) -> Result<Vec<PhaseCost>> {
    use crate::nn::baseline as nb;
    let mut rx = Chunks { rx, prefetched: 0, measure: false, bytes: 0, spent: Duration::ZERO };
    let d = shape.hidden;
    let k = shape.trainable;
    let (_, mut params) = share_weights(ctx, shape, server, false)?;
    let mut costs = Vec::with_capacity(shape.steps.len());
    let p = shape.hidden_dropout;
    for (si, which) in shape.steps.iter().enumerate() {
        if offline_first {
            let units = 2 * k + 1;
            for _ in 0..units {
                rx.rx.next_into(&mut ctx.preproc)?;
            }
            rx.prefetched = units;
        }
        let ts = Instant::now();
        let cs = ctx.mark();
        let dims = shape.dims(which.len());
        let h0 = input(ctx, PartyId::P1, Some(&frozen[si]), &[dims.rows(), d])?;
        let (amask, pool_w, onehot) = client_batch(ctx, data, which, shape)?;
        let amask = encoder::attention_mask_rows(&amask, &dims)?;
        let working: Vec<Share> =
            params.iter().map(|p| head::working(ctx, &p.w)).collect::<Result<_>>()?;
        let layers: Vec<nb::Layer> = (0..k)
            .map(|l| {
                let w = &working[l * 16..(l + 1) * 16];
                nb::Layer {
                    dense: std::array::from_fn(|j| (w[2 * j].clone(), w[2 * j + 1].clone())),
                    norms: [(w[12].clone(), w[13].clone()), (w[14].clone(), w[15].clone())],
                }
            })
            .collect();
        let mut h = h0;
        let mut saved = Vec::with_capacity(k);
        for lp in &layers {
            chunk(ctx, &mut rx)?;
            let (y, s) = nb::forward(ctx, lp, &h, &amask, &dims, Some(p), shape.eps)?;
            saved.push(s);
            h = y;
        }
        chunk(ctx, &mut rx)?;
        let hw = (working[k * 16].clone(), working[k * 16 + 1].clone());
        let (_, (dwh, dbh), dh) = nb::head(ctx, &hw, &h, &pool_w, &onehot, &dims)?;
        let mut dy = dh;
        let mut layer_grads = Vec::with_capacity(k);
        for (l, (lp, s)) in layers.iter().zip(&saved).enumerate().rev() {
            chunk(ctx, &mut rx)?;
            let g = nb::backward(ctx, lp, s, &dy, p, l > 0)?;
            if let Some(dx) = &g.dx {
                dy = dx.clone();
            }
            layer_grads.push(g);
        }
        layer_grads.reverse();
        let mut grads = Vec::with_capacity(params.len());
        for g in layer_grads {
            for (a, b) in g.dense.into_iter().chain(g.norms) {
                grads.push(a);
                grads.push(b);
            }
        }
        grads.push(dwh);
        grads.push(dbh);
        for (p, g) in params.iter_mut().zip(&grads) {
            head::sgd_update(ctx, sgd, &mut p.w, &mut p.v, g)?;
        }
        costs.push(phase(ctx, ts, cs));
    }
    Ok(costs)
}
