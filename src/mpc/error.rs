//! Errors of the two-party layer: the preprocessing store and the protocols.
//!
//! Messages name the protocol and the mismatching shapes, kinds or sizes — never a share, an
//! input or a key byte.

use std::path::PathBuf;

use crate::backend::BackendError;
use crate::fss::KeyError;
use crate::net::NetError;
use crate::party::PartyId;
use crate::ring::RingError;

use super::preproc::MaterialKind;

/// The two-party layer's result type.
pub type Result<T, E = MpcError> = std::result::Result<T, E>;

/// What a protocol can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MpcError {
    /// Operands had incompatible shapes.
    #[error("{op}: shape mismatch, {left:?} vs {right:?}")]
    Shape {
        /// The operation that failed.
        op: &'static str,
        /// Shape of the first operand (or the expected shape).
        left: Vec<usize>,
        /// Shape of the second operand (or the found shape).
        right: Vec<usize>,
    },
    /// A protocol parameter is outside what the protocol supports.
    #[error("{op}: {what}")]
    Param {
        /// The protocol.
        op: &'static str,
        /// What is wrong and what is allowed.
        what: String,
    },
    /// A ring operation failed.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// FSS keys were malformed or mismatched.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Preprocessing was missing, mismatched or reused.
    #[error(transparent)]
    Preproc(#[from] PreprocError),
    /// The channel to the other party failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Errors of the typed preprocessing store and its file format.
#[derive(Debug, thiserror::Error)]
pub enum PreprocError {
    /// The next item of correlated randomness is of another kind.
    #[error(
        "preprocessing: no {expected} left (the store holds {available} item(s) of other kinds); the dealer must produce one per use"
    )]
    Exhausted {
        /// What the protocol asked for.
        expected: MaterialKind,
        /// How many items remain in total.
        available: usize,
    },
    /// The next item of the requested kind has another shape.
    #[error(
        "preprocessing: next {kind} has shape {found:?}, the protocol needs {expected:?}; the dealer's plan and the computation disagree"
    )]
    WrongShape {
        /// The kind of material.
        kind: MaterialKind,
        /// Shape the protocol needs.
        expected: Vec<usize>,
        /// Shape of the next stored item.
        found: Vec<usize>,
    },
    /// The next item was made for other operands than the protocol is given.
    #[error(
        "preprocessing: next {kind} is {found}, the operands need {expected}; the dealer's plan and the computation disagree"
    )]
    Unbound {
        /// The kind of material.
        kind: MaterialKind,
        /// Hex id the operands call for (a label, not secret).
        expected: String,
        /// Hex id of the next stored item.
        found: String,
    },
    /// The material belongs to the other party.
    #[error("preprocessing: material for {found} given to {expected}")]
    WrongParty {
        /// The party of the store.
        expected: PartyId,
        /// The party the material was made for.
        found: PartyId,
    },
    /// One-time material was offered a second time.
    #[error(
        "preprocessing: one-time material {id} was already loaded or used; correlated randomness must never be reused"
    )]
    Reused {
        /// Hex id of the material (a random label, not secret).
        id: String,
    },
    /// A whole dealer bundle was used by this party before (in this or an earlier process).
    #[error(
        "preprocessing bundle {bundle} was already used by {party} (recorded in {}); correlated randomness must never be reused: run `prifft deal` for a fresh pair of files",
        ledger.display()
    )]
    BundleUsed {
        /// Hex id of the bundle (a random label, not secret).
        bundle: String,
        /// The party that used it.
        party: PartyId,
        /// The ledger that records it.
        ledger: PathBuf,
    },
    /// A dealer stream ended (or its dealer failed) before the chunk a party waited for.
    #[error(
        "preprocessing: the dealer stream ended before chunk {chunk} ({why}); the dealer's plan has fewer chunks than the computation needs, or the dealer failed"
    )]
    StreamEnded {
        /// The chunk the party waited for (0-based).
        chunk: usize,
        /// What happened (the dealer's error, or a timeout).
        why: String,
    },
    /// Serialized material is malformed.
    #[error("preprocessing data is malformed: {0}")]
    Malformed(String),
    /// Serialized material ends early.
    #[error("preprocessing data is truncated: needed {needed} more byte(s) at offset {offset}")]
    Truncated {
        /// Byte offset where reading stopped.
        offset: usize,
        /// Bytes missing.
        needed: usize,
    },
}
