//! The "simple CNN" of MOON and FedProc for 28×28 grey images (docs/fedproc.md):
//! conv(1→6, 5×5) + ReLU + max-pool 2 → conv(6→16, 5×5) + ReLU + max-pool 2 → 256
//! → FC 120 + ReLU → FC 84 + ReLU (the representation r), then either a classifier FC 84 →
//! classes ([`SimpleCnn::new`]) or the federated network ([`SimpleCnn::with_projection`]):
//! projection head FC 84→84 + ReLU → FC 84→256 (z), classifier FC 256 → classes on z — with
//! z L2-normalised before the classifier in FedProc's network (docs/fedproc.md), not in MOON's.
//!
//! Local training takes a [`LocalLoss`]: cross-entropy (FedAvg, FedProx), cross-entropy plus
//! MOON's model-contrastive loss, or FedProc's mix of cross-entropy and the prototype loss.

use ndarray::{Array2, ArrayView2, Axis};
use rand::Rng;
use rand::seq::SliceRandom;

use super::cnn::{Conv2d, L2Normalize, Linear, MaxPool2, Param, Relu};
use super::data::Dataset;
use super::local_loss::PartLoss;
pub use super::local_loss::{LocalLoss, MoonLoss};
use super::loss::{model_contrastive, prototype_contrastive, softmax_cross_entropy};

/// Parameters by name: (PyTorch name, PyTorch shape, values in row-major order).
pub type NamedWeights = Vec<(String, Vec<usize>, Vec<f32>)>;

/// `indices` in a random order (one epoch's batch order).
pub fn shuffled<R: Rng + ?Sized>(indices: &[usize], rng: &mut R) -> Vec<usize> {
    let mut order = indices.to_vec();
    order.shuffle(rng);
    order
}

/// Representation width d.
pub const FEATURES: usize = 84;

/// Width of the projection z (docs/fedproc.md).
pub const PROJECTION: usize = 256;

/// Height and width of the images the network takes.
pub const IMAGE_SIDE: usize = 28;

/// The projection head: FC d→d + ReLU → FC d→256 (→ L2 normalisation in FedProc's network).
#[derive(Clone, Debug)]
struct Projection {
    l1: Linear,
    relu: Relu,
    l2: Linear,
    norm: Option<L2Normalize>,
}

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
    projection: Option<Projection>,
    /// The classifier on the representation (or on z, with a projection head).
    pub head: Linear,
    /// FedProx: the global weights w_g and μ; each step adds μ(w − w_g) to the gradient.
    proximal: Option<(Vec<Array2<f32>>, f32)>,
}

/// Hyper-parameters of local SGD (docs/fedproc.md: lr 0.01, momentum 0.9, weight decay 1e−5, batch 64).
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
    /// The simple CNN with its classifier on the representation r, for `classes` classes
    /// (28×28 inputs).
    pub fn new<R: Rng + ?Sized>(classes: usize, rng: &mut R) -> Self {
        Self::build(classes, None, rng)
    }

    /// The federated network: the simple CNN, projection head 84→84→256 (z), classifier
    /// 256 → `classes` on z. `normalize`: z scaled to unit norm before the classifier, as in
    /// FedProc's network (docs/fedproc.md); without it, MOON's network (its `ModelFedCon`).
    pub fn with_projection<R: Rng + ?Sized>(classes: usize, normalize: bool, rng: &mut R) -> Self {
        Self::build(classes, Some(normalize), rng)
    }

    fn build<R: Rng + ?Sized>(classes: usize, projection: Option<bool>, rng: &mut R) -> Self {
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
            projection: projection.map(|normalize| Projection {
                l1: Linear::new(FEATURES, FEATURES, rng),
                relu: Relu::default(),
                l2: Linear::new(FEATURES, PROJECTION, rng),
                norm: normalize.then(L2Normalize::default),
            }),
            head: Linear::new(
                if projection.is_some() { PROJECTION } else { FEATURES },
                classes,
                rng,
            ),
            proximal: None,
        }
    }

    /// Zero every parameter's momentum (a fresh optimiser).
    pub fn reset_optimizer(&mut self) {
        self.params().into_iter().for_each(Param::reset_optimizer);
    }

    /// Number of classes the classifier scores.
    pub fn classes(&self) -> usize {
        self.head.weight.value.nrows()
    }

    /// An error unless `data` fits the network: 28×28 images and labels below its classes.
    ///
    /// # Errors
    /// [`Error::Data`](crate::Error::Data) naming the mismatch.
    pub fn check_data(&self, data: &Dataset) -> crate::error::Result<()> {
        if (data.rows, data.cols) != (IMAGE_SIDE, IMAGE_SIDE) {
            return Err(crate::Error::Data(format!(
                "the network takes {IMAGE_SIDE}×{IMAGE_SIDE} images, the data set has {}×{}",
                data.rows, data.cols
            )));
        }
        if data.classes > self.classes() {
            return Err(crate::Error::Data(format!(
                "the data set has {} classes, the network scores {}",
                data.classes,
                self.classes()
            )));
        }
        Ok(())
    }

    /// Width of [`embed`](Self::embed)'s output: 256 with a projection head, else 84.
    pub fn embedding_width(&self) -> usize {
        if self.projection.is_some() { PROJECTION } else { FEATURES }
    }

    /// What the classifier sees (batch × [`embedding_width`](Self::embedding_width)): the
    /// projection z (normalised in FedProc's network), or the representation r without a
    /// projection head.
    pub fn embed(&mut self, images: &[f32], batch: usize) -> Array2<f32> {
        let r = self.encode(images, batch);
        match &mut self.projection {
            None => r,
            Some(p) => {
                let mut h = p.l1.forward(r.view());
                p.relu.forward(h.as_slice_mut().expect("contiguous"));
                let u = p.l2.forward(h.view());
                match &mut p.norm {
                    Some(norm) => norm.forward(u.view()),
                    None => u,
                }
            }
        }
    }

    /// Backpropagate a gradient with respect to [`embed`](Self::embed)'s output.
    fn embed_backward(&mut self, dz: ArrayView2<'_, f32>) {
        match &mut self.projection {
            None => self.encode_backward(dz),
            Some(p) => {
                let du = match &mut p.norm {
                    Some(norm) => norm.backward(dz),
                    None => dz.to_owned(),
                };
                let mut dh = p.l2.backward(du.view());
                p.relu.backward(dh.as_slice_mut().expect("contiguous"));
                let dr = p.l1.backward(dh.view());
                self.encode_backward(dr.view());
            }
        }
    }

    /// The representation r (batch × 84) of `batch` images of 28×28.
    pub fn encode(&mut self, images: &[f32], batch: usize) -> Array2<f32> {
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
        let z = self.embed(images, batch);
        self.head.forward(z.view())
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
        if let Some(p) = &mut self.projection {
            p.l1.clear();
            p.l2.clear();
            p.relu.clear();
            if let Some(norm) = &mut p.norm {
                norm.clear();
            }
        }
    }

    /// Every trainable parameter.
    pub fn params(&mut self) -> Vec<&mut Param> {
        let mut p = self.conv1.params();
        p.extend(self.conv2.params());
        p.extend(self.fc1.params());
        p.extend(self.fc2.params());
        if let Some(proj) = &mut self.projection {
            p.extend(proj.l1.params());
            p.extend(proj.l2.params());
        }
        p.extend(self.head.params());
        p
    }

    /// Accumulate the gradients of the batch mean of `loss`; returns the loss.
    fn accumulate_gradients(&mut self, images: &[f32], labels: &[u8], loss: PartLoss<'_>) -> f32 {
        let z = self.embed(images, labels.len());
        let logits = self.head.forward(z.view());
        let (ce, mut dlogits) = softmax_cross_entropy(logits.view(), labels);
        let (total, extra) = match loss {
            PartLoss::CrossEntropy => (ce, None),
            PartLoss::Moon([global, previous], mu, tau) => {
                let zg = global.embed(images, labels.len());
                let zp = previous.embed(images, labels.len());
                global.clear_caches();
                previous.clear_caches();
                let (l, dz) = model_contrastive(z.view(), zg.view(), zp.view(), tau);
                (ce + mu * l, Some(dz * mu))
            }
            PartLoss::Prototypes(prototypes, alpha, tau) => {
                let (l, dz) = prototype_contrastive(z.view(), prototypes, labels, tau);
                dlogits *= 1.0 - alpha;
                ((1.0 - alpha) * ce + alpha * l, Some(dz * alpha))
            }
        };
        let mut dz = self.head.backward(dlogits.view());
        if let Some(extra) = extra {
            dz += &extra;
        }
        self.embed_backward(dz.view());
        total
    }

    /// One SGD step on a batch; returns the loss. The batch is split across the rayon threads
    /// (data parallel: each part on a replica, gradients summed with weights part/batch),
    /// which gives the same step as one thread up to float summation order.
    pub fn train_step(
        &mut self,
        images: &[f32],
        labels: &[u8],
        cfg: &SgdConfig,
        loss: &mut LocalLoss,
    ) -> f32 {
        let parts = rayon::current_num_threads().min(labels.len() / 8).max(1);
        let mut part_losses = loss.parts(parts);
        let loss = if parts == 1 {
            let part = part_losses.pop().expect("one part");
            self.accumulate_gradients(images, labels, part)
        } else {
            let size = images.len() / labels.len();
            let per = labels.len().div_ceil(parts);
            self.clear_caches();
            let mut replicas: Vec<SimpleCnn> = (0..parts).map(|_| self.clone()).collect();
            let losses: Vec<(f32, usize)> = {
                use rayon::prelude::*;
                replicas
                    .par_iter_mut()
                    .zip(part_losses)
                    .enumerate()
                    .map(|(i, (m, part))| {
                        let (a, b) = (i * per, ((i + 1) * per).min(labels.len()));
                        let l = m.accumulate_gradients(
                            &images[a * size..b * size],
                            &labels[a..b],
                            part,
                        );
                        (l, b - a)
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
        loss: &mut LocalLoss,
        rng: &mut R,
    ) -> f32 {
        self.train_in_order(data, &shuffled(indices, rng), cfg, loss)
    }

    /// One pass over `order` of `data` in batches of `cfg.batch` in that order (the last,
    /// partial batch kept, as PyTorch's `DataLoader` with `drop_last=False`); returns the mean
    /// loss.
    pub fn train_in_order(
        &mut self,
        data: &Dataset,
        order: &[usize],
        cfg: &SgdConfig,
        loss: &mut LocalLoss,
    ) -> f32 {
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
            total += self.train_step(&images, &labels, cfg, loss);
            batches += 1;
        }
        total / batches.max(1) as f32
    }

    /// The parameters under PyTorch's names and shapes (in [`params`](Self::params) order),
    /// with MOON's names for the projection head and classifier (`l1`, `l2`, `l3`; `fc3` for
    /// the classifier of the network without a head): what `prifft fl-trace` exports and
    /// `scripts/xcheck_fl.py` loads into a PyTorch `state_dict`.
    pub fn named_weights(&mut self) -> NamedWeights {
        let mut layers: Vec<(&str, Vec<usize>)> = vec![
            ("conv1", vec![6, 1, 5, 5]),
            ("conv2", vec![16, 6, 5, 5]),
            ("fc1", vec![120, 256]),
            ("fc2", vec![FEATURES, 120]),
        ];
        let classes = self.head.weight.value.nrows();
        if self.projection.is_some() {
            layers.push(("l1", vec![FEATURES, FEATURES]));
            layers.push(("l2", vec![PROJECTION, FEATURES]));
            layers.push(("l3", vec![classes, PROJECTION]));
        } else {
            layers.push(("fc3", vec![classes, FEATURES]));
        }
        let params = self.params();
        debug_assert_eq!(params.len(), 2 * layers.len());
        let mut out = Vec::with_capacity(params.len());
        for ((name, shape), pair) in layers.into_iter().zip(params.chunks(2)) {
            let bias = vec![shape[0]];
            out.push((format!("{name}.weight"), shape, pair[0].value.iter().copied().collect()));
            out.push((format!("{name}.bias"), bias, pair[1].value.iter().copied().collect()));
        }
        out
    }

    /// Run `f` on the model over `indices` of `data` in chunks of up to 250 images, in
    /// parallel on copies of the model (inference: nothing here changes the weights).
    fn map_chunks<T: Send>(
        &mut self,
        data: &Dataset,
        indices: &[usize],
        f: impl Fn(&mut SimpleCnn, &[f32], &[u8]) -> T + Sync,
    ) -> Vec<T> {
        use rayon::prelude::*;
        self.clear_caches();
        let size = data.rows * data.cols;
        let this = &*self;
        indices
            .par_chunks(250)
            .map_init(
                || this.clone(),
                |model, chunk| {
                    let mut images = Vec::with_capacity(chunk.len() * size);
                    let mut labels = Vec::with_capacity(chunk.len());
                    for &i in chunk {
                        images.extend_from_slice(data.image(i));
                        labels.push(data.labels[i]);
                    }
                    let out = f(model, &images, &labels);
                    model.clear_caches();
                    out
                },
            )
            .collect()
    }

    /// Fraction of `data` classified correctly.
    pub fn accuracy(&mut self, data: &Dataset) -> f64 {
        let all: Vec<usize> = (0..data.len()).collect();
        let correct: usize = self
            .map_chunks(data, &all, |model, images, labels| {
                let logits = model.forward(images, labels.len());
                logits
                    .axis_iter(Axis(0))
                    .zip(labels)
                    .filter(|(row, y)| {
                        let pred = row
                            .iter()
                            .enumerate()
                            .max_by(|a, b| a.1.total_cmp(b.1))
                            .map_or(0, |(i, _)| i);
                        pred == **y as usize
                    })
                    .count()
            })
            .into_iter()
            .sum();
        correct as f64 / data.len().max(1) as f64
    }

    /// Per-class sums of [`embed`](Self::embed) over `indices` of `data` (classes × width)
    /// and per-class counts: a FedProc client's prototype upload (inference mode, every
    /// sample once).
    pub fn class_sums(&mut self, data: &Dataset, indices: &[usize]) -> (Array2<f32>, Vec<u64>) {
        let width = self.embedding_width();
        let parts = self.map_chunks(data, indices, |model, images, labels| {
            let z = model.embed(images, labels.len());
            let mut sums = Array2::<f32>::zeros((data.classes, width));
            let mut counts = vec![0u64; data.classes];
            for (row, &y) in z.rows().into_iter().zip(labels) {
                sums.row_mut(y as usize).scaled_add(1.0, &row);
                counts[y as usize] += 1;
            }
            (sums, counts)
        });
        let mut sums = Array2::<f32>::zeros((data.classes, width));
        let mut counts = vec![0u64; data.classes];
        for (s, c) in parts {
            sums += &s;
            counts.iter_mut().zip(c).for_each(|(a, b)| *a += b);
        }
        (sums, counts)
    }
}
