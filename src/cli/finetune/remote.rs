//! `prifft finetune --role server|client|dealer`: secure fine-tuning as three processes over
//! authenticated links ([`prifft::finetune::remote`]).

use std::sync::Arc;

use serde::Serialize;

use prifft::backend::Backend;
use prifft::finetune::remote::{self, Agreement, PartyLinks, RemoteRun};
use prifft::finetune::{self, ClientData, ServerModel};
use prifft::model::text::{self, Corpus};
use prifft::model::tokenize::SentenceTokenizer;
use prifft::model::train;
use prifft::model::{Assets, Classifier, Pooling};
use prifft::mpc::PartyId;
use prifft::net::tcp::TcpConfig;
use prifft::net::tls::{DEALER_NAME, SERVER_NAME};
use prifft::net::{Channel, NetModel, Shaped};
use prifft::{Error, Result};

use super::secure::{Bars, mb, write_weights};
use super::{FinetuneArgs, PoolingArg, RoleArg};
use crate::cli::bench::NetArg;
use crate::cli::link;
use crate::cli::secs;

/// A party's JSON summary.
#[derive(Debug, Serialize)]
struct PartySummary {
    role: &'static str,
    step_s: f64,
    step_bytes: u64,
    step_rounds: u64,
    key_bytes_per_step: u64,
    steps: usize,
    sentences: usize,
    setup_s: f64,
    setup_bytes: u64,
    frozen_s: f64,
    frozen_bytes: u64,
    frozen_key_bytes_per_batch: u64,
    peak_rss_bytes: Option<u64>,
    rss_after_first_step: Option<u64>,
    rss_after_last_step: Option<u64>,
    wire_bytes_sent: Option<u64>,
    wire_bytes_received: Option<u64>,
}

/// The dealer's JSON summary.
#[derive(Debug, Serialize)]
struct DealerSummary {
    role: &'static str,
    chunks: usize,
    bytes_per_party: u64,
    peak_chunk_bytes: u64,
    helper_answers: usize,
    dealer_frozen_s: f64,
    dealer_step_s: f64,
    wall_s: f64,
    sentences: usize,
    steps: usize,
    peak_rss_bytes: Option<u64>,
}

/// Run one process of the three.
///
/// # Errors
/// Bad options, missing assets, a link that cannot be opened, any process's failure.
pub fn run(args: &FinetuneArgs, role: RoleArg) -> Result<()> {
    let timeout = secs(args.timeout, "--timeout")?;
    let config = TcpConfig {
        read_timeout: timeout,
        write_timeout: timeout,
        connect_timeout: secs(args.connect_timeout, "--connect-timeout")?,
        max_first_frame: Some(remote::MAX_HELLO_BYTES),
        ..TcpConfig::default()
    };
    let backend = args.backend.open(false)?;
    match role {
        RoleArg::Dealer => dealer(args, config, backend),
        RoleArg::Server => party(args, PartyId::P0, config, backend),
        RoleArg::Client => party(args, PartyId::P1, config, backend),
    }
}

fn dealer(args: &FinetuneArgs, config: TcpConfig, backend: Arc<dyn Backend>) -> Result<()> {
    let Some(addr) = &args.listen else {
        return Err(Error::Usage(
            "--role dealer needs --listen ADDR (the parties' --dealer ADDR)".into(),
        ));
    };
    if args.connect.is_some() || args.dealer.is_some() {
        return Err(Error::Usage("--role dealer only listens (no --connect or --dealer)".into()));
    }
    let identity = args.link.identity(DEALER_NAME)?;
    let listener = link::listen(addr)?;
    let mut links = Vec::with_capacity(4);
    for _ in 0..4 {
        let (l, _) =
            link::accept(&listener, identity.as_ref(), config, "the parties (two links each)")?;
        links.push(l);
    }
    eprintln!("dealer: both parties connected; dealing");
    let run = remote::dealer(links, backend, config.read_timeout)?;
    println!(
        "dealer: {} chunks, {:.1} MB per party (largest chunk {:.1} MB), {} embedding-lookup answers; dealing {:.1} s for the setup and frozen part, {:.2} s per step; {:.1} s in all",
        run.stats.chunks,
        mb(run.stats.total_bytes),
        mb(run.stats.peak_chunk_bytes),
        run.answers,
        run.seconds[0],
        run.seconds[1],
        run.wall_seconds
    );
    if let Some(p) = finetune::peak_rss_bytes() {
        println!("peak memory of the dealer's process: {:.0} MB", mb(p));
    }
    if let Some(path) = &args.json {
        let summary = DealerSummary {
            role: "dealer",
            chunks: run.stats.chunks,
            bytes_per_party: run.stats.total_bytes,
            peak_chunk_bytes: run.stats.peak_chunk_bytes,
            helper_answers: run.answers,
            dealer_frozen_s: run.seconds[0],
            dealer_step_s: run.seconds[1],
            wall_s: run.wall_seconds,
            sentences: run.sentences,
            steps: run.steps,
            peak_rss_bytes: finetune::peak_rss_bytes(),
        };
        super::write_json(path, &summary)?;
    }
    Ok(())
}

/// What a party brings: P0 its model, P1 its sentences and batch order.
enum Inputs {
    Server { assets: Box<Assets>, head: (Vec<f64>, Vec<f64>) },
    Client { data: ClientData, order: Vec<Vec<usize>> },
}

fn inputs(args: &FinetuneArgs, id: PartyId) -> Result<Inputs> {
    if !matches!(args.pooling, PoolingArg::Mean) {
        return Err(Error::Usage(
            "secure fine-tuning pools by the mean; --pooling cls is for --plaintext".into(),
        ));
    }
    let seed = args.seed.unwrap_or_else(|| rand::Rng::random(&mut prifft::prg::os_rng()));
    Ok(match id {
        PartyId::P0 => {
            let assets = Assets::open(args.model_dir.as_deref())?;
            let plain =
                Classifier::new(&assets.weights, args.layers_trainable, Pooling::Mean, seed)?;
            let head =
                (plain.trainable_values("head.weight")?, plain.trainable_values("head.bias")?);
            eprintln!(
                "server (P0): all-MiniLM-L6-v2, top {} layers + head trainable (head seed {seed})",
                args.layers_trainable
            );
            Inputs::Server { assets: Box::new(assets), head }
        }
        PartyId::P1 => {
            let path = Assets::dir(args.model_dir.as_deref()).join("tokenizer.json");
            if !path.is_file() {
                return Err(Error::Data(format!(
                    "{} is missing: run scripts/fetch-assets.sh",
                    path.display()
                )));
            }
            let tokenizer = SentenceTokenizer::from_file(&path)?;
            let sentences = text::load(Corpus::Movies, args.data_dir.as_deref())?;
            let (train_set, _) = text::split(&sentences, seed, args.test, args.train)?;
            let texts: Vec<&str> = train_set.iter().map(|s| s.text.as_str()).collect();
            let tokens = tokenizer.encode_batch(&texts, Some(args.seq_len))?;
            let mut truncated = 0;
            for t in &texts {
                truncated += usize::from(tokenizer.encode(t)?.len() > args.seq_len);
            }
            let labels = train_set.iter().map(|s| u32::from(s.label)).collect();
            let order = train::batch_order(seed, train_set.len(), args.batch, args.epochs);
            eprintln!(
                "client (P1): {} training sentences ({truncated} truncated to L = {}), {} steps of {} in {} epoch(s) (split and order seed {seed})",
                train_set.len(),
                args.seq_len,
                order.len(),
                args.batch,
                args.epochs
            );
            Inputs::Client { data: ClientData { tokens, labels }, order }
        }
    })
}

fn party(
    args: &FinetuneArgs,
    id: PartyId,
    config: TcpConfig,
    backend: Arc<dyn Backend>,
) -> Result<()> {
    let Some(dealer_addr) = &args.dealer else {
        return Err(Error::Usage(
            "--role server|client needs --dealer ADDR (where `prifft finetune --role dealer` listens)"
                .into(),
        ));
    };
    if args.listen.is_none() == args.connect.is_none() {
        return Err(Error::Usage(
            "--role server|client needs --listen ADDR or --connect ADDR for the other party".into(),
        ));
    }
    super::ensure_assets(args)?;
    let inputs = inputs(args, id)?;
    let identity = args.link.identity(link::name_of(id))?;
    let listener = args.listen.as_deref().map(link::listen).transpose()?;
    let to_dealer =
        || link::connect(dealer_addr, identity.as_ref(), config, "the dealer", DEALER_NAME);
    let (stream, _) = to_dealer()?;
    let (helper, _) = to_dealer()?;
    let (peer, wire) = match (&listener, &args.connect) {
        (Some(l), _) => link::accept(l, identity.as_ref(), config, "the other party")?,
        (None, Some(addr)) => {
            link::connect(addr, identity.as_ref(), config, "the server", SERVER_NAME)?
        }
        (None, None) => unreachable!("checked above"),
    };
    let peer: Box<dyn Channel> = match args.net {
        Some(NetArg::Mem) | None => peer,
        Some(NetArg::Lan) => Box::new(Shaped::new(peer, NetModel::LAN)),
        Some(NetArg::Wan) => Box::new(Shaped::new(peer, NetModel::WAN)),
    };
    let links = PartyLinks { peer, stream, helper };
    let agreement = Agreement {
        trainable: args.layers_trainable,
        lr: args.lr,
        momentum: args.momentum,
        batch: args.batch,
        frozen_batch: args.frozen_batch.max(1),
        recompute_frozen: args.recompute_frozen,
        reveal_to_server: args.reveal_to.is_some(),
    };
    let bars = Bars::default();
    let progress = |p| bars.update(p);
    let timeout = config.read_timeout;
    let run = match &inputs {
        Inputs::Server { assets, head } => {
            let model = ServerModel { weights: &assets.weights, head: head.clone() };
            remote::server(&model, &agreement, links, backend.clone(), timeout, &progress)?
        }
        Inputs::Client { data, order } => {
            remote::client(data, order, &agreement, links, backend.clone(), timeout, &progress)?
        }
    };
    let role = if id == PartyId::P0 { "server" } else { "client" };
    let summary = summarise(role, &run, wire.map(|w| w.get()));
    println!(
        "{role}: {} step(s) on {} sentences; per step {:.2} s, {:.1} MB sent, {} rounds, {:.1} MB of preprocessing (backend {})",
        summary.steps,
        summary.sentences,
        summary.step_s,
        mb(summary.step_bytes),
        summary.step_rounds,
        mb(summary.key_bytes_per_step),
        backend.name()
    );
    println!(
        "{role}: frozen part (once per sentence) {:.1} s, {:.1} MB sent; setup {:.1} s, {:.1} MB",
        summary.frozen_s,
        mb(summary.frozen_bytes),
        summary.setup_s,
        mb(summary.setup_bytes)
    );
    if let (Some(s), Some(r)) = (summary.wire_bytes_sent, summary.wire_bytes_received) {
        println!(
            "{role}: on the wire to the other party (TLS 1.3 records included): {:.1} MB sent, {:.1} MB received",
            mb(s),
            mb(r)
        );
    }
    if let Some(p) = summary.peak_rss_bytes {
        println!("{role}: peak memory of this process {:.0} MB", mb(p));
    }
    match &run.revealed {
        Some(w) => {
            write_weights(&args.weights_out, w)?;
            println!(
                "server: the fine-tuned weights, revealed to the model owner: {}",
                args.weights_out.display()
            );
        }
        None if agreement.reveal_to_server => {
            println!(
                "client: sent its shares of the fine-tuned weights to the server (--reveal-to server)"
            );
        }
        None => println!(
            "{role}: the fine-tuned weights stay secret-shared ({} tensors; this process holds one share)",
            run.shares.len()
        ),
    }
    if let Some(path) = &args.json {
        super::write_json(path, &summary)?;
    }
    Ok(())
}

fn summarise(role: &'static str, run: &RemoteRun, wire: Option<(u64, u64)>) -> PartySummary {
    let steps = run.steps.len().max(1);
    PartySummary {
        role,
        step_s: run.steps.iter().map(|s| s.seconds).sum::<f64>() / steps as f64,
        step_bytes: run.steps.iter().map(|s| s.bytes_sent).sum::<u64>() / steps as u64,
        step_rounds: run.steps.first().map_or(0, |s| s.rounds),
        key_bytes_per_step: run.key_bytes_per_step,
        steps: run.steps.len(),
        sentences: run.sentences,
        setup_s: run.setup.seconds,
        setup_bytes: run.setup.bytes_sent + run.setup.bytes_received,
        frozen_s: run.frozen.seconds,
        frozen_bytes: run.frozen.bytes_sent,
        frozen_key_bytes_per_batch: run.frozen_key_bytes,
        peak_rss_bytes: finetune::peak_rss_bytes(),
        rss_after_first_step: run.steps.first().and_then(|s| s.rss_bytes),
        rss_after_last_step: run.steps.last().and_then(|s| s.rss_bytes),
        wire_bytes_sent: wire.map(|w| w.0),
        wire_bytes_received: wire.map(|w| w.1),
    }
}
