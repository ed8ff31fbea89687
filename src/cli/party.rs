//! `prifft party`: one party of the two-process secure computation over TCP.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use prifft::mpc::ledger::Ledger;
use prifft::mpc::{PartyId, Preproc};
use prifft::net::tcp::TcpConfig;
use prifft::net::{Channel, NetModel, Shaped};
use prifft::ring::FixedPoint;
use std::sync::Arc;

use prifft::backend::{Backend, Cpu, Scheduler};
use prifft::session::{self, MatmulSpec, PartyOptions, SessionOp};
use prifft::{Error, Result};

use super::link::LinkArgs;
use super::secs;

/// The session's shapes and fixed point (shared by `deal`, `party` and `demo`).
/// What a session computes (see `prifft party --help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OpArg {
    /// The secure fixed-point matrix product X·W (Beaver triples).
    Matmul,
    /// ReLU of the client's X, elementwise (FSS: one 2-word DCF per element, one round).
    Relu,
    /// A public degree-2 spline of X, elementwise (FSS: one 3-word DCF, one round).
    Spline,
}

impl OpArg {
    /// The session's op.
    pub fn op(self) -> SessionOp {
        match self {
            OpArg::Matmul => SessionOp::Matmul,
            OpArg::Relu => SessionOp::Relu,
            OpArg::Spline => SessionOp::Spline,
        }
    }
}

/// Where a party does its local work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// The CPU (the reference; every backend gives the same bits).
    Cpu,
    /// The first GPU adapter (real GPUs before software ones such as lavapipe).
    Gpu,
    /// Every GPU and the CPU, each batch split by measured throughput (the scheduler).
    All,
}

impl BackendArg {
    /// Open the backend.
    ///
    /// # Errors
    /// [`Error::Gpu`] for `gpu` without an adapter or GPU support.
    pub fn open(self, crosscheck: bool) -> Result<Arc<dyn Backend>> {
        Ok(match self {
            BackendArg::Cpu => Arc::new(Cpu),
            #[cfg(feature = "gpu")]
            BackendArg::Gpu => match prifft::backend::gpu::GpuDevice::open_default()? {
                Some(d) => Arc::new(d),
                None => {
                    return Err(Error::Gpu(
                        "--backend gpu: no GPU adapter found (`prifft devices` lists them; on Linux without a GPU, install mesa-vulkan-drivers for lavapipe)".into(),
                    ));
                }
            },
            #[cfg(not(feature = "gpu"))]
            BackendArg::Gpu => {
                return Err(Error::Gpu("--backend gpu: this build has no GPU support".into()));
            }
            BackendArg::All => Arc::new(Scheduler::detect().with_crosscheck(crosscheck)),
        })
    }
}

#[derive(Args, Debug, Clone, Copy)]
pub struct ShapeArgs {
    /// What to compute.
    #[arg(long, value_enum, default_value = "matmul")]
    pub op: OpArg,
    /// Rows of the client's matrix X.
    #[arg(long, default_value_t = 64)]
    m: usize,
    /// Columns of X = rows of the server's matrix W.
    #[arg(long, default_value_t = 64)]
    k: usize,
    /// Columns of W.
    #[arg(long, default_value_t = 64)]
    n: usize,
    /// Number of secure products or gates (each uses fresh preprocessing).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
    /// Fractional bits of the fixed-point encoding.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(0..=30))]
    frac_bits: u32,
}

impl ShapeArgs {
    /// The session parameters, checked.
    ///
    /// # Errors
    /// A dimension outside 1..=16384, bad fractional bits.
    pub fn spec(&self) -> Result<MatmulSpec> {
        for (name, v) in [("m", self.m), ("k", self.k), ("n", self.n)] {
            if v == 0 || v > 1 << 14 {
                return Err(Error::Usage(format!("--{name} {v}: must be in 1..=16384")));
            }
        }
        Ok(MatmulSpec {
            op: self.op.op(),
            m: self.m,
            k: self.k,
            n: self.n,
            repeat: self.repeat as usize,
            fixed: FixedPoint::new(self.frac_bits)?,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// P0, the model owner: holds W.
    Server,
    /// P1, the data owner: holds X.
    Client,
}

#[derive(Args, Debug)]
pub struct PartyArgs {
    /// This party's role.
    #[arg(long, value_enum)]
    role: Role,
    /// Where this party computes.
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendArg,
    /// With `--backend all`: recompute a random sample of every GPU part on the CPU and fail on
    /// any difference.
    #[arg(long)]
    gpu_crosscheck: bool,
    /// Listen on ADDR and wait for the peer (port 0 picks a free port; the address is printed).
    #[arg(long, conflicts_with = "connect", required_unless_present = "connect")]
    listen: Option<String>,
    /// Connect to the peer at ADDR (retries until --connect-timeout).
    #[arg(long)]
    connect: Option<String>,
    /// This party's preprocessing file from `prifft deal`. It is one-time material: its bundle is
    /// recorded in the ledger when loaded, and a second run with it is refused.
    #[arg(long)]
    preproc: PathBuf,
    /// The ledger of used bundles (default: `.prifft-ledger` beside the preprocessing file); give
    /// one ledger for all files kept in several places.
    #[arg(long)]
    ledger: Option<PathBuf>,
    #[command(flatten)]
    shape: ShapeArgs,
    #[command(flatten)]
    link: LinkArgs,
    /// Seed of this party's demo input (default: random). Demo data only, never key material.
    #[arg(long)]
    input_seed: Option<u64>,
    /// Keep the product secret-shared: skip the check that reveals inputs and product.
    #[arg(long)]
    no_check: bool,
    /// Network model (see `prifft demo --help`).
    #[arg(long)]
    net: Option<NetModel>,
    /// Seconds to wait for each message from the peer.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Seconds to wait for the peer to connect or accept.
    #[arg(long, default_value_t = 60.0)]
    connect_timeout: f64,
    /// Write the revealed product here (raw little-endian u64, row-major).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Print the report as JSON on the last line.
    #[arg(long)]
    json: bool,
}

/// Run one party.
///
/// # Errors
/// Bad options, unreadable preprocessing, handshake mismatches, a failed peer or check.
pub fn run(args: PartyArgs) -> Result<()> {
    let spec = args.shape.spec()?;
    let id = match args.role {
        Role::Server => PartyId::P0,
        Role::Client => PartyId::P1,
    };
    let ledger = match &args.ledger {
        Some(path) => Ledger::at(path),
        None => Ledger::beside(&args.preproc),
    };
    let preproc = Preproc::consume_file(&args.preproc, &ledger)
        .map_err(|e| Error::from(e).during("loading preprocessing"))?;
    let config = TcpConfig {
        read_timeout: secs(args.timeout, "--timeout")?,
        write_timeout: secs(args.timeout, "--timeout")?,
        connect_timeout: secs(args.connect_timeout, "--connect-timeout")?,
        max_first_frame: Some(session::MAX_HELLO_BYTES as u64),
        ..TcpConfig::default()
    };
    let identity = args.link.identity(super::link::name_of(id))?;
    let (link, wire) = match (&args.listen, &args.connect) {
        (Some(addr), _) => {
            let listener = super::link::listen(addr)?;
            super::link::accept(&listener, identity.as_ref(), config, "the other party")?
        }
        (None, Some(addr)) => super::link::connect(
            addr,
            identity.as_ref(),
            config,
            "the server",
            prifft::net::tls::SERVER_NAME,
        )?,
        (None, None) => unreachable!("clap requires --listen or --connect"),
    };
    let channel: Box<dyn Channel> = match args.net {
        Some(model) => Box::new(Shaped::new(link, model)),
        None => link,
    };
    let opts = PartyOptions {
        spec,
        input_seed: args.input_seed,
        check: !args.no_check,
        network: args.net.map(|m| m.to_string()),
    };
    let backend = args.backend.open(args.gpu_crosscheck)?;
    let (report, product) = session::run_party(id, channel, preproc, &opts, backend)?;
    print!("{}", session::render(&report));
    if let Some(wire) = &wire {
        let (sent, received) = wire.get();
        let app = report.handshake.cost.bytes_sent
            + report.input_sharing.cost.bytes_sent
            + report.products.cost.bytes_sent
            + report.reveal.map_or(0, |r| r.cost.bytes_sent);
        println!(
            "  TLS 1.3 (mutual certificates): {sent} B sent and {received} B received on the wire for {app} B of protocol data sent (handshake and records: +{} B)",
            sent.saturating_sub(app)
        );
    }
    if let (Some(path), Some(product)) = (&args.output, &product) {
        session::write_tensor(path, product)?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report).expect("serialisable"));
    }
    match &report.check {
        Some(c) if !c.ok => {
            Err(Error::Usage("the secure product is outside the documented error bound".into()))
        }
        _ => Ok(()),
    }
}
