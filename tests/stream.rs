//! The streaming dealer: material dealt chunk by chunk on a dealer thread, consumed by two
//! parties as it arrives — the results are exact, each party holds one chunk at a time, and a
//! stream that ends early or a failing dealer is an error, never a hang.

use std::time::Duration;

use prifft::mpc::nonlinear::{self as nl, relu};
use prifft::mpc::stream::{self, ChunkReceiver};
use prifft::mpc::{Dealer, MpcError, PartyId, Preproc, PreprocError, Share, local, sharing};
use prifft::prg::insecure_seeded_rng;
use prifft::ring::RingTensor;

const SHAPE: [usize; 2] = [32, 64];

fn input(step: usize) -> RingTensor {
    let v: Vec<u64> = (0..SHAPE[0] * SHAPE[1])
        .map(|i| nl::enc(((i * 7 + step * 13) % 97) as f64 / 8.0 - 6.0))
        .collect();
    RingTensor::from_vec(&SHAPE, v).unwrap()
}

/// Each party: for every step, take the next chunk, run a ReLU forward; return its output
/// shares and the largest store it held (serialised bytes).
fn party(
    mut rx: ChunkReceiver,
    steps: usize,
    xs: Vec<Share>,
) -> impl FnOnce(&mut prifft::mpc::PartyCtx<local::LocalChannel>) -> Result<(Vec<Share>, usize), MpcError>
{
    move |ctx| {
        let mut out = Vec::new();
        let mut peak = 0;
        for x in xs.iter().take(steps) {
            rx.next_into(&mut ctx.preproc)?;
            peak = peak.max(ctx.preproc.wire_bytes());
            out.push(relu::forward(ctx, x)?.0);
            assert_eq!(ctx.preproc.remaining(), 0, "each chunk is used up by its step");
        }
        Ok((out, peak))
    }
}

fn shares(steps: usize) -> [Vec<Share>; 2] {
    let mut rng = insecure_seeded_rng(3);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for s in 0..steps {
        let [x0, x1] = sharing::share_secret(&input(s), &mut rng);
        a.push(x0);
        b.push(x1);
    }
    [a, b]
}

#[test]
fn a_streamed_plan_gives_exact_results_with_one_chunk_resident() {
    let steps = 12;
    let (rx, dealer) = stream::spawn_with(Dealer::insecure_with_seed(1), 1, move |d, chunk| {
        relu::gen_forward(d, &SHAPE)?;
        Ok(chunk + 1 < steps)
    });
    let [rx0, rx1] = rx;
    let [s0, s1] = shares(steps);
    let empty = |p| Preproc::new(p, [0; 16]);
    let run = local::run_two_party(
        [empty(PartyId::P0), empty(PartyId::P1)],
        party(rx0, steps, s0),
        party(rx1, steps, s1),
    )
    .unwrap();
    let stats = dealer.join().unwrap().unwrap();
    let ((y0, peak0), (y1, peak1)) = (run.out0, run.out1);
    for s in 0..steps {
        let want: Vec<u64> = input(s).as_slice().iter().map(|&v| relu::spec(v)).collect();
        assert_eq!(sharing::reconstruct(&y0[s], &y1[s]).unwrap().as_slice(), want, "step {s}");
    }
    assert_eq!(stats.chunks, steps);
    // Every chunk is one step's material; a party never holds more than one.
    assert_eq!(stats.total_bytes, steps as u64 * stats.peak_chunk_bytes);
    for peak in [peak0, peak1] {
        assert!(peak as u64 <= stats.peak_chunk_bytes, "{peak} > {}", stats.peak_chunk_bytes);
        assert!((peak as u64) * (steps as u64) <= stats.total_bytes);
    }
    eprintln!(
        "streamed {} chunks of {} B each per party ({} B in all); a party held at most {} B",
        stats.chunks,
        stats.peak_chunk_bytes,
        stats.total_bytes,
        peak0.max(peak1)
    );
}

#[test]
fn a_stream_that_ends_early_is_an_error_not_a_hang() {
    let (rx, dealer) = stream::spawn_with(Dealer::insecure_with_seed(2), 1, |d, chunk| {
        relu::gen_forward(d, &SHAPE)?;
        Ok(chunk < 1) // two chunks, the parties want three
    });
    let [rx0, rx1] = rx.map(|r| r.with_timeout(Duration::from_secs(20)));
    let [s0, s1] = shares(3);
    let empty = |p| Preproc::new(p, [0; 16]);
    let err = local::run_two_party(
        [empty(PartyId::P0), empty(PartyId::P1)],
        party(rx0, 3, s0),
        party(rx1, 3, s1),
    )
    .map(drop)
    .unwrap_err();
    assert!(matches!(err, MpcError::Preproc(PreprocError::StreamEnded { chunk: 2, .. })), "{err}");
    assert_eq!(dealer.join().unwrap().unwrap().chunks, 2);
}

#[test]
fn a_failing_dealer_reaches_the_parties_as_an_error() {
    let (rx, dealer) = stream::spawn_with(Dealer::insecure_with_seed(3), 1, |d, chunk| {
        if chunk == 1 {
            // Width 1 is not a ReLU width: the dealer fails on its second chunk.
            let m = prifft::mpc::masked::gen_mask(d, &[4])?;
            prifft::mpc::masked::gen_relu_cmp(d, 1, true, &m)?;
        }
        relu::gen_forward(d, &SHAPE)?;
        Ok(true)
    });
    let [mut rx0, _rx1] = rx;
    let mut store = Preproc::new(PartyId::P0, [0; 16]);
    rx0.next_into(&mut store).unwrap();
    let err = rx0.next_into(&mut store).unwrap_err();
    assert!(matches!(err, MpcError::Preproc(PreprocError::StreamEnded { chunk: 1, .. })), "{err}");
    assert!(dealer.join().unwrap().is_err());
    // A chunk for the other party is refused.
    let (rx, _d) = stream::spawn_with(Dealer::insecure_with_seed(4), 1, |d, _| {
        relu::gen_forward(d, &SHAPE)?;
        Ok(false)
    });
    let [_rx0, mut rx1] = rx;
    let err = rx1.next_into(&mut Preproc::new(PartyId::P0, [0; 16])).unwrap_err();
    assert!(matches!(err, MpcError::Preproc(PreprocError::WrongParty { .. })), "{err}");
}
