//! Measurements behind `prifft bench`: FSS key generation and evaluation throughput.
//!
//! Every figure is measured in this process, on this machine, in this run: the median of
//! several repetitions after a warm-up, so ratios between rows are meaningful and absolute
//! numbers say which machine produced them.

use std::time::Instant;

use crate::error::KeyError;
use crate::fss::aes::fixed_aes;
use crate::fss::{KeyBatch, Scheme, dcf, dpf};
use crate::mpc::PartyId;
use crate::prg::{ChaCha20Rng, os_rng};

/// One row of `prifft bench fss`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FssRow {
    /// "dcf" or "dpf".
    pub scheme: String,
    /// Input width.
    pub n: u32,
    /// Keys per batch.
    pub batch: usize,
    /// Threads used.
    pub threads: usize,
    /// Dealer time per key (both parties' keys), nanoseconds.
    pub keygen_ns: f64,
    /// One party's evaluation time per key, nanoseconds.
    pub eval_ns: f64,
    /// One party's key size in bytes.
    pub key_bytes: usize,
    /// Lower bound on eval time per key per thread from this machine's measured AES rate.
    pub aes_bound_ns: f64,
}

type KeygenInto =
    fn(u32, &[u64], &[u64], &mut ChaCha20Rng, &mut [KeyBatch; 2]) -> Result<(), KeyError>;
type Eval = fn(&KeyBatch, &[u64], &mut [u64]) -> Result<(), KeyError>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time_ns(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_nanos() as f64
            })
            .collect(),
    )
}

/// Nanoseconds per fixed-key AES-MMO block on one thread (large independent batches).
pub fn aes_ns_per_block() -> f64 {
    let aes = fixed_aes();
    let mut blocks: Vec<u128> = (0..4096u128).collect();
    let rounds = 64;
    time_ns(5, || {
        for _ in 0..rounds {
            aes.hash_in_place(&mut blocks);
        }
    }) / (rounds * blocks.len()) as f64
}

/// AES blocks one evaluation needs.
pub fn blocks_per_eval(scheme: Scheme, n: u32) -> u32 {
    match scheme {
        Scheme::Dcf => 2 * n - 1,
        Scheme::Dpf => n,
    }
}

/// Run the FSS benchmark for the given widths, batch size and thread counts.
///
/// # Panics
/// If a thread pool cannot be built (out of resources).
pub fn fss(
    widths: &[u32],
    batch: usize,
    thread_counts: &[usize],
    mut progress: impl FnMut(&FssRow),
) -> Vec<FssRow> {
    let ns_per_block = {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("thread pool");
        pool.install(aes_ns_per_block)
    };
    let mut rows = Vec::new();
    let mut rng = os_rng();
    for scheme in [Scheme::Dcf, Scheme::Dpf] {
        for &n in widths {
            let domain_mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
            let alphas: Vec<u64> =
                (0..batch).map(|_| rand::Rng::random::<u64>(&mut rng) & domain_mask).collect();
            let betas: Vec<u64> = (0..batch).map(|_| rand::Rng::random::<u64>(&mut rng)).collect();
            let xs: Vec<u64> =
                (0..batch).map(|_| rand::Rng::random::<u64>(&mut rng) & domain_mask).collect();
            let (keygen, eval): (KeygenInto, Eval) = match scheme {
                Scheme::Dcf => (dcf::keygen_into, dcf::eval),
                Scheme::Dpf => (dpf::keygen_into, dpf::eval),
            };
            for &threads in thread_counts {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("thread pool");
                // The dealer reuses its key buffers from batch to batch (as a streaming dealer does).
                let mut keys = [KeyBatch::empty(PartyId::P0), KeyBatch::empty(PartyId::P1)];
                let keygen_ns = pool.install(|| {
                    time_ns(3, || {
                        keygen(n, &alphas, &betas, &mut rng, &mut keys).expect("valid inputs")
                    })
                }) / batch as f64;
                let k0 = &keys[0];
                let mut out = vec![0u64; batch];
                let eval_ns = pool
                    .install(|| time_ns(5, || eval(k0, &xs, &mut out).expect("valid inputs")))
                    / batch as f64;
                let row = FssRow {
                    scheme: scheme.to_string().to_lowercase(),
                    n,
                    batch,
                    threads,
                    keygen_ns,
                    eval_ns,
                    key_bytes: KeyBatch::key_bytes(scheme, n),
                    aes_bound_ns: blocks_per_eval(scheme, n) as f64 * ns_per_block / threads as f64,
                };
                progress(&row);
                rows.push(row);
            }
        }
    }
    rows
}
