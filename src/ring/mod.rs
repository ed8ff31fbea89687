//! The ring Z_2^64 and fixed-point reals.
//!
//! Every value is a `u64` with wrapping arithmetic; the signed reading is two's complement.
//! Reals are encoded in [`FixedPoint`] with `frac_bits` fractional bits (default 16). This module
//! does no I/O and uses no GPU.

mod error;
mod fixed;
mod matmul;
mod tensor;

pub use error::RingError;
pub(crate) use matmul::matmul_into;

pub use fixed::{DEFAULT_FRAC_BITS, FixedPoint};
pub use tensor::RingTensor;

/// Most elements one tensor may have (2^32, 32 GiB): larger shapes are input errors, not
/// allocations.
pub const MAX_ELEMENTS: usize = 1 << 32;

/// Check that a tensor of `shape` can exist: the product of its dimensions — zero ones counted
/// as one, since ndarray also requires that — is at most [`MAX_ELEMENTS`]. Returns the element
/// count.
///
/// # Errors
/// [`RingError::Shape`] naming the shape.
pub fn check_shape(op: &'static str, shape: &[usize]) -> Result<usize, RingError> {
    let span = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)));
    match span {
        Some(n) if n <= MAX_ELEMENTS => Ok(shape.iter().product()),
        _ => Err(RingError::Shape { op, left: shape.to_vec(), right: vec![MAX_ELEMENTS] }),
    }
}

/// Arithmetic right shift by `bits` of a ring element read as a signed integer (floor division
/// by 2^bits). This is the cleartext truncation that fixed-point products use.
#[inline]
pub fn arith_shift(x: u64, bits: u32) -> u64 {
    ((x as i64) >> bits) as u64
}

/// The ring element as a signed integer (two's complement reading).
#[inline]
pub fn signed(x: u64) -> i64 {
    x as i64
}
