//! Federated rounds: FedAvg and FedProx over the simple CNN.
//!
//! Each round a fraction of the clients is sampled; each starts from the global weights with a
//! fresh optimiser, trains E local epochs on its own data (FedProx adds μ/2‖w − w_g‖² to the
//! loss), and the server averages the returned weights in proportion to the clients' data
//! sizes — in the clear, or with secure aggregation so that the server only sees the weighted
//! sum. The global model's test accuracy is recorded after every round.

use ndarray::Array2;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};

use super::data::Dataset;
use super::model::{SgdConfig, SimpleCnn};
use super::secagg::{self, Participant};
use crate::prg::ChaCha20Rng;
use crate::ring::FixedPoint;

/// A federated algorithm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Algo {
    /// McMahan et al. 2017.
    FedAvg,
    /// Li et al. 2020, proximal term μ.
    FedProx {
        /// Proximal strength μ.
        mu: f32,
    },
}

impl Algo {
    /// Short name for tables and CSV files.
    pub fn name(&self) -> &'static str {
        match self {
            Algo::FedAvg => "fedavg",
            Algo::FedProx { .. } => "fedprox",
        }
    }
}

/// Settings of one federated run.
#[derive(Clone, Copy, Debug)]
pub struct FlConfig {
    /// Communication rounds.
    pub rounds: usize,
    /// Local epochs per round.
    pub local_epochs: usize,
    /// Fraction of clients sampled per round (at least one).
    pub fraction: f64,
    /// Local optimiser.
    pub sgd: SgdConfig,
    /// Seed of initialisation, sampling and shuffling (experiments are reproducible; nothing
    /// here is secret).
    pub seed: u64,
    /// Aggregate with pairwise masks ([`super::secagg`]) so the server sees only the
    /// weighted sum; weights travel in fixed point with [`SECAGG_FRAC_BITS`] fractional bits.
    pub secure_agg: bool,
}

/// Fractional bits of model weights in secure aggregation (resolution 6·10⁻⁸).
pub const SECAGG_FRAC_BITS: u32 = 24;

/// Run `algo` over the clients' index sets `parts` of `train`; returns the global model's test
/// accuracy after each round. `progress(round, accuracy)` is called after each round.
pub fn run(
    algo: Algo,
    train: &Dataset,
    test: &Dataset,
    parts: &[Vec<usize>],
    cfg: &FlConfig,
    mut progress: impl FnMut(usize, f64),
) -> Vec<f64> {
    let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed);
    let mut global = SimpleCnn::new(train.classes, &mut rng);
    let mut accuracies = Vec::with_capacity(cfg.rounds);
    let per_round = ((parts.len() as f64 * cfg.fraction).round() as usize).clamp(1, parts.len());
    for round in 0..cfg.rounds {
        let global_weights = global.weights();
        let chosen = sample(&mut rng, parts.len(), per_round).into_vec();
        let total: usize = chosen.iter().map(|&c| parts[c].len()).sum();
        let mut sum: Vec<Array2<f32>> =
            global_weights.iter().map(|w| Array2::zeros(w.raw_dim())).collect();
        // Secure aggregation: fresh key pairs per round, exchanged through the server.
        let participants: Vec<Participant> = if cfg.secure_agg {
            (0..chosen.len()).map(Participant::new).collect()
        } else {
            Vec::new()
        };
        let publics: Vec<_> = participants.iter().map(|p| p.public).collect();
        let fixed = FixedPoint::new(SECAGG_FRAC_BITS).expect("valid");
        let mut uploads = Vec::with_capacity(chosen.len());
        for (slot, &c) in chosen.iter().enumerate() {
            let mut local = global.clone();
            local.set_weights(&global_weights);
            if let Algo::FedProx { mu } = algo {
                local.set_proximal(Some((global_weights.clone(), mu)));
            }
            let mut local_rng = ChaCha20Rng::seed_from_u64(rng.random());
            for _ in 0..cfg.local_epochs {
                local.train_epoch(train, &parts[c], &cfg.sgd, &mut local_rng);
            }
            let weight = parts[c].len() as f32 / total.max(1) as f32;
            if cfg.secure_agg {
                let flat: Vec<f64> = local
                    .weights()
                    .iter()
                    .flat_map(|w| w.iter().map(|&v| (v * weight) as f64))
                    .collect();
                let masked = participants[slot].mask(&flat, fixed, &publics, round as u64);
                uploads.push(masked.expect("model weights are inside the fixed-point range"));
            } else {
                for (s, w) in sum.iter_mut().zip(local.weights()) {
                    s.scaled_add(weight, &w);
                }
            }
        }
        if cfg.secure_agg {
            let total = secagg::aggregate(&uploads, chosen.len(), fixed)
                .expect("every sampled client uploads");
            let mut it = total.into_iter();
            for s in sum.iter_mut() {
                s.iter_mut().for_each(|v| *v = it.next().expect("one value per weight") as f32);
            }
        }
        global.set_weights(&sum);
        let acc = global.accuracy(test);
        progress(round + 1, acc);
        accuracies.push(acc);
    }
    accuracies
}
