//! The BERT configuration, read from a Hugging Face `config.json`.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The encoder's shape and constants (the fields of `config.json` that the forward pass uses).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size (rows of the word embedding).
    pub vocab_size: usize,
    /// Hidden width d.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer (d must be a multiple).
    pub num_attention_heads: usize,
    /// Width of the feed-forward block.
    pub intermediate_size: usize,
    /// The feed-forward activation; prifft supports `"gelu"` (the erf form), BERT's own.
    pub hidden_act: String,
    /// Dropout probability on hidden states (applied in trainable layers only).
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout probability on attention probabilities (trainable layers only).
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Longest sequence (rows of the position embedding).
    pub max_position_embeddings: usize,
    /// Token-type (segment) vocabulary; prifft uses type 0 throughout.
    pub type_vocab_size: usize,
    /// LayerNorm's ε.
    pub layer_norm_eps: f64,
    /// The padding token's id.
    #[serde(default)]
    pub pad_token_id: usize,
}

fn default_dropout() -> f64 {
    0.1
}

impl BertConfig {
    /// Read and check `config.json`.
    ///
    /// # Errors
    /// [`Error::Io`] for an unreadable file; [`Error::Data`] for malformed JSON or a
    /// configuration [`BertConfig::check`] rejects.
    pub fn from_file(path: &Path) -> Result<BertConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let config: BertConfig = serde_json::from_str(&text)
            .map_err(|e| Error::Data(format!("{}: not a BERT config.json: {e}", path.display())))?;
        config.check().map_err(|e| e.during(path.display().to_string()))?;
        Ok(config)
    }

    /// The shape of all-MiniLM-L6-v2 (as its `config.json`): 6 layers, hidden 384, 12 heads,
    /// feed-forward 1536, a 30,522-token vocabulary, 512 positions. For benchmarks on random
    /// weights of the real shape; `tests/model.rs` checks it against the fetched file.
    pub fn minilm_l6() -> BertConfig {
        BertConfig {
            vocab_size: 30_522,
            hidden_size: 384,
            num_hidden_layers: 6,
            num_attention_heads: 12,
            intermediate_size: 1536,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
        }
    }

    /// A small random-weight configuration for tests and examples: `layers` layers of width
    /// `hidden` with `heads` heads, a feed-forward block 4× as wide, a 64-token vocabulary and
    /// 16 positions.
    pub fn tiny(layers: usize, hidden: usize, heads: usize) -> BertConfig {
        BertConfig {
            vocab_size: 64,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: 4 * hidden,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 16,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
        }
    }

    /// Width of one attention head.
    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Check what the forward pass relies on.
    ///
    /// # Errors
    /// [`Error::Data`] naming the field: a zero size, a hidden width that is not a multiple of
    /// the heads, an activation other than `gelu`, a dropout probability outside [0, 1), a pad
    /// id outside the vocabulary.
    pub fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Data(format!("BERT config: {what}")));
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if v == 0 {
                return bad(format!("{name} is 0"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.hidden_act != "gelu" {
            return bad(format!(
                "hidden_act {:?} is not supported (only \"gelu\")",
                self.hidden_act
            ));
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            ("attention_probs_dropout_prob", self.attention_probs_dropout_prob),
        ] {
            if !(0.0..1.0).contains(&p) {
                return bad(format!("{name} {p} is outside [0, 1)"));
            }
        }
        if self.pad_token_id >= self.vocab_size {
            return bad(format!(
                "pad_token_id {} >= vocab_size {}",
                self.pad_token_id, self.vocab_size
            ));
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps.is_finite()) {
            return bad(format!("layer_norm_eps {} is not positive", self.layer_norm_eps));
        }
        Ok(())
    }

    /// candle-transformers' configuration for the same model.
    pub(crate) fn to_candle(&self) -> candle_transformers::models::bert::Config {
        use candle_transformers::models::bert::{Config, HiddenAct, PositionEmbeddingType};
        Config {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            intermediate_size: self.intermediate_size,
            hidden_act: HiddenAct::Gelu,
            hidden_dropout_prob: self.hidden_dropout_prob,
            max_position_embeddings: self.max_position_embeddings,
            type_vocab_size: self.type_vocab_size,
            initializer_range: 0.02,
            layer_norm_eps: self.layer_norm_eps,
            pad_token_id: self.pad_token_id,
            position_embedding_type: PositionEmbeddingType::Absolute,
            use_cache: false,
            classifier_dropout: None,
            model_type: Some("bert".into()),
        }
    }
}
