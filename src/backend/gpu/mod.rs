//! The wgpu engine: WGSL kernels for batched FSS evaluation and Z_2^64 arithmetic, bit-identical
//! to the CPU.
//!
//! - [`shaders`]: the WGSL modules (`shaders/*.wgsl`) and their naga validation;
//! - [`GpuDevice`]: one adapter — buffers, pipeline cache, chunking under binding limits;
//! - [`list_adapters`]: what `prifft devices` prints.
//!
//! The instance honours `WGPU_BACKEND` (e.g. `vulkan`; default: the primary backends, not GL, see
//! [`backends`]), so CI can pin lavapipe and fail loudly
//! instead of silently switching to another backend.

mod device;
mod fss;
mod ring;
pub mod shaders;
mod submit;
mod timing;

pub use device::{GpuDevice, adapters, backends};
pub use shaders::{AesTables, FssShape};
pub use timing::{FssTiming, PhaseTimes};

/// What `prifft devices` reports about one adapter.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterSummary {
    /// Adapter name, e.g. `NVIDIA H100` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Backend (Vulkan, Metal, Dx12, Gl).
    pub backend: String,
    /// Device type (DiscreteGpu, IntegratedGpu, VirtualGpu, Cpu, Other).
    pub device_type: String,
    /// Driver and driver info.
    pub driver: String,
    /// Whether native 64-bit integers are available in shaders.
    pub shader_int64: bool,
    /// Largest storage-buffer binding, bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer, bytes.
    pub max_buffer_size: u64,
    /// Workgroup shared memory, bytes.
    pub max_compute_workgroup_storage_size: u32,
    /// Invocations per workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Workgroups per dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
}

/// Every adapter wgpu can see (honouring `WGPU_BACKEND`).
pub fn list_adapters() -> Vec<AdapterSummary> {
    adapters().iter().map(summarize).collect()
}

/// What one adapter is and offers.
pub fn summarize(adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    let limits = adapter.limits();
    AdapterSummary {
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
        shader_int64: adapter.features().contains(wgpu::Features::SHADER_INT64),
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_buffer_size: limits.max_buffer_size,
        max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
    }
}
