//! TCP transport: length-prefixed frames with a size cap and timeouts.
//!
//! Wire format of one frame: a 4-byte little-endian payload length, then the payload. A length
//! above the cap ends the connection with [`NetError::FrameTooLarge`] before any allocation.
//!
//! A reader thread and a writer thread own the socket's two directions, so `send` never blocks
//! on the peer reading (no deadlock when both parties send large messages at once) and every
//! received frame is stamped with its arrival time (for [`Shaped`](super::Shaped)). `recv` waits
//! at most the read timeout; writes give up after the write timeout; connecting retries until
//! the connect timeout (so the client may start before the server).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Channel, DEFAULT_MAX_FRAME, DEFAULT_TIMEOUT, Frame, NetError};

/// Frames queued for the writer thread before `send` waits.
const SEND_QUEUE_FRAMES: usize = 64;
/// Pause between connection attempts while the server is not up yet.
const CONNECT_RETRY: Duration = Duration::from_millis(100);

/// Timeouts and limits of a TCP channel.
#[derive(Clone, Copy, Debug)]
pub struct TcpConfig {
    /// How long `recv` waits for a frame.
    pub read_timeout: Duration,
    /// How long one frame write may block.
    pub write_timeout: Duration,
    /// How long to keep trying to connect (client) or to wait for the client (server).
    pub connect_timeout: Duration,
    /// Largest accepted frame payload.
    pub max_frame: u64,
    /// A smaller cap for the first frame only (a session's hello), so a peer that announces a
    /// huge first frame is stopped before anything is allocated; `None`: `max_frame`.
    pub max_first_frame: Option<u64>,
}

/// Longest timeout a channel accepts: one day (longer ones are typos, and would overflow
/// deadlines).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

impl TcpConfig {
    /// Check the timeouts.
    ///
    /// # Errors
    /// [`NetError::Io`] (`InvalidInput`) naming the timeout that exceeds [`MAX_TIMEOUT`].
    pub fn validate(&self) -> Result<(), NetError> {
        for (name, t) in [
            ("read", self.read_timeout),
            ("write", self.write_timeout),
            ("connect", self.connect_timeout),
        ] {
            if t > MAX_TIMEOUT {
                return Err(NetError::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{name} timeout of {t:?} exceeds the maximum of {MAX_TIMEOUT:?}"),
                )));
            }
        }
        Ok(())
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            read_timeout: DEFAULT_TIMEOUT,
            write_timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_TIMEOUT,
            max_frame: DEFAULT_MAX_FRAME,
            max_first_frame: None,
        }
    }
}

/// A framed TCP connection to the other party.
#[derive(Debug)]
pub struct TcpChannel {
    inbox: Receiver<Result<Frame, NetError>>,
    outbox: Option<SyncSender<Vec<u8>>>,
    writer_error: Arc<Mutex<Option<(io::ErrorKind, String)>>>,
    socket: TcpStream,
    reader: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
    config: TcpConfig,
    closed: bool,
}

/// A bound listening socket, so a caller can learn the port before accepting (bind to port 0
/// for a free one).
#[derive(Debug)]
pub struct Listener {
    listener: TcpListener,
}

impl Listener {
    /// Bind to `addr`.
    ///
    /// # Errors
    /// The bind error (address in use, permission).
    pub fn bind(addr: &str) -> Result<Self, NetError> {
        Ok(Self { listener: TcpListener::bind(addr)? })
    }

    /// The bound address (with the real port when bound to port 0).
    ///
    /// # Errors
    /// The socket error.
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        Ok(self.listener.local_addr()?)
    }

    /// Accept one connection, waiting at most `config.connect_timeout` (a listener may accept
    /// several, one call each).
    ///
    /// # Errors
    /// [`NetError::Timeout`] when nobody connects in time, or the socket error.
    pub fn accept(&self, config: TcpConfig) -> Result<TcpChannel, NetError> {
        let stream = self.accept_stream(config)?;
        TcpChannel::from_stream(stream, config)
    }

    /// Accept one connection as a raw stream (the TLS channel's transport).
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub fn accept_stream(&self, config: TcpConfig) -> Result<TcpStream, NetError> {
        config.validate()?;
        self.listener.set_nonblocking(true)?;
        let deadline = Instant::now() + config.connect_timeout;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false)?;
                    return Ok(stream);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(NetError::Timeout(config.connect_timeout));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Connect to `addr` as a raw stream (the TLS channel's transport), retrying until
/// `config.connect_timeout`.
///
/// # Errors
/// [`NetError::Connect`] when no connection could be made in time.
pub fn connect_stream(addr: &str, config: TcpConfig) -> Result<TcpStream, NetError> {
    config.validate()?;
    let deadline = Instant::now() + config.connect_timeout;
    loop {
        let attempt = addr.to_socket_addrs().and_then(|mut addrs| {
            let target = addrs
                .next()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
            let left =
                deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            TcpStream::connect_timeout(&target, left)
        });
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(e) if Instant::now() + CONNECT_RETRY >= deadline => {
                return Err(NetError::Connect {
                    addr: addr.to_string(),
                    within: config.connect_timeout,
                    source: e,
                });
            }
            Err(_) => std::thread::sleep(CONNECT_RETRY),
        }
    }
}

impl TcpChannel {
    /// Connect to `addr`, retrying until `config.connect_timeout`.
    ///
    /// # Errors
    /// [`NetError::Connect`] when no connection could be made in time.
    pub fn connect(addr: &str, config: TcpConfig) -> Result<Self, NetError> {
        Self::from_stream(connect_stream(addr, config)?, config)
    }

    /// Wrap a connected stream.
    ///
    /// # Errors
    /// Socket option errors.
    pub fn from_stream(stream: TcpStream, config: TcpConfig) -> Result<Self, NetError> {
        config.validate()?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(config.write_timeout))?;
        let read_half = stream.try_clone()?;
        let mut write_half = stream.try_clone()?;

        let (inbox_tx, inbox) = mpsc::sync_channel(SEND_QUEUE_FRAMES);
        let caps = (config.max_first_frame.unwrap_or(config.max_frame), config.max_frame);
        let reader = std::thread::Builder::new()
            .name("prifft-tcp-read".into())
            .spawn(move || read_loop(read_half, caps, inbox_tx))?;

        let (outbox, outbox_rx) = mpsc::sync_channel::<Vec<u8>>(SEND_QUEUE_FRAMES);
        let writer_error = Arc::new(Mutex::new(None));
        let writer_error_slot = Arc::clone(&writer_error);
        let writer =
            std::thread::Builder::new().name("prifft-tcp-write".into()).spawn(move || {
                for payload in outbox_rx {
                    if let Err(e) = write_frame(&mut write_half, &payload) {
                        *writer_error_slot.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some((e.kind(), e.to_string()));
                        return;
                    }
                }
            })?;
        Ok(Self {
            inbox,
            outbox: Some(outbox),
            writer_error,
            socket: stream,
            reader: Some(reader),
            writer: Some(writer),
            config,
            closed: false,
        })
    }

    fn writer_failure(&self) -> Option<NetError> {
        let slot = self.writer_error.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().map(|(kind, msg)| match kind {
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted => NetError::PeerClosed,
            // A socket write timeout shows as WouldBlock (or TimedOut) from the OS.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                NetError::Timeout(self.config.write_timeout)
            }
            _ => NetError::Io(io::Error::new(*kind, msg.clone())),
        })
    }
}

fn write_frame(stream: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    let len =
        u32::try_from(payload.len()).map_err(|_| io::Error::other("frame longer than 4 GiB"))?;
    stream.write_all(&len.to_le_bytes())?;
    stream.write_all(payload)?;
    stream.flush()
}

/// Read frames until an error: the first under `caps.0`, the rest under `caps.1`.
fn read_loop(mut stream: TcpStream, caps: (u64, u64), inbox: SyncSender<Result<Frame, NetError>>) {
    let mut max_frame = caps.0;
    loop {
        let result = read_frame(&mut stream, max_frame);
        max_frame = caps.1;
        let stop = result.is_err();
        if inbox.send(result).is_err() || stop {
            return;
        }
    }
}

fn read_frame(stream: &mut TcpStream, max_frame: u64) -> Result<Frame, NetError> {
    let mut header = [0u8; 4];
    read_exact_or_closed(stream, &mut header)?;
    let len = u32::from_le_bytes(header) as u64;
    if len > max_frame {
        return Err(NetError::FrameTooLarge { len, cap: max_frame });
    }
    let mut payload = vec![0u8; len as usize];
    read_exact_or_closed(stream, &mut payload)?;
    Ok(Frame { payload, arrived: Instant::now() })
}

fn read_exact_or_closed(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), NetError> {
    stream.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted => NetError::PeerClosed,
        _ => NetError::Io(e),
    })
}

impl Channel for TcpChannel {
    fn send(&mut self, payload: Vec<u8>) -> Result<(), NetError> {
        let max_frame = self.config.max_frame;
        super::send_queued(self.outbox.as_ref(), max_frame, payload, || self.writer_failure())
    }

    fn recv_frame(&mut self) -> Result<Frame, NetError> {
        // A reader error is delivered through the inbox; a closed one stays closed.
        let timeout = self.config.read_timeout;
        super::recv_queued(&self.inbox, timeout, &mut self.closed, || None)
    }
}

impl Drop for TcpChannel {
    fn drop(&mut self) {
        // Let the writer drain what was queued (bounded by the write timeout), then close.
        self.outbox.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        let _ = self.socket.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(timeout_ms: u64) -> TcpConfig {
        let t = Duration::from_millis(timeout_ms);
        TcpConfig {
            read_timeout: t,
            write_timeout: t,
            connect_timeout: Duration::from_secs(5),
            max_frame: 1 << 20,
            max_first_frame: None,
        }
    }

    fn connected(timeout_ms: u64) -> (TcpChannel, TcpChannel) {
        let listener = Listener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || listener.accept(config(timeout_ms)).unwrap());
        let client = TcpChannel::connect(&addr, config(timeout_ms)).unwrap();
        (server.join().unwrap(), client)
    }

    #[test]
    fn frames_round_trip_and_large_simultaneous_sends_do_not_deadlock() {
        let (mut a, mut b) = connected(5_000);
        let big = vec![7u8; 900_000];
        a.send(big.clone()).unwrap();
        b.send(big.clone()).unwrap();
        assert_eq!(a.recv().unwrap(), big);
        assert_eq!(b.recv().unwrap(), big);
        a.send(Vec::new()).unwrap();
        assert_eq!(b.recv().unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn peer_close_timeout_and_garbage() {
        let (mut a, b) = connected(300);
        assert!(matches!(a.recv(), Err(NetError::Timeout(_))));
        drop(b);
        assert!(matches!(a.recv(), Err(NetError::PeerClosed)));

        // A raw peer announcing a 4 GiB frame: rejected by the cap, no allocation, no hang.
        let listener = Listener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let raw = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).unwrap();
            std::thread::sleep(Duration::from_millis(200));
        });
        let mut c = listener.accept(config(2_000)).unwrap();
        assert!(matches!(c.recv(), Err(NetError::FrameTooLarge { len: 0xffff_ffff, .. })));
        raw.join().unwrap();

        // A raw peer that sends half a frame and disconnects.
        let listener = Listener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let raw = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&[10, 0, 0, 0, 1, 2]).unwrap();
        });
        let mut c = listener.accept(config(2_000)).unwrap();
        raw.join().unwrap();
        assert!(matches!(c.recv(), Err(NetError::PeerClosed)));
    }

    #[test]
    fn connect_gives_up_with_a_clear_error() {
        let listener = Listener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let mut cfg = config(100);
        cfg.connect_timeout = Duration::from_millis(300);
        assert!(matches!(TcpChannel::connect(&addr, cfg), Err(NetError::Connect { .. })));
    }

    #[test]
    fn huge_timeouts_are_refused_not_overflowed() {
        // Regression: `--connect-timeout 1e19` overflowed `Instant + Duration` and panicked.
        let mut cfg = config(100);
        cfg.connect_timeout = Duration::from_secs(10_000_000_000_000_000_000);
        let err = TcpChannel::connect("127.0.0.1:9", cfg).unwrap_err();
        assert!(
            matches!(&err, NetError::Io(e) if e.kind() == io::ErrorKind::InvalidInput),
            "{err}"
        );
        let listener = Listener::bind("127.0.0.1:0").unwrap();
        let mut cfg = config(100);
        cfg.read_timeout = Duration::MAX;
        assert!(listener.accept(cfg).is_err());
    }

    #[test]
    fn the_first_frame_has_its_own_small_cap() {
        // A peer whose first frame announces 1 GiB (under the general cap) is stopped at the
        // first-frame cap, before anything is allocated.
        let listener = Listener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let raw = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&(1u32 << 30).to_le_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(200));
        });
        let mut cfg = config(2_000);
        cfg.max_frame = 1 << 31;
        cfg.max_first_frame = Some(4096);
        let mut c = listener.accept(cfg).unwrap();
        assert!(matches!(c.recv(), Err(NetError::FrameTooLarge { len: 1_073_741_824, cap: 4096 })));
        raw.join().unwrap();
        // After a small first frame, the general cap applies.
        let listener = Listener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let mut cfg = config(2_000);
            cfg.max_first_frame = Some(16);
            listener.accept(cfg).unwrap()
        });
        let mut client = TcpChannel::connect(&addr, config(2_000)).unwrap();
        let mut server = server.join().unwrap();
        client.send(vec![1; 16]).unwrap();
        client.send(vec![2; 100_000]).unwrap();
        assert_eq!(server.recv().unwrap().len(), 16);
        assert_eq!(server.recv().unwrap().len(), 100_000);
    }

    #[test]
    fn a_stalled_reader_makes_the_writer_report_a_timeout() {
        // The peer never reads: the socket buffers fill, the write times out, and the error
        // says Timeout (the OS reports WouldBlock for a socket write timeout).
        let listener = Listener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stalled = std::thread::spawn(move || {
            let s = TcpStream::connect(addr).unwrap();
            std::thread::sleep(Duration::from_secs(3));
            drop(s);
        });
        let mut c = listener.accept(config(200)).unwrap();
        let chunk = vec![0u8; 1 << 20];
        let mut result = Ok(());
        for _ in 0..400 {
            result = c.send(chunk.clone());
            if result.is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(matches!(result, Err(NetError::Timeout(_))), "{result:?}");
        stalled.join().unwrap();
    }
}
