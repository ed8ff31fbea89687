//! What a client's local training minimises: cross-entropy (FedAvg, FedProx), plus MOON's
//! model-contrastive loss, or FedProc's mix of cross-entropy and the prototype loss — and how
//! each data-parallel worker sees it.

use ndarray::{Array2, ArrayView2};

use super::model::SimpleCnn;

/// What local training minimises.
#[derive(Debug)]
pub enum LocalLoss {
    /// Mean softmax cross-entropy of the classifier (FedAvg, FedProx).
    CrossEntropy,
    /// Cross-entropy + μ · MOON's model-contrastive loss against the frozen global model
    /// (positive) and this client's previous local model (negative), temperature τ; made by
    /// [`LocalLoss::moon`].
    Moon(MoonLoss),
    /// FedProc: α · prototype loss (temperature τ) + (1 − α) · cross-entropy.
    Prototypes {
        /// Global class prototypes, classes × z-width (normalised inside the loss).
        prototypes: Array2<f32>,
        /// Weight α of the prototype loss.
        alpha: f32,
        /// Temperature τ (1: cosine logits, the paper's choice).
        tau: f32,
    },
}

/// MOON's loss: the frozen (global, previous) models, one pair per worker thread (never
/// empty), the weight μ of the contrastive term and its temperature τ.
#[derive(Debug)]
pub struct MoonLoss {
    frozen: Vec<[SimpleCnn; 2]>,
    mu: f32,
    tau: f32,
}

impl LocalLoss {
    /// MOON's loss with frozen copies of `global` and `previous` for every worker thread.
    pub fn moon(global: &SimpleCnn, previous: &SimpleCnn, mu: f32, tau: f32) -> Self {
        let (mut g, mut p) = (global.clone(), previous.clone());
        g.clear_caches();
        p.clear_caches();
        let frozen =
            (0..rayon::current_num_threads().max(1)).map(|_| [g.clone(), p.clone()]).collect();
        LocalLoss::Moon(MoonLoss { frozen, mu, tau })
    }

    /// The loss as each of `count` data-parallel parts of a batch sees it.
    pub(super) fn parts(&mut self, count: usize) -> Vec<PartLoss<'_>> {
        match self {
            LocalLoss::CrossEntropy => (0..count).map(|_| PartLoss::CrossEntropy).collect(),
            LocalLoss::Moon(MoonLoss { frozen, mu, tau }) => {
                if frozen.len() < count {
                    let copy = frozen[0].clone();
                    frozen.resize(count, copy);
                }
                frozen.iter_mut().take(count).map(|f| PartLoss::Moon(f, *mu, *tau)).collect()
            }
            LocalLoss::Prototypes { prototypes, alpha, tau } => {
                (0..count).map(|_| PartLoss::Prototypes(prototypes.view(), *alpha, *tau)).collect()
            }
        }
    }
}

/// [`LocalLoss`] as one worker sees it.
pub(super) enum PartLoss<'a> {
    CrossEntropy,
    Moon(&'a mut [SimpleCnn; 2], f32, f32),
    Prototypes(ArrayView2<'a, f32>, f32, f32),
}
