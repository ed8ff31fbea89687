//! Input from outside never panics: each crash case that fuzzing found has a regression test
//! returning the documented error, and every parser and entry point that takes sizes,
//! durations or key material has a property test over arbitrary input (bounded case counts, so
//! CI runs them every time).

use std::io::Write;
use std::time::Duration;

use proptest::prelude::*;

use prifft::fss::{KeyBatch, dcf, dpf};
use prifft::mpc::gates::spline::Spline;
use prifft::mpc::gates::{self, relu, sign};
use prifft::mpc::{Dealer, Preproc, PreprocError, beaver};
use prifft::net::NetModel;
use prifft::net::tcp::{Listener, TcpChannel, TcpConfig};
use prifft::prg::insecure_seeded_rng;
use prifft::ring::{FixedPoint, RingTensor};

/// A preprocessing file with one item of `kind` whose header claims `dims` and no tensor bytes.
fn crafted_preproc(kind: u8, dims: &[u64]) -> Vec<u8> {
    let mut b = b"PRIFFTPP".to_vec();
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&[0, 0]); // party P0, reserved
    b.extend_from_slice(&[9; 16]); // bundle
    b.extend_from_slice(&1u64.to_le_bytes()); // one item
    b.push(kind);
    b.extend_from_slice(&[3; 16]); // item id
    b.push(dims.len() as u8);
    for d in dims {
        b.extend_from_slice(&d.to_le_bytes());
    }
    b
}

#[test]
fn a_zero_dimension_beside_a_huge_one_is_malformed_not_a_panic() {
    // Regression: passed the size check (0 elements), then panicked building the tensor.
    for (kind, dims) in
        [(1u8, vec![0, 1 << 62]), (2, vec![1 << 40, 0, 1 << 40]), (3, vec![0, 1 << 62, 0])]
    {
        let err = Preproc::from_bytes(&crafted_preproc(kind, &dims)).unwrap_err();
        assert!(
            matches!(err, PreprocError::Malformed(_) | PreprocError::Truncated { .. }),
            "{err}"
        );
    }
}

#[test]
fn the_dealer_refuses_impossible_shapes() {
    // Regression: the dealer panicked on the same shapes.
    let mut dealer = Dealer::insecure_with_seed(1);
    assert!(beaver::gen_mul(&mut dealer, &[0, 1 << 62]).is_err());
    assert!(beaver::gen_square(&mut dealer, &[1 << 33]).is_err());
    assert!(beaver::gen_matmul(&mut dealer, 0, 1 << 62, 3).is_err());
    assert!(gates::gen_relu(&mut dealer, 32, 1 << 40).is_err());
    assert_eq!(dealer.finish()[0].remaining(), 0);
}

#[test]
fn session_entry_points_check_their_arguments() {
    use prifft::session::{self, MatmulSpec, PartyOptions, SessionOp};
    let fixed = FixedPoint::default();
    // check_product with a product of the wrong shape: an error, not a panic.
    let x = RingTensor::zeros(&[2, 3]);
    let w = RingTensor::zeros(&[3, 4]);
    let y = RingTensor::zeros(&[5]);
    assert!(session::check_product(&y, &x, &w, fixed).is_err());
    assert!(session::check_gate(SessionOp::Relu, &y, &x, fixed).is_err());
    // run_party with repeat 0: an error, not a panic.
    let spec = MatmulSpec { op: SessionOp::Matmul, m: 2, k: 2, n: 2, repeat: 0, fixed };
    let opts = PartyOptions { spec, input_seed: Some(1), check: false, network: None };
    let [p0, _] = Dealer::insecure_with_seed(2).finish();
    let (c0, _c1) = prifft::net::mem::pair();
    let backend = std::sync::Arc::new(prifft::backend::Cpu);
    let err = session::run_party(prifft::mpc::PartyId::P0, c0, p0, &opts, backend).unwrap_err();
    assert!(err.to_string().contains("repeat"), "{err}");
}

#[test]
fn partition_sizes_that_overflow_are_errors() {
    use prifft::fl::partition::{Scheme, partition};
    let labels = vec![0u8; 100];
    let mut rng = insecure_seeded_rng(3);
    for scheme in [
        Scheme::Shards { per_client: usize::MAX / 2 },
        Scheme::Dirichlet { beta: 0.5, min_per_client: usize::MAX / 3 },
    ] {
        assert!(partition(&labels, 10, 3, scheme, &mut rng).is_err(), "{scheme:?}");
    }
}

#[test]
fn deserialised_fixed_point_is_validated() {
    // Regression: deserialising skipped FixedPoint::new's check.
    assert!(serde_json::from_str::<FixedPoint>(r#"{"frac_bits":200}"#).is_err());
    assert_eq!(
        serde_json::from_str::<FixedPoint>(r#"{"frac_bits":16}"#).unwrap(),
        FixedPoint::default()
    );
}

#[test]
fn a_decompression_bomb_is_refused_while_reading() {
    // Regression: a 63 KiB gzip inflated to 64 MiB before any size check; now the cap is
    // enforced during decompression (here a stream that inflates past it).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![b'0'; 1 << 20];
    for _ in 0..(prifft::fl::data::MAX_DECOMPRESSED >> 20) + 1 {
        gz.write_all(&zeros).unwrap();
    }
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let err = prifft::fl::data::mnist_5k(Some(&path)).unwrap_err();
    assert!(err.to_string().contains("decompresses to more than"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes, and single-byte corruptions of a valid file, never panic the loader.
    #[test]
    fn preproc_loader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512),
                                   at in any::<prop::sample::Index>(), flip in 1u8..) {
        let _ = Preproc::from_bytes(&bytes);
        let mut dealer = Dealer::insecure_with_seed(4);
        beaver::gen_mul(&mut dealer, &[3]).unwrap();
        gates::gen_relu(&mut dealer, 16, 2).unwrap();
        let ra = prifft::mpc::masked::gen_mask(&mut dealer, &[2, 3]).unwrap();
        let rb = prifft::mpc::masked::gen_mask(&mut dealer, &[3, 1]).unwrap();
        prifft::mpc::masked::gen_matmul(&mut dealer, &ra, &rb).unwrap();
        // The one-bit comparison gates (comparison keys, packed flip bits).
        let rc = prifft::mpc::masked::gen_mask(&mut dealer, &[3]).unwrap();
        prifft::mpc::masked::gen_relu_cmp(&mut dealer, 12, true, &rc).unwrap();
        prifft::mpc::masked::gen_shift_cmp(&mut dealer, 12, 3, &rc).unwrap();
        prifft::mpc::masked::gen_shift(&mut dealer, 12, 3, &rc).unwrap();
        // The baseline's binary material (AND triples, bit pairs, random binary shares).
        prifft::mpc::baseline::gen_dropout(&mut dealer, &[2]).unwrap();
        let mut good = dealer.finish()[0].to_bytes();
        let i = at.index(good.len());
        good[i] ^= flip;
        let _ = Preproc::from_bytes(&good);
        let _ = Preproc::from_bytes(&good[..i]);
    }

    /// Arbitrary bytes and single-byte corruptions or truncations of a valid model file never
    /// panic the safetensors loader; arbitrary bytes are always an error.
    #[test]
    fn model_loader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256),
                                 at in any::<prop::sample::Index>(), flip in 1u8..) {
        use prifft::model::{BertConfig, Weights};
        let config = BertConfig::tiny(1, 4, 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        prop_assert!(Weights::from_safetensors(&path, &config).is_err());
        let w = Weights::random(&config, 1, candle_core::DType::F32).unwrap();
        let map: std::collections::HashMap<String, candle_core::Tensor> =
            prifft::model::weights::parameter_shapes(&config)
                .into_iter()
                .map(|(n, _)| { let t = w.get(&n).unwrap().clone(); (n, t) })
                .collect();
        candle_core::safetensors::save(&map, &path).unwrap();
        let mut good = std::fs::read(&path).unwrap();
        let i = at.index(good.len());
        std::fs::write(&path, &good[..i]).unwrap();
        prop_assert!(Weights::from_safetensors(&path, &config).is_err());
        good[i] ^= flip;
        std::fs::write(&path, &good).unwrap();
        let _ = Weights::from_safetensors(&path, &config);
    }

    /// Arbitrary text never panics the sentence parser, and what it accepts is rated in
    /// [−4, 4] \ {0} with the label of the rating's sign.
    #[test]
    fn sentence_parser_never_panics(text in "([0-9a-z_]{0,3}\t-?[0-9.e]{0,5}\t[ -~]{0,12}\r?\n){0,6}|[\t\n -~]{0,80}") {
        if let Ok(sentences) = prifft::model::text::parse(&text, std::path::Path::new("x")) {
            for s in sentences {
                prop_assert!(s.rating != 0.0 && (-4.0..=4.0).contains(&s.rating));
                prop_assert_eq!(s.label == 1, s.rating > 0.0);
            }
        }
    }

    /// The same for key batches.
    #[test]
    fn key_batch_loader_never_panics(at in any::<prop::sample::Index>(), flip in 1u8..,
                                     n in 1u32..=64, words in 1u32..=3) {
        let mut rng = insecure_seeded_rng(5);
        let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
        let [k0, _] = dcf::keygen_words(n, words, &[3 & mask], &vec![1; words as usize], &mut rng).unwrap();
        let mut bytes = k0.to_bytes();
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        let _ = KeyBatch::from_bytes(&bytes);
        let _ = KeyBatch::from_bytes(&bytes[..i]);
    }

    /// Key generation and evaluation with arbitrary widths, lengths and inputs: errors, never
    /// panics.
    #[test]
    fn fss_entry_points_never_panic(n in 0u32..80, words in 0u32..20, len in 0usize..8,
                                    xs in prop::collection::vec(any::<u64>(), 0..8)) {
        let mut rng = insecure_seeded_rng(6);
        let alphas: Vec<u64> = xs.iter().take(len).copied().collect();
        if let Ok([k0, _]) = dcf::keygen_words(n, words, &alphas, &vec![1; alphas.len() * words as usize], &mut rng) {
            let mut out = vec![0; xs.len() * words as usize];
            let _ = dcf::eval(&k0, &xs, &mut out);
        }
        if let Ok([k0, _]) = dpf::keygen(n, &alphas, &vec![1; alphas.len()], &mut rng) {
            let mut out = vec![0; xs.len()];
            let _ = dpf::eval(&k0, &xs, &mut out);
        }
        let _ = relu::keygen(n, &xs, &mut rng);
        let _ = sign::keygen(n, &xs, &mut rng);
    }

    /// Splines of arbitrary breakpoints and widths are checked, never panic.
    #[test]
    fn spline_checks_never_panic(width in 0u32..70, breaks in prop::collection::vec(any::<i64>(), 0..4),
                                 degree in 0usize..20, x in any::<u64>()) {
        let spline = Spline { width, breaks: breaks.clone(), coeffs: vec![vec![1; degree + 1]; breaks.len() + 1] };
        let mut rng = insecure_seeded_rng(7);
        if let Ok([k0, _]) = gates::spline::keygen(width, degree, &[x], &mut rng) {
            let mut out = [0];
            let _ = gates::spline::eval(&prifft::backend::Cpu, &k0, &spline, &[x], &mut out);
        }
    }

    /// Network models from arbitrary strings and numbers: parsed or refused, never a panic,
    /// and an accepted model's delays stay finite.
    #[test]
    fn network_models_never_panic(s in "\\PC{0,12}", mbits in any::<f64>(), millis in any::<f64>()) {
        let _ = s.parse::<NetModel>();
        if let Ok(m) = format!("{mbits}:{millis}").parse::<NetModel>() {
            prop_assert!(m.transmit_time(1 << 30) < Duration::from_secs(100_000));
            prop_assert!(m.latency <= Duration::from_secs(10));
        }
    }

    /// Arbitrary timeouts: a TCP channel either accepts them or refuses them with an error.
    #[test]
    fn tcp_timeouts_never_panic(secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
        let t = Duration::new(secs, nanos);
        let cfg = TcpConfig { connect_timeout: t.min(Duration::from_millis(50)), read_timeout: t, ..TcpConfig::default() };
        if t > prifft::net::tcp::MAX_TIMEOUT {
            prop_assert!(cfg.validate().is_err());
            let listener = Listener::bind("127.0.0.1:0").unwrap();
            prop_assert!(listener.accept(cfg).is_err());
            prop_assert!(TcpChannel::connect("127.0.0.1:9", cfg).is_err());
        } else {
            prop_assert!(cfg.validate().is_ok());
        }
    }

    /// Fixed-point settings and reports from arbitrary JSON numbers.
    #[test]
    fn fixed_point_from_json_never_panics(bits in any::<u32>()) {
        let parsed = serde_json::from_str::<FixedPoint>(&format!(r#"{{"frac_bits":{bits}}}"#));
        prop_assert_eq!(parsed.is_ok(), bits <= 62);
    }

    /// A dealer link that sends garbage — arbitrary frames, a chunk header announcing any
    /// length, a valid chunk with one byte flipped or cut short — never panics or hangs the
    /// party's receiving end: garbage is an error when the party asks for the chunk, naming the
    /// stream's end.
    #[test]
    fn dealer_stream_garbage_is_an_error(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..24), 0..5),
                                         len in any::<u64>(), at in any::<prop::sample::Index>(), flip in 1u8..,
                                         cut in any::<bool>()) {
        use prifft::mpc::{PartyId, stream};
        use prifft::net::{Channel, mem};
        let ask = |send: &dyn Fn(&mut mem::MemChannel)| {
            let (mut dealer_end, party_end) = mem::pair();
            send(&mut dealer_end);
            drop(dealer_end);
            let mut rx = stream::receive(PartyId::P0, party_end, 1).with_timeout(Duration::from_secs(5));
            let mut store = Preproc::new(PartyId::P0, [0; 16]);
            rx.next_into(&mut store)
        };
        // Frames that are not a chunk (no `C` header with 8 length bytes): an error.
        let r = ask(&|d| for f in &frames { d.send(f.clone()).unwrap(); });
        let is_chunk = frames.first().is_some_and(|f| f.len() == 9 && f[0] == b'C');
        if !is_chunk {
            prop_assert!(r.is_err());
        }
        // A header announcing `len` bytes, then fewer (or none): an error.
        let r = ask(&|d| {
            let mut h = vec![b'C'];
            h.extend_from_slice(&len.to_le_bytes());
            d.send(h).unwrap();
            for f in &frames { if !f.is_empty() { d.send(f.clone()).unwrap(); } }
        });
        let sent: u64 = frames.iter().map(|f| f.len() as u64).sum();
        if len > sent || len == 0 {
            prop_assert!(r.is_err(), "{len} announced, {sent} sent");
        }
        // A valid chunk, one byte flipped or the chunk cut short: no panic either way.
        let mut dealer = Dealer::insecure_with_seed(5);
        beaver::gen_mul(&mut dealer, &[3]).unwrap();
        gates::gen_relu(&mut dealer, 16, 2).unwrap();
        let mut good = dealer.finish()[0].to_bytes();
        let i = at.index(good.len());
        if cut { good.truncate(i); } else { good[i] ^= flip; }
        let _ = ask(&|d| {
            let mut h = vec![b'C'];
            h.extend_from_slice(&(good.len() as u64).to_le_bytes());
            d.send(h).unwrap();
            if !good.is_empty() { d.send(good.clone()).unwrap(); }
        });
    }
}
