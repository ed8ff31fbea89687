//! `prifft bench protocols`: each secure protocol, forward and backward, between two parties in
//! one process over the in-memory channel (wrapped in the network model): online time of the
//! slower party, dealer time, bytes and rounds per party, key bytes per element, and the error
//! against f64 — which also guards the numbers: an output off by more than a loose sanity bound
//! fails the bench instead of being reported as fast (the tight bounds are `tests/nonlinear.rs`').

use std::sync::Arc;
use std::time::Instant;

use prifft::backend::Backend;
use prifft::mpc::local::{self, LocalChannel};
use prifft::mpc::nonlinear::{
    dec, dropout, enc, exp, gelu, layernorm, reciprocal, relu, rsqrt, sigmoid, softmax, tanh,
};
use prifft::mpc::{Dealer, MpcError, PartyCtx, Preproc, Share, masked, sharing, trunc};
use prifft::net::{Cost, NetModel};
use prifft::prg::insecure_seeded_rng;
use prifft::ring::RingTensor;

type Ctx = PartyCtx<LocalChannel>;
type Res<T> = std::result::Result<T, MpcError>;

/// One measured protocol run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProtocolRow {
    /// The protocol (`<op>` forward, `<op>_bwd` backward).
    pub op: String,
    /// Elements of the output.
    pub n: usize,
    /// Network setting: mem, lan or wan.
    pub net: String,
    /// The parties' backend.
    pub backend: String,
    /// Online time, the slower party, seconds.
    pub prifft_s: f64,
    /// Dealer time for this protocol's material, seconds.
    pub prifft_dealer_s: f64,
    /// Bytes sent per party (the larger of the two).
    pub prifft_bytes: u64,
    /// Rounds (send phases), the larger of the two parties'.
    pub prifft_rounds: u64,
    /// One party's preprocessing bytes per output element (serialised).
    pub prifft_key_bytes: f64,
    /// Max |secure − f64| over the outputs.
    pub prifft_max_err: f64,
    /// Mean |secure − f64|.
    pub prifft_mean_err: f64,
}

/// Where the measured part of a case's dealing starts (material dealt before it — a forward
/// that a backward needs — is handed out as a separate chunk).
#[derive(Default)]
struct Split {
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
struct PartySplit {
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

/// How an output is compared with its f64 reference.
#[derive(Clone, Copy)]
enum Check {
    /// |y − f| ≤ tol.
    Abs(f64),
    /// Dropout: y is 0 or the scaled value; distance to the nearer, ≤ tol.
    ZeroOr(f64),
}

struct Case {
    op: String,
    inputs: Vec<RingTensor>,
    deal: DealFn,
    run: RunFn,
    reference: RefFn,
    check: Check,
}

/// `n` public test inputs, uniform in [lo, hi), on the fixed-point grid.
fn uniform(shape: &[usize], lo: f64, hi: f64, seed: u64) -> RingTensor {
    let mut rng = insecure_seeded_rng(seed);
    let len = shape.iter().product();
    let v = (0..len).map(|_| enc(rand::Rng::random_range(&mut rng, lo..hi))).collect();
    RingTensor::from_vec(shape, v).expect("shape matches")
}

/// The protocols at about `n` output elements.
fn cases(n: usize) -> Vec<Case> {
    let mut v = Vec::new();
    let sh = [n];
    macro_rules! smooth {
        ($m:ident, $name:literal, $lo:expr, $hi:expr, $f:expr, $df:expr, $tol:expr, $btol:expr) => {{
            let x = uniform(&sh, $lo, $hi, 1);
            v.push(Case {
                op: $name.into(),
                inputs: vec![x.clone()],
                deal: Box::new(move |d, s| {
                    s.here(d);
                    $m::gen_forward(d, &sh)
                }),
                run: Arc::new(|ctx, x, s| {
                    s.here(ctx);
                    $m::forward(ctx, &x[0])
                }),
                reference: Box::new(move |x| x[0].iter().map(|&x| $f(x)).collect()),
                check: Check::Abs($tol),
            });
            v.push(Case {
                op: concat!($name, "_bwd").into(),
                inputs: vec![x, uniform(&sh, -1.0, 1.0, 2)],
                deal: Box::new(move |d, s| {
                    $m::gen_forward(d, &sh)?;
                    s.here(d);
                    $m::gen_backward(d, &sh)
                }),
                run: Arc::new(|ctx, x, s| {
                    let y = $m::forward(ctx, &x[0])?;
                    s.here(ctx);
                    $m::backward(ctx, &y, &x[1])
                }),
                reference: Box::new(move |x| {
                    x[0].iter().zip(&x[1]).map(|(&x, &g)| $df(x) * g).collect()
                }),
                check: Check::Abs($btol),
            });
        }};
    }
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    smooth!(exp, "exp", -12.0, 0.0, f64::exp, f64::exp, 2f64.powi(-11), 2f64.powi(-9));
    smooth!(
        reciprocal,
        "reciprocal",
        0.25,
        32.0,
        |x: f64| 1.0 / x,
        |x: f64| -1.0 / (x * x),
        2f64.powi(-7),
        2f64.powi(-4)
    );
    smooth!(
        rsqrt,
        "rsqrt",
        1.0 / 16.0,
        256.0,
        |x: f64| 1.0 / x.sqrt(),
        |x: f64| -0.5 * x.powf(-1.5),
        2f64.powi(-7),
        2f64.powi(-4)
    );
    smooth!(
        sigmoid,
        "sigmoid",
        -8.0,
        8.0,
        sig,
        |x: f64| sig(x) * (1.0 - sig(x)),
        2f64.powi(-9),
        2f64.powi(-9)
    );
    smooth!(
        tanh,
        "tanh",
        -4.0,
        4.0,
        f64::tanh,
        |x: f64| 1.0 - x.tanh().powi(2),
        2f64.powi(-9),
        2f64.powi(-9)
    );

    // GELU and ReLU keep their forward's state for the backward.
    let x = uniform(&sh, -6.0, 6.0, 3);
    let dy = uniform(&sh, -1.0, 1.0, 4);
    v.push(Case {
        op: "gelu".into(),
        inputs: vec![x.clone()],
        deal: Box::new(move |d, s| {
            s.here(d);
            gelu::gen_forward(d, &sh).map(drop)
        }),
        run: Arc::new(|ctx, x, s| {
            s.here(ctx);
            Ok(gelu::forward(ctx, &x[0])?.0)
        }),
        reference: Box::new(move |x| x[0].iter().map(|&x| gelu::gelu_f64(x)).collect()),
        check: Check::Abs(2f64.powi(-8)),
    });
    v.push(Case {
        op: "gelu_bwd".into(),
        inputs: vec![x.clone(), dy.clone()],
        deal: Box::new(move |d, s| {
            let plan = gelu::gen_forward(d, &sh)?;
            s.here(d);
            gelu::gen_backward(d, &plan)
        }),
        run: Arc::new(|ctx, x, s| {
            let (_, saved) = gelu::forward(ctx, &x[0])?;
            s.here(ctx);
            gelu::backward(ctx, &saved, &x[1])
        }),
        reference: Box::new(move |x| {
            x[0].iter().zip(&x[1]).map(|(&x, &g)| gelu::gelu_grad_f64(x) * g).collect()
        }),
        check: Check::Abs(2f64.powi(-8)),
    });
    v.push(Case {
        op: "relu".into(),
        inputs: vec![x.clone()],
        deal: Box::new(move |d, s| {
            s.here(d);
            relu::gen_forward(d, &sh)
        }),
        run: Arc::new(|ctx, x, s| {
            s.here(ctx);
            Ok(relu::forward(ctx, &x[0])?.0)
        }),
        reference: Box::new(move |x| x[0].iter().map(|&x| x.max(0.0)).collect()),
        check: Check::Abs(0.0),
    });
    v.push(Case {
        op: "relu_bwd".into(),
        inputs: vec![x.clone(), dy.clone()],
        deal: Box::new(move |d, s| {
            relu::gen_forward(d, &sh)?;
            s.here(d);
            relu::gen_backward(d, &sh)
        }),
        run: Arc::new(|ctx, x, s| {
            let (_, saved) = relu::forward(ctx, &x[0])?;
            s.here(ctx);
            relu::backward(ctx, &saved, &x[1])
        }),
        reference: Box::new(move |x| {
            x[0].iter().zip(&x[1]).map(|(&x, &g)| if x >= 0.0 { g } else { 0.0 }).collect()
        }),
        check: Check::Abs(0.0),
    });
    const P: f64 = 0.1;
    v.push(Case {
        op: "dropout".into(),
        inputs: vec![x.clone()],
        deal: Box::new(move |d, s| {
            s.here(d);
            dropout::gen_forward(d, &sh, P).map(drop)
        }),
        run: Arc::new(|ctx, x, s| {
            s.here(ctx);
            Ok(dropout::forward(ctx, &x[0], P)?.0)
        }),
        reference: Box::new(move |x| x[0].iter().map(|&x| x / (1.0 - P)).collect()),
        check: Check::ZeroOr(2f64.powi(-12)),
    });
    v.push(Case {
        op: "dropout_bwd".into(),
        inputs: vec![x, dy],
        deal: Box::new(move |d, s| {
            let plan = dropout::gen_forward(d, &sh, P)?;
            s.here(d);
            dropout::gen_backward(d, &plan)
        }),
        run: Arc::new(|ctx, x, s| {
            let (_, saved) = dropout::forward(ctx, &x[0], P)?;
            s.here(ctx);
            dropout::backward(ctx, &saved, &x[1])
        }),
        reference: Box::new(move |x| x[1].iter().map(|&g| g / (1.0 - P)).collect()),
        check: Check::ZeroOr(2f64.powi(-12)),
    });

    // Softmax over rows of 32.
    let rows = (n / 32).max(1);
    let rs = [rows, 32];
    let x = uniform(&rs, -8.0, 8.0, 5);
    let dy = uniform(&rs, -1.0, 1.0, 6);
    let softmax_f64 = |x: &[f64]| -> Vec<f64> {
        x.chunks(32)
            .flat_map(|r| {
                let m = r.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = r.iter().map(|v| (v - m).exp()).collect();
                let s: f64 = e.iter().sum();
                e.into_iter().map(move |v| v / s)
            })
            .collect()
    };
    v.push(Case {
        op: "softmax".into(),
        inputs: vec![x.clone()],
        deal: Box::new(move |d, s| {
            s.here(d);
            softmax::gen_forward(d, &rs)
        }),
        run: Arc::new(|ctx, x, s| {
            s.here(ctx);
            softmax::forward(ctx, &x[0], None)
        }),
        reference: Box::new(move |x| softmax_f64(&x[0])),
        check: Check::Abs(2f64.powi(-9)),
    });
    v.push(Case {
        op: "softmax_bwd".into(),
        inputs: vec![x, dy],
        deal: Box::new(move |d, s| {
            softmax::gen_forward(d, &rs)?;
            s.here(d);
            softmax::gen_backward(d, &rs)
        }),
        run: Arc::new(|ctx, x, s| {
            let y = softmax::forward(ctx, &x[0], None)?;
            s.here(ctx);
            softmax::backward(ctx, &y, &x[1])
        }),
        reference: Box::new(move |x| {
            let y = softmax_f64(&x[0]);
            y.chunks(32)
                .zip(x[1].chunks(32))
                .flat_map(|(y, g)| {
                    let dot: f64 = y.iter().zip(g).map(|(a, b)| a * b).sum();
                    y.iter().zip(g).map(move |(y, g)| y * (g - dot)).collect::<Vec<_>>()
                })
                .collect()
        }),
        check: Check::Abs(2f64.powi(-8)),
    });

    // Layer norm over rows of 64, γ near 1 and β near 0.
    let rows = (n / 64).max(1);
    let ls = [rows, 64];
    let x = uniform(&ls, -4.0, 4.0, 7);
    let gamma = uniform(&[64], 0.5, 1.5, 8);
    let beta = uniform(&[64], -0.5, 0.5, 9);
    let dy = uniform(&ls, -1.0, 1.0, 10);
    const EPS: f64 = 1e-5;
    let ln_f64 = |x: &[f64], g: &[f64]| -> (Vec<f64>, Vec<f64>) {
        // (n, ρ per row)
        let mut out = Vec::with_capacity(x.len());
        let mut rho = Vec::new();
        for r in x.chunks(g.len()) {
            let mu = r.iter().sum::<f64>() / r.len() as f64;
            let var = r.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / r.len() as f64;
            let p = 1.0 / (var + EPS).sqrt();
            rho.push(p);
            out.extend(r.iter().map(|v| (v - mu) * p));
        }
        (out, rho)
    };
    v.push(Case {
        op: "layernorm".into(),
        inputs: vec![x.clone(), gamma.clone(), beta.clone()],
        deal: Box::new(move |d, s| {
            s.here(d);
            layernorm::gen_forward(d, &ls, EPS).map(drop)
        }),
        run: Arc::new(|ctx, x, s| {
            s.here(ctx);
            Ok(layernorm::forward(ctx, &x[0], &x[1], &x[2], EPS)?.0)
        }),
        reference: Box::new(move |x| {
            let (nrm, _) = ln_f64(&x[0], &x[1]);
            nrm.iter().enumerate().map(|(i, v)| v * x[1][i % 64] + x[2][i % 64]).collect()
        }),
        check: Check::Abs(2f64.powi(-6)),
    });
    v.push(Case {
        op: "layernorm_bwd".into(),
        inputs: vec![x, gamma, beta, dy],
        deal: Box::new(move |d, s| {
            let plan = layernorm::gen_forward(d, &ls, EPS)?;
            s.here(d);
            layernorm::gen_backward(d, &plan)
        }),
        run: Arc::new(|ctx, x, s| {
            let (_, saved) = layernorm::forward(ctx, &x[0], &x[1], &x[2], EPS)?;
            s.here(ctx);
            Ok(layernorm::backward(ctx, &saved, &x[3])?.0)
        }),
        reference: Box::new(move |x| {
            let (nrm, rho) = ln_f64(&x[0], &x[1]);
            let h = 64;
            let mut out = Vec::with_capacity(nrm.len());
            for (r, (nr, dr)) in nrm.chunks(h).zip(x[3].chunks(h)).enumerate() {
                let g: Vec<f64> = dr.iter().enumerate().map(|(i, d)| d * x[1][i]).collect();
                let mg = g.iter().sum::<f64>() / h as f64;
                let mgn = g.iter().zip(nr).map(|(a, b)| a * b).sum::<f64>() / h as f64;
                out.extend(g.iter().zip(nr).map(|(g, nv)| rho[r] * (g - mg - nv * mgn)));
            }
            out
        }),
        check: Check::Abs(2f64.powi(-4)),
    });

    // A linear layer X (rows × 64) · W (64 × 64): masked product with one opening of each
    // operand, local truncation; the backward's dX = dY·Wᵀ reuses W's opening.
    let rows = (n / 64).max(1);
    let x = uniform(&[rows, 64], -1.0, 1.0, 11);
    let w = uniform(&[64, 64], -0.5, 0.5, 12);
    let dy = uniform(&[rows, 64], -1.0, 1.0, 13);
    let product = |a: &[f64], b: &[f64], (m, k, n): (usize, usize, usize), bt: bool| {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|t| a[i * k + t] * if bt { b[j * k + t] } else { b[t * n + j] })
                    .sum();
            }
        }
        out
    };
    let xs = [rows, 64];
    v.push(Case {
        op: "matmul".into(),
        inputs: vec![x.clone(), w.clone()],
        deal: Box::new(move |d, s| {
            s.here(d);
            let rx = masked::gen_mask(d, &xs)?;
            let rw = masked::gen_mask(d, &[64, 64])?;
            masked::gen_matmul(d, &rx, &rw)
        }),
        run: Arc::new(|ctx, x, s| {
            s.here(ctx);
            let m = masked::mask_many(ctx, &[&x[0], &x[1]])?;
            let y = masked::matmul(ctx, &m[0], &m[1])?;
            Ok(trunc::trunc_local(ctx.id, &y, 16))
        }),
        reference: Box::new(move |x| product(&x[0], &x[1], (rows, 64, 64), false)),
        check: Check::Abs(2f64.powi(-10)),
    });
    v.push(Case {
        op: "matmul_bwd".into(),
        inputs: vec![x, w, dy],
        deal: Box::new(move |d, s| {
            let rx = masked::gen_mask(d, &xs)?;
            let rw = masked::gen_mask(d, &[64, 64])?;
            masked::gen_matmul(d, &rx, &rw)?;
            s.here(d);
            let rdy = masked::gen_mask(d, &xs)?;
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
        reference: Box::new(move |x| product(&x[2], &x[1], (rows, 64, 64), true)),
        check: Check::Abs(2f64.powi(-10)),
    });
    v
}

/// The protocol names, in the order they run.
pub fn op_names() -> Vec<String> {
    cases(64).into_iter().map(|c| c.op).collect()
}

/// Run the protocols (those in `ops`, or all) at about `n` elements on `backend` under each
/// network setting.
///
/// # Errors
/// A protocol error, or an output off by more than its sanity bound.
pub fn protocols(
    n: usize,
    ops: Option<&[String]>,
    backend: Arc<dyn Backend>,
    nets: &[(String, Option<NetModel>)],
    mut progress: impl FnMut(&ProtocolRow),
) -> prifft::Result<Vec<ProtocolRow>> {
    let mut rows = Vec::new();
    for case in cases(n) {
        if ops.is_some_and(|ops| !ops.contains(&case.op)) {
            continue;
        }
        for (net, model) in nets {
            let row = run_case(&case, backend.clone(), net, *model)?;
            progress(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}

fn run_case(
    case: &Case,
    backend: Arc<dyn Backend>,
    net: &str,
    model: Option<NetModel>,
) -> prifft::Result<ProtocolRow> {
    let unsplit =
        || MpcError::Param { op: "bench protocols", what: "a case without a split".into() };
    let mut dealer = Dealer::new();
    let mut split = Split::default();
    (case.deal)(&mut dealer, &mut split)?;
    let dealer_s = split.start.ok_or_else(unsplit)?.elapsed().as_secs_f64();
    let [m0, m1] = dealer.flush();
    let [mut p0, mut p1] = split.prefix.take().ok_or_else(unsplit)?;
    let key_bytes = m0.wire_bytes();
    p0.absorb(m0).map_err(MpcError::from)?;
    p1.absorb(m1).map_err(MpcError::from)?;

    // The inputs are public test data: a fixed seed shares them.
    let mut rng = insecure_seeded_rng(99);
    let (mut s0, mut s1) = (Vec::new(), Vec::new());
    for t in &case.inputs {
        let [a, b] = sharing::share_secret(t, &mut rng);
        s0.push(a);
        s1.push(b);
    }
    let party = |shares: Vec<Share>| {
        let run = case.run.clone();
        move |ctx: &mut Ctx| -> Res<(Share, Cost, f64)> {
            let mut ps = PartySplit::default();
            let out = run(ctx, &shares, &mut ps)?;
            let secs = ps.start.ok_or_else(unsplit)?.elapsed().as_secs_f64();
            Ok((out, ctx.mark() - ps.cost.ok_or_else(unsplit)?, secs))
        }
    };
    let run = local::run_parties(model, backend.clone(), [p0, p1], party(s0), party(s1))?;
    let ((y0, c0, t0), (y1, c1, t1)) = (run.out0, run.out1);
    let y = sharing::reconstruct(&y0, &y1)?;
    let inputs: Vec<Vec<f64>> =
        case.inputs.iter().map(|t| t.as_slice().iter().map(|&v| dec(v)).collect()).collect();
    let want = (case.reference)(&inputs);
    let got: Vec<f64> = y.as_slice().iter().map(|&v| dec(v)).collect();
    let (errs, tol): (Vec<f64>, f64) = match case.check {
        Check::Abs(tol) => (got.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect(), tol),
        Check::ZeroOr(tol) => {
            (got.iter().zip(&want).map(|(a, b)| a.abs().min((a - b).abs())).collect(), tol)
        }
    };
    let max_err = errs.iter().cloned().fold(0.0, f64::max);
    let mean_err = errs.iter().sum::<f64>() / errs.len().max(1) as f64;
    let ulp = 2f64.powi(-16);
    if max_err > tol + ulp {
        return Err(prifft::Error::Usage(format!(
            "bench protocols: {} is off by {max_err:.3e} against f64 (sanity bound {tol:.3e}): a wrong result, not a measurement",
            case.op
        )));
    }
    Ok(ProtocolRow {
        op: case.op.clone(),
        n: got.len(),
        net: net.to_string(),
        backend: backend.name(),
        prifft_s: t0.max(t1),
        prifft_dealer_s: dealer_s,
        prifft_bytes: c0.bytes_sent.max(c1.bytes_sent),
        prifft_rounds: c0.rounds.max(c1.rounds),
        prifft_key_bytes: key_bytes as f64 / got.len() as f64,
        prifft_max_err: max_err,
        prifft_mean_err: mean_err,
    })
}
