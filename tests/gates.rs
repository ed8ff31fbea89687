//! Gates on masked inputs: both parties' shares reconstruct to the cleartext spec, including the
//! edges of each gate's documented input range. Every test runs once per backend — the CPU, the
//! GPU (lavapipe in CI) and the scheduler splitting each batch between two devices — through
//! [`common::per_backend!`].

mod common;

use prifft::backend::Backend;
use prifft::mpc::gates::{cmp_spline, interval, lut, relu, shift, sign, signed_in, spline};
use prifft::prg::insecure_seeded_rng;
use rand::Rng;

/// Signed values of an m-bit range: edges and random ones, as ring elements (sign-extended).
fn inputs(width: u32, count: usize, seed: u64) -> Vec<u64> {
    let mut rng = insecure_seeded_rng(seed);
    let (lo, hi) = (-(1i128 << (width - 1)), (1i128 << (width - 1)) - 1);
    let mut v: Vec<i128> = [lo, lo + 1, -2, -1, 0, 1, 2, hi - 1, hi]
        .into_iter()
        .filter(|x| (lo..=hi).contains(x))
        .collect();
    while v.len() < count {
        v.push(rng.random_range(lo..=hi));
    }
    v.into_iter().map(|x| x as i64 as u64).collect()
}

fn masks_and_masked(xs: &[u64], seed: u64) -> (Vec<u64>, Vec<u64>) {
    let mut rng = insecure_seeded_rng(seed);
    let masks: Vec<u64> = xs.iter().map(|_| rng.random()).collect();
    let masked = xs.iter().zip(&masks).map(|(x, r)| x.wrapping_add(*r)).collect();
    (masks, masked)
}

fn add(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().zip(b).map(|(x, y)| x.wrapping_add(*y)).collect()
}

fn sign_drelu_and_less_than_match_their_specs(backend: &dyn Backend) {
    for width in [2u32, 3, 8, 24, 37, 63, 64] {
        let xs = inputs(width, 2000, width as u64);
        let (masks, masked) = masks_and_masked(&xs, 100 + width as u64);
        let [k0, k1] = sign::keygen(width, &masks, &mut insecure_seeded_rng(7)).unwrap();
        let (mut y0, mut y1) = (vec![0; xs.len()], vec![0; xs.len()]);
        sign::msb(backend, &k0, &masked, &mut y0).unwrap();
        sign::msb(backend, &k1, &masked, &mut y1).unwrap();
        for (k, (&x, y)) in xs.iter().zip(add(&y0, &y1)).enumerate() {
            assert_eq!(
                y,
                sign::msb_spec(x, width),
                "msb width {width} x = {} (#{k})",
                signed_in(x, width)
            );
        }
        sign::drelu(backend, &k0, &masked, &mut y0).unwrap();
        sign::drelu(backend, &k1, &masked, &mut y1).unwrap();
        for (&x, y) in xs.iter().zip(add(&y0, &y1)) {
            assert_eq!(y, 1 - sign::msb_spec(x, width), "drelu width {width}");
        }
        // x < c for inputs and constants in the quarter range (so x − c stays in range).
        if width >= 3 {
            let quarter = 1i64.checked_shl(width - 2).unwrap_or(i64::MAX);
            let xs_q: Vec<u64> = xs.iter().map(|&x| (signed_in(x, width) / 2) as u64).collect();
            let (masks, masked) = masks_and_masked(&xs_q, 200 + width as u64);
            let [k0, k1] = sign::keygen(width, &masks, &mut insecure_seeded_rng(8)).unwrap();
            for c in [0i64, 1, -1, quarter - 1, -quarter, 5 % quarter] {
                sign::less_than(backend, &k0, &masked, c as u64, &mut y0).unwrap();
                sign::less_than(backend, &k1, &masked, c as u64, &mut y1).unwrap();
                for (&x, y) in xs_q.iter().zip(add(&y0, &y1)) {
                    assert_eq!(
                        y,
                        (signed_in(x, width) < c) as u64,
                        "width {width}: {} < {c}",
                        signed_in(x, width)
                    );
                }
            }
        }
    }
}

fn interval_containment_matches_its_spec(backend: &dyn Backend) {
    for width in [1u32, 2, 8, 20, 64] {
        let xs = inputs(width, 1500, 300 + width as u64);
        let (masks, masked) = masks_and_masked(&xs, 400 + width as u64);
        let [k0, k1] = interval::keygen(width, &masks, &mut insecure_seeded_rng(9)).unwrap();
        let lo = if width == 64 { i64::MIN } else { -(1i64 << (width - 1)) };
        let hi = if width == 64 { None } else { Some(1i64 << (width - 1)) };
        let mut bounds = vec![(lo, 0), (0, 1), (-1, 1), (lo, lo), (0, 0)];
        if let Some(hi) = hi {
            bounds.push((lo, hi));
            bounds.push((hi / 2, hi));
            bounds.push((-hi / 3, hi / 5));
        }
        let (mut y0, mut y1) = (vec![0; xs.len()], vec![0; xs.len()]);
        for (p, q) in bounds {
            interval::contains(backend, &k0, &masked, p, q, &mut y0).unwrap();
            interval::contains(backend, &k1, &masked, p, q, &mut y1).unwrap();
            for (&x, y) in xs.iter().zip(add(&y0, &y1)) {
                assert_eq!(
                    y,
                    interval::spec(x, width, p, q),
                    "width {width}: {p} ≤ {} < {q}",
                    signed_in(x, width)
                );
            }
        }
    }
    // The full 64-bit range [−2^63, 2^63) is "always": its upper bound 2^63 does not fit in i64,
    // so it is expressed as the complement of nothing; bounds outside the range are errors.
    let [k0, _] = interval::keygen(8, &[0], &mut insecure_seeded_rng(10)).unwrap();
    let mut out = [0u64];
    assert!(interval::contains(backend, &k0, &[0], -129, 0, &mut out).is_err());
    assert!(interval::contains(backend, &k0, &[0], 0, 129, &mut out).is_err());
    assert!(interval::contains(backend, &k0, &[0], 5, 4, &mut out).is_err());
}

fn lookup_tables_match_the_table(backend: &dyn Backend) {
    let mut rng = insecure_seeded_rng(11);
    for bits in [1u32, 4, 8, 10] {
        let domain = 1usize << bits;
        let table: Vec<u64> = (0..domain).map(|_| rng.random()).collect();
        let xs: Vec<u64> = (0..500)
            .map(|k| if k < domain { k as u64 } else { rng.random_range(0..domain as u64) })
            .collect();
        let (masks, masked) = masks_and_masked(&xs, 500 + bits as u64);
        let [k0, k1] = lut::keygen(bits, &masks, &mut rng).unwrap();
        let (mut y0, mut y1) = (vec![0; xs.len()], vec![0; xs.len()]);
        lut::lookup(backend, &k0, &table, &masked, &mut y0).unwrap();
        lut::lookup(backend, &k1, &table, &masked, &mut y1).unwrap();
        for (&x, y) in xs.iter().zip(add(&y0, &y1)) {
            assert_eq!(y, table[x as usize], "b = {bits}, x = {x}");
        }
        assert!(lut::lookup(backend, &k0, &table[1..], &masked, &mut y0).is_err());
        // The one-hot alternative gives the same reconstruction.
        let [o0, o1] = lut::onehot_keygen(bits, &masks, &mut rng).unwrap();
        lut::onehot_lookup(&o0, &table, &masked, &mut y0).unwrap();
        lut::onehot_lookup(&o1, &table, &masked, &mut y1).unwrap();
        for (&x, y) in xs.iter().zip(add(&y0, &y1)) {
            assert_eq!(y, table[x as usize], "one-hot b = {bits}, x = {x}");
        }
    }
}

fn faithful_shifts_are_exact(backend: &dyn Backend) {
    for (width, by) in [(2u32, 1u32), (8, 3), (24, 12), (40, 16), (64, 16), (64, 63), (37, 1)] {
        let xs = inputs(width, 2000, 600 + width as u64);
        let (masks, masked) = masks_and_masked(&xs, 700 + by as u64);
        let [k0, k1] = shift::keygen(width, by, &masks, &mut insecure_seeded_rng(12)).unwrap();
        let (mut y0, mut y1) = (vec![0; xs.len()], vec![0; xs.len()]);
        shift::ars(backend, &k0, &masked, &mut y0).unwrap();
        shift::ars(backend, &k1, &masked, &mut y1).unwrap();
        for (&x, y) in xs.iter().zip(add(&y0, &y1)) {
            assert_eq!(
                y,
                shift::ars_spec(x, width, by),
                "ars m={width} s={by} x={}",
                signed_in(x, width)
            );
        }
        // Unsigned view of the same inputs.
        shift::lrs(backend, &k0, &masked, &mut y0).unwrap();
        shift::lrs(backend, &k1, &masked, &mut y1).unwrap();
        for (&x, y) in xs.iter().zip(add(&y0, &y1)) {
            assert_eq!(y, shift::lrs_spec(x, width, by), "lrs m={width} s={by}");
        }
    }
    assert!(shift::keygen(8, 8, &[0], &mut insecure_seeded_rng(13)).is_err());
    assert!(shift::keygen(8, 0, &[0], &mut insecure_seeded_rng(13)).is_err());
}

fn digits_follow_from_shifts(backend: &dyn Backend) {
    // Base-2^4 digits of 16-bit unsigned values: d_i = lrs(y, 4i) − 16·lrs(y, 4(i+1)).
    let width = 16;
    let mut rng = insecure_seeded_rng(14);
    let ys: Vec<u64> = (0..300).map(|_| rng.random_range(0..1u64 << width)).collect();
    let (masks, masked) = masks_and_masked(&ys, 15);
    let mut shifted = vec![ys.iter().map(|_| 0u64).collect::<Vec<_>>(); 5];
    shifted[0] = {
        // lrs by 0 is y itself: P0 and P1 start from shares of y (here: y, 0).
        ys.clone()
    };
    for (i, s) in [4u32, 8, 12].iter().enumerate() {
        let [k0, k1] = shift::keygen(width, *s, &masks, &mut rng).unwrap();
        let (mut y0, mut y1) = (vec![0; ys.len()], vec![0; ys.len()]);
        shift::lrs(backend, &k0, &masked, &mut y0).unwrap();
        shift::lrs(backend, &k1, &masked, &mut y1).unwrap();
        shifted[i + 1] = add(&y0, &y1);
    }
    for (k, &y) in ys.iter().enumerate() {
        for i in 0..4 {
            let digit = shifted[i][k].wrapping_sub(shifted[i + 1][k].wrapping_mul(16));
            assert_eq!(digit, (y >> (4 * i)) & 15, "digit {i} of {y}");
        }
    }
}

fn relu_in_one_round_matches_its_spec(backend: &dyn Backend) {
    for width in [2u32, 16, 40, 64] {
        let xs = inputs(width, 2000, 800 + width as u64);
        let (masks, masked) = masks_and_masked(&xs, 900 + width as u64);
        let [k0, k1] = relu::keygen(width, &masks, &mut insecure_seeded_rng(16)).unwrap();
        let (mut y0, mut y1) = (vec![0; xs.len()], vec![0; xs.len()]);
        relu::relu(backend, &k0, &masked, &mut y0).unwrap();
        relu::relu(backend, &k1, &masked, &mut y1).unwrap();
        for (&x, y) in xs.iter().zip(add(&y0, &y1)) {
            assert_eq!(y, relu::spec(x), "relu width {width} x = {}", x as i64);
        }
    }
}

/// A random spline of about `pieces` pieces (random coefficients, sorted random breakpoints), and
/// inputs: random ones plus every breakpoint and its neighbours, in the signed width.
fn random_spline(
    rng: &mut prifft::prg::ChaCha20Rng,
    (width, degree, pieces): (u32, usize, usize),
    seed: u64,
) -> (spline::Spline, Vec<u64>) {
    let half = 1i64 << (width - 1).min(62);
    let mut breaks: Vec<i64> = (0..pieces - 1).map(|_| rng.random_range(-half + 1..half)).collect();
    breaks.sort();
    breaks.dedup();
    let coeffs: Vec<Vec<u64>> =
        (0..=breaks.len()).map(|_| (0..=degree).map(|_| rng.random()).collect()).collect();
    let mut xs = inputs(width, 1500, seed + width as u64);
    for &b in &breaks {
        xs.extend([b - 1, b, b + 1].map(|v| v as u64));
    }
    let xs = xs.into_iter().filter(|&x| signed_in(x, width) as i128 == x as i64 as i128).collect();
    (spline::Spline { width, breaks, coeffs }, xs)
}

fn splines_match_their_spec(backend: &dyn Backend) {
    let mut rng = insecure_seeded_rng(17);
    for shape in [(8u32, 0usize, 3usize), (16, 1, 4), (24, 2, 5), (64, 3, 2), (12, 2, 1)] {
        let (s, xs) = random_spline(&mut rng, shape, 1000);
        let (width, degree, pieces) = (s.width, s.degree(), s.coeffs.len());
        let breaks = s.breaks.clone();
        let (masks, masked) = masks_and_masked(&xs, 1100 + width as u64);
        let [k0, k1] = spline::keygen(width, degree, &masks, &mut rng).unwrap();
        let (mut y0, mut y1) = (vec![0; xs.len()], vec![0; xs.len()]);
        spline::eval(backend, &k0, &s, &masked, &mut y0).unwrap();
        spline::eval(backend, &k1, &s, &masked, &mut y1).unwrap();
        for (&x, y) in xs.iter().zip(add(&y0, &y1)) {
            assert_eq!(y, s.spec(x), "spline width {width} degree {degree} x = {}", x as i64);
        }
        // A second spline on the same breakpoints from the same keys: both outputs, stacked.
        let coeffs: Vec<Vec<u64>> =
            (0..pieces).map(|_| (0..=degree).map(|_| rng.random()).collect()).collect();
        let s2 = spline::Spline { width, breaks: breaks.clone(), coeffs };
        let n = xs.len();
        let (mut z0, mut z1) = (vec![0; 2 * n], vec![0; 2 * n]);
        spline::eval_many(backend, &k0, &[&s, &s2], &masked, &mut z0).unwrap();
        spline::eval_many(backend, &k1, &[&s, &s2], &masked, &mut z1).unwrap();
        let z = add(&z0, &z1);
        for (i, &x) in xs.iter().enumerate() {
            assert_eq!((z[i], z[n + i]), (s.spec(x), s2.spec(x)), "eval_many at x = {}", x as i64);
        }
        // Splines on different breakpoints cannot share a key's evaluations.
        let mut other = s2.clone();
        if other.breaks.pop().is_some() {
            other.coeffs.pop();
        } else {
            other.breaks.push(0);
            other.coeffs.push(other.coeffs[0].clone());
        }
        let e = spline::eval_many(backend, &k0, &[&s, &other], &masked, &mut z0).unwrap_err();
        assert!(e.to_string().contains("the same breakpoints"), "{e}");
    }
}

/// The comparison spline computes the DCF spline's function: both parties' masked bits XORed
/// (the opening), then each party's finish; the sum is the spec at every input, breakpoints
/// and their neighbours included.
fn comparison_splines_match_the_spline_spec(backend: &dyn Backend) {
    let mut rng = insecure_seeded_rng(18);
    for shape in
        [(8u32, 0usize, 3usize), (16, 1, 4), (24, 2, 17), (64, 3, 2), (12, 2, 1), (26, 2, 70)]
    {
        let (s, xs) = random_spline(&mut rng, shape, 2000);
        let (width, degree, pieces) = (s.width, s.degree(), s.coeffs.len());
        let (masks, masked) = masks_and_masked(&xs, 2100 + width as u64);
        let [k0, k1] = cmp_spline::keygen(width, degree, pieces, &masks, &mut rng).unwrap();
        let b0 = cmp_spline::masked_bits(backend, &k0, &s, &masked).unwrap();
        let b1 = cmp_spline::masked_bits(backend, &k1, &s, &masked).unwrap();
        let opened: Vec<u64> = b0.iter().zip(&b1).map(|(a, b)| a ^ b).collect();
        let y0 = cmp_spline::finish(&k0, &[&s], &masked, &opened).unwrap().remove(0);
        let y1 = cmp_spline::finish(&k1, &[&s], &masked, &opened).unwrap().remove(0);
        for (&x, y) in xs.iter().zip(add(&y0, &y1)) {
            assert_eq!(y, s.spec(x), "cmp spline width {width} degree {degree} x = {}", x as i64);
        }
        // Keys for another spline (one piece more or less) are refused, not misread.
        let mut other = s.clone();
        if other.breaks.pop().is_some() {
            other.coeffs.pop();
        } else {
            other.breaks.push(0);
            other.coeffs.push(other.coeffs[0].clone());
        }
        let e = cmp_spline::masked_bits(backend, &k0, &other, &masked).unwrap_err();
        assert!(e.to_string().contains("pieces"), "{e}");
        assert!(cmp_spline::finish(&k0, &[&s], &masked[1..], &opened).is_err());
    }
}

fn multi_word_dcf_reconstructs_every_word(backend: &dyn Backend) {
    use prifft::fss::dcf;
    let mut rng = insecure_seeded_rng(18);
    for (n, words) in [(1u32, 2u32), (8, 3), (64, 5)] {
        let len = 300;
        let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
        let alphas: Vec<u64> = (0..len).map(|_| rng.random::<u64>() & mask).collect();
        let betas: Vec<u64> = (0..len * words as usize).map(|_| rng.random()).collect();
        let xs: Vec<u64> =
            alphas
                .iter()
                .map(|&a| {
                    if rng.random() { a.wrapping_sub(1) & mask } else { rng.random::<u64>() & mask }
                })
                .collect();
        let [k0, k1] = dcf::keygen_words(n, words, &alphas, &betas, &mut rng).unwrap();
        let w = words as usize;
        let (mut y0, mut y1) = (vec![0; len * w], vec![0; len * w]);
        backend.eval_fss(&k0, &xs, &mut y0).unwrap();
        backend.eval_fss(&k1, &xs, &mut y1).unwrap();
        for k in 0..len {
            for q in 0..w {
                let want = if xs[k] < alphas[k] { betas[k * w + q] } else { 0 };
                assert_eq!(
                    y0[k * w + q].wrapping_add(y1[k * w + q]),
                    want,
                    "n={n} w={words} k={k} q={q}"
                );
            }
        }
        let back = prifft::fss::KeyBatch::from_bytes(&k0.to_bytes()).unwrap();
        assert_eq!(back, k0);
    }
}

per_backend!(
    sign_drelu_and_less_than_match_their_specs,
    interval_containment_matches_its_spec,
    lookup_tables_match_the_table,
    faithful_shifts_are_exact,
    digits_follow_from_shifts,
    relu_in_one_round_matches_its_spec,
    splines_match_their_spec,
    comparison_splines_match_the_spline_spec,
    multi_word_dcf_reconstructs_every_word
);
