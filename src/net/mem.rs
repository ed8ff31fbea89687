//! Two channel ends in one process, connected by in-memory queues.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::{Channel, DEFAULT_MAX_FRAME, DEFAULT_TIMEOUT, Frame, NetError};

/// One end of an in-memory channel. Dropping it makes the other end's reads fail with
/// [`NetError::PeerClosed`].
#[derive(Debug)]
pub struct MemChannel {
    tx: Sender<Frame>,
    rx: Receiver<Frame>,
    timeout: Duration,
    max_frame: u64,
}

/// A connected pair of in-memory channel ends with the default timeout and frame cap.
pub fn pair() -> (MemChannel, MemChannel) {
    pair_with(DEFAULT_TIMEOUT, DEFAULT_MAX_FRAME)
}

/// A connected pair with a read timeout and frame cap.
pub fn pair_with(timeout: Duration, max_frame: u64) -> (MemChannel, MemChannel) {
    let (tx_a, rx_b) = mpsc::channel();
    let (tx_b, rx_a) = mpsc::channel();
    (
        MemChannel { tx: tx_a, rx: rx_a, timeout, max_frame },
        MemChannel { tx: tx_b, rx: rx_b, timeout, max_frame },
    )
}

impl Channel for MemChannel {
    fn send(&mut self, payload: Vec<u8>) -> Result<(), NetError> {
        let len = payload.len() as u64;
        if len > self.max_frame {
            return Err(NetError::FrameTooLarge { len, cap: self.max_frame });
        }
        self.tx.send(Frame { payload, arrived: Instant::now() }).map_err(|_| NetError::PeerClosed)
    }

    fn recv_frame(&mut self) -> Result<Frame, NetError> {
        self.rx.recv_timeout(self.timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => NetError::Timeout(self.timeout),
            RecvTimeoutError::Disconnected => NetError::PeerClosed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_close_timeout_and_cap() {
        let (mut a, mut b) = pair_with(Duration::from_millis(50), 4);
        a.send(vec![1]).unwrap();
        a.send(vec![2, 3]).unwrap();
        assert_eq!(b.recv().unwrap(), vec![1]);
        assert_eq!(b.recv().unwrap(), vec![2, 3]);
        assert!(matches!(b.recv(), Err(NetError::Timeout(_))));
        assert!(matches!(a.send(vec![0; 5]), Err(NetError::FrameTooLarge { len: 5, cap: 4 })));
        drop(a);
        assert!(matches!(b.recv(), Err(NetError::PeerClosed)));
        assert!(matches!(b.send(vec![1]), Err(NetError::PeerClosed)));
    }
}
