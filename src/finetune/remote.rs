//! Secure fine-tuning as three processes: the server (P0, the weights), the client (P1, the
//! sentences and labels) and the dealer, each on its own machine if need be, over
//! authenticated links (`prifft finetune --role server|client|dealer`).
//!
//! **Why three.** The dealer knows every mask and key it deals; in either party's process it
//! would see the other party's masks, and with them the other party's openings would reveal
//! everything. So the dealer — also the embedding lookup's helper — is a process of its own,
//! trusted not to collude with either party (the same trust as in one process, where it is a
//! thread the parties cannot reach).
//!
//! **Links.** P0 and P1 talk over one link (`peer`); each party opens two links to the dealer:
//! `stream`, on which the dealer sends the party its chunks as it deals them
//! ([`crate::mpc::stream::ChunkReceiver::forward`] / [`crate::mpc::stream::receive`]), and
//! `helper`, on which P0 sends the word table's mask seeds once and P1 sends its DPF keys and
//! gets the helper's answers, one per frozen batch.
//!
//! **Handshake.** On `peer`, each party sends a hello: the protocol version, the settings
//! both must agree on ([`Agreement`]: a mismatch is refused on both sides with both values
//! named), and its half of the public plan — P0 the model's sizes, P1 the number of sentences,
//! their length and each step's batch (indices into its sentences; the batch order is public,
//! as in one process). Both compute the plan and send it, with their party and the link's
//! role, as the first frame on each dealer link; the dealer deals only if all four agree.
//!
//! **What each process learns.** P0 and P1: as in one process (openings under fresh masks,
//! the public plan). The dealer: the public plan, P0's table-mask seeds and P1's helper keys
//! (DPF keys that hide the token ids), nothing else — it sees no opening. With
//! `reveal_to_server`, P1 sends its shares of the fine-tuned weights to P0 at the end, which
//! then holds them in the clear: the model owner's weights, returned to it.
//!
//! **Failures.** Every link read has a timeout; a peer or dealer that disconnects, sends a
//! malformed frame or stops dealing ends the run with an error naming the link, and the other
//! processes see their links close and stop too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{
    ClientData, DataShape, DropoutMasks, HelperLink, Io, LocalChannel, ModelShape, PartyOut,
    PhaseCost, Progress, Revealed, ServerModel, Shape, data_shape, dealer_plan, helper_serve,
    party, reveal_one, server_inputs,
};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::mpc::stream::{self, StreamStats};
use crate::mpc::{PartyCtx, PartyId, Preproc, Share};
use crate::net::Channel;
use crate::nn::head::SgdConfig;
use crate::ring::RingTensor;

/// The protocol's name and version, checked in every hello.
pub const PROTOCOL: &str = "prifft-finetune/1";

/// Largest hello frame (the plan lists every step's batch: ~10 bytes per sentence per epoch).
pub const MAX_HELLO_BYTES: u64 = 16 << 20;

/// The settings both parties bring and must agree on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// Trainable top layers k.
    pub trainable: usize,
    /// SGD's learning rate.
    pub lr: f64,
    /// SGD's momentum.
    pub momentum: f64,
    /// Sentences per step (the gradient's divisor).
    pub batch: usize,
    /// Sentences per frozen-part batch.
    pub frozen_batch: usize,
    /// Whether the frozen part runs inside every step (see
    /// [`SecureConfig::recompute_frozen`](super::SecureConfig::recompute_frozen)).
    pub recompute_frozen: bool,
    /// Whether P1 sends its shares of the fine-tuned weights to P0 at the end.
    pub reveal_to_server: bool,
}

/// A party's first message to the other: the protocol, the settings and its half of the plan.
#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    protocol: String,
    agreement: Agreement,
    half: Half,
}

/// A party's half of the public plan.
#[derive(Debug, Serialize, Deserialize)]
enum Half {
    /// P0's: the model's sizes.
    Model(ModelShape),
    /// P1's: the sentences' count and length, and the batches.
    Data(DataShape),
}

/// Send our hello, read the other party's and check its protocol and settings; the plan from
/// both halves.
fn handshake(peer: &mut Box<dyn Channel>, ours: Half, agreement: &Agreement) -> Result<Shape> {
    let (who, role) = match &ours {
        Half::Model(_) => ("the client", "server"),
        Half::Data(_) => ("the server", "client"),
    };
    let hello = Hello { protocol: PROTOCOL.into(), agreement: agreement.clone(), half: ours };
    send_json(peer, &hello)?;
    let theirs: Hello = recv_json(peer, who)?;
    check_protocol(&theirs.protocol, who)?;
    check_agreement(agreement, &theirs.agreement, who)?;
    let (model, data) = match (hello.half, theirs.half) {
        (Half::Model(m), Half::Data(d)) | (Half::Data(d), Half::Model(m)) => (m, d),
        _ => {
            return Err(Error::Usage(format!(
                "the peer is also a {role}: one side runs --role server, the other --role client"
            )));
        }
    };
    Shape::from_parts(
        &model,
        &data,
        agreement.trainable,
        agreement.frozen_batch,
        agreement.recompute_frozen,
    )
}

/// Which of a party's two links to the dealer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DealerLink {
    /// The dealer's chunks to the party.
    Stream,
    /// The embedding lookup's helper.
    Helper,
}

/// A party's first message on each dealer link.
#[derive(Debug, Serialize, Deserialize)]
struct DealerHello {
    protocol: String,
    party: u8,
    link: DealerLink,
    plan: Shape,
}

/// A party's three links.
pub struct PartyLinks {
    /// To the other party.
    pub peer: Box<dyn Channel>,
    /// From the dealer: the chunks.
    pub stream: Box<dyn Channel>,
    /// To and from the dealer as the embedding lookup's helper.
    pub helper: Box<dyn Channel>,
}

impl std::fmt::Debug for PartyLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartyLinks").finish_non_exhaustive()
    }
}

/// What a party's run reports.
#[derive(Debug)]
pub struct RemoteRun {
    /// The trainable parameters' names and shapes.
    pub names: Vec<(String, Vec<usize>)>,
    /// This party's shares of the fine-tuned parameters (at 2^24), in `names`' order.
    pub shares: Vec<Share>,
    /// The fine-tuned parameters in the clear: P0's, when the run reveals them to it.
    pub revealed: Option<Vec<Revealed>>,
    /// Sentences and steps of the plan.
    pub sentences: usize,
    /// Setup, frozen part, each step: this party's cost.
    pub setup: PhaseCost,
    /// The frozen part over all sentences.
    pub frozen: PhaseCost,
    /// Each step.
    pub steps: Vec<PhaseCost>,
    /// This party's preprocessing bytes of the first step.
    pub key_bytes_per_step: u64,
    /// This party's preprocessing bytes of the first frozen batch.
    pub frozen_key_bytes: u64,
}

/// Run P0: the model owner's side, over `links`.
///
/// # Errors
/// A handshake mismatch (settings, protocol, sizes), any link's failure or timeout, the
/// protocol's errors.
pub fn server(
    model: &ServerModel<'_>,
    agreement: &Agreement,
    links: PartyLinks,
    backend: Arc<dyn Backend>,
    timeout: Duration,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<RemoteRun> {
    let PartyLinks { mut peer, stream, helper } = links;
    let own = ModelShape::of(model.weights.config());
    let plan = handshake(&mut peer, Half::Model(own), agreement)?;
    let inputs = server_inputs(model, &plan)?;
    let (rx, mut helper) = open_dealer(stream, helper, PartyId::P0, &plan, timeout)?;
    let mut ctx = context(PartyId::P0, peer, backend)?;
    let io = Io::Server { inputs: &inputs, helper: &mut helper };
    let out = party(&mut ctx, &plan, &sgd(agreement), false, rx, io, progress)?;
    finish(out, ctx, &plan, agreement)
}

/// Run P1: the data owner's side, over `links`, training on the batches `steps` (indices into
/// `data`'s sentences).
///
/// # Errors
/// As [`server`].
pub fn client(
    data: &ClientData,
    steps: &[Vec<usize>],
    agreement: &Agreement,
    links: PartyLinks,
    backend: Arc<dyn Backend>,
    timeout: Duration,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<RemoteRun> {
    let PartyLinks { mut peer, stream, helper } = links;
    let plan = handshake(&mut peer, Half::Data(data_shape(data, steps)?), agreement)?;
    let (rx, mut helper) = open_dealer(stream, helper, PartyId::P1, &plan, timeout)?;
    let mut ctx = context(PartyId::P1, peer, backend)?;
    let io = Io::Client { data, helper: &mut helper, quit: None };
    let out = party(&mut ctx, &plan, &sgd(agreement), false, rx, io, progress)?;
    finish(out, ctx, &plan, agreement)
}

fn sgd(a: &Agreement) -> SgdConfig {
    SgdConfig { lr: a.lr, momentum: a.momentum, batch: a.batch }
}

fn context(
    id: PartyId,
    peer: Box<dyn Channel>,
    backend: Arc<dyn Backend>,
) -> Result<PartyCtx<LocalChannel>> {
    Ok(PartyCtx::new(id, peer, Preproc::new(id, [0; 16]))?.with_backend(backend))
}

/// Greet the dealer on both links with the plan; the stream's receiving end and the helper.
fn open_dealer(
    mut stream: Box<dyn Channel>,
    mut link: Box<dyn Channel>,
    id: PartyId,
    plan: &Shape,
    timeout: Duration,
) -> Result<(stream::ChunkReceiver, RemoteHelper)> {
    for (l, kind) in [(&mut stream, DealerLink::Stream), (&mut link, DealerLink::Helper)] {
        let hello = DealerHello {
            protocol: PROTOCOL.into(),
            party: id.index() as u8,
            link: kind,
            plan: plan.clone(),
        };
        send_json(l, &hello).map_err(|e| e.during("greeting the dealer"))?;
    }
    let rx = stream::receive(id, stream, 1).with_timeout(timeout);
    Ok((rx, RemoteHelper { link, hidden: plan.hidden, closed: false }))
}

/// The end of a party's run: with `reveal_to_server`, P1 sends its shares and P0 adds them.
fn finish(
    out: PartyOut,
    mut ctx: PartyCtx<LocalChannel>,
    plan: &Shape,
    agreement: &Agreement,
) -> Result<RemoteRun> {
    let id = ctx.id;
    let names = plan.trainable_names();
    let revealed = if agreement.reveal_to_server {
        match id {
            PartyId::P1 => {
                let mut bytes = Vec::new();
                for s in &out.params {
                    bytes.extend_from_slice(&s.tensor().to_le_bytes());
                }
                ctx.channel().send(bytes)?;
                None
            }
            PartyId::P0 => {
                let bytes = ctx.channel().recv()?;
                let total: usize = out.params.iter().map(|s| s.tensor().len()).sum();
                if bytes.len() != 8 * total {
                    return Err(Error::Data(format!(
                        "the client sent {} bytes of weight shares, expected {}",
                        bytes.len(),
                        8 * total
                    )));
                }
                let mut at = 0;
                let mut out_w = Vec::with_capacity(names.len());
                for ((name, shape), s) in names.iter().zip(&out.params) {
                    let n = s.tensor().len();
                    let theirs = RingTensor::from_le_bytes(shape, &bytes[at..at + 8 * n])?;
                    at += 8 * n;
                    out_w.push(reveal_one(name, shape, s.tensor(), &theirs)?);
                }
                Some(out_w)
            }
        }
    } else {
        None
    };
    Ok(RemoteRun {
        names,
        shares: out.params,
        revealed,
        sentences: plan.sentences,
        setup: out.setup,
        frozen: out.frozen,
        steps: out.steps,
        key_bytes_per_step: out.step_key_bytes,
        frozen_key_bytes: out.frozen_key_bytes,
    })
}

/// A party's helper link to the dealer.
struct RemoteHelper {
    link: Box<dyn Channel>,
    /// The answers' width d.
    hidden: usize,
    /// P0's link goes quiet after the seeds; P1's after `done`.
    closed: bool,
}

/// Helper answers: `0` then the [tokens, d] tensor, or `1` then the helper's error.
const ANSWER_OK: u8 = 0;
const ANSWER_ERR: u8 = 1;
/// P1's questions: `K` then a key batch; `D`: done.
const ASK: u8 = b'K';
const DONE: u8 = b'D';

impl HelperLink for RemoteHelper {
    fn seeds(&mut self, bytes: Vec<u8>) -> Result<()> {
        self.link.send(bytes).map_err(|e| dealer_link(e.into()))?;
        self.closed = true;
        Ok(())
    }

    fn ask(&mut self, keys: Vec<u8>, tokens: usize) -> Result<RingTensor> {
        let mut frame = Vec::with_capacity(keys.len() + 1);
        frame.push(ASK);
        frame.extend_from_slice(&keys);
        self.link.send(frame).map_err(|e| dealer_link(e.into()))?;
        let answer = self.link.recv().map_err(|e| dealer_link(e.into()))?;
        match answer.split_first() {
            Some((&ANSWER_OK, t)) => {
                RingTensor::from_le_bytes(&[tokens, self.hidden], t).map_err(|_| {
                    Error::Data(
                        "the embedding helper (the dealer) answered with the wrong size".into(),
                    )
                })
            }
            Some((&ANSWER_ERR, why)) => Err(Error::Data(format!(
                "the embedding helper (the dealer) failed: {}",
                String::from_utf8_lossy(why)
            ))),
            _ => {
                Err(Error::Data("the embedding helper (the dealer) sent a malformed answer".into()))
            }
        }
    }

    fn done(&mut self) -> Result<()> {
        if !self.closed {
            self.link.send(vec![DONE]).map_err(|e| dealer_link(e.into()))?;
            self.closed = true;
        }
        Ok(())
    }
}

fn dealer_link(e: Error) -> Error {
    e.during("on the link to the dealer (the embedding helper)")
}

/// What the dealer's process reports.
#[derive(Clone, Copy, Debug)]
pub struct DealerRun {
    /// The stream's statistics (P0's half; P1's is the same size).
    pub stats: StreamStats,
    /// Sentences and steps of the plan.
    pub sentences: usize,
    /// Steps dealt.
    pub steps: usize,
    /// Key batches the helper answered.
    pub answers: usize,
    /// Dealing time: setup and frozen part, and per step.
    pub seconds: [f64; 2],
    /// Wall time of the whole run.
    pub wall_seconds: f64,
}

/// Run the dealer (and helper) for the four links the parties opened to it (in any order):
/// check that both parties greet it with the same plan, then deal and answer until both are
/// done.
///
/// # Errors
/// Links that are not the four expected ones, plans that differ, a party that disconnects
/// before the end, the helper's errors.
pub fn dealer(
    links: Vec<Box<dyn Channel>>,
    backend: Arc<dyn Backend>,
    timeout: Duration,
) -> Result<DealerRun> {
    let t = Instant::now();
    if links.len() != 4 {
        return Err(Error::Usage(format!("the dealer needs 4 links, got {}", links.len())));
    }
    let mut slots: [Option<Box<dyn Channel>>; 4] = [None, None, None, None];
    let mut plan: Option<Shape> = None;
    for mut l in links {
        let hello: DealerHello = recv_json(&mut l, "a party")?;
        check_protocol(&hello.protocol, "a party")?;
        let idx = match (hello.party, hello.link) {
            (0, DealerLink::Stream) => 0,
            (0, DealerLink::Helper) => 1,
            (1, DealerLink::Stream) => 2,
            (1, DealerLink::Helper) => 3,
            (p, k) => {
                return Err(Error::Data(format!("a link greeted the dealer as party {p} ({k:?})")));
            }
        };
        if slots[idx].is_some() {
            return Err(Error::Data(format!(
                "two links greeted the dealer as party {} ({:?})",
                hello.party, hello.link
            )));
        }
        match &plan {
            Some(p) if *p != hello.plan => {
                return Err(Error::Usage(
                    "the parties sent the dealer different plans (settings or sizes)".into(),
                ));
            }
            Some(_) => {}
            None => plan = Some(hello.plan),
        }
        slots[idx] = Some(l);
    }
    // The plan from another process is checked as P0's and P1's halves were.
    let checked = plan.expect("four hellos").recheck()?;
    let [s0, h0, s1, h1] = slots.map(|s| s.expect("each link once"));
    let seconds = Arc::new(std::sync::Mutex::new([0.0f64; 2]));
    let dealt = dealer_plan(checked.clone(), DropoutMasks::Dealer, seconds.clone());
    let ([rx0, rx1], handle) = stream::spawn(1, dealt);
    let forward = |rx: stream::ChunkReceiver, mut link: Box<dyn Channel>, who: &'static str| {
        std::thread::spawn(move || -> Result<usize> {
            rx.with_timeout(timeout)
                .forward(&mut link)
                .map_err(|e| Error::from(e).during(format!("streaming {who}'s material")))
        })
    };
    let f0 = forward(rx0, s0, "the server");
    let f1 = forward(rx1, s1, "the client");
    let answers = serve_helper(&*backend, &checked, h0, h1);
    let sent = [f0, f1].map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
    let stats = handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    let answers = answers?;
    for s in sent {
        s?;
    }
    let stats = stats?;
    let [a, b] = *seconds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(DealerRun {
        stats,
        sentences: checked.sentences,
        steps: checked.steps.len(),
        answers,
        seconds: [a, b / checked.steps.len() as f64],
        wall_seconds: t.elapsed().as_secs_f64(),
    })
}

/// The helper on the dealer's side: P0's seeds, then P1's questions until it is done.
fn serve_helper(
    backend: &dyn Backend,
    plan: &Shape,
    mut h0: Box<dyn Channel>,
    h1: Box<dyn Channel>,
) -> Result<usize> {
    let seeds = h0.recv().map_err(|e| Error::from(e).during("waiting for the server's seeds"))?;
    drop(h0);
    let mut answers = 0;
    let h1 = std::cell::RefCell::new(h1);
    helper_serve(
        backend,
        plan.vocab,
        plan.hidden,
        Some(seeds),
        || {
            let q = h1
                .borrow_mut()
                .recv()
                .map_err(|e| Error::from(e).during("waiting for the client's keys"))?;
            match q.split_first() {
                Some((&ASK, keys)) => Ok(Some(keys.to_vec())),
                Some((&DONE, [])) => Ok(None),
                _ => Err(Error::Data("the client sent the helper a malformed frame".into())),
            }
        },
        |answer| {
            let frame = match answer {
                Ok(t) => {
                    answers += 1;
                    let mut f = vec![ANSWER_OK];
                    f.extend_from_slice(&t.to_le_bytes());
                    f
                }
                Err(e) => {
                    let mut f = vec![ANSWER_ERR];
                    f.extend_from_slice(e.to_string().as_bytes());
                    f
                }
            };
            h1.borrow_mut().send(frame)?;
            Ok(true)
        },
    )?;
    Ok(answers)
}

fn send_json<T: Serialize>(link: &mut Box<dyn Channel>, value: &T) -> Result<()> {
    link.send(serde_json::to_vec(value).expect("serialisable"))?;
    Ok(())
}

fn recv_json<T: for<'de> Deserialize<'de>>(link: &mut Box<dyn Channel>, who: &str) -> Result<T> {
    let bytes =
        link.recv().map_err(|e| Error::from(e).during(format!("waiting for {who}'s hello")))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::Data(format!(
            "{who} sent a hello this build cannot read ({e}): is it a prifft finetune process of the same version?"
        ))
    })
}

fn check_protocol(theirs: &str, who: &str) -> Result<()> {
    if theirs != PROTOCOL {
        return Err(Error::Usage(format!(
            "{who} speaks {theirs}, this build {PROTOCOL}: run the same prifft version"
        )));
    }
    Ok(())
}

fn check_agreement(ours: &Agreement, theirs: &Agreement, who: &str) -> Result<()> {
    if ours != theirs {
        return Err(Error::Usage(format!(
            "{who} runs with different settings: ours {ours:?}, theirs {theirs:?} (--layers-trainable, --lr, --momentum, --batch, --frozen-batch, --recompute-frozen and --reveal-to must match)"
        )));
    }
    Ok(())
}
