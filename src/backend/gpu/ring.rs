//! Z_2^64 on the GPU (`shaders/ring.wgsl`, `ring_int64.wgsl`): elementwise ops, local share
//! truncation and the matmul (u32 limbs, or native int64 where the adapter has it).

use super::device::GpuDevice;
use super::shaders::ShaderId;
use crate::backend::ElemOp;
use crate::backend::error::{BackendError as Error, Result};

/// Invocations per workgroup of the elementwise kernels.
const ELEM_WORKGROUP: u32 = 256;
/// Rows and columns of one matmul tile (ring.wgsl's MM_TILE).
pub(super) const MM_TILE: u32 = 16;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct RingParams {
    pub(super) len: u32,
    pub(super) op: u32,
    pub(super) shift: u32,
    pub(super) row: u32,
    pub(super) m: u32,
    pub(super) k: u32,
    pub(super) n: u32,
    pub(super) pad: u32,
}

impl GpuDevice {
    /// Elementwise `out = a op b` over Z_2^64.
    ///
    /// # Errors
    /// [`Error::Shape`] on length mismatch, [`Error::Gpu`] for device failures.
    pub fn elementwise(&self, op: ElemOp, a: &[u64], b: &[u64], out: &mut [u64]) -> Result<()> {
        crate::backend::check_elementwise(a, b, out)?;
        self.elementwise_op(op as u32, 0, a, Some(b), out)
    }

    /// One party's local truncation of its shares by `shift` bits
    /// ([`trunc_local`](crate::mpc::trunc::trunc_local) on the GPU).
    ///
    /// # Errors
    /// [`Error::Shape`] on length mismatch or `shift` ≥ 64, [`Error::Gpu`] for device failures.
    pub fn trunc_shares(
        &self,
        party: crate::party::PartyId,
        shift: u32,
        x: &[u64],
        out: &mut [u64],
    ) -> Result<()> {
        crate::backend::check_trunc(x, shift, out)?;
        self.elementwise_op(3 + party.index() as u32, shift, x, None, out)
    }

    pub(super) fn elementwise_op(
        &self,
        op: u32,
        shift: u32,
        a: &[u64],
        b: Option<&[u64]>,
        out: &mut [u64],
    ) -> Result<()> {
        self.pipelined(a.len(), (self.max_binding / 8) as usize, out, 1, |first, count| {
            let grid = self.grid((count as u32).div_ceil(ELEM_WORKGROUP));
            let params = RingParams {
                len: count as u32,
                op,
                shift,
                row: grid.0 * ELEM_WORKGROUP,
                m: 0,
                k: 0,
                n: 0,
                pad: 0,
            };
            let params = self.uniform("prifft ring params", &params);
            let b_a = self.storage("prifft a", bytemuck::cast_slice(&a[first..first + count]));
            let b_b = match b {
                Some(b) => self.storage("prifft b", bytemuck::cast_slice(&b[first..first + count])),
                None => self.storage("prifft b (unused)", &[]),
            };
            let b_out = self.output("prifft c", count);
            let bindings = [(0, &params), (1, &b_a), (2, &b_b), (3, &b_out)];
            self.submit(ShaderId::Ring, "elementwise", &bindings, grid, &b_out, (first, count))
        })
    }

    /// The Z_2^64 matrix product `a (m×k) · b (k×n)` in row-major slices, with the native
    /// 64-bit kernel when `int64` is set (and offered), else the u32-limb kernel.
    ///
    /// # Errors
    /// [`Error::Shape`] on mismatched lengths, [`Error::Gpu`] when B does not fit one binding or
    /// the device fails.
    pub fn matmul(
        &self,
        a: &[u64],
        b: &[u64],
        (m, k, n): (usize, usize, usize),
        int64: bool,
        out: &mut [u64],
    ) -> Result<()> {
        crate::backend::check_matmul(a, b, (m, k, n), out)?;
        if m * n == 0 {
            return Ok(());
        }
        if (k * n * 8) as u64 > self.max_binding {
            return Err(Error::Gpu(format!(
                "matmul: B ({k}×{n}) exceeds one storage binding on {}",
                self.info.name
            )));
        }
        let shader = if int64 && self.int64 { ShaderId::RingInt64 } else { ShaderId::Ring };
        let row_bytes = (k.max(n) * 8).max(8) as u64;
        let rows_per_chunk = ((self.max_binding / row_bytes) as usize).max(1);
        let b_b = self.storage("prifft matmul b", bytemuck::cast_slice(b));
        self.pipelined(m, rows_per_chunk, out, n, |row, rows| {
            let params = RingParams {
                len: 0,
                op: 0,
                shift: 0,
                row: 0,
                m: rows as u32,
                k: k as u32,
                n: n as u32,
                pad: 0,
            };
            let params = self.uniform("prifft matmul params", &params);
            let b_a = self
                .storage("prifft matmul a", bytemuck::cast_slice(&a[row * k..(row + rows) * k]));
            let b_out = self.output("prifft matmul c", rows * n);
            let grid = ((n as u32).div_ceil(MM_TILE), (rows as u32).div_ceil(MM_TILE));
            let bindings = [(0, &params), (1, &b_a), (2, &b_b), (3, &b_out)];
            self.submit(shader, "matmul", &bindings, grid, &b_out, (row, rows))
        })
    }
}
