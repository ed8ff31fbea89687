//! Memory stays flat over many secure steps: the dealer streams one layer's material at a time
//! and nothing accumulates per step (its own test binary, so no other test shares the process).

use std::sync::Arc;

use candle_core::DType;
use rand::{Rng, SeedableRng};

use prifft::backend::Cpu;
use prifft::finetune::{self, ClientData, DropoutMasks, SecureConfig, ServerModel};
use prifft::model::{BertConfig, TokenBatch, Weights};
use prifft::nn::head::SgdConfig;
use prifft::prg::ChaCha20Rng;

#[test]
fn resident_memory_is_flat_over_100_steps() {
    let (seq, n) = (8, 16);
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let ids: Vec<u32> = (0..n * seq).map(|_| rng.random_range(1..64)).collect();
    let tokens = TokenBatch { ids, mask: vec![1; n * seq], rows: n, seq_len: seq };
    let labels: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
    let weights = Weights::random(&BertConfig::tiny(2, 32, 2), 2, DType::F32).unwrap();
    let cfg = SecureConfig {
        trainable: 1,
        sgd: SgdConfig { lr: 0.01, momentum: 0.9, batch: 4 },
        frozen_batch: 8,
        recompute_frozen: false,
        dropout: DropoutMasks::Dealer,
        net: None,
        offline_first: false,
    };
    let server = ServerModel { weights: &weights, head: (vec![0.01; 64], vec![0.0; 2]) };
    let data = ClientData { tokens, labels };
    let steps: Vec<Vec<usize>> =
        (0..100).map(|s| (0..4).map(|i| (4 * s + i) % n).collect()).collect();
    let run = finetune::train(&server, &data, &steps, &cfg, Arc::new(Cpu), &|_| {}).unwrap();
    let rss: Vec<u64> = run.steps.iter().map(|s| s.rss_bytes.unwrap_or(0)).collect();
    if rss[0] == 0 {
        return; // no /proc on this OS: nothing to compare
    }
    let (after10, last) = (rss[9], *rss.last().unwrap());
    println!("resident memory after step 10: {after10} B, after step 100: {last} B");
    assert!(
        last <= after10 + 16 * 1024 * 1024,
        "memory grew from {after10} to {last} bytes over 90 steps"
    );
}
