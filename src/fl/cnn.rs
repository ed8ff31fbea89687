//! A small CNN training stack: convolution (im2col + GEMM), max-pooling, linear layers, ReLU,
//! L2 normalisation, and SGD with momentum and weight decay (the losses are in
//! [`super::loss`]).
//!
//! Tensors are `f32`, batch-major, NCHW for images. Every layer has a forward pass that keeps
//! what its backward pass needs and a backward pass that returns the input gradient and
//! accumulates parameter gradients; the tests check each against finite differences.

use ndarray::{Array2, ArrayView2, Axis, s};
use rand::Rng;
use rand_distr::{Distribution, Uniform};

/// A trainable tensor with its gradient and momentum buffer.
#[derive(Clone, Debug)]
pub struct Param {
    /// Values.
    pub value: Array2<f32>,
    /// Gradient accumulated by the last backward pass.
    pub grad: Array2<f32>,
    momentum: Array2<f32>,
}

impl Param {
    fn new(value: Array2<f32>) -> Self {
        let zeros = Array2::zeros(value.raw_dim());
        Self { grad: zeros.clone(), momentum: zeros, value }
    }

    /// Uniform(−1/√fan_in, 1/√fan_in), as PyTorch's default for linear and conv layers.
    fn uniform<R: Rng + ?Sized>(rows: usize, cols: usize, fan_in: usize, rng: &mut R) -> Self {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let dist = Uniform::new_inclusive(-bound, bound).expect("valid bounds");
        Self::new(Array2::from_shape_fn((rows, cols), |_| dist.sample(rng)))
    }

    /// Zero the momentum and gradient (a fresh optimiser, as each FL round starts one).
    pub fn reset_optimizer(&mut self) {
        self.momentum.fill(0.0);
        self.grad.fill(0.0);
    }

    /// SGD with momentum μ and weight decay λ (PyTorch's convention:
    /// v ← μv + (g + λw), w ← w − lr·v), then clears the gradient.
    pub fn sgd_step(&mut self, lr: f32, momentum: f32, weight_decay: f32) {
        ndarray::Zip::from(&mut self.value).and(&mut self.momentum).and(&mut self.grad).for_each(
            |w, v, g| {
                *v = momentum * *v + *g + weight_decay * *w;
                *w -= lr * *v;
                *g = 0.0;
            },
        );
    }
}

/// A 2-D convolution with stride 1 and no padding.
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel side.
    pub kernel: usize,
    /// `out_channels × (in_channels·k·k)`.
    pub weight: Param,
    /// `out_channels × 1`.
    pub bias: Param,
    cache: Option<(Array2<f32>, [usize; 3])>,
}

/// Lay out every k×k patch of a batch of `c × h × w` images as one column:
/// `(c·k·k) × (batch·oh·ow)`.
fn im2col(x: &[f32], batch: usize, [c, h, w]: [usize; 3], k: usize) -> Array2<f32> {
    let (oh, ow) = (h - k + 1, w - k + 1);
    let mut col = Array2::zeros((c * k * k, batch * oh * ow));
    for b in 0..batch {
        for ci in 0..c {
            let img = &x[(b * c + ci) * h * w..(b * c + ci + 1) * h * w];
            for ki in 0..k {
                for kj in 0..k {
                    let row = (ci * k + ki) * k + kj;
                    let mut dst = col.slice_mut(s![row, b * oh * ow..(b + 1) * oh * ow]);
                    let dst = dst.as_slice_mut().expect("rows of a standard-layout array");
                    for (i, out) in dst.chunks_exact_mut(ow).enumerate() {
                        let start = (i + ki) * w + kj;
                        out.copy_from_slice(&img[start..start + ow]);
                    }
                }
            }
        }
    }
    col
}

/// The adjoint of [`im2col`]: add every column entry back into its image position.
fn col2im(col: &Array2<f32>, batch: usize, [c, h, w]: [usize; 3], k: usize) -> Vec<f32> {
    let (oh, ow) = (h - k + 1, w - k + 1);
    let mut x = vec![0.0f32; batch * c * h * w];
    for b in 0..batch {
        for ci in 0..c {
            let img = &mut x[(b * c + ci) * h * w..(b * c + ci + 1) * h * w];
            for ki in 0..k {
                for kj in 0..k {
                    let row = (ci * k + ki) * k + kj;
                    let src = col.slice(s![row, b * oh * ow..(b + 1) * oh * ow]);
                    let src = src.as_slice().expect("rows of a standard-layout array");
                    for (i, part) in src.chunks_exact(ow).enumerate() {
                        let start = (i + ki) * w + kj;
                        for (d, &v) in img[start..start + ow].iter_mut().zip(part) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
    x
}

impl Conv2d {
    /// A layer with PyTorch-default initialisation.
    pub fn new<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        rng: &mut R,
    ) -> Self {
        let fan_in = in_channels * kernel * kernel;
        Self {
            in_channels,
            out_channels,
            kernel,
            weight: Param::uniform(out_channels, fan_in, fan_in, rng),
            bias: Param::uniform(out_channels, 1, fan_in, rng),
            cache: None,
        }
    }

    /// `x`: batch × in_channels × h × w → batch × out_channels × (h−k+1) × (w−k+1).
    pub fn forward(&mut self, x: &[f32], batch: usize, h: usize, w: usize) -> Vec<f32> {
        let (k, oc) = (self.kernel, self.out_channels);
        let (oh, ow) = (h - k + 1, w - k + 1);
        let col = im2col(x, batch, [self.in_channels, h, w], k);
        let y = self.weight.value.dot(&col); // oc × (batch·oh·ow)
        let mut out = vec![0.0f32; batch * oc * oh * ow];
        for b in 0..batch {
            for o in 0..oc {
                let bias = self.bias.value[[o, 0]];
                let src = y.slice(s![o, b * oh * ow..(b + 1) * oh * ow]);
                for (d, &v) in out[(b * oc + o) * oh * ow..(b * oc + o + 1) * oh * ow]
                    .iter_mut()
                    .zip(src.iter())
                {
                    *d = v + bias;
                }
            }
        }
        self.cache = Some((col, [batch, h, w]));
        out
    }

    /// Backward from `dy` (same layout as the forward output); returns dx.
    pub fn backward(&mut self, dy: &[f32]) -> Vec<f32> {
        let (col, [batch, h, w]) = self.cache.take().expect("forward before backward");
        let (k, oc) = (self.kernel, self.out_channels);
        let (oh, ow) = (h - k + 1, w - k + 1);
        let mut dy_mat = Array2::zeros((oc, batch * oh * ow));
        for b in 0..batch {
            for o in 0..oc {
                let src = &dy[(b * oc + o) * oh * ow..(b * oc + o + 1) * oh * ow];
                dy_mat
                    .slice_mut(s![o, b * oh * ow..(b + 1) * oh * ow])
                    .assign(&ndarray::ArrayView1::from(src));
            }
        }
        self.weight.grad += &dy_mat.dot(&col.t());
        self.bias.grad += &dy_mat.sum_axis(Axis(1)).insert_axis(Axis(1));
        let dcol = self.weight.value.t().dot(&dy_mat);
        col2im(&dcol, batch, [self.in_channels, h, w], k)
    }

    /// Trainable parameters.
    pub fn params(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }

    /// Drop what the last forward pass kept for the backward pass.
    pub fn clear(&mut self) {
        self.cache = None;
    }
}

/// 2×2 max-pooling with stride 2.
#[derive(Clone, Debug, Default)]
pub struct MaxPool2 {
    cache: Option<(Vec<usize>, usize)>,
}

impl MaxPool2 {
    /// `x`: planes × h × w (any batch·channels) → planes × h/2 × w/2.
    pub fn forward(&mut self, x: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
        let (oh, ow) = (h / 2, w / 2);
        let mut out = vec![0.0f32; planes * oh * ow];
        let mut arg = vec![0usize; planes * oh * ow];
        for p in 0..planes {
            for i in 0..oh {
                for j in 0..ow {
                    let mut best = (f32::NEG_INFINITY, 0);
                    for (di, dj) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let idx = p * h * w + (2 * i + di) * w + 2 * j + dj;
                        if x[idx] > best.0 {
                            best = (x[idx], idx);
                        }
                    }
                    let o = (p * oh + i) * ow + j;
                    out[o] = best.0;
                    arg[o] = best.1;
                }
            }
        }
        self.cache = Some((arg, x.len()));
        out
    }

    /// Drop what the last forward pass kept for the backward pass.
    pub fn clear(&mut self) {
        self.cache = None;
    }

    /// Route each output gradient to its window's maximum.
    pub fn backward(&mut self, dy: &[f32]) -> Vec<f32> {
        let (arg, len) = self.cache.take().expect("forward before backward");
        let mut dx = vec![0.0f32; len];
        for (&a, &g) in arg.iter().zip(dy) {
            dx[a] += g;
        }
        dx
    }
}

/// A fully connected layer `y = x·Wᵀ + b`.
#[derive(Clone, Debug)]
pub struct Linear {
    /// `out × in`.
    pub weight: Param,
    /// `1 × out`.
    pub bias: Param,
    cache: Option<Array2<f32>>,
}

impl Linear {
    /// A layer with PyTorch-default initialisation.
    pub fn new<R: Rng + ?Sized>(inputs: usize, outputs: usize, rng: &mut R) -> Self {
        Self {
            weight: Param::uniform(outputs, inputs, inputs, rng),
            bias: Param::uniform(1, outputs, inputs, rng),
            cache: None,
        }
    }

    /// `x`: batch × in → batch × out.
    pub fn forward(&mut self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let y = x.dot(&self.weight.value.t()) + &self.bias.value;
        self.cache = Some(x.to_owned());
        y
    }

    /// Backward; returns dx.
    pub fn backward(&mut self, dy: ArrayView2<'_, f32>) -> Array2<f32> {
        let x = self.cache.take().expect("forward before backward");
        self.weight.grad += &dy.t().dot(&x);
        self.bias.grad += &dy.sum_axis(Axis(0)).insert_axis(Axis(0));
        dy.dot(&self.weight.value)
    }

    /// Trainable parameters.
    pub fn params(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }

    /// Drop what the last forward pass kept for the backward pass.
    pub fn clear(&mut self) {
        self.cache = None;
    }
}

/// max(x, 0), remembering the mask.
#[derive(Clone, Debug, Default)]
pub struct Relu {
    mask: Vec<bool>,
}

impl Relu {
    /// In place.
    pub fn forward(&mut self, x: &mut [f32]) {
        self.mask = x.iter().map(|&v| v > 0.0).collect();
        for v in x.iter_mut() {
            if *v < 0.0 {
                *v = 0.0;
            }
        }
    }

    /// Drop the mask of the last forward pass.
    pub fn clear(&mut self) {
        self.mask = Vec::new();
    }

    /// In place.
    pub fn backward(&mut self, dy: &mut [f32]) {
        for (g, &m) in dy.iter_mut().zip(&self.mask) {
            if !m {
                *g = 0.0;
            }
        }
    }
}

/// Row-wise L2 normalisation `z = x / ‖x‖` (with ε = 1e−12 as PyTorch's `normalize`).
#[derive(Clone, Debug, Default)]
pub struct L2Normalize {
    cache: Option<(Array2<f32>, Vec<f32>)>,
}

impl L2Normalize {
    /// Rows of `x` scaled to unit norm.
    pub fn forward(&mut self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let norms: Vec<f32> = x.rows().into_iter().map(|r| r.dot(&r).sqrt().max(1e-12)).collect();
        let mut z = x.to_owned();
        for (mut row, &n) in z.rows_mut().into_iter().zip(&norms) {
            row /= n;
        }
        self.cache = Some((z.clone(), norms));
        z
    }

    /// Drop what the last forward pass kept for the backward pass.
    pub fn clear(&mut self) {
        self.cache = None;
    }

    /// dx = (dz − z·(z·dz)) / ‖x‖.
    pub fn backward(&mut self, dz: ArrayView2<'_, f32>) -> Array2<f32> {
        let (z, norms) = self.cache.take().expect("forward before backward");
        let mut dx = dz.to_owned();
        for ((mut d, zr), &n) in dx.rows_mut().into_iter().zip(z.rows()).zip(&norms) {
            let proj = zr.dot(&d);
            d.scaled_add(-proj, &zr);
            d /= n;
        }
        dx
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fl::loss::softmax_cross_entropy;
    use crate::prg::insecure_seeded_rng;

    pub(crate) const EPS: f32 = 1e-2;

    pub(crate) fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = insecure_seeded_rng(seed);
        (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    pub(crate) fn close(numeric: f32, analytic: f32, what: &str) {
        let tol = 2e-2 * analytic.abs().max(numeric.abs()).max(0.1);
        assert!(
            (numeric - analytic).abs() <= tol,
            "{what}: numeric {numeric} vs analytic {analytic}"
        );
    }

    /// L = Σ y·r for a fixed random r, so dL/dy = r.
    fn dot(y: &[f32], r: &[f32]) -> f32 {
        y.iter().zip(r).map(|(a, b)| a * b).sum()
    }

    #[test]
    fn conv_gradients_match_finite_differences() {
        let mut rng = insecure_seeded_rng(1);
        let (batch, c, h, w) = (2, 2, 7, 6);
        let mut conv = Conv2d::new(c, 3, 3, &mut rng);
        let x = random(batch * c * h * w, 2);
        let y = conv.forward(&x, batch, h, w);
        let r = random(y.len(), 3);
        let dx = conv.backward(&r);
        let loss = |conv: &mut Conv2d, x: &[f32]| dot(&conv.forward(x, batch, h, w), &r);
        for i in [0, 5, 17, x.len() - 1] {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += EPS;
            xm[i] -= EPS;
            close((loss(&mut conv, &xp) - loss(&mut conv, &xm)) / (2.0 * EPS), dx[i], "conv dx");
        }
        let gw = conv.weight.grad.clone();
        let gb = conv.bias.grad.clone();
        for (o, j) in [(0, 0), (1, 7), (2, 17)] {
            let orig = conv.weight.value[[o, j]];
            conv.weight.value[[o, j]] = orig + EPS;
            let lp = loss(&mut conv, &x);
            conv.weight.value[[o, j]] = orig - EPS;
            let lm = loss(&mut conv, &x);
            conv.weight.value[[o, j]] = orig;
            close((lp - lm) / (2.0 * EPS), gw[[o, j]], "conv dW");
        }
        let orig = conv.bias.value[[1, 0]];
        conv.bias.value[[1, 0]] = orig + EPS;
        let lp = loss(&mut conv, &x);
        conv.bias.value[[1, 0]] = orig - EPS;
        let lm = loss(&mut conv, &x);
        close((lp - lm) / (2.0 * EPS), gb[[1, 0]], "conv db");
    }

    #[test]
    fn linear_relu_pool_normalize_and_loss_gradients() {
        let mut rng = insecure_seeded_rng(4);
        // Linear.
        let mut lin = Linear::new(5, 4, &mut rng);
        let x = Array2::from_shape_vec((3, 5), random(15, 5)).unwrap();
        let r = Array2::from_shape_vec((3, 4), random(12, 6)).unwrap();
        lin.forward(x.view());
        let dx = lin.backward(r.view());
        let loss = |lin: &mut Linear, x: &Array2<f32>| (lin.forward(x.view()) * &r).sum();
        for (i, j) in [(0, 0), (2, 4)] {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[[i, j]] += EPS;
            xm[[i, j]] -= EPS;
            close(
                (loss(&mut lin, &xp) - loss(&mut lin, &xm)) / (2.0 * EPS),
                dx[[i, j]],
                "linear dx",
            );
        }
        let g = lin.weight.grad[[3, 2]];
        lin.weight.value[[3, 2]] += EPS;
        let lp = loss(&mut lin, &x);
        lin.weight.value[[3, 2]] -= 2.0 * EPS;
        let lm = loss(&mut lin, &x);
        close((lp - lm) / (2.0 * EPS), g, "linear dW");

        // Max-pool on values with gaps larger than EPS (no argmax switches).
        let vals: Vec<f32> = (0..32).map(|i| ((i * 37) % 32) as f32 * 0.1).collect();
        let mut pool = MaxPool2::default();
        let y = pool.forward(&vals, 2, 4, 4);
        let rp = random(y.len(), 7);
        let dxp = pool.backward(&rp);
        for i in [0, 9, 31] {
            let (mut a, mut b) = (vals.clone(), vals.clone());
            a[i] += EPS;
            b[i] -= EPS;
            let mut p = MaxPool2::default();
            let num = (dot(&p.forward(&a, 2, 4, 4), &rp) - dot(&p.forward(&b, 2, 4, 4), &rp))
                / (2.0 * EPS);
            close(num, dxp[i], "maxpool dx");
        }

        // ReLU (away from 0).
        let mut relu = Relu::default();
        let mut v = vec![0.5, -0.7, 0.3];
        relu.forward(&mut v);
        let mut g = vec![1.0, 1.0, 2.0];
        relu.backward(&mut g);
        assert_eq!((v, g), (vec![0.5, 0.0, 0.3], vec![1.0, 0.0, 2.0]));

        // L2 normalisation.
        let mut norm = L2Normalize::default();
        let xn = Array2::from_shape_vec((2, 4), random(8, 8)).unwrap();
        let rn = Array2::from_shape_vec((2, 4), random(8, 9)).unwrap();
        norm.forward(xn.view());
        let dxn = norm.backward(rn.view());
        for (i, j) in [(0, 1), (1, 3)] {
            let (mut a, mut b) = (xn.clone(), xn.clone());
            a[[i, j]] += EPS;
            b[[i, j]] -= EPS;
            let mut n = L2Normalize::default();
            let num = ((n.forward(a.view()) * &rn).sum() - (n.forward(b.view()) * &rn).sum())
                / (2.0 * EPS);
            close(num, dxn[[i, j]], "l2norm dx");
        }

        // Softmax cross-entropy.
        let logits = Array2::from_shape_vec((3, 4), random(12, 10)).unwrap();
        let labels = [1u8, 3, 0];
        let (_, dl) = softmax_cross_entropy(logits.view(), &labels);
        for (i, j) in [(0, 1), (2, 2)] {
            let (mut a, mut b) = (logits.clone(), logits.clone());
            a[[i, j]] += EPS;
            b[[i, j]] -= EPS;
            let num = (softmax_cross_entropy(a.view(), &labels).0
                - softmax_cross_entropy(b.view(), &labels).0)
                / (2.0 * EPS);
            close(num, dl[[i, j]], "cross-entropy dlogits");
        }
    }

    #[test]
    fn sgd_follows_pytorch_momentum_and_weight_decay() {
        let mut p = Param::new(Array2::from_elem((1, 1), 1.0));
        p.grad[[0, 0]] = 0.5;
        p.sgd_step(0.1, 0.9, 0.01); // v = 0.5 + 0.01 = 0.51; w = 1 − 0.051
        assert!((p.value[[0, 0]] - 0.949).abs() < 1e-6);
        p.grad[[0, 0]] = 0.5;
        p.sgd_step(0.1, 0.9, 0.01); // v = 0.9·0.51 + 0.5 + 0.00949 = 0.96849
        assert!((p.value[[0, 0]] - (0.949 - 0.096849)).abs() < 1e-6);
        assert_eq!(p.grad[[0, 0]], 0.0);
    }
}
