//! A network model that really delays traffic: one-way latency and bandwidth.
//!
//! The delay is applied at the receiver: each frame is stamped when it reaches this process
//! (by the transport's reader thread, or at send time for in-memory channels), then held back
//! until it would have arrived over a FIFO link of the given bandwidth and one-way latency:
//!
//! ```text
//! start_i   = max(stamp_i, end_{i−1})
//! end_i     = start_i + 8·(len_i + 4) / bandwidth     (4 = frame header)
//! deliver_i = end_i + latency
//! ```
//!
//! This assumes the real transport underneath is much faster than the model (in-process or
//! loopback), which is how it is meant to be used: to report protocol times "under LAN" or
//! "under WAN" on one machine. Both parties should use the same model.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::{Channel, Frame, NetError};

/// One-way latency and bandwidth of a modelled link.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct NetModel {
    /// One-way propagation delay.
    pub latency: Duration,
    /// Link bandwidth in bits per second.
    pub bandwidth_bps: f64,
}

impl NetModel {
    /// 1 Gbit/s, 0.2 ms one way.
    pub const LAN: NetModel = NetModel { latency: Duration::from_micros(200), bandwidth_bps: 1e9 };
    /// 100 Mbit/s, 20 ms one way.
    pub const WAN: NetModel = NetModel { latency: Duration::from_millis(20), bandwidth_bps: 1e8 };

    /// Slowest link accepted, Mbit/s (a 1 GiB frame then takes under a day).
    pub const MIN_MBITS: f64 = 0.1;
    /// Fastest link accepted, Mbit/s.
    pub const MAX_MBITS: f64 = 1e7;
    /// Longest one-way latency accepted, milliseconds.
    pub const MAX_MILLIS: f64 = 10_000.0;

    /// A link of `mbits` Mbit/s with `millis` ms one way.
    ///
    /// # Errors
    /// A message naming the allowed ranges, [`MIN_MBITS`](Self::MIN_MBITS)..=
    /// [`MAX_MBITS`](Self::MAX_MBITS) and 0..=[`MAX_MILLIS`](Self::MAX_MILLIS) (NaN and
    /// infinities are outside them).
    pub fn new(mbits: f64, millis: f64) -> Result<Self, String> {
        if !(Self::MIN_MBITS..=Self::MAX_MBITS).contains(&mbits)
            || !(0.0..=Self::MAX_MILLIS).contains(&millis)
        {
            return Err(format!(
                "bandwidth must be {}..={} Mbit/s and latency 0..={} ms, got {mbits} and {millis}",
                Self::MIN_MBITS,
                Self::MAX_MBITS,
                Self::MAX_MILLIS
            ));
        }
        Ok(Self { latency: Duration::from_secs_f64(millis / 1e3), bandwidth_bps: mbits * 1e6 })
    }

    /// Time to put `bytes` on the wire.
    pub fn transmit_time(&self, bytes: usize) -> Duration {
        // Saturating: a hand-built model with a zero or negative bandwidth means "never".
        Duration::try_from_secs_f64(bytes as f64 * 8.0 / self.bandwidth_bps)
            .unwrap_or(Duration::MAX)
    }
}

impl fmt::Display for NetModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Mbit/s, {:?} one way", self.bandwidth_bps / 1e6, self.latency)
    }
}

impl FromStr for NetModel {
    type Err = String;

    /// `lan`, `wan`, or `MBITS:MILLIS` (e.g. `50:10` = 50 Mbit/s with 10 ms one way).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lan" => Ok(Self::LAN),
            "wan" => Ok(Self::WAN),
            _ => {
                let err =
                    || format!("network model {s:?}: use lan, wan or MBITS:MILLIS (e.g. 50:10)");
                let (mbits, millis) = s.split_once(':').ok_or_else(err)?;
                let mbits: f64 = mbits.parse().map_err(|_| err())?;
                let millis: f64 = millis.parse().map_err(|_| err())?;
                Self::new(mbits, millis).map_err(|e| format!("network model {s:?}: {e}"))
            }
        }
    }
}

/// Bytes of framing the model charges per message (the TCP transport's length prefix).
const FRAME_HEADER_BYTES: usize = 4;

/// A channel whose incoming traffic is delayed by a [`NetModel`].
#[derive(Debug)]
pub struct Shaped<C> {
    inner: C,
    model: NetModel,
    link_free_at: Option<Instant>,
}

impl<C: Channel> Shaped<C> {
    /// Wrap `inner` under `model`.
    pub fn new(inner: C, model: NetModel) -> Self {
        Self { inner, model, link_free_at: None }
    }
}

impl<C: Channel> Channel for Shaped<C> {
    fn send(&mut self, payload: Vec<u8>) -> Result<(), NetError> {
        self.inner.send(payload)
    }

    fn recv_frame(&mut self) -> Result<Frame, NetError> {
        let frame = self.inner.recv_frame()?;
        let start = match self.link_free_at {
            Some(free) if free > frame.arrived => free,
            _ => frame.arrived,
        };
        let end = start + self.model.transmit_time(frame.payload.len() + FRAME_HEADER_BYTES);
        self.link_free_at = Some(end);
        let deliver = end + self.model.latency;
        let now = Instant::now();
        if deliver > now {
            std::thread::sleep(deliver - now);
        }
        Ok(Frame { payload: frame.payload, arrived: deliver })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn out_of_range_models_are_errors_not_panics_or_year_long_sleeps() {
        // Regressions: 1:1e300 panicked while parsing, 1e-300:0 on the first message, and
        // 1:1e15 slept for years.
        for bad in ["1:1e300", "1e-300:0", "1:1e15", "0:1", "-5:1", "nan:1", "1:inf", "1:-1"] {
            assert!(bad.parse::<NetModel>().is_err(), "{bad} accepted");
        }
        assert_eq!("100:20".parse::<NetModel>().unwrap(), NetModel::WAN);
        let zero = NetModel { latency: Duration::ZERO, bandwidth_bps: 0.0 };
        assert_eq!(zero.transmit_time(10), Duration::MAX);
    }

    use super::*;
    use crate::net::mem;

    #[test]
    fn parses_presets_and_custom() {
        assert_eq!("lan".parse::<NetModel>().unwrap(), NetModel::LAN);
        let m: NetModel = "50:10".parse().unwrap();
        assert_eq!(m.latency, Duration::from_millis(10));
        assert_eq!(m.bandwidth_bps, 5e7);
        assert!("fast".parse::<NetModel>().is_err());
        assert!("0:1".parse::<NetModel>().is_err());
    }

    #[test]
    fn delays_by_latency_and_bandwidth() {
        // 8 Mbit/s and 30 ms: 10,000 bytes take 10 ms on the wire, so ≥ 40 ms in all.
        let model = NetModel { latency: Duration::from_millis(30), bandwidth_bps: 8e6 };
        let (mut a, b) = mem::pair();
        let mut b = Shaped::new(b, model);
        let t0 = Instant::now();
        a.send(vec![0; 10_000 - FRAME_HEADER_BYTES]).unwrap();
        b.recv().unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(40), "{:?}", t0.elapsed());
    }
}
