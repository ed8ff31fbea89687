//! A first-round trace in safetensors form, for checking prifft's federated training against an
//! independent implementation (`prifft fl-trace` writes it; `scripts/xcheck_fl.py` replays it in
//! PyTorch and compares layer by layer).
//!
//! Tensors, all under PyTorch's `state_dict` names and shapes ([`SimpleCnn::named_weights`]):
//! `initial.<name>` (the global model before round 1), `client<c>.<name>` (client c's weights
//! after its local epochs), `client<c>.order` (i64: the sample indices in the order its epochs
//! visited them), `global.<name>` (the averaged model). The header's metadata holds the run's
//! settings (`lr`, `momentum`, `weight_decay`, `batch`, `local_epochs`, `pixel_mean`,
//! `pixel_std`, …) as strings; floats are written in Rust's shortest round-trip form, so the
//! reader gets the same f32 values.
//!
//! [`SimpleCnn::named_weights`]: super::model::SimpleCnn::named_weights

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use super::rounds::RoundTrace;
use crate::error::{Error, Result};

/// Write `trace` with `metadata` to `path` (a safetensors file).
///
/// # Errors
/// [`Error::Io`] when the file cannot be written; [`Error::Data`] for a malformed trace
/// (a shape that does not match its values).
pub fn write(path: &Path, trace: &RoundTrace, metadata: HashMap<String, String>) -> Result<()> {
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut weights = |prefix: &str, named: &[(String, Vec<usize>, Vec<f32>)]| {
        for (name, shape, values) in named {
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.push((format!("{prefix}.{name}"), Dtype::F32, shape.clone(), bytes));
        }
    };
    weights("initial", &trace.initial);
    weights("global", &trace.global);
    for (c, local) in trace.locals.iter().enumerate() {
        weights(&format!("client{c}"), local);
    }
    for (c, order) in trace.orders.iter().enumerate().filter(|(_, o)| !o.is_empty()) {
        let bytes = order.iter().flat_map(|&i| (i as i64).to_le_bytes()).collect();
        tensors.push((format!("client{c}.order"), Dtype::I64, vec![order.len()], bytes));
    }
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::Data(format!("trace tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::tensor::serialize_to_file(views, Some(metadata), path).map_err(|e| match e {
        safetensors::SafeTensorError::IoError(source) => Error::Io { path: path.into(), source },
        other => Error::Data(format!("{}: {other}", path.display())),
    })
}
