//! The "simple CNN" of MOON and FedProc for 28×28 grey images (fedproc.md):
//! conv(1→6, 5×5) + ReLU + max-pool 2 → conv(6→16, 5×5) + ReLU + max-pool 2 → 256
//! → FC 120 + ReLU → FC 84 + ReLU (the representation r) → classifier FC 84 → classes.

use ndarray::{Array2, ArrayView2, Axis};
use rand::Rng;
use rand::seq::SliceRandom;

use super::data::Dataset;
use super::nn::{Conv2d, Linear, MaxPool2, Param, Relu, softmax_cross_entropy};

/// Representation width d.
pub const FEATURES: usize = 84;

/// The simple CNN.
#[derive(Clone, Debug)]
pub struct SimpleCnn {
    conv1: Conv2d,
    relu1: Relu,
    pool1: MaxPool2,
    conv2: Conv2d,
    relu2: Relu,
    pool2: MaxPool2,
    fc1: Linear,
    relu3: Relu,
    fc2: Linear,
    relu4: Relu,
    /// The classifier on the representation.
    pub head: Linear,
    batch: usize,
    /// FedProx: the global weights w_g and μ; each step adds μ(w − w_g) to the gradient.
    proximal: Option<(Vec<Array2<f32>>, f32)>,
}

/// Hyper-parameters of local SGD (fedproc.md: lr 0.01, momentum 0.9, weight decay 1e−5, batch 64).
#[derive(Clone, Copy, Debug)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f32,
    /// Momentum.
    pub momentum: f32,
    /// Weight decay.
    pub weight_decay: f32,
    /// Batch size.
    pub batch: usize,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self { lr: 0.01, momentum: 0.9, weight_decay: 1e-5, batch: 64 }
    }
}

impl SimpleCnn {
    /// A fresh network for `classes` classes (28×28 inputs).
    pub fn new<R: Rng + ?Sized>(classes: usize, rng: &mut R) -> Self {
        Self {
            conv1: Conv2d::new(1, 6, 5, rng),
            relu1: Relu::default(),
            pool1: MaxPool2::default(),
            conv2: Conv2d::new(6, 16, 5, rng),
            relu2: Relu::default(),
            pool2: MaxPool2::default(),
            fc1: Linear::new(256, 120, rng),
            relu3: Relu::default(),
            fc2: Linear::new(120, FEATURES, rng),
            relu4: Relu::default(),
            head: Linear::new(FEATURES, classes, rng),
            batch: 0,
            proximal: None,
        }
    }

    /// The representation r (batch × 84) of `batch` images of 28×28.
    pub fn encode(&mut self, images: &[f32], batch: usize) -> Array2<f32> {
        self.batch = batch;
        let mut x = self.conv1.forward(images, batch, 28, 28); // 6×24×24
        self.relu1.forward(&mut x);
        let x = self.pool1.forward(&x, batch * 6, 24, 24); // 6×12×12
        let mut x = self.conv2.forward(&x, batch, 12, 12); // 16×8×8
        self.relu2.forward(&mut x);
        let x = self.pool2.forward(&x, batch * 16, 8, 8); // 16×4×4 = 256
        let x = Array2::from_shape_vec((batch, 256), x).expect("256 features per image");
        let mut h = self.fc1.forward(x.view());
        self.relu3.forward(h.as_slice_mut().expect("contiguous"));
        let mut r = self.fc2.forward(h.view());
        self.relu4.forward(r.as_slice_mut().expect("contiguous"));
        r
    }

    /// Backpropagate a gradient with respect to the representation.
    pub fn encode_backward(&mut self, dr: ArrayView2<'_, f32>) {
        let mut dr = dr.to_owned();
        self.relu4.backward(dr.as_slice_mut().expect("contiguous"));
        let mut dh = self.fc2.backward(dr.view());
        self.relu3.backward(dh.as_slice_mut().expect("contiguous"));
        let dx = self.fc1.backward(dh.view());
        let dx = self.pool2.backward(dx.as_slice().expect("contiguous"));
        let mut dx = dx;
        self.relu2.backward(&mut dx);
        let dx = self.conv2.backward(&dx);
        let mut dx = self.pool1.backward(&dx);
        self.relu1.backward(&mut dx);
        let _ = self.conv1.backward(&dx);
    }

    /// Logits (batch × classes).
    pub fn forward(&mut self, images: &[f32], batch: usize) -> Array2<f32> {
        let r = self.encode(images, batch);
        self.head.forward(r.view())
    }

    /// Drop every layer's forward-pass cache (after inference, and before replicating the
    /// model, so that copies do not carry large activations).
    pub fn clear_caches(&mut self) {
        self.conv1.clear();
        self.conv2.clear();
        self.pool1.clear();
        self.pool2.clear();
        self.fc1.clear();
        self.fc2.clear();
        self.head.clear();
        for r in [&mut self.relu1, &mut self.relu2, &mut self.relu3, &mut self.relu4] {
            r.clear();
        }
    }

    /// Every trainable parameter.
    pub fn params(&mut self) -> Vec<&mut Param> {
        let mut p = self.conv1.params();
        p.extend(self.conv2.params());
        p.extend(self.fc1.params());
        p.extend(self.fc2.params());
        p.extend(self.head.params());
        p
    }

    /// Accumulate the gradients of the mean cross-entropy of a batch; returns the loss.
    fn accumulate_gradients(&mut self, images: &[f32], labels: &[u8]) -> f32 {
        let logits = self.forward(images, labels.len());
        let (loss, dlogits) = softmax_cross_entropy(logits.view(), labels);
        let dr = self.head.backward(dlogits.view());
        self.encode_backward(dr.view());
        loss
    }

    /// One SGD step on a cross-entropy batch; returns the loss. The batch is split across the
    /// rayon threads (data parallel: each part on a replica, gradients summed with weights
    /// part/batch), which gives the same step as one thread up to float summation order.
    pub fn train_step(&mut self, images: &[f32], labels: &[u8], cfg: &SgdConfig) -> f32 {
        let parts = rayon::current_num_threads().min(labels.len() / 8).max(1);
        let loss = if parts == 1 {
            self.accumulate_gradients(images, labels)
        } else {
            let size = images.len() / labels.len();
            let per = labels.len().div_ceil(parts);
            self.clear_caches();
            let mut replicas: Vec<SimpleCnn> = (0..parts).map(|_| self.clone()).collect();
            let losses: Vec<(f32, usize)> = {
                use rayon::prelude::*;
                replicas
                    .par_iter_mut()
                    .enumerate()
                    .map(|(i, m)| {
                        let (a, b) = (i * per, ((i + 1) * per).min(labels.len()));
                        (m.accumulate_gradients(&images[a * size..b * size], &labels[a..b]), b - a)
                    })
                    .collect()
            };
            let total = labels.len() as f32;
            let mut mine = self.params();
            for (replica, &(_, n)) in replicas.iter_mut().zip(&losses) {
                let weight = n as f32 / total;
                for (p, q) in mine.iter_mut().zip(replica.params()) {
                    p.grad.scaled_add(weight, &q.grad);
                }
            }
            losses.iter().map(|&(l, n)| l * n as f32).sum::<f32>() / total
        };
        let proximal = self.proximal.take();
        for (i, p) in self.params().into_iter().enumerate() {
            if let Some((anchor, mu)) = &proximal {
                // d/dw of μ/2‖w − w_g‖² (FedProx).
                ndarray::Zip::from(&mut p.grad)
                    .and(&p.value)
                    .and(&anchor[i])
                    .for_each(|g, &w, &a| *g += mu * (w - a));
            }
            p.sgd_step(cfg.lr, cfg.momentum, cfg.weight_decay);
        }
        self.proximal = proximal;
        loss
    }

    /// The parameter values, in [`params`](Self::params) order.
    pub fn weights(&mut self) -> Vec<Array2<f32>> {
        self.params().into_iter().map(|p| p.value.clone()).collect()
    }

    /// Overwrite the parameter values (in [`params`](Self::params) order) and reset momentum.
    pub fn set_weights(&mut self, weights: &[Array2<f32>]) {
        for (p, w) in self.params().into_iter().zip(weights) {
            p.value.assign(w);
            p.reset_optimizer();
        }
    }

    /// FedProx: pull local training towards `anchor` with strength μ (None to stop).
    pub fn set_proximal(&mut self, proximal: Option<(Vec<Array2<f32>>, f32)>) {
        self.proximal = proximal;
    }

    /// One epoch over `indices` of `data` in shuffled batches; returns the mean loss.
    pub fn train_epoch<R: Rng + ?Sized>(
        &mut self,
        data: &Dataset,
        indices: &[usize],
        cfg: &SgdConfig,
        rng: &mut R,
    ) -> f32 {
        let mut order = indices.to_vec();
        order.shuffle(rng);
        let (mut total, mut batches) = (0.0, 0);
        let size = data.rows * data.cols;
        let mut images = Vec::with_capacity(cfg.batch * size);
        let mut labels = Vec::with_capacity(cfg.batch);
        for chunk in order.chunks(cfg.batch) {
            images.clear();
            labels.clear();
            for &i in chunk {
                images.extend_from_slice(data.image(i));
                labels.push(data.labels[i]);
            }
            total += self.train_step(&images, &labels, cfg);
            batches += 1;
        }
        total / batches.max(1) as f32
    }

    /// Fraction of `data` classified correctly.
    pub fn accuracy(&mut self, data: &Dataset) -> f64 {
        let size = data.rows * data.cols;
        let mut correct = 0;
        for (b, labels) in data.labels.chunks(500).enumerate() {
            let images = &data.images[b * 500 * size..(b * 500 + labels.len()) * size];
            let logits = self.forward(images, labels.len());
            for (row, &y) in logits.axis_iter(Axis(0)).zip(labels) {
                let pred =
                    row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
                correct += (pred == y as usize) as usize;
            }
        }
        self.clear_caches();
        correct as f64 / data.len().max(1) as f64
    }
}
