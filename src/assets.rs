//! Where the files of `scripts/fetch-assets.sh` are found.

use std::path::{Path, PathBuf};

/// `given`, or else `default` (a path relative to the repository, e.g. `assets/minilm`) under
/// the current directory when it exists there, then under this crate's source directory.
pub fn resolve(given: Option<&Path>, default: &str) -> PathBuf {
    if let Some(p) = given {
        return p.to_path_buf();
    }
    let local = PathBuf::from(default);
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(default);
    if local.exists() || !crate_dir.exists() { local } else { crate_dir }
}
