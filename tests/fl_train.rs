//! The simple CNN trains: data-parallel steps equal single-thread steps, and a short run on
//! real Fashion-MNIST learns (CI has the data set; elsewhere the real-data test skips).

use prifft::fl::data::{self, Dataset, FASHION_MNIST_DIR};
use prifft::fl::model::{SgdConfig, SimpleCnn};
use prifft::prg::insecure_seeded_rng;
use rand::Rng;

fn synthetic(n: usize, seed: u64) -> Dataset {
    let mut rng = insecure_seeded_rng(seed);
    Dataset {
        images: (0..n * 784).map(|_| rng.random::<f32>()).collect(),
        labels: (0..n).map(|_| rng.random_range(0..10)).collect(),
        rows: 28,
        cols: 28,
        classes: 10,
    }
}

#[test]
fn data_parallel_step_equals_one_thread() {
    let data = synthetic(64, 1);
    let cfg = SgdConfig::default();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut model = SimpleCnn::new(10, &mut insecure_seeded_rng(2));
            let loss = model.train_step(&data.images, &data.labels, &cfg);
            (loss, model.forward(&data.images[..784], 1))
        })
    };
    let (l1, y1) = run(1);
    let (l2, y2) = run(2);
    assert!((l1 - l2).abs() < 1e-5, "{l1} vs {l2}");
    for (a, b) in y1.iter().zip(y2.iter()) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

#[test]
fn a_short_run_on_fashion_mnist_learns() {
    if !std::path::Path::new(FASHION_MNIST_DIR).exists() {
        assert!(
            std::env::var("PRIFFT_REQUIRE_DATA").as_deref() != Ok("1"),
            "PRIFFT_REQUIRE_DATA=1 but Fashion-MNIST is missing"
        );
        eprintln!(
            "skipped: {FASHION_MNIST_DIR} is missing (apt-get install dataset-fashion-mnist)"
        );
        return;
    }
    let (train, test) = data::fashion_mnist(None).unwrap();
    let mut rng = insecure_seeded_rng(3);
    let mut model = SimpleCnn::new(10, &mut rng);
    let subset: Vec<usize> = (0..6000).collect();
    let cfg = SgdConfig::default();
    let first = model.train_epoch(&train, &subset, &cfg, &mut rng);
    let second = model.train_epoch(&train, &subset, &cfg, &mut rng);
    let acc = model.accuracy(&test);
    assert!(second < first, "loss {first} → {second}");
    assert!(acc > 0.5, "test accuracy after 2 epochs on 6,000 images: {acc}");
}

#[test]
fn fedprox_with_zero_mu_is_fedavg_and_rounds_are_reproducible() {
    use prifft::fl::rounds::{self, Algo, FlConfig};
    let train = synthetic(256, 4);
    let test = synthetic(64, 5);
    let parts = vec![(0..100).collect::<Vec<_>>(), (100..256).collect()];
    let cfg = FlConfig {
        rounds: 2,
        local_epochs: 1,
        fraction: 1.0,
        sgd: SgdConfig::default(),
        seed: 6,
        secure_agg: false,
    };
    let avg = rounds::run(Algo::FedAvg, &train, &test, &parts, &cfg, |_, _| {});
    let prox0 = rounds::run(Algo::FedProx { mu: 0.0 }, &train, &test, &parts, &cfg, |_, _| {});
    let again = rounds::run(Algo::FedAvg, &train, &test, &parts, &cfg, |_, _| {});
    assert_eq!(avg.len(), 2);
    assert_eq!(avg, prox0);
    assert_eq!(avg, again);
}

#[test]
fn secure_aggregation_gives_the_same_model_up_to_fixed_point_rounding() {
    use prifft::fl::rounds::{self, Algo, FlConfig};
    let train = synthetic(256, 7);
    let test = synthetic(200, 8);
    let parts = vec![(0..80).collect::<Vec<_>>(), (80..170).collect(), (170..256).collect()];
    let mut cfg = FlConfig {
        rounds: 2,
        local_epochs: 1,
        fraction: 1.0,
        sgd: SgdConfig::default(),
        seed: 9,
        secure_agg: false,
    };
    let plain = rounds::run(Algo::FedAvg, &train, &test, &parts, &cfg, |_, _| {});
    cfg.secure_agg = true;
    let secure = rounds::run(Algo::FedAvg, &train, &test, &parts, &cfg, |_, _| {});
    for (a, b) in plain.iter().zip(&secure) {
        assert!((a - b).abs() <= 0.02, "accuracy {a} in the clear vs {b} with secure aggregation");
    }
}
