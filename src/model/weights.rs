//! BERT's parameters by name: read from a memory-mapped `model.safetensors`, or drawn at random
//! for a small test configuration.
//!
//! Names follow Hugging Face's `BertModel` without a prefix (`embeddings.word_embeddings.weight`,
//! `encoder.layer.3.attention.self.query.bias`, …); a `bert.` prefix in the file is accepted and
//! dropped. Every tensor the encoder needs is checked for presence, dtype (F32) and shape against
//! the configuration when the file is opened, so a truncated or mismatched file fails there, with
//! the tensor's name, and not in the middle of a forward pass.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use safetensors::SafeTensors;

use super::candle_error;
use super::config::BertConfig;
use crate::error::{Error, Result};
use crate::prg::ChaCha20Rng;

/// The encoder's parameters, as candle tensors on the CPU.
#[derive(Clone)]
pub struct Weights {
    config: BertConfig,
    tensors: HashMap<String, Tensor>,
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weights")
            .field("layers", &self.config.num_hidden_layers)
            .field("hidden", &self.config.hidden_size)
            .field("tensors", &self.tensors.len())
            .finish_non_exhaustive()
    }
}

/// Every parameter the encoder uses, with its shape: embeddings, then per layer.
pub fn parameter_shapes(c: &BertConfig) -> Vec<(String, Vec<usize>)> {
    let d = c.hidden_size;
    let mut out = vec![
        ("embeddings.word_embeddings.weight".to_string(), vec![c.vocab_size, d]),
        ("embeddings.position_embeddings.weight".to_string(), vec![c.max_position_embeddings, d]),
        ("embeddings.token_type_embeddings.weight".to_string(), vec![c.type_vocab_size, d]),
        ("embeddings.LayerNorm.weight".to_string(), vec![d]),
        ("embeddings.LayerNorm.bias".to_string(), vec![d]),
    ];
    for l in 0..c.num_hidden_layers {
        out.extend(layer_shapes(c, l));
    }
    out
}

/// The parameters of encoder layer `layer`, with their shapes.
pub fn layer_shapes(c: &BertConfig, layer: usize) -> Vec<(String, Vec<usize>)> {
    let (d, f) = (c.hidden_size, c.intermediate_size);
    let p = |s: &str| format!("encoder.layer.{layer}.{s}");
    vec![
        (p("attention.self.query.weight"), vec![d, d]),
        (p("attention.self.query.bias"), vec![d]),
        (p("attention.self.key.weight"), vec![d, d]),
        (p("attention.self.key.bias"), vec![d]),
        (p("attention.self.value.weight"), vec![d, d]),
        (p("attention.self.value.bias"), vec![d]),
        (p("attention.output.dense.weight"), vec![d, d]),
        (p("attention.output.dense.bias"), vec![d]),
        (p("attention.output.LayerNorm.weight"), vec![d]),
        (p("attention.output.LayerNorm.bias"), vec![d]),
        (p("intermediate.dense.weight"), vec![f, d]),
        (p("intermediate.dense.bias"), vec![f]),
        (p("output.dense.weight"), vec![d, f]),
        (p("output.dense.bias"), vec![d]),
        (p("output.LayerNorm.weight"), vec![d]),
        (p("output.LayerNorm.bias"), vec![d]),
    ]
}

impl Weights {
    /// Memory-map `model.safetensors` and read every parameter of `config`'s encoder.
    ///
    /// # Errors
    /// [`Error::Io`] for an unreadable file; [`Error::Data`] for a file that is not safetensors
    /// (or is truncated), or that lacks a tensor, or holds one with the wrong dtype or shape —
    /// naming the tensor.
    pub fn from_safetensors(path: &Path, config: &BertConfig) -> Result<Weights> {
        let file = std::fs::File::open(path)
            .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        // SAFETY: the map is read-only and lives only inside this function; the file is an asset
        // this process does not write. A concurrent truncation by another process could fault,
        // which is the usual caveat of memory-mapped reading.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let data_err = |what: String| Error::Data(format!("{}: {what}", path.display()));
        let st = SafeTensors::deserialize(&map)
            .map_err(|e| data_err(format!("not a readable safetensors file ({e})")))?;
        let prefixed = st.names().iter().any(|n| n.starts_with("bert."));
        let mut tensors = HashMap::new();
        for (name, shape) in parameter_shapes(config) {
            let stored = if prefixed { format!("bert.{name}") } else { name.clone() };
            let view = st.tensor(&stored).map_err(|_| {
                data_err(format!(
                    "tensor {stored} is missing (is this a BERT model of this config?)"
                ))
            })?;
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(data_err(format!(
                    "tensor {stored} is {:?}, expected F32",
                    view.dtype()
                )));
            }
            if view.shape() != shape.as_slice() {
                return Err(data_err(format!(
                    "tensor {stored} has shape {:?}, the config says {shape:?}",
                    view.shape()
                )));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(data_err(format!("tensor {stored}: element {i} is not finite")));
            }
            let t = Tensor::from_vec(values, shape, &Device::Cpu).map_err(candle_error)?;
            tensors.insert(name, t);
        }
        Ok(Weights { config: config.clone(), tensors })
    }

    /// Random weights for `config` from `seed` (tests and examples; not a pretrained model):
    /// matrices and embeddings N(0, 0.2²)-distributed, LayerNorm scales 1 + N(0, 0.1²), biases
    /// N(0, 0.1²), in `dtype`.
    pub fn random(config: &BertConfig, seed: u64, dtype: DType) -> Result<Weights> {
        config.check()?;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut tensors = HashMap::new();
        for (name, shape) in parameter_shapes(config) {
            let n: usize = shape.iter().product();
            let (mean, std) = if name.ends_with("LayerNorm.weight") {
                (1.0, 0.1)
            } else if shape.len() == 2 {
                (0.0, 0.2)
            } else {
                (0.0, 0.1)
            };
            let normal = Normal::new(mean, std).expect("a positive standard deviation");
            let values: Vec<f64> = (0..n).map(|_| normal.sample(&mut rng)).collect();
            let t = Tensor::from_vec(values, shape, &Device::Cpu)
                .and_then(|t| t.to_dtype(dtype))
                .map_err(candle_error)?;
            tensors.insert(name, t);
        }
        Ok(Weights { config: config.clone(), tensors })
    }

    /// The same weights in another dtype (f64 for gradient checks).
    pub fn to_dtype(&self, dtype: DType) -> Result<Weights> {
        let tensors = self
            .tensors
            .iter()
            .map(|(k, t)| Ok((k.clone(), t.to_dtype(dtype).map_err(candle_error)?)))
            .collect::<Result<_>>()?;
        Ok(Weights { config: self.config.clone(), tensors })
    }

    /// The configuration the weights were read for.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The dtype of the tensors.
    pub fn dtype(&self) -> DType {
        self.tensors.values().next().map_or(DType::F32, |t| t.dtype())
    }

    /// The parameter `name`.
    ///
    /// # Errors
    /// [`Error::Data`] when there is no such parameter.
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| Error::Data(format!("no BERT parameter {name}")))
    }

    /// Number of scalar parameters.
    pub fn parameter_count(&self) -> usize {
        self.tensors.values().map(|t| t.elem_count()).sum()
    }

    /// A candle `VarBuilder` over these tensors (for candle-transformers' BERT).
    pub(crate) fn var_builder(&self) -> candle_nn::VarBuilder<'static> {
        candle_nn::VarBuilder::from_tensors(self.tensors.clone(), self.dtype(), &Device::Cpu)
    }
}
