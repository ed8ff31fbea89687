//! Two-party secure computation over Z_2^64.
//!
//! **Model.** Two semi-honest, non-colluding parties — P0 (the server, model owner) and P1 (a
//! client, data owner) — hold every secret value as additive shares x = x0 + x1 mod 2^64. A
//! trusted dealer makes input-independent correlated randomness offline ([`dealer`]); the
//! online phase pops it from a typed store ([`preproc`]) and never needs the dealer.
//!
//! Every protocol is a dealer `gen_*` function plus a party function generic over the
//! [`Channel`], taking a [`PartyCtx`] (party id, channel, preprocessing, local randomness).
//!
//! | protocol | rounds | bytes sent per party | module |
//! |---|---|---|---|
//! | add, sub, public scale | 0 | 0 | [`Share`] |
//! | open | 1 | 8·n | [`sharing::open`] |
//! | input sharing | 1 (owner only) | 32 (a seed) | [`sharing::share_input`] |
//! | Beaver product | 1 | 16·n | [`beaver::mul`] |
//! | Beaver square | 1 | 8·n | [`beaver::square`] |
//! | Beaver matmul (m×k)·(k×n) | 1 | 8·(mk + kn) | [`beaver::matmul`] |
//! | local truncation | 0 | 0 | [`trunc::trunc_local`] |

pub mod affine;
pub mod baseline;
pub mod beaver;
pub mod dealer;
mod error;
pub mod gates;
pub mod ledger;
pub mod local;
pub mod masked;
pub mod nonlinear;
pub mod preproc;
mod share;
pub mod sharing;
pub mod stream;
pub mod suite;
pub mod trunc;

use std::sync::Arc;

use crate::backend::{Backend, Cpu};
use crate::net::{Channel, Cost, Metered};
use crate::prg::{ChaCha20Rng, os_rng};
use error::Result;

pub use crate::party::PartyId;
pub use dealer::Dealer;
pub use error::{MpcError, PreprocError};
pub use preproc::Preproc;
pub use share::Share;

/// Everything one party needs to run protocols: its id, a metered channel to the peer, its
/// preprocessing store, a local CSPRNG (for input sharing) and the [`Backend`] that does its
/// heavy local work — Beaver products, truncation and every FSS evaluation ([`Cpu`] unless
/// [`with_backend`](Self::with_backend) chooses a GPU or the [`Scheduler`](crate::backend::Scheduler)).
pub struct PartyCtx<C> {
    /// This party.
    pub id: PartyId,
    channel: Metered<C>,
    /// This party's correlated randomness.
    pub preproc: Preproc,
    rng: ChaCha20Rng,
    backend: Arc<dyn Backend>,
}

impl<C: Channel> PartyCtx<C> {
    /// A context with an OS-seeded local CSPRNG.
    ///
    /// # Errors
    /// [`PreprocError::WrongParty`] when `preproc` was made for the other party.
    pub fn new(id: PartyId, channel: C, preproc: Preproc) -> Result<Self> {
        Self::with_rng(id, channel, preproc, os_rng())
    }

    /// A context with the given local CSPRNG (tests pass a seeded one).
    ///
    /// # Errors
    /// [`PreprocError::WrongParty`] when `preproc` was made for the other party.
    pub fn with_rng(id: PartyId, channel: C, preproc: Preproc, rng: ChaCha20Rng) -> Result<Self> {
        if preproc.party() != id {
            return Err(PreprocError::WrongParty { expected: id, found: preproc.party() }.into());
        }
        Ok(Self { id, channel: Metered::new(channel), preproc, rng, backend: Arc::new(Cpu) })
    }

    /// Run this party's local work on `backend` (every backend gives the same bits).
    pub fn with_backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = backend;
        self
    }

    /// The backend this party computes on.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Communication so far.
    pub fn cost(&self) -> Cost {
        self.channel.cost()
    }

    /// Communication so far, starting a new measurement window (see [`Metered::mark`]).
    pub fn mark(&mut self) -> Cost {
        self.channel.mark()
    }

    /// The (metered) channel.
    pub fn channel(&mut self) -> &mut Metered<C> {
        &mut self.channel
    }

    /// The local CSPRNG.
    pub fn rng(&mut self) -> &mut ChaCha20Rng {
        &mut self.rng
    }
}
