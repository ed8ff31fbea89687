//! The authenticated links between processes (`prifft party`, `prifft finetune --role`): the
//! TLS options and opening a link by listening or connecting.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use prifft::mpc::PartyId;
use prifft::net::tcp::{Listener, TcpChannel, TcpConfig};
use prifft::net::tls::{CLIENT_NAME, SERVER_NAME, TlsChannel, TlsFiles, TlsIdentity, WireBytes};

/// The certificate name of a party.
pub fn name_of(id: PartyId) -> &'static str {
    match id {
        PartyId::P0 => SERVER_NAME,
        PartyId::P1 => CLIENT_NAME,
    }
}
use prifft::net::{Channel, NetError};
use prifft::{Error, Result};

/// How a process authenticates its links.
#[derive(Args, Debug, Clone)]
pub struct LinkArgs {
    /// The certificate authority every process trusts (PEM). With --tls-cert and --tls-key each
    /// link is mutual TLS 1.3: each side proves its certificate, and a peer from another
    /// authority, with a wrong key or without TLS is refused before any protocol byte.
    /// `prifft certs --out-dir DIR` makes a demo set.
    #[arg(long, requires_all = ["tls_cert", "tls_key"], conflicts_with = "insecure_plaintext")]
    pub tls_ca: Option<PathBuf>,
    /// This process's certificate (PEM): the server's must be issued for `prifft-server`, the
    /// dealer's for `prifft-dealer` (the others check the name when they connect).
    #[arg(long, requires = "tls_ca")]
    pub tls_cert: Option<PathBuf>,
    /// This process's private key (PEM).
    #[arg(long, requires = "tls_ca")]
    pub tls_key: Option<PathBuf>,
    /// Instead of certificate files: a file holding a secret every process shares (at least 16
    /// random bytes, e.g. `head -c 32 /dev/urandom > psk`); all derive the same authority and
    /// their certificates from it, and a peer without the secret cannot complete the handshake.
    #[arg(long, conflicts_with_all = ["tls_ca", "insecure_plaintext"])]
    pub tls_psk: Option<PathBuf>,
    /// Run over plain TCP instead of TLS. Anyone who can see the link sees both halves of every
    /// opening (and the input-sharing seeds), i.e. every secret of the session; and anyone who
    /// can reach the port can take the peer's place. Only for a link you already trust.
    #[arg(long)]
    pub insecure_plaintext: bool,
}

impl LinkArgs {
    /// This process's TLS identity (`name`: whom a pre-shared secret derives the certificate
    /// for — `prifft-server`, `prifft-client` or `prifft-dealer`), or `None` for
    /// --insecure-plaintext, after a warning.
    ///
    /// # Errors
    /// Unreadable or bad TLS files or secret; no option chosen.
    pub fn identity(&self, name: &str) -> Result<Option<TlsIdentity>> {
        if let Some(path) = &self.tls_psk {
            let mut secret =
                std::fs::read(path).map_err(|source| Error::Io { path: path.clone(), source })?;
            let identity = TlsIdentity::from_psk_named(&secret, name);
            zeroize::Zeroize::zeroize(&mut secret);
            return Ok(Some(
                identity.map_err(|e| Error::from(e).during("deriving TLS keys from --tls-psk"))?,
            ));
        }
        match (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            (Some(ca), Some(cert), Some(key)) => Ok(Some(
                TlsIdentity::load(&TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() })
                    .map_err(|e| Error::from(e).during("loading the TLS certificates"))?,
            )),
            _ if self.insecure_plaintext => {
                eprintln!(
                    "warning: --insecure-plaintext: the links are neither encrypted nor authenticated; an eavesdropper sees every secret of this session"
                );
                Ok(None)
            }
            _ => Err(Error::Usage(
                "the links between the processes must be authenticated and encrypted: pass --tls-ca, --tls-cert and --tls-key (make a demo set with `prifft certs --out-dir DIR`) or --tls-psk FILE (a shared secret), or --insecure-plaintext for a link you already trust".into(),
            )),
        }
    }
}

/// An open link and, over TLS, its wire counter.
pub type Opened = (Box<dyn Channel>, Option<WireBytes>);

/// Bind `addr` and print `listening on ADDR` (the real port for port 0) on standard output.
///
/// # Errors
/// The bind error.
pub fn listen(addr: &str) -> Result<Listener> {
    let listener =
        Listener::bind(addr).map_err(|e| Error::from(e).during(format!("listening on {addr}")))?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush().ok();
    Ok(listener)
}

/// Accept one link on `listener` (`who`: whom we wait for, for the error).
///
/// # Errors
/// Nobody within the connect timeout; a failed handshake.
pub fn accept(
    listener: &Listener,
    identity: Option<&TlsIdentity>,
    config: TcpConfig,
    who: &str,
) -> Result<Opened> {
    let waiting = |e: NetError| Error::from(e).during(format!("waiting for {who}"));
    Ok(match identity {
        Some(id) => {
            let tls = TlsChannel::accept(listener, id, config).map_err(waiting)?;
            let wire = tls.wire();
            (Box::new(tls), Some(wire))
        }
        None => (Box::new(listener.accept(config).map_err(waiting)?), None),
    })
}

/// Connect to `addr` (`who`: whom, for the error), retrying within the connect timeout; over
/// TLS the peer's certificate must be issued for `name` (`prifft-server` or `prifft-dealer`).
///
/// # Errors
/// No connection within the timeout; a failed handshake.
pub fn connect(
    addr: &str,
    identity: Option<&TlsIdentity>,
    config: TcpConfig,
    who: &str,
    name: &str,
) -> Result<Opened> {
    let failed = |e: NetError| Error::from(e).during(format!("connecting to {who} at {addr}"));
    Ok(match identity {
        Some(id) => {
            let tls = TlsChannel::connect_to(addr, id, config, name).map_err(failed)?;
            let wire = tls.wire();
            (Box::new(tls), Some(wire))
        }
        None => (Box::new(TcpChannel::connect(addr, config).map_err(failed)?), None),
    })
}
