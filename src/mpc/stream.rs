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
//! bundle in the one-time ledger), as `prifft deal` does, or over a link to a party in another
//! process: [`ChunkReceiver::forward`] on the dealer's side, [`receive`] on the party's. On the
//! link a chunk is a header frame (`b'C'`, its length as u64) followed by pieces of at most
//! [`PIECE_BYTES`], and the stream ends with the frame `b'E'`; the party checks the lengths and
//! the serialised material ([`Preproc::from_bytes`]) before the chunk joins its store.
//!
//! **What each party learns:** its own halves only, as from [`Dealer::finish`]; the stream adds
//! no message between the parties.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::error::Result;
use super::{Dealer, MpcError, PartyId, Preproc, PreprocError};
use crate::net::Channel;

/// Largest piece of a chunk in one frame on a link (a chunk of a training step is ~1 GB; a
/// link queues up to 64 frames, so small pieces keep what waits to be sent small).
pub const PIECE_BYTES: usize = 4 << 20;
/// Largest chunk a party accepts from a link.
pub const MAX_CHUNK_BYTES: u64 = 16 << 30;

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
    /// Chunks, or why the stream broke (a link's failure).
    rx: mpsc::Receiver<std::result::Result<Preproc, String>>,
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
            if t0.send(Ok(c0)).is_err() || t1.send(Ok(c1)).is_err() || !more {
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
        let chunk = self.next_chunk()?.ok_or_else(|| {
            MpcError::Preproc(PreprocError::StreamEnded {
                chunk: self.next,
                why: "the dealer stopped".into(),
            })
        })?;
        store.absorb(chunk)?;
        Ok(())
    }

    /// The next chunk, or `None` when the dealer has finished (or stopped).
    fn next_chunk(&mut self) -> Result<Option<Preproc>> {
        let ended = |chunk, why| MpcError::Preproc(PreprocError::StreamEnded { chunk, why });
        match self.rx.recv_timeout(self.timeout) {
            Ok(Ok(chunk)) => {
                self.next += 1;
                Ok(Some(chunk))
            }
            Ok(Err(why)) => Err(ended(self.next, why)),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(ended(self.next, format!("no chunk within {:?}", self.timeout)))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Ok(None),
        }
    }

    /// Dealer side of a link: send every chunk of this end to the party over `link` as it is
    /// dealt, then the end mark; returns the number of chunks sent.
    ///
    /// # Errors
    /// The link's errors (the party hung up); [`PreprocError::StreamEnded`] when the dealer
    /// produced nothing within the timeout.
    pub fn forward<C: Channel + ?Sized>(mut self, link: &mut C) -> Result<usize> {
        let mut sent = 0;
        while let Some(chunk) = self.next_chunk()? {
            let mut bytes = chunk.to_bytes();
            drop(chunk);
            let mut header = vec![b'C'];
            header.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            link.send(header)?;
            for piece in bytes.chunks(PIECE_BYTES) {
                link.send(piece.to_vec())?;
            }
            zeroize::Zeroize::zeroize(&mut bytes);
            sent += 1;
        }
        link.send(vec![b'E'])?;
        Ok(sent)
    }
}

/// Party side of a link: a [`ChunkReceiver`] fed by a thread that reads the chunks
/// [`ChunkReceiver::forward`] sends over `link`, checks them (framing, length, format, party)
/// and queues at most `depth` ahead. A malformed chunk, or a link that fails before the end
/// mark, ends the stream with the reason, which the party sees when it asks for the next chunk.
pub fn receive<C: Channel + 'static>(party: PartyId, mut link: C, depth: usize) -> ChunkReceiver {
    let (tx, rx) = mpsc::sync_channel(depth.max(1));
    thread::spawn(move || {
        loop {
            match read_chunk(&mut link, party) {
                Ok(Some(chunk)) => {
                    if tx.send(Ok(chunk)).is_err() {
                        return; // the party is done
                    }
                }
                Ok(None) => return,
                Err(why) => {
                    let _ = tx.send(Err(why));
                    return;
                }
            }
        }
    });
    ChunkReceiver { party, rx, next: 0, timeout: DEFAULT_TIMEOUT }
}

/// One chunk from a link (`None` at the end mark), or why it is not one.
fn read_chunk<C: Channel + ?Sized>(
    link: &mut C,
    party: PartyId,
) -> std::result::Result<Option<Preproc>, String> {
    let header = link.recv().map_err(|e| format!("the dealer's link failed: {e}"))?;
    let len = match header.as_slice() {
        [b'E'] => return Ok(None),
        [b'C', rest @ ..] if rest.len() == 8 => {
            u64::from_le_bytes(rest.try_into().expect("8 bytes"))
        }
        _ => return Err("the dealer sent a malformed chunk header".into()),
    };
    if len > MAX_CHUNK_BYTES {
        return Err(format!(
            "the dealer announced a chunk of {len} bytes (at most {MAX_CHUNK_BYTES})"
        ));
    }
    let mut bytes = Vec::with_capacity((len as usize).min(PIECE_BYTES));
    while (bytes.len() as u64) < len {
        let piece = link.recv().map_err(|e| format!("the dealer's link failed mid-chunk: {e}"))?;
        if piece.is_empty() || piece.len() > PIECE_BYTES || (bytes.len() + piece.len()) as u64 > len
        {
            return Err("the dealer sent a chunk piece of the wrong size".into());
        }
        bytes.extend_from_slice(&piece);
    }
    let chunk = Preproc::from_bytes(&bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    let chunk = chunk.map_err(|e| format!("the dealer sent a bad chunk: {e}"))?;
    if chunk.party() != party {
        return Err(format!("the dealer sent {}'s chunk to {party}", chunk.party()));
    }
    Ok(Some(chunk))
}
