//! Data loading (IDX, gzip) and non-IID partitioners. Synthetic IDX files and labels are made
//! here and named so; the real Fashion-MNIST test needs Debian's dataset-fashion-mnist (CI
//! installs it and sets PRIFFT_REQUIRE_DATA=1 so that its absence fails instead of skipping).

use std::io::Write;
use std::path::Path;

use prifft::Error;
use prifft::fl::data::{self, FASHION_MNIST_DIR};
use prifft::fl::partition::{self, Scheme};
use prifft::prg::insecure_seeded_rng;
use rand::Rng;

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn synthetic_idx_files_load_plain_and_gzipped() {
    let dir = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..3 * 2 * 2).map(|i| (i * 20) as u8).collect();
    std::fs::write(dir.path().join("img"), gzip(&idx(&[3, 2, 2], &pixels))).unwrap();
    std::fs::write(dir.path().join("lab"), idx(&[3], &[0, 9, 4])).unwrap();
    let d = data::load_idx_pair(&dir.path().join("img"), &dir.path().join("lab"), 10).unwrap();
    assert_eq!((d.len(), d.rows, d.cols), (3, 2, 2));
    assert_eq!(d.labels, vec![0, 9, 4]);
    assert_eq!(d.image(1)[0], 80.0 / 255.0);
    assert_eq!(d.class_counts()[9], 1);
}

#[test]
fn malformed_idx_files_are_clear_errors() {
    let p = Path::new("synthetic");
    let bad = |bytes: &[u8], needle: &str| match data::parse_idx(bytes, p) {
        Err(Error::Data(msg)) => assert!(msg.contains(needle), "{msg}"),
        other => panic!("expected a data error with {needle:?}, got {other:?}"),
    };
    bad(&[1, 0, 8, 1, 0, 0, 0, 1, 7], "bad magic");
    bad(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 7], "element type");
    bad(&[0, 0, 8, 2, 0, 0], "truncated");
    bad(&idx(&[4], &[1, 2, 3]), "need 4 bytes");
    bad(&idx(&[u32::MAX, u32::MAX, u32::MAX], &[]), "overflow");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("img"), idx(&[2, 1, 1], &[0, 1])).unwrap();
    std::fs::write(dir.path().join("lab3"), idx(&[3], &[0, 1, 2])).unwrap();
    std::fs::write(dir.path().join("lab_big"), idx(&[2], &[0, 12])).unwrap();
    std::fs::write(dir.path().join("corrupt"), [0x1f, 0x8b, 0, 1, 2]).unwrap();
    let load = |l: &str| data::load_idx_pair(&dir.path().join("img"), &dir.path().join(l), 10);
    assert!(matches!(load("lab3"), Err(Error::Data(m)) if m.contains("labels for 2 images")));
    assert!(matches!(load("lab_big"), Err(Error::Data(m)) if m.contains("not below 10")));
    assert!(matches!(load("corrupt"), Err(Error::Data(m)) if m.contains("gzip")));
    assert!(
        matches!(load("missing"), Err(Error::Data(m)) if m.contains("apt-get install dataset-fashion-mnist"))
    );
}

fn synthetic_labels(n: usize, classes: u8, seed: u64) -> Vec<u8> {
    let mut rng = insecure_seeded_rng(seed);
    (0..n).map(|_| rng.random_range(0..classes)).collect()
}

fn assert_exact_cover(parts: &[Vec<usize>], n: usize) {
    let mut seen = vec![false; n];
    for p in parts {
        for &i in p {
            assert!(!seen[i], "index {i} assigned twice");
            seen[i] = true;
        }
    }
    assert!(seen.iter().all(|&s| s), "some index unassigned");
}

fn mean_classes_per_client(hist: &[Vec<usize>]) -> f64 {
    hist.iter().map(|h| h.iter().filter(|&&c| c > 0).count() as f64).sum::<f64>()
        / hist.len() as f64
}

#[test]
fn partitioners_cover_every_sample_once_and_skew_as_asked() {
    let labels = synthetic_labels(6000, 10, 1);
    let mut rng = insecure_seeded_rng(2);
    let iid = partition::partition(&labels, 10, 10, Scheme::Iid, &mut rng).unwrap();
    assert_exact_cover(&iid, labels.len());
    assert!(iid.iter().all(|p| p.len() == 600));

    let skewed = partition::partition(
        &labels,
        10,
        10,
        Scheme::Dirichlet { beta: 0.1, min_per_client: 10 },
        &mut rng,
    )
    .unwrap();
    let mild = partition::partition(
        &labels,
        10,
        10,
        Scheme::Dirichlet { beta: 100.0, min_per_client: 10 },
        &mut rng,
    )
    .unwrap();
    for parts in [&skewed, &mild] {
        assert_exact_cover(parts, labels.len());
        assert!(parts.iter().all(|p| p.len() >= 10));
    }
    let (s, m) = (
        mean_classes_per_client(&partition::class_histogram(&skewed, &labels, 10)),
        mean_classes_per_client(&partition::class_histogram(&mild, &labels, 10)),
    );
    assert!(s < 6.0 && m > 9.5, "β = 0.1 gives {s} classes per client, β = 100 gives {m}");

    let shards =
        partition::partition(&labels, 10, 10, Scheme::Shards { per_client: 2 }, &mut rng).unwrap();
    assert_exact_cover(&shards, labels.len());
    let hist = partition::class_histogram(&shards, &labels, 10);
    assert!(mean_classes_per_client(&hist) <= 4.0);
    assert!(partition::render_histogram(&hist).lines().count() == 11);

    assert!(partition::partition(&labels, 10, 0, Scheme::Iid, &mut rng).is_err());
    assert!(
        partition::partition(
            &labels,
            10,
            10,
            Scheme::Dirichlet { beta: 0.0, min_per_client: 1 },
            &mut rng
        )
        .is_err()
    );
    assert!(
        partition::partition(
            &labels,
            10,
            10,
            Scheme::Dirichlet { beta: 0.5, min_per_client: 601 },
            &mut rng
        )
        .is_err()
    );
    assert!(
        partition::partition(&labels[..5], 10, 10, Scheme::Shards { per_client: 1 }, &mut rng)
            .is_err()
    );
}

#[test]
fn real_fashion_mnist_loads_and_partitions() {
    if !Path::new(FASHION_MNIST_DIR).exists() {
        assert!(
            std::env::var("PRIFFT_REQUIRE_DATA").as_deref() != Ok("1"),
            "PRIFFT_REQUIRE_DATA=1 but {FASHION_MNIST_DIR} is missing: apt-get install dataset-fashion-mnist"
        );
        eprintln!(
            "skipped: {FASHION_MNIST_DIR} is missing (apt-get install dataset-fashion-mnist)"
        );
        return;
    }
    let (train, test) = data::fashion_mnist(None).unwrap();
    assert_eq!((train.len(), test.len(), train.rows, train.cols), (60_000, 10_000, 28, 28));
    assert!(train.class_counts().iter().all(|&c| c == 6_000));
    assert!(test.class_counts().iter().all(|&c| c == 1_000));
    assert!(train.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
    let parts = partition::partition(
        &train.labels,
        10,
        10,
        Scheme::Dirichlet { beta: 0.5, min_per_client: 10 },
        &mut insecure_seeded_rng(3),
    )
    .unwrap();
    assert_exact_cover(&parts, train.len());
}
