//! L3: protocols over the in-memory channel in two threads — reconstruction, costs, and misuse
//! of preprocessing.

use prifft::error::PreprocError;
use prifft::mpc::MpcError as Error;
use prifft::mpc::{Dealer, PartyCtx, PartyId, Preproc, Share, beaver, local, sharing, trunc};
use prifft::net::{NetError, mem};
use prifft::prg::insecure_seeded_rng;
use prifft::ring::{FixedPoint, RingTensor, arith_shift};

/// The protocols' own error type (the crate's `Error` flattens it).
type Result<T, E = Error> = std::result::Result<T, E>;

fn shared(t: &RingTensor, seed: u64) -> [Share; 2] {
    sharing::share_secret(t, &mut insecure_seeded_rng(seed))
}

#[test]
fn beaver_product_square_and_matmul_reconstruct_with_formula_costs() -> Result<()> {
    let mut rng = insecure_seeded_rng(1);
    let shape = [7, 33];
    let (x, y) = (RingTensor::random(&shape, &mut rng), RingTensor::random(&shape, &mut rng));
    let (a, b) = (RingTensor::random(&[5, 12], &mut rng), RingTensor::random(&[12, 9], &mut rng));
    let mut dealer = Dealer::insecure_with_seed(2);
    beaver::gen_mul(&mut dealer, &shape)?;
    beaver::gen_square(&mut dealer, &shape)?;
    beaver::gen_matmul(&mut dealer, 5, 12, 9)?;
    let ([x0, x1], [y0, y1], [a0, a1], [b0, b1]) =
        (shared(&x, 3), shared(&y, 4), shared(&a, 5), shared(&b, 6));

    let n = (7 * 33) as u64;
    // Each protocol separately, so its costs are its own.
    let steps = |ctx: &mut PartyCtx<local::LocalChannel>,
                 x: &Share,
                 y: &Share,
                 a: &Share,
                 b: &Share|
     -> Result<_> {
        let c0 = ctx.mark();
        let prod = beaver::mul(ctx, x, y)?;
        let c1 = ctx.mark();
        let sq = beaver::square(ctx, x)?;
        let c2 = ctx.mark();
        let mm = beaver::matmul(ctx, a, b)?;
        let c3 = ctx.mark();
        Ok((prod, sq, mm, [c1 - c0, c2 - c1, c3 - c2]))
    };
    let run = local::run_two_party(
        dealer.finish(),
        |c| steps(c, &x0, &y0, &a0, &b0),
        |c| steps(c, &x1, &y1, &a1, &b1),
    )?;
    let (p0, s0, m0, costs0) = run.out0;
    let (p1, s1, m1, costs1) = run.out1;
    assert_eq!(sharing::reconstruct(&p0, &p1)?, x.mul_elem(&y)?);
    assert_eq!(sharing::reconstruct(&s0, &s1)?, x.mul_elem(&x)?);
    assert_eq!(sharing::reconstruct(&m0, &m1)?, a.matmul(&b)?);
    for costs in [costs0, costs1] {
        // docs/protocols.md, "Costs": product 2·64·n bits, square 64·n, matmul 64·(mk + kn); one round each.
        assert_eq!(costs.map(|c| c.bytes_sent), [16 * n, 8 * n, 8 * (5 * 12 + 12 * 9)]);
        assert_eq!(costs.map(|c| c.bytes_received), costs.map(|c| c.bytes_sent));
        assert_eq!(costs.map(|c| c.rounds), [1, 1, 1]);
        assert_eq!(costs.map(|c| c.messages_sent), [1, 1, 1]);
    }
    Ok(())
}

#[test]
fn fixed_point_matmul_with_local_truncation_is_within_one_ulp() -> Result<()> {
    let fx = FixedPoint::default();
    let mut rng = insecure_seeded_rng(7);
    let real = |len: usize, rng: &mut rand_chacha::ChaCha20Rng| -> Vec<f64> {
        use rand::Rng;
        (0..len).map(|_| rng.random_range(-3.0..3.0)).collect()
    };
    let x = RingTensor::from_vec(&[16, 32], fx.encode_slice(&real(16 * 32, &mut rng))?)?;
    let w = RingTensor::from_vec(&[32, 8], fx.encode_slice(&real(32 * 8, &mut rng))?)?;
    let mut dealer = Dealer::new();
    beaver::gen_matmul(&mut dealer, 16, 32, 8)?;
    let ([x0, x1], [w0, w1]) = (shared(&x, 8), shared(&w, 9));
    let f = fx.frac_bits();
    let run = local::run_two_party(
        dealer.finish(),
        |c| Ok(trunc::trunc_local(c.id, &beaver::matmul(c, &x0, &w0)?, f)),
        |c| Ok(trunc::trunc_local(c.id, &beaver::matmul(c, &x1, &w1)?, f)),
    )?;
    let got = sharing::reconstruct(&run.out0, &run.out1)?;
    let want = x.matmul(&w)?.map(|v| arith_shift(v, f));
    for (&g, &e) in got.as_slice().iter().zip(want.as_slice()) {
        let diff = g.wrapping_sub(e) as i64;
        assert!((0..=1).contains(&diff), "local truncation error {diff} ulp");
    }
    Ok(())
}

#[test]
fn a_triple_cannot_be_used_twice() -> Result<()> {
    let mut dealer = Dealer::insecure_with_seed(11);
    beaver::gen_mul(&mut dealer, &[4])?;
    let [p0, _p1] = dealer.finish();
    let bytes = p0.to_bytes();

    // The same material loaded into one store twice is refused at once…
    let mut store = Preproc::from_bytes(&bytes)?;
    let again = Preproc::from_bytes(&bytes)?;
    assert!(matches!(store.absorb(again), Err(PreprocError::Reused { .. })));

    // …and also after it has been consumed: use it once over a channel, then feed the copy back.
    let (c0, c1) = mem::pair();
    drop(c1);
    let mut ctx = PartyCtx::new(PartyId::P0, c0, store)?;
    let x = Share::new(RingTensor::zeros(&[4]));
    // The peer is gone, so the product fails at the exchange, but the triple is spent.
    let _ = beaver::mul(&mut ctx, &x, &x);
    assert_eq!(ctx.preproc.remaining(), 0);
    let replay = Preproc::from_bytes(&bytes)?;
    assert!(matches!(ctx.preproc.absorb(replay), Err(PreprocError::Reused { .. })));
    // With nothing left, a second product is refused before anything is sent.
    let before = ctx.cost();
    assert!(matches!(
        beaver::mul(&mut ctx, &x, &x),
        Err(Error::Preproc(PreprocError::Exhausted { .. }))
    ));
    assert_eq!(ctx.cost(), before);
    Ok(())
}

#[test]
fn wrong_kind_shape_or_party_is_an_error() -> Result<()> {
    let mut dealer = Dealer::insecure_with_seed(12);
    beaver::gen_matmul(&mut dealer, 2, 3, 4)?;
    let [p0, p1] = dealer.finish();
    // P1's material in P0's context.
    let (c0, _c1) = mem::pair();
    assert!(matches!(
        PartyCtx::new(PartyId::P0, c0, Preproc::from_bytes(&p1.to_bytes())?),
        Err(Error::Preproc(PreprocError::WrongParty { .. }))
    ));
    let mut store = Preproc::from_bytes(&p0.to_bytes())?;
    assert!(matches!(store.absorb(p1), Err(PreprocError::WrongParty { .. })));
    let (c0, _c1) = mem::pair();
    let mut ctx = PartyCtx::new(PartyId::P0, c0, store)?;
    let a = Share::new(RingTensor::zeros(&[2, 3]));
    let b = Share::new(RingTensor::zeros(&[3, 5]));
    // Wrong shape: the triple is for 2×3·3×4.
    assert!(matches!(
        beaver::matmul(&mut ctx, &a, &b),
        Err(Error::Preproc(PreprocError::WrongShape { .. }))
    ));
    // Wrong kind: there is no elementwise triple.
    assert!(matches!(
        beaver::mul(&mut ctx, &a, &a),
        Err(Error::Preproc(PreprocError::Exhausted { .. }))
    ));
    // Mismatched operand shapes are caught before preprocessing is touched.
    assert!(matches!(beaver::matmul(&mut ctx, &a, &a), Err(Error::Shape { .. })));
    assert_eq!(ctx.preproc.remaining(), 1);
    Ok(())
}

#[test]
fn malformed_preprocessing_bytes_give_errors() -> Result<()> {
    let mut dealer = Dealer::insecure_with_seed(13);
    beaver::gen_mul(&mut dealer, &[3, 2])?;
    beaver::gen_matmul(&mut dealer, 2, 2, 2)?;
    let good = dealer.finish()[0].to_bytes();
    let parsed = Preproc::from_bytes(&good)?;
    assert_eq!(parsed.remaining(), 2);
    assert_eq!(parsed.to_bytes(), good);

    let with = |offset: usize, byte: u8| {
        let mut b = good.clone();
        b[offset] = byte;
        Preproc::from_bytes(&b)
    };
    let malformed = |r: Result<Preproc, PreprocError>| matches!(r, Err(PreprocError::Malformed(_)));
    assert!(malformed(with(0, b'X')), "bad magic");
    assert!(malformed(with(8, 9)), "bad version");
    assert!(malformed(with(10, 2)), "bad party");
    assert!(malformed(with(11, 1)), "reserved byte");
    assert!(malformed(with(36, 77)), "unknown kind");
    assert!(malformed(with(53, 200)), "rank too large");
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(malformed(Preproc::from_bytes(&trailing)), "trailing bytes");
    for cut in [0, 5, 20, 36, 60, good.len() - 1] {
        assert!(
            matches!(Preproc::from_bytes(&good[..cut]), Err(PreprocError::Truncated { .. })),
            "cut at {cut}"
        );
    }
    // An absurd dimension must not allocate: it is reported as truncated data.
    let mut huge = good.clone();
    huge[54..62].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(Preproc::from_bytes(&huge).is_err());
    Ok(())
}

#[test]
fn a_failing_party_stops_the_other_instead_of_hanging() {
    let mut dealer = Dealer::insecure_with_seed(14);
    beaver::gen_mul(&mut dealer, &[2]).unwrap();
    let x = Share::new(RingTensor::zeros(&[2]));
    let x1 = x.clone();
    // Party functions of a layer above mpc, with the crate's error type.
    let result: Result<local::TwoPartyRun<(), Share>, prifft::Error> = local::run_parties(
        None,
        std::sync::Arc::new(prifft::backend::Cpu),
        dealer.finish(),
        |_| Err(prifft::Error::Session("P0 gives up".into())),
        move |c| Ok(beaver::mul(c, &x1, &x1)?),
    );
    match result {
        Err(prifft::Error::Session(msg)) => assert_eq!(msg, "P0 gives up"),
        other => panic!("expected P0's error, got {other:?}"),
    }
    let _ = x;
}

#[test]
fn open_and_input_sharing() -> Result<()> {
    let secret = RingTensor::from_vec(&[3], vec![5, u64::MAX, 1 << 40])?;
    let [s0, s1] = shared(&secret, 15);
    let owner_input = secret.clone();
    let run = local::run_two_party(
        [Preproc::new(PartyId::P0, [0; 16]), Preproc::new(PartyId::P1, [0; 16])],
        |c| {
            let opened = sharing::open(c, &s0)?;
            let mine = sharing::share_input(c, PartyId::P0, Some(&owner_input), &[3])?;
            Ok((opened, mine, c.cost()))
        },
        |c| {
            let opened = sharing::open(c, &s1)?;
            let theirs = sharing::share_input(c, PartyId::P0, None, &[3])?;
            Ok((opened, theirs, c.cost()))
        },
    )?;
    assert_eq!(run.out0.0, secret);
    assert_eq!(run.out1.0, secret);
    assert_eq!(sharing::reconstruct(&run.out0.1, &run.out1.1)?, secret);
    assert_ne!(run.out1.1.tensor(), &secret, "the receiver's share is not the secret");
    assert_eq!(run.costs[0].bytes_sent, 3 * 8 + sharing::INPUT_SEED_BYTES as u64);
    assert_eq!(run.costs[1].bytes_sent, 3 * 8);
    Ok(())
}

#[test]
fn a_peer_sending_the_wrong_length_is_a_protocol_error() {
    let mut dealer = Dealer::insecure_with_seed(16);
    beaver::gen_mul(&mut dealer, &[4]).unwrap();
    let [p0, _] = dealer.finish();
    let (c0, mut c1) = mem::pair();
    let mut ctx = PartyCtx::new(PartyId::P0, c0, p0).unwrap();
    prifft::net::Channel::send(&mut c1, vec![0; 5]).unwrap();
    let x = Share::new(RingTensor::zeros(&[4]));
    let err = beaver::mul(&mut ctx, &x, &x).unwrap_err();
    assert!(matches!(err, Error::Net(NetError::Protocol { op: "beaver::mul", .. })), "{err}");
}
