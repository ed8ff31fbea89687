//! A two-process session between a server and a client: the secure fixed-point matrix product,
//! or an FSS gate — ReLU or a spline — on the client's input.
//!
//! [`SessionOp::Matmul`]: the client holds X (m×k), the server W (k×n); they compute shares of
//! Y = X·W in fixed point. [`SessionOp::Relu`] / [`SessionOp::Spline`]: the client holds X
//! (m×k, fixed point) and they compute shares of relu(X) or of the public spline
//! [`demo_spline`] elementwise, at gate width [`GATE_WIDTH`], each gate costing one round of
//! `8·m·k` bytes per party (the opening of X + r) on top of the input sharing. Every local
//! step — Beaver products, truncation, DCF evaluation — runs on the party's backend.
//!
//! 1. **Handshake**: each side sends a [`Hello`] (role, shapes, fixed point, repetitions and the
//!    dealer bundle id of its preprocessing file); a mismatch is a clear error on both sides.
//! 2. **Input sharing**: each owner sends a 32-byte seed ([`sharing::share_input`]).
//! 3. **Products** (`repeat` times, each with a fresh dealer triple): Beaver matmul (one round,
//!    8·(mk + kn) bytes per party) and local truncation by f bits.
//! 4. **Check** (optional, on by default in the demo): the parties *reveal* their inputs and the
//!    product to each other, and each compares the product with the cleartext fixed-point product
//!    ⌊(X·W) / 2^f⌋. The bound is one unit in the last place (local truncation,
//!    [`crate::mpc::trunc`]). Without the check, each party ends with a share only.
//!
//! Preprocessing comes from key files written by the dealer (`prifft deal`), one per party.
//!
//! What each party learns (without the check): the peer's role and shapes, the opened Beaver
//! differences (uniformly random), nothing about the peer's input or the product.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};

use crate::backend::Backend;
use crate::error::{Error, NetError, Result};
use crate::mpc::{Dealer, PartyCtx, PartyId, Preproc, Share, beaver, gates, sharing, trunc};
use crate::net::{Channel, Cost, exchange};
use crate::prg::{ChaCha20Rng, os_rng};
use crate::ring::{FixedPoint, RingTensor, arith_shift};

/// Demo inputs are uniform in [−INPUT_RANGE, INPUT_RANGE]: with k ≤ 2^14 the exact product stays
/// below 2^(14 + 4 + 2·16) = 2^50 < 2^62, well inside the local-truncation budget.
pub const INPUT_RANGE: f64 = 2.0;

/// What a session computes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SessionOp {
    /// The secure fixed-point matrix product X·W (Beaver triples).
    #[default]
    Matmul,
    /// ReLU of the client's input, elementwise (one 2-word DCF per element).
    Relu,
    /// The public spline [`demo_spline`] of the client's input (one 3-word DCF per element).
    Spline,
}

/// Gate width of the gate sessions: inputs are fixed-point reals in ±[`INPUT_RANGE`], far inside
/// the signed 32-bit range, so 32-bit DCFs do the work of 64-bit ones.
pub const GATE_WIDTH: u32 = 32;

/// The spline of [`SessionOp::Spline`]: four pieces of degree 2 on the signed 32-bit range, with
/// breakpoints at −1, 0 and 1 in fixed point (f = 16); coefficients are ring constants and the
/// result is exact in Z_2^64 (the check compares bit for bit).
pub fn demo_spline() -> crate::mpc::gates::spline::Spline {
    let one = 1u64 << 16;
    crate::mpc::gates::spline::Spline {
        width: GATE_WIDTH,
        breaks: vec![-(one as i64), 0, one as i64],
        coeffs: vec![vec![0, 0, 0], vec![one, 1, 0], vec![one, 1, 1], vec![2 * one, 0, 0]],
    }
}

/// Session parameters both parties must agree on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MatmulSpec {
    /// What is computed.
    #[serde(default)]
    pub op: SessionOp,
    /// Rows of X.
    pub m: usize,
    /// Columns of X = rows of W.
    pub k: usize,
    /// Columns of W.
    pub n: usize,
    /// How many products (each consumes one triple).
    pub repeat: usize,
    /// Fixed point.
    pub fixed: FixedPoint,
}

impl MatmulSpec {
    /// Bytes each party sends in one product or gate: 8·(mk + kn) for the Beaver matmul, 8·mk
    /// (the opening of X + r) for a gate (docs/protocols.md).
    pub fn matmul_bytes_per_party(&self) -> u64 {
        match self.op {
            SessionOp::Matmul => 8 * (self.m * self.k + self.k * self.n) as u64,
            SessionOp::Relu | SessionOp::Spline => 8 * (self.m * self.k) as u64,
        }
    }

    /// Shape of the input `owner` holds: P1 (client) holds X (m×k), P0 (server) holds W (k×n).
    pub fn input_shape(&self, owner: PartyId) -> [usize; 2] {
        match owner {
            PartyId::P0 => [self.k, self.n],
            PartyId::P1 => [self.m, self.k],
        }
    }
}

/// The dealer's part: `repeat` matrix triples for the spec, as two per-party stores.
///
/// # Errors
/// Never in practice.
pub fn deal(spec: &MatmulSpec) -> Result<[Preproc; 2]> {
    let mut dealer = Dealer::new();
    let len = spec.m * spec.k;
    for _ in 0..spec.repeat {
        match spec.op {
            SessionOp::Matmul => beaver::gen_matmul(&mut dealer, spec.m, spec.k, spec.n)?,
            SessionOp::Relu => gates::gen_relu(&mut dealer, GATE_WIDTH, len)?,
            SessionOp::Spline => {
                gates::gen_spline(&mut dealer, GATE_WIDTH, demo_spline().degree(), len)?
            }
        }
    }
    Ok(dealer.finish())
}

/// Demo input of `owner`: uniform reals in [−INPUT_RANGE, INPUT_RANGE] from a seeded generator
/// (demo data, not key material), encoded in fixed point.
///
/// # Errors
/// Never for the demo range (kept for the fixed-point API).
pub fn demo_input(spec: &MatmulSpec, owner: PartyId, seed: u64) -> Result<RingTensor> {
    let shape = spec.input_shape(owner);
    let mut rng = ChaCha20Rng::seed_from_u64(
        seed ^ (owner.index() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    let reals: Vec<f64> =
        (0..shape[0] * shape[1]).map(|_| rng.random_range(-INPUT_RANGE..=INPUT_RANGE)).collect();
    Ok(RingTensor::from_vec(&shape, spec.fixed.encode_slice(&reals)?)?)
}

/// The cleartext reference: ⌊(X·W) / 2^f⌋ in the ring.
///
/// # Errors
/// Shape errors.
pub fn plaintext_product(x: &RingTensor, w: &RingTensor, fixed: FixedPoint) -> Result<RingTensor> {
    Ok(x.matmul(w)?.map(|v| arith_shift(v, fixed.frac_bits())))
}

/// What a party says first.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hello {
    /// Protocol name and version.
    pub protocol: String,
    /// Sender's role.
    pub party: PartyId,
    /// Session parameters.
    pub spec: MatmulSpec,
    /// Dealer bundle id of the sender's preprocessing (hex).
    pub bundle: String,
    /// Whether the sender will run the revealing check.
    pub check: bool,
}

const PROTOCOL: &str = "prifft-session/2";
/// Largest hello accepted (a peer sending garbage is stopped here): the TCP parties cap their
/// first frame at this size ([`TcpConfig::max_first_frame`](crate::net::tcp::TcpConfig)).
pub const MAX_HELLO_BYTES: usize = 4096;

/// Costs and timings of one phase.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct PhaseReport {
    /// Communication of this party in the phase.
    pub cost: Cost,
    /// Wall time of the phase.
    pub seconds: f64,
}

/// The result check (only when both parties agreed to reveal).
#[derive(Clone, Debug, serde::Serialize)]
pub struct CheckReport {
    /// Largest |secure − cleartext fixed point| over the product, in units of 2^−f.
    pub max_err_ulps: u64,
    /// The documented bound (local truncation: 1 ulp).
    pub bound_ulps: u64,
    /// Largest |secure − exact real product| (decoded).
    pub max_abs_err_real: f64,
    /// Whether every element is within the bound.
    pub ok: bool,
}

/// Everything a party reports at the end.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SessionReport {
    /// This party.
    pub party: PartyId,
    /// Parameters.
    pub spec: MatmulSpec,
    /// Network model in force, if any.
    pub network: Option<String>,
    /// The backend this party computed on.
    pub backend: String,
    /// Bytes each party sends per product by the formula 8·(mk + kn).
    pub formula_bytes_per_product: u64,
    /// Handshake.
    pub handshake: PhaseReport,
    /// Input sharing.
    pub input_sharing: PhaseReport,
    /// All `repeat` secure products (matmul + truncation).
    pub products: PhaseReport,
    /// Opening of the result and inputs for the check.
    pub reveal: Option<PhaseReport>,
    /// The check.
    pub check: Option<CheckReport>,
}

/// Options of one party's run.
#[derive(Clone, Debug)]
pub struct PartyOptions {
    /// Parameters (must match the peer's and the preprocessing).
    pub spec: MatmulSpec,
    /// Seed of the demo input (default: OS randomness).
    pub input_seed: Option<u64>,
    /// Reveal inputs and product at the end to check the result.
    pub check: bool,
    /// Network model description for the report.
    pub network: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn phase<C: Channel, T>(
    ctx: &mut PartyCtx<C>,
    f: impl FnOnce(&mut PartyCtx<C>) -> Result<T>,
) -> Result<(T, PhaseReport)> {
    let (before, start) = (ctx.mark(), Instant::now());
    let out = f(ctx)?;
    Ok((out, PhaseReport { cost: ctx.cost() - before, seconds: start.elapsed().as_secs_f64() }))
}

fn handshake<C: Channel>(ctx: &mut PartyCtx<C>, opts: &PartyOptions) -> Result<()> {
    let mine = Hello {
        protocol: PROTOCOL.into(),
        party: ctx.id,
        spec: opts.spec,
        bundle: hex(&ctx.preproc.bundle_id()),
        check: opts.check,
    };
    ctx.channel().send(serde_json::to_vec(&mine).expect("hello serialises"))?;
    let theirs = ctx.channel().recv()?;
    if theirs.len() > MAX_HELLO_BYTES {
        return Err(NetError::Protocol {
            op: "hello",
            expected: format!("≤ {MAX_HELLO_BYTES} bytes"),
            got: format!("{} bytes", theirs.len()),
        }
        .into());
    }
    let theirs: Hello = serde_json::from_slice(&theirs).map_err(|_| NetError::Protocol {
        op: "hello",
        expected: format!("a {PROTOCOL} hello"),
        got: "something else (is the peer a prifft party of the same version?)".into(),
    })?;
    let mismatch = |what: String| Err(Error::Session(what));
    if theirs.protocol != PROTOCOL {
        return mismatch(format!("peer speaks {}, we speak {PROTOCOL}", theirs.protocol));
    }
    if theirs.party != ctx.id.peer() {
        return mismatch(format!(
            "both parties are {}: start one as server and one as client",
            ctx.id
        ));
    }
    if theirs.spec != opts.spec {
        return mismatch(format!(
            "parameters differ: ours {:?}, peer's {:?}",
            opts.spec, theirs.spec
        ));
    }
    if theirs.bundle != mine.bundle {
        return mismatch("the two preprocessing files come from different dealer runs: give both parties the files of one `prifft deal`".into());
    }
    if theirs.check != opts.check {
        return mismatch(
            "one party wants the revealing check and the other does not (--no-check on both or neither)".into(),
        );
    }
    Ok(())
}

/// Run this party's side of the session over `channel`, with `preproc` from the dealer.
/// Returns the report and, when checked, the revealed product.
///
/// # Errors
/// Handshake mismatches ([`Error::Session`]), preprocessing errors (too few or wrong triples),
/// channel errors (peer gone, timeout); each wrapped with the step it happened in.
pub fn run_party<C: Channel>(
    id: PartyId,
    channel: C,
    preproc: Preproc,
    opts: &PartyOptions,
    backend: Arc<dyn Backend>,
) -> Result<(SessionReport, Option<RingTensor>)> {
    use crate::mpc::preproc::MaterialKind;
    let spec = opts.spec;
    if spec.repeat == 0 {
        return Err(Error::Usage("a session needs at least one product (repeat ≥ 1)".into()));
    }
    let mut ctx = PartyCtx::new(id, channel, preproc)?.with_backend(backend);
    let need = spec.repeat;
    let kind = match spec.op {
        SessionOp::Matmul => MaterialKind::MatTriple,
        SessionOp::Relu => MaterialKind::ReluKeys,
        SessionOp::Spline => MaterialKind::SplineKeys,
    };
    let have = ctx.preproc.remaining_of(kind);
    if have < need {
        return Err(Error::Session(format!(
            "the preprocessing file holds {have} {kind} item(s), the session needs {need}"
        )));
    }
    let seed = opts.input_seed.unwrap_or_else(|| os_rng().random());
    let my_input = demo_input(&spec, id, seed)?;

    let ((), hello) =
        phase(&mut ctx, |ctx| handshake(ctx, opts)).map_err(|e| e.during("handshake"))?;
    log::info!("{id}: handshake done");

    let ((x, w), sharing_report) = phase(&mut ctx, |ctx| {
        let mine_is_x = id == PartyId::P1;
        let x = sharing::share_input(
            ctx,
            PartyId::P1,
            mine_is_x.then_some(&my_input),
            &spec.input_shape(PartyId::P1),
        )?;
        if spec.op != SessionOp::Matmul {
            return Ok((x, None)); // a gate has the client's input only
        }
        let w = sharing::share_input(
            ctx,
            PartyId::P0,
            (!mine_is_x).then_some(&my_input),
            &spec.input_shape(PartyId::P0),
        )?;
        Ok((x, Some(w)))
    })
    .map_err(|e| e.during("input sharing"))?;

    let f = spec.fixed.frac_bits();
    let (y, products) = phase(&mut ctx, |ctx| {
        let mut y: Option<Share> = None;
        let spline = demo_spline();
        for r in 0..spec.repeat {
            let what = match spec.op {
                SessionOp::Matmul => "product",
                SessionOp::Relu => "ReLU",
                SessionOp::Spline => "spline",
            };
            let step = || format!("secure {what} {} of {}", r + 1, spec.repeat);
            let z = match (&w, spec.op) {
                (Some(w), _) => beaver::matmul(ctx, &x, w).and_then(|z| trunc::trunc(ctx, &z, f)),
                (None, SessionOp::Relu) => gates::relu(ctx, &x, GATE_WIDTH),
                (None, _) => gates::spline(ctx, &spline, &x),
            };
            y = Some(z.map_err(|e| Error::from(e).during(step()))?);
            log::debug!("{id}: {} done", step());
        }
        Ok(y.expect("repeat ≥ 1"))
    })?;

    let mut report = SessionReport {
        party: id,
        spec,
        network: opts.network.clone(),
        backend: ctx.backend().name(),
        formula_bytes_per_product: spec.matmul_bytes_per_party(),
        handshake: hello,
        input_sharing: sharing_report,
        products,
        reveal: None,
        check: None,
    };
    if !opts.check {
        return Ok((report, None));
    }

    if spec.op != SessionOp::Matmul {
        // Open the result and the client's input (its shares), then compare bit for bit.
        let ((y_open, x_open), reveal) =
            phase(&mut ctx, |ctx| Ok((sharing::open(ctx, &y)?, sharing::open(ctx, &x)?)))
                .map_err(|e| e.during("revealing for the check"))?;
        report.reveal = Some(reveal);
        report.check = Some(check_gate(spec.op, &y_open, &x_open, spec.fixed)?);
        return Ok((report, Some(y_open)));
    }
    let ((y_open, theirs), reveal) = phase(&mut ctx, |ctx| {
        let y_open = sharing::open(ctx, &y)?;
        let peer_shape = spec.input_shape(id.peer());
        let theirs = exchange(
            ctx.channel(),
            "reveal inputs",
            my_input.to_le_bytes(),
            peer_shape[0] * peer_shape[1] * 8,
        )?;
        Ok((y_open, RingTensor::from_le_bytes(&peer_shape, &theirs)?))
    })
    .map_err(|e| e.during("revealing for the check"))?;
    let (x_plain, w_plain) =
        if id == PartyId::P1 { (&my_input, &theirs) } else { (&theirs, &my_input) };
    report.reveal = Some(reveal);
    report.check = Some(check_product(&y_open, x_plain, w_plain, spec.fixed)?);
    Ok((report, Some(y_open)))
}

/// Compare a revealed gate output with the gate's cleartext spec on the revealed input: FSS gates
/// are exact, so the bound is 0 ulps.
///
/// # Errors
/// [`Error::Shape`] when `y` and `x` differ in shape.
pub fn check_gate(
    op: SessionOp,
    y: &RingTensor,
    x: &RingTensor,
    fixed: FixedPoint,
) -> Result<CheckReport> {
    if y.shape() != x.shape() {
        return Err(Error::Shape {
            op: "check_gate",
            left: x.shape().to_vec(),
            right: y.shape().to_vec(),
        });
    }
    let spline = demo_spline();
    let spec = |v: u64| match op {
        SessionOp::Relu => crate::mpc::gates::relu::spec(v),
        _ => spline.spec(v),
    };
    let max_err_ulps = y
        .as_slice()
        .iter()
        .zip(x.as_slice())
        .map(|(&got, &v)| (got.wrapping_sub(spec(v)) as i64).unsigned_abs())
        .max()
        .unwrap_or(0);
    Ok(CheckReport {
        max_err_ulps,
        bound_ulps: 0,
        max_abs_err_real: max_err_ulps as f64 * fixed.ulp(),
        ok: max_err_ulps == 0,
    })
}

/// Compare a revealed secure product with the cleartext fixed-point and real products.
///
/// # Errors
/// Shape errors.
pub fn check_product(
    y: &RingTensor,
    x: &RingTensor,
    w: &RingTensor,
    fixed: FixedPoint,
) -> Result<CheckReport> {
    let expected = plaintext_product(x, w, fixed)?;
    if y.shape() != expected.shape() {
        return Err(Error::Shape {
            op: "check_product",
            left: expected.shape().to_vec(),
            right: y.shape().to_vec(),
        });
    }
    let max_err_ulps = y
        .as_slice()
        .iter()
        .zip(expected.as_slice())
        .map(|(&a, &b)| (a.wrapping_sub(b) as i64).unsigned_abs())
        .max()
        .unwrap_or(0);
    // The exact real product of the (decoded) inputs, for the report.
    let xr = fixed.decode_slice(x.as_slice());
    let wr = fixed.decode_slice(w.as_slice());
    let (m, k) = x.dims2("check")?;
    let n = w.dims2("check")?.1;
    let mut max_abs_err_real: f64 = 0.0;
    for i in 0..m {
        for j in 0..n {
            let exact: f64 = (0..k).map(|p| xr[i * k + p] * wr[p * n + j]).sum();
            max_abs_err_real =
                max_abs_err_real.max((fixed.decode(y.as_slice()[i * n + j]) - exact).abs());
        }
    }
    Ok(CheckReport { max_err_ulps, bound_ulps: 1, max_abs_err_real, ok: max_err_ulps <= 1 })
}

/// Write a product as raw little-endian u64 (row-major).
///
/// # Errors
/// [`Error::Io`] naming the path.
pub fn write_tensor(path: &Path, t: &RingTensor) -> Result<()> {
    std::fs::write(path, t.to_le_bytes())
        .map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

/// Human-readable summary lines.
pub fn render(report: &SessionReport) -> String {
    let s = &report.spec;
    let p = &report.products;
    let what = match s.op {
        SessionOp::Matmul => format!("fixed-point product X({}×{})·W({}×{})", s.m, s.k, s.k, s.n),
        SessionOp::Relu => format!("ReLU of X({}×{}), {GATE_WIDTH}-bit gate", s.m, s.k),
        SessionOp::Spline => format!("spline of X({}×{}), {GATE_WIDTH}-bit gate", s.m, s.k),
    };
    let formula = if s.op == SessionOp::Matmul { "8·(mk+kn)" } else { "8·mk" };
    let mut out = format!(
        "{}: secure {what}, {} time(s), f = {}, on {}\n",
        report.party,
        s.repeat,
        s.fixed.frac_bits(),
        report.backend
    );
    if let Some(net) = &report.network {
        out += &format!("  network model: {net}\n");
    }
    out += &format!(
        "  input sharing: {} B sent, {} round(s)\n  products:      {} B sent, {} B received, {} round(s), {:.3} s ({:.3} ms per product)\n  formula {formula} per product: {} B → {}\n",
        report.input_sharing.cost.bytes_sent,
        report.input_sharing.cost.rounds,
        p.cost.bytes_sent,
        p.cost.bytes_received,
        p.cost.rounds,
        p.seconds,
        p.seconds * 1e3 / s.repeat as f64,
        report.formula_bytes_per_product,
        if p.cost.bytes_sent == report.formula_bytes_per_product * s.repeat as u64 {
            "matches"
        } else {
            "MISMATCH"
        }
    );
    match &report.check {
        Some(c) => {
            out += &format!(
                "  check (inputs and product revealed): max error {} ulp (bound {}), max |error| vs real product {:.2e} → {}\n",
                c.max_err_ulps,
                c.bound_ulps,
                c.max_abs_err_real,
                if c.ok { "OK" } else { "FAILED" }
            );
        }
        None => out += "  no check: the product stays secret-shared\n",
    }
    out
}
