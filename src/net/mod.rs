//! Channels between the two computing parties.
//!
//! A [`Channel`] moves whole messages (frames) in order. Implementations:
//! - [`mem::pair`]: two ends in one process (two threads), for tests and simulations;
//! - [`tcp::TcpChannel`]: TCP with length-prefixed frames, a frame-size cap, and connect, read and
//!   write timeouts. Reads and writes run on their own threads, so two parties that send large
//!   messages to each other at once never deadlock on full socket buffers.
//!
//! Wrappers: [`Metered`] counts bytes, messages and rounds; [`Shaped`] really delays traffic
//! according to a [`NetModel`] (one-way latency and bandwidth), so protocol times can be
//! reported under a stated network.
//!
//! A peer that disconnects gives [`NetError::PeerClosed`], one that stalls gives
//! [`NetError::Timeout`], an oversized frame gives [`NetError::FrameTooLarge`]: never a hang or a
//! panic.

pub mod mem;
mod meter;
mod model;
pub mod tcp;
pub mod tls;

use std::time::{Duration, Instant};

mod error;
pub use error::NetError;
pub use meter::{Cost, Metered};
pub use model::{NetModel, Shaped};

/// Default cap on one frame: 1 GiB. A 1 GiB frame is 2^27 ring elements, more than any single
/// message of the protocols here; anything larger is treated as a corrupt or hostile peer.
pub const DEFAULT_MAX_FRAME: u64 = 1 << 30;

/// Default time to wait for a message before giving up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A message as received, with the local time it arrived (used by the network model).
#[derive(Debug)]
pub struct Frame {
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// When the frame reached this process (before any modelled delay).
    pub arrived: Instant,
}

/// An ordered, reliable message channel to the other party.
pub trait Channel: Send {
    /// Queue one message for the peer. Does not wait for the peer to read it.
    ///
    /// # Errors
    /// [`NetError::PeerClosed`] or an I/O error when the connection is gone,
    /// [`NetError::FrameTooLarge`] above the cap.
    fn send(&mut self, payload: Vec<u8>) -> Result<(), NetError>;

    /// Wait for the next message.
    ///
    /// # Errors
    /// [`NetError::PeerClosed`] when the peer went away, [`NetError::Timeout`] when nothing
    /// arrived in time, [`NetError::FrameTooLarge`] on a frame above the cap.
    fn recv_frame(&mut self) -> Result<Frame, NetError>;

    /// Wait for the next message and return its payload.
    ///
    /// # Errors
    /// As [`recv_frame`](Self::recv_frame).
    fn recv(&mut self) -> Result<Vec<u8>, NetError> {
        self.recv_frame().map(|f| f.payload)
    }
}

impl<C: Channel + ?Sized> Channel for Box<C> {
    fn send(&mut self, payload: Vec<u8>) -> Result<(), NetError> {
        (**self).send(payload)
    }
    fn recv_frame(&mut self) -> Result<Frame, NetError> {
        (**self).recv_frame()
    }
}

/// Send `payload` and receive the peer's message of exactly `expected_len` bytes: the
/// simultaneous exchange that every opening uses (one round).
///
/// # Errors
/// Channel errors, or [`NetError::Protocol`] when the peer's message has another length.
pub fn exchange<C: Channel + ?Sized>(
    channel: &mut C,
    op: &'static str,
    payload: Vec<u8>,
    expected_len: usize,
) -> Result<Vec<u8>, NetError> {
    channel.send(payload)?;
    let got = channel.recv()?;
    if got.len() != expected_len {
        return Err(NetError::Protocol {
            op,
            expected: format!("{expected_len} bytes"),
            got: format!("{} bytes", got.len()),
        });
    }
    Ok(got)
}

/// The sending half shared by the threaded transports (TCP, TLS): check the frame cap and any
/// failure the I/O thread recorded, then queue the frame for it.
pub(crate) fn send_queued(
    outbox: Option<&std::sync::mpsc::SyncSender<Vec<u8>>>,
    max_frame: u64,
    payload: Vec<u8>,
    failure: impl Fn() -> Option<NetError>,
) -> Result<(), NetError> {
    let len = payload.len() as u64;
    if len > max_frame {
        return Err(NetError::FrameTooLarge { len, cap: max_frame });
    }
    if let Some(e) = failure() {
        return Err(e);
    }
    let outbox = outbox.ok_or(NetError::PeerClosed)?;
    outbox.send(payload).map_err(|_| failure().unwrap_or(NetError::PeerClosed))
}

/// The receiving half shared by the threaded transports: the next frame the I/O thread
/// delivered within `timeout`; after an error or a closed inbox the channel stays closed.
pub(crate) fn recv_queued(
    inbox: &std::sync::mpsc::Receiver<Result<Frame, NetError>>,
    timeout: Duration,
    closed: &mut bool,
    failure: impl Fn() -> Option<NetError>,
) -> Result<Frame, NetError> {
    use std::sync::mpsc::RecvTimeoutError;
    if *closed {
        return Err(failure().unwrap_or(NetError::PeerClosed));
    }
    match inbox.recv_timeout(timeout) {
        Ok(Ok(frame)) => Ok(frame),
        Ok(Err(e)) => {
            *closed = true;
            Err(e)
        }
        Err(RecvTimeoutError::Timeout) => Err(NetError::Timeout(timeout)),
        Err(RecvTimeoutError::Disconnected) => {
            *closed = true;
            Err(failure().unwrap_or(NetError::PeerClosed))
        }
    }
}
