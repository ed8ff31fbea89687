//! Secure fine-tuning as three processes' worth of code — server, client and dealer, each on
//! its own links (mutual TLS over TCP on 127.0.0.1, from one pre-shared secret) — against
//! plaintext training from the same state, and the errors of a mismatched handshake or a
//! failing dealer.

use std::sync::Arc;
use std::time::Duration;

use candle_core::{DType, Tensor};

mod common;

use prifft::backend::Cpu;
use prifft::finetune::remote::{self, Agreement, PartyLinks, RemoteRun};
use prifft::finetune::{ClientData, ServerModel};
use prifft::model::train::{self, Sgd};
use prifft::model::{BertConfig, Classifier, Pooling, TokenBatch, Weights};
use prifft::mpc::PartyId;
use prifft::net::tcp::{Listener, TcpConfig};
use prifft::net::tls::{DEALER_NAME, TlsChannel, TlsIdentity};
use prifft::net::{Channel, mem};

const SEQ: usize = 8;
const PSK: [u8; 32] = [42; 32];

fn sentences(n: usize, seed: u64) -> (TokenBatch, Vec<u32>) {
    common::tiny_sentences(n, SEQ, seed)
}

fn tensor_vec(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

fn config(ms: u64) -> TcpConfig {
    let t = Duration::from_millis(ms);
    TcpConfig { read_timeout: t, write_timeout: t, connect_timeout: t, ..TcpConfig::default() }
}

fn identity(p: PartyId) -> TlsIdentity {
    TlsIdentity::from_psk(&PSK, p).unwrap()
}

/// A link to the dealer, whose certificate must be the dealer's.
fn to_dealer(addr: &str, p: PartyId) -> Box<dyn Channel> {
    Box::new(TlsChannel::connect_to(addr, &identity(p), config(30_000), DEALER_NAME).unwrap())
}

fn agreement(lr: f64) -> Agreement {
    Agreement {
        trainable: 1,
        lr,
        momentum: 0.9,
        batch: 4,
        frozen_batch: 8,
        recompute_frozen: false,
        reveal_to_server: true,
    }
}

/// Each party's settings: the learning rates, whether the frozen part runs in every step.
type Settings = ([f64; 2], bool);

/// The three processes' code on three threads, each link a real TLS connection.
fn three_parties(
    weights: &Weights,
    head: (Vec<f64>, Vec<f64>),
    data: &ClientData,
    steps: &[Vec<usize>],
) -> (RemoteRun, RemoteRun, remote::DealerRun) {
    let dealer_listener = Listener::bind("127.0.0.1:0").unwrap();
    let dealer_addr = dealer_listener.local_addr().unwrap().to_string();
    let peer_listener = Listener::bind("127.0.0.1:0").unwrap();
    let peer_addr = peer_listener.local_addr().unwrap().to_string();
    let timeout = Duration::from_secs(60);
    std::thread::scope(|s| {
        let dealer = s.spawn(|| {
            let id = TlsIdentity::from_psk_named(&PSK, DEALER_NAME).unwrap();
            let links: Vec<Box<dyn Channel>> = (0..4)
                .map(|_| {
                    Box::new(TlsChannel::accept(&dealer_listener, &id, config(30_000)).unwrap())
                        as Box<dyn Channel>
                })
                .collect();
            remote::dealer(links, Arc::new(Cpu), timeout)
        });
        let server = s.spawn(|| {
            let stream = to_dealer(&dealer_addr, PartyId::P0);
            let helper = to_dealer(&dealer_addr, PartyId::P0);
            let peer = Box::new(
                TlsChannel::accept(&peer_listener, &identity(PartyId::P0), config(30_000)).unwrap(),
            );
            let model = ServerModel { weights, head };
            let links = PartyLinks { peer, stream, helper };
            remote::server(&model, &agreement(0.05), links, Arc::new(Cpu), timeout, &|_| {})
        });
        let client = s.spawn(|| {
            let stream = to_dealer(&dealer_addr, PartyId::P1);
            let helper = to_dealer(&dealer_addr, PartyId::P1);
            let peer = Box::new(
                TlsChannel::connect(&peer_addr, &identity(PartyId::P1), config(30_000)).unwrap(),
            );
            let links = PartyLinks { peer, stream, helper };
            remote::client(data, steps, &agreement(0.05), links, Arc::new(Cpu), timeout, &|_| {})
        });
        let (srv, cli, dlr) = (server.join(), client.join(), dealer.join());
        (srv.unwrap().unwrap(), cli.unwrap().unwrap(), dlr.unwrap().unwrap())
    })
}

/// Five steps through three processes' links: the server ends with the fine-tuned weights
/// (revealed to it), within the fixed-point bound of plaintext training from the same state,
/// with identical predictions on held-out sentences. Dropout is off in this model, since the
/// dealer draws the masks from its own CSPRNG.
#[test]
fn server_client_and_dealer_over_tls_train_like_plaintext() {
    let mut config = BertConfig::tiny(2, 32, 2);
    config.hidden_dropout_prob = 0.0;
    config.attention_probs_dropout_prob = 0.0;
    let weights = Weights::random(&config, 11, DType::F32).unwrap();
    let (tokens, labels) = sentences(24, 3);
    let steps: Vec<Vec<usize>> =
        (0..5).map(|s| (0..4).map(|i| (s * 4 + i) % 20).collect()).collect();

    let model = Classifier::new(&weights, 1, Pooling::Mean, 9).unwrap();
    let vars = model.trainable_vars();
    let value =
        |name: &str| tensor_vec(vars.iter().find(|(n, _)| n == name).unwrap().1.as_tensor());
    let head = (value("head.weight"), value("head.bias"));
    let mut sgd = Sgd::new(vars.iter().map(|(_, v)| v.clone()).collect(), 0.05, 0.9);
    let mut dropout = train::stream(5, 2);
    for which in &steps {
        let y: Vec<u32> = which.iter().map(|&i| labels[i]).collect();
        train::step(&model, &mut sgd, &tokens.select(which), &y, &mut dropout).unwrap();
    }

    let data = ClientData { tokens, labels };
    let (server, client, dealer) = three_parties(&weights, head, &data, &steps);
    println!("dealer {dealer:?}\nserver steps {:?}", server.steps);
    let revealed = server.revealed.as_ref().expect("revealed to the server");
    assert!(client.revealed.is_none(), "the client never holds the weights");
    assert_eq!(server.shares.len(), client.shares.len());
    let mut worst = 0.0f64;
    for (name, _, v) in revealed {
        for (a, b) in v.iter().zip(value(name)) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(worst < 2e-3, "largest weight difference {worst}");
    let secure = Classifier::new(&weights, 1, Pooling::Mean, 9).unwrap();
    for (name, _, v) in revealed {
        secure.set_trainable(name, v).unwrap();
    }
    let (held_out, _) = sentences(32, 77);
    assert_eq!(
        train::predictions(&secure, &held_out).unwrap(),
        train::predictions(&model, &held_out).unwrap()
    );
    // The accounting: both parties counted the same steps; the dealer answered one lookup per
    // frozen batch and dealt chunks for the setup, frozen part and each step's layers.
    assert_eq!(server.steps.len(), 5);
    assert_eq!(client.steps.len(), 5);
    assert!(server.steps.iter().all(|s| s.bytes_sent > 0 && s.rounds > 0));
    assert!(server.key_bytes_per_step > 0 && client.key_bytes_per_step > 0);
    assert_eq!(dealer.answers, 3);
    assert_eq!(dealer.stats.chunks, 1 + 3 * 2 + 5 * 4);
}

type Pair = (Box<dyn Channel>, Box<dyn Channel>);

fn mem_pair() -> Pair {
    let (a, b) = mem::pair();
    (Box::new(a), Box::new(b))
}

/// A link that fails after `left` sends, as if its process had ended: the peer's reads then
/// fail too.
struct Cut {
    inner: Option<Box<dyn Channel>>,
    left: usize,
}

impl Channel for Cut {
    fn send(&mut self, payload: Vec<u8>) -> Result<(), prifft::net::NetError> {
        if self.left == 0 {
            self.inner = None;
        }
        self.left = self.left.saturating_sub(1);
        self.inner.as_mut().ok_or(prifft::net::NetError::PeerClosed)?.send(payload)
    }

    fn recv_frame(&mut self) -> Result<prifft::net::Frame, prifft::net::NetError> {
        self.inner.as_mut().ok_or(prifft::net::NetError::PeerClosed)?.recv_frame()
    }
}

/// Run the server and client over in-memory links with the given settings, and `dealer` on the
/// dealer's ends of their links; both parties' results.
fn parties_with_dealer(
    lr: [f64; 2],
    dealer: impl FnOnce([Box<dyn Channel>; 4]) + Send,
) -> (prifft::Result<RemoteRun>, prifft::Result<RemoteRun>) {
    parties_cut((lr, false), None, dealer)
}

/// As [`parties_with_dealer`], the client's link to the server failing after `cut` sends.
fn parties_cut(
    (lr, recompute): Settings,
    cut: Option<usize>,
    dealer: impl FnOnce([Box<dyn Channel>; 4]) + Send,
) -> (prifft::Result<RemoteRun>, prifft::Result<RemoteRun>) {
    let weights = Weights::random(&BertConfig::tiny(2, 16, 2), 1, DType::F32).unwrap();
    let (tokens, labels) = sentences(4, 1);
    let data = ClientData { tokens, labels };
    let steps = [vec![0, 1], vec![2, 3]];
    let (p0, p1) = mem_pair();
    let (s0, d0) = mem_pair();
    let (h0, e0) = mem_pair();
    let (s1, d1) = mem_pair();
    let (h1, e1) = mem_pair();
    let timeout = Duration::from_secs(20);
    std::thread::scope(|s| {
        s.spawn(move || dealer([d0, e0, d1, e1]));
        let server = s.spawn(|| {
            let model = ServerModel { weights: &weights, head: (vec![0.0; 32], vec![0.0; 2]) };
            let links = PartyLinks { peer: p0, stream: s0, helper: h0 };
            let a = Agreement { recompute_frozen: recompute, ..agreement(lr[0]) };
            remote::server(&model, &a, links, Arc::new(Cpu), timeout, &|_| {})
        });
        let client = s.spawn(move || {
            let peer: Box<dyn Channel> = match cut {
                Some(left) => Box::new(Cut { inner: Some(p1), left }),
                None => p1,
            };
            let links = PartyLinks { peer, stream: s1, helper: h1 };
            let a = Agreement { recompute_frozen: recompute, ..agreement(lr[1]) };
            remote::client(&data, &steps, &a, links, Arc::new(Cpu), timeout, &|_| {})
        });
        (server.join().unwrap(), client.join().unwrap())
    })
}

#[test]
fn mismatched_settings_are_refused_on_both_sides_before_the_dealer_is_reached() {
    let (server, client) = parties_with_dealer([0.05, 0.01], |links| {
        // Nothing reaches the dealer: its links stay silent until the parties drop them.
        let mut links = links;
        for l in &mut links {
            assert!(l.recv().is_err());
        }
    });
    for e in [server.unwrap_err().to_string(), client.unwrap_err().to_string()] {
        assert!(e.contains("different settings") && e.contains("lr: 0.05"), "{e}");
    }
}

#[test]
fn a_dealer_that_stops_or_sends_garbage_is_a_clear_error() {
    for (what, expected) in [(vec![b'E'], "the dealer stopped"), (vec![b'C', 1, 2], "malformed")] {
        let (server, client) = parties_with_dealer([0.05, 0.05], |mut links| {
            // Read the hellos, then end both streams at once (or send garbage).
            for l in &mut links {
                l.recv().unwrap();
            }
            links[0].send(what.clone()).unwrap();
            links[2].send(what.clone()).unwrap();
            // Keep the links open until the parties give up.
            let _ = links[1].recv();
            let _ = links[3].recv();
        });
        let (e0, e1) = (server.unwrap_err().to_string(), client.unwrap_err().to_string());
        assert!(e0.contains(expected) || e1.contains(expected), "{e0} / {e1}");
        assert!(e0.contains("chunk 0") || e1.contains("chunk 0"), "{e0} / {e1}");
    }
    // A link that greets the dealer with garbage: the dealer refuses it by name.
    let (a, mut b) = mem_pair();
    b.send(b"not a hello".to_vec()).unwrap();
    let mut links = vec![a];
    links.extend((0..3).map(|_| mem_pair().0));
    let e = remote::dealer(links, Arc::new(Cpu), Duration::from_secs(5)).unwrap_err().to_string();
    assert!(e.contains("hello"), "{e}");
}

/// The client's process ending mid-run (its link to the server fails after 150 messages, in the
/// first step): the server stops with an error naming the other party, and the dealer, whose
/// links to both close, returns instead of waiting (here it had already queued every chunk on
/// the in-memory links, so it finishes; its errors when a link fails first are the stream's and
/// the helper's).
#[test]
fn a_client_that_vanishes_mid_run_stops_the_server_and_the_dealer() {
    let dealt = std::sync::Mutex::new(None);
    let (server, client) = parties_cut(([0.05, 0.05], false), Some(150), |links| {
        let r = remote::dealer(links.into(), Arc::new(Cpu), Duration::from_secs(20));
        *dealt.lock().unwrap() = Some(r.map(|_| ()).map_err(|e| e.to_string()));
    });
    let e = server.unwrap_err().to_string();
    assert!(e.contains("the other party closed the connection"), "{e}");
    assert!(client.is_err());
    assert!(dealt.lock().unwrap().is_some(), "the dealer returned");
}

/// With the frozen part inside every step, the embedding lookup's helper answers in every step
/// and is told when the client is done: all three finish without an error.
#[test]
fn the_frozen_part_inside_every_step_runs_through_the_dealer_too() {
    let dealt = std::sync::Mutex::new(None);
    let (server, client) = parties_cut(([0.05, 0.05], true), None, |links| {
        let r = remote::dealer(links.into(), Arc::new(Cpu), Duration::from_secs(20));
        *dealt.lock().unwrap() = Some(r.map_err(|e| e.to_string()));
    });
    let (server, client) = (server.unwrap(), client.unwrap());
    let dealt = dealt.lock().unwrap().take().unwrap().unwrap();
    assert_eq!(dealt.answers, 2, "one lookup per step: {dealt:?}");
    assert_eq!(server.steps.len(), 2);
    assert_eq!(server.frozen_key_bytes, 0, "nothing before the steps");
    assert!(server.revealed.is_some() && client.revealed.is_none());
}

/// Plans from the wire are checked before the dealer allocates anything for them: four links
/// that agree on a plan with absurd sizes, or with a batch over sentences that do not exist,
/// are refused with an error naming the problem.
#[test]
fn the_dealer_refuses_a_plan_with_impossible_sizes() {
    let hello = |party: u8, link: &str, hidden: u64, index: u64| {
        format!(
            r#"{{"protocol":"{}","party":{party},"link":"{link}","plan":{{"layers":2,"trainable":1,"hidden":{hidden},"heads":2,"ffn":64,"seq":8,"vocab":64,"eps":1e-12,"attention_dropout":0.1,"hidden_dropout":0.1,"sentences":4,"frozen_batch":4,"recompute":false,"steps":[[0,{index}]]}}}}"#,
            remote::PROTOCOL
        )
    };
    for (hidden, index, says) in [(1u64 << 40, 1, "unusable"), (16, 4, "sentence indices")] {
        let mut links: Vec<Box<dyn Channel>> = Vec::new();
        let mut keep = Vec::new();
        for (party, link) in [(0, "Stream"), (0, "Helper"), (1, "Stream"), (1, "Helper")] {
            let (a, mut b) = mem_pair();
            b.send(hello(party, link, hidden, index).into_bytes()).unwrap();
            links.push(a);
            keep.push(b);
        }
        let e = remote::dealer(links, Arc::new(Cpu), Duration::from_secs(5)).unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }
}
