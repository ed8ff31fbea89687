//! Communication accounting.

use std::ops::{Add, Sub};

use super::{Channel, Frame, NetError};

/// What one party's channel carried. Bytes are payload bytes (frame headers of the TCP transport,
/// 4 bytes per message, are not counted), so they match the protocols' cost formulas exactly.
///
/// **Rounds** count this party's send phases: a send that follows a receive (or is the first
/// send) starts a new round. In a protocol where both parties send and then receive, one
/// exchange is one round for each party.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Cost {
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Send phases (see the type's docs).
    pub rounds: u64,
}

impl Sub for Cost {
    type Output = Cost;
    fn sub(self, rhs: Cost) -> Cost {
        Cost {
            bytes_sent: self.bytes_sent - rhs.bytes_sent,
            bytes_received: self.bytes_received - rhs.bytes_received,
            messages_sent: self.messages_sent - rhs.messages_sent,
            messages_received: self.messages_received - rhs.messages_received,
            rounds: self.rounds - rhs.rounds,
        }
    }
}

impl Add for Cost {
    type Output = Cost;
    fn add(self, rhs: Cost) -> Cost {
        Cost {
            bytes_sent: self.bytes_sent + rhs.bytes_sent,
            bytes_received: self.bytes_received + rhs.bytes_received,
            messages_sent: self.messages_sent + rhs.messages_sent,
            messages_received: self.messages_received + rhs.messages_received,
            rounds: self.rounds + rhs.rounds,
        }
    }
}

/// A channel that counts what passes through it.
#[derive(Debug)]
pub struct Metered<C> {
    inner: C,
    cost: Cost,
    in_send_phase: bool,
}

impl<C: Channel> Metered<C> {
    /// Start counting from zero.
    pub fn new(inner: C) -> Self {
        Self { inner, cost: Cost::default(), in_send_phase: false }
    }

    /// Totals so far. Take the difference of two readings to cost one protocol.
    pub fn cost(&self) -> Cost {
        self.cost
    }

    /// Totals so far, and start a new measurement window: the next send counts as a new round
    /// even if this party has been sending since its last receive. Use it at the start of a
    /// protocol so its rounds are counted as if it ran alone.
    pub fn mark(&mut self) -> Cost {
        self.in_send_phase = false;
        self.cost
    }

    /// The wrapped channel.
    pub fn into_inner(self) -> C {
        self.inner
    }
}

impl<C: Channel> Channel for Metered<C> {
    fn send(&mut self, payload: Vec<u8>) -> Result<(), NetError> {
        let len = payload.len() as u64;
        self.inner.send(payload)?;
        if !self.in_send_phase {
            self.cost.rounds += 1;
            self.in_send_phase = true;
        }
        self.cost.bytes_sent += len;
        self.cost.messages_sent += 1;
        Ok(())
    }

    fn recv_frame(&mut self) -> Result<Frame, NetError> {
        let frame = self.inner.recv_frame()?;
        self.in_send_phase = false;
        self.cost.bytes_received += frame.payload.len() as u64;
        self.cost.messages_received += 1;
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::mem;

    #[test]
    fn counts_bytes_messages_and_rounds() {
        let (a, b) = mem::pair();
        let (mut a, mut b) = (Metered::new(a), Metered::new(b));
        a.send(vec![0; 10]).unwrap();
        a.send(vec![0; 5]).unwrap(); // same send phase
        b.recv().unwrap();
        b.recv().unwrap();
        b.send(vec![0; 3]).unwrap();
        a.recv().unwrap();
        a.send(vec![0; 1]).unwrap(); // a new round for a
        let ca = a.cost();
        assert_eq!((ca.bytes_sent, ca.bytes_received, ca.messages_sent, ca.rounds), (16, 3, 3, 2));
        let cb = b.cost();
        assert_eq!(
            (cb.bytes_sent, cb.bytes_received, cb.messages_received, cb.rounds),
            (3, 15, 2, 1)
        );
        assert_eq!((ca - ca).rounds, 0);
    }
}
