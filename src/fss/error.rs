//! Errors of the FSS layer: key generation, evaluation and the key wire format.
//!
//! Messages name the operation and the mismatching sizes or kinds — never a key byte, an α or a
//! β.

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
