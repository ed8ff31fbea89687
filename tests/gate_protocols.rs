//! L3: the FSS gates as two-party protocols over the in-memory channel — dealer material from
//! the typed store, the opening of x + r, evaluation on each backend. The reconstruction equals
//! the gate's spec, each gate costs one round and 8 bytes per element per party, and every
//! backend (the scheduler over two devices included) gives the same shares bit for bit.

mod common;

use std::sync::Arc;

use prifft::backend::{Backend, Cpu};
use prifft::mpc::gates::{self, material::Masked, relu::ReluKeys, spline::Spline};
use prifft::mpc::preproc::MaterialKind;
use prifft::mpc::{Dealer, MpcError, PartyId, Preproc, PreprocError, Share, local, sharing};
use prifft::prg::insecure_seeded_rng;
use prifft::ring::RingTensor;
use rand::Rng;

const WIDTH: u32 = 24;
const LEN: usize = 777;

fn spline() -> Spline {
    Spline {
        width: WIDTH,
        breaks: vec![-4096, 0, 100_000],
        coeffs: vec![vec![7, 0, 0], vec![1, 3, 0], vec![0, 1, 1], vec![5, 2, 9]],
    }
}

/// Signed WIDTH-bit inputs with the range's edges.
fn input() -> RingTensor {
    let mut rng = insecure_seeded_rng(1);
    let half = 1i64 << (WIDTH - 1);
    let mut v: Vec<u64> = [-half, -half + 1, -1, 0, 1, half - 1].map(|x| x as u64).to_vec();
    v.extend((v.len()..LEN).map(|_| rng.random_range(-half..half) as u64));
    RingTensor::from_vec(&[LEN], v).unwrap()
}

/// ReLU then the spline, both parties on `backend`; returns both parties' raw output shares.
fn run_gates(backend: Arc<dyn Backend>) -> [Vec<u64>; 4] {
    let x = input();
    let mut dealer = Dealer::insecure_with_seed(2);
    gates::gen_relu(&mut dealer, WIDTH, LEN).unwrap();
    gates::gen_spline(&mut dealer, WIDTH, 2, LEN).unwrap();
    let [x0, x1] = sharing::share_secret(&x, &mut insecure_seeded_rng(3));
    let f = spline();
    let party = |x: Share| {
        let f = f.clone();
        move |ctx: &mut prifft::mpc::PartyCtx<local::LocalChannel>| {
            let c0 = ctx.mark();
            let r = gates::relu(ctx, &x, WIDTH)?;
            let c1 = ctx.mark();
            let s = gates::spline(ctx, &f, &x)?;
            let c2 = ctx.mark();
            Ok::<_, MpcError>((r, s, [c1 - c0, c2 - c1]))
        }
    };
    let run = local::run_parties(None, backend, dealer.finish(), party(x0), party(x1)).unwrap();
    let (r0, s0, cost0) = run.out0;
    let (r1, s1, cost1) = run.out1;
    for cost in cost0.iter().chain(&cost1) {
        assert_eq!(cost.bytes_sent, 8 * LEN as u64, "the opening of x + r only");
        assert_eq!(cost.bytes_received, 8 * LEN as u64);
        assert_eq!(cost.rounds, 1);
    }
    let relu = sharing::reconstruct(&r0, &r1).unwrap();
    let spl = sharing::reconstruct(&s0, &s1).unwrap();
    for (k, &v) in x.as_slice().iter().enumerate() {
        assert_eq!(relu.as_slice()[k], gates::relu::spec(v), "relu #{k}");
        assert_eq!(spl.as_slice()[k], f.spec(v), "spline #{k}");
    }
    [r0, s0, r1, s1].map(|s| s.into_tensor().as_slice().to_vec())
}

#[test]
fn gates_reconstruct_to_their_specs_with_one_round_and_8_bytes_per_element() {
    run_gates(Arc::new(Cpu));
}

#[cfg(feature = "gpu")]
#[test]
fn the_gpu_gives_the_cpus_shares() {
    let Some(gpu) = common::gpu_device() else { return };
    assert!(run_gates(Arc::new(gpu)) == run_gates(Arc::new(Cpu)), "GPU shares != CPU shares");
}

#[test]
fn the_scheduler_over_two_devices_gives_one_devices_shares() {
    let split = run_gates(Arc::new(common::two_device_scheduler()));
    assert!(split == run_gates(Arc::new(Cpu)), "scheduled shares != one device's shares");
}

fn relu_store() -> [Preproc; 2] {
    let mut dealer = Dealer::insecure_with_seed(4);
    gates::gen_relu(&mut dealer, WIDTH, 10).unwrap();
    dealer.finish()
}

#[test]
fn the_store_refuses_fss_material_of_the_wrong_kind_width_length_or_party() {
    let [mut p0, p1] = relu_store();
    let wrong = |e: PreprocError| e.to_string();
    // Another kind: the store says which kind it has none of.
    let e = p0.take_fss::<Masked<gates::sign::SignKeys>>(&[10, WIDTH as usize]).unwrap_err();
    assert!(matches!(e, PreprocError::Exhausted { expected: MaterialKind::SignKeys, .. }));
    assert!(wrong(e).contains("sign-gate keys"));
    // Another width or length: the expected and the found shape key are both named.
    for dims in [[10, WIDTH as usize - 1], [11, WIDTH as usize]] {
        let e = p0.take_fss::<Masked<ReluKeys>>(&dims).unwrap_err();
        let PreprocError::WrongShape { kind, expected, found } = &e else { panic!("{e}") };
        assert_eq!(
            (*kind, expected.as_slice(), found.as_slice()),
            (MaterialKind::ReluKeys, &dims[..], &[10, WIDTH as usize][..])
        );
        assert!(wrong(e).contains("ReLU keys [len, width]"));
    }
    // A raw key batch of another word count.
    let mut dealer = Dealer::insecure_with_seed(5);
    gates::gen_dcf(&mut dealer, 16, 2, &[1, 2, 3], &[0; 6]).unwrap();
    let [mut d0, _] = dealer.finish();
    let e = d0.take_key_batch(prifft::fss::Scheme::Dcf, 3, 16, 5).unwrap_err();
    assert!(matches!(e, PreprocError::WrongShape { ref expected, .. } if expected == &[3, 16, 5]));
    assert_eq!(d0.take_key_batch(prifft::fss::Scheme::Dcf, 3, 16, 2).unwrap().words(), 2);
    // The other party's material: refused when absorbed and when loaded under the wrong party.
    let mut store = Preproc::new(PartyId::P0, p1.bundle_id());
    assert!(matches!(store.absorb(p1), Err(PreprocError::WrongParty { .. })));
    // The right request succeeds once; a second use finds nothing.
    assert_eq!(p0.take_fss::<Masked<ReluKeys>>(&[10, WIDTH as usize]).unwrap().len(), 10);
    let e = p0.take_fss::<Masked<ReluKeys>>(&[10, WIDTH as usize]).unwrap_err();
    assert!(matches!(e, PreprocError::Exhausted { .. }));
}

#[test]
fn fss_material_round_trips_through_the_file_format_and_is_checked_on_load() {
    let mut dealer = Dealer::insecure_with_seed(6);
    gates::gen_relu(&mut dealer, WIDTH, 5).unwrap();
    gates::gen_spline(&mut dealer, WIDTH, 2, 5).unwrap();
    gates::gen_sign(&mut dealer, 12, 5).unwrap();
    gates::gen_interval(&mut dealer, 12, 5).unwrap();
    gates::gen_lut(&mut dealer, 6, 5).unwrap();
    gates::gen_shift(&mut dealer, 20, 4, 5).unwrap();
    gates::gen_dcf(&mut dealer, 9, 3, &[1; 5], &[2; 15]).unwrap();
    let [p0, _] = dealer.finish();
    let bytes = p0.to_bytes();
    assert_eq!(p0.wire_bytes(), bytes.len());
    let back = Preproc::from_bytes(&bytes).unwrap();
    assert_eq!(back.remaining(), 7);
    assert_eq!(back.to_bytes(), bytes);
    // Loading the same items again into the same store is refused (one-time material).
    let mut store = Preproc::from_bytes(&bytes).unwrap();
    assert!(matches!(store.absorb(back), Err(PreprocError::Reused { .. })));
    // Every truncation is an error, never a panic.
    for cut in (0..bytes.len()).step_by(97) {
        assert!(Preproc::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    // A flipped party byte inside a key batch is caught by the section check.
    let mut flipped = bytes.clone();
    let at = flipped.windows(8).position(|w| w == b"PRIFFTFK").unwrap() + 11;
    flipped[at] ^= 1;
    let e = Preproc::from_bytes(&flipped).unwrap_err();
    assert!(matches!(e, PreprocError::Malformed(_)), "{e}");
}
