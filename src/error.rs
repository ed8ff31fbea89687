//! The crate's error: every layer's own error type, aggregated.
//!
//! Each layer returns its own error — [`RingError`] (ring), [`KeyError`] (fss), [`NetError`]
//! (net), [`BackendError`] (backend, GPU), [`MpcError`] and [`PreprocError`] (mpc) — and this
//! module, above them all, converts each into one flat [`Error`], so callers match
//! `Error::Shape`, `Error::Key(..)`, `Error::Preproc(..)` whichever layer failed.
//!
//! Messages name the operation and the mismatching shapes, kinds or sizes — never a secret value
//! (no shares, inputs or key bytes appear in any error).

use std::path::PathBuf;

pub use crate::backend::BackendError;
pub use crate::fss::KeyError;
pub use crate::mpc::{MpcError, PreprocError};
pub use crate::net::NetError;
pub use crate::ring::RingError;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in prifft.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A real value could not be encoded in fixed point.
    #[error(
        "value at index {index} is outside the fixed-point range (|v| < 2^{max_log2} with {frac_bits} fractional bits); scale the input down or use fewer fractional bits"
    )]
    FixedPointRange {
        /// Position of the offending element (its value is not reported: it may be secret).
        index: usize,
        /// Fractional bits of the encoding.
        frac_bits: u32,
        /// log2 of the largest magnitude that can be encoded.
        max_log2: u32,
    },
    /// A value was NaN or infinite.
    #[error("value at index {index} is not finite (NaN or infinity)")]
    NotFinite {
        /// Position of the offending element.
        index: usize,
    },
    /// A fixed-point configuration was invalid.
    #[error("invalid number of fractional bits {frac_bits}: must be in 0..=62")]
    FracBits {
        /// The rejected value.
        frac_bits: u32,
    },
    /// Operands had incompatible shapes.
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
    /// Preprocessing (correlated randomness) was missing, mismatched or reused.
    #[error(transparent)]
    Preproc(#[from] PreprocError),
    /// The channel to the other party failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The two parties disagree on the session (roles, shapes, key material).
    #[error("session mismatch: {0}")]
    Session(String),
    /// An option or argument is unusable, or a run failed as a whole (the message says which and
    /// what to do).
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An error with the step it happened in.
    #[error("{step}: {source}")]
    During {
        /// What was being done.
        step: String,
        /// The error.
        source: Box<Error>,
    },
    /// A data set is missing or malformed, or cannot be split as asked.
    #[error("data: {0}")]
    Data(String),
    /// A GPU adapter or device could not be used.
    #[error("GPU: {0}")]
    Gpu(String),
}

impl Error {
    /// Attach the step this error happened in.
    pub fn during(self, step: impl Into<String>) -> Error {
        Error::During { step: step.into(), source: Box::new(self) }
    }

    /// The innermost error (without the steps).
    pub fn root(&self) -> &Error {
        match self {
            Error::During { source, .. } => source.root(),
            e => e,
        }
    }
}

impl From<RingError> for Error {
    fn from(e: RingError) -> Self {
        match e {
            RingError::FixedPointRange { index, frac_bits, max_log2 } => {
                Error::FixedPointRange { index, frac_bits, max_log2 }
            }
            RingError::NotFinite { index } => Error::NotFinite { index },
            RingError::FracBits { frac_bits } => Error::FracBits { frac_bits },
            RingError::Shape { op, left, right } => Error::Shape { op, left, right },
        }
    }
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Shape { op, left, right } => Error::Shape { op, left, right },
            BackendError::Key(e) => Error::Key(e),
            BackendError::Ring(e) => e.into(),
            BackendError::Gpu(message) => Error::Gpu(message),
        }
    }
}

impl From<MpcError> for Error {
    fn from(e: MpcError) -> Self {
        match e {
            MpcError::Shape { op, left, right } => Error::Shape { op, left, right },
            MpcError::Ring(e) => e.into(),
            MpcError::Key(e) => Error::Key(e),
            MpcError::Backend(e) => e.into(),
            MpcError::Preproc(e) => Error::Preproc(e),
            MpcError::Net(e) => Error::Net(e),
            MpcError::Io { path, source } => Error::Io { path, source },
            MpcError::Param { op, what } => Error::Usage(format!("{op}: {what}")),
        }
    }
}

impl crate::mpc::local::PartyError for Error {
    fn is_peer_closed(&self) -> bool {
        matches!(self.root(), Error::Net(NetError::PeerClosed))
    }
}
