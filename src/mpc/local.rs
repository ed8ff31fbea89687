//! Both parties in one process: P0 and P1 run in two threads over an in-memory channel.
//!
//! For tests, examples and benchmarks. One process then holds both parties' data, so this is a
//! simulation, not a deployment; the two-process TCP path is `prifft party`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Backend, Cpu};

use super::error::{MpcError, Result};
use crate::net::NetError;
use crate::net::{Channel, Cost, NetModel, Shaped, mem};

use super::{PartyCtx, PartyId, Preproc};

/// An error a party function may return: the two-party layer's own, or any error type above it
/// that wraps it (the crate's [`Error`](crate::Error) implements this in `error.rs`).
pub trait PartyError: From<MpcError> + Send {
    /// Whether this error only reports that the other party closed the channel (so the other
    /// party's error is the one worth reporting).
    fn is_peer_closed(&self) -> bool;
}

impl PartyError for MpcError {
    fn is_peer_closed(&self) -> bool {
        matches!(self, MpcError::Net(NetError::PeerClosed))
    }
}

/// The channel type the harness gives each party.
pub type LocalChannel = Box<dyn Channel>;

/// What a two-party run returns.
#[derive(Debug)]
pub struct TwoPartyRun<T0, T1> {
    /// P0's output.
    pub out0: T0,
    /// P1's output.
    pub out1: T1,
    /// Communication of P0 and P1.
    pub costs: [Cost; 2],
    /// Wall time of the slower party.
    pub elapsed: Duration,
}

/// Run `f0` as P0 and `f1` as P1 in two threads over an in-memory channel, each with its
/// preprocessing store (`preproc[0]` for P0). Returns both outputs and both parties' costs.
///
/// # Errors
/// The first party's error. When one party fails, the other sees its channel close and stops
/// too; the error reported is the one that is not a consequence of the other's
/// ([`NetError::PeerClosed`] is reported only when both failed that way).
pub fn run_two_party<T0, T1, F0, F1>(
    preproc: [Preproc; 2],
    f0: F0,
    f1: F1,
) -> Result<TwoPartyRun<T0, T1>>
where
    T0: Send,
    T1: Send,
    F0: FnOnce(&mut PartyCtx<LocalChannel>) -> Result<T0> + Send,
    F1: FnOnce(&mut PartyCtx<LocalChannel>) -> Result<T1> + Send,
{
    run_parties(None, Arc::new(Cpu), preproc, f0, f1)
}

/// As [`run_two_party`], with traffic delayed by a network model when one is given.
///
/// # Errors
/// As [`run_two_party`].
pub fn run_two_party_with<T0, T1, F0, F1>(
    model: Option<NetModel>,
    preproc: [Preproc; 2],
    f0: F0,
    f1: F1,
) -> Result<TwoPartyRun<T0, T1>>
where
    T0: Send,
    T1: Send,
    F0: FnOnce(&mut PartyCtx<LocalChannel>) -> Result<T0> + Send,
    F1: FnOnce(&mut PartyCtx<LocalChannel>) -> Result<T1> + Send,
{
    run_parties(model, Arc::new(Cpu), preproc, f0, f1)
}

/// As [`run_two_party_with`], with both parties computing on `backend` (one process, so one
/// device serves both), for party functions that return any [`PartyError`] type `E` — the
/// layer's own or one above it (e.g. the crate's [`Error`](crate::Error)).
///
/// # Errors
/// As [`run_two_party`].
pub fn run_parties<T0, T1, E, F0, F1>(
    model: Option<NetModel>,
    backend: Arc<dyn Backend>,
    preproc: [Preproc; 2],
    f0: F0,
    f1: F1,
) -> Result<TwoPartyRun<T0, T1>, E>
where
    T0: Send,
    T1: Send,
    E: PartyError,
    F0: FnOnce(&mut PartyCtx<LocalChannel>) -> Result<T0, E> + Send,
    F1: FnOnce(&mut PartyCtx<LocalChannel>) -> Result<T1, E> + Send,
{
    let (c0, c1) = mem::pair();
    let wrap = |c: mem::MemChannel| -> LocalChannel {
        match model {
            Some(m) => Box::new(Shaped::new(c, m)),
            None => Box::new(c),
        }
    };
    let [p0, p1] = preproc;
    let mut ctx0 =
        PartyCtx::new(PartyId::P0, wrap(c0), p0).map_err(E::from)?.with_backend(backend.clone());
    let mut ctx1 = PartyCtx::new(PartyId::P1, wrap(c1), p1).map_err(E::from)?.with_backend(backend);
    let [pool0, pool1] = party_pools().map_err(E::from)?;
    let start = Instant::now();
    let (r0, r1) = std::thread::scope(|s| {
        let h0 = s.spawn(move || {
            pool0.install(move || {
                let r = f0(&mut ctx0).map(|out| (out, ctx0.cost(), start.elapsed()));
                drop(ctx0); // closes the channel so a waiting peer fails fast
                r
            })
        });
        let h1 = s.spawn(move || {
            pool1.install(move || {
                let r = f1(&mut ctx1).map(|out| (out, ctx1.cost(), start.elapsed()));
                drop(ctx1);
                r
            })
        });
        (join(h0), join(h1))
    });
    match (r0, r1) {
        (Ok((out0, cost0, t0)), Ok((out1, cost1, t1))) => {
            Ok(TwoPartyRun { out0, out1, costs: [cost0, cost1], elapsed: t0.max(t1) })
        }
        (Err(e0), Err(e1)) => Err(if e0.is_peer_closed() { e1 } else { e0 }),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
    }
}

/// Threads of each party's pool in [`run_parties`]: half of the global pool's (at least one).
pub fn party_threads() -> usize {
    (rayon::current_num_threads() / 2).max(1)
}

/// One thread pool per party, each with [`party_threads`] threads: each party computes on its
/// own cores, as it would on its own machine, and its parallel work runs on its own pool — it
/// neither wakes nor waits for the other party's threads.
fn party_pools() -> Result<[rayon::ThreadPool; 2]> {
    let threads = party_threads();
    let pool = |b: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("prifft-party{b}-{i}"))
            .build()
            .map_err(|e| MpcError::Param {
                op: "two-party run",
                what: format!(
                    "could not start party {b}'s threads ({e}); free some threads or memory"
                ),
            })
    };
    Ok([pool(0)?, pool(1)?])
}

fn join<T, E>(h: std::thread::ScopedJoinHandle<'_, Result<T, E>>) -> Result<T, E> {
    h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_party_computes_on_its_own_pool_of_half_the_threads() {
        let half = (rayon::current_num_threads() / 2).max(1);
        assert_eq!(party_threads(), half);
        let me = || -> Result<(Option<usize>, usize, String)> {
            let name = std::thread::current().name().unwrap_or_default().to_string();
            Ok((rayon::current_thread_index(), rayon::current_num_threads(), name))
        };
        let stores = [Preproc::new(PartyId::P0, [0; 16]), Preproc::new(PartyId::P1, [0; 16])];
        let run = run_two_party(stores, |_| me(), |_| me()).expect("two empty parties run");
        for (b, (index, threads, name)) in [run.out0, run.out1].into_iter().enumerate() {
            assert!(index.is_some(), "party {b} runs on a pool thread");
            assert_eq!(threads, half, "party {b}'s pool has half the threads");
            assert!(name.starts_with(&format!("prifft-party{b}-")), "party {b} ran on {name}");
        }
    }
}
