//! One GPU (wgpu adapter + device): opening it, its limits, the pipeline cache and buffer
//! helpers. The kernels' host code is split by family — `submit.rs` (dispatch, readback,
//! pipelined chunks), `fss.rs` (DCF/DPF/LUT), `ring.rs` (Z_2^64 elementwise and matmul),
//! `timing.rs` (resident-input timings for `prifft bench gpu`).
//!
//! Every operation uploads its inputs, dispatches, and reads the result back, synchronously
//! (`device.poll(wait)`), so timings taken around a call include all three. Work larger than
//! one storage-buffer binding is split into chunks that each fit (a key batch by whole tiles,
//! elementwise data by elements, a matmul by rows of A).

use std::collections::HashMap;
use std::sync::Mutex;

use rayon::prelude::*;
use wgpu::util::DeviceExt;

use super::shaders::{AesTables, FssShape, ShaderId};
use super::{AdapterSummary, summarize};
use crate::backend::error::{BackendError as Error, Result};
use crate::fss::aes::{fixed_aes, sbox};

/// Inputs from this size up are copied into mapped memory on all threads.
const PARALLEL_UPLOAD: usize = 8 << 20;

/// An opened GPU.
pub struct GpuDevice {
    pub(super) device: wgpu::Device,
    pub(super) queue: wgpu::Queue,
    pub(super) info: AdapterSummary,
    pub(super) int64: bool,
    pub(super) max_binding: u64,
    pub(super) max_workgroups: u32,
    pub(super) pipelines: Mutex<HashMap<(ShaderId, &'static str), wgpu::ComputePipeline>>,
    pub(super) aes_round_keys: wgpu::Buffer,
    pub(super) aes_table: wgpu::Buffer,
    /// AES table layout and workgroup size of the FSS kernels.
    pub(super) fss_shape: FssShape,
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDevice")
            .field("adapter", &self.info.name)
            .field("int64", &self.int64)
            .finish()
    }
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

/// The wgpu backends prifft looks at: `WGPU_BACKEND` when set (e.g. `vulkan`, or `gl` to ask for
/// OpenGL explicitly), otherwise wgpu's primary backends — Vulkan, Metal, DX12 — and not GL. On a
/// Linux machine with Mesa, GL would add llvmpipe beside lavapipe as a second software adapter
/// of the same CPU (and print `XDG_RUNTIME_DIR is invalid` warnings from EGL), and its compute
/// path is an order of magnitude slower.
pub fn backends() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY)
}

/// All adapters of [`backends`].
pub fn adapters() -> Vec<wgpu::Adapter> {
    let backends = backends();
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    pollster::block_on(instance.enumerate_adapters(backends))
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

    /// Bytes one storage binding may hold on this device (chunks stay below it).
    pub fn max_binding(&self) -> u64 {
        self.max_binding
    }

    /// Use at most `bytes` per binding (below the device's limit): exercises the chunked paths
    /// with small inputs in tests, or caps per-dispatch memory.
    pub fn limit_binding(&mut self, bytes: u64) {
        self.max_binding = self.max_binding.min(bytes.max(256));
    }

    pub(super) fn pipeline(&self, shader: ShaderId, entry: &'static str) -> wgpu::ComputePipeline {
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

    pub(super) fn storage(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        // A binding cannot be empty: pad to one 16-byte element.
        let padded;
        let contents = if bytes.is_empty() {
            padded = [0u8; 16];
            &padded[..]
        } else {
            bytes
        };
        if contents.len() < PARALLEL_UPLOAD || contents.len() % 8 != 0 {
            return self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE,
            });
        }
        // Large inputs: the host copy into the mapped staging memory is the slow part of an
        // upload (and first-touches every page), so it runs on all threads, one mapped range each.
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: contents.len() as u64,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: true,
        });
        let piece = contents.len().div_ceil(rayon::current_num_threads() * 4).next_multiple_of(8);
        contents.par_chunks(piece).enumerate().for_each(|(i, chunk)| {
            let start = (i * piece) as u64;
            buffer
                .get_mapped_range_mut(start..start + chunk.len() as u64)
                .expect("disjoint, 8-byte aligned ranges of a buffer mapped at creation")
                .copy_from_slice(chunk);
        });
        buffer.unmap();
        buffer
    }

    pub(super) fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> wgpu::Buffer {
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::bytes_of(value),
            usage: wgpu::BufferUsages::UNIFORM,
        })
    }

    pub(super) fn output(&self, label: &str, words: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (words * 8) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// A 2-D grid of workgroups covering `groups` (≤ max per dimension in x).
    pub(super) fn grid(&self, groups: u32) -> (u32, u32) {
        let x = groups.clamp(1, self.max_workgroups);
        (x, groups.div_ceil(x).max(1))
    }
}
