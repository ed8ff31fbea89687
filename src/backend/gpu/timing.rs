//! Timings with resident inputs (upload once, dispatch many times, read back once), phase by
//! phase, for `prifft bench gpu` and the criterion benches.

use super::device::GpuDevice;
use super::ring::{MM_TILE, RingParams};
use super::shaders::{FssShape, ShaderId};
use crate::backend::error::{BackendError as Error, Result};
use crate::fss::KeyBatch;

/// Seconds spent in each phase of a GPU operation.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct PhaseTimes {
    /// Creating and filling the input buffers.
    pub upload: f64,
    /// One dispatch, inputs resident, synchronised.
    pub dispatch: f64,
    /// Copying the output back to the host.
    pub readback: f64,
}

/// One shape's timing from [`GpuDevice::time_fss_shapes`].
#[derive(Clone, Debug)]
pub struct FssTiming {
    /// The shape timed.
    pub shape: FssShape,
    /// Seconds per dispatch, median over the rounds.
    pub dispatch_median: f64,
    /// Seconds per dispatch, fastest round.
    pub dispatch_min: f64,
    /// Seconds to read the outputs back.
    pub readback: f64,
    /// The outputs of the first round.
    pub outputs: Vec<u64>,
}

impl GpuDevice {
    /// Time one party's evaluation of `keys` with the keys **resident**, in the current shape:
    /// upload once, dispatch `reps` times, read back once. Returns the seconds of each phase
    /// (dispatch per repetition) and the outputs (for checking).
    ///
    /// # Errors
    /// As [`time_fss_shapes`](Self::time_fss_shapes).
    pub fn time_fss(
        &self,
        keys: &KeyBatch,
        xs: &[u64],
        reps: usize,
    ) -> Result<(PhaseTimes, Vec<u64>)> {
        let (upload, mut timed) = self.time_fss_shapes(keys, xs, &[self.fss_shape], 1, reps)?;
        let t = timed.pop().expect("one shape timed");
        Ok((PhaseTimes { upload, dispatch: t.dispatch_median, readback: t.readback }, t.outputs))
    }

    /// Time one party's evaluation of `keys`, resident, in each of `shapes`: upload once, then
    /// `rounds` rounds that each time every shape in turn (`reps` dispatches in one submission,
    /// after a warm-up dispatch), so that a slow spell of a shared machine hits all shapes alike.
    /// Returns the upload seconds and, per shape, the median and fastest round. The device's own
    /// shape ([`fss_shape`](Self::fss_shape)) is not changed.
    ///
    /// # Errors
    /// As [`eval_fss`](Self::eval_fss); [`Error::Gpu`] when the batch needs more than one
    /// chunk, or a shape does not fit the adapter.
    pub fn time_fss_shapes(
        &self,
        keys: &KeyBatch,
        xs: &[u64],
        shapes: &[FssShape],
        rounds: usize,
        reps: usize,
    ) -> Result<(f64, Vec<FssTiming>)> {
        crate::fss::dcf::check_batch(keys, xs, &vec![0u64; keys.len()])?;
        if keys.len() > self.fss_chunk_keys(keys) || keys.is_empty() || keys.words() != 1 {
            return Err(Error::Gpu(format!(
                "time_fss: {} keys do not fit one dispatch",
                keys.len()
            )));
        }
        for &shape in shapes {
            self.check_shape(shape)?;
        }
        let t = std::time::Instant::now();
        let mut chunk = self.fss_chunk(keys, xs, 0, keys.len());
        self.wait("upload")?;
        let upload = t.elapsed().as_secs_f64();
        let reps = reps.max(1);
        let mut samples = vec![Vec::with_capacity(rounds); shapes.len()];
        let mut timed: Vec<FssTiming> = Vec::with_capacity(shapes.len());
        for round in 0..rounds.max(1) {
            for (i, &shape) in shapes.iter().enumerate() {
                self.reshape(&mut chunk, shape);
                let bindings = self.fss_bindings(&chunk);
                let shader = chunk.shader();
                // Warm-up: pipeline compilation, clocks.
                self.dispatch(shader, chunk.entry, &bindings, chunk.grid, 1)?;
                let t = std::time::Instant::now();
                self.dispatch(shader, chunk.entry, &bindings, chunk.grid, reps)?;
                samples[i].push(t.elapsed().as_secs_f64() / reps as f64);
                if round == 0 {
                    let mut outputs = vec![0u64; keys.len()];
                    let t = std::time::Instant::now();
                    self.readback(chunk.entry, &chunk.out, &mut outputs)?;
                    let readback = t.elapsed().as_secs_f64();
                    timed.push(FssTiming {
                        shape,
                        dispatch_median: 0.0,
                        dispatch_min: 0.0,
                        readback,
                        outputs,
                    });
                }
            }
        }
        for (t, mut s) in timed.iter_mut().zip(samples) {
            s.sort_by(f64::total_cmp);
            t.dispatch_median = s[s.len() / 2];
            t.dispatch_min = s[0];
        }
        Ok((upload, timed))
    }

    /// Time the matmul (`int64` selects the native kernel) with resident inputs, as
    /// [`time_fss`](Self::time_fss).
    ///
    /// # Errors
    /// [`Error::Gpu`] when the inputs need more than one binding or the device fails.
    pub fn time_matmul(
        &self,
        a: &[u64],
        b: &[u64],
        (m, k, n): (usize, usize, usize),
        int64: bool,
        reps: usize,
    ) -> Result<(PhaseTimes, Vec<u64>)> {
        if a.len() != m * k
            || b.len() != k * n
            || ((m * k).max(k * n).max(m * n) * 8) as u64 > self.max_binding
        {
            return Err(Error::Gpu(format!(
                "time_matmul: {m}×{k}·{k}×{n} does not fit one binding"
            )));
        }
        let shader = if int64 && self.int64 { ShaderId::RingInt64 } else { ShaderId::Ring };
        let t = std::time::Instant::now();
        let params = RingParams {
            len: 0,
            op: 0,
            shift: 0,
            row: 0,
            m: m as u32,
            k: k as u32,
            n: n as u32,
            pad: 0,
        };
        let params = self.uniform("prifft matmul params", &params);
        let b_a = self.storage("prifft matmul a", bytemuck::cast_slice(a));
        let b_b = self.storage("prifft matmul b", bytemuck::cast_slice(b));
        let b_out = self.output("prifft matmul c", m * n);
        self.wait("upload")?;
        let upload = t.elapsed().as_secs_f64();
        let grid = ((n as u32).div_ceil(MM_TILE), (m as u32).div_ceil(MM_TILE));
        let bindings = [(0, &params), (1, &b_a), (2, &b_b), (3, &b_out)];
        self.dispatch(shader, "matmul", &bindings, grid, 1)?;
        let t = std::time::Instant::now();
        self.dispatch(shader, "matmul", &bindings, grid, reps)?;
        let dispatch = t.elapsed().as_secs_f64() / reps as f64;
        let t = std::time::Instant::now();
        let mut out = vec![0u64; m * n];
        self.readback("matmul", &b_out, &mut out)?;
        Ok((PhaseTimes { upload, dispatch, readback: t.elapsed().as_secs_f64() }, out))
    }
}
