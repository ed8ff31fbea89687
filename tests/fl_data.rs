//! Data loading (IDX, CSV, gzip), non-IID partitioners and plots. Synthetic files and labels
//! are made here and named so; the real-data tests need Debian's dataset-fashion-mnist and
//! `scripts/fetch-assets.sh`'s MNIST-5k (CI installs both and sets PRIFFT_REQUIRE_DATA=1 so
//! that their absence fails instead of skipping).

mod common;

use std::io::Write;
use std::path::Path;

use prifft::Error;
use prifft::fl::data::{self, FASHION_MNIST_DIR, MNIST_5K};
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
    if !common::real_asset(Path::new(FASHION_MNIST_DIR), "apt-get install dataset-fashion-mnist") {
        return;
    }
    let (train, test) = data::fashion_mnist(None).unwrap();
    assert_eq!((train.len(), test.len(), train.rows, train.cols), (60_000, 10_000, 28, 28));
    assert!(train.class_counts().iter().all(|&c| c == 6_000));
    assert!(test.class_counts().iter().all(|&c| c == 1_000));
    assert!(train.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
    // Standardisation uses the training set's statistics (Fashion-MNIST's published 0.2860 and
    // 0.3530) for both sets: the training pixels then have mean 0 and std 1, the test pixels
    // nearly so.
    let (mut train, mut test) = (train, test);
    let stats = data::standardize(&mut train, &mut test);
    assert!((stats.mean - 0.2860).abs() < 1e-4 && (stats.std - 0.3530).abs() < 1e-4, "{stats:?}");
    let after = train.pixel_stats();
    assert!(after.mean.abs() < 1e-5 && (after.std - 1.0).abs() < 1e-5, "{after:?}");
    let t = test.pixel_stats();
    assert!(t.mean.abs() < 0.01 && (t.std - 1.0).abs() < 0.01, "{t:?}");
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

#[test]
fn pixel_csv_parses_and_rejects_malformed_rows() {
    let p = Path::new("synthetic.csv");
    let ok = data::parse_pixel_csv(b"0,255,128,7,1\n1,2,3,4,0\n", p, 4, 2).unwrap();
    assert_eq!((ok.len(), ok.rows, ok.cols), (2, 2, 2));
    assert_eq!(ok.labels, vec![1, 0]);
    assert_eq!(ok.images[1], 1.0);
    for (bad, what) in [
        (&b"0,1,2,3\n"[..], "fields"),
        (b"0,1,2,300,1\n", "pixel"),
        (b"0,1,2,x,1\n", "pixel"),
        (b"0,1,2,3,2\n", "label"),
        (b"0,1,2,3,-1\n", "label"),
        (b"\n\n", "no images"),
        (b"\xff\xfe", "UTF-8"),
    ] {
        let err = data::parse_pixel_csv(bad, p, 4, 2).unwrap_err().to_string();
        assert!(err.contains(what) && err.contains("synthetic.csv"), "{err}");
    }
    let missing = data::mnist_5k(Some(Path::new("/nonexistent/mnist_5k.csv.gz"))).unwrap_err();
    assert!(missing.to_string().contains("scripts/fetch-assets.sh"), "{missing}");
}

#[test]
fn real_mnist_5k_loads_with_a_per_class_split() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(MNIST_5K);
    if !common::real_asset(&path, "bash scripts/fetch-assets.sh") {
        return;
    }
    let (train, test) = data::mnist_5k(Some(&path)).unwrap();
    assert_eq!((train.len(), test.len(), train.rows, train.cols), (4_000, 1_000, 28, 28));
    assert!(train.class_counts().iter().all(|&c| c == 400));
    assert!(test.class_counts().iter().all(|&c| c == 100));
}

/// PNG signature and the IHDR width and height.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn plots_are_written_as_png() {
    use prifft::fl::plot::{self, Series};
    let font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    if std::env::var_os("PRIFFT_FONT").is_none()
        && !common::real_asset(
            Path::new(font),
            "apt-get install fonts-dejavu-core, or set PRIFFT_FONT",
        )
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let acc = dir.path().join("acc.png");
    let series = vec![
        Series { label: "fedavg".into(), runs: vec![vec![0.5, 0.7, 0.8], vec![0.4, 0.72, 0.79]] },
        Series { label: "fedproc τ=1".into(), runs: vec![vec![0.3, 0.6, 0.81]] },
    ];
    plot::accuracy_vs_round(&acc, "synthetic accuracies", &series).unwrap();
    assert_eq!(png_size(&acc), (960, 600));
    let hist = dir.path().join("hist.png");
    let labels = synthetic_labels(2_000, 10, 9);
    let parts = partition::partition(
        &labels,
        10,
        8,
        Scheme::Dirichlet { beta: 0.3, min_per_client: 10 },
        &mut insecure_seeded_rng(10),
    )
    .unwrap();
    plot::class_histogram(
        &hist,
        "synthetic labels",
        &partition::class_histogram(&parts, &labels, 10),
        &["a", "b"], // fewer names than classes: the rest are numbered
    )
    .unwrap();
    assert_eq!(png_size(&hist), (960, 600));
    // An unwritable path is an error, not a panic.
    assert!(plot::accuracy_vs_round(&dir.path().join("no/such/dir.png"), "x", &series).is_err());
}
