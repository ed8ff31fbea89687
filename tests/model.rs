//! The pretrained transformer and its plaintext reference: tokenizer ids and embeddings of
//! all-MiniLM-L6-v2 against independently computed values, the layers written here against
//! candle-transformers' BERT, gradients against finite differences, the sentence data, and
//! malformed assets. Tests on the real model skip without `scripts/fetch-assets.sh`'s files
//! (CI fetches them and sets PRIFFT_REQUIRE_DATA=1, so there they fail instead).

mod common;

use candle_core::{DType, Tensor, Var};
use prifft::Error;
use prifft::model::bert::{self, Classifier, Pooling};
use prifft::model::text::{self, Corpus};
use prifft::model::train::{self, FineTuneConfig, Sgd};
use prifft::model::{Assets, BertConfig, TokenBatch, Weights};
use prifft::prg::ChaCha20Rng;
use rand::{Rng, SeedableRng};

use std::path::Path;
use std::sync::OnceLock;

const FETCH: &str = "run scripts/fetch-assets.sh";

fn assets() -> Option<&'static Assets> {
    static ASSETS: OnceLock<Option<Assets>> = OnceLock::new();
    ASSETS
        .get_or_init(|| {
            let dir = Assets::dir(None);
            common::real_asset(&dir.join("model.safetensors"), FETCH)
                .then(|| Assets::open(None).expect("the fetched model loads"))
        })
        .as_ref()
}

fn vec2(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap()).unwrap();
    d.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn the_tokenizer_gives_bert_ids_with_cls_sep_padding_and_truncation() {
    let Some(a) = assets() else { return };
    let ids = a.tokenizer.encode("A man is playing a guitar.").unwrap();
    assert_eq!(ids, [101, 1037, 2158, 2003, 2652, 1037, 2858, 1012, 102]);
    let b = a.tokenizer.encode_batch(&["A man is playing a guitar.", "Hi."], Some(6)).unwrap();
    assert_eq!(b.ids, [101, 1037, 2158, 2003, 2652, 102, 101, 7632, 1012, 102, 0, 0]);
    assert_eq!(b.mask, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    let err = a.tokenizer.encode_batch(&["x"], Some(1)).unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err}");
}

#[test]
fn the_pretrained_embedding_matches_an_independent_implementation() {
    let Some(a) = assets() else { return };
    let batch = a.tokenizer.encode_batch(&["A man is playing a guitar."], None).unwrap();
    let e = bert::embed(&a.weights, &batch, Pooling::Mean).unwrap();
    // From an independent PyTorch implementation that matches `transformers` to 2.4e-6.
    let expected = [0.10676, -0.02397, -0.04755, -0.31245, -0.82542, 0.02305];
    for (i, (&got, want)) in e[0].iter().zip(expected).enumerate() {
        assert!((f64::from(got) - want).abs() <= 1e-4, "value {i}: {got} vs {want}");
    }
    let texts = [
        "A man is playing a guitar.",
        "Someone is playing the guitar.",
        "The stock market fell sharply on Monday.",
    ];
    let batch = a.tokenizer.encode_batch(&texts, None).unwrap();
    let e = bert::embed(&a.weights, &batch, Pooling::Mean).unwrap();
    let (same, other) = (cosine(&e[0], &e[1]), cosine(&e[0], &e[2]));
    assert!(same > 0.6 && same - other > 0.4, "paraphrase {same:.3}, unrelated {other:.3}");
}

/// Pooled sentence vectors from the layers written here (evaluation mode) for each number of
/// trainable layers, against candle-transformers' BERT on the same batch.
fn own_layers_match_candle_transformers(weights: &Weights, batch: &TokenBatch, tol: f64) {
    let reference = bert::reference_hidden(weights, batch).unwrap();
    let c = weights.config();
    for k in 0..=c.num_hidden_layers {
        for pooling in [Pooling::Mean, Pooling::Cls] {
            let model = Classifier::new(weights, k, pooling, 1).unwrap();
            let t = model.tensors(batch).unwrap();
            let ours = model.pooled(&model.frozen(&t).unwrap(), &t, None).unwrap();
            let theirs = bert::pool(&reference, &t.mask, pooling).unwrap();
            let diff = max_abs_diff(&ours, &theirs);
            assert!(diff <= tol, "k = {k}, {pooling:?}: max |Δ| = {diff:e} > {tol:e}");
        }
    }
}

#[test]
fn own_layers_match_candle_transformers_on_the_real_model() {
    let Some(a) = assets() else { return };
    let texts = ["A man is playing a guitar.", "An utterly charming and hilarious film."];
    let batch = a.tokenizer.encode_batch(&texts, Some(12)).unwrap();
    own_layers_match_candle_transformers(&a.weights, &batch, 2e-5);
}

fn tiny_batch() -> TokenBatch {
    TokenBatch {
        ids: vec![1, 5, 9, 33, 2, 0, 1, 40, 7, 2, 0, 0, 1, 3, 63, 8, 12, 2],
        mask: vec![1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1],
        rows: 3,
        seq_len: 6,
    }
}

#[test]
fn own_layers_match_candle_transformers_on_a_tiny_random_model() {
    // f32: candle-transformers' LayerNorm kernel has no f64 form.
    let w = Weights::random(&BertConfig::tiny(2, 8, 2), 7, DType::F32).unwrap();
    own_layers_match_candle_transformers(&w, &tiny_batch(), 1e-5);
}

/// The mean cross-entropy of `model` on the tiny batch with dropout masks from `seed` (the same
/// masks at every call).
fn tiny_loss(model: &Classifier, labels: &Tensor, seed: u64) -> Tensor {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let logits = model.logits(&tiny_batch(), Some(&mut rng)).unwrap();
    candle_nn::loss::cross_entropy(&logits, labels).unwrap()
}

#[test]
fn gradients_match_finite_differences_on_a_tiny_random_model_in_f64() {
    let config = BertConfig::tiny(2, 8, 2);
    let labels = Tensor::new(&[1u32, 0, 1], &candle_core::Device::Cpu).unwrap();
    // Every layer and the embeddings trainable: the frozen part has no gradient, and
    // candle-transformers' LayerNorm (which runs it) has no f64 form.
    {
        let k = 2;
        let w = Weights::random(&config, 11, DType::F64).unwrap();
        let model = Classifier::new(&w, k, Pooling::Mean, 3).unwrap();
        let grads = tiny_loss(&model, &labels, 5).backward().unwrap();
        let vars = model.trainable_vars();
        assert_eq!(vars.len(), 16 * k + 5 + 2);
        let mut pick = ChaCha20Rng::seed_from_u64(13);
        let mut checked = 0;
        for (name, var) in &vars {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
            let g = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let base = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            // Three entries per parameter (for the word embedding, rows the batch uses).
            for _ in 0..3 {
                let i = if name.contains("word_embeddings") {
                    33 * config.hidden_size + pick.random_range(0..config.hidden_size)
                } else {
                    pick.random_range(0..base.len())
                };
                let h = 1e-6;
                let at = |delta: f64| {
                    let mut v = base.clone();
                    v[i] += delta;
                    var.set(&Tensor::from_vec(v, var.shape(), var.device()).unwrap()).unwrap();
                    tiny_loss(&model, &labels, 5).to_scalar::<f64>().unwrap()
                };
                let numeric = (at(h) - at(-h)) / (2.0 * h);
                var.set(&Tensor::from_vec(base.clone(), var.shape(), var.device()).unwrap())
                    .unwrap();
                let err = (numeric - g[i]).abs();
                assert!(
                    err <= 1e-6 * (1.0 + numeric.abs()),
                    "k = {k}, {name}[{i}]: autograd {} vs finite difference {numeric}",
                    g[i]
                );
                checked += 1;
            }
        }
        assert!(checked >= 3 * vars.len());
    }
}

#[test]
fn candle_cross_entropy_matches_the_hand_written_one_of_the_fl_layer() {
    let logits = [[0.3f32, -1.2], [2.0, 0.5], [-0.7, -0.1]];
    let labels = [1u8, 0, 0];
    let flat: Vec<f32> = logits.iter().flatten().copied().collect();
    let view = ndarray::ArrayView2::from_shape((3, 2), &flat).unwrap();
    let (loss, grad) = prifft::fl::loss::softmax_cross_entropy(view, &labels);
    let var = Var::from_vec(flat.clone(), (3, 2), &candle_core::Device::Cpu).unwrap();
    let target = Tensor::new(&[1u32, 0, 0], &candle_core::Device::Cpu).unwrap();
    let ce = candle_nn::loss::cross_entropy(var.as_tensor(), &target).unwrap();
    assert!((ce.to_scalar::<f32>().unwrap() - loss).abs() < 1e-6);
    let g = ce.backward().unwrap();
    let g = vec2(g.get(var.as_tensor()).unwrap());
    for (r, row) in g.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            assert!((v - f64::from(grad[[r, c]])).abs() < 1e-6, "[{r}, {c}]");
        }
    }
}

#[test]
fn sgd_with_momentum_follows_pytorch() {
    // torch.optim.SGD(momentum=0.9, lr=0.1) on f(w) = w²/2 (gradient w) from w = 1:
    // v1 = 1, w1 = 0.9; v2 = 0.9·1 + 0.9 = 1.8, w2 = 0.72.
    let w = Var::new(&[1.0f64], &candle_core::Device::Cpu).unwrap();
    let mut sgd = Sgd::new(vec![w.clone()], 0.1, 0.9);
    for want in [0.9, 0.72] {
        let loss = (w.as_tensor().sqr().unwrap() * 0.5).unwrap().sum_all().unwrap();
        sgd.backward_step(&loss).unwrap();
        let got = w.as_tensor().to_vec1::<f64>().unwrap()[0];
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }
}

#[test]
fn the_movie_sentences_are_10568_with_their_signs_and_split_without_overlap() {
    let dir = text::data_dir(None);
    if !common::real_asset(&dir.join(Corpus::Movies.file_name()), FETCH) {
        return;
    }
    let movies = text::load(Corpus::Movies, None).unwrap();
    assert_eq!(movies.len(), 10_568);
    assert_eq!(movies.iter().filter(|s| s.label == 1).count(), 5_242);
    assert!(movies.iter().all(|s| s.rating != 0.0 && (s.label == 1) == (s.rating > 0.0)));
    assert!(movies[0].text.starts_with("The Rock is destined"));
    let (train, test) = text::split(&movies, 1, 1_000, 2_000).unwrap();
    assert_eq!((train.len(), test.len()), (2_000, 1_000));
    let test_texts: std::collections::HashSet<&str> =
        test.iter().map(|s| s.text.as_str()).collect();
    assert!(train.iter().all(|s| !test_texts.contains(s.text.as_str())));
    let (again, _) = text::split(&movies, 1, 1_000, 2_000).unwrap();
    assert_eq!(again, train);
    assert!(matches!(text::split(&movies, 1, 10_000, 1_000), Err(Error::Usage(_))));
    for (corpus, rated) in [(Corpus::Amazon, 3_610), (Corpus::Nyt, 4_946), (Corpus::Tweets, 4_196)]
    {
        assert_eq!(text::load(corpus, None).unwrap().len(), rated, "{corpus:?}");
    }
}

#[test]
fn malformed_sentence_files_and_missing_ones_are_clear_errors() {
    let p = Path::new("x.txt");
    let e = text::parse("1\t2.0\tgood\n2\tnope\tbad\n", p).unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
    let e = text::parse("1\t9\ttoo high\n", p).unwrap_err();
    assert!(e.to_string().contains("[-4, 4]"), "{e}");
    let e = text::parse("1 2.0 no tabs\n", p).unwrap_err();
    assert!(e.to_string().contains("tabs"), "{e}");
    let e = text::load(Corpus::Tweets, Some(Path::new("/nonexistent"))).unwrap_err();
    assert!(e.to_string().contains("scripts/fetch-assets.sh"), "{e}");
    let e = Assets::open(Some(Path::new("/nonexistent"))).unwrap_err();
    assert!(e.to_string().contains("scripts/fetch-assets.sh"), "{e}");
}

#[test]
fn malformed_model_files_are_clear_errors_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let config = BertConfig::tiny(1, 8, 2);
    // Not safetensors, and a truncated real one.
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"definitely not a model").unwrap();
    let e = Weights::from_safetensors(&junk, &config).unwrap_err();
    assert!(e.to_string().contains("not a readable safetensors"), "{e}");
    let w = Weights::random(&config, 1, DType::F32).unwrap();
    let mut tensors = Vec::new();
    for (name, _) in prifft::model::weights::parameter_shapes(&config) {
        tensors.push((name.clone(), w.get(&name).unwrap().clone()));
    }
    let good = dir.path().join("good.safetensors");
    let map: std::collections::HashMap<String, Tensor> = tensors.iter().cloned().collect();
    candle_core::safetensors::save(&map, &good).unwrap();
    let loaded = Weights::from_safetensors(&good, &config).unwrap();
    assert_eq!(loaded.parameter_count(), w.parameter_count());
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = Weights::from_safetensors(&cut, &config).unwrap_err();
    assert!(matches!(e, Error::Data(_)), "{e}");
    // A tensor missing, and a shape the config does not expect.
    let mut fewer = map.clone();
    fewer.remove("encoder.layer.0.output.dense.bias");
    let p = dir.path().join("fewer.safetensors");
    candle_core::safetensors::save(&fewer, &p).unwrap();
    let e = Weights::from_safetensors(&p, &config).unwrap_err();
    assert!(e.to_string().contains("encoder.layer.0.output.dense.bias is missing"), "{e}");
    let wider = BertConfig { intermediate_size: 40, ..config.clone() };
    let e = Weights::from_safetensors(&good, &wider).unwrap_err();
    assert!(e.to_string().contains("shape"), "{e}");
    // Configurations the encoder cannot run.
    let bad = BertConfig { num_attention_heads: 3, ..config.clone() };
    assert!(bad.check().unwrap_err().to_string().contains("multiple"));
    let bad = BertConfig { hidden_act: "relu".into(), ..config.clone() };
    assert!(bad.check().unwrap_err().to_string().contains("gelu"));
    let cfg_path = dir.path().join("config.json");
    std::fs::write(&cfg_path, "{\"hidden_size\": 8}").unwrap();
    assert!(matches!(BertConfig::from_file(&cfg_path), Err(Error::Data(_))));
    // Token ids outside the vocabulary, too many trainable layers.
    let model = Classifier::new(&w, 1, Pooling::Mean, 1).unwrap();
    let mut batch = tiny_batch();
    batch.ids[3] = 64;
    assert!(matches!(model.logits(&batch, None), Err(Error::Data(_))));
    assert!(matches!(Classifier::new(&w, 2, Pooling::Mean, 1), Err(Error::Usage(_))));
}

#[test]
fn the_real_config_and_weights_are_minilm_l6() {
    let Some(a) = assets() else { return };
    let c = &a.config;
    assert_eq!(
        (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size),
        (6, 384, 12, 1536)
    );
    assert_eq!(c.vocab_size, 30_522);
    assert_eq!(BertConfig::minilm_l6(), *c);
    // 22.7 M parameters without the pooler.
    assert_eq!(a.weights.parameter_count(), 22_565_376);
}

#[test]
fn reusing_the_frozen_part_gives_the_same_run_as_recomputing_it() {
    let Some(a) = assets() else { return };
    let movies = text::load(Corpus::Movies, None).unwrap();
    let (train_set, test_set) = text::split(&movies, 3, 24, 40).unwrap();
    let run = |reuse_frozen: bool| {
        let model = Classifier::new(&a.weights, 1, Pooling::Mean, 4).unwrap();
        let cfg = FineTuneConfig {
            lr: 0.001,
            momentum: 0.9,
            batch: 8,
            seq_len: 24,
            epochs: 1,
            seed: 4,
            reuse_frozen,
        };
        train::fine_tune(&model, &a.tokenizer, &train_set, &test_set, &cfg, &mut |_| {}).unwrap()
    };
    let (reused, recomputed) = (run(true), run(false));
    assert!(reused.frozen_seconds > 0.0 && recomputed.frozen_seconds == 0.0);
    let (r, c) = (&reused.epochs[0], &recomputed.epochs[0]);
    assert!((r.train_loss - c.train_loss).abs() < 1e-5, "{} vs {}", r.train_loss, c.train_loss);
    assert!((r.test_loss - c.test_loss).abs() < 1e-5, "{} vs {}", r.test_loss, c.test_loss);
    assert_eq!(reused.initial_test_accuracy, recomputed.initial_test_accuracy);
}

#[test]
fn the_fused_gelu_matches_candles_gelu_erf_and_its_autograd() {
    let xs: Vec<f64> = (-800..=800).map(|i| f64::from(i) / 100.0).collect();
    for (dtype, tol) in [(DType::F32, 1e-6), (DType::F64, 1e-12)] {
        let x = Var::from_tensor(
            &Tensor::new(xs.as_slice(), &candle_core::Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
        )
        .unwrap();
        let ours = prifft::model::gelu::gelu(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().gelu_erf().unwrap();
        let d = max_abs_diff(&ours, &theirs);
        assert!(d <= tol, "{dtype:?} forward: max |Δ| = {d:e}");
        // d/dx of Σ w·gelu(x) with varied weights w, so the incoming gradient is not all ones.
        let w = Tensor::new(
            xs.iter().map(|v| 1.0 + 0.5 * (3.0 * v).sin()).collect::<Vec<f64>>().as_slice(),
            &candle_core::Device::Cpu,
        )
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
        let g_ours = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g_theirs = (&theirs * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let d =
            max_abs_diff(g_ours.get(x.as_tensor()).unwrap(), g_theirs.get(x.as_tensor()).unwrap());
        // candle's backward rounds 1/√(2π) to 0.398942 (2.8e-7 off), so it is itself only good
        // to ≈ 3e-7 here; the f64 finite-difference test checks this backward exactly.
        assert!(d <= 1e-6, "{dtype:?} backward: max |Δ| = {d:e}");
    }
}
