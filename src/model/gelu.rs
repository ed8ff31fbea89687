//! GELU (the erf form, BERT's) as one candle op with a fused backward.
//!
//! GELU(x) = x·Φ(x) = ½x(1 + erf(x/√2)); GELU′(x) = Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π).
//! candle has `gelu_erf`, but its backward is a chain of eight elementwise ops, each a pass over
//! memory with a scalar `erf` or `exp`, over the FFN activations (the widest tensors of a layer).
//! Here forward and backward are one pass each; `prifft bench finetune` measures the step.
//!
//! For f64 (the gradient checks) erf is libm's. For f32, erf(z) = 1 − (a₁t + … + a₅t⁵)e^(−z²)
//! with t = 1/(1 + pz) (Abramowitz & Stegun 7.1.26, |error| ≤ 1.5·10⁻⁷, at the scale of f32's
//! rounding near 1), whose e^(−z²) with z = x/√2 is the e^(−x²/2) of φ: one exponential per
//! element in either direction. `tests/model.rs` checks both against candle's `gelu_erf` and its
//! autograd.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Φ(x) and e^(−x²/2) for f32 (A&S 7.1.26 on |x|/√2, reflected for x < 0).
#[inline]
fn phi_and_gauss_f32(x: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_7, -1.453_152_1, 1.061_405_4];
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + P * z);
    let gauss = (-z * z).exp();
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    // Φ(−|x|) = (1 − erf(|x|/√2))/2, without the cancellation of 1 − (1 − ε).
    let lower = 0.5 * poly * gauss;
    (if x < 0.0 { lower } else { 1.0 - lower }, gauss)
}

#[inline]
fn gelu_f32(x: f32) -> f32 {
    x * phi_and_gauss_f32(x).0
}

#[inline]
fn gelu_grad_f32(x: f32) -> f32 {
    let (phi, gauss) = phi_and_gauss_f32(x);
    phi + x * gauss * FRAC_1_SQRT_2PI as f32
}

#[inline]
fn gelu_f64(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2))
}

#[inline]
fn gelu_grad_f64(x: f64) -> f64 {
    let phi = 0.5 * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2));
    phi + x * (-0.5 * x * x).exp() * FRAC_1_SQRT_2PI
}

fn contiguous<'a, T>(
    v: &'a [T],
    layout: &Layout,
    op: &'static str,
) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => candle_core::bail!("{op}: the input must be contiguous"),
    }
}

fn map<T: Copy>(src: &[T], f: impl Fn(T) -> T) -> Vec<T> {
    src.iter().map(|&x| f(x)).collect()
}

fn map2<T: Copy>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> Vec<T> {
    a.iter().zip(b).map(|(&a, &b)| f(a, b)).collect()
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "gelu-erf-fused"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(map(contiguous(v, l, self.name())?, gelu_f32)),
            CpuStorage::F64(v) => CpuStorage::F64(map(contiguous(v, l, self.name())?, gelu_f64)),
            _ => return Err(candle_core::Error::UnsupportedDTypeForOp(s.dtype(), self.name())),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(arg.contiguous()?.apply_op2_no_bwd(&grad.contiguous()?, &GeluGrad)?))
    }
}

/// (x, g) ↦ g·GELU′(x).
struct GeluGrad;

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "gelu-erf-fused-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!("{}: shapes {:?} and {:?}", self.name(), l1.shape(), l2.shape());
        }
        let name = self.name();
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => {
                CpuStorage::F32(map2(contiguous(x, l1, name)?, contiguous(g, l2, name)?, |x, g| {
                    g * gelu_grad_f32(x)
                }))
            }
            (CpuStorage::F64(x), CpuStorage::F64(g)) => {
                CpuStorage::F64(map2(contiguous(x, l1, name)?, contiguous(g, l2, name)?, |x, g| {
                    g * gelu_grad_f64(x)
                }))
            }
            _ => return Err(candle_core::Error::UnsupportedDTypeForOp(s1.dtype(), name)),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// GELU (erf form) of `x`, differentiable (f32 and f64).
pub fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Gelu)
}
