//! Recording, submitting and waiting: one dispatch, readback through a staging buffer, and
//! pipelined chunks (chunk i + 1 uploaded and submitted while chunk i is read back).

use super::device::GpuDevice;
use super::shaders::ShaderId;
use crate::backend::error::{BackendError as Error, Result};

/// A submitted chunk awaiting readback.
pub(super) struct Submitted {
    pub(super) staging: wgpu::Buffer,
    pub(super) index: wgpu::SubmissionIndex,
    pub(super) mapped: std::sync::mpsc::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
    pub(super) entry: &'static str,
    /// First item of the chunk and item count (outputs are `count` × words per item).
    pub(super) first: usize,
    pub(super) count: usize,
}

impl GpuDevice {
    /// Record `reps` dispatches of `entry` with `bindings` into `encoder`.
    pub(super) fn encode(
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
    pub(super) fn dispatch(
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

    pub(super) fn wait(&self, what: &str) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu(format!("{}: waiting for {what}: {e}", self.info.name)))
    }

    /// Copy `out` (u64 words) into `dst` through a staging buffer.
    pub(super) fn readback(
        &self,
        entry: &'static str,
        out: &wgpu::Buffer,
        dst: &mut [u64],
    ) -> Result<()> {
        let encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
        let submitted = self.submit_with_readback(encoder, entry, out, (0, dst.len()));
        self.collect(submitted, dst)
    }

    /// Encode `entry`'s dispatch and the copy of `out` into a fresh readback buffer, submit
    /// without waiting, and request the mapping. The chunk's input buffers may be dropped after
    /// this returns (the queue keeps them alive until the GPU is done).
    pub(super) fn submit(
        &self,
        shader: ShaderId,
        entry: &'static str,
        bindings: &[(u32, &wgpu::Buffer)],
        grid: (u32, u32),
        out: &wgpu::Buffer,
        range: (usize, usize),
    ) -> Submitted {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(entry) });
        self.encode(&mut encoder, (shader, entry), bindings, grid, 1);
        self.submit_with_readback(encoder, entry, out, range)
    }

    /// Append the copy of `out` into a fresh staging buffer to `encoder`, submit it, and request
    /// the staging buffer's mapping; `(first, count)` says which items `out` holds.
    fn submit_with_readback(
        &self,
        mut encoder: wgpu::CommandEncoder,
        entry: &'static str,
        out: &wgpu::Buffer,
        (first, count): (usize, usize),
    ) -> Submitted {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("prifft readback"),
            size: out.size(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        encoder.copy_buffer_to_buffer(out, 0, &staging, 0, out.size());
        let index = self.queue.submit([encoder.finish()]);
        let (tx, mapped) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        Submitted { staging, index, mapped, entry, first, count }
    }

    /// Wait for one submitted chunk and copy its output into `dst`.
    pub(super) fn collect(&self, s: Submitted, dst: &mut [u64]) -> Result<()> {
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
    pub(super) fn pipelined(
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
}
