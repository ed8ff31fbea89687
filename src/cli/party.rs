//! `prifft party`: one party of the two-process secure computation over TCP.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use prifft::mpc::{PartyId, Preproc};
use prifft::net::tcp::{Listener, TcpChannel, TcpConfig};
use prifft::net::{Channel, NetModel, Shaped};
use prifft::ring::FixedPoint;
use prifft::session::{self, MatmulSpec, PartyOptions};
use prifft::{Error, Result};

use super::secs;

/// The session's shapes and fixed point (shared by `deal`, `party` and `demo`).
#[derive(Args, Debug, Clone, Copy)]
pub struct ShapeArgs {
    /// Rows of the client's matrix X.
    #[arg(long, default_value_t = 64)]
    m: usize,
    /// Columns of X = rows of the server's matrix W.
    #[arg(long, default_value_t = 64)]
    k: usize,
    /// Columns of W.
    #[arg(long, default_value_t = 64)]
    n: usize,
    /// Number of secure products (each uses one fresh triple).
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
                return Err(Error::Session(format!("--{name} {v}: must be in 1..=16384")));
            }
        }
        Ok(MatmulSpec {
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
    /// Listen on ADDR and wait for the peer (port 0 picks a free port; the address is printed).
    #[arg(long, conflicts_with = "connect", required_unless_present = "connect")]
    listen: Option<String>,
    /// Connect to the peer at ADDR (retries until --connect-timeout).
    #[arg(long)]
    connect: Option<String>,
    /// This party's preprocessing file from `prifft deal`.
    #[arg(long)]
    preproc: PathBuf,
    #[command(flatten)]
    shape: ShapeArgs,
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
    let preproc =
        Preproc::read_file(&args.preproc).map_err(|e| Error::from(e).during("loading preprocessing"))?;
    let config = TcpConfig {
        read_timeout: secs(args.timeout, "--timeout")?,
        write_timeout: secs(args.timeout, "--timeout")?,
        connect_timeout: secs(args.connect_timeout, "--connect-timeout")?,
        ..TcpConfig::default()
    };
    let tcp = match (&args.listen, &args.connect) {
        (Some(addr), _) => {
            let listener = Listener::bind(addr)
                .map_err(|e| Error::from(e).during(format!("listening on {addr}")))?;
            println!("listening on {}", listener.local_addr()?);
            std::io::stdout().flush().ok();
            listener
                .accept(config)
                .map_err(|e| Error::from(e).during("waiting for the other party"))?
        }
        (None, Some(addr)) => TcpChannel::connect(addr, config)?,
        (None, None) => unreachable!("clap requires --listen or --connect"),
    };
    let channel: Box<dyn Channel> = match args.net {
        Some(model) => Box::new(Shaped::new(tcp, model)),
        None => Box::new(tcp),
    };
    let opts = PartyOptions {
        spec,
        input_seed: args.input_seed,
        check: !args.no_check,
        network: args.net.map(|m| m.to_string()),
    };
    let (report, product) = session::run_party(id, channel, preproc, &opts)?;
    print!("{}", session::render(&report));
    if let (Some(path), Some(product)) = (&args.output, &product) {
        session::write_tensor(path, product)?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report).expect("serialisable"));
    }
    match &report.check {
        Some(c) if !c.ok => {
            Err(Error::Session("the secure product is outside the documented error bound".into()))
        }
        _ => Ok(()),
    }
}
