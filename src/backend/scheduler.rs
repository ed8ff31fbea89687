//! Splitting one batch across several backends (every GPU and the CPU) in proportion to their
//! measured throughput.
//!
//! The first time a kernel kind runs, each backend evaluates a fixed calibration workload; the
//! throughputs are cached and later batches are split into contiguous parts (whole key tiles,
//! element ranges, or rows of the matmul's A) sized in proportion. The parts run concurrently,
//! one host thread per backend, and write disjoint parts of the output, so the result is the
//! same bits as one backend alone.
//!
//! **Cross-check.** With [`Scheduler::with_crosscheck`] (the CLI flag `--gpu-crosscheck`), a
//! random sample of every part computed by a non-CPU backend is
//! recomputed on the CPU, and any difference is an error naming the backend.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use rand::Rng;

use super::{Backend, Cpu, ElemOp};
use crate::backend::error::{BackendError as Error, Result};
use crate::fss::keys::TILE;
use crate::fss::{KeyBatch, Scheme, dcf, dpf};
use crate::party::PartyId;
use crate::prg::insecure_seeded_rng;

/// Elements of a random sample checked per part.
const CROSSCHECK_SAMPLE: usize = 64;

/// Kernel kinds with their own throughput calibration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Fss(Scheme, u32),
    Elementwise,
    Matmul,
}

/// A backend made of several backends.
pub struct Scheduler {
    backends: Vec<Box<dyn Backend>>,
    crosscheck: bool,
    weights: Mutex<HashMap<Kind, Vec<f64>>>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("backends", &self.names())
            .field("crosscheck", &self.crosscheck)
            .finish()
    }
}

impl Scheduler {
    /// A scheduler over the given backends (at least one).
    ///
    /// # Panics
    /// If `backends` is empty.
    pub fn new(backends: Vec<Box<dyn Backend>>) -> Self {
        assert!(!backends.is_empty(), "a scheduler needs at least one backend");
        Self { backends, crosscheck: false, weights: Mutex::new(HashMap::new()) }
    }

    /// Every GPU adapter this machine has, plus the CPU. With no adapter, says so once (in the
    /// log) and runs on the CPU.
    pub fn detect() -> Self {
        #[allow(unused_mut)] // only the gpu feature adds backends
        let mut backends: Vec<Box<dyn Backend>> = Vec::new();
        #[cfg(feature = "gpu")]
        for gpu in crate::backend::gpu::GpuDevice::open_all() {
            backends.push(Box::new(gpu));
        }
        if backends.is_empty() {
            log::warn!("no GPU adapter found: running on the CPU");
        }
        backends.push(Box::new(Cpu));
        Self::new(backends)
    }

    /// Recompute a random sample of every non-CPU result on the CPU and fail on a difference.
    pub fn with_crosscheck(mut self, on: bool) -> Self {
        self.crosscheck = on;
        self
    }

    /// Fix the split weights of every kernel (instead of measuring them), e.g. to force a split.
    pub fn with_weights(self, weights: &[f64]) -> Self {
        assert_eq!(weights.len(), self.backends.len(), "one weight per backend");
        {
            let mut cache = self.weights.lock().unwrap_or_else(|p| p.into_inner());
            for n in 1..=64 {
                cache.insert(Kind::Fss(Scheme::Dcf, n), weights.to_vec());
                cache.insert(Kind::Fss(Scheme::Dpf, n), weights.to_vec());
            }
            cache.insert(Kind::Elementwise, weights.to_vec());
            cache.insert(Kind::Matmul, weights.to_vec());
        }
        self
    }

    /// The backends' names.
    pub fn names(&self) -> Vec<String> {
        self.backends.iter().map(|b| b.name()).collect()
    }

    /// Items per second of each backend for `kind`, measured once.
    fn weights(&self, kind: Kind) -> Result<Vec<f64>> {
        if let Some(w) = self.weights.lock().unwrap_or_else(|p| p.into_inner()).get(&kind) {
            return Ok(w.clone());
        }
        let mut w = Vec::with_capacity(self.backends.len());
        for backend in &self.backends {
            w.push(calibrate(backend.as_ref(), kind)?);
        }
        log::info!("scheduler weights for {kind:?}: {:?} over {:?}", w, self.names());
        self.weights.lock().unwrap_or_else(|p| p.into_inner()).insert(kind, w.clone());
        Ok(w)
    }

    /// Split `total` items into one contiguous range per backend, in proportion to `weights`,
    /// each boundary a multiple of `align` (except the end).
    fn split(weights: &[f64], total: usize, align: usize) -> Vec<(usize, usize)> {
        let sum: f64 = weights.iter().sum();
        let mut ranges = Vec::with_capacity(weights.len());
        let mut start = 0;
        let mut acc = 0.0;
        for (i, w) in weights.iter().enumerate() {
            acc += w;
            let end = if i + 1 == weights.len() {
                total
            } else {
                let ideal = (total as f64 * acc / sum).round() as usize;
                (ideal / align * align).clamp(start, total)
            };
            ranges.push((start, end - start));
            start = end;
        }
        ranges
    }

    fn check_sample(
        &self,
        backend: &dyn Backend,
        got: &[u64],
        want: impl Fn(usize) -> Result<u64>,
    ) -> Result<()> {
        if !self.crosscheck || got.is_empty() || backend.is_reference() {
            return Ok(());
        }
        let mut rng = crate::prg::os_rng();
        for _ in 0..CROSSCHECK_SAMPLE {
            let i = rng.random_range(0..got.len());
            if got[i] != want(i)? {
                return Err(Error::Gpu(format!(
                    "cross-check: {} differs from the CPU at element {i}",
                    backend.name()
                )));
            }
        }
        Ok(())
    }
}

/// Items per second of one backend on a fixed synthetic workload of `kind`.
fn calibrate(backend: &dyn Backend, kind: Kind) -> Result<f64> {
    let mut rng = insecure_seeded_rng(0xCA11);
    let time = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        f()?; // warm-up: pipeline compilation, caches
        let t = Instant::now();
        f()?;
        Ok(t.elapsed().as_secs_f64().max(1e-9))
    };
    Ok(match kind {
        Kind::Fss(scheme, n) => {
            let len = 1 << 14;
            let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
            let alphas: Vec<u64> = (0..len).map(|_| rng.random::<u64>() & mask).collect();
            let keys = match scheme {
                Scheme::Dcf => dcf::keygen(n, &alphas, &alphas, &mut rng)?,
                Scheme::Dpf => dpf::keygen(n, &alphas, &alphas, &mut rng)?,
                Scheme::Cmp => crate::fss::cmp::keygen(n, &alphas, &mut rng)?,
            };
            let mut out = vec![0; len];
            len as f64 / time(&mut || backend.eval_fss(&keys[0], &alphas, &mut out))?
        }
        Kind::Elementwise => {
            let len = 1 << 20;
            let a: Vec<u64> = (0..len).map(|_| rng.random()).collect();
            let mut out = vec![0; len];
            len as f64 / time(&mut || backend.elementwise(ElemOp::Mul, &a, &a, &mut out))?
        }
        Kind::Matmul => {
            let d = 256;
            let a: Vec<u64> = (0..d * d).map(|_| rng.random()).collect();
            let mut out = vec![0; d * d];
            (d * d * d) as f64 / time(&mut || backend.matmul(&a, &a, (d, d, d), &mut out))?
        }
    })
}

impl Backend for Scheduler {
    fn name(&self) -> String {
        format!("scheduler over [{}]", self.names().join(", "))
    }

    fn eval_fss_range(
        &self,
        keys: &KeyBatch,
        base: usize,
        xs: &[u64],
        out: &mut [u64],
    ) -> Result<()> {
        dcf::check_range(keys, base, xs, out)?;
        let words = keys.words() as usize;
        let ranges = Self::split(
            &self.weights(Kind::Fss(keys.scheme(), keys.input_bits()))?,
            xs.len(),
            TILE,
        );
        // Each backend evaluates its part of the batch in place: no key material is copied.
        self.run_ranges(&ranges, words, out, |backend, (first, count), part| {
            let part_xs = &xs[first..first + count];
            backend.eval_fss_range(keys, base + first, part_xs, part)?;
            self.check_sample(backend, part, |i| {
                // The CPU on the tile that holds output word i (key i / words).
                let (key, word) = (i / words, i % words);
                let tile = key / TILE * TILE;
                let tile_len = TILE.min(count - tile);
                let mut y = vec![0; tile_len * words];
                let tile_xs = &part_xs[tile..tile + tile_len];
                Cpu.eval_fss_range(keys, base + first + tile, tile_xs, &mut y)?;
                Ok(y[(key - tile) * words + word])
            })
        })
    }

    fn lut_range(
        &self,
        dpf_keys: &KeyBatch,
        base: usize,
        table: &[u64],
        masked: &[u64],
        out: &mut [u64],
    ) -> Result<()> {
        crate::fss::dpf::check_lookup_range(dpf_keys, base, table, masked, out)?;
        // A lookup costs about 2^b key evaluations: the DPF weights of this width apply.
        let weights = self.weights(Kind::Fss(Scheme::Dpf, dpf_keys.input_bits()))?;
        let ranges = Self::split(&weights, masked.len(), TILE);
        self.run_ranges(&ranges, 1, out, |backend, (first, count), part| {
            let masked = &masked[first..first + count];
            backend.lut_range(dpf_keys, base + first, table, masked, part)?;
            self.check_sample(backend, part, |i| {
                let tile = i / TILE * TILE;
                let tile_len = TILE.min(count - tile);
                let mut y = vec![0; tile_len];
                let at = base + first + tile;
                Cpu.lut_range(dpf_keys, at, table, &masked[tile..tile + tile_len], &mut y)?;
                Ok(y[i - tile])
            })
        })
    }

    fn elementwise(&self, op: ElemOp, a: &[u64], b: &[u64], out: &mut [u64]) -> Result<()> {
        super::check_elementwise(a, b, out)?;
        let ranges = Self::split(&self.weights(Kind::Elementwise)?, a.len(), 1);
        self.run_ranges(&ranges, 1, out, |backend, (first, count), part| {
            backend.elementwise(op, &a[first..first + count], &b[first..first + count], part)?;
            self.check_sample(backend, part, |i| Ok(op.apply(a[first + i], b[first + i])))
        })
    }

    fn trunc_shares(&self, party: PartyId, shift: u32, x: &[u64], out: &mut [u64]) -> Result<()> {
        super::check_trunc(x, shift, out)?;
        let ranges = Self::split(&self.weights(Kind::Elementwise)?, x.len(), 1);
        self.run_ranges(&ranges, 1, out, |backend, (first, count), part| {
            backend.trunc_shares(party, shift, &x[first..first + count], part)?;
            self.check_sample(backend, part, |i| {
                let mut y = [0];
                Cpu.trunc_shares(party, shift, &x[first + i..first + i + 1], &mut y)?;
                Ok(y[0])
            })
        })
    }

    fn matmul(
        &self,
        a: &[u64],
        b: &[u64],
        (m, k, n): (usize, usize, usize),
        out: &mut [u64],
    ) -> Result<()> {
        super::check_matmul(a, b, (m, k, n), out)?;
        let rows = Self::split(&self.weights(Kind::Matmul)?, m, 1);
        let elements: Vec<(usize, usize)> = rows.iter().map(|&(r, c)| (r * n, c * n)).collect();
        self.run_ranges(&elements, 1, out, |backend, (first, count), part| {
            let (row, rows) = (first / n.max(1), count / n.max(1));
            backend.matmul(&a[row * k..(row + rows) * k], b, (rows, k, n), part)?;
            self.check_sample(backend, part, |i| {
                let (r, c) = (row + i / n, i % n);
                Ok((0..k)
                    .fold(0u64, |acc, p| acc.wrapping_add(a[r * k + p].wrapping_mul(b[p * n + c]))))
            })
        })
    }
}

impl Scheduler {
    /// Run `f` for each backend's range of items concurrently, each writing its part of `out`
    /// (`per_item` output words per item).
    fn run_ranges(
        &self,
        ranges: &[(usize, usize)],
        per_item: usize,
        out: &mut [u64],
        f: impl Fn(&dyn Backend, (usize, usize), &mut [u64]) -> Result<()> + Sync,
    ) -> Result<()> {
        let parts = split_mut(out, ranges, per_item);
        let f = &f;
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .backends
                .iter()
                .zip(ranges.iter().zip(parts))
                .filter(|(_, ((_, count), _))| *count > 0)
                .map(|(backend, (&range, part))| s.spawn(move || f(backend.as_ref(), range, part)))
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        })
    }
}

/// Disjoint mutable parts of `out` for contiguous, ordered ranges of items covering it, with
/// `per_item` words per item.
fn split_mut<'a>(
    mut out: &'a mut [u64],
    ranges: &[(usize, usize)],
    per_item: usize,
) -> Vec<&'a mut [u64]> {
    let mut parts = Vec::with_capacity(ranges.len());
    for &(_, count) in ranges {
        let (head, tail) = std::mem::take(&mut out).split_at_mut(count * per_item);
        parts.push(head);
        out = tail;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_proportional_aligned_and_cover_everything() {
        let r = Scheduler::split(&[3.0, 1.0], 1000, 32);
        assert_eq!(r, vec![(0, 736), (736, 264)]);
        let r = Scheduler::split(&[1.0, 1.0, 1.0], 10, 1);
        assert_eq!(r.iter().map(|x| x.1).sum::<usize>(), 10);
        assert_eq!(Scheduler::split(&[1.0, 0.0], 5, 32), vec![(0, 0), (0, 5)]);
        assert_eq!(Scheduler::split(&[1.0], 0, 32), vec![(0, 0)]);
    }

    #[test]
    fn cpu_only_scheduler_gives_the_cpu_bits() {
        // Two CPU backends with unequal weights: the parts must stitch together exactly.
        let s = Scheduler::new(vec![Box::new(Cpu), Box::new(Cpu)])
            .with_weights(&[2.0, 1.0])
            .with_crosscheck(true);
        let mut rng = insecure_seeded_rng(1);
        let len = 1000;
        let alphas: Vec<u64> = (0..len).map(|_| rng.random()).collect();
        let [k0, _] = dcf::keygen(64, &alphas, &alphas, &mut rng).unwrap();
        let (mut a, mut b) = (vec![0; len], vec![0; len]);
        s.eval_fss(&k0, &alphas, &mut a).unwrap();
        Cpu.eval_fss(&k0, &alphas, &mut b).unwrap();
        assert_eq!(a, b);
        // A two-word payload: outputs are split by key count × words.
        let betas: Vec<u64> = (0..2 * len).map(|_| rng.random()).collect();
        let [w0, _] = dcf::keygen_words(64, 2, &alphas, &betas, &mut rng).unwrap();
        let (mut a, mut b) = (vec![0; 2 * len], vec![0; 2 * len]);
        s.eval_fss(&w0, &alphas, &mut a).unwrap();
        Cpu.eval_fss(&w0, &alphas, &mut b).unwrap();
        assert_eq!(a, b);
        let m: Vec<u64> = (0..30 * 20).map(|_| rng.random()).collect();
        let (mut a, mut b) = (vec![0; 30 * 30], vec![0; 30 * 30]);
        s.matmul(&m, &m[..20 * 30], (30, 20, 30), &mut a).unwrap();
        Cpu.matmul(&m, &m[..20 * 30], (30, 20, 30), &mut b).unwrap();
        assert_eq!(a, b);
    }
}
