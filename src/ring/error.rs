//! Errors of the ring layer: shapes and fixed-point encoding.
//!
//! Messages name the operation and the mismatching shapes — never a value (it may be secret).

/// The ring layer's result type.
pub type Result<T, E = RingError> = std::result::Result<T, E>;

/// Shape and fixed-point errors.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
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
}
