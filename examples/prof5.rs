use candle_core::{D, Device, Var};
use std::time::Instant;
fn time<F: FnMut()>(name: &str, mut f: F) {
    let mut v = vec![];
    for _ in 0..21 {
        let s = Instant::now();
        f();
        v.push(s.elapsed().as_secs_f64() * 1e3);
    }
    v.sort_by(f64::total_cmp);
    println!("{name:<40} {:.3} ms", v[10]);
}
fn main() {
    let dev = Device::Cpu;
    let x = Var::randn(0f32, 1., (256, 384), &dev).unwrap();
    let w = Var::randn(0f32, 1., (1536, 384), &dev).unwrap();
    let wt = Var::randn(0f32, 1., (384, 1536), &dev).unwrap();
    let b = Var::randn(0f32, 1., 1536, &dev).unwrap();
    time("dense fwd (w.t())", || {
        let _ = x.matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap();
    });
    time("dense fwd+bwd (w.t())", || {
        let y = x.matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap();
        let _ = y.sum_all().unwrap().backward().unwrap();
    });
    time("dense fwd+bwd (w in x out)", || {
        let y = x.matmul(&wt).unwrap().broadcast_add(&b).unwrap();
        let _ = y.sum_all().unwrap().backward().unwrap();
    });
    time("dense fwd+bwd no bias", || {
        let y = x.matmul(&wt).unwrap();
        let _ = y.sum_all().unwrap().backward().unwrap();
    });
    let h = Var::randn(0f32, 1., (256, 1536), &dev).unwrap();
    time("gelu fwd", || {
        let _ = h.gelu_erf().unwrap();
    });
    time("gelu fwd+bwd", || {
        let _ = h.gelu_erf().unwrap().sum_all().unwrap().backward().unwrap();
    });
    time("sum_all fwd+bwd", || {
        let _ = h.sum_all().unwrap().backward().unwrap();
    });
    let s = Var::randn(0f32, 1., (8, 12, 32, 32), &dev).unwrap();
    time("softmax fwd+bwd", || {
        let _ =
            candle_nn::ops::softmax(&s, D::Minus1).unwrap().sum_all().unwrap().backward().unwrap();
    });
    let a = Var::randn(0f32, 1., (8, 32, 384), &dev).unwrap();
    let g = Var::ones(384, candle_core::DType::F32, &dev).unwrap();
    let bb = Var::zeros(384, candle_core::DType::F32, &dev).unwrap();
    time("ln fwd", || {
        let _ = candle_nn::ops::layer_norm_slow(&a, &g, &bb, 1e-12).unwrap();
    });
    time("ln fwd+bwd", || {
        let _ = candle_nn::ops::layer_norm_slow(&a, &g, &bb, 1e-12)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    });
}
