//! The authenticated, encrypted channel: mutual TLS 1.3 between the parties. Frames round-trip
//! (large simultaneous sends included), the wrong authority, a wrong key and a plaintext peer are
//! refused during the handshake, and the fault behaviour of TCP (closed peer, stall, frame caps)
//! holds over TLS.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use prifft::net::tcp::{Listener, TcpChannel, TcpConfig};
use prifft::net::tls::{TlsChannel, TlsFiles, TlsIdentity, generate_demo};
use prifft::net::{Channel, NetError};

fn config(timeout_ms: u64) -> TcpConfig {
    let t = Duration::from_millis(timeout_ms);
    TcpConfig {
        read_timeout: t,
        write_timeout: t,
        connect_timeout: Duration::from_secs(5),
        ..TcpConfig::default()
    }
}

fn certs(dir: &std::path::Path) -> [TlsFiles; 2] {
    let [s, c, _] = generate_demo().unwrap().write(dir).unwrap();
    [s, c]
}

/// A TLS server and client over 127.0.0.1 with the given identities.
fn pair(
    server: TlsFiles,
    client: TlsFiles,
    timeout_ms: u64,
) -> (Result<TlsChannel, NetError>, Result<TlsChannel, NetError>) {
    let listener = Listener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        TlsChannel::accept(&listener, &TlsIdentity::load(&server).unwrap(), config(timeout_ms))
    });
    let client =
        TlsChannel::connect(&addr, &TlsIdentity::load(&client).unwrap(), config(timeout_ms));
    (server.join().unwrap(), client)
}

#[test]
fn frames_round_trip_over_mutual_tls_and_overhead_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let [s, c] = certs(dir.path());
    let (a, b) = pair(s, c, 10_000);
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    // Both send a large frame at once: no deadlock.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
    a.send(big.clone()).unwrap();
    b.send(big.clone()).unwrap();
    assert_eq!(a.recv().unwrap(), big);
    assert_eq!(b.recv().unwrap(), big);
    for k in 0..50u8 {
        a.send(vec![k; k as usize]).unwrap();
        assert_eq!(b.recv().unwrap(), vec![k; k as usize]);
    }
    a.send(Vec::new()).unwrap();
    assert_eq!(b.recv().unwrap(), Vec::<u8>::new());
    // The wire carries more than the payloads (handshake, record headers and tags).
    let (sent, _) = a.wire().get();
    assert!(sent > big.len() as u64, "wire {sent} B");
    drop(b);
    assert!(matches!(a.recv(), Err(NetError::PeerClosed)), "peer dropped");
}

#[test]
fn a_certificate_from_another_authority_is_refused_before_any_protocol_byte() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let [s, _] = certs(dir.path());
    let [_, intruder] = certs(other.path());
    // The client's certificate is from another authority (it also trusts that other one).
    let (server, _client) = pair(s.clone(), intruder.clone(), 2_000);
    assert!(matches!(server, Err(NetError::Tls(_))), "server accepted: {server:?}");
    // A client that trusts another authority refuses the server.
    let wrong_trust = TlsFiles { ca: intruder.ca.clone(), ..pair_files(dir.path()) };
    let (_, client) = pair(s.clone(), wrong_trust, 2_000);
    assert!(matches!(client, Err(NetError::Tls(_))), "client accepted the server: {client:?}");
    // A certificate with the wrong private key cannot even be loaded into a working identity.
    let mismatched = TlsFiles { key: intruder.key.clone(), ..pair_files(dir.path()) };
    let (server, client) = pair(s, mismatched, 2_000);
    assert!(server.is_err() || client.is_err(), "a mismatched key completed a handshake");
}

fn pair_files(dir: &std::path::Path) -> TlsFiles {
    TlsFiles { ca: dir.join("ca.pem"), cert: dir.join("client.pem"), key: dir.join("client.key") }
}

#[test]
fn a_plaintext_peer_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let [s, _] = certs(dir.path());
    let listener = Listener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let identity = TlsIdentity::load(&s).unwrap();
    let server =
        std::thread::spawn(move || TlsChannel::accept(&listener, &identity, config(2_000)));
    let mut plain = TcpChannel::connect(&addr, config(2_000)).unwrap();
    plain.send(b"{\"protocol\":\"prifft-session/2\"}".to_vec()).unwrap();
    let err = server.join().unwrap().unwrap_err();
    assert!(matches!(err, NetError::Tls(_)), "{err}");
    assert!(err.to_string().contains("TLS"), "{err}");
    assert!(plain.recv().is_err(), "the plaintext peer must not get a frame");
}

#[test]
fn stalls_garbage_and_frame_caps_behave_as_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let [s, c] = certs(dir.path());
    // A peer that says nothing: Timeout.
    let (a, b) = pair(s.clone(), c.clone(), 300);
    let (mut a, _b) = (a.unwrap(), b.unwrap());
    assert!(matches!(a.recv(), Err(NetError::Timeout(_))));
    // Garbage after the handshake (raw bytes on a TLS socket): refused, not a hang.
    let listener = Listener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let garbage = std::thread::spawn(move || {
        let mut t = TcpStream::connect(addr).unwrap();
        t.write_all(&[0x17, 0x03, 0x03, 0xff, 0xff, 1, 2, 3, 4]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    });
    let identity = TlsIdentity::load(&s).unwrap();
    assert!(TlsChannel::accept(&listener, &identity, config(2_000)).is_err());
    garbage.join().unwrap();
    // The first-frame cap holds inside TLS too.
    let listener = Listener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let identity = TlsIdentity::load(&s).unwrap();
    let server = std::thread::spawn(move || {
        let mut cfg = config(2_000);
        cfg.max_first_frame = Some(64);
        TlsChannel::accept(&listener, &identity, cfg)
    });
    let mut client =
        TlsChannel::connect(&addr, &TlsIdentity::load(&c).unwrap(), config(2_000)).unwrap();
    let mut server = server.join().unwrap().unwrap();
    client.send(vec![0; 65]).unwrap();
    assert!(matches!(server.recv(), Err(NetError::FrameTooLarge { len: 65, cap: 64 })));
}

fn psk_pair(
    server_psk: &[u8],
    client_psk: &[u8],
) -> (Result<TlsChannel, NetError>, Result<TlsChannel, NetError>) {
    use prifft::party::PartyId;
    let listener = Listener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server_id = TlsIdentity::from_psk(server_psk, PartyId::P0).unwrap();
    let server =
        std::thread::spawn(move || TlsChannel::accept(&listener, &server_id, config(2_000)));
    let client_id = TlsIdentity::from_psk(client_psk, PartyId::P1).unwrap();
    let client = TlsChannel::connect(&addr, &client_id, config(2_000));
    (server.join().unwrap(), client)
}

#[test]
fn a_pre_shared_secret_authenticates_both_parties() {
    let psk = b"0123456789abcdef0123456789abcdef";
    let (a, b) = psk_pair(psk, psk);
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    a.send(vec![1, 2, 3]).unwrap();
    assert_eq!(b.recv().unwrap(), vec![1, 2, 3]);
    b.send(vec![4; 100_000]).unwrap();
    assert_eq!(a.recv().unwrap(), vec![4; 100_000]);
    // Another secret: refused in the handshake.
    let (server, client) = psk_pair(psk, b"another secret, also 32 bytes!!!");
    assert!(server.is_err() && client.is_err(), "{server:?} / {client:?}");
    // Too short to be a secret.
    assert!(TlsIdentity::from_psk(b"short", prifft::party::PartyId::P0).is_err());
}

/// The three-process mode's names: a party connecting to the dealer accepts only a certificate
/// issued for `prifft-dealer`, and one connecting to the server only `prifft-server` — with
/// certificate files from one authority and with one pre-shared secret alike — so the server
/// cannot pass for the dealer nor the dealer for the server.
#[test]
fn the_dealer_and_the_server_cannot_pass_for_each_other() {
    use prifft::net::tls::{DEALER_NAME, SERVER_NAME};
    let dir = tempfile::tempdir().unwrap();
    let [server, client, dealer] = generate_demo().unwrap().write(dir.path()).unwrap();
    let psk = b"0123456789abcdef0123456789abcdef";
    let files = |f: &TlsFiles| TlsIdentity::load(f).unwrap();
    let cases = [
        (files(&dealer), files(&client), DEALER_NAME, true),
        (files(&server), files(&client), DEALER_NAME, false),
        (files(&dealer), files(&client), SERVER_NAME, false),
        (
            TlsIdentity::from_psk_named(psk, DEALER_NAME).unwrap(),
            files(&client),
            DEALER_NAME,
            false,
        ),
        (
            TlsIdentity::from_psk_named(psk, DEALER_NAME).unwrap(),
            TlsIdentity::from_psk_named(psk, "prifft-client").unwrap(),
            DEALER_NAME,
            true,
        ),
        (
            TlsIdentity::from_psk_named(psk, SERVER_NAME).unwrap(),
            TlsIdentity::from_psk_named(psk, "prifft-client").unwrap(),
            DEALER_NAME,
            false,
        ),
    ];
    for (i, (listening, connecting, expected, ok)) in cases.into_iter().enumerate() {
        let listener = Listener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted =
            std::thread::spawn(move || TlsChannel::accept(&listener, &listening, config(2_000)));
        let connected = TlsChannel::connect_to(&addr, &connecting, config(2_000), expected);
        let accepted = accepted.join().unwrap();
        assert_eq!(connected.is_ok() && accepted.is_ok(), ok, "case {i}: {connected:?}");
    }
}
