//! Fixed-point encoding of reals in Z_2^64.
//!
//! `enc(v) = round(v · 2^f) mod 2^64`, read back as a two's-complement integer divided by 2^f.
//!
//! **Error bounds.** For |v| < 2^(63−f): `|dec(enc(v)) − v| ≤ 2^−(f+1)` (round to nearest) plus the
//! f64 rounding of `v · 2^f`, which is exact whenever |v·2^f| < 2^53 — i.e. always for the default
//! f = 16 and |v| < 2^37. Values outside the range are an error, never a silent wrap.
//!
//! A product of two encodings carries 2f fractional bits and must be truncated by f bits; it is
//! exact in the ring as long as |a·b| < 2^(63−2f) (2^31 for f = 16), which callers must keep.

use super::error::{Result, RingError as Error};

/// The default number of fractional bits (as CrypTen).
pub const DEFAULT_FRAC_BITS: u32 = 16;

/// A fixed-point format: reals scaled by 2^`frac_bits` and rounded to Z_2^64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "FixedPointFields")]
pub struct FixedPoint {
    frac_bits: u32,
}

/// The serialised form, validated by [`FixedPoint::new`] on the way in (a peer's hello or a
/// saved report cannot smuggle in 200 fractional bits).
#[derive(serde::Deserialize)]
struct FixedPointFields {
    frac_bits: u32,
}

impl TryFrom<FixedPointFields> for FixedPoint {
    type Error = Error;
    fn try_from(f: FixedPointFields) -> Result<Self> {
        FixedPoint::new(f.frac_bits)
    }
}

impl Default for FixedPoint {
    fn default() -> Self {
        Self { frac_bits: DEFAULT_FRAC_BITS }
    }
}

impl FixedPoint {
    /// A format with `frac_bits` fractional bits.
    ///
    /// # Errors
    /// [`Error::FracBits`] unless `frac_bits` ≤ 62 (one integer bit and the sign must remain).
    pub fn new(frac_bits: u32) -> Result<Self> {
        if frac_bits > 62 {
            return Err(Error::FracBits { frac_bits });
        }
        Ok(Self { frac_bits })
    }

    /// Fractional bits f.
    pub fn frac_bits(self) -> u32 {
        self.frac_bits
    }

    /// One unit in the last place, 2^−f.
    pub fn ulp(self) -> f64 {
        (-(self.frac_bits as f64)).exp2()
    }

    /// The scale 2^f.
    pub fn scale(self) -> f64 {
        (self.frac_bits as f64).exp2()
    }

    /// log2 of the magnitude bound: encodable values satisfy |v| < 2^(63 − f).
    pub fn max_log2(self) -> u32 {
        63 - self.frac_bits
    }

    /// Encode one real.
    ///
    /// # Errors
    /// [`Error::NotFinite`] for NaN/∞, [`Error::FixedPointRange`] for |v| ≥ 2^(63−f).
    pub fn encode(self, v: f64) -> Result<u64> {
        self.encode_at(v, 0)
    }

    fn encode_at(self, v: f64, index: usize) -> Result<u64> {
        if !v.is_finite() {
            return Err(Error::NotFinite { index });
        }
        let scaled = (v * self.scale()).round();
        // 2^63 is exactly representable; i64 holds [−2^63, 2^63).
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        if !(-LIMIT..LIMIT).contains(&scaled) || v.abs() >= (self.max_log2() as f64).exp2() {
            return Err(Error::FixedPointRange {
                index,
                frac_bits: self.frac_bits,
                max_log2: self.max_log2(),
            });
        }
        Ok(scaled as i64 as u64)
    }

    /// Decode one ring element (signed reading). Exact when |x| < 2^53; otherwise within one f64
    /// rounding (relative 2^−53).
    pub fn decode(self, x: u64) -> f64 {
        (x as i64) as f64 * self.ulp()
    }

    /// Encode a slice.
    ///
    /// # Errors
    /// As [`encode`](Self::encode); the error names the first bad index.
    pub fn encode_slice(self, values: &[f64]) -> Result<Vec<u64>> {
        values.iter().enumerate().map(|(i, &v)| self.encode_at(v, i)).collect()
    }

    /// Decode a slice.
    pub fn decode_slice(self, xs: &[u64]) -> Vec<f64> {
        xs.iter().map(|&x| self.decode(x)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_edges() {
        let fx = FixedPoint::default();
        assert_eq!(fx.encode(1.0).unwrap(), 1 << 16);
        assert_eq!(fx.encode(-1.0).unwrap(), (-(1i64 << 16)) as u64);
        assert_eq!(fx.decode(fx.encode(-2.5).unwrap()), -2.5);
        assert!(matches!(fx.encode(f64::NAN), Err(Error::NotFinite { index: 0 })));
        assert!(matches!(fx.encode(2f64.powi(47)), Err(Error::FixedPointRange { .. })));
        assert!(fx.encode(2f64.powi(47) - 1.0).is_ok());
        assert!(matches!(
            fx.encode_slice(&[0.0, f64::INFINITY]),
            Err(Error::NotFinite { index: 1 })
        ));
        assert!(FixedPoint::new(63).is_err());
    }
}
