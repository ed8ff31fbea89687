//! Federated rounds: FedAvg, FedProx, MOON and FedProc over the network of docs/fedproc.md.
//!
//! Each round a fraction of the clients is sampled; each starts from the global weights with a
//! fresh optimiser and trains E local epochs on its own data with its algorithm's loss:
//!
//! - **FedAvg** (McMahan et al. 2017): cross-entropy.
//! - **FedProx** (Li et al. 2020): cross-entropy + μ/2‖w − w_g‖².
//! - **MOON** (Li, He, Song 2021): cross-entropy + μ · model-contrastive loss (positive: the
//!   global model's z, negative: this client's previous local model's z, temperature τ).
//! - **FedProc** (Mu et al. 2023): α_t · prototype loss + (1 − α_t) · cross-entropy, with
//!   α_t = 1 − t/H (H, the horizon, defaults to the number of rounds; round 0 is
//!   cross-entropy only). After training each client uploads its per-class sums of z and
//!   counts; the server's prototypes c_k = Σ S_k / Σ n_k are used in the next round, and a
//!   class no participant holds keeps its previous prototype. The first prototypes come from
//!   the initial model.
//!
//! The server averages the returned weights in proportion to the clients' data sizes: each
//! client uploads n_c·w_c and n_c (so no client needs the round's total), and the server divides
//! Σ n_c·w_c by Σ n_c — in the clear, or with secure aggregation ([`super::secagg`]) so that the
//! server sees only those sums and the totals of FedProc's sums and counts. All algorithms use
//! the network with a projection head ([`SimpleCnn::with_projection`]); FedProc's normalises z
//! before the classifier (docs/fedproc.md), the others' do not (MOON's `ModelFedCon`, which MOON's
//! code base uses for every algorithm). The global model's test accuracy is recorded after
//! every round.

use ndarray::Array2;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};

use super::data::Dataset;
use super::model::{LocalLoss, NamedWeights, SgdConfig, SimpleCnn, shuffled};
use super::secagg;
use crate::error::{Error, Result};
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
    /// Li, He and Song 2021 (docs/fedproc.md: μ = 1, τ = 0.5).
    Moon {
        /// Weight μ of the model-contrastive loss.
        mu: f32,
        /// Its temperature τ.
        tau: f32,
    },
    /// Mu et al. 2023.
    FedProc {
        /// Temperature τ of the prototype loss (the paper: 1, cosine logits).
        tau: f32,
        /// Horizon H of α_t = 1 − t/H (None: the number of rounds, as the paper).
        horizon: Option<usize>,
    },
}

impl Algo {
    /// Short name for CSV files.
    pub fn name(&self) -> &'static str {
        match self {
            Algo::FedAvg => "fedavg",
            Algo::FedProx { .. } => "fedprox",
            Algo::Moon { .. } => "moon",
            Algo::FedProc { .. } => "fedproc",
        }
    }

    /// Name with the settings that tell runs of one algorithm apart (FedProc's τ and horizon).
    pub fn label(&self) -> String {
        match self {
            Algo::FedProc { tau, horizon: None } => format!("fedproc τ={tau}"),
            Algo::FedProc { tau, horizon: Some(h) } => format!("fedproc τ={tau} H={h}"),
            other => other.name().to_string(),
        }
    }

    /// FedProc's α in round `round` (0-based) of `rounds`; 0 for the other algorithms.
    pub fn alpha(&self, round: usize, rounds: usize) -> f32 {
        match *self {
            Algo::FedProc { horizon, .. } if round > 0 => {
                let h = horizon.unwrap_or(rounds).max(1);
                (1.0 - round as f32 / h as f32).max(0.0)
            }
            _ => 0.0,
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

/// The server's sum of the clients' upload vectors: plain, or through a secure-aggregation
/// session in which the server sees only the total.
fn aggregate(uploads: &[Vec<f64>], secure: bool, round: u64) -> Result<Vec<f64>> {
    if secure {
        let fixed = FixedPoint::new(SECAGG_FRAC_BITS).expect("valid fractional bits");
        return secagg::sum_in_session(uploads, fixed, round);
    }
    let mut sum = vec![0.0; uploads.first().map_or(0, Vec::len)];
    for u in uploads {
        sum.iter_mut().zip(u).for_each(|(s, v)| *s += v);
    }
    Ok(sum)
}

/// A FedProc client's prototype upload: per-class sums of z, then per-class counts.
fn prototype_upload(model: &mut SimpleCnn, data: &Dataset, indices: &[usize]) -> Vec<f64> {
    let (sums, counts) = model.class_sums(data, indices);
    sums.iter().map(|&v| v as f64).chain(counts.iter().map(|&n| n as f64)).collect()
}

/// Update the prototypes from aggregated sums and counts; classes with no samples keep theirs.
fn update_prototypes(prototypes: &mut Array2<f32>, totals: &[f64]) {
    let (classes, width) = prototypes.dim();
    let (sums, counts) = totals.split_at(classes * width);
    for k in 0..classes {
        let n = counts[k].round();
        if n >= 1.0 {
            for j in 0..width {
                prototypes[[k, j]] = (sums[k * width + j] / n) as f32;
            }
        }
    }
}

/// The random choices of a run of [`run`]: the initial global model, and per round the sampled
/// clients, each with the seed of its local update's shuffles — everything `cfg.seed` decides.
/// A driver outside this crate (the Python binding, a Flower strategy) that follows it trains
/// the same models as `prifft fl`.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// The global model before round 1 (FedProc's network normalises z).
    pub initial: SimpleCnn,
    /// Per round, the sampled clients in the order their uploads are summed, with their local
    /// seeds ([`local_update`]'s `seed`).
    pub rounds: Vec<Vec<(usize, u64)>>,
}

/// The schedule of `algo` over `clients` clients with `cfg`'s seed, rounds and fraction (each
/// round samples round(fraction · clients) of them, at least one).
pub fn schedule(algo: Algo, classes: usize, clients: usize, cfg: &FlConfig) -> Schedule {
    let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed);
    let normalize = matches!(algo, Algo::FedProc { .. });
    let initial = SimpleCnn::with_projection(classes, normalize, &mut rng);
    let per_round = ((clients as f64 * cfg.fraction).round() as usize).clamp(1, clients.max(1));
    let rounds = (0..cfg.rounds)
        .map(|_| {
            let chosen = if clients == 0 {
                Vec::new()
            } else {
                sample(&mut rng, clients, per_round).into_vec()
            };
            chosen.into_iter().map(|c| (c, rng.random())).collect()
        })
        .collect();
    Schedule { initial, rounds }
}

/// What a client's local update minimises beyond cross-entropy, and the state it needs.
#[derive(Clone, Copy, Debug)]
pub struct LocalUpdate<'a> {
    /// The algorithm.
    pub algo: Algo,
    /// FedProc's α for this round ([`Algo::alpha`]); cross-entropy alone when it is 0.
    pub alpha: f32,
    /// FedProc: the global class prototypes (classes × [`SimpleCnn::embedding_width`]); needed
    /// when α > 0.
    pub prototypes: Option<&'a Array2<f32>>,
    /// MOON: this client's previous local weights (the negative of the contrastive loss), in
    /// [`SimpleCnn::weights`] order; `None` uses the global weights (a client's first round).
    pub previous: Option<&'a [Array2<f32>]>,
}

/// One client's local update, exactly as every round of [`run`] does it: a copy of `global`
/// with a fresh optimiser, the algorithm's loss (FedProx's proximal term towards the global
/// weights, MOON's frozen global and previous models, FedProc's prototypes), then `epochs`
/// passes over `indices` of `data`, each in an order shuffled by one generator seeded with
/// `seed`. Returns the trained model and each epoch's order. The Python binding calls this, so
/// a Flower client trains bit for bit as `prifft fl` does.
///
/// # Errors
/// [`Error::Data`] for data the network does not take ([`SimpleCnn::check_data`]), FedProc
/// with α > 0 and no prototypes or prototypes of the wrong shape, MOON previous weights of the
/// wrong shapes, or an index outside `data`.
pub fn local_update(
    global: &SimpleCnn,
    update: &LocalUpdate<'_>,
    data: &Dataset,
    indices: &[usize],
    epochs: usize,
    sgd: &SgdConfig,
    seed: u64,
) -> Result<(SimpleCnn, Vec<Vec<usize>>)> {
    global.check_data(data)?;
    if let Some(&bad) = indices.iter().find(|&&i| i >= data.len()) {
        return Err(Error::Data(format!(
            "local update: sample index {bad} is outside the data set of {} samples",
            data.len()
        )));
    }
    let mut local = global.clone();
    local.reset_optimizer();
    let mut loss = match update.algo {
        Algo::FedAvg => LocalLoss::CrossEntropy,
        Algo::FedProx { mu } => {
            let anchor = local.weights();
            local.set_proximal(Some((anchor, mu)));
            LocalLoss::CrossEntropy
        }
        Algo::Moon { mu, tau } => {
            let mut prev = global.clone();
            if let Some(previous) = update.previous {
                check_shapes("MOON's previous weights", &local.weights(), previous)?;
                prev.set_weights(previous);
            }
            LocalLoss::moon(global, &prev, mu, tau)
        }
        Algo::FedProc { tau, .. } if update.alpha > 0.0 => {
            let width = global.embedding_width();
            let prototypes = update.prototypes.filter(|p| p.dim() == (data.classes, width));
            let Some(prototypes) = prototypes else {
                return Err(Error::Data(format!(
                    "FedProc with α = {} needs the global prototypes, {} classes × {width}",
                    update.alpha, data.classes
                )));
            };
            LocalLoss::Prototypes { prototypes: prototypes.clone(), alpha: update.alpha, tau }
        }
        Algo::FedProc { .. } => LocalLoss::CrossEntropy,
    };
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut orders = Vec::with_capacity(epochs);
    for _ in 0..epochs {
        let order = shuffled(indices, &mut rng);
        local.train_in_order(data, &order, sgd, &mut loss);
        orders.push(order);
    }
    Ok((local, orders))
}

/// An error unless `found` has `expected`'s number of arrays and their shapes.
fn check_shapes(what: &str, expected: &[Array2<f32>], found: &[Array2<f32>]) -> Result<()> {
    let shapes = |w: &[Array2<f32>]| w.iter().map(|a| a.dim()).collect::<Vec<_>>();
    if shapes(expected) != shapes(found) {
        return Err(Error::Data(format!(
            "{what}: expected shapes {:?}, found {:?}",
            shapes(expected),
            shapes(found)
        )));
    }
    Ok(())
}

/// What the first round did, for checking it against another implementation
/// (`prifft fl-trace`, `scripts/xcheck_fl.py`): the initial global weights, each client's
/// batch order and returned weights, and the averaged weights.
#[derive(Clone, Debug, Default)]
pub struct RoundTrace {
    /// The global model before round 1, as [`SimpleCnn::named_weights`].
    pub initial: NamedWeights,
    /// Per client: the indices of its training data in the order its local epochs visited
    /// them (E epochs one after another); empty for a client not sampled in round 1.
    pub orders: Vec<Vec<usize>>,
    /// Per client: its weights after local training (empty when not sampled).
    pub locals: Vec<NamedWeights>,
    /// The global model after round 1's aggregation.
    pub global: NamedWeights,
    /// Its test accuracy.
    pub accuracy: f64,
}

/// Run `algo` over the clients' index sets `parts` of `train`; returns the global model's test
/// accuracy after each round. `progress(round, accuracy)` is called after each round.
///
/// # Errors
/// Secure aggregation's errors (a weight outside the fixed-point range).
pub fn run(
    algo: Algo,
    train: &Dataset,
    test: &Dataset,
    parts: &[Vec<usize>],
    cfg: &FlConfig,
    progress: impl FnMut(usize, f64),
) -> Result<Vec<f64>> {
    run_traced(algo, train, test, parts, cfg, progress, None)
}

/// [`run`], recording round 1 into `trace` when one is given.
///
/// # Errors
/// As [`run`].
pub fn run_traced(
    algo: Algo,
    train: &Dataset,
    test: &Dataset,
    parts: &[Vec<usize>],
    cfg: &FlConfig,
    mut progress: impl FnMut(usize, f64),
    mut trace: Option<&mut RoundTrace>,
) -> Result<Vec<f64>> {
    let Schedule { initial: mut global, rounds: plan } =
        schedule(algo, train.classes, parts.len(), cfg);
    let initial = global.weights();
    if let Some(t) = trace.as_deref_mut() {
        *t = RoundTrace {
            initial: global.named_weights(),
            orders: vec![Vec::new(); parts.len()],
            locals: vec![Vec::new(); parts.len()],
            ..RoundTrace::default()
        };
    }
    let mut accuracies = Vec::with_capacity(cfg.rounds);
    // MOON: each client's last local model (the initial model before its first round).
    let mut previous: Vec<Option<Vec<Array2<f32>>>> = vec![None; parts.len()];
    // FedProc: prototypes from the initial model over every client's data.
    let mut prototypes = Array2::<f32>::zeros((train.classes, global.embedding_width()));
    if let Algo::FedProc { .. } = algo {
        let uploads: Vec<Vec<f64>> =
            parts.iter().map(|p| prototype_upload(&mut global, train, p)).collect();
        update_prototypes(&mut prototypes, &aggregate(&uploads, cfg.secure_agg, u64::MAX)?);
    }
    for (round, chosen) in plan.iter().enumerate() {
        let global_weights = global.weights();
        let alpha = algo.alpha(round, cfg.rounds);
        let mut uploads = Vec::with_capacity(chosen.len());
        for &(c, seed) in chosen {
            let update = LocalUpdate {
                algo,
                alpha,
                prototypes: Some(&prototypes),
                previous: Some(previous[c].as_deref().unwrap_or(&initial)),
            };
            let (mut local, orders) =
                local_update(&global, &update, train, &parts[c], cfg.local_epochs, &cfg.sgd, seed)?;
            if let Some(t) = trace.as_deref_mut().filter(|_| round == 0) {
                t.orders[c] = orders.concat();
                t.locals[c] = local.named_weights();
            }
            // n_c·w and n_c: the server divides the summed weights by the summed sizes, so no
            // client needs to know the round's total.
            let size = parts[c].len() as f64;
            let weights = local.weights();
            let mut upload: Vec<f64> =
                weights.iter().flat_map(|w| w.iter().map(|&v| v as f64 * size)).collect();
            match algo {
                Algo::Moon { .. } => previous[c] = Some(weights),
                Algo::FedProc { .. } => {
                    upload.extend(prototype_upload(&mut local, train, &parts[c]));
                }
                _ => {}
            }
            upload.push(size);
            uploads.push(upload);
        }
        let mut totals = aggregate(&uploads, cfg.secure_agg, round as u64)?;
        let total_size = totals.pop().expect("every upload ends with its size").max(1.0);
        let mut it = totals.iter();
        let mut averaged = global_weights;
        for w in averaged.iter_mut() {
            w.iter_mut().for_each(|v| {
                *v = (*it.next().expect("one value per weight") / total_size) as f32;
            });
        }
        if let Algo::FedProc { .. } = algo {
            update_prototypes(&mut prototypes, it.as_slice());
        }
        global.set_weights(&averaged);
        let acc = global.accuracy(test);
        if let Some(t) = trace.as_deref_mut().filter(|_| round == 0) {
            t.global = global.named_weights();
            t.accuracy = acc;
        }
        progress(round + 1, acc);
        accuracies.push(acc);
    }
    Ok(accuracies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn securely_aggregated_weights_equal_the_plain_fixed_point_sum_exactly() {
        // Real model weights of three clients (different initialisations), uploaded as n_c·w and
        // n_c: the securely aggregated weights are exactly the fixed-point sum of the uploads,
        // and within the encoding's rounding of the clear sum.
        let fixed = FixedPoint::new(SECAGG_FRAC_BITS).unwrap();
        let sizes = [5_900.0, 120.0, 2_345.0];
        let uploads: Vec<Vec<f64>> = sizes
            .iter()
            .enumerate()
            .map(|(c, &n)| {
                let mut rng = ChaCha20Rng::seed_from_u64(40 + c as u64);
                let mut model = SimpleCnn::with_projection(10, false, &mut rng);
                let mut up: Vec<f64> =
                    model.weights().iter().flat_map(|w| w.iter().map(|&v| v as f64 * n)).collect();
                up.push(n);
                up
            })
            .collect();
        let secure = aggregate(&uploads, true, 3).unwrap();
        let clear = aggregate(&uploads, false, 3).unwrap();
        let total = *clear.last().unwrap();
        assert_eq!(*secure.last().unwrap(), total);
        for (k, (&s, &c)) in secure.iter().zip(&clear).enumerate() {
            let plain: u64 =
                uploads.iter().map(|u| fixed.encode(u[k]).unwrap()).fold(0, u64::wrapping_add);
            assert_eq!(s, fixed.decode(plain), "weight {k}: not the exact fixed-point sum");
            let bound = uploads.len() as f64 * fixed.ulp();
            assert!((s - c).abs() <= bound, "weight {k}: {s} vs {c}");
            assert!((s / total - c / total).abs() <= bound / total);
        }
    }

    #[test]
    fn alpha_schedule_follows_the_paper_and_the_horizon() {
        let paper = Algo::FedProc { tau: 1.0, horizon: None };
        assert_eq!(paper.alpha(0, 10), 0.0); // round 0: cross-entropy only
        assert!((paper.alpha(1, 10) - 0.9).abs() < 1e-6);
        assert!((paper.alpha(9, 10) - 0.1).abs() < 1e-6);
        let short = Algo::FedProc { tau: 1.0, horizon: Some(4) };
        assert!((short.alpha(2, 10) - 0.5).abs() < 1e-6);
        assert_eq!(short.alpha(7, 10), 0.0);
        assert_eq!(Algo::FedAvg.alpha(3, 10), 0.0);
    }

    #[test]
    fn prototypes_average_by_count_and_absent_classes_keep_theirs() {
        let mut protos = Array2::from_elem((3, 2), 7.0f32);
        // Two clients: class 0 sums (1, 2) over 1 and (3, 4) over 3; class 2 absent.
        let a = [1.0, 2.0, 5.0, 5.0, 0.0, 0.0, 1.0, 2.0, 0.0];
        let b = [3.0, 4.0, 1.0, 1.0, 0.0, 0.0, 3.0, 1.0, 0.0];
        let total: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        update_prototypes(&mut protos, &total);
        assert_eq!(protos.row(0).to_vec(), vec![1.0, 1.5]);
        assert_eq!(protos.row(1).to_vec(), vec![2.0, 2.0]);
        assert_eq!(protos.row(2).to_vec(), vec![7.0, 7.0]);
    }
}
