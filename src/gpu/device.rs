//! One GPU (wgpu adapter + device): buffers, the pipeline cache and the kernels.
//!
//! Every operation uploads its inputs, dispatches, and reads the result back, synchronously
//! (`device.poll(wait)`), so timings taken around a call include all three. Work larger than
//! one storage-buffer binding is split into chunks that each fit (a key batch by whole tiles,
//! elementwise data by elements, a matmul by rows of A).

use std::collections::HashMap;
use std::sync::Mutex;

use wgpu::util::DeviceExt;

use super::shaders::{AesTables, FssShape, ShaderId};
use super::{AdapterSummary, summarize};
use crate::backend::ElemOp;
use crate::error::{Error, Result};
use crate::fss::KeyBatch;
use crate::fss::aes::{fixed_aes, sbox};
use crate::fss::keys::{Scheme, TILE, tiled};

/// Invocations per workgroup of the elementwise kernels.
const ELEM_WORKGROUP: u32 = 256;
/// Rows and columns of one matmul tile (ring.wgsl's MM_TILE).
const MM_TILE: u32 = 16;

/// An opened GPU.
pub struct GpuDevice {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: AdapterSummary,
    int64: bool,
    max_binding: u64,
    max_workgroups: u32,
    pipelines: Mutex<HashMap<(ShaderId, &'static str), wgpu::ComputePipeline>>,
    aes_round_keys: wgpu::Buffer,
    aes_table: wgpu::Buffer,
    /// AES table layout and workgroup size of the FSS kernels.
    fss_shape: FssShape,
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDevice")
            .field("adapter", &self.info.name)
            .field("int64", &self.int64)
            .finish()
    }
}

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

/// A submitted chunk awaiting readback.
struct Submitted {
    staging: wgpu::Buffer,
    index: wgpu::SubmissionIndex,
    mapped: std::sync::mpsc::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
    entry: &'static str,
    /// First item of the chunk and item count (outputs are `count` × words per item).
    first: usize,
    count: usize,
}

/// One dispatch's worth of uploaded key material.
struct FssChunk {
    entry: &'static str,
    grid: (u32, u32),
    /// The parameters as uploaded to `params` (for [`GpuDevice::reshape`]).
    fss_params: FssParams,
    params: wgpu::Buffer,
    roots: wgpu::Buffer,
    seed_cw: wgpu::Buffer,
    value_cw: Option<wgpu::Buffer>,
    last_cw: wgpu::Buffer,
    xs: wgpu::Buffer,
    out: wgpu::Buffer,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FssParams {
    n: u32,
    len: u32,
    party: u32,
    row: u32,
    /// `lut_eval`: 0 lookup, 1 full-domain evaluation.
    mode: u32,
    pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RingParams {
    len: u32,
    op: u32,
    shift: u32,
    row: u32,
    m: u32,
    k: u32,
    n: u32,
    pad: u32,
}

/// `T0[x] = 2·S(x) | S(x) << 8 | S(x) << 16 | 3·S(x) << 24` (aes.wgsl; the S-box is its byte 1).
fn t0_table() -> Vec<u32> {
    let xtime = |b: u32| ((b << 1) ^ if b & 0x80 != 0 { 0x1b } else { 0 }) & 0xff;
    sbox()
        .iter()
        .map(|&v| {
            let v = v as u32;
            xtime(v) | v << 8 | v << 16 | (xtime(v) ^ v) << 24
        })
        .collect()
}

/// All adapters wgpu sees (honouring `WGPU_BACKEND`).
pub fn adapters() -> Vec<wgpu::Adapter> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
}

impl GpuDevice {
    /// Open every adapter (those that fail to open are logged and skipped).
    pub fn open_all() -> Vec<GpuDevice> {
        adapters()
            .into_iter()
            .filter_map(|a| match GpuDevice::open(a) {
                Ok(d) => Some(d),
                Err(e) => {
                    log::warn!("skipping a GPU adapter: {e}");
                    None
                }
            })
            .collect()
    }

    /// Open the first adapter, preferring real GPUs over software ones; `None` when there is none.
    ///
    /// # Errors
    /// [`Error::Gpu`] when an adapter exists but cannot be opened.
    pub fn open_default() -> Result<Option<GpuDevice>> {
        let mut all = adapters();
        all.sort_by_key(|a| match a.get_info().device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        });
        all.into_iter().next().map(GpuDevice::open).transpose()
    }

    /// Open one adapter with its own limits and, where offered, SHADER_INT64.
    ///
    /// # Errors
    /// [`Error::Gpu`] when the device cannot be created.
    pub fn open(adapter: wgpu::Adapter) -> Result<GpuDevice> {
        let info = summarize(&adapter);
        let int64 = adapter.features().contains(wgpu::Features::SHADER_INT64);
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("prifft"),
            required_features: if int64 {
                wgpu::Features::SHADER_INT64
            } else {
                wgpu::Features::empty()
            },
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::Gpu(format!("{}: cannot open the device: {e}", info.name)))?;
        let round_keys: Vec<u8> =
            fixed_aes().round_keys().iter().flat_map(|k| k.to_le_bytes()).collect();
        let aes_round_keys = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("prifft aes round keys"),
            contents: &round_keys,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let aes_table = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("prifft aes table"),
            contents: bytemuck::cast_slice(&t0_table()),
            usage: wgpu::BufferUsages::STORAGE,
        });
        Ok(GpuDevice {
            max_binding: (limits.max_storage_buffer_binding_size).min(limits.max_buffer_size),
            max_workgroups: limits.max_compute_workgroups_per_dimension,
            device,
            queue,
            info,
            int64,
            pipelines: Mutex::new(HashMap::new()),
            aes_round_keys,
            aes_table,
            fss_shape: FssShape {
                tables: AesTables::fitting(limits.max_compute_workgroup_storage_size)
                    .min(FssShape::DEFAULT.tables),
                workgroup: FssShape::DEFAULT
                    .workgroup
                    .min(limits.max_compute_invocations_per_workgroup),
            },
        })
    }

    /// What the adapter is.
    pub fn info(&self) -> &AdapterSummary {
        &self.info
    }

    /// Whether the native 64-bit matmul can run here.
    pub fn has_int64(&self) -> bool {
        self.int64
    }

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
        self.fss_shape = shape;
        Ok(())
    }

    fn fss_shader(&self) -> ShaderId {
        ShaderId::FssEval(self.fss_shape)
    }

    /// Bytes one storage binding may hold on this device (chunks stay below it).
    pub fn max_binding(&self) -> u64 {
        self.max_binding
    }

    /// Use at most `bytes` per binding (below the device's limit): exercises the chunked paths
    /// with small inputs in tests, or caps per-dispatch memory.
    pub fn limit_binding(&mut self, bytes: u64) {
        self.max_binding = self.max_binding.min(bytes.max(256));
    }

    fn pipeline(&self, shader: ShaderId, entry: &'static str) -> wgpu::ComputePipeline {
        let mut cache = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry((shader, entry))
            .or_insert_with(|| {
                let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(shader.label()),
                    source: wgpu::ShaderSource::Wgsl(shader.source().into()),
                });
                self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                })
            })
            .clone()
    }

    fn storage(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        // A binding cannot be empty: pad to one 16-byte element.
        let padded;
        let contents = if bytes.is_empty() {
            padded = [0u8; 16];
            &padded[..]
        } else {
            bytes
        };
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE,
        })
    }

    fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> wgpu::Buffer {
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::bytes_of(value),
            usage: wgpu::BufferUsages::UNIFORM,
        })
    }

    fn output(&self, label: &str, words: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (words * 8) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// A 2-D grid of workgroups covering `groups` (≤ max per dimension in x).
    fn grid(&self, groups: u32) -> (u32, u32) {
        let x = groups.clamp(1, self.max_workgroups);
        (x, groups.div_ceil(x).max(1))
    }

    /// Record `reps` dispatches of `entry` with `bindings` into `encoder`.
    fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        (shader, entry): (ShaderId, &'static str),
        bindings: &[(u32, &wgpu::Buffer)],
        grid: (u32, u32),
        reps: usize,
    ) {
        let pipeline = self.pipeline(shader, entry);
        let entries: Vec<wgpu::BindGroupEntry<'_>> = bindings
            .iter()
            .map(|(binding, buffer)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(entry),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        for _ in 0..reps {
            pass.dispatch_workgroups(grid.0, grid.1, 1);
        }
    }

    /// Dispatch `entry` `reps` times in one submission and wait for it.
    fn dispatch(
        &self,
        shader: ShaderId,
        entry: &'static str,
        bindings: &[(u32, &wgpu::Buffer)],
        grid: (u32, u32),
        reps: usize,
    ) -> Result<()> {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(entry) });
        self.encode(&mut encoder, (shader, entry), bindings, grid, reps);
        self.queue.submit([encoder.finish()]);
        self.wait(entry)
    }

    fn wait(&self, what: &str) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu(format!("{}: waiting for {what}: {e}", self.info.name)))
    }

    /// Copy `out` (u64 words) into `dst` through a staging buffer.
    fn readback(&self, entry: &'static str, out: &wgpu::Buffer, dst: &mut [u64]) -> Result<()> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("prifft readback"),
            size: out.size(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
        encoder.copy_buffer_to_buffer(out, 0, &staging, 0, out.size());
        let index = self.queue.submit([encoder.finish()]);
        let (tx, mapped) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.collect(Submitted { staging, index, mapped, entry, first: 0, count: dst.len() }, dst)
    }

    /// Encode `entry`'s dispatch and the copy of `out` into a fresh readback buffer, submit
    /// without waiting, and request the mapping. The chunk's input buffers may be dropped after
    /// this returns (the queue keeps them alive until the GPU is done).
    fn submit(
        &self,
        shader: ShaderId,
        entry: &'static str,
        bindings: &[(u32, &wgpu::Buffer)],
        grid: (u32, u32),
        out: &wgpu::Buffer,
        (first, count): (usize, usize),
    ) -> Submitted {
        let bytes = out.size();
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("prifft readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(entry) });
        self.encode(&mut encoder, (shader, entry), bindings, grid, 1);
        encoder.copy_buffer_to_buffer(out, 0, &staging, 0, bytes);
        let index = self.queue.submit([encoder.finish()]);
        let (tx, mapped) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        Submitted { staging, index, mapped, entry, first, count }
    }

    /// Wait for one submitted chunk and copy its output into `dst`.
    fn collect(&self, s: Submitted, dst: &mut [u64]) -> Result<()> {
        let gpu = |what: &str| Error::Gpu(format!("{}: {what} of {}", self.info.name, s.entry));
        self.device
            .poll(wgpu::PollType::Wait { submission_index: Some(s.index), timeout: None })
            .map_err(|e| gpu(&format!("waiting ({e})")))?;
        s.mapped
            .recv()
            .map_err(|_| gpu("dropped readback"))?
            .map_err(|e| gpu(&format!("readback ({e})")))?;
        let view = s
            .staging
            .get_mapped_range(..)
            .map_err(|e| gpu(&format!("mapping the readback ({e})")))?;
        dst.copy_from_slice(bytemuck::cast_slice(&view));
        Ok(())
    }

    /// Run `total` items in chunks of `chunk`, overlapping work: chunk i + 1 is uploaded and
    /// submitted before chunk i is read back, so the host's uploads and copies run while the GPU
    /// computes. At most two chunks are in flight (bounded memory).
    fn pipelined(
        &self,
        total: usize,
        chunk: usize,
        dst: &mut [u64],
        words_per_item: usize,
        submit_chunk: impl Fn(usize, usize) -> Submitted,
    ) -> Result<()> {
        let mut pending: std::collections::VecDeque<Submitted> = std::collections::VecDeque::new();
        let mut first = 0;
        while first < total || !pending.is_empty() {
            if first < total {
                let count = chunk.min(total - first);
                pending.push_back(submit_chunk(first, count));
                first += count;
            }
            if pending.len() > 1 || first >= total {
                let s = pending.pop_front().expect("a chunk is pending");
                let range = s.first * words_per_item..(s.first + s.count) * words_per_item;
                self.collect(s, &mut dst[range])?;
            }
        }
        Ok(())
    }

    /// Upload one chunk of a key batch and its inputs.
    fn fss_chunk(&self, keys: &KeyBatch, xs: &[u64], first: usize, count: usize) -> FssChunk {
        self.fss_chunk_mode(keys, Some(xs), first, count, 0)
    }

    /// As [`fss_chunk`](Self::fss_chunk); `mode` 1 is the full-domain evaluation (no inputs,
    /// 2^n outputs per key).
    fn fss_chunk_mode(
        &self,
        keys: &KeyBatch,
        xs: Option<&[u64]>,
        first: usize,
        count: usize,
        mode: u32,
    ) -> FssChunk {
        let (n, len) = (keys.input_bits(), keys.len());
        let levels = (n - 1) as usize;
        let base = if levels == 0 { 0 } else { tiled(levels, len, 0, first) };
        let (grid, params) = self.fss_grid(FssParams {
            n,
            len: count as u32,
            party: keys.party().index() as u32,
            row: 0,
            mode,
            pad: [0; 3],
        });
        let (roots, seed_cw, value_cw, last_cw) = keys.arrays();
        FssChunk {
            entry: if keys.scheme() == Scheme::Dcf { "dcf_eval" } else { "dpf_eval" },
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
                    bytemuck::cast_slice(&value_cw[base..base + levels * count]),
                )
            }),
            last_cw: self.storage(
                "prifft last_cw",
                bytemuck::cast_slice(&last_cw[2 * first..2 * (first + count)]),
            ),
            xs: self.storage(
                "prifft inputs",
                xs.map_or(&[][..], |xs| bytemuck::cast_slice(&xs[first..first + count])),
            ),
            out: self.output("prifft outputs", if mode == 1 { count << n } else { count }),
        }
    }

    /// Dispatch `lut_eval` (lookup or, in mode 1, full-domain expansion) on one chunk with
    /// `table` at binding 9.
    fn submit_lut_eval(
        &self,
        chunk: &FssChunk,
        table: &wgpu::Buffer,
        range: (usize, usize),
    ) -> Submitted {
        let mut bindings = self.fss_bindings(chunk);
        bindings.push((9, table));
        self.submit(self.fss_shader(), "lut_eval", &bindings, chunk.grid, &chunk.out, range)
    }

    fn fss_bindings<'a>(&'a self, c: &'a FssChunk) -> Vec<(u32, &'a wgpu::Buffer)> {
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

    /// Keys per dispatch: whole tiles whose largest array (the seed corrections) fits a binding.
    fn fss_chunk_keys(&self, keys: &KeyBatch) -> usize {
        let per_key = (16 * (keys.input_bits() as u64 - 1)).max(16);
        ((self.max_binding / per_key) as usize / TILE * TILE).max(TILE)
    }

    /// The dispatch grid for `params.len` keys in the current shape, and `params` with its row.
    fn fss_grid(&self, mut params: FssParams) -> ((u32, u32), FssParams) {
        let workgroup = self.fss_shape.workgroup;
        let grid = self.grid(params.len.div_ceil(workgroup));
        params.row = grid.0 * workgroup;
        (grid, params)
    }

    /// Re-grid an uploaded chunk for the current shape (the key buffers stay).
    fn reshape(&self, chunk: &mut FssChunk) {
        let (grid, params) = self.fss_grid(chunk.fss_params);
        chunk.grid = grid;
        chunk.fss_params = params;
        chunk.params = self.uniform("prifft fss params", &params);
    }

    /// Time one party's evaluation of `keys` with the keys **resident**, in the current shape:
    /// upload once, dispatch `reps` times, read back once. Returns the seconds of each phase
    /// (dispatch per repetition) and the outputs (for checking).
    ///
    /// # Errors
    /// As [`time_fss_shapes`](Self::time_fss_shapes).
    pub fn time_fss(
        &mut self,
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
    /// Returns the upload seconds and, per shape, the median and fastest round. The device is
    /// left in its shape from before the call.
    ///
    /// # Errors
    /// As [`eval_fss`](Self::eval_fss); [`Error::Gpu`] when the batch needs more than one
    /// chunk, or a shape does not fit the adapter.
    pub fn time_fss_shapes(
        &mut self,
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
        let before = self.fss_shape;
        let t = std::time::Instant::now();
        let mut chunk = self.fss_chunk(keys, xs, 0, keys.len());
        self.wait("upload")?;
        let upload = t.elapsed().as_secs_f64();
        let mut samples = vec![Vec::with_capacity(rounds); shapes.len()];
        let mut timed: Vec<FssTiming> = Vec::with_capacity(shapes.len());
        let result: Result<()> = (|| {
            for round in 0..rounds.max(1) {
                for (i, &shape) in shapes.iter().enumerate() {
                    self.set_fss_shape(shape)?;
                    self.reshape(&mut chunk);
                    let bindings = self.fss_bindings(&chunk);
                    let shader = self.fss_shader();
                    // Warm-up: pipeline compilation, clocks.
                    self.dispatch(shader, chunk.entry, &bindings, chunk.grid, 1)?;
                    let t = std::time::Instant::now();
                    self.dispatch(shader, chunk.entry, &bindings, chunk.grid, reps.max(1))?;
                    samples[i].push(t.elapsed().as_secs_f64() / reps.max(1) as f64);
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
            Ok(())
        })();
        self.fss_shape = before;
        result?;
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

    /// Evaluate a DCF or DPF batch with a one-word payload: bit-identical to
    /// [`dcf::eval`](crate::fss::dcf::eval) / [`dpf::eval`](crate::fss::dpf::eval).
    ///
    /// # Errors
    /// Key errors as the CPU evaluators; [`Error::Gpu`] for device failures or multi-word
    /// payloads (not on the GPU yet).
    pub fn eval_fss(&self, keys: &KeyBatch, xs: &[u64], out: &mut [u64]) -> Result<()> {
        crate::fss::dcf::check_batch(keys, xs, out)?;
        if keys.words() != 1 {
            return Err(Error::Gpu("multi-word DCF payloads are evaluated on the CPU only".into()));
        }
        self.pipelined(keys.len(), self.fss_chunk_keys(keys), out, 1, |first, count| {
            let chunk = self.fss_chunk(keys, xs, first, count);
            let bindings = self.fss_bindings(&chunk);
            self.submit(
                self.fss_shader(),
                chunk.entry,
                &bindings,
                chunk.grid,
                &chunk.out,
                (first, count),
            )
        })
    }

    /// Lookup tables from DPF keys (full-domain expansion per element on the GPU): bit-identical
    /// to [`lookup_dpf`](crate::fss::gates::lut::lookup_dpf).
    ///
    /// # Errors
    /// [`check_lookup`](crate::fss::gates::lut::check_lookup)'s errors; device errors.
    pub fn lut(
        &self,
        dpf_keys: &KeyBatch,
        table: &[u64],
        masked: &[u64],
        out: &mut [u64],
    ) -> Result<()> {
        crate::fss::gates::lut::check_lookup(dpf_keys, table, masked, out)?;
        let b_table = self.storage("prifft lut table", bytemuck::cast_slice(table));
        self.pipelined(dpf_keys.len(), self.fss_chunk_keys(dpf_keys), out, 1, |first, count| {
            let chunk = self.fss_chunk(dpf_keys, masked, first, count);
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
        party: crate::mpc::PartyId,
        shift: u32,
        x: &[u64],
        out: &mut [u64],
    ) -> Result<()> {
        crate::backend::check_trunc(x, shift, out)?;
        self.elementwise_op(3 + party.index() as u32, shift, x, None, out)
    }

    fn elementwise_op(
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
