//! The authenticated, encrypted channel between the parties: TLS 1.3 (rustls, `ring` provider)
//! with **mutual certificate authentication** over TCP, carrying the same length-prefixed frames
//! as [`TcpChannel`](super::tcp::TcpChannel) behind the same [`Channel`] trait.
//!
//! **Who is who.** Both parties trust one certificate authority (`--tls-ca`), or derive one from
//! a pre-shared secret ([`TlsIdentity::from_psk`], `--tls-psk`). The server presents
//! a certificate for the name [`SERVER_NAME`], which the client checks; the server accepts only
//! clients whose certificate chains to the same authority. A peer with a certificate from
//! another authority, a wrong key, or no TLS at all is refused during the handshake — before any
//! protocol byte is sent or read. [`generate_demo`] makes a fresh authority and both parties'
//! certificates for a demo or a test (`prifft certs`).
//!
//! **What an eavesdropper sees**: the TLS handshake (certificates, in the clear in their TLS 1.3
//! encrypted extensions only after the key exchange) and the sizes and timing of the records,
//! i.e. of the protocol's messages — not their contents.
//!
//! **Design.** The handshake runs blocking, within the connect timeout. Afterwards one I/O thread
//! owns the connection: it moves outgoing frames (in 64 KiB pieces, so a huge frame is never
//! encrypted in one go) into TLS records, writes records while the socket accepts them, and reads
//! and decrypts whatever arrives, so two parties sending large messages at once never deadlock.
//! The socket is non-blocking; when a pass makes no progress the thread sleeps 50 µs. Metering
//! ([`Metered`](super::Metered)) counts application bytes as for TCP; [`TlsChannel::wire`]
//! counts the bytes on the wire, so the TLS overhead is reported separately.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::tcp::{Listener, TcpConfig};
use super::{Channel, Frame, NetError};

/// The name the server's certificate is issued for and the client checks.
pub const SERVER_NAME: &str = "prifft-server";
/// The name in the client's certificate (informational: the server checks the chain).
pub const CLIENT_NAME: &str = "prifft-client";
/// The name the dealer's certificate is issued for (`prifft finetune --role dealer`), which the
/// parties check when they connect to it — so neither party's certificate can pass for the
/// dealer's, nor the dealer's for the server's.
pub const DEALER_NAME: &str = "prifft-dealer";
/// Plaintext bytes handed to TLS at a time.
const PIECE: usize = 64 << 10;
/// Pause of the I/O thread when a pass made no progress.
const IDLE: Duration = Duration::from_micros(50);
/// Frames queued for the I/O thread before `send` waits.
const SEND_QUEUE_FRAMES: usize = 64;

/// Where a party's TLS material lies (PEM files).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate authority both parties trust.
    pub ca: PathBuf,
    /// This party's certificate chain.
    pub cert: PathBuf,
    /// This party's private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

fn tls_error(what: impl std::fmt::Display) -> NetError {
    NetError::Tls(what.to_string())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A party's loaded TLS identity: the authority it trusts and its own certificate and key.
pub struct TlsIdentity {
    roots: Arc<rustls::RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Load the PEM files.
    ///
    /// # Errors
    /// [`NetError::Tls`] naming the file that is missing or holds no certificate or key.
    pub fn load(files: &TlsFiles) -> Result<Self, NetError> {
        let certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, NetError> {
            let certs: Vec<_> = CertificateDer::pem_file_iter(path)
                .map_err(|e| tls_error(format!("{}: {e}", path.display())))?
                .collect::<Result<_, _>>()
                .map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(tls_error(format!("{}: no certificate in the file", path.display())));
            }
            Ok(certs)
        };
        let mut roots = rustls::RootCertStore::empty();
        for ca in certs(&files.ca)? {
            roots.add(ca).map_err(|e| tls_error(format!("{}: {e}", files.ca.display())))?;
        }
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|e| tls_error(format!("{}: {e}", files.key.display())))?;
        Ok(Self { roots: Arc::new(roots), chain: certs(&files.cert)?, key })
    }

    fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, NetError> {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            self.roots.clone(),
            provider(),
        )
        .build()
        .map_err(tls_error)?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_error)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(tls_error)?;
        config.send_tls13_tickets = 0; // one session per connection: no resumption
        Ok(Arc::new(config))
    }

    fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, NetError> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_error)?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(tls_error)?;
        Ok(Arc::new(config))
    }
}

/// Shortest pre-shared secret accepted, bytes.
pub const MIN_PSK_BYTES: usize = 16;

impl TlsIdentity {
    /// Both parties' TLS material from a **pre-shared secret** instead of certificate files.
    ///
    /// rustls has no TLS 1.3 external-PSK mode, so the secret authenticates through
    /// certificates derived from it: HKDF-SHA256 expands it into the Ed25519 keys of an
    /// authority and of each party, the authority's certificate is built deterministically (the
    /// same trust anchor on both sides), and each party's certificate is signed by it. The
    /// handshake is the ordinary mutual TLS 1.3 one (ephemeral key exchange, so recorded traffic
    /// stays secret even if the secret leaks later); a peer without the same secret cannot
    /// complete it. Anyone who knows the secret can act as either party, as with any PSK.
    ///
    /// # Errors
    /// [`NetError::Tls`] for a secret shorter than [`MIN_PSK_BYTES`].
    pub fn from_psk(psk: &[u8], party: crate::party::PartyId) -> Result<Self, NetError> {
        let name = match party {
            crate::party::PartyId::P0 => SERVER_NAME,
            crate::party::PartyId::P1 => CLIENT_NAME,
        };
        Self::from_psk_named(psk, name)
    }

    /// As [`from_psk`](Self::from_psk), with a certificate for `name` (e.g. [`DEALER_NAME`]).
    ///
    /// # Errors
    /// As [`from_psk`](Self::from_psk).
    pub fn from_psk_named(psk: &[u8], name: &str) -> Result<Self, NetError> {
        if psk.len() < MIN_PSK_BYTES {
            return Err(tls_error(format!(
                "the pre-shared secret has {} bytes; use at least {MIN_PSK_BYTES} random bytes (e.g. `head -c 32 /dev/urandom > psk`)",
                psk.len()
            )));
        }
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"prifft tls psk v1"), psk);
        let key = |label: &str| -> Result<(rcgen::KeyPair, Vec<u8>), NetError> {
            let mut seed = [0u8; 32];
            hk.expand(label.as_bytes(), &mut seed).map_err(tls_error)?;
            // PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410): a fixed 16-byte prefix.
            let mut der = vec![
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
                0x04, 0x20,
            ];
            der.extend_from_slice(&seed);
            zeroize::Zeroize::zeroize(&mut seed);
            let pkcs8 = rustls::pki_types::PrivatePkcs8KeyDer::from(der.clone());
            let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)
                .map_err(tls_error)?;
            Ok((pair, der))
        };
        let (ca_key, _) = key("authority")?;
        let mut ca_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "prifft PSK authority");
        ca_params.serial_number = Some(rcgen::SerialNumber::from(1u64));
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(tls_error)?;
        let (leaf_key, leaf_der) = key(name)?;
        let mut params =
            rcgen::CertificateParams::new(vec![name.to_string()]).map_err(tls_error)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.serial_number = Some(rcgen::SerialNumber::from(2u64));
        let leaf = params.signed_by(&leaf_key, &ca).map_err(tls_error)?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).map_err(tls_error)?;
        Ok(Self {
            roots: Arc::new(roots),
            chain: vec![leaf.der().clone()],
            key: PrivateKeyDer::Pkcs8(leaf_der.into()),
        })
    }
}

/// Bytes on the wire (TLS records included) in each direction.
#[derive(Clone, Debug, Default)]
pub struct WireBytes {
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
}

impl WireBytes {
    /// (sent, received) so far.
    pub fn get(&self) -> (u64, u64) {
        (self.sent.load(Ordering::Relaxed), self.received.load(Ordering::Relaxed))
    }
}

/// A TLS 1.3 connection to the other party.
pub struct TlsChannel {
    inbox: Receiver<Result<Frame, NetError>>,
    outbox: Option<SyncSender<Vec<u8>>>,
    io: Option<JoinHandle<()>>,
    failure: Arc<Mutex<Option<NetError>>>,
    wire: WireBytes,
    config: TcpConfig,
    closed: bool,
}

impl std::fmt::Debug for TlsChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsChannel").field("wire", &self.wire.get()).finish_non_exhaustive()
    }
}

impl TlsChannel {
    /// Accept one client on `listener` (one per call) and complete the handshake (within the connect timeout).
    ///
    /// # Errors
    /// [`NetError::Timeout`] when nobody connects; [`NetError::Tls`] when the peer is not a TLS
    /// client, presents no certificate or one the authority did not sign.
    pub fn accept(
        listener: &Listener,
        identity: &TlsIdentity,
        config: TcpConfig,
    ) -> Result<Self, NetError> {
        let stream = listener.accept_stream(config)?;
        let conn = rustls::ServerConnection::new(identity.server_config()?).map_err(tls_error)?;
        Self::start(stream, rustls::Connection::Server(conn), config)
    }

    /// Connect to the server at `addr` (retrying within the connect timeout) and complete the
    /// handshake.
    ///
    /// # Errors
    /// [`NetError::Connect`]; [`NetError::Tls`] when the server's certificate is not for
    /// [`SERVER_NAME`] from the trusted authority, or it refuses ours.
    pub fn connect(
        addr: &str,
        identity: &TlsIdentity,
        config: TcpConfig,
    ) -> Result<Self, NetError> {
        Self::connect_to(addr, identity, config, SERVER_NAME)
    }

    /// As [`connect`](Self::connect) to a peer whose certificate must be issued for `name`
    /// (e.g. [`DEALER_NAME`]).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn connect_to(
        addr: &str,
        identity: &TlsIdentity,
        config: TcpConfig,
        name: &str,
    ) -> Result<Self, NetError> {
        let stream = super::tcp::connect_stream(addr, config)?;
        let name = ServerName::try_from(name.to_string()).map_err(tls_error)?;
        let conn =
            rustls::ClientConnection::new(identity.client_config()?, name).map_err(tls_error)?;
        Self::start(stream, rustls::Connection::Client(conn), config)
    }

    /// Bytes on the wire so far, for the overhead report.
    pub fn wire(&self) -> WireBytes {
        self.wire.clone()
    }

    fn start(
        mut stream: TcpStream,
        mut conn: rustls::Connection,
        config: TcpConfig,
    ) -> Result<Self, NetError> {
        config.validate()?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(config.connect_timeout.max(Duration::from_millis(1))))?;
        stream.set_write_timeout(Some(config.connect_timeout.max(Duration::from_millis(1))))?;
        let wire = WireBytes::default();
        let mut counted = Counted { stream: &mut stream, wire: &wire };
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut counted) {
                return Err(handshake_error(e, config.connect_timeout));
            }
        }
        // Anything the handshake left to send (the client's Finished) goes out before the switch.
        while conn.wants_write() {
            conn.write_tls(&mut counted).map_err(|e| handshake_error(e, config.connect_timeout))?;
        }
        stream.set_nonblocking(true)?;
        let (inbox_tx, inbox) = mpsc::channel();
        let (outbox, outbox_rx) = mpsc::sync_channel(SEND_QUEUE_FRAMES);
        let failure = Arc::new(Mutex::new(None));
        let caps = (config.max_first_frame.unwrap_or(config.max_frame), config.max_frame);
        let io_thread = IoThread {
            stream,
            conn,
            outbox: outbox_rx,
            inbox: inbox_tx,
            failure: Arc::clone(&failure),
            wire: wire.clone(),
            caps,
            write_timeout: config.write_timeout,
        };
        let io =
            std::thread::Builder::new().name("prifft-tls".into()).spawn(move || io_thread.run())?;
        Ok(Self { inbox, outbox: Some(outbox), io: Some(io), failure, wire, config, closed: false })
    }

    fn failure(&self) -> Option<NetError> {
        recorded(&self.failure)
    }
}

/// The failure the I/O thread recorded, if any.
fn recorded(failure: &Mutex<Option<NetError>>) -> Option<NetError> {
    failure.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(clone_error)
}

fn clone_error(e: &NetError) -> NetError {
    match e {
        NetError::PeerClosed => NetError::PeerClosed,
        NetError::Timeout(t) => NetError::Timeout(*t),
        NetError::FrameTooLarge { len, cap } => NetError::FrameTooLarge { len: *len, cap: *cap },
        NetError::Tls(m) => NetError::Tls(m.clone()),
        other => NetError::Io(io::Error::other(other.to_string())),
    }
}

fn handshake_error(e: io::Error, within: Duration) -> NetError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => NetError::Timeout(within),
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => NetError::Tls(
            "the peer closed the connection during the TLS handshake (does it use the same certificate authority, and TLS at all?)".into(),
        ),
        _ => NetError::Tls(format!(
            "handshake failed: {e} (a peer without TLS, or with a certificate from another authority?)"
        )),
    }
}

/// A stream that counts the bytes it moves.
struct Counted<'a> {
    stream: &'a mut TcpStream,
    wire: &'a WireBytes,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.wire.received.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.stream.write(buf)?;
        self.wire.sent.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

struct IoThread {
    stream: TcpStream,
    conn: rustls::Connection,
    outbox: Receiver<Vec<u8>>,
    inbox: Sender<Result<Frame, NetError>>,
    failure: Arc<Mutex<Option<NetError>>>,
    wire: WireBytes,
    caps: (u64, u64),
    write_timeout: Duration,
}

impl IoThread {
    fn run(mut self) {
        if let Err(e) = self.pump() {
            *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(clone_error(&e));
            let _ = self.inbox.send(Err(e));
        }
    }

    /// Move frames both ways until the local side closes (Ok) or the link fails (Err).
    fn pump(&mut self) -> Result<(), NetError> {
        let mut outgoing: VecDeque<u8> = VecDeque::new();
        let mut incoming: Vec<u8> = Vec::new();
        let mut plain = vec![0u8; PIECE];
        let mut frames = 0u64;
        let mut local_closed = false;
        let mut stuck_since: Option<Instant> = None;
        // Records the handshake already read and decrypted (a peer may send its first frame
        // right behind its Finished) are delivered before waiting for more bytes.
        if !self.deliver(&mut incoming, &mut plain, &mut frames)? {
            return Ok(());
        }
        loop {
            let mut progress = false;
            // 1. Hand the next piece of plaintext to TLS once its records are out.
            if outgoing.is_empty() && !local_closed {
                match self.outbox.try_recv() {
                    Ok(payload) => {
                        let len = u32::try_from(payload.len()).map_err(|_| {
                            NetError::Io(io::Error::other("frame longer than 4 GiB"))
                        })?;
                        outgoing.extend(len.to_le_bytes());
                        outgoing.extend(payload);
                        progress = true;
                    }
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Disconnected) => {
                        local_closed = true;
                        self.conn.send_close_notify();
                    }
                }
            }
            if !outgoing.is_empty() && !self.conn.wants_write() {
                let take = outgoing.len().min(PIECE);
                let piece: Vec<u8> = outgoing.drain(..take).collect();
                self.conn.writer().write_all(&piece)?;
                progress = true;
            }
            // 2. Write records while the socket takes them.
            let mut counted = Counted { stream: &mut self.stream, wire: &self.wire };
            while self.conn.wants_write() {
                match self.conn.write_tls(&mut counted) {
                    Ok(0) => break,
                    Ok(_) => {
                        progress = true;
                        stuck_since = None;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        let since = *stuck_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > self.write_timeout {
                            return Err(NetError::Timeout(self.write_timeout));
                        }
                        break;
                    }
                    Err(e) => return Err(closed_or(e)),
                }
            }
            if local_closed && outgoing.is_empty() && !self.conn.wants_write() {
                return Ok(());
            }
            // 3. Read and decrypt what arrived, and cut it into frames.
            match self.conn.read_tls(&mut counted) {
                Ok(0) => return Err(NetError::PeerClosed),
                Ok(_) => {
                    progress = true;
                    if !self.deliver(&mut incoming, &mut plain, &mut frames)? {
                        return Ok(()); // the channel was dropped
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(closed_or(e)),
            }
            if !progress {
                std::thread::sleep(IDLE);
            }
        }
    }

    /// Decrypt what TLS holds, move the plaintext to `incoming` and hand every complete frame
    /// to the channel; false when the channel was dropped.
    fn deliver(
        &mut self,
        incoming: &mut Vec<u8>,
        plain: &mut [u8],
        frames: &mut u64,
    ) -> Result<bool, NetError> {
        let state = self
            .conn
            .process_new_packets()
            .map_err(|e| NetError::Tls(format!("the peer sent invalid TLS data: {e}")))?;
        let mut available = state.plaintext_bytes_to_read();
        while available > 0 {
            let n = self.conn.reader().read(&mut plain[..available.min(PIECE)])?;
            incoming.extend_from_slice(&plain[..n]);
            available -= n;
        }
        while let Some(frame) = self.next_frame(incoming, *frames)? {
            *frames += 1;
            if self.inbox.send(Ok(frame)).is_err() {
                return Ok(false);
            }
        }
        if state.peer_has_closed() && incoming.is_empty() {
            return Err(NetError::PeerClosed);
        }
        Ok(true)
    }

    /// The next complete frame in `buf`, checked against the cap of frame number `index`.
    fn next_frame(&self, buf: &mut Vec<u8>, index: u64) -> Result<Option<Frame>, NetError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as u64;
        let cap = if index == 0 { self.caps.0 } else { self.caps.1 };
        if len > cap {
            return Err(NetError::FrameTooLarge { len, cap });
        }
        let end = 4 + len as usize;
        if buf.len() < end {
            return Ok(None);
        }
        let payload = buf[4..end].to_vec();
        buf.drain(..end);
        Ok(Some(Frame { payload, arrived: Instant::now() }))
    }
}

fn closed_or(e: io::Error) -> NetError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => NetError::PeerClosed,
        _ => NetError::Io(e),
    }
}

impl Channel for TlsChannel {
    fn send(&mut self, payload: Vec<u8>) -> Result<(), NetError> {
        let max_frame = self.config.max_frame;
        super::send_queued(self.outbox.as_ref(), max_frame, payload, || self.failure())
    }

    fn recv_frame(&mut self) -> Result<Frame, NetError> {
        let (timeout, failure) = (self.config.read_timeout, &self.failure);
        super::recv_queued(&self.inbox, timeout, &mut self.closed, || recorded(failure))
    }
}

impl Drop for TlsChannel {
    fn drop(&mut self) {
        // Closing the outbox makes the I/O thread send close_notify, flush and stop.
        self.outbox = None;
        if let Some(io) = self.io.take() {
            let _ = io.join();
        }
    }
}

/// A demo certificate authority and the server's, the client's and the dealer's certificates,
/// as PEM (`prifft certs`).
#[derive(Debug)]
pub struct DemoCerts {
    /// The authority's certificate (its key is discarded: it can issue nothing more).
    pub ca: String,
    /// The server's certificate, for [`SERVER_NAME`].
    pub server_cert: String,
    /// The server's private key.
    pub server_key: String,
    /// The client's certificate, for [`CLIENT_NAME`].
    pub client_cert: String,
    /// The client's private key.
    pub client_key: String,
    /// The dealer's certificate, for [`DEALER_NAME`].
    pub dealer_cert: String,
    /// The dealer's private key.
    pub dealer_key: String,
}

/// Generate a fresh authority and both parties' certificates (ECDSA P-256, keys from the
/// operating system's randomness).
///
/// # Errors
/// [`NetError::Tls`] when generation fails.
pub fn generate_demo() -> Result<DemoCerts, NetError> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "prifft demo CA");
    let ca_key = rcgen::KeyPair::generate().map_err(tls_error)?;
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(tls_error)?;
    let leaf = |name: &str| -> Result<(String, String), NetError> {
        let mut params =
            rcgen::CertificateParams::new(vec![name.to_string()]).map_err(tls_error)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().map_err(tls_error)?;
        let cert = params.signed_by(&key, &ca).map_err(tls_error)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (server_cert, server_key) = leaf(SERVER_NAME)?;
    let (client_cert, client_key) = leaf(CLIENT_NAME)?;
    let (dealer_cert, dealer_key) = leaf(DEALER_NAME)?;
    Ok(DemoCerts {
        ca: ca.pem(),
        server_cert,
        server_key,
        client_cert,
        client_key,
        dealer_cert,
        dealer_key,
    })
}

impl DemoCerts {
    /// Write `ca.pem`, `server.pem`, `server.key`, `client.pem`, `client.key`, `dealer.pem` and
    /// `dealer.key` into `dir` (keys owner-only); returns the server's, the client's and the
    /// dealer's [`TlsFiles`].
    ///
    /// # Errors
    /// [`NetError::Io`] when a file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<[TlsFiles; 3], NetError> {
        let write = |name: &str, text: &str, secret: bool| -> Result<PathBuf, NetError> {
            let path = dir.join(name);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            if secret {
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            }
            let _ = secret;
            options.open(&path)?.write_all(text.as_bytes())?;
            Ok(path)
        };
        let ca = write("ca.pem", &self.ca, false)?;
        let files = |who: &str, cert: &str, key: &str| -> Result<TlsFiles, NetError> {
            Ok(TlsFiles {
                ca: ca.clone(),
                cert: write(&format!("{who}.pem"), cert, false)?,
                key: write(&format!("{who}.key"), key, true)?,
            })
        };
        Ok([
            files("server", &self.server_cert, &self.server_key)?,
            files("client", &self.client_cert, &self.client_key)?,
            files("dealer", &self.dealer_cert, &self.dealer_key)?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::party::PartyId;

    /// A client whose first frame arrives in the same TCP write as its handshake's Finished:
    /// the server's handshake reads and decrypts it, and the I/O thread must hand it over
    /// without waiting for more bytes (it once waited, so a protocol in which the server first
    /// listens timed out).
    #[test]
    fn a_frame_that_arrives_with_the_handshake_is_delivered() {
        let listener = Listener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = TcpConfig {
            read_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            ..TcpConfig::default()
        };
        let client = std::thread::spawn(move || {
            let id = TlsIdentity::from_psk(&[9; 32], PartyId::P1).unwrap();
            let name = ServerName::try_from(SERVER_NAME).unwrap();
            let mut conn =
                rustls::ClientConnection::new(id.client_config().unwrap(), name).unwrap();
            let mut sock = TcpStream::connect(addr).unwrap();
            // ClientHello out, the server's flight in, until the client's side is done.
            while conn.is_handshaking() {
                while conn.wants_write() {
                    conn.write_tls(&mut sock).unwrap();
                }
                if conn.is_handshaking() {
                    conn.read_tls(&mut sock).unwrap();
                    conn.process_new_packets().unwrap();
                }
            }
            // The Finished and a frame, in one write.
            let mut frame = 5u32.to_le_bytes().to_vec();
            frame.extend_from_slice(b"hello");
            conn.writer().write_all(&frame).unwrap();
            let mut out = Vec::new();
            while conn.wants_write() {
                conn.write_tls(&mut out).unwrap();
            }
            sock.write_all(&out).unwrap();
            std::thread::sleep(Duration::from_millis(500));
        });
        let id = TlsIdentity::from_psk(&[9; 32], PartyId::P0).unwrap();
        let mut server = TlsChannel::accept(&listener, &id, config).unwrap();
        assert_eq!(server.recv().unwrap(), b"hello");
        client.join().unwrap();
    }
}
