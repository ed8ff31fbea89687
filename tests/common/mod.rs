//! Helpers shared by the integration tests that need real assets.

use std::path::Path;

/// Whether `path` exists; when it does not, skip (print why and how to get it) — or, under
/// `PRIFFT_REQUIRE_DATA=1` as CI sets it, fail instead of skipping.
pub fn real_asset(path: &Path, how: &str) -> bool {
    if path.exists() {
        return true;
    }
    assert!(
        std::env::var("PRIFFT_REQUIRE_DATA").as_deref() != Ok("1"),
        "PRIFFT_REQUIRE_DATA=1 but {} is missing: {how}",
        path.display()
    );
    eprintln!("skipped: {} is missing ({how})", path.display());
    false
}
