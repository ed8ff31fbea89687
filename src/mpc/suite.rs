//! The protocol suite measured side by side: every PriFFT protocol ([`nonlinear`](super::nonlinear),
//! [`masked`]) and the CrypTen-style [`baseline`](super::baseline) doing the same
//! operation on the same inputs, forward and backward, between two parties in one process over
//! the in-memory channel (wrapped in a network model when one is given).
//!
//! For each side it measures the online time of the slower party, the dealer's time, bytes and
//! rounds per party, one party's preprocessing bytes per output element (serialised), and the
//! error against f64 — which also guards the numbers: an output off by more than its side's
//! sanity bound fails the run instead of being reported as fast. Both sides use local
//! truncation somewhere (the baseline everywhere, PriFFT in its linear layer), which wraps with
//! probability ≈ |x|/2^64 per element; such outputs (off by more than 2^10) are counted as
//! `wraps` and left out of the error statistics, and more than 1 + n/1024 of them fail the run.
//!
//! `prifft bench protocols` and `benches/protocols.rs` run it.

use std::sync::Arc;
use std::time::Instant;

use super::baseline as bl;
use super::local::{self, LocalChannel};
use super::nonlinear as nl;
use super::nonlinear::{
    dec, dropout, enc, exp, gelu, layernorm, reciprocal, relu, rsqrt, sigmoid, softmax, tanh,
};
use super::{Dealer, MpcError, PartyCtx, Preproc, Share, masked, sharing, trunc};
use crate::backend::Backend;
use crate::net::{Cost, NetModel};
use crate::prg::insecure_seeded_rng;
use crate::ring::RingTensor;

type Ctx = PartyCtx<LocalChannel>;
type Res<T> = std::result::Result<T, MpcError>;

/// Which implementation of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// PriFFT's protocols (hybrid sharing, FSS gates).
    Prifft,
    /// The CrypTen-style baseline (Beaver products, binary comparisons).
    Baseline,
}

/// One side's measurement of one operation.
#[derive(Clone, Debug)]
pub struct Measured {
    /// Output elements.
    pub n: usize,
    /// Online time of the slower party, seconds.
    pub online_s: f64,
    /// Dealer time for this operation's material, seconds.
    pub dealer_s: f64,
    /// Bytes sent per party (the larger of the two).
    pub bytes: u64,
    /// Rounds, the larger of the two parties'.
    pub rounds: u64,
    /// One party's preprocessing bytes per output element (serialised).
    pub preproc_bytes: f64,
    /// Max |result − f64| over the outputs that did not wrap.
    pub max_err: f64,
    /// Mean |result − f64| over the same.
    pub mean_err: f64,
    /// Outputs off by more than 2^10 (a local truncation that wrapped).
    pub wraps: usize,
}

/// One operation measured on both sides under one network setting.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProtocolRow {
    /// The operation (`<op>` forward, `<op>_bwd` backward).
    pub op: String,
    /// Elements of the output.
    pub n: usize,
    /// Network setting: mem, lan or wan.
    pub net: String,
    /// The parties' backend.
    pub backend: String,
    /// PriFFT: online time, the slower party, seconds.
    pub prifft_s: f64,
    /// Baseline: online time, seconds.
    pub baseline_s: f64,
    /// PriFFT: bytes sent per party.
    pub prifft_bytes: u64,
    /// Baseline: bytes sent per party.
    pub baseline_bytes: u64,
    /// PriFFT: rounds.
    pub prifft_rounds: u64,
    /// Baseline: rounds.
    pub baseline_rounds: u64,
    /// PriFFT: one party's key material per element, bytes.
    pub prifft_key_bytes: f64,
    /// Baseline: one party's Beaver/binary preprocessing per element, bytes.
    pub baseline_preproc_bytes: f64,
    /// PriFFT: max |error| against f64.
    pub prifft_max_err: f64,
    /// Baseline: max |error| against f64.
    pub baseline_max_err: f64,
    /// PriFFT: mean |error|.
    pub prifft_mean_err: f64,
    /// Baseline: mean |error|.
    pub baseline_mean_err: f64,
    /// Baseline outputs that wrapped (left out of its error statistics).
    pub baseline_wraps: usize,
    /// PriFFT: dealer time, seconds.
    pub prifft_dealer_s: f64,
    /// Baseline: dealer time, seconds.
    pub baseline_dealer_s: f64,
    /// baseline_s / prifft_s.
    pub time_ratio: f64,
    /// baseline_bytes / prifft_bytes.
    pub bytes_ratio: f64,
}

/// Where the measured part of a case's dealing starts (material dealt before it — a forward
/// that a backward needs — is handed out as a separate chunk).
#[derive(Default)]
pub struct Split {
    prefix: Option<[Preproc; 2]>,
    start: Option<Instant>,
}

impl Split {
    fn here(&mut self, d: &mut Dealer) {
        self.prefix = Some(d.flush());
        self.start = Some(Instant::now());
    }
}

/// Where the measured part of a party's run starts.
#[derive(Default)]
pub struct PartySplit {
    cost: Option<Cost>,
    start: Option<Instant>,
}

impl PartySplit {
    fn here(&mut self, ctx: &mut Ctx) {
        self.cost = Some(ctx.mark());
        self.start = Some(Instant::now());
    }
}

type DealFn = Box<dyn Fn(&mut Dealer, &mut Split) -> Res<()> + Sync>;
type RunFn = Arc<dyn Fn(&mut Ctx, &[Share], &mut PartySplit) -> Res<Share> + Send + Sync>;
type RefFn = Box<dyn Fn(&[Vec<f64>]) -> Vec<f64> + Sync>;
type Gen = fn(&mut Dealer, &[usize]) -> Res<()>;
type Unary = fn(&mut Ctx, &Share) -> Res<Share>;
type Binary = fn(&mut Ctx, &Share, &Share) -> Res<Share>;
/// A smooth function's training forward and backward (dealer, party, backward dealer, backward).
type Trained = (
    fn(&mut Dealer, &[usize]) -> Res<nl::Plan>,
    fn(&mut Ctx, &Share) -> Res<(Share, nl::Saved)>,
    fn(&mut Dealer, &nl::Plan) -> Res<()>,
    fn(&mut Ctx, &nl::Saved, &Share) -> Res<Share>,
);

/// How an output is compared with its f64 reference.
#[derive(Clone, Copy)]
enum Check {
    /// |y − f| ≤ tol.
    Abs(f64),
    /// Dropout: y is 0 or the scaled value; distance to the nearer, ≤ tol.
    ZeroOr(f64),
}

/// One side of a case: its dealing, its party function and its sanity bound.
struct Impl {
    deal: DealFn,
    run: RunFn,
    check: Check,
}

/// One operation on both sides.
pub struct Case {
    op: String,
    inputs: Vec<RingTensor>,
    reference: RefFn,
    prifft: Impl,
    baseline: Impl,
}

impl Case {
    /// The operation's name.
    pub fn op(&self) -> &str {
        &self.op
    }
}

/// `n` public test inputs, uniform in [lo, hi), on the fixed-point grid.
fn uniform(shape: &[usize], lo: f64, hi: f64, seed: u64) -> RingTensor {
    let mut rng = insecure_seeded_rng(seed);
    let len = shape.iter().product();
    let v = (0..len).map(|_| enc(rand::Rng::random_range(&mut rng, lo..hi))).collect();
    RingTensor::from_vec(shape, v).expect("shape matches")
}

/// A forward y = f(x) dealt by `gen` on `shape`.
fn forward(shape: Vec<usize>, deal: Gen, run: Unary, tol: f64) -> Impl {
    Impl {
        deal: Box::new(move |d, s| {
            s.here(d);
            deal(d, &shape)
        }),
        run: Arc::new(move |ctx, x, s| {
            s.here(ctx);
            run(ctx, &x[0])
        }),
        check: Check::Abs(tol),
    }
}

/// A backward from the forward's output: the forward (gen_f, run_f) runs first, unmeasured;
/// then `run_b(y, dY)`.
fn backward(
    shape: Vec<usize>,
    (gen_f, run_f): (Gen, Unary),
    (gen_b, run_b): (Gen, Binary),
    tol: f64,
) -> Impl {
    Impl {
        deal: Box::new(move |d, s| {
            gen_f(d, &shape)?;
            s.here(d);
            gen_b(d, &shape)
        }),
        run: Arc::new(move |ctx, x, s| {
            let y = run_f(ctx, &x[0])?;
            s.here(ctx);
            run_b(ctx, &y, &x[1])
        }),
        check: Check::Abs(tol),
    }
}

/// A backward from a training forward's saved state: the forward runs first, unmeasured.
fn trained_backward(shape: Vec<usize>, (gen_f, run_f, gen_b, run_b): Trained, tol: f64) -> Impl {
    Impl {
        deal: Box::new(move |d, s| {
            let plan = gen_f(d, &shape)?;
            s.here(d);
            gen_b(d, &plan)
        }),
        run: Arc::new(move |ctx, x, s| {
            let (_, saved) = run_f(ctx, &x[0])?;
            s.here(ctx);
            run_b(ctx, &saved, &x[1])
        }),
        check: Check::Abs(tol),
    }
}

/// A forward/backward pair of one smooth elementwise function on both sides.
struct Smooth {
    name: &'static str,
    range: (f64, f64),
    f: fn(f64) -> f64,
    df: fn(f64) -> f64,
    prifft: (Gen, Unary),
    prifft_train: Trained,
    baseline: (Gen, Unary, Gen, Binary),
    /// Sanity bounds: (PriFFT forward, PriFFT backward, baseline forward, baseline backward).
    tol: [f64; 4],
}

fn sigmoid_f64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn smooth_ops() -> Vec<Smooth> {
    let p = |k: i32| 2f64.powi(k);
    vec![
        Smooth {
            name: "exp",
            range: (-12.0, 0.0),
            f: f64::exp,
            df: f64::exp,
            prifft: (exp::gen_forward, exp::forward),
            prifft_train: (
                exp::gen_forward_train,
                exp::forward_train,
                exp::gen_backward,
                exp::backward,
            ),
            baseline: (bl::gen_exp, bl::exp, bl::gen_exp_backward, bl::exp_backward),
            tol: [p(-11), p(-9), p(-6), p(-6)],
        },
        Smooth {
            name: "reciprocal",
            range: (0.25, 32.0),
            f: |x| 1.0 / x,
            df: |x| -1.0 / (x * x),
            prifft: (reciprocal::gen_forward, reciprocal::forward),
            prifft_train: (
                reciprocal::gen_forward_train,
                reciprocal::forward_train,
                reciprocal::gen_backward,
                reciprocal::backward,
            ),
            baseline: (
                bl::gen_reciprocal,
                bl::reciprocal,
                bl::gen_square_backward,
                bl::reciprocal_backward,
            ),
            tol: [p(-7), p(-4), p(-5), p(-2)],
        },
        Smooth {
            name: "rsqrt",
            range: (0.1, 100.0),
            f: |x| 1.0 / x.sqrt(),
            df: |x| -0.5 * x.powf(-1.5),
            prifft: (rsqrt::gen_forward, rsqrt::forward),
            prifft_train: (
                rsqrt::gen_forward_train,
                rsqrt::forward_train,
                rsqrt::gen_backward,
                rsqrt::backward,
            ),
            baseline: (bl::gen_rsqrt, bl::rsqrt, bl::gen_rsqrt_backward, bl::rsqrt_backward),
            tol: [p(-7), p(-4), p(-4), p(-2)],
        },
        Smooth {
            name: "sigmoid",
            range: (-8.0, 8.0),
            f: sigmoid_f64,
            df: |x| sigmoid_f64(x) * (1.0 - sigmoid_f64(x)),
            prifft: (sigmoid::gen_forward, sigmoid::forward),
            prifft_train: (
                sigmoid::gen_forward_train,
                sigmoid::forward_train,
                sigmoid::gen_backward,
                sigmoid::backward,
            ),
            baseline: (
                bl::gen_sigmoid,
                bl::sigmoid,
                bl::gen_sigmoid_backward,
                bl::sigmoid_backward,
            ),
            tol: [p(-9), p(-9), p(-6), p(-6)],
        },
        Smooth {
            name: "tanh",
            range: (-4.0, 4.0),
            f: f64::tanh,
            df: |x| 1.0 - x.tanh().powi(2),
            prifft: (tanh::gen_forward, tanh::forward),
            prifft_train: (
                tanh::gen_forward_train,
                tanh::forward_train,
                tanh::gen_backward,
                tanh::backward,
            ),
            baseline: (bl::gen_tanh, bl::tanh, bl::gen_square_backward, bl::tanh_backward),
            tol: [p(-9), p(-9), p(-5), p(-5)],
        },
    ]
}

/// The operations at about `n` output elements.
pub fn cases(n: usize) -> Vec<Case> {
    let mut v = Vec::new();
    let sh = vec![n];
    for s in smooth_ops() {
        let x = uniform(&sh, s.range.0, s.range.1, 1);
        let (f, df) = (s.f, s.df);
        let (pg, pr) = s.prifft;
        let (bg, br, bgb, brb) = s.baseline;
        v.push(Case {
            op: s.name.into(),
            inputs: vec![x.clone()],
            reference: Box::new(move |x| x[0].iter().map(|&x| f(x)).collect()),
            prifft: forward(sh.clone(), pg, pr, s.tol[0]),
            baseline: forward(sh.clone(), bg, br, s.tol[2]),
        });
        v.push(Case {
            op: format!("{}_bwd", s.name),
            inputs: vec![x, uniform(&sh, -1.0, 1.0, 2)],
            reference: Box::new(move |x| {
                x[0].iter().zip(&x[1]).map(|(&x, &g)| df(x) * g).collect()
            }),
            prifft: trained_backward(sh.clone(), s.prifft_train, s.tol[1]),
            baseline: backward(sh.clone(), (bg, br), (bgb, brb), s.tol[3]),
        });
    }
    let x = uniform(&sh, -6.0, 6.0, 3);
    let dy = uniform(&sh, -1.0, 1.0, 4);
    gated(&mut v, &sh, &x, &dy);
    rowwise(&mut v, n);
    linear(&mut v, n);
    v
}

/// GELU, ReLU and dropout: their backward keeps state from the forward.
fn gated(v: &mut Vec<Case>, sh: &[usize], x: &RingTensor, dy: &RingTensor) {
    let sh = sh.to_vec();
    let (s1, s2, s3, s4, s5, s6) =
        (sh.clone(), sh.clone(), sh.clone(), sh.clone(), sh.clone(), sh.clone());
    let (s7, s8, s9, s10, s11, s12) =
        (sh.clone(), sh.clone(), sh.clone(), sh.clone(), sh.clone(), sh.clone());
    let p = |k: i32| 2f64.powi(k);
    v.push(Case {
        op: "gelu".into(),
        inputs: vec![x.clone()],
        reference: Box::new(|x| x[0].iter().map(|&x| gelu::gelu_f64(x)).collect()),
        prifft: Impl {
            deal: Box::new(move |d, s| {
                s.here(d);
                gelu::gen_forward(d, &s1).map(drop)
            }),
            run: Arc::new(|ctx, x, s| {
                s.here(ctx);
                Ok(gelu::forward(ctx, &x[0])?.0)
            }),
            check: Check::Abs(p(-8)),
        },
        baseline: Impl {
            deal: Box::new(move |d, s| {
                s.here(d);
                bl::gen_gelu(d, &s2)
            }),
            run: Arc::new(|ctx, x, s| {
                s.here(ctx);
                Ok(bl::gelu(ctx, &x[0])?.0)
            }),
            check: Check::Abs(p(-4)),
        },
    });
    v.push(Case {
        op: "gelu_bwd".into(),
        inputs: vec![x.clone(), dy.clone()],
        reference: Box::new(|x| {
            x[0].iter().zip(&x[1]).map(|(&x, &g)| gelu::gelu_grad_f64(x) * g).collect()
        }),
        prifft: Impl {
            deal: Box::new(move |d, s| {
                let plan = gelu::gen_forward(d, &s3)?;
                s.here(d);
                gelu::gen_backward(d, &plan)
            }),
            run: Arc::new(|ctx, x, s| {
                let (_, saved) = gelu::forward(ctx, &x[0])?;
                s.here(ctx);
                gelu::backward(ctx, &saved, &x[1])
            }),
            check: Check::Abs(p(-8)),
        },
        baseline: Impl {
            deal: Box::new(move |d, s| {
                bl::gen_gelu(d, &s4)?;
                s.here(d);
                bl::gen_gelu_backward(d, &s4)
            }),
            run: Arc::new(|ctx, x, s| {
                let (_, saved) = bl::gelu(ctx, &x[0])?;
                s.here(ctx);
                bl::gelu_backward(ctx, &saved, &x[1])
            }),
            check: Check::Abs(p(-3)),
        },
    });
    v.push(Case {
        op: "relu".into(),
        inputs: vec![x.clone()],
        reference: Box::new(|x| x[0].iter().map(|&x| x.max(0.0)).collect()),
        prifft: Impl {
            deal: Box::new(move |d, s| {
                s.here(d);
                relu::gen_forward(d, &s5).map(drop)
            }),
            run: Arc::new(|ctx, x, s| {
                s.here(ctx);
                Ok(relu::forward(ctx, &x[0])?.0)
            }),
            check: Check::Abs(0.0),
        },
        baseline: Impl {
            deal: Box::new(move |d, s| {
                s.here(d);
                bl::gen_relu(d, &s6)
            }),
            run: Arc::new(|ctx, x, s| {
                s.here(ctx);
                Ok(bl::relu(ctx, &x[0])?.0)
            }),
            check: Check::Abs(0.0),
        },
    });
    let relu_grad = |x: &[Vec<f64>]| -> Vec<f64> {
        x[0].iter().zip(&x[1]).map(|(&x, &g)| if x >= 0.0 { g } else { 0.0 }).collect()
    };
    v.push(Case {
        op: "relu_bwd".into(),
        inputs: vec![x.clone(), dy.clone()],
        reference: Box::new(relu_grad),
        prifft: Impl {
            deal: Box::new(move |d, s| {
                let plan = relu::gen_forward(d, &s7)?;
                s.here(d);
                relu::gen_backward(d, &plan)
            }),
            run: Arc::new(|ctx, x, s| {
                let (_, saved) = relu::forward(ctx, &x[0])?;
                s.here(ctx);
                relu::backward(ctx, &saved, &x[1])
            }),
            check: Check::Abs(0.0),
        },
        baseline: Impl {
            deal: Box::new(move |d, s| {
                bl::gen_relu(d, &s8)?;
                s.here(d);
                bl::gen_by_bit_backward(d, &s8)
            }),
            run: Arc::new(|ctx, x, s| {
                let (_, bit) = bl::relu(ctx, &x[0])?;
                s.here(ctx);
                bl::by_bit_backward(ctx, &bit, &x[1])
            }),
            // [x > 0] against the reference's [x ≥ 0]: x = 0 has probability 2^−20 per element.
            check: Check::ZeroOr(0.0),
        },
    });
    const P: f64 = 0.1;
    v.push(Case {
        op: "dropout".into(),
        inputs: vec![x.clone()],
        reference: Box::new(|x| x[0].iter().map(|&x| x / (1.0 - P)).collect()),
        prifft: Impl {
            deal: Box::new(move |d, s| {
                s.here(d);
                dropout::gen_forward(d, &s9, P).map(drop)
            }),
            run: Arc::new(|ctx, x, s| {
                s.here(ctx);
                Ok(dropout::forward(ctx, &x[0], P)?.0)
            }),
            check: Check::ZeroOr(p(-12)),
        },
        baseline: Impl {
            deal: Box::new(move |d, s| {
                s.here(d);
                bl::gen_dropout(d, &s10)
            }),
            run: Arc::new(|ctx, x, s| {
                s.here(ctx);
                Ok(bl::dropout(ctx, &x[0], P)?.0)
            }),
            check: Check::ZeroOr(p(-12)),
        },
    });
    v.push(Case {
        op: "dropout_bwd".into(),
        inputs: vec![x.clone(), dy.clone()],
        reference: Box::new(|x| x[1].iter().map(|&g| g / (1.0 - P)).collect()),
        prifft: Impl {
            deal: Box::new(move |d, s| {
                let plan = dropout::gen_forward(d, &s11, P)?;
                s.here(d);
                dropout::gen_backward(d, &plan)
            }),
            run: Arc::new(|ctx, x, s| {
                let (_, saved) = dropout::forward(ctx, &x[0], P)?;
                s.here(ctx);
                dropout::backward(ctx, &saved, &x[1])
            }),
            check: Check::ZeroOr(p(-12)),
        },
        baseline: Impl {
            deal: Box::new(move |d, s| {
                bl::gen_dropout(d, &s12)?;
                s.here(d);
                bl::gen_by_bit_backward(d, &s12)
            }),
            run: Arc::new(|ctx, x, s| {
                let (_, keep) = bl::dropout(ctx, &x[0], P)?;
                s.here(ctx);
                bl::dropout_backward(ctx, &keep, &x[1], P)
            }),
            check: Check::ZeroOr(p(-12)),
        },
    });
}

/// Row softmax in f64 (rows of `cols`): the reference the suite checks against.
pub fn softmax_f64(x: &[f64], cols: usize) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|r| {
            let m = r.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = r.iter().map(|v| (v - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(move |v| v / s)
        })
        .collect()
}

/// Softmax over rows of 32 and layer norm over rows of 64.
fn rowwise(v: &mut Vec<Case>, n: usize) {
    const L: usize = 32;
    let p = |k: i32| 2f64.powi(k);
    let rs = vec![(n / L).max(1), L];
    let x = uniform(&rs, -8.0, 8.0, 5);
    let dy = uniform(&rs, -1.0, 1.0, 6);
    let (r1, r2, r3, r4) = (rs.clone(), rs.clone(), rs.clone(), rs.clone());
    v.push(Case {
        op: "softmax".into(),
        inputs: vec![x.clone()],
        reference: Box::new(|x| softmax_f64(&x[0], L)),
        prifft: Impl {
            deal: Box::new(move |d, s| {
                s.here(d);
                softmax::gen_forward(d, &r1)
            }),
            run: Arc::new(|ctx, x, s| {
                s.here(ctx);
                softmax::forward(ctx, &x[0], None)
            }),
            check: Check::Abs(p(-9)),
        },
        baseline: Impl {
            deal: Box::new(move |d, s| {
                s.here(d);
                bl::gen_softmax(d, &r2)
            }),
            run: Arc::new(|ctx, x, s| {
                s.here(ctx);
                bl::softmax(ctx, &x[0], None)
            }),
            check: Check::Abs(p(-7)),
        },
    });
    v.push(Case {
        op: "softmax_bwd".into(),
        inputs: vec![x, dy],
        reference: Box::new(|x| {
            let y = softmax_f64(&x[0], L);
            y.chunks(L)
                .zip(x[1].chunks(L))
                .flat_map(|(y, g)| {
                    let dot: f64 = y.iter().zip(g).map(|(a, b)| a * b).sum();
                    y.iter().zip(g).map(move |(y, g)| y * (g - dot)).collect::<Vec<_>>()
                })
                .collect()
        }),
        prifft: Impl {
            deal: Box::new(move |d, s| {
                softmax::gen_forward(d, &r3)?;
                s.here(d);
                softmax::gen_backward(d, &r3)
            }),
            run: Arc::new(|ctx, x, s| {
                let y = softmax::forward(ctx, &x[0], None)?;
                s.here(ctx);
                softmax::backward(ctx, &y, &x[1])
            }),
            check: Check::Abs(p(-8)),
        },
        baseline: Impl {
            deal: Box::new(move |d, s| {
                bl::gen_softmax(d, &r4)?;
                s.here(d);
                bl::gen_softmax_backward(d, &r4)
            }),
            run: Arc::new(|ctx, x, s| {
                let y = bl::softmax(ctx, &x[0], None)?;
                s.here(ctx);
                bl::softmax_backward(ctx, &y, &x[1])
            }),
            check: Check::Abs(p(-7)),
        },
    });

    // Layer norm over rows of 64, γ near 1 and β near 0.
    const H: usize = 64;
    const EPS: f64 = 1e-5;
    let ls = vec![(n / H).max(1), H];
    let x = uniform(&ls, -4.0, 4.0, 7);
    let gamma = uniform(&[H], 0.5, 1.5, 8);
    let beta = uniform(&[H], -0.5, 0.5, 9);
    let dy = uniform(&ls, -1.0, 1.0, 10);
    let (l1, l2, l3, l4) = (ls.clone(), ls.clone(), ls.clone(), ls.clone());
    v.push(Case {
        op: "layernorm".into(),
        inputs: vec![x.clone(), gamma.clone(), beta.clone()],
        reference: Box::new(|x| {
            let (nrm, _) = layernorm_f64(&x[0], H, EPS);
            nrm.iter().enumerate().map(|(i, v)| v * x[1][i % H] + x[2][i % H]).collect()
        }),
        prifft: Impl {
            deal: Box::new(move |d, s| {
                s.here(d);
                layernorm::gen_forward(d, &l1, EPS).map(drop)
            }),
            run: Arc::new(|ctx, x, s| {
                s.here(ctx);
                Ok(layernorm::forward(ctx, &x[0], &x[1], &x[2], EPS)?.0)
            }),
            check: Check::Abs(p(-6)),
        },
        baseline: Impl {
            deal: Box::new(move |d, s| {
                s.here(d);
                bl::gen_layernorm(d, &l2)
            }),
            run: Arc::new(|ctx, x, s| {
                s.here(ctx);
                Ok(bl::layernorm(ctx, &x[0], &x[1], &x[2], EPS)?.0)
            }),
            check: Check::Abs(p(-3)),
        },
    });
    v.push(Case {
        op: "layernorm_bwd".into(),
        inputs: vec![x, gamma, beta, dy],
        reference: Box::new(|x| {
            let (nrm, rho) = layernorm_f64(&x[0], H, EPS);
            let mut out = Vec::with_capacity(nrm.len());
            for (r, (nr, dr)) in nrm.chunks(H).zip(x[3].chunks(H)).enumerate() {
                let g: Vec<f64> = dr.iter().enumerate().map(|(i, d)| d * x[1][i]).collect();
                let mg = g.iter().sum::<f64>() / H as f64;
                let mgn = g.iter().zip(nr).map(|(a, b)| a * b).sum::<f64>() / H as f64;
                out.extend(g.iter().zip(nr).map(|(g, nv)| rho[r] * (g - mg - nv * mgn)));
            }
            out
        }),
        prifft: Impl {
            deal: Box::new(move |d, s| {
                let plan = layernorm::gen_forward(d, &l3, EPS)?;
                s.here(d);
                layernorm::gen_backward(d, &plan)
            }),
            run: Arc::new(|ctx, x, s| {
                let (_, saved) = layernorm::forward(ctx, &x[0], &x[1], &x[2], EPS)?;
                s.here(ctx);
                Ok(layernorm::backward(ctx, &saved, &x[3])?.0)
            }),
            check: Check::Abs(p(-4)),
        },
        baseline: Impl {
            deal: Box::new(move |d, s| {
                bl::gen_layernorm(d, &l4)?;
                s.here(d);
                bl::gen_layernorm_backward(d, &l4)
            }),
            run: Arc::new(|ctx, x, s| {
                let (_, saved) = bl::layernorm(ctx, &x[0], &x[1], &x[2], EPS)?;
                s.here(ctx);
                Ok(bl::layernorm_backward(ctx, &saved, &x[3])?.0)
            }),
            check: Check::Abs(p(-2)),
        },
    });
}

/// Layer norm of the f64 reference: (normalised rows, 1/σ per row).
fn layernorm_f64(x: &[f64], h: usize, eps: f64) -> (Vec<f64>, Vec<f64>) {
    let mut out = Vec::with_capacity(x.len());
    let mut rho = Vec::new();
    for r in x.chunks(h) {
        let mu = r.iter().sum::<f64>() / r.len() as f64;
        let var = r.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / r.len() as f64;
        let p = 1.0 / (var + eps).sqrt();
        rho.push(p);
        out.extend(r.iter().map(|v| (v - mu) * p));
    }
    (out, rho)
}

/// X (m×k) · B, with B given as k×n or (transposed) as n×k.
fn product_f64(a: &[f64], b: &[f64], (m, k, n): (usize, usize, usize), bt: bool) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] =
                (0..k).map(|t| a[i * k + t] * if bt { b[j * k + t] } else { b[t * n + j] }).sum();
        }
    }
    out
}

/// A linear layer X (rows × 64) · W (64 × 64) and its backward dX = dY·Wᵀ. PriFFT: masked
/// products, W opened once and reused by the backward; baseline: Beaver matrix triples, W
/// opened again.
fn linear(v: &mut Vec<Case>, n: usize) {
    const K: usize = 64;
    let rows = (n / K).max(1);
    let x = uniform(&[rows, K], -1.0, 1.0, 11);
    let w = uniform(&[K, K], -0.5, 0.5, 12);
    let dy = uniform(&[rows, K], -1.0, 1.0, 13);
    let tol = 2f64.powi(-10);
    v.push(Case {
        op: "matmul".into(),
        inputs: vec![x.clone(), w.clone()],
        reference: Box::new(move |x| product_f64(&x[0], &x[1], (rows, K, K), false)),
        prifft: Impl {
            deal: Box::new(move |d, s| {
                s.here(d);
                let rx = masked::gen_mask(d, &[rows, K])?;
                let rw = masked::gen_mask(d, &[K, K])?;
                masked::gen_matmul(d, &rx, &rw)
            }),
            run: Arc::new(|ctx, x, s| {
                s.here(ctx);
                let m = masked::mask_many(ctx, &[&x[0], &x[1]])?;
                let y = masked::matmul(ctx, &m[0], &m[1])?;
                Ok(trunc::trunc_local(ctx.id, &y, 16))
            }),
            check: Check::Abs(tol),
        },
        baseline: Impl {
            deal: Box::new(move |d, s| {
                s.here(d);
                bl::gen_matmul(d, rows, K, K)
            }),
            run: Arc::new(|ctx, x, s| {
                s.here(ctx);
                bl::matmul(ctx, &x[0], &x[1])
            }),
            check: Check::Abs(tol),
        },
    });
    v.push(Case {
        op: "matmul_bwd".into(),
        inputs: vec![x, w, dy],
        reference: Box::new(move |x| product_f64(&x[2], &x[1], (rows, K, K), true)),
        prifft: Impl {
            deal: Box::new(move |d, s| {
                let rx = masked::gen_mask(d, &[rows, K])?;
                let rw = masked::gen_mask(d, &[K, K])?;
                masked::gen_matmul(d, &rx, &rw)?;
                s.here(d);
                let rdy = masked::gen_mask(d, &[rows, K])?;
                masked::gen_matmul(d, &rdy, &rw.t()?)
            }),
            run: Arc::new(|ctx, x, s| {
                let m = masked::mask_many(ctx, &[&x[0], &x[1]])?;
                let _y = masked::matmul(ctx, &m[0], &m[1])?;
                s.here(ctx);
                let dyh = masked::mask(ctx, &x[2])?;
                let dx = masked::matmul(ctx, &dyh, &m[1].t()?)?;
                Ok(trunc::trunc_local(ctx.id, &dx, 16))
            }),
            check: Check::Abs(tol),
        },
        baseline: Impl {
            deal: Box::new(move |d, s| {
                bl::gen_matmul(d, rows, K, K)?;
                s.here(d);
                bl::gen_matmul(d, rows, K, K)
            }),
            run: Arc::new(|ctx, x, s| {
                let _y = bl::matmul(ctx, &x[0], &x[1])?;
                s.here(ctx);
                bl::matmul(ctx, &x[2], &bl::transpose(&x[1])?)
            }),
            check: Check::Abs(tol),
        },
    });
}

/// The operation names, in the order they run.
pub fn op_names() -> Vec<String> {
    cases(64).into_iter().map(|c| c.op).collect()
}

/// Run the operations (those in `ops`, or all) at about `n` elements on `backend` under each
/// network setting, both sides.
///
/// # Errors
/// A protocol error, or an output off by more than its sanity bound.
pub fn run(
    n: usize,
    ops: Option<&[String]>,
    backend: Arc<dyn Backend>,
    nets: &[(String, Option<NetModel>)],
    mut progress: impl FnMut(&ProtocolRow),
) -> Res<Vec<ProtocolRow>> {
    let mut rows = Vec::new();
    for case in cases(n) {
        if ops.is_some_and(|ops| !ops.contains(&case.op)) {
            continue;
        }
        for (net, model) in nets {
            let p = measure(&case, Side::Prifft, backend.clone(), *model)?;
            let b = measure(&case, Side::Baseline, backend.clone(), *model)?;
            let row = ProtocolRow {
                op: case.op.clone(),
                n: p.n,
                net: net.clone(),
                backend: backend.name(),
                prifft_s: p.online_s,
                baseline_s: b.online_s,
                prifft_bytes: p.bytes,
                baseline_bytes: b.bytes,
                prifft_rounds: p.rounds,
                baseline_rounds: b.rounds,
                prifft_key_bytes: p.preproc_bytes,
                baseline_preproc_bytes: b.preproc_bytes,
                prifft_max_err: p.max_err,
                baseline_max_err: b.max_err,
                prifft_mean_err: p.mean_err,
                baseline_mean_err: b.mean_err,
                baseline_wraps: b.wraps,
                prifft_dealer_s: p.dealer_s,
                baseline_dealer_s: b.dealer_s,
                time_ratio: b.online_s / p.online_s,
                bytes_ratio: b.bytes as f64 / p.bytes.max(1) as f64,
            };
            progress(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Deal, run and check one side of one case (fresh material each call).
///
/// # Errors
/// A protocol error, or an output off by more than its sanity bound.
pub fn measure(
    case: &Case,
    side: Side,
    backend: Arc<dyn Backend>,
    model: Option<NetModel>,
) -> Res<Measured> {
    let imp = match side {
        Side::Prifft => &case.prifft,
        Side::Baseline => &case.baseline,
    };
    let unsplit =
        || MpcError::Param { op: "protocol suite", what: "a case without a split".into() };
    let mut dealer = Dealer::new();
    let mut split = Split::default();
    (imp.deal)(&mut dealer, &mut split)?;
    let dealer_s = split.start.ok_or_else(unsplit)?.elapsed().as_secs_f64();
    let [m0, m1] = dealer.flush();
    let [mut p0, mut p1] = split.prefix.take().ok_or_else(unsplit)?;
    let preproc = m0.wire_bytes();
    p0.absorb(m0)?;
    p1.absorb(m1)?;

    // The inputs are public test data: a fixed seed shares them.
    let mut rng = insecure_seeded_rng(99);
    let (mut s0, mut s1) = (Vec::new(), Vec::new());
    for t in &case.inputs {
        let [a, b] = sharing::share_secret(t, &mut rng);
        s0.push(a);
        s1.push(b);
    }
    let party = |shares: Vec<Share>| {
        let run = imp.run.clone();
        move |ctx: &mut Ctx| -> Res<(Share, Cost, f64)> {
            let mut ps = PartySplit::default();
            let out = run(ctx, &shares, &mut ps)?;
            let secs = ps.start.ok_or_else(unsplit)?.elapsed().as_secs_f64();
            Ok((out, ctx.mark() - ps.cost.ok_or_else(unsplit)?, secs))
        }
    };
    let run = local::run_parties(model, backend, [p0, p1], party(s0), party(s1))?;
    let ((y0, c0, t0), (y1, c1, t1)) = (run.out0, run.out1);
    let y = sharing::reconstruct(&y0, &y1)?;
    let inputs: Vec<Vec<f64>> =
        case.inputs.iter().map(|t| t.as_slice().iter().map(|&v| dec(v)).collect()).collect();
    let want = (case.reference)(&inputs);
    let got: Vec<f64> = y.as_slice().iter().map(|&v| dec(v)).collect();
    let (errs, tol): (Vec<f64>, f64) = match imp.check {
        Check::Abs(tol) => (got.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect(), tol),
        Check::ZeroOr(tol) => {
            (got.iter().zip(&want).map(|(a, b)| a.abs().min((a - b).abs())).collect(), tol)
        }
    };
    const WRAP: f64 = 1024.0;
    let wraps = errs.iter().filter(|&&e| e > WRAP).count();
    let kept: Vec<f64> = errs.iter().copied().filter(|&e| e <= WRAP).collect();
    let max_err = kept.iter().cloned().fold(0.0, f64::max);
    let mean_err = kept.iter().sum::<f64>() / kept.len().max(1) as f64;
    let ulp = 2f64.powi(-16);
    let side_name = match side {
        Side::Prifft => "PriFFT",
        Side::Baseline => "the baseline",
    };
    if max_err > tol + ulp || wraps > 1 + got.len() / 1024 {
        return Err(MpcError::Param {
            op: "protocol suite",
            what: format!(
                "{side_name}'s {} is off by {max_err:.3e} against f64 (sanity bound {tol:.3e}; {wraps} wrapped output(s)): a wrong result, not a measurement",
                case.op
            ),
        });
    }
    Ok(Measured {
        n: got.len(),
        online_s: t0.max(t1),
        dealer_s,
        bytes: c0.bytes_sent.max(c1.bytes_sent),
        rounds: c0.rounds.max(c1.rounds),
        preproc_bytes: preproc as f64 / got.len() as f64,
        max_err,
        mean_err,
        wraps,
    })
}
