//! Errors of the compute backends (CPU, GPU, scheduler).

use crate::fss::KeyError;
use crate::ring::RingError;

/// The backend layer's result type.
pub type Result<T, E = BackendError> = std::result::Result<T, E>;

/// What a backend can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Operands had incompatible lengths or shapes.
    #[error("{op}: shape mismatch, {left:?} vs {right:?}")]
    Shape {
        /// The operation that failed.
        op: &'static str,
        /// Shape of the first operand (or the expected shape).
        left: Vec<usize>,
        /// Shape of the second operand (or the found shape).
        right: Vec<usize>,
    },
    /// FSS keys were malformed, mismatched or given inputs outside their domain.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A ring operation failed.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// A GPU adapter or device could not be used, or a cross-check failed.
    #[error("GPU: {0}")]
    Gpu(String),
}
