//! Batch-first compute backends: the same operations on the CPU (the reference) and on GPUs.
//!
//! Every implementation returns the same bits for the same inputs — per party, as raw shares —
//! which the tests check for every kernel. Where no GPU exists, [`Cpu`] does the work.

mod error;
#[cfg(feature = "gpu")]
pub mod gpu;
mod scheduler;

pub use error::BackendError;
pub use scheduler::Scheduler;

use crate::fss::{KeyBatch, Scheme, dcf, dpf};
use crate::party::PartyId;
use error::{BackendError as Error, Result};

/// Elementwise Z_2^64 operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElemOp {
    /// a + b
    Add = 0,
    /// a − b
    Sub = 1,
    /// a · b
    Mul = 2,
}

impl ElemOp {
    /// The cleartext operation.
    pub fn apply(self, a: u64, b: u64) -> u64 {
        match self {
            ElemOp::Add => a.wrapping_add(b),
            ElemOp::Sub => a.wrapping_sub(b),
            ElemOp::Mul => a.wrapping_mul(b),
        }
    }
}

/// Check the lengths of an elementwise operation.
///
/// # Errors
/// [`Error::Shape`] unless `a`, `b` and `out` have one length.
pub fn check_elementwise(a: &[u64], b: &[u64], out: &[u64]) -> Result<()> {
    if a.len() != b.len() || a.len() != out.len() {
        return Err(Error::Shape {
            op: "elementwise",
            left: vec![a.len(), b.len()],
            right: vec![out.len()],
        });
    }
    Ok(())
}

/// Check a share truncation.
///
/// # Errors
/// [`Error::Shape`] unless `x` and `out` have one length and `shift` < 64.
pub fn check_trunc(x: &[u64], shift: u32, out: &[u64]) -> Result<()> {
    if x.len() != out.len() || shift >= 64 {
        return Err(Error::Shape {
            op: "trunc_shares",
            left: vec![x.len(), shift as usize],
            right: vec![out.len()],
        });
    }
    Ok(())
}

/// Check a matrix product's lengths against (m, k, n).
///
/// # Errors
/// [`Error::Shape`] unless `a` is m·k, `b` k·n and `out` m·n long.
pub fn check_matmul(
    a: &[u64],
    b: &[u64],
    (m, k, n): (usize, usize, usize),
    out: &[u64],
) -> Result<()> {
    if a.len() != m * k || b.len() != k * n || out.len() != m * n {
        return Err(Error::Shape {
            op: "matmul",
            left: vec![m, k, n],
            right: vec![a.len(), b.len(), out.len()],
        });
    }
    Ok(())
}

/// One party's half of local (SecureML) truncation of its share `v` by `shift` bits: P0 computes
/// ⌊v / 2^s⌋ and P1 −⌊−v / 2^s⌋ (the error bound is in [`mpc::trunc`](crate::mpc::trunc)).
#[inline]
pub fn trunc_share(party: PartyId, v: u64, shift: u32) -> u64 {
    match party {
        PartyId::P0 => v >> shift,
        PartyId::P1 => (v.wrapping_neg() >> shift).wrapping_neg(),
    }
}

/// The operations the secure protocols offload.
pub trait Backend: Send + Sync {
    /// A human-readable name (the adapter, or "CPU (n threads)").
    fn name(&self) -> String;

    /// Whether this is the CPU reference (cross-checks skip it).
    fn is_reference(&self) -> bool {
        false
    }

    /// Evaluate a DCF or DPF batch: `out[k·w + q]` is word q of `eval(keys[k], xs[k])` (w = 1
    /// for DPFs and scalar DCFs). The whole batch as one [`eval_fss_range`](Self::eval_fss_range).
    ///
    /// # Errors
    /// The evaluators' key errors; device errors.
    fn eval_fss(&self, keys: &KeyBatch, xs: &[u64], out: &mut [u64]) -> Result<()> {
        dcf::check_batch(keys, xs, out)?;
        self.eval_fss_range(keys, 0, xs, out)
    }

    /// Evaluate keys `first..first + xs.len()` of a batch in place — no copy of the key material
    /// (the scheduler's split). The range is whole tiles ([`TILE`](crate::fss::keys::TILE) keys)
    /// or reaches the batch's end.
    ///
    /// # Errors
    /// [`check_range`](crate::fss::dcf::check_range)'s errors; as [`eval_fss`](Self::eval_fss).
    fn eval_fss_range(
        &self,
        keys: &KeyBatch,
        first: usize,
        xs: &[u64],
        out: &mut [u64],
    ) -> Result<()>;

    /// Lookup tables: shares of `table[x]` per masked index, from DPF keys with α = the mask
    /// ([`mpc::gates::lut`](crate::mpc::gates::lut)).
    ///
    /// # Errors
    /// [`check_lookup`](crate::fss::dpf::check_lookup)'s errors; device errors.
    fn lut(
        &self,
        dpf_keys: &KeyBatch,
        table: &[u64],
        masked: &[u64],
        out: &mut [u64],
    ) -> Result<()> {
        crate::fss::dpf::check_lookup(dpf_keys, table, masked, out)?;
        self.lut_range(dpf_keys, 0, table, masked, out)
    }

    /// [`lut`](Self::lut) for the keys `first..first + masked.len()` of a batch, in place
    /// (whole tiles, or up to the batch's end).
    ///
    /// # Errors
    /// [`check_lookup_range`](crate::fss::dpf::check_lookup_range)'s errors; device errors.
    fn lut_range(
        &self,
        dpf_keys: &KeyBatch,
        first: usize,
        table: &[u64],
        masked: &[u64],
        out: &mut [u64],
    ) -> Result<()>;

    /// `out[i] = a[i] op b[i]` over Z_2^64.
    ///
    /// # Errors
    /// [`Error::Shape`] on length mismatch; device errors.
    fn elementwise(&self, op: ElemOp, a: &[u64], b: &[u64], out: &mut [u64]) -> Result<()>;

    /// One party's local truncation of its shares by `shift` bits.
    ///
    /// # Errors
    /// [`Error::Shape`] on length mismatch or `shift` ≥ 64; device errors.
    fn trunc_shares(&self, party: PartyId, shift: u32, x: &[u64], out: &mut [u64]) -> Result<()>;

    /// `out = a (m×k) · b (k×n)` over Z_2^64, row-major.
    ///
    /// # Errors
    /// [`Error::Shape`] on mismatched lengths; device errors.
    fn matmul(
        &self,
        a: &[u64],
        b: &[u64],
        dims: (usize, usize, usize),
        out: &mut [u64],
    ) -> Result<()>;
}

/// The CPU reference backend (rayon across cores, AVX-512/VAES where present).
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu;

impl Backend for Cpu {
    fn name(&self) -> String {
        format!("CPU ({} threads)", rayon::current_num_threads())
    }

    fn is_reference(&self) -> bool {
        true
    }

    fn eval_fss_range(
        &self,
        keys: &KeyBatch,
        first: usize,
        xs: &[u64],
        out: &mut [u64],
    ) -> Result<()> {
        match keys.scheme() {
            Scheme::Dcf => dcf::eval_range(keys, first, xs, out)?,
            Scheme::Dpf => dpf::eval_range(keys, first, xs, out)?,
            Scheme::Cmp => crate::fss::cmp::eval_range(keys, first, xs, out)?,
        }
        Ok(())
    }

    fn lut_range(
        &self,
        dpf_keys: &KeyBatch,
        first: usize,
        table: &[u64],
        masked: &[u64],
        out: &mut [u64],
    ) -> Result<()> {
        Ok(crate::fss::dpf::lookup_range(dpf_keys, first, table, masked, out)?)
    }

    fn elementwise(&self, op: ElemOp, a: &[u64], b: &[u64], out: &mut [u64]) -> Result<()> {
        check_elementwise(a, b, out)?;
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = op.apply(x, y);
        }
        Ok(())
    }

    fn trunc_shares(&self, party: PartyId, shift: u32, x: &[u64], out: &mut [u64]) -> Result<()> {
        check_trunc(x, shift, out)?;
        for (o, &v) in out.iter_mut().zip(x) {
            *o = trunc_share(party, v, shift);
        }
        Ok(())
    }

    fn matmul(
        &self,
        a: &[u64],
        b: &[u64],
        (m, k, n): (usize, usize, usize),
        out: &mut [u64],
    ) -> Result<()> {
        check_matmul(a, b, (m, k, n), out)?;
        crate::ring::matmul_into(a, b, (m, k, n), out);
        Ok(())
    }
}

#[cfg(feature = "gpu")]
impl Backend for crate::backend::gpu::GpuDevice {
    fn name(&self) -> String {
        format!("{} ({})", self.info().name, self.info().backend)
    }

    fn eval_fss_range(
        &self,
        keys: &KeyBatch,
        first: usize,
        xs: &[u64],
        out: &mut [u64],
    ) -> Result<()> {
        crate::backend::gpu::GpuDevice::eval_fss_range(self, keys, first, xs, out)
    }

    fn lut_range(
        &self,
        dpf_keys: &KeyBatch,
        first: usize,
        table: &[u64],
        masked: &[u64],
        out: &mut [u64],
    ) -> Result<()> {
        crate::backend::gpu::GpuDevice::lut_range(self, dpf_keys, first, table, masked, out)
    }

    fn elementwise(&self, op: ElemOp, a: &[u64], b: &[u64], out: &mut [u64]) -> Result<()> {
        crate::backend::gpu::GpuDevice::elementwise(self, op, a, b, out)
    }

    fn trunc_shares(&self, party: PartyId, shift: u32, x: &[u64], out: &mut [u64]) -> Result<()> {
        crate::backend::gpu::GpuDevice::trunc_shares(self, party, shift, x, out)
    }

    fn matmul(
        &self,
        a: &[u64],
        b: &[u64],
        dims: (usize, usize, usize),
        out: &mut [u64],
    ) -> Result<()> {
        crate::backend::gpu::GpuDevice::matmul(self, a, b, dims, self.has_int64(), out)
    }
}
