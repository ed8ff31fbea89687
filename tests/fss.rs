//! L1 and L1': DPF/DCF reconstruct exactly over Z_2^64; malformed keys are errors.

use prifft::error::KeyError;
use prifft::fss::{KeyBatch, Scheme, cmp, dcf, dpf};
use prifft::mpc::PartyId;
use prifft::prg::insecure_seeded_rng;
use rand::Rng;

type KeyGen =
    fn(u32, &[u64], &[u64], &mut prifft::prg::ChaCha20Rng) -> Result<[KeyBatch; 2], KeyError>;
type KeyEval = fn(&KeyBatch, &[u64], &mut [u64]) -> Result<(), KeyError>;

fn spec(scheme: Scheme, alpha: u64, beta: u64, x: u64) -> u64 {
    let hit = match scheme {
        Scheme::Dcf => x < alpha,
        Scheme::Dpf => x == alpha,
        Scheme::Cmp => unreachable!("comparison keys are XOR-shared bits: see check_cmp"),
    };
    if hit { beta } else { 0 }
}

fn fns(scheme: Scheme) -> (KeyGen, KeyEval) {
    match scheme {
        Scheme::Dcf => (dcf::keygen, dcf::eval),
        Scheme::Dpf => (dpf::keygen, dpf::eval),
        Scheme::Cmp => unreachable!("comparison keys take no payload: see check_cmp"),
    }
}

/// Keys for (α_k, β_k) evaluated at x_k by both parties; returns the reconstructions.
fn reconstruct(
    scheme: Scheme,
    n: u32,
    alphas: &[u64],
    betas: &[u64],
    xs: &[u64],
    seed: u64,
) -> Vec<u64> {
    let (keygen, eval) = fns(scheme);
    let [k0, k1] = keygen(n, alphas, betas, &mut insecure_seeded_rng(seed)).unwrap();
    let (mut y0, mut y1) = (vec![0; xs.len()], vec![0; xs.len()]);
    eval(&k0, xs, &mut y0).unwrap();
    eval(&k1, xs, &mut y1).unwrap();
    y0.iter().zip(&y1).map(|(a, b)| a.wrapping_add(*b)).collect()
}

fn check_exhaustive(scheme: Scheme) {
    let mut rng = insecure_seeded_rng(1);
    for n in 1..=10u32 {
        let domain = 1u64 << n;
        // Every α for small n, the edges and a few random α above.
        let alphas: Vec<u64> = if n <= 6 {
            (0..domain).collect()
        } else {
            vec![
                0,
                1,
                domain / 2,
                domain - 2,
                domain - 1,
                rng.random_range(0..domain),
                rng.random_range(0..domain),
            ]
        };
        for &alpha in &alphas {
            let beta: u64 = rng.random();
            let xs: Vec<u64> = (0..domain).collect();
            let got = reconstruct(
                scheme,
                n,
                &vec![alpha; xs.len()],
                &vec![beta; xs.len()],
                &xs,
                rng.random(),
            );
            for (&x, &y) in xs.iter().zip(&got) {
                assert_eq!(y, spec(scheme, alpha, beta, x), "{scheme} n={n} α={alpha} x={x}");
            }
        }
    }
}

#[test]
fn dcf_every_input_for_small_widths() {
    check_exhaustive(Scheme::Dcf);
}

#[test]
fn dpf_every_input_for_small_widths() {
    check_exhaustive(Scheme::Dpf);
}

fn check_wide(scheme: Scheme, n: u32) {
    let mut rng = insecure_seeded_rng(2);
    let max = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
    let mut alphas = Vec::new();
    let mut xs = Vec::new();
    for alpha in [0, 1, 2, max, max - 1, max / 2, rng.random::<u64>() & max] {
        for x in [alpha.wrapping_sub(1), alpha, alpha.wrapping_add(1), 0, max] {
            alphas.push(alpha);
            xs.push(x & max);
        }
    }
    while alphas.len() < 100_000 {
        let alpha = rng.random::<u64>() & max;
        // Half the inputs near α (shared high bits), half anywhere.
        let x =
            if rng.random() { alpha ^ (rng.random::<u64>() & 0xffff) } else { rng.random::<u64>() };
        alphas.push(alpha);
        xs.push(x & max);
    }
    let betas: Vec<u64> = (0..alphas.len()).map(|_| rng.random()).collect();
    let got = reconstruct(scheme, n, &alphas, &betas, &xs, 3);
    for k in 0..xs.len() {
        assert_eq!(
            got[k],
            spec(scheme, alphas[k], betas[k], xs[k]),
            "{scheme} n={n} α={} x={}",
            alphas[k],
            xs[k]
        );
    }
}

#[test]
fn dcf_random_and_edge_inputs_at_64_bits() {
    check_wide(Scheme::Dcf, 64);
    check_wide(Scheme::Dcf, 37);
}

#[test]
fn dpf_random_and_edge_inputs_at_64_bits() {
    check_wide(Scheme::Dpf, 64);
    check_wide(Scheme::Dpf, 33);
}

#[test]
fn dpf_full_domain_matches_point_evaluation() {
    let mut rng = insecure_seeded_rng(4);
    for n in [1u32, 2, 5, 10, 12] {
        let domain = 1usize << n;
        let alphas: Vec<u64> = (0..7).map(|_| rng.random_range(0..domain as u64)).collect();
        let betas: Vec<u64> = (0..7).map(|_| rng.random()).collect();
        let [k0, k1] = dpf::keygen(n, &alphas, &betas, &mut rng).unwrap();
        let (mut a0, mut a1) = (vec![0; 7 * domain], vec![0; 7 * domain]);
        dpf::eval_all(&k0, &mut a0).unwrap();
        dpf::eval_all(&k1, &mut a1).unwrap();
        // Each party's full-domain output equals its point evaluations of the same keys.
        for (keys, all) in [(&k0, &a0), (&k1, &a1)] {
            for x in [0, domain / 3, domain - 1] {
                let mut point = vec![0; 7];
                dpf::eval(keys, &[x as u64; 7], &mut point).unwrap();
                for k in 0..7 {
                    assert_eq!(point[k], all[k * domain + x]);
                }
            }
        }
        for k in 0..7 {
            for x in 0..domain {
                let y = a0[k * domain + x].wrapping_add(a1[k * domain + x]);
                assert_eq!(
                    y,
                    spec(Scheme::Dpf, alphas[k], betas[k], x as u64),
                    "n={n} k={k} x={x}"
                );
            }
        }
    }
}

#[test]
fn one_party_output_looks_random() {
    // A single party's outputs must not reveal where α is: at α and elsewhere they are uniform.
    // Crude check: over many keys with β = 1, P0's output at x = α is not biased towards 1, 0 or
    // any small value.
    let mut rng = insecure_seeded_rng(5);
    let len = 4096;
    let alphas: Vec<u64> = (0..len).map(|_| rng.random()).collect();
    for scheme in [Scheme::Dcf, Scheme::Dpf] {
        let (keygen, eval) = fns(scheme);
        let [k0, _] = keygen(64, &alphas, &vec![1; len], &mut rng).unwrap();
        let mut y0 = vec![0; len];
        eval(&k0, &alphas, &mut y0).unwrap();
        let small =
            y0.iter().filter(|&&y| !((1 << 32)..=u64::MAX - (1 << 32)).contains(&y)).count();
        assert!(small < 8, "{scheme}: {small} of {len} outputs are small: shares are not masked");
        let ones: u32 = y0.iter().map(|y| y.count_ones()).sum();
        let mean = ones as f64 / len as f64;
        assert!((mean - 32.0).abs() < 0.5, "{scheme}: mean popcount {mean}");
    }
}

#[test]
fn key_sizes_follow_the_formulas() {
    let mut rng = insecure_seeded_rng(6);
    for n in [1u32, 16, 32, 64] {
        let [k0, _] = dcf::keygen(n, &[0, 0, 0], &[1, 1, 1], &mut rng).unwrap();
        assert_eq!(k0.to_bytes().len(), 32 + 3 * (16 + 24 * (n as usize - 1) + 16));
        assert_eq!(KeyBatch::key_bytes(Scheme::Dcf, n), 16 + 24 * (n as usize - 1) + 16);
        let [d0, _] = dpf::keygen(n, &[0], &[1], &mut rng).unwrap();
        assert_eq!(d0.to_bytes().len(), 32 + 16 + 16 * (n as usize - 1) + 16);
    }
    assert_eq!(KeyBatch::key_bytes(Scheme::Dcf, 64), 1544);
    assert_eq!(KeyBatch::key_bytes(Scheme::Dpf, 64), 1040);
}

fn sample_keys() -> (KeyBatch, Vec<u8>) {
    let [k0, _] = dcf::keygen(16, &[5, 9], &[1, 2], &mut insecure_seeded_rng(7)).unwrap();
    let bytes = k0.to_bytes();
    (k0, bytes)
}

#[test]
fn wire_format_round_trips() {
    let (k0, bytes) = sample_keys();
    let back = KeyBatch::from_bytes(&bytes).unwrap();
    assert_eq!(back, k0);
    back.expect(Scheme::Dcf, PartyId::P0, 16).unwrap();
}

#[test]
fn malformed_key_bad_magic() {
    let (_, mut bytes) = sample_keys();
    bytes[0] ^= 1;
    assert!(matches!(KeyBatch::from_bytes(&bytes), Err(KeyError::BadMagic)));
}

#[test]
fn malformed_key_bad_version() {
    let (_, mut bytes) = sample_keys();
    bytes[8] = 2;
    assert!(matches!(KeyBatch::from_bytes(&bytes), Err(KeyError::Version { found: 2, .. })));
}

#[test]
fn malformed_key_bad_length() {
    let (_, mut bytes) = sample_keys();
    // Header claims 3 keys but the body holds 2.
    bytes[16] = 3;
    assert!(matches!(KeyBatch::from_bytes(&bytes), Err(KeyError::Length { .. })));
    // Body-length field disagrees with the formula.
    let (_, mut bytes) = sample_keys();
    bytes[24] ^= 8;
    assert!(matches!(KeyBatch::from_bytes(&bytes), Err(KeyError::Length { .. })));
    // Trailing bytes.
    let (_, mut bytes) = sample_keys();
    bytes.push(0);
    assert!(matches!(KeyBatch::from_bytes(&bytes), Err(KeyError::Length { .. })));
    // A batch length whose size overflows.
    let (_, mut bytes) = sample_keys();
    bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(KeyBatch::from_bytes(&bytes).is_err());
}

#[test]
fn malformed_key_bad_party_scheme_width() {
    for (offset, value, field) in [
        (11, 2u8, "party"),
        (10, 9, "scheme"),
        (12, 0, "input width"),
        (12, 65, "input width"),
        (13, 32, "output words"),
        (14, 1, "reserved"),
    ] {
        let (_, mut bytes) = sample_keys();
        bytes[offset] = value;
        match KeyBatch::from_bytes(&bytes) {
            Err(KeyError::Header { field: f, .. }) => assert_eq!(f, field),
            other => panic!("byte {offset} = {value}: expected a {field} error, got {other:?}"),
        }
    }
}

#[test]
fn malformed_key_truncated_body() {
    let (_, bytes) = sample_keys();
    for cut in [0, 10, 31, 32, 100, bytes.len() - 1] {
        assert!(
            matches!(KeyBatch::from_bytes(&bytes[..cut]), Err(KeyError::Truncated { .. })),
            "cut at {cut}"
        );
    }
}

#[test]
fn mismatched_keys_and_inputs_are_errors() {
    let (k0, _) = sample_keys();
    assert!(matches!(
        k0.expect(Scheme::Dpf, PartyId::P0, 16),
        Err(KeyError::Mismatch { what: "scheme", .. })
    ));
    assert!(matches!(
        k0.expect(Scheme::Dcf, PartyId::P1, 16),
        Err(KeyError::Mismatch { what: "party", .. })
    ));
    assert!(matches!(k0.expect(Scheme::Dcf, PartyId::P0, 8), Err(KeyError::Mismatch { .. })));
    let mut out = vec![0; 2];
    assert!(matches!(dpf::eval(&k0, &[1, 2], &mut out), Err(KeyError::Mismatch { .. })));
    assert!(matches!(dcf::eval(&k0, &[1], &mut out), Err(KeyError::BatchLength { .. })));
    assert!(matches!(
        dcf::eval(&k0, &[1, 1 << 16], &mut out),
        Err(KeyError::Domain { index: 1, .. })
    ));
    let mut rng = insecure_seeded_rng(8);
    assert!(matches!(dcf::keygen(0, &[], &[], &mut rng), Err(KeyError::Width { n: 0 })));
    assert!(matches!(dcf::keygen(65, &[], &[], &mut rng), Err(KeyError::Width { n: 65 })));
    assert!(matches!(dcf::keygen(8, &[256], &[1], &mut rng), Err(KeyError::Domain { .. })));
    assert!(matches!(dpf::keygen(8, &[1, 2], &[1], &mut rng), Err(KeyError::BatchLength { .. })));
    // Root seeds always have their control-bit slots clear: a key with them set is refused.
    let (_, mut bytes) = sample_keys();
    bytes[32] |= 1;
    assert!(matches!(
        KeyBatch::from_bytes(&bytes),
        Err(KeyError::Header { field: "root seed low bits", .. })
    ));
}

#[test]
fn empty_batches_work() {
    let mut rng = insecure_seeded_rng(9);
    let [k0, _] = dcf::keygen(64, &[], &[], &mut rng).unwrap();
    dcf::eval(&k0, &[], &mut []).unwrap();
    assert_eq!(KeyBatch::from_bytes(&k0.to_bytes()).unwrap().len(), 0);
}

#[test]
fn a_part_of_a_batch_evaluates_in_place_as_the_whole_does() {
    use prifft::fss::keys::TILE;
    let mut rng = insecure_seeded_rng(77);
    let len = 5 * TILE + 7;
    let alphas: Vec<u64> = (0..len).map(|_| rng.random()).collect();
    let xs: Vec<u64> = (0..len).map(|_| rng.random()).collect();
    for words in [1u32, 3] {
        let betas: Vec<u64> = (0..len * words as usize).map(|_| rng.random()).collect();
        let [k0, _] = dcf::keygen_words(64, words, &alphas, &betas, &mut rng).unwrap();
        let w = words as usize;
        let mut whole = vec![0; len * w];
        dcf::eval(&k0, &xs, &mut whole).unwrap();
        for (first, end) in [(0, TILE), (TILE, 3 * TILE), (2 * TILE, len), (0, len)] {
            let mut part = vec![0; (end - first) * w];
            dcf::eval_range(&k0, first, &xs[first..end], &mut part).unwrap();
            assert_eq!(part, whole[first * w..end * w], "words {words}, keys {first}..{end}");
        }
        // A range that does not start a tile, or ends inside one before the batch's end.
        let mut out = vec![0; 10 * w];
        assert!(dcf::eval_range(&k0, 3, &xs[3..13], &mut out).is_err());
        let mut out = vec![0; 10 * w];
        assert!(dcf::eval_range(&k0, 0, &xs[..10], &mut out).is_err());
    }
    let [d0, _] = dpf::keygen(20, &vec![5; len], &vec![1; len], &mut rng).unwrap();
    let small: Vec<u64> = xs.iter().map(|x| x & 0xfffff).collect();
    let mut whole = vec![0; len];
    dpf::eval(&d0, &small, &mut whole).unwrap();
    let mut part = vec![0; len - TILE];
    dpf::eval_range(&d0, TILE, &small[TILE..], &mut part).unwrap();
    assert_eq!(part, whole[TILE..]);
}

#[test]
fn comparison_keys_meet_the_size_target_and_one_party_bits_are_unbiased() {
    let mut rng = insecure_seeded_rng(31);
    for n in [1u32, 7, 8, 16, 24, 33, 64] {
        let [k0, _] = cmp::keygen(n, &[0, 1, 1], &mut rng).unwrap();
        let per_key = 16 + 16 * n.saturating_sub(7) as usize + 16;
        assert_eq!(KeyBatch::key_bytes(Scheme::Cmp, n), per_key);
        assert_eq!(k0.to_bytes().len(), 32 + 3 * per_key);
        // SIGMA-style target: 16·(n − 7) + 48 bytes.
        assert!(n < 7 || per_key <= 16 * (n as usize - 7) + 48, "n {n}: {per_key} B");
    }
    assert_eq!(KeyBatch::key_bytes(Scheme::Cmp, 64), 944);
    // P0's bit alone at x = α − 1 (where the answer is 1) and at x = α (0) is a fair coin.
    let len = 4096;
    let alphas: Vec<u64> = (0..len).map(|_| rng.random::<u64>() | 1).collect();
    let [k0, k1] = cmp::keygen(64, &alphas, &mut rng).unwrap();
    for shift in [0u64, 1] {
        let xs: Vec<u64> = alphas.iter().map(|a| a - shift).collect();
        let (mut y0, mut y1) = (vec![0; len], vec![0; len]);
        cmp::eval(&k0, &xs, &mut y0).unwrap();
        cmp::eval(&k1, &xs, &mut y1).unwrap();
        assert!(y0.iter().zip(&y1).all(|(a, b)| a ^ b == shift));
        let ones = y0.iter().sum::<u64>() as f64 / len as f64;
        assert!((ones - 0.5).abs() < 0.04, "x = α − {shift}: P0's bit is 1 in {ones} of keys");
    }
}

#[test]
fn malformed_comparison_keys_are_errors() {
    let [k0, _] = cmp::keygen(24, &[5, 9, 77], &mut insecure_seeded_rng(32)).unwrap();
    let bytes = k0.to_bytes();
    let back = KeyBatch::from_bytes(&bytes).unwrap();
    back.expect(Scheme::Cmp, PartyId::P0, 24).unwrap();
    for cut in [0, 31, 32, bytes.len() - 1] {
        assert!(KeyBatch::from_bytes(&bytes[..cut]).is_err(), "truncated at {cut}");
    }
    let mut words = bytes.clone();
    words[13] = 2; // comparison keys have one output word
    assert!(matches!(KeyBatch::from_bytes(&words), Err(KeyError::Header { .. })));
    // A DCF evaluator refuses comparison keys, and the reverse.
    assert!(matches!(dcf::eval(&k0, &[0, 0, 0], &mut [0; 3]), Err(KeyError::Mismatch { .. })));
    let [d0, _] = dcf::keygen(24, &[1], &[1], &mut insecure_seeded_rng(33)).unwrap();
    assert!(matches!(cmp::eval(&d0, &[0], &mut [0]), Err(KeyError::Mismatch { .. })));
}
