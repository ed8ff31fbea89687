//! Error types. Every public fallible function returns [`Result`].
//!
//! Messages name the operation and the mismatching shapes, kinds or sizes — never a secret value
//! (no shares, inputs or key bytes appear in any error).

use std::path::PathBuf;
use std::time::Duration;

use crate::mpc::PartyId;
use crate::mpc::preproc::MaterialKind;

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

/// Errors of the typed preprocessing store and its file format.
#[derive(Debug, thiserror::Error)]
pub enum PreprocError {
    /// The next item of correlated randomness is of another kind.
    #[error(
        "preprocessing: no {expected} left (the store holds {available} item(s) of other kinds); the dealer must produce one per use"
    )]
    Exhausted {
        /// What the protocol asked for.
        expected: MaterialKind,
        /// How many items remain in total.
        available: usize,
    },
    /// The next item of the requested kind has another shape.
    #[error(
        "preprocessing: next {kind} has shape {found:?}, the protocol needs {expected:?}; the dealer's plan and the computation disagree"
    )]
    WrongShape {
        /// The kind of material.
        kind: MaterialKind,
        /// Shape the protocol needs.
        expected: Vec<usize>,
        /// Shape of the next stored item.
        found: Vec<usize>,
    },
    /// The material belongs to the other party.
    #[error("preprocessing: material for {found} given to {expected}")]
    WrongParty {
        /// The party of the store.
        expected: PartyId,
        /// The party the material was made for.
        found: PartyId,
    },
    /// One-time material was offered a second time.
    #[error(
        "preprocessing: one-time material {id} was already loaded or used; correlated randomness must never be reused"
    )]
    Reused {
        /// Hex id of the material (a random label, not secret).
        id: String,
    },
    /// Serialized material is malformed.
    #[error("preprocessing data is malformed: {0}")]
    Malformed(String),
    /// Serialized material ends early.
    #[error("preprocessing data is truncated: needed {needed} more byte(s) at offset {offset}")]
    Truncated {
        /// Byte offset where reading stopped.
        offset: usize,
        /// Bytes missing.
        needed: usize,
    },
}

/// Errors of FSS key batches: generation, evaluation and the wire format.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The bytes do not start with the key-batch magic.
    #[error("FSS keys: bad magic (not a prifft key batch)")]
    BadMagic,
    /// The format version is not one this build reads.
    #[error("FSS keys: format version {found}, this build reads {supported}")]
    Version {
        /// Version in the header.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// A header field has an invalid value.
    #[error("FSS keys: invalid {field} {value} in the header")]
    Header {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// The body length disagrees with the header.
    #[error("FSS keys: body is {found} bytes, the header implies {expected}")]
    Length {
        /// Bytes implied by the header.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The data ends early.
    #[error("FSS keys: truncated ({found} of at least {needed} bytes)")]
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        found: u64,
    },
    /// Keys of another scheme, party or width than the caller expects.
    #[error("FSS keys: expected {what} {expected}, found {found}")]
    Mismatch {
        /// What differs (scheme, party, input width, batch length).
        what: &'static str,
        /// What the caller expects.
        expected: String,
        /// What the keys are.
        found: String,
    },
    /// An input width outside 1..=64.
    #[error("FSS keys: input width {n} is outside 1..=64")]
    Width {
        /// The width.
        n: u32,
    },
    /// A point α or an input x outside the n-bit domain.
    #[error("FSS: {what} at index {index} does not fit in {n} bits")]
    Domain {
        /// "alpha" or "input".
        what: &'static str,
        /// Position in the batch.
        index: usize,
        /// Input width.
        n: u32,
    },
    /// Slices of different lengths in one batch call.
    #[error("FSS: {what} has length {found}, the batch has {expected}")]
    BatchLength {
        /// Which argument.
        what: &'static str,
        /// The batch length.
        expected: usize,
        /// The argument's length.
        found: usize,
    },
}

/// Errors of a [`Channel`](crate::net::Channel).
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The peer closed the connection (or its process ended).
    #[error("the other party closed the connection")]
    PeerClosed,
    /// Nothing arrived within the timeout.
    #[error(
        "no message from the other party within {0:?} (is it still running? raise --timeout for slow networks)"
    )]
    Timeout(Duration),
    /// A frame exceeded the size cap.
    #[error(
        "frame of {len} bytes exceeds the cap of {cap} bytes (a peer sending garbage, or raise the cap)"
    )]
    FrameTooLarge {
        /// Announced or attempted length.
        len: u64,
        /// The cap in force.
        cap: u64,
    },
    /// A message had an unexpected length or content.
    #[error("protocol violation in {op}: expected {expected}, got {got}")]
    Protocol {
        /// The protocol step.
        op: &'static str,
        /// What was expected.
        expected: String,
        /// What arrived.
        got: String,
    },
    /// Could not connect.
    #[error("could not connect to {addr} within {within:?}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// How long we tried.
        within: Duration,
        /// The last error.
        source: std::io::Error,
    },
    /// Any other socket error.
    #[error("network I/O: {0}")]
    Io(#[from] std::io::Error),
}
