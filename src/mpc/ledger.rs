//! One-time preprocessing across processes: a ledger of the dealer bundles a party has used.
//!
//! The in-memory store refuses an item id it has held before, but that memory ends with the
//! process: running `prifft party` twice with one preprocessing file would reuse its Beaver
//! triples and masks, and the two openings of X − A would reveal X − X′. So loading a bundle for
//! a session goes through a [`Ledger`]: a small append-only file of `bundle-id party` lines,
//! locked while it is read and extended. A bundle the ledger already lists for this party is
//! refused with an error naming it; otherwise its line is written (and synced) before the
//! material is used.
//!
//! By default the ledger lies beside the preprocessing file (`.prifft-ledger` in its
//! directory), so rerunning a file — or a copy in the same directory — is refused; a user who
//! keeps files in several places passes one ledger for all of them (`prifft party --ledger`).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::error::{MpcError, PreprocError, Result};
use crate::party::PartyId;

/// File name of the default ledger, in the preprocessing file's directory.
pub const DEFAULT_LEDGER: &str = ".prifft-ledger";

/// The record of bundles used by this machine's parties.
#[derive(Clone, Debug)]
pub struct Ledger {
    path: PathBuf,
}

impl Ledger {
    /// The ledger at `path` (created on first use, owner-only).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The default ledger for a preprocessing file: [`DEFAULT_LEDGER`] in its directory.
    pub fn beside(preproc_file: &Path) -> Self {
        let dir = preproc_file.parent().filter(|d| !d.as_os_str().is_empty());
        Self::at(dir.unwrap_or(Path::new(".")).join(DEFAULT_LEDGER))
    }

    /// Where the ledger is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record that `party` uses `bundle` now; refuse if it did before.
    ///
    /// # Errors
    /// [`PreprocError::BundleUsed`] naming the bundle and the ledger when it is listed for this
    /// party; [`MpcError::Io`] when the ledger cannot be read, locked or written.
    pub fn consume(&self, bundle: [u8; 16], party: PartyId) -> Result<()> {
        let io = |source| MpcError::Io { path: self.path.clone(), source };
        let mut options = std::fs::OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&self.path).map_err(io)?;
        file.lock().map_err(io)?;
        let mut text = String::new();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.read_to_string(&mut text).map_err(io)?;
        let hex: String = bundle.iter().map(|b| format!("{b:02x}")).collect();
        let line = format!("{hex} {}", party.index());
        if text.lines().any(|l| l.trim() == line) {
            return Err(
                PreprocError::BundleUsed { bundle: hex, party, ledger: self.path.clone() }.into()
            );
        }
        writeln!(file, "{line}").map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(())
    }
}
