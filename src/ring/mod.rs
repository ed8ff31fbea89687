//! The ring Z_2^64 and fixed-point reals.
//!
//! Every value is a `u64` with wrapping arithmetic; the signed reading is two's complement.
//! Reals are encoded in [`FixedPoint`] with `frac_bits` fractional bits (default 16). This module
//! does no I/O and uses no GPU.

mod error;
mod fixed;
mod tensor;

pub use error::RingError;
pub use fixed::{DEFAULT_FRAC_BITS, FixedPoint};
pub use tensor::RingTensor;

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
