//! `RingTensor`: an n-dimensional array of Z_2^64 elements (ndarray, standard layout) with
//! wrapping arithmetic and the reference matrix product.

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rand::Rng;

use super::error::{Result, RingError as Error};

/// An n-dimensional array over Z_2^64. Always contiguous in row-major (standard) order, so
/// [`as_slice`](Self::as_slice) is the memory the GPU kernels and the wire format see.
///
/// A tensor may hold shares, masks or Beaver material, so it prints only its shape
/// (`RingTensor { shape: [2, 3], .. }`) and its memory is zeroed when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct RingTensor {
    data: ArrayD<u64>,
}

impl std::fmt::Debug for RingTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingTensor").field("shape", &self.shape()).finish_non_exhaustive()
    }
}

impl Drop for RingTensor {
    fn drop(&mut self) {
        if let Some(values) = self.data.as_slice_mut() {
            zeroize::Zeroize::zeroize(values);
        }
    }
}

impl RingTensor {
    /// All zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self { data: ArrayD::zeros(IxDyn(shape)) }
    }

    /// Wrap row-major `data` of the given shape.
    ///
    /// # Errors
    /// [`Error::Shape`] when `data.len()` is not the product of `shape`.
    pub fn from_vec(shape: &[usize], data: Vec<u64>) -> Result<Self> {
        let len = data.len();
        ArrayD::from_shape_vec(IxDyn(shape), data).map(|data| Self { data }).map_err(|_| {
            Error::Shape { op: "RingTensor::from_vec", left: shape.to_vec(), right: vec![len] }
        })
    }

    /// From an ndarray (copied into standard layout if needed).
    pub fn from_array(array: ArrayD<u64>) -> Self {
        let data = if array.is_standard_layout() {
            array
        } else {
            array.as_standard_layout().into_owned()
        };
        Self { data }
    }

    /// Uniformly random elements (for masks and shares pass a CSPRNG).
    pub fn random<R: Rng + ?Sized>(shape: &[usize], rng: &mut R) -> Self {
        let n = shape.iter().product();
        let data = (0..n).map(|_| rng.random::<u64>()).collect();
        Self::from_vec(shape, data).expect("length is the product of the shape")
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.data.shape()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Row-major elements.
    pub fn as_slice(&self) -> &[u64] {
        self.data.as_slice().expect("RingTensor is always in standard layout")
    }

    /// Row-major elements, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u64] {
        self.data.as_slice_mut().expect("RingTensor is always in standard layout")
    }

    /// The elements as an ndarray view.
    pub fn view(&self) -> ArrayViewD<'_, u64> {
        self.data.view()
    }

    /// Move the elements out, leaving an empty tensor (to be dropped).
    fn take_data(&mut self) -> ArrayD<u64> {
        std::mem::replace(&mut self.data, ArrayD::zeros(IxDyn(&[0])))
    }

    /// Consume into the ndarray (which is then the caller's to wipe, if it is secret).
    pub fn into_array(mut self) -> ArrayD<u64> {
        self.take_data()
    }

    /// Consume into row-major elements (which are then the caller's to wipe, if secret).
    pub fn into_vec(mut self) -> Vec<u64> {
        let (vec, offset) = self.take_data().into_raw_vec_and_offset();
        debug_assert!(offset.unwrap_or(0) == 0);
        vec
    }

    fn check_same_shape(&self, other: &Self, op: &'static str) -> Result<()> {
        if self.shape() == other.shape() {
            Ok(())
        } else {
            Err(Error::Shape { op, left: self.shape().to_vec(), right: other.shape().to_vec() })
        }
    }

    fn zip_with(
        &self,
        other: &Self,
        op: &'static str,
        f: impl Fn(u64, u64) -> u64,
    ) -> Result<Self> {
        self.check_same_shape(other, op)?;
        let data = self.as_slice().iter().zip(other.as_slice()).map(|(&a, &b)| f(a, b)).collect();
        Self::from_vec(self.shape(), data)
    }

    /// Apply `f` to every element.
    pub fn map(&self, f: impl Fn(u64) -> u64) -> Self {
        Self { data: self.data.mapv(f) }
    }

    /// Elementwise wrapping sum.
    ///
    /// # Errors
    /// [`Error::Shape`] when the shapes differ.
    pub fn add(&self, other: &Self) -> Result<Self> {
        self.zip_with(other, "add", u64::wrapping_add)
    }

    /// Elementwise wrapping difference.
    ///
    /// # Errors
    /// [`Error::Shape`] when the shapes differ.
    pub fn sub(&self, other: &Self) -> Result<Self> {
        self.zip_with(other, "sub", u64::wrapping_sub)
    }

    /// Elementwise wrapping product.
    ///
    /// # Errors
    /// [`Error::Shape`] when the shapes differ.
    pub fn mul_elem(&self, other: &Self) -> Result<Self> {
        self.zip_with(other, "mul_elem", u64::wrapping_mul)
    }

    /// Wrapping negation.
    pub fn neg(&self) -> Self {
        self.map(u64::wrapping_neg)
    }

    /// Multiply every element by a public ring constant.
    pub fn scale(&self, c: u64) -> Self {
        self.map(|x| x.wrapping_mul(c))
    }

    /// `self += other` elementwise (wrapping).
    ///
    /// # Errors
    /// [`Error::Shape`] when the shapes differ.
    pub fn add_assign(&mut self, other: &Self) -> Result<()> {
        self.check_same_shape(other, "add_assign")?;
        for (a, &b) in self.as_mut_slice().iter_mut().zip(other.as_slice()) {
            *a = a.wrapping_add(b);
        }
        Ok(())
    }

    /// Matrix dimensions of a 2-D tensor.
    ///
    /// # Errors
    /// [`Error::Shape`] when the tensor is not 2-D.
    pub fn dims2(&self, op: &'static str) -> Result<(usize, usize)> {
        match *self.shape() {
            [rows, cols] => Ok((rows, cols)),
            _ => Err(Error::Shape { op, left: self.shape().to_vec(), right: vec![0, 0] }),
        }
    }

    /// The reference matrix product over Z_2^64: (m×k)·(k×n) → m×n, wrapping; blocked, parallel
    /// and vectorised for the running CPU (`ring::matmul`), the same bits on every CPU.
    ///
    /// # Errors
    /// [`Error::Shape`] when either operand is not 2-D or the inner dimensions differ.
    pub fn matmul(&self, other: &Self) -> Result<Self> {
        let (m, k) = self.dims2("matmul")?;
        let (k2, n) = other.dims2("matmul")?;
        if k != k2 {
            return Err(Error::Shape {
                op: "matmul",
                left: self.shape().to_vec(),
                right: other.shape().to_vec(),
            });
        }
        let mut out = vec![0u64; m * n];
        super::matmul::matmul_into(self.as_slice(), other.as_slice(), (m, k, n), &mut out);
        Self::from_vec(&[m, n], out)
    }

    /// Transpose of a 2-D tensor.
    ///
    /// # Errors
    /// [`Error::Shape`] when the tensor is not 2-D.
    pub fn transpose(&self) -> Result<Self> {
        self.dims2("transpose")?;
        Ok(Self::from_array(self.data.t().to_owned()))
    }

    /// Little-endian bytes of the elements (row-major).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * 8);
        for &x in self.as_slice() {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out
    }

    /// Parse little-endian bytes into a tensor of `shape`.
    ///
    /// # Errors
    /// [`Error::Shape`] when the byte length is not 8 × the element count.
    pub fn from_le_bytes(shape: &[usize], bytes: &[u8]) -> Result<Self> {
        let n: usize = shape.iter().product();
        if bytes.len() != n * 8 {
            return Err(Error::Shape {
                op: "RingTensor::from_le_bytes",
                left: vec![n * 8],
                right: vec![bytes.len()],
            });
        }
        let data = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunk of 8")))
            .collect();
        Self::from_vec(shape, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_naive_and_checks_shapes() {
        let a = RingTensor::from_vec(&[2, 3], vec![1, 2, 3, 4, 5, u64::MAX]).unwrap();
        let b = RingTensor::from_vec(&[3, 2], vec![7, 8, 9, 10, 11, 12]).unwrap();
        let c = a.matmul(&b).unwrap();
        assert_eq!(c.shape(), &[2, 2]);
        // Row 2 uses u64::MAX = −1: 4·7 + 5·9 − 11 = 62, 4·8 + 5·10 − 12 = 70.
        assert_eq!(c.as_slice(), &[58, 64, 62, 70]);
        assert!(matches!(a.matmul(&a), Err(Error::Shape { op: "matmul", .. })));
        assert!(RingTensor::from_vec(&[2, 2], vec![1]).is_err());
    }

    #[test]
    fn bytes_round_trip() {
        let a = RingTensor::from_vec(&[3], vec![0, 1, u64::MAX]).unwrap();
        assert_eq!(RingTensor::from_le_bytes(&[3], &a.to_le_bytes()).unwrap(), a);
        assert!(RingTensor::from_le_bytes(&[3], &[0u8; 23]).is_err());
    }
}
