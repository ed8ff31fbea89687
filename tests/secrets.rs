//! Secrets stay secret: secret-bearing types print no secret values, key files are owner-only
//! even when they replace a wider file, and a bundle is one-time across processes (the ledger).

use prifft::fss::dcf;
use prifft::mpc::gates::{self, relu, sign, spline};
use prifft::mpc::ledger::Ledger;
use prifft::mpc::{Dealer, PartyId, Preproc, PreprocError, Share, beaver, sharing};
use prifft::prg::insecure_seeded_rng;
use prifft::ring::RingTensor;

/// Whether `text` contains a decimal number of 10 or more digits: random 64-bit shares and
/// 128-bit seeds print as such numbers, public parameters (widths, lengths, ids as byte lists)
/// never do.
fn has_long_number(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_digit()).any(|run| run.len() >= 10)
}

#[test]
fn secret_bearing_types_print_no_secret_values() {
    let mut rng = insecure_seeded_rng(1);
    let secret = RingTensor::from_vec(&[2], vec![0xDEAD_BEEF_DEAD_BEEF, 12_345_678_901]).unwrap();
    assert_eq!(format!("{secret:?}"), "RingTensor { shape: [2], .. }");
    let [s0, _] = sharing::share_secret(&secret, &mut rng);
    assert_eq!(format!("{s0:?}"), "Share { shape: [2], .. }");

    let [k0, _] = dcf::keygen(16, &[7, 9, 11], &[1, 2, 3], &mut rng).unwrap();
    assert_eq!(
        format!("{k0:?}"),
        "KeyBatch { scheme: Dcf, party: P0, n: 16, words: 1, len: 3, .. }"
    );
    let masks = [u64::MAX / 3, u64::MAX / 5];
    let [r0, _] = relu::keygen(32, &masks, &mut rng).unwrap();
    let [g0, _] = sign::keygen(32, &masks, &mut rng).unwrap();
    let [p0, _] = spline::keygen(32, 2, &masks, &mut rng).unwrap();
    for text in [format!("{r0:?}"), format!("{g0:?}"), format!("{p0:?}")] {
        assert!(text.contains("width: 32") && !has_long_number(&text), "{text}");
    }

    // A store holding Beaver material and gate keys (with mask shares).
    let mut dealer = Dealer::insecure_with_seed(2);
    beaver::gen_mul(&mut dealer, &[64]).unwrap();
    gates::gen_relu(&mut dealer, 32, 64).unwrap();
    gates::gen_spline(&mut dealer, 32, 2, 64).unwrap();
    let [store, _] = dealer.finish();
    let text = format!("{store:?}");
    assert!(!has_long_number(&text), "the store's Debug shows values: {text}");
    assert!(text.contains("ReluKeys") && text.contains("KeyBatch"), "{text}");
    assert_eq!(format!("{:?}", Share::new(secret)), "Share { shape: [2], .. }");
}

#[cfg(unix)]
#[test]
fn an_overwritten_key_file_ends_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.pp");
    std::fs::write(&path, b"an older, world-readable file").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut dealer = Dealer::insecure_with_seed(3);
    beaver::gen_mul(&mut dealer, &[4]).unwrap();
    let [p0, _] = dealer.finish();
    p0.write_file(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    assert_eq!(Preproc::read_file(&path).unwrap().remaining(), 1);
    // Nothing but the file itself is left in the directory (no temporary copy).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn the_ledger_refuses_a_bundle_a_party_used_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut dealer = Dealer::insecure_with_seed(4);
    beaver::gen_mul(&mut dealer, &[4]).unwrap();
    let [p0, p1] = dealer.finish();
    let (f0, f1) = (dir.path().join("server.pp"), dir.path().join("client.pp"));
    p0.write_file(&f0).unwrap();
    p1.write_file(&f1).unwrap();
    let bundle: String = p0.bundle_id().iter().map(|b| format!("{b:02x}")).collect();
    let ledger = Ledger::beside(&f0);
    Preproc::consume_file(&f0, &ledger).unwrap();
    // The other party's half of the same bundle is its own first use.
    Preproc::consume_file(&f1, &ledger).unwrap();
    // A second load — and a copy of the file — are refused, naming the bundle.
    let copy = dir.path().join("copy.pp");
    std::fs::copy(&f0, &copy).unwrap();
    for file in [&f0, &copy] {
        let err = Preproc::consume_file(file, &ledger).unwrap_err();
        match prifft::Error::from(err) {
            prifft::Error::Preproc(PreprocError::BundleUsed { bundle: b, party, .. }) => {
                assert_eq!((b.as_str(), party), (bundle.as_str(), PartyId::P0));
            }
            other => panic!("expected BundleUsed, got {other}"),
        }
    }
}
