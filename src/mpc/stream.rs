//! The streaming dealer: a plan's material produced and consumed in chunks, so memory is
//! bounded by a chunk, not by the batch or the number of steps.
//!
//! A plan is a closure `plan(dealer, chunk) -> Ok(more)` that deals one chunk's material (for
//! example one layer of one training step); [`spawn`] runs it on a dealer thread, flushing after
//! each call ([`Dealer::flush`]) and sending each party its half through a bounded queue of
//! `depth` chunks. A party calls [`ChunkReceiver::next_into`] before the computation the chunk
//! was made for; the chunk's items join its store and are consumed one by one as usual (one
//! use each: a chunk is a fresh bundle). The dealer runs at most `depth` chunks ahead, so
//! at most `depth + 2` chunks exist at once per party (queued, being dealt, being used) —
//! [`StreamStats`] reports the largest chunk, which bounds the peak.
//!
//! The same chunks can go to files instead ([`Preproc::write_file`] per chunk, each its own
//! bundle in the one-time ledger): `prifft deal` and the two-process mode use that path.
//!
//! **What each party learns:** its own halves only, as from [`Dealer::finish`]; the stream adds
//! no message between the parties.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::error::Result;
use super::{Dealer, MpcError, PartyId, Preproc, PreprocError};

/// What a finished stream dealt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Chunks dealt.
    pub chunks: usize,
    /// One party's bytes over all chunks (serialised size, P0's half).
    pub total_bytes: u64,
    /// One party's largest chunk (serialised size, P0's half).
    pub peak_chunk_bytes: u64,
}

/// One party's end of a dealer stream.
#[derive(Debug)]
pub struct ChunkReceiver {
    party: PartyId,
    rx: mpsc::Receiver<Preproc>,
    next: usize,
    timeout: Duration,
}

/// The dealer thread's handle: join it for the stream's statistics or the dealer's error.
pub type DealerHandle = thread::JoinHandle<Result<StreamStats>>;

/// How long a party waits for a chunk before it reports the stream as ended.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Start a dealer thread running `plan` with an OS-seeded [`Dealer`]; each party's chunks
/// arrive through its [`ChunkReceiver`] (index 0 for P0). `depth` ≥ 1 chunks may wait per party.
pub fn spawn<F>(depth: usize, plan: F) -> ([ChunkReceiver; 2], DealerHandle)
where
    F: FnMut(&mut Dealer, usize) -> Result<bool> + Send + 'static,
{
    spawn_with(Dealer::new(), depth, plan)
}

/// As [`spawn`] with a given dealer (tests use [`Dealer::insecure_with_seed`]).
pub fn spawn_with<F>(
    mut dealer: Dealer,
    depth: usize,
    mut plan: F,
) -> ([ChunkReceiver; 2], DealerHandle)
where
    F: FnMut(&mut Dealer, usize) -> Result<bool> + Send + 'static,
{
    let (t0, r0) = mpsc::sync_channel(depth.max(1));
    let (t1, r1) = mpsc::sync_channel(depth.max(1));
    let handle = thread::spawn(move || {
        let mut stats = StreamStats::default();
        loop {
            let more = plan(&mut dealer, stats.chunks)?;
            let [c0, c1] = dealer.flush();
            if c0.remaining() == 0 && !more {
                break;
            }
            let bytes = c0.wire_bytes() as u64;
            stats.chunks += 1;
            stats.total_bytes += bytes;
            stats.peak_chunk_bytes = stats.peak_chunk_bytes.max(bytes);
            // A party that hung up ends the stream; its own error says why.
            if t0.send(c0).is_err() || t1.send(c1).is_err() || !more {
                break;
            }
        }
        Ok(stats)
    });
    let receiver = |party, rx| ChunkReceiver { party, rx, next: 0, timeout: DEFAULT_TIMEOUT };
    ([receiver(PartyId::P0, r0), receiver(PartyId::P1, r1)], handle)
}

impl ChunkReceiver {
    /// Wait at most `timeout` for each chunk (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The party this end belongs to.
    pub fn party(&self) -> PartyId {
        self.party
    }

    /// Chunks received so far.
    pub fn received(&self) -> usize {
        self.next
    }

    /// Move the next chunk's items into `store` (this party's), waiting for the dealer.
    ///
    /// # Errors
    /// [`PreprocError::StreamEnded`] when the dealer finished, failed or timed out before this
    /// chunk; [`PreprocError::WrongParty`] / [`PreprocError::Reused`] from
    /// [`Preproc::absorb`].
    pub fn next_into(&mut self, store: &mut Preproc) -> Result<()> {
        let chunk = self.rx.recv_timeout(self.timeout).map_err(|e| {
            MpcError::Preproc(PreprocError::StreamEnded {
                chunk: self.next,
                why: match e {
                    mpsc::RecvTimeoutError::Timeout => {
                        format!("no chunk within {:?}", self.timeout)
                    }
                    mpsc::RecvTimeoutError::Disconnected => "the dealer stopped".into(),
                },
            })
        })?;
        self.next += 1;
        store.absorb(chunk)?;
        Ok(())
    }
}
