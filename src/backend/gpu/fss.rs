//! DCF, DPF, lookup-table and full-domain DPF evaluation on the GPU (`shaders/fss_eval.wgsl`):
//! key batches uploaded in whole tiles per chunk, and the kernels' shape (AES table copies ×
//! workgroup size).

use super::device::GpuDevice;
use super::shaders::{FssShape, ShaderId};
use super::submit::Submitted;
use crate::backend::error::{BackendError as Error, Result};
use crate::fss::KeyBatch;
use crate::fss::keys::{Scheme, TILE, tiled};

/// One dispatch's worth of uploaded key material.
pub(super) struct FssChunk {
    pub(super) entry: &'static str,
    /// The kernel shape `grid` and `params` were computed for.
    pub(super) shape: FssShape,
    pub(super) grid: (u32, u32),
    /// The parameters as uploaded to `params` (for [`GpuDevice::reshape`]).
    pub(super) fss_params: FssParams,
    pub(super) params: wgpu::Buffer,
    pub(super) roots: wgpu::Buffer,
    pub(super) seed_cw: wgpu::Buffer,
    pub(super) value_cw: Option<wgpu::Buffer>,
    pub(super) last_cw: wgpu::Buffer,
    pub(super) xs: wgpu::Buffer,
    pub(super) out: wgpu::Buffer,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct FssParams {
    pub(super) n: u32,
    pub(super) len: u32,
    pub(super) party: u32,
    pub(super) row: u32,
    /// `lut_eval`: 0 lookup, 1 full-domain evaluation.
    pub(super) mode: u32,
    /// `dcf_eval_words`: output words per key.
    pub(super) words: u32,
    pub(super) pad: [u32; 2],
}

impl FssChunk {
    /// The FSS module in this chunk's shape.
    pub(super) fn shader(&self) -> ShaderId {
        ShaderId::FssEval(self.shape)
    }
}

impl GpuDevice {
    /// The FSS kernels' shape: [`FssShape::DEFAULT`] where the adapter allows it (fewer table
    /// copies or invocations where its limits are lower), unless
    /// [`set_fss_shape`](Self::set_fss_shape) chose another.
    pub fn fss_shape(&self) -> FssShape {
        self.fss_shape
    }

    /// Whether the adapter can run the FSS kernels in `shape`.
    pub fn fits(&self, shape: FssShape) -> bool {
        FssShape::valid_workgroup(shape.workgroup)
            && shape.workgroup <= self.info.max_compute_invocations_per_workgroup
            && shape.tables.workgroup_bytes() <= self.info.max_compute_workgroup_storage_size
    }

    /// Run the FSS kernels in another shape (every shape gives the same bits; for measuring
    /// them).
    ///
    /// # Errors
    /// [`Error::Gpu`] when the adapter cannot run that shape (workgroup memory or size).
    pub fn set_fss_shape(&mut self, shape: FssShape) -> Result<()> {
        self.check_shape(shape)?;
        self.fss_shape = shape;
        Ok(())
    }

    /// [`fits`](Self::fits), as an error naming the limits.
    pub(super) fn check_shape(&self, shape: FssShape) -> Result<()> {
        if !self.fits(shape) {
            return Err(Error::Gpu(format!(
                "{}: cannot run the FSS kernels with {} AES table copies ({} bytes of workgroup memory, the adapter has {}) and {} invocations per workgroup (power of two, at most {})",
                self.info.name,
                shape.tables.copies(),
                shape.tables.workgroup_bytes(),
                self.info.max_compute_workgroup_storage_size,
                shape.workgroup,
                self.info.max_compute_invocations_per_workgroup
            )));
        }
        Ok(())
    }

    /// Upload one chunk of a key batch and its inputs.
    pub(super) fn fss_chunk(
        &self,
        keys: &KeyBatch,
        xs: &[u64],
        first: usize,
        count: usize,
    ) -> FssChunk {
        self.fss_chunk_mode(keys, Some((xs, 0)), first, count, 0)
    }

    /// As [`fss_chunk`](Self::fss_chunk); `mode` 1 is the full-domain evaluation (no inputs,
    /// 2^n outputs per key). `xs` comes with the key index of its first input.
    pub(super) fn fss_chunk_mode(
        &self,
        keys: &KeyBatch,
        xs: Option<(&[u64], usize)>,
        first: usize,
        count: usize,
        mode: u32,
    ) -> FssChunk {
        let (n, len) = (keys.input_bits(), keys.len());
        let w = keys.words() as usize;
        let levels = keys.levels();
        // Whole tiles from `first` on: each tiled array's range is contiguous.
        let base = levels * first;
        debug_assert!(levels == 0 || base == tiled(levels, len, 0, first));
        let shape = self.fss_shape;
        let (grid, params) = self.fss_grid(
            FssParams {
                n,
                len: count as u32,
                party: keys.party().index() as u32,
                row: 0,
                mode,
                words: w as u32,
                pad: [0; 2],
            },
            shape,
        );
        let (roots, seed_cw, value_cw, last_cw) = keys.arrays();
        FssChunk {
            entry: match (keys.scheme(), w) {
                (Scheme::Dcf, 1) => "dcf_eval",
                (Scheme::Dcf, _) => "dcf_eval_words",
                (Scheme::Dpf, _) => "dpf_eval",
                (Scheme::Cmp, _) => "cmp_eval",
            },
            shape,
            grid,
            fss_params: params,
            params: self.uniform("prifft fss params", &params),
            roots: self.storage("prifft roots", bytemuck::cast_slice(&roots[first..first + count])),
            seed_cw: self.storage(
                "prifft seed_cw",
                bytemuck::cast_slice(&seed_cw[base..base + levels * count]),
            ),
            value_cw: (keys.scheme() == Scheme::Dcf).then(|| {
                self.storage(
                    "prifft value_cw",
                    bytemuck::cast_slice(&value_cw[base * w..(base + levels * count) * w]),
                )
            }),
            last_cw: self.storage(
                "prifft last_cw",
                bytemuck::cast_slice(&last_cw[2 * w * first..2 * w * (first + count)]),
            ),
            xs: self.storage(
                "prifft inputs",
                xs.map_or(&[][..], |(xs, base)| {
                    bytemuck::cast_slice(&xs[first - base..first - base + count])
                }),
            ),
            out: self.output("prifft outputs", if mode == 1 { count << n } else { count * w }),
        }
    }

    /// Dispatch `lut_eval` (lookup or, in mode 1, full-domain expansion) on one chunk with
    /// `table` at binding 9.
    pub(super) fn submit_lut_eval(
        &self,
        chunk: &FssChunk,
        table: &wgpu::Buffer,
        range: (usize, usize),
    ) -> Submitted {
        let mut bindings = self.fss_bindings(chunk);
        bindings.push((9, table));
        self.submit(chunk.shader(), "lut_eval", &bindings, chunk.grid, &chunk.out, range)
    }

    pub(super) fn fss_bindings<'a>(&'a self, c: &'a FssChunk) -> Vec<(u32, &'a wgpu::Buffer)> {
        let mut b = vec![
            (0, &self.aes_round_keys),
            (1, &self.aes_table),
            (2, &c.params),
            (3, &c.roots),
            (4, &c.seed_cw),
            (6, &c.last_cw),
            (7, &c.xs),
            (8, &c.out),
        ];
        if let Some(v) = &c.value_cw {
            b.push((5, v));
        }
        b
    }

    /// Keys per dispatch: whole tiles whose largest array (the seed corrections, or the value
    /// corrections of a wide payload) fits a binding.
    pub(super) fn fss_chunk_keys(&self, keys: &KeyBatch) -> usize {
        let (levels, w) = (keys.levels() as u64, keys.words() as u64);
        let per_key = (16 * levels).max(8 * levels * w).max(16 * w);
        ((self.max_binding / per_key) as usize / TILE * TILE).max(TILE)
    }

    /// The dispatch grid for `params.len` keys in `shape`, and `params` with its row.
    fn fss_grid(&self, mut params: FssParams, shape: FssShape) -> ((u32, u32), FssParams) {
        let grid = self.grid(params.len.div_ceil(shape.workgroup));
        params.row = grid.0 * shape.workgroup;
        (grid, params)
    }

    /// Re-grid an uploaded chunk for `shape` (the key buffers stay).
    pub(super) fn reshape(&self, chunk: &mut FssChunk, shape: FssShape) {
        let (grid, params) = self.fss_grid(chunk.fss_params, shape);
        chunk.shape = shape;
        chunk.grid = grid;
        chunk.fss_params = params;
        chunk.params = self.uniform("prifft fss params", &params);
    }

    /// Evaluate a DCF or DPF batch, one- or multi-word payloads (`out[k·w + q]` is word q of
    /// key k): bit-identical to [`dcf::eval`](crate::fss::dcf::eval) /
    /// [`dpf::eval`](crate::fss::dpf::eval).
    ///
    /// # Errors
    /// Key errors as the CPU evaluators; [`Error::Gpu`] for device failures.
    pub fn eval_fss(&self, keys: &KeyBatch, xs: &[u64], out: &mut [u64]) -> Result<()> {
        crate::fss::dcf::check_batch(keys, xs, out)?;
        self.eval_fss_range(keys, 0, xs, out)
    }

    /// Evaluate keys `base..base + xs.len()` of the batch, uploading only that part (see
    /// [`Backend::eval_fss_range`](crate::backend::Backend::eval_fss_range)).
    ///
    /// # Errors
    /// [`check_range`](crate::fss::dcf::check_range)'s errors; [`Error::Gpu`].
    pub fn eval_fss_range(
        &self,
        keys: &KeyBatch,
        base: usize,
        xs: &[u64],
        out: &mut [u64],
    ) -> Result<()> {
        keys.expect(keys.scheme(), keys.party(), keys.input_bits())?;
        crate::fss::dcf::check_range(keys, base, xs, out)?;
        let words = keys.words() as usize;
        self.pipelined(xs.len(), self.fss_chunk_keys(keys), out, words, |first, count| {
            let chunk = self.fss_chunk_mode(keys, Some((xs, base)), base + first, count, 0);
            let bindings = self.fss_bindings(&chunk);
            self.submit(
                chunk.shader(),
                chunk.entry,
                &bindings,
                chunk.grid,
                &chunk.out,
                (first, count),
            )
        })
    }

    /// Lookup tables from DPF keys (full-domain expansion per element on the GPU): bit-identical
    /// to [`dpf::lookup`](crate::fss::dpf::lookup).
    ///
    /// # Errors
    /// [`check_lookup`](crate::fss::dpf::check_lookup)'s errors; device errors.
    pub fn lut(
        &self,
        dpf_keys: &KeyBatch,
        table: &[u64],
        masked: &[u64],
        out: &mut [u64],
    ) -> Result<()> {
        crate::fss::dpf::check_lookup(dpf_keys, table, masked, out)?;
        self.lut_range(dpf_keys, 0, table, masked, out)
    }

    /// [`lut`](Self::lut) for keys `base..base + masked.len()`, uploading only that part.
    ///
    /// # Errors
    /// [`check_lookup_range`](crate::fss::dpf::check_lookup_range)'s errors; device errors.
    pub fn lut_range(
        &self,
        dpf_keys: &KeyBatch,
        base: usize,
        table: &[u64],
        masked: &[u64],
        out: &mut [u64],
    ) -> Result<()> {
        crate::fss::dpf::check_lookup_range(dpf_keys, base, table, masked, out)?;
        let b_table = self.storage("prifft lut table", bytemuck::cast_slice(table));
        self.pipelined(masked.len(), self.fss_chunk_keys(dpf_keys), out, 1, |first, count| {
            let chunk = self.fss_chunk_mode(dpf_keys, Some((masked, base)), base + first, count, 0);
            self.submit_lut_eval(&chunk, &b_table, (first, count))
        })
    }

    /// DPF full-domain evaluation: `out[k·2^n + x] = eval(keys[k], x)`, bit-identical to
    /// [`dpf::eval_all`](crate::fss::dpf::eval_all).
    ///
    /// # Errors
    /// [`dpf::eval_all`](crate::fss::dpf::eval_all)'s key and length errors; device errors.
    pub fn dpf_eval_all(&self, keys: &KeyBatch, out: &mut [u64]) -> Result<()> {
        keys.expect(Scheme::Dpf, keys.party(), keys.input_bits())?;
        let n = keys.input_bits();
        if n > crate::fss::dpf::MAX_EVAL_ALL_BITS || out.len() != keys.len() << n {
            return Err(Error::Shape {
                op: "dpf_eval_all",
                left: vec![keys.len(), n as usize],
                right: vec![out.len()],
            });
        }
        // Keys per dispatch: whole tiles whose outputs (2^n words each) fit a binding.
        let per_key = (8u64 << n).max(16 * (n as u64 - 1));
        if per_key * TILE as u64 > self.max_binding {
            return Err(Error::Gpu(format!(
                "dpf_eval_all: a tile of {TILE} keys with {n}-bit domains exceeds one binding on {}; use fewer bits",
                self.info.name
            )));
        }
        let chunk = (self.max_binding / per_key) as usize / TILE * TILE;
        let empty = self.storage("prifft lut table (unused)", &[]);
        self.pipelined(keys.len(), chunk, out, 1 << n, |first, count| {
            let chunk = self.fss_chunk_mode(keys, None, first, count, 1);
            self.submit_lut_eval(&chunk, &empty, (first, count))
        })
    }
}
