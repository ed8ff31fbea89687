//! Errors of the network layer.

use std::time::Duration;

/// Errors of a [`Channel`](crate::net::Channel).
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The peer closed the connection (or its process ended).
    #[error("the other party closed the connection")]
    PeerClosed,
    /// Nothing arrived within the timeout.
    #[error(
        "no message from the other party within {0:?} (is it still running? raise --timeout for slow networks)"
    )]
    Timeout(Duration),
    /// A frame exceeded the size cap.
    #[error(
        "frame of {len} bytes exceeds the cap of {cap} bytes (a peer sending garbage, or raise the cap)"
    )]
    FrameTooLarge {
        /// Announced or attempted length.
        len: u64,
        /// The cap in force.
        cap: u64,
    },
    /// A message had an unexpected length or content.
    #[error("protocol violation in {op}: expected {expected}, got {got}")]
    Protocol {
        /// The protocol step.
        op: &'static str,
        /// What was expected.
        expected: String,
        /// What arrived.
        got: String,
    },
    /// The TLS layer refused the peer or failed (certificates, handshake, corrupt records).
    #[error("TLS: {0}")]
    Tls(String),
    /// Could not connect.
    #[error("could not connect to {addr} within {within:?}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// How long we tried.
        within: Duration,
        /// The last error.
        source: std::io::Error,
    },
    /// Any other socket error.
    #[error("network I/O: {0}")]
    Io(#[from] std::io::Error),
}
