//! The plaintext BERT sentence classifier: the f32 reference that secure fine-tuning is checked
//! against.
//!
//! The encoder is post-LayerNorm BERT: token + position + type-0 embeddings and LayerNorm; per
//! layer Q, K, V projections, softmax(QKᵀ/√d_h + mask) V per head with the padding masked out,
//! the output projection, residual + LayerNorm, the erf-GELU feed-forward block d → 4d → d,
//! residual + LayerNorm. Then pooling (the mean over real tokens, or `[CLS]`) and a Linear
//! d → 2 head.
//!
//! **What comes from candle and what is written here.** Tensors, the autograd that gives every
//! gradient, softmax, LayerNorm and the loss are candle's (`candle-core`, `candle-nn`). The frozen
//! bottom of the network — embeddings and the first `n − k` layers — runs through
//! candle-transformers' own BERT ([`candle_transformers::models::bert::BertModel`]), an
//! implementation of Hugging Face's `BertModel` written by other hands. The trainable top `k`
//! layers cannot: candle-transformers' BERT has no dropout (its `Dropout` returns its input) and
//! its fast LayerNorm kernel has no backward pass. So [`EncoderLayer`] and the trainable
//! embeddings are composed here from candle's differentiable ops, with dropout added; tests check
//! them against candle-transformers' layers in evaluation mode (`tests/model.rs`). Also written
//! here: GELU as one op with a fused backward ([`super::gelu`]: candle's is eight elementwise
//! passes), pooling, the head, the dropout masks (from a seeded ChaCha20 stream, so that a run is
//! reproducible and the secure implementation can replay the same masks) and SGD with momentum
//! ([`super::train`]; candle's SGD has none).
//!
//! Dropout (probability from `config.json`, 0.1 for MiniLM) acts where Hugging Face's BERT puts
//! it — on the attention probabilities, after the attention output projection and after the
//! feed-forward block, and after the embeddings' LayerNorm — in trainable parts only; frozen ones
//! run in evaluation mode, so their output is a fixed function of the input.

use candle_core::{D, DType, Device, Tensor, Var};
use rand::{RngCore, SeedableRng};
use rand_distr::{Distribution, Normal};

use super::candle_error;
use super::config::BertConfig;
use super::tokenize::TokenBatch;
use super::weights::Weights;
use crate::error::{Error, Result};
use crate::prg::ChaCha20Rng;

type CResult<T> = candle_core::Result<T>;

/// How the token states become one sentence vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// The mean over real (non-padding) tokens: what all-MiniLM-L6-v2 was trained with.
    Mean,
    /// The state of the `[CLS]` token.
    Cls,
}

/// `x` with each element kept with probability 1 − p and scaled by 1/(1 − p), the keep mask
/// drawn from `rng`; `x` itself without an rng (evaluation) or for p = 0.
pub fn dropout(x: &Tensor, p: f64, rng: Option<&mut ChaCha20Rng>) -> CResult<Tensor> {
    let Some(rng) = rng else { return Ok(x.clone()) };
    if p == 0.0 {
        return Ok(x.clone());
    }
    // Drop when a uniform 32-bit word falls below p·2³²: the drop probability is p rounded
    // down to a multiple of 2⁻³².
    let threshold = (p * 4_294_967_296.0) as u64;
    let scale = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if u64::from(rng.next_u32()) < threshold { 0.0 } else { scale })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    x * mask
}

/// A trainable affine map y = x Wᵀ + b over the last dimension (W is out × in, as PyTorch and
/// the file store it; storing Wᵀ instead made candle's backward slower).
#[derive(Debug)]
struct Dense {
    weight: Var,
    bias: Var,
}

impl Dense {
    fn load(w: &Weights, prefix: &str) -> Result<Dense> {
        let weight = w.get(&format!("{prefix}.weight"))?;
        Ok(Dense { weight: var(weight)?, bias: var(w.get(&format!("{prefix}.bias"))?)? })
    }

    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        let dims = x.dims().to_vec();
        let inner = *dims.last().expect("a tensor with a last dimension");
        let rows = x.elem_count() / inner;
        let y = x
            .reshape((rows, inner))?
            .matmul(&self.weight.as_tensor().t()?)?
            .broadcast_add(self.bias.as_tensor())?;
        let mut out = dims;
        *out.last_mut().expect("non-empty") = y.dim(1)?;
        y.reshape(out)
    }

    fn vars(&self, prefix: &str, out: &mut Vec<(String, Var)>) {
        out.push((format!("{prefix}.weight"), self.weight.clone()));
        out.push((format!("{prefix}.bias"), self.bias.clone()));
    }
}

/// A trainable LayerNorm over the last dimension.
#[derive(Debug)]
struct Norm {
    weight: Var,
    bias: Var,
    eps: f64,
}

impl Norm {
    fn load(w: &Weights, prefix: &str, eps: f64) -> Result<Norm> {
        Ok(Norm {
            weight: var(w.get(&format!("{prefix}.weight"))?)?,
            bias: var(w.get(&format!("{prefix}.bias"))?)?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        candle_nn::ops::layer_norm_slow(
            x,
            self.weight.as_tensor(),
            self.bias.as_tensor(),
            self.eps as f32,
        )
    }

    fn vars(&self, prefix: &str, out: &mut Vec<(String, Var)>) {
        out.push((format!("{prefix}.weight"), self.weight.clone()));
        out.push((format!("{prefix}.bias"), self.bias.clone()));
    }
}

fn var(t: &Tensor) -> Result<Var> {
    Var::from_tensor(t).map_err(candle_error)
}

/// One trainable encoder layer, composed from candle's differentiable ops, with dropout.
#[derive(Debug)]
pub struct EncoderLayer {
    index: usize,
    query: Dense,
    key: Dense,
    value: Dense,
    attention_output: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
    heads: usize,
    hidden_dropout: f64,
    attention_dropout: f64,
}

impl EncoderLayer {
    /// Layer `index` of `weights`, as trainable variables.
    ///
    /// # Errors
    /// [`Error::Data`] when a parameter is missing.
    pub fn load(weights: &Weights, index: usize) -> Result<EncoderLayer> {
        let c = weights.config();
        let p = |s: &str| format!("encoder.layer.{index}.{s}");
        Ok(EncoderLayer {
            index,
            query: Dense::load(weights, &p("attention.self.query"))?,
            key: Dense::load(weights, &p("attention.self.key"))?,
            value: Dense::load(weights, &p("attention.self.value"))?,
            attention_output: Dense::load(weights, &p("attention.output.dense"))?,
            attention_norm: Norm::load(
                weights,
                &p("attention.output.LayerNorm"),
                c.layer_norm_eps,
            )?,
            intermediate: Dense::load(weights, &p("intermediate.dense"))?,
            output: Dense::load(weights, &p("output.dense"))?,
            output_norm: Norm::load(weights, &p("output.LayerNorm"), c.layer_norm_eps)?,
            heads: c.num_attention_heads,
            hidden_dropout: c.hidden_dropout_prob,
            attention_dropout: c.attention_probs_dropout_prob,
        })
    }

    /// The layer on hidden states `x` (batch × L × d) with the additive attention mask
    /// (batch × 1 × 1 × L: 0 on tokens, the dtype's minimum on padding); dropout when `rng` is
    /// given.
    pub fn forward(
        &self,
        x: &Tensor,
        attention_mask: &Tensor,
        mut rng: Option<&mut ChaCha20Rng>,
    ) -> CResult<Tensor> {
        let (b, l, d) = x.dims3()?;
        let hs = d / self.heads;
        let split = |t: Tensor| t.reshape((b, l, self.heads, hs))?.transpose(1, 2)?.contiguous();
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scores = (q.matmul(&k.t()?)? / (hs as f64).sqrt())?.broadcast_add(attention_mask)?;
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let probs = dropout(&probs, self.attention_dropout, rng.as_deref_mut())?;
        let context = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b, l, d))?;
        let attended = dropout(
            &self.attention_output.forward(&context)?,
            self.hidden_dropout,
            rng.as_deref_mut(),
        )?;
        let attended = self.attention_norm.forward(&(attended + x)?)?;
        let inner = super::gelu::gelu(&self.intermediate.forward(&attended)?)?;
        let out = dropout(&self.output.forward(&inner)?, self.hidden_dropout, rng)?;
        self.output_norm.forward(&(out + attended)?)
    }

    fn vars(&self, out: &mut Vec<(String, Var)>) {
        let p = |s: &str| format!("encoder.layer.{}.{s}", self.index);
        self.query.vars(&p("attention.self.query"), out);
        self.key.vars(&p("attention.self.key"), out);
        self.value.vars(&p("attention.self.value"), out);
        self.attention_output.vars(&p("attention.output.dense"), out);
        self.attention_norm.vars(&p("attention.output.LayerNorm"), out);
        self.intermediate.vars(&p("intermediate.dense"), out);
        self.output.vars(&p("output.dense"), out);
        self.output_norm.vars(&p("output.LayerNorm"), out);
    }
}

/// Trainable embeddings (word + position + type 0, LayerNorm, dropout).
#[derive(Debug)]
struct Embeddings {
    word: Var,
    position: Var,
    token_type: Var,
    norm: Norm,
    dropout: f64,
}

impl Embeddings {
    fn load(w: &Weights) -> Result<Embeddings> {
        let c = w.config();
        Ok(Embeddings {
            word: var(w.get("embeddings.word_embeddings.weight")?)?,
            position: var(w.get("embeddings.position_embeddings.weight")?)?,
            token_type: var(w.get("embeddings.token_type_embeddings.weight")?)?,
            norm: Norm::load(w, "embeddings.LayerNorm", c.layer_norm_eps)?,
            dropout: c.hidden_dropout_prob,
        })
    }

    fn forward(&self, ids: &Tensor, rng: Option<&mut ChaCha20Rng>) -> CResult<Tensor> {
        let (b, l) = ids.dims2()?;
        let d = self.word.as_tensor().dim(1)?;
        let words =
            self.word.as_tensor().index_select(&ids.flatten_all()?, 0)?.reshape((b, l, d))?;
        let x = words
            .broadcast_add(&self.position.as_tensor().narrow(0, 0, l)?)?
            .broadcast_add(&self.token_type.as_tensor().narrow(0, 0, 1)?)?;
        dropout(&self.norm.forward(&x)?, self.dropout, rng)
    }

    fn vars(&self, out: &mut Vec<(String, Var)>) {
        out.push(("embeddings.word_embeddings.weight".into(), self.word.clone()));
        out.push(("embeddings.position_embeddings.weight".into(), self.position.clone()));
        out.push(("embeddings.token_type_embeddings.weight".into(), self.token_type.clone()));
        self.norm.vars("embeddings.LayerNorm", out);
    }
}

/// A batch of token ids and its masks as tensors.
#[derive(Clone, Debug)]
pub struct BatchTensors {
    /// Token ids, batch × L (u32).
    pub ids: Tensor,
    /// 1/0 token mask, batch × L, in the model's dtype.
    pub mask: Tensor,
    /// The additive attention mask, batch × 1 × 1 × L.
    pub attention_mask: Tensor,
}

impl BatchTensors {
    /// `batch` as tensors of `dtype`.
    ///
    /// # Errors
    /// [`Error::Data`] for a token id outside `vocab` or a batch longer than `positions`.
    pub fn new(batch: &TokenBatch, dtype: DType, vocab: usize, positions: usize) -> Result<Self> {
        if batch.seq_len > positions {
            return Err(Error::Usage(format!(
                "sequence length {} exceeds the model's {positions} positions",
                batch.seq_len
            )));
        }
        if let Some(i) = batch.ids.iter().position(|&t| t as usize >= vocab) {
            return Err(Error::Data(format!(
                "token id {} at {i} is outside the vocabulary of {vocab}",
                batch.ids[i]
            )));
        }
        let dev = Device::Cpu;
        let shape = (batch.rows, batch.seq_len);
        let make = || -> CResult<BatchTensors> {
            let ids = Tensor::from_vec(batch.ids.clone(), shape, &dev)?;
            let mask_u = Tensor::from_vec(batch.mask.clone(), shape, &dev)?;
            let mask = mask_u.to_dtype(dtype)?;
            let attention_mask = ((mask.ones_like()? - &mask)? * f64::from(f32::MIN))?
                .reshape((batch.rows, 1, 1, batch.seq_len))?;
            Ok(BatchTensors { ids, mask, attention_mask })
        };
        make().map_err(candle_error)
    }

    /// The 1/0 mask as u32, as candle-transformers' BERT takes it.
    fn ids_mask(&self) -> Result<Tensor> {
        self.mask.to_dtype(DType::U32).map_err(candle_error)
    }
}

/// Pool token states `hidden` (batch × L × d) into batch × d.
pub fn pool(hidden: &Tensor, mask: &Tensor, pooling: Pooling) -> CResult<Tensor> {
    match pooling {
        Pooling::Mean => {
            hidden.broadcast_mul(&mask.unsqueeze(2)?)?.sum(1)?.broadcast_div(&mask.sum_keepdim(1)?)
        }
        Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1),
    }
}

/// The whole encoder through candle-transformers' BERT (evaluation mode): token states,
/// batch × L × d. The independent reference the layers here are checked against, and what
/// sentence embeddings use.
///
/// # Errors
/// As [`BatchTensors::new`]; a candle failure as [`Error::Data`].
pub fn reference_hidden(weights: &Weights, batch: &TokenBatch) -> Result<Tensor> {
    let c = weights.config();
    let t = BatchTensors::new(batch, weights.dtype(), c.vocab_size, c.max_position_embeddings)?;
    reference_hidden_of(weights, &t)
}

fn reference_hidden_of(weights: &Weights, t: &BatchTensors) -> Result<Tensor> {
    prefix_model(weights, weights.config().num_hidden_layers)?
        .forward(&t.ids, &t.ids.zeros_like().map_err(candle_error)?, Some(&t.ids_mask()?))
        .map_err(candle_error)
}

/// candle-transformers' BERT with only the embeddings and the first `layers` layers.
fn prefix_model(
    weights: &Weights,
    layers: usize,
) -> Result<candle_transformers::models::bert::BertModel> {
    let mut config = weights.config().to_candle();
    config.num_hidden_layers = layers;
    candle_transformers::models::bert::BertModel::load(weights.var_builder(), &config)
        .map_err(candle_error)
}

/// Pretrained sentence embeddings: the encoder (candle-transformers, evaluation mode) and
/// `pooling`, one row per sentence of `batch`.
///
/// # Errors
/// As [`reference_hidden`].
pub fn embed(weights: &Weights, batch: &TokenBatch, pooling: Pooling) -> Result<Vec<Vec<f32>>> {
    let c = weights.config();
    let t = BatchTensors::new(batch, weights.dtype(), c.vocab_size, c.max_position_embeddings)?;
    let hidden = reference_hidden_of(weights, &t)?;
    pool(&hidden, &t.mask, pooling)
        .and_then(|p| p.to_dtype(DType::F32))
        .and_then(|p| p.to_vec2::<f32>())
        .map_err(candle_error)
}

/// A BERT sentence classifier with its top `k` layers (and the head) trainable.
pub struct Classifier {
    config: BertConfig,
    dtype: DType,
    trainable: usize,
    /// Embeddings and the frozen layers (candle-transformers), absent when everything trains.
    frozen: Option<candle_transformers::models::bert::BertModel>,
    embeddings: Option<Embeddings>,
    layers: Vec<EncoderLayer>,
    head: Dense,
    pooling: Pooling,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("layers", &self.config.num_hidden_layers)
            .field("trainable", &self.trainable)
            .field("pooling", &self.pooling)
            .finish_non_exhaustive()
    }
}

/// What the frozen part computes for a batch: token states after the last frozen layer
/// (batch × L × d), or — when the embeddings train too — the token ids themselves.
#[derive(Clone, Debug)]
pub struct FrozenOutput(pub Tensor);

impl Classifier {
    /// A classifier over `weights` training the top `trainable` layers (all of them and the
    /// embeddings when `trainable` is the number of layers), with `pooling` and a 2-class head
    /// (weights N(0, 0.02²) from `head_seed`, zero bias).
    ///
    /// # Errors
    /// [`Error::Usage`] when `trainable` exceeds the layers; a missing parameter as
    /// [`Error::Data`].
    pub fn new(
        weights: &Weights,
        trainable: usize,
        pooling: Pooling,
        head_seed: u64,
    ) -> Result<Classifier> {
        let config = weights.config().clone();
        let n = config.num_hidden_layers;
        if trainable > n {
            return Err(Error::Usage(format!(
                "{trainable} trainable layers asked, the model has {n} (use 0..={n})"
            )));
        }
        let dtype = weights.dtype();
        let frozen = (trainable < n).then(|| prefix_model(weights, n - trainable)).transpose()?;
        let embeddings = (trainable == n).then(|| Embeddings::load(weights)).transpose()?;
        let layers =
            (n - trainable..n).map(|i| EncoderLayer::load(weights, i)).collect::<Result<_>>()?;
        let mut rng = ChaCha20Rng::seed_from_u64(head_seed);
        let normal = Normal::new(0.0, 0.02).expect("a positive standard deviation");
        let d = config.hidden_size;
        let w: Vec<f64> = (0..2 * d).map(|_| normal.sample(&mut rng)).collect();
        let make_head = || -> CResult<Dense> {
            let w = Tensor::from_vec(w, (2, d), &Device::Cpu)?;
            Ok(Dense {
                weight: Var::from_tensor(&w.to_dtype(dtype)?)?,
                bias: Var::zeros(2, dtype, &Device::Cpu)?,
            })
        };
        let head = make_head().map_err(candle_error)?;
        Ok(Classifier { config, dtype, trainable, frozen, embeddings, layers, head, pooling })
    }

    /// The model's configuration.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The number of trainable layers k.
    pub fn trainable_layers(&self) -> usize {
        self.trainable
    }

    /// The pooling.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// The dtype of the parameters.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// `batch` as tensors for this model.
    ///
    /// # Errors
    /// As [`BatchTensors::new`].
    pub fn tensors(&self, batch: &TokenBatch) -> Result<BatchTensors> {
        BatchTensors::new(
            batch,
            self.dtype,
            self.config.vocab_size,
            self.config.max_position_embeddings,
        )
    }

    /// The frozen part on `batch` (always evaluation mode: no dropout): a fixed function of the
    /// input, which training may compute once per sentence and reuse.
    ///
    /// # Errors
    /// A candle failure as [`Error::Data`].
    pub fn frozen(&self, t: &BatchTensors) -> Result<FrozenOutput> {
        match &self.frozen {
            None => Ok(FrozenOutput(t.ids.clone())),
            Some(model) => model
                .forward(&t.ids, &t.ids.zeros_like().map_err(candle_error)?, Some(&t.ids_mask()?))
                .map(FrozenOutput)
                .map_err(candle_error),
        }
    }

    /// The trainable part on the frozen part's output: pooled sentence vectors, batch × d;
    /// dropout when `rng` is given.
    ///
    /// # Errors
    /// A candle failure (e.g. a shape mismatch) as [`Error::Data`].
    pub fn pooled(
        &self,
        frozen: &FrozenOutput,
        t: &BatchTensors,
        mut rng: Option<&mut ChaCha20Rng>,
    ) -> Result<Tensor> {
        let mut run = || -> CResult<Tensor> {
            let mut h = match &self.embeddings {
                Some(e) => e.forward(&frozen.0, rng.as_deref_mut())?,
                None => frozen.0.clone(),
            };
            for layer in &self.layers {
                h = layer.forward(&h, &t.attention_mask, rng.as_deref_mut())?;
            }
            pool(&h, &t.mask, self.pooling)
        };
        run().map_err(candle_error)
    }

    /// Class logits (batch × 2) from the frozen part's output.
    ///
    /// # Errors
    /// As [`Classifier::pooled`].
    pub fn logits_from(
        &self,
        frozen: &FrozenOutput,
        t: &BatchTensors,
        rng: Option<&mut ChaCha20Rng>,
    ) -> Result<Tensor> {
        let pooled = self.pooled(frozen, t, rng)?;
        self.head.forward(&pooled).map_err(candle_error)
    }

    /// Class logits (batch × 2) for `batch`, the whole network.
    ///
    /// # Errors
    /// As [`Classifier::tensors`] and [`Classifier::pooled`].
    pub fn logits(&self, batch: &TokenBatch, rng: Option<&mut ChaCha20Rng>) -> Result<Tensor> {
        let t = self.tensors(batch)?;
        let frozen = self.frozen(&t)?;
        self.logits_from(&frozen, &t, rng)
    }

    /// The trainable parameter `name`'s values (row-major, f64).
    ///
    /// # Errors
    /// [`Error::Data`] for an unknown name.
    pub fn trainable_values(&self, name: &str) -> Result<Vec<f64>> {
        let vars = self.trainable_vars();
        let (_, var) = vars
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| Error::Data(format!("no trainable parameter {name}")))?;
        super::values_f64(var.as_tensor())
    }

    /// Set the trainable parameter `name` to `values` (row-major, its shape's length): how
    /// weights fine-tuned elsewhere (e.g. securely) are loaded for evaluation.
    ///
    /// # Errors
    /// [`Error::Data`] for an unknown name or a wrong length.
    pub fn set_trainable(&self, name: &str, values: &[f64]) -> Result<()> {
        let vars = self.trainable_vars();
        let (_, var) = vars
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| Error::Data(format!("no trainable parameter {name}")))?;
        if var.elem_count() != values.len() {
            return Err(Error::Data(format!(
                "{name} has {} values, {} given",
                var.elem_count(),
                values.len()
            )));
        }
        let t = Tensor::from_vec(values.to_vec(), var.shape(), &Device::Cpu)
            .and_then(|t| t.to_dtype(self.dtype))
            .map_err(candle_error)?;
        var.set(&t).map_err(candle_error)
    }

    /// The trainable parameters by name (Hugging Face's names and shapes; `head.weight`,
    /// `head.bias`).
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        if let Some(e) = &self.embeddings {
            e.vars(&mut out);
        }
        for layer in &self.layers {
            layer.vars(&mut out);
        }
        self.head.vars("head", &mut out);
        out
    }
}
