//! Training losses with their gradients: softmax cross-entropy, FedProc's prototype
//! contrastive loss and MOON's model-contrastive loss. Each returns the batch mean and its
//! gradient with respect to its input; the tests check each against finite differences.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

/// Mean softmax cross-entropy of `logits` (batch × classes) against `labels`, and its gradient
/// with respect to the logits.
pub fn softmax_cross_entropy(logits: ArrayView2<'_, f32>, labels: &[u8]) -> (f32, Array2<f32>) {
    let batch = logits.nrows() as f32;
    let mut grad = logits.to_owned();
    let mut loss = 0.0f32;
    for (mut row, &y) in grad.rows_mut().into_iter().zip(labels) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row /= sum;
        loss -= row[y as usize].max(1e-30).ln();
        row[y as usize] -= 1.0;
        row /= batch;
    }
    (loss / batch, grad)
}

/// FedProc's prototype contrastive loss (global prototypical contrastive loss, docs/fedproc.md):
/// the mean over the batch of −log softmax(z·ĉ_k / τ)_y, where ĉ_k are the rows of
/// `prototypes` scaled to unit norm (a zero prototype stays zero). With the network's
/// L2-normalised z and τ = 1 the logits are cosines. Returns the loss and dL/dz.
pub fn prototype_contrastive(
    z: ArrayView2<'_, f32>,
    prototypes: ArrayView2<'_, f32>,
    labels: &[u8],
    tau: f32,
) -> (f32, Array2<f32>) {
    let mut unit = prototypes.to_owned();
    for mut row in unit.rows_mut() {
        let norm = row.dot(&row).sqrt();
        if norm > 1e-12 {
            row /= norm;
        }
    }
    let logits = z.dot(&unit.t()) / tau;
    let (loss, dlogits) = softmax_cross_entropy(logits.view(), labels);
    (loss, dlogits.dot(&unit) / tau)
}

/// Cosine similarity of two rows and its gradient with respect to the first:
/// d cos/da = b/(‖a‖‖b‖) − cos·a/‖a‖² (norms floored at 1e−8, as PyTorch's `cosine_similarity`).
fn cosine(a: ArrayView1<'_, f32>, b: ArrayView1<'_, f32>) -> (f32, Array1<f32>) {
    let na = a.dot(&a).sqrt().max(1e-8);
    let nb = b.dot(&b).sqrt().max(1e-8);
    let cos = a.dot(&b) / (na * nb);
    let grad = &b / (na * nb) - &(&a * (cos / (na * na)));
    (cos, grad)
}

/// MOON's model-contrastive loss (Li, He, Song, CVPR 2021): for each sample, the positive pair
/// is (z, z_global) and the negative pair (z, z_previous), both by cosine similarity over a
/// temperature τ: the mean of −log(e^{cos(z,z_g)/τ} / (e^{cos(z,z_g)/τ} + e^{cos(z,z_p)/τ})).
/// `global` and `previous` are the frozen models' representations of the same batch; the loss
/// reaches only z. Returns the loss and dL/dz.
pub fn model_contrastive(
    z: ArrayView2<'_, f32>,
    global: ArrayView2<'_, f32>,
    previous: ArrayView2<'_, f32>,
    tau: f32,
) -> (f32, Array2<f32>) {
    let n = z.nrows();
    let mut logits = Array2::zeros((n, 2));
    let mut grads = Vec::with_capacity(n);
    for i in 0..n {
        let (cg, dg) = cosine(z.row(i), global.row(i));
        let (cp, dp) = cosine(z.row(i), previous.row(i));
        logits[[i, 0]] = cg / tau;
        logits[[i, 1]] = cp / tau;
        grads.push((dg, dp));
    }
    let (loss, dlogits) = softmax_cross_entropy(logits.view(), &vec![0u8; n]);
    let mut dz = Array2::zeros(z.raw_dim());
    for (i, (dg, dp)) in grads.into_iter().enumerate() {
        let mut row = dz.row_mut(i);
        row.scaled_add(dlogits[[i, 0]] / tau, &dg);
        row.scaled_add(dlogits[[i, 1]] / tau, &dp);
    }
    (loss, dz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fl::cnn::tests::{EPS, close, random};
    use ndarray::s;

    /// Central differences of a loss of z against its analytic gradient, at a few entries.
    fn check_dz(
        z: &Array2<f32>,
        loss: impl Fn(&Array2<f32>) -> (f32, Array2<f32>),
        entries: &[(usize, usize)],
        what: &str,
    ) {
        let (_, dz) = loss(z);
        for &(i, j) in entries {
            let (mut a, mut b) = (z.clone(), z.clone());
            a[[i, j]] += EPS;
            b[[i, j]] -= EPS;
            close((loss(&a).0 - loss(&b).0) / (2.0 * EPS), dz[[i, j]], what);
        }
    }

    #[test]
    fn contrastive_loss_gradients_match_finite_differences() {
        let z = Array2::from_shape_vec((3, 5), random(15, 11)).unwrap();
        let mut protos = Array2::from_shape_vec((4, 5), random(20, 12)).unwrap();
        protos.row_mut(2).fill(0.0); // a class nobody has seen yet
        let labels = [1u8, 3, 2];
        for tau in [1.0, 0.5, 0.1] {
            check_dz(
                &z,
                |z| prototype_contrastive(z.view(), protos.view(), &labels, tau),
                &[(0, 0), (1, 4), (2, 2)],
                "prototype loss dz",
            );
        }
        let g = Array2::from_shape_vec((3, 5), random(15, 13)).unwrap();
        let p = Array2::from_shape_vec((3, 5), random(15, 14)).unwrap();
        check_dz(
            &z,
            |z| model_contrastive(z.view(), g.view(), p.view(), 0.5),
            &[(0, 1), (1, 0), (2, 4)],
            "MOON loss dz",
        );
        // Cosine logits: identical positive and negative pairs give log 2.
        let (l, _) = model_contrastive(z.view(), g.view(), g.view(), 0.5);
        assert!((l - 2f32.ln()).abs() < 1e-6);
        // With τ = 1 and unit vectors the prototype loss is at least log(1 + (C−1)e^{−2}).
        let unit = protos.clone();
        let mut zs = unit.slice(s![0..2, ..]).to_owned();
        for mut r in zs.rows_mut() {
            let n = r.dot(&r).sqrt();
            r /= n;
        }
        let (l, _) = prototype_contrastive(zs.view(), unit.view(), &[0, 1], 1.0);
        assert!(l >= (1.0 + 3.0 * (-2f32).exp()).ln() - 1e-6, "{l}");
    }
}
