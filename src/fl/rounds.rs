//! Federated rounds: FedAvg and FedProx over the simple CNN.
//!
//! Each round a fraction of the clients is sampled; each starts from the global weights with a
//! fresh optimiser, trains E local epochs on its own data (FedProx adds μ/2‖w − w_g‖² to the
//! loss), and the server averages the returned weights in proportion to the clients' data
//! sizes. The global model's test accuracy is recorded after every round.

use ndarray::Array2;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};

use super::data::Dataset;
use super::model::{SgdConfig, SimpleCnn};
use crate::prg::ChaCha20Rng;

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
}

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
        for &c in &chosen {
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
            for (s, w) in sum.iter_mut().zip(local.weights()) {
                s.scaled_add(weight, &w);
            }
        }
        global.set_weights(&sum);
        let acc = global.accuracy(test);
        progress(round + 1, acc);
        accuracies.push(acc);
    }
    accuracies
}
