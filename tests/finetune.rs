//! Secure fine-tuning against plaintext training from the same state: a tiny BERT (2 layers,
//! hidden 32, 2 heads, L = 8, random weights), the top layer and the head trainable, 5 steps with
//! the same batches and dropout masks.

use std::sync::Arc;

use candle_core::{DType, Tensor};
use rand::SeedableRng;

mod common;

use prifft::backend::Cpu;
use prifft::finetune::{self, ClientData, DropoutMasks, SecureConfig, ServerModel};
use prifft::model::train::{self, Sgd};
use prifft::model::{BertConfig, Classifier, Pooling, TokenBatch, Weights};
use prifft::nn::head::SgdConfig;
use prifft::prg::ChaCha20Rng;

const SEQ: usize = 8;

fn sentences(n: usize, seed: u64) -> (TokenBatch, Vec<u32>) {
    common::tiny_sentences(n, SEQ, seed)
}

fn mean_ce(logits: &[f64], labels: &[u32]) -> f64 {
    logits
        .chunks(2)
        .zip(labels)
        .map(|(z, &y)| {
            let m = z[0].max(z[1]);
            let lse = m + ((z[0] - m).exp() + (z[1] - m).exp()).ln();
            lse - z[y as usize]
        })
        .sum::<f64>()
        / labels.len() as f64
}

fn tensor_vec(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

#[test]
fn five_secure_steps_follow_plaintext_training_from_the_same_state() {
    five_steps(Arc::new(Cpu), false);
}

/// The same with the frozen part (embedding lookup, frozen layer) run inside every step on the
/// step's batch instead of once per sentence: the same agreement with plaintext.
#[test]
fn five_secure_steps_with_every_layer_forward_follow_plaintext_training() {
    five_steps(Arc::new(Cpu), true);
}

/// The same five steps with every party's heavy work on the GPU (lavapipe in CI).
#[cfg(feature = "gpu")]
#[test]
fn five_secure_steps_on_the_gpu_backend_follow_plaintext_training() {
    if let Some(gpu) = common::gpu_device() {
        five_steps(Arc::new(gpu), false);
    }
}

fn five_steps(backend: Arc<dyn prifft::backend::Backend>, recompute_frozen: bool) {
    let config = BertConfig::tiny(2, 32, 2);
    let weights = Weights::random(&config, 11, DType::F32).unwrap();
    let (tokens, labels) = sentences(24, 3);
    let steps: Vec<Vec<usize>> =
        (0..5).map(|s| (0..4).map(|i| (s * 4 + i) % 20).collect()).collect();
    let (lr, momentum, seed) = (0.05, 0.9, 5u64);

    // Plaintext: candle, f32.
    let model = Classifier::new(&weights, 1, Pooling::Mean, 9).unwrap();
    let vars = model.trainable_vars();
    let head_w = tensor_vec(vars.iter().find(|(n, _)| n == "head.weight").unwrap().1.as_tensor());
    let head_b = tensor_vec(vars.iter().find(|(n, _)| n == "head.bias").unwrap().1.as_tensor());
    let mut sgd = Sgd::new(vars.iter().map(|(_, v)| v.clone()).collect(), lr, momentum);
    let mut dropout = train::stream(seed, 2);
    let mut plain_losses = Vec::new();
    for which in &steps {
        let batch = tokens.select(which);
        let y: Vec<u32> = which.iter().map(|&i| labels[i]).collect();
        plain_losses.push(train::step(&model, &mut sgd, &batch, &y, &mut dropout).unwrap());
    }

    // Secure: the same weights, head, batches and dropout masks.
    let cfg = SecureConfig {
        trainable: 1,
        sgd: SgdConfig { lr, momentum, batch: 4 },
        frozen_batch: 8,
        recompute_frozen,
        dropout: DropoutMasks::Replay(Box::new(train::stream(seed, 2))),
        net: None,
        offline_first: false,
    };
    let server = ServerModel { weights: &weights, head: (head_w, head_b) };
    let data = ClientData { tokens: tokens.clone(), labels: labels.clone() };
    let run = finetune::train(&server, &data, &steps, &cfg, backend.clone(), &|_| {}).unwrap();
    let secure_losses: Vec<f64> = (0..steps.len())
        .map(|i| {
            let y: Vec<u32> = steps[i].iter().map(|&j| labels[j]).collect();
            mean_ce(&run.logits(i).unwrap(), &y)
        })
        .collect();
    println!("plain  {plain_losses:?}\nsecure {secure_losses:?}");
    let revealed = run.reveal().unwrap();
    let mut worst = (0.0f64, String::new());
    for (name, _, v) in &revealed {
        let plain = tensor_vec(vars.iter().find(|(n, _)| n == name).unwrap().1.as_tensor());
        for (a, b) in v.iter().zip(&plain) {
            if (a - b).abs() > worst.0 {
                worst = ((a - b).abs(), name.clone());
            }
        }
    }
    println!("worst weight difference {worst:?}");
    println!(
        "step bytes {} rounds {} key bytes {} frozen {:?}",
        run.steps[0].bytes_sent, run.steps[0].rounds, run.key_bytes_per_step, run.frozen
    );
    for (p, s) in plain_losses.iter().zip(&secure_losses) {
        assert!((p - s).abs() < 2e-3, "losses {plain_losses:?} vs {secure_losses:?}");
    }
    assert!(worst.0 < 2e-3, "{worst:?}");

    // Held-out sentences: the securely fine-tuned weights predict what plaintext's predict.
    let secure = Classifier::new(&weights, 1, Pooling::Mean, 9).unwrap();
    for (name, _, v) in &revealed {
        secure.set_trainable(name, v).unwrap();
    }
    let (held_out, _) = sentences(32, 77);
    let a = train::predictions(&secure, &held_out).unwrap();
    let b = train::predictions(&model, &held_out).unwrap();
    assert_eq!(a, b);
    // The same steps with the CrypTen-style protocol set: more bytes per step.
    let base = finetune::baseline_steps(&server, &data, &steps[..2], &cfg, backend).unwrap();
    println!("baseline steps {base:?}");
    for (b, p) in base.iter().zip(&run.steps) {
        assert!(b.bytes_sent > 2 * p.bytes_sent, "baseline {b:?} vs prifft {p:?}");
    }
    // The run's accounting: every step sent bytes in a bounded number of rounds.
    assert!(run.steps.iter().all(|s| s.bytes_sent > 0 && s.rounds > 0 && s.rounds < 400));
    assert!(run.key_bytes_per_step > 0 && (recompute_frozen || run.frozen_key_bytes > 0));
}

fn tiny_run(tokens: TokenBatch, labels: Vec<u32>, trainable: usize) -> prifft::Result<()> {
    faulty_run(tokens, labels, trainable, finetune::Faults::default())
}

fn faulty_run(
    tokens: TokenBatch,
    labels: Vec<u32>,
    trainable: usize,
    faults: finetune::Faults,
) -> prifft::Result<()> {
    let weights = Weights::random(&BertConfig::tiny(2, 16, 2), 1, DType::F32).unwrap();
    let cfg = SecureConfig {
        trainable,
        sgd: SgdConfig { lr: 0.01, momentum: 0.9, batch: 2 },
        frozen_batch: 4,
        recompute_frozen: false,
        dropout: DropoutMasks::Dealer,
        net: None,
        offline_first: false,
    };
    let server = ServerModel { weights: &weights, head: (vec![0.0; 32], vec![0.0; 2]) };
    let data = ClientData { tokens, labels };
    let steps = [vec![0, 1], vec![2, 3]];
    finetune::train_with_faults(&server, &data, &steps, &cfg, Arc::new(Cpu), &|_| {}, faults)
        .map(drop)
}

#[test]
fn bad_inputs_are_clear_errors_and_stop_every_thread() {
    let (tokens, labels) = sentences(4, 1);
    // A token outside the vocabulary: the client's own check, before any key leaves it.
    let mut bad = tokens.clone();
    bad.ids[3] = 999;
    let e = tiny_run(bad, labels.clone(), 1).unwrap_err().to_string();
    assert!(e.contains("outside the vocabulary"), "{e}");
    // A label that is not 0 or 1, training every layer, a step over missing sentences.
    let e = tiny_run(tokens.clone(), vec![0, 1, 2, 0], 1).unwrap_err().to_string();
    assert!(e.contains("each 0 or 1"), "{e}");
    let e = tiny_run(tokens.clone(), labels.clone(), 2).unwrap_err().to_string();
    assert!(e.contains("at most 1 of the 2 layers"), "{e}");
    let e = tiny_run(tokens.rows(0..1), labels[..1].to_vec(), 1).unwrap_err().to_string();
    assert!(e.contains("non-empty batch"), "{e}");
}

/// A dealer whose stream ends early (before the setup, in the frozen part, in the first step) and
/// a client that vanishes mid-step end the run with an error naming the cause — the party
/// waiting on the stream or on the vanished peer stops, and so do the dealer and the helper
/// (`train` returns only once every thread has).
#[test]
fn a_stream_that_ends_early_or_a_peer_that_quits_mid_step_is_a_clear_error() {
    use finetune::Faults;
    let (tokens, labels) = sentences(4, 1);
    for chunks in [0, 1, 3, 6] {
        let faults = Faults { dealer_chunks: Some(chunks), ..Faults::default() };
        let e = faulty_run(tokens.clone(), labels.clone(), 1, faults).unwrap_err().to_string();
        assert!(e.contains("the dealer stopped"), "{chunks} chunks: {e}");
        assert!(e.contains(&format!("chunk {chunks}")), "{chunks} chunks: {e}");
    }
    for step in [0, 1] {
        let faults = Faults { client_quits_in_step: Some(step), ..Faults::default() };
        let e = faulty_run(tokens.clone(), labels.clone(), 1, faults).unwrap_err().to_string();
        assert!(e.contains(&format!("the client quits in step {step}")), "{e}");
    }
    // Without faults the same run completes.
    faulty_run(tokens, labels, 1, Faults::default()).unwrap();
}

/// The embedding lookup's shares reconstruct the table's rows; the client's copy of the table
/// is masked everywhere; the helper's answers are re-randomised (the same keys twice give two
/// different answers, so the client never sees s₁·B, a fixed combination of table rows).
#[test]
fn the_embedding_lookup_gives_shares_of_the_rows_and_hides_the_table() {
    use prifft::nn::embedding::{self, Helper, Server, TableSeeds};
    use prifft::ring::RingTensor;
    let (vocab, d) = (1000, 8);
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let table = RingTensor::random(&[vocab, d], &mut rng);
    let seeds = TableSeeds::random(&mut rng);
    let (mut server, masked) = Server::new(&table, &seeds).unwrap();
    let mut helper = Helper::new(&seeds, vocab, d).unwrap();
    let rows_differ =
        table.as_slice().chunks(d).zip(masked.as_slice().chunks(d)).all(|(a, b)| a != b);
    assert!(rows_differ, "a row of the masked table equals the table's");
    let ids: Vec<u32> = vec![0, 999, 17, 17, 512];
    let [k0, k1] = embedding::query(&ids, vocab, &mut rng).unwrap();
    let s0 = server.share(&Cpu, &k0).unwrap();
    let answer = helper.answer(&Cpu, &k1).unwrap();
    let s1 = embedding::client_share(&masked, &ids, &answer).unwrap();
    let rows = s0.tensor().add(s1.tensor()).unwrap();
    for (i, &t) in ids.iter().enumerate() {
        let t = t as usize;
        assert_eq!(&rows.as_slice()[i * d..(i + 1) * d], &table.as_slice()[t * d..(t + 1) * d]);
    }
    let again = helper.answer(&Cpu, &k1).unwrap();
    assert_ne!(answer.as_slice(), again.as_slice(), "the helper's answer is not re-randomised");
    // Out-of-vocabulary ids and keys of another domain are errors.
    assert!(embedding::query(&[1000], vocab, &mut rng).is_err());
    let [other, _] = embedding::query(&[3], 64, &mut rng).unwrap();
    assert!(server.share(&Cpu, &other).is_err());
}

/// The parties' inputs never print their values.
#[test]
fn inputs_print_no_secrets() {
    let weights = Weights::random(&BertConfig::tiny(2, 16, 2), 1, DType::F32).unwrap();
    let server = ServerModel { weights: &weights, head: (vec![0.123456; 32], vec![0.654321; 2]) };
    let text = format!("{server:?}");
    assert!(!text.contains("0.123456") && !text.contains("0.654321"), "{text}");
    let (tokens, labels) = sentences(3, 9);
    let data = ClientData { tokens: tokens.clone(), labels };
    let text = format!("{data:?}");
    let ids = format!("{:?}", &tokens.ids[..4]);
    assert!(!text.contains(&ids[1..ids.len() - 1]), "{text}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// What arrives from outside for the embedding lookup — the helper's seeds, a key batch, an
    /// answer — is checked: any other length or shape is an error, never a panic.
    #[test]
    fn garbage_for_the_embedding_lookup_is_an_error(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        rows in 0usize..8,
        cols in 0usize..12,
    ) {
        use prifft::nn::embedding::{self, TableSeeds};
        use prifft::ring::RingTensor;
        if bytes.len() != 64 {
            proptest::prop_assert!(TableSeeds::from_bytes(&bytes).is_err());
        }
        let _ = prifft::fss::KeyBatch::from_bytes(&bytes);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let table = RingTensor::random(&[16, 8], &mut rng);
        let ids = [3u32, 5, 7];
        let answer = RingTensor::zeros(&[rows, cols]);
        let r = embedding::client_share(&table, &ids, &answer);
        proptest::prop_assert_eq!(r.is_ok(), rows == 3 && cols == 8);
    }
}
