//! The `prifft` command line: one module per subcommand, each with its arguments (clap) and its
//! `run`. `main.rs` only parses and dispatches.

mod bench;
mod centralized;
mod certs;
mod deal;
mod demo;
mod devices;
mod finetune;
mod fl;
mod fl_trace;
mod link;
mod partition;
mod party;

use std::time::Duration;

use clap::{Parser, Subcommand};

use prifft::{Error, Result};

/// prifft: privacy-preserving federated fine-tuning with function secret sharing.
///
/// Two parties — a server (model owner) and a client (data owner) — compute on additive secret
/// shares over Z_2^64 with preprocessing from a trusted dealer. Start with `prifft demo`, which
/// runs the dealer and both parties as separate processes talking TCP on this machine.
#[derive(Parser, Debug)]
#[command(name = "prifft", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// List GPU adapters (wgpu) with backend, type, features and limits.
    Devices(devices::DevicesArgs),
    /// Dealer: write both parties' preprocessing files (Beaver matrix triples) for a session.
    ///
    /// Writes DIR/server.pp and DIR/client.pp (owner-only permissions: they hold secret shares).
    /// Give each file to its party only, and use each pair for one session: the parties refuse
    /// files from different dealer runs, and a store never hands out the same material twice.
    Deal(deal::DealArgs),
    /// Make a demo certificate authority and both parties' certificates (PEM) for the mutual-TLS
    /// link between `prifft party` processes: DIR/ca.pem, server.pem, server.key, client.pem,
    /// client.key (keys owner-only).
    Certs(certs::CertsArgs),
    /// Run one party of a two-process session (matrix product, ReLU or spline) over mutual TLS.
    ///
    /// The client holds X (m×k), the server W (k×n); together they compute shares of X·W in
    /// fixed point with Beaver triples from `prifft deal`. Example (the two parties in two
    /// terminals):
    ///
    ///   prifft deal --out-dir /tmp/pp && prifft certs --out-dir /tmp/tls
    ///   prifft party --role server --listen 127.0.0.1:7000 --preproc /tmp/pp/server.pp \
    ///     --tls-ca /tmp/tls/ca.pem --tls-cert /tmp/tls/server.pem --tls-key /tmp/tls/server.key
    ///   prifft party --role client --connect 127.0.0.1:7000 --preproc /tmp/pp/client.pp \
    ///     --tls-ca /tmp/tls/ca.pem --tls-cert /tmp/tls/client.pem --tls-key /tmp/tls/client.key
    #[command(verbatim_doc_comment)]
    Party(party::PartyArgs),
    /// Split Fashion-MNIST among clients (IID, Dirichlet label skew or shards) and print each
    /// client's class histogram — the non-IID setting of the federated-learning experiments.
    Partition(partition::PartitionArgs),
    /// Federated training on Fashion-MNIST (or MNIST-5k) split among clients by Dirichlet label
    /// skew: every algorithm on the same partition per seed, with the same rounds, local epochs
    /// and optimiser, on the simple CNN with a projection head (z L2-normalised for FedProc).
    /// Shows a progress bar per run, writes a CSV of the test accuracy after every round
    /// (algo, beta, seed, round, test_accuracy) and a PNG plot of accuracy against round
    /// (mean over seeds, band = range), and prints the final table (mean ± std over seeds).
    ///
    /// Example (the README's table): prifft fl --algo fedavg,fedprox,moon,fedproc
    ///   --fedproc-tau 1,0.5,0.1 --beta 0.1 --rounds 20 --seeds 3
    #[command(verbatim_doc_comment)]
    Fl(fl::FlArgs),
    /// Print `prifft fl`'s table again (with the per-seed difference from FedAvg) and redraw
    /// its plot from one or more of its CSV files, without training. Runs of one algorithm
    /// label across files are matched by seed.
    ///
    /// Example: prifft fl-report --csv docs/results/fl_beta0.5.csv --csv docs/results/fl_beta0.1.csv
    #[command(verbatim_doc_comment)]
    FlReport(fl::FlReportArgs),
    /// Run round 1 of `prifft fl`'s FedAvg for one seed and write it as a safetensors trace:
    /// the initial weights, every client's batch order and weights after its local epoch, and
    /// the averaged model, under PyTorch's parameter names. scripts/xcheck_fl.py replays it in
    /// PyTorch from the same weights and batch order and compares layer by layer.
    ///
    /// Example: prifft fl-trace --beta 0.5 --seed 1 --out /tmp/trace.safetensors
    ///   python3 scripts/xcheck_fl.py /tmp/trace.safetensors --rounds 20
    #[command(verbatim_doc_comment)]
    FlTrace(fl_trace::FlTraceArgs),
    /// Fine-tune the pretrained all-MiniLM-L6-v2 (BERT, 6 layers) with a 2-class head on
    /// Rotten Tomatoes sentences (label = sign of the mean human rating): the top K layers and
    /// the head train with SGD and momentum, the rest stays frozen. Shows a progress bar per
    /// epoch, prints the test accuracy after every epoch, writes a PNG of loss and accuracy per
    /// epoch and, with --json, a summary. --plaintext runs the f32 reference (candle); the
    /// model and sentences come from scripts/fetch-assets.sh.
    ///
    /// Example (the README's table): prifft finetune --plaintext --layers-trainable 2
    ///   --lr 0.001 --batch 8 --seq-len 32 --train 2000 --epochs 3 --seed 1
    #[command(verbatim_doc_comment)]
    Finetune(finetune::FinetuneArgs),
    /// Train the simple CNN on all of Fashion-MNIST (no federation) and print the test accuracy
    /// after each epoch: the reference the federated runs are compared with.
    Centralized(centralized::CentralizedArgs),
    /// Measure throughput on this machine (medians of repeated runs, in one process).
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Run the whole two-process demo on this machine: dealer, server and client processes over
    /// TCP on 127.0.0.1, then print each party's result check, bytes and rounds.
    Demo(demo::DemoArgs),
}

/// Run one parsed command.
///
/// # Errors
/// The command's error, shown by `main` with a hint where one helps.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Devices(args) => devices::run(args),
        Cmd::Deal(args) => deal::run(args),
        Cmd::Certs(args) => certs::run(args),
        Cmd::Party(args) => party::run(args),
        Cmd::Demo(args) => demo::run(args),
        Cmd::Fl(args) => fl::run(args),
        Cmd::FlReport(args) => fl::report(args),
        Cmd::FlTrace(args) => fl_trace::run(args),
        Cmd::Centralized(args) => centralized::run(args),
        Cmd::Finetune(args) => finetune::run(args),
        Cmd::Partition(args) => partition::run(args),
        Cmd::Bench(cmd) => bench::run(cmd),
    }
}

/// What to try next for an error, where there is something to say.
pub fn hint(e: &Error) -> Option<&'static str> {
    match e {
        Error::Net(prifft::net::NetError::PeerClosed) => {
            Some("the other party stopped; see its output for the reason")
        }
        Error::Net(prifft::net::NetError::Timeout(_)) => {
            Some("the other party is unreachable or stalled")
        }
        Error::Io { .. } => Some("preprocessing files come from `prifft deal --out-dir DIR`"),
        _ => None,
    }
}

/// A duration flag in seconds: finite, non-negative and at most a day (longer waits are typos
/// and would overflow deadlines).
fn secs(v: f64, flag: &str) -> Result<Duration> {
    const MAX_SECS: f64 = 86_400.0;
    if !(v.is_finite() && (0.0..=MAX_SECS).contains(&v)) {
        return Err(Error::Usage(format!(
            "{flag} {v}: must be a number of seconds between 0 and {MAX_SECS}"
        )));
    }
    Ok(Duration::from_secs_f64(v))
}
