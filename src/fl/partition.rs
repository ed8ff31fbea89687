//! Splitting a labelled data set among clients: IID, Dirichlet label skew and shards.
//!
//! Each partitioner returns, per client, the indices of its samples; every index is assigned
//! exactly once. Randomness comes from the caller's generator (runs are reproducible with a
//! seed; partitioning is not secret material).

use rand::Rng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Gamma};

use crate::error::{Error, Result};

/// How to split the data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scheme {
    /// Uniformly at random, equal sizes (± 1).
    Iid,
    /// Label skew: for each class, client shares drawn from Dirichlet(β); smaller β is more skewed.
    /// Redrawn until every client has at least `min_per_client` samples (as MOON and FedProc do).
    Dirichlet {
        /// Concentration β > 0.
        beta: f64,
        /// Minimum samples per client.
        min_per_client: usize,
    },
    /// Sort by label, cut into `clients × per_client` shards, deal `per_client` shards each.
    Shards {
        /// Shards per client.
        per_client: usize,
    },
}

impl Scheme {
    /// `prifft fl`'s split: MOON's Dirichlet label skew with concentration `beta` and at least
    /// 10 samples per client.
    pub fn dirichlet(beta: f64) -> Self {
        Scheme::Dirichlet { beta, min_per_client: 10 }
    }
}

/// [`partition`] with a ChaCha20 generator seeded with `seed`: with [`Scheme::dirichlet`], the
/// split `prifft fl --seeds` makes for `seed` — the command line and the Python binding give the
/// same clients the same indices.
///
/// # Errors
/// As [`partition`].
pub fn seeded(
    labels: &[u8],
    classes: usize,
    clients: usize,
    scheme: Scheme,
    seed: u64,
) -> Result<Vec<Vec<usize>>> {
    let mut rng = <crate::prg::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(seed);
    partition(labels, classes, clients, scheme, &mut rng)
}

/// Split `labels` (values below `classes`) among `clients`.
///
/// # Errors
/// [`Error::Data`] for zero clients, β ≤ 0, more shards than samples, or a minimum that the
/// Dirichlet draws cannot reach within 1,000 tries.
pub fn partition<R: Rng + ?Sized>(
    labels: &[u8],
    classes: usize,
    clients: usize,
    scheme: Scheme,
    rng: &mut R,
) -> Result<Vec<Vec<usize>>> {
    if clients == 0 {
        return Err(Error::Data("partition: at least one client is needed".into()));
    }
    match scheme {
        Scheme::Iid => {
            let mut idx: Vec<usize> = (0..labels.len()).collect();
            idx.shuffle(rng);
            Ok((0..clients)
                .map(|c| idx.iter().skip(c).step_by(clients).copied().collect())
                .collect())
        }
        Scheme::Shards { per_client } => {
            let shards = clients.checked_mul(per_client).filter(|&s| s <= labels.len());
            let Some(shards) = shards.filter(|_| per_client > 0) else {
                return Err(Error::Data(format!(
                    "partition: {clients} clients × {per_client} shards for {} samples",
                    labels.len()
                )));
            };
            let mut idx: Vec<usize> = (0..labels.len()).collect();
            idx.sort_by_key(|&i| labels[i]);
            let size = labels.len() / shards;
            let mut order: Vec<usize> = (0..shards).collect();
            order.shuffle(rng);
            let mut parts = vec![Vec::new(); clients];
            for (k, &shard) in order.iter().enumerate() {
                let end = if shard + 1 == shards { labels.len() } else { (shard + 1) * size };
                parts[k / per_client].extend_from_slice(&idx[shard * size..end]);
            }
            Ok(parts)
        }
        Scheme::Dirichlet { beta, min_per_client } => {
            dirichlet(labels, classes, clients, beta, min_per_client, rng)
        }
    }
}

fn dirichlet<R: Rng + ?Sized>(
    labels: &[u8],
    classes: usize,
    clients: usize,
    beta: f64,
    min_per_client: usize,
    rng: &mut R,
) -> Result<Vec<Vec<usize>>> {
    if !(beta > 0.0 && beta.is_finite()) {
        return Err(Error::Data(format!("partition: Dirichlet β must be positive, got {beta}")));
    }
    if clients.checked_mul(min_per_client).is_none_or(|n| n > labels.len()) {
        return Err(Error::Data(format!(
            "partition: {clients} clients × {min_per_client} samples exceed {} samples",
            labels.len()
        )));
    }
    // Dirichlet(β, …, β) as normalised Gamma(β, 1) draws.
    let gamma = Gamma::new(beta, 1.0).map_err(|e| Error::Data(format!("partition: {e}")))?;
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let fair = labels.len() / clients;
    for _ in 0..1000 {
        let mut parts: Vec<Vec<usize>> = vec![Vec::new(); clients];
        for members in &by_class {
            let mut members = members.clone();
            members.shuffle(rng);
            let mut shares: Vec<f64> = (0..clients).map(|_| gamma.sample(rng)).collect();
            // As MOON's reference code: a client that already holds its fair share gets no more.
            for (c, s) in shares.iter_mut().enumerate() {
                if parts[c].len() >= fair {
                    *s = 0.0;
                }
            }
            let total: f64 = shares.iter().sum();
            if total <= 0.0 {
                shares = vec![1.0; clients];
            }
            let total: f64 = shares.iter().sum();
            let mut start = 0;
            let mut acc = 0.0;
            for (c, s) in shares.iter().enumerate() {
                acc += s / total;
                let end = if c + 1 == clients {
                    members.len()
                } else {
                    ((acc * members.len() as f64) as usize).min(members.len())
                };
                parts[c].extend_from_slice(&members[start..end.max(start)]);
                start = end.max(start);
            }
        }
        if parts.iter().all(|p| p.len() >= min_per_client) {
            return Ok(parts);
        }
    }
    Err(Error::Data(format!(
        "partition: no Dirichlet(β = {beta}) draw gave every client {min_per_client} samples in 1,000 tries"
    )))
}

/// Samples per class for each client.
pub fn class_histogram(parts: &[Vec<usize>], labels: &[u8], classes: usize) -> Vec<Vec<usize>> {
    parts
        .iter()
        .map(|p| {
            let mut h = vec![0; classes];
            for &i in p {
                h[labels[i] as usize] += 1;
            }
            h
        })
        .collect()
}

/// A text table of the per-client class histogram.
pub fn render_histogram(hist: &[Vec<usize>]) -> String {
    let classes = hist.first().map_or(0, Vec::len);
    let mut out = format!("{:>7}", "client");
    for k in 0..classes {
        out += &format!("{k:>6}");
    }
    out += &format!("{:>8}\n", "total");
    for (c, h) in hist.iter().enumerate() {
        out += &format!("{c:>7}");
        for v in h {
            out += &format!("{v:>6}");
        }
        out += &format!("{:>8}\n", h.iter().sum::<usize>());
    }
    out
}
