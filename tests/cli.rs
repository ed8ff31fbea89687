//! End to end: the `prifft` binary as two processes over TCP on 127.0.0.1.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prifft::mpc::PartyId;
use prifft::ring::{FixedPoint, RingTensor};
use prifft::session::{self, MatmulSpec};

const BIN: &str = env!("CARGO_BIN_EXE_prifft");

fn prifft() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn deal(dir: &Path, shape: &[&str]) {
    let out = prifft().args(["deal", "--out-dir"]).arg(dir).args(shape).output().unwrap();
    assert!(out.status.success(), "deal failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// One demo authority and both parties' certificates for every test of this binary (made with
/// `prifft certs`), so parties of different dealer runs still complete the TLS handshake and
/// reach the checks under test.
fn tls_flags(role: &str) -> Vec<String> {
    static CERTS: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = CERTS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = prifft().args(["certs", "--out-dir"]).arg(dir.path()).output().unwrap();
        assert!(out.status.success(), "certs: {}", String::from_utf8_lossy(&out.stderr));
        dir
    });
    let p = |name: String| dir.path().join(name).to_string_lossy().into_owned();
    vec![
        "--tls-ca".into(),
        p("ca.pem".into()),
        "--tls-cert".into(),
        p(format!("{role}.pem")),
        "--tls-key".into(),
        p(format!("{role}.key")),
    ]
}

/// Start the server on a free port (mutual TLS); returns the child, its address and its stdout
/// reader.
fn start_server(
    dir: &Path,
    extra: &[&str],
) -> (Child, String, BufReader<std::process::ChildStdout>) {
    let mut args: Vec<String> = tls_flags("server");
    args.extend(strings(extra));
    start_server_with(&dir.join("server.pp"), &args)
}

/// Start a server party with exactly `args` after its preprocessing file.
fn start_server_with(
    preproc: &Path,
    args: &[String],
) -> (Child, String, BufReader<std::process::ChildStdout>) {
    let mut cmd = prifft();
    cmd.args(["party", "--role", "server", "--listen", "127.0.0.1:0", "--preproc"])
        .arg(preproc)
        .args(args);
    listening(cmd)
}

/// Spawn `cmd` (which listens) and read the address it prints as `listening on ADDR`.
fn listening(mut cmd: Command) -> (Child, String, BufReader<std::process::ChildStdout>) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the listening process said {line:?}"))
        .to_string();
    (child, addr, out)
}

/// Run a client party with exactly `args` after its preprocessing file, to the end.
fn run_client_with(preproc: &Path, addr: &str, args: &[String]) -> std::process::Output {
    prifft()
        .args(["party", "--role", "client", "--connect", addr, "--preproc"])
        .arg(preproc)
        .args(args)
        .output()
        .unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

fn start_client(dir: &Path, addr: &str, extra: &[&str]) -> Child {
    prifft()
        .args(["party", "--role", "client", "--connect", addr, "--preproc"])
        .arg(dir.join("client.pp"))
        .args(tls_flags("client"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
    s
}

fn last_json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.lines().last().expect("some output"))
        .expect("JSON report on the last line")
}

/// Wait for `child` at most `limit`; returns its exit status and how long it took.
fn wait_within(child: &mut Child, limit: Duration) -> (std::process::ExitStatus, Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// ReLU and a spline between two processes over TCP, on `backend`: the revealed output equals
/// the gate's spec on the revealed input exactly, and each party sends exactly the opening of
/// X + r (8 bytes per element) in one round.
fn gates_between_two_processes(backend: &str) {
    let (m, k) = (16, 20);
    let shape = ["--m", "16", "--k", "20", "--repeat", "2"];
    for op in ["relu", "spline"] {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["--op", op];
        args.extend(shape);
        deal(dir.path(), &args);
        let mut party_args = args.clone();
        party_args.extend(["--json", "--backend", backend]);
        let (mut server, addr, mut server_out) = start_server(dir.path(), &party_args);
        let client = start_client(dir.path(), &addr, &party_args);
        let client_out = client.wait_with_output().unwrap();
        let mut server_stdout = String::new();
        server_out.read_to_string(&mut server_stdout).unwrap();
        let (status, _) = wait_within(&mut server, Duration::from_secs(60));
        assert!(status.success(), "{op} on {backend}: server failed: {}", stderr_of(&mut server));
        assert!(
            client_out.status.success(),
            "{op} on {backend}: client failed: {}",
            String::from_utf8_lossy(&client_out.stderr)
        );
        for report in
            [last_json(&server_stdout), last_json(&String::from_utf8_lossy(&client_out.stdout))]
        {
            let gates = &report["products"]["cost"];
            assert_eq!(gates["bytes_sent"], 2 * 8 * m * k, "{op} on {backend}: bytes");
            assert_eq!(gates["bytes_received"], 2 * 8 * m * k);
            assert_eq!(gates["rounds"], 2, "{op} on {backend}: one round per gate");
            assert_eq!(report["check"]["max_err_ulps"], 0, "{op} on {backend}: spec");
            assert_eq!(report["check"]["ok"], true);
            let on = report["backend"].as_str().unwrap();
            assert_eq!(on.starts_with("CPU"), backend == "cpu", "{op}: ran on {on}");
        }
    }
}

#[test]
fn running_a_party_twice_with_one_bundle_fails_the_second_time_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let shape = ["--m", "4", "--k", "4", "--n", "4"];
    deal(dir.path(), &shape);
    let bundle: String = prifft::mpc::Preproc::read_file(&dir.path().join("server.pp"))
        .unwrap()
        .bundle_id()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (mut server, addr, _out) = start_server(dir.path(), &shape);
    let client = start_client(dir.path(), &addr, &shape);
    assert!(client.wait_with_output().unwrap().status.success());
    assert!(wait_within(&mut server, Duration::from_secs(30)).0.success());
    // The same files again, in new processes: each party refuses before any protocol step.
    for role in ["server", "client"] {
        let file = dir.path().join(format!("{role}.pp"));
        let out = prifft()
            .args(["party", "--role", role, "--listen", "127.0.0.1:0", "--preproc"])
            .arg(&file)
            .args(shape)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{role} ran twice");
        assert!(stderr.contains(&bundle) && stderr.contains("already used"), "{role}: {stderr}");
    }
}

#[cfg(feature = "gpu")]
#[test]
fn the_demo_leaves_no_key_file_behind_after_an_early_error() {
    let tmp = tempfile::tempdir().unwrap();
    // The parties fail after the dealer wrote the key files: no adapter on the named backend.
    let out = prifft()
        .args(["demo", "--m", "4", "--k", "4", "--n", "4", "--backend", "gpu"])
        .env("TMPDIR", tmp.path())
        .env("WGPU_BACKEND", "dx12")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the demo should have failed");
    assert!(String::from_utf8_lossy(&out.stdout).contains("dealer:"), "it failed before dealing");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn relu_and_spline_between_two_processes_on_the_cpu() {
    gates_between_two_processes("cpu");
}

#[cfg(feature = "gpu")]
#[test]
fn relu_and_spline_between_two_processes_on_the_gpu() {
    if common::gpu_device().is_none() {
        return;
    }
    gates_between_two_processes("gpu");
}

#[test]
fn two_processes_compute_a_64x64_fixed_point_product_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    deal(dir.path(), &[]);
    let product = dir.path().join("product.bin");
    let (mut server, addr, mut server_out) = start_server(
        dir.path(),
        &["--input-seed", "101", "--json", "--output", product.to_str().unwrap()],
    );
    let client = start_client(dir.path(), &addr, &["--input-seed", "202", "--json"]);
    let client_out = client.wait_with_output().unwrap();
    let mut server_stdout = String::new();
    server_out.read_to_string(&mut server_stdout).unwrap();
    let (status, _) = wait_within(&mut server, Duration::from_secs(30));
    assert!(status.success(), "server failed: {}", stderr_of(&mut server));
    assert!(
        client_out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&client_out.stderr)
    );

    // Independent check: rebuild both inputs from their seeds and compare with the revealed product.
    let spec = MatmulSpec {
        op: session::SessionOp::Matmul,
        m: 64,
        k: 64,
        n: 64,
        repeat: 1,
        fixed: FixedPoint::default(),
    };
    let w = session::demo_input(&spec, PartyId::P0, 101).unwrap();
    let x = session::demo_input(&spec, PartyId::P1, 202).unwrap();
    let got = RingTensor::from_le_bytes(&[64, 64], &std::fs::read(&product).unwrap()).unwrap();
    let want = session::plaintext_product(&x, &w, spec.fixed).unwrap();
    for (&g, &e) in got.as_slice().iter().zip(want.as_slice()) {
        let err = g.wrapping_sub(e) as i64;
        assert!((0..=1).contains(&err), "error {err} ulp exceeds the local-truncation bound");
    }

    // Reported bytes equal docs/protocols.md, "Costs": 64·(mk + kn) bits per party, one round.
    for report in
        [last_json(&server_stdout), last_json(&String::from_utf8_lossy(&client_out.stdout))]
    {
        let products = &report["products"]["cost"];
        assert_eq!(products["bytes_sent"], 8 * (64 * 64 + 64 * 64));
        assert_eq!(products["bytes_received"], 8 * (64 * 64 + 64 * 64));
        assert_eq!(products["rounds"], 1);
        assert_eq!(report["check"]["ok"], true);
        assert_eq!(report["input_sharing"]["cost"]["bytes_sent"], 32);
    }
}

#[test]
fn killing_one_party_mid_protocol_makes_the_other_fail_fast() {
    let dir = tempfile::tempdir().unwrap();
    // 400 products at ≥ 40 ms each (20 ms one way, both directions) take ≥ 16 s: long enough
    // to kill the client in the middle.
    let shape = ["--m", "8", "--k", "8", "--n", "8", "--repeat", "400"];
    deal(dir.path(), &shape);
    let mut extra = shape.to_vec();
    extra.extend(["--net", "wan", "--timeout", "5"]);
    let (mut server, addr, _out) = start_server(dir.path(), &extra);
    let mut client = start_client(dir.path(), &addr, &extra);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(client.try_wait().unwrap().is_none(), "client ended before it could be killed");
    client.kill().unwrap();
    client.wait().unwrap();
    let (status, took) = wait_within(&mut server, Duration::from_secs(20));
    let err = stderr_of(&mut server);
    assert!(!status.success());
    assert!(took < Duration::from_secs(6), "server took {took:?} to notice");
    assert!(
        err.contains("secure product") && err.contains("closed the connection"),
        "server said: {err}"
    );
}

#[test]
fn a_stalled_party_makes_the_other_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let shape = ["--m", "8", "--k", "8", "--n", "8", "--repeat", "400"];
    deal(dir.path(), &shape);
    let mut extra = shape.to_vec();
    extra.extend(["--net", "wan", "--timeout", "2"]);
    let (mut server, addr, _out) = start_server(dir.path(), &extra);
    let mut client = start_client(dir.path(), &addr, &extra);
    std::thread::sleep(Duration::from_millis(1000));
    // Freeze the client without closing its socket.
    assert!(
        Command::new("kill").args(["-STOP", &client.id().to_string()]).status().unwrap().success()
    );
    let (status, took) = wait_within(&mut server, Duration::from_secs(15));
    let _ = client.kill();
    let _ = client.wait();
    let err = stderr_of(&mut server);
    assert!(!status.success());
    assert!(took < Duration::from_secs(5), "server took {took:?}");
    assert!(err.contains("no message from the other party within 2s"), "server said: {err}");
}

#[test]
fn files_from_different_dealer_runs_are_refused() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    deal(a.path(), &[]);
    deal(b.path(), &[]);
    let (mut server, addr, _out) = start_server(a.path(), &["--timeout", "10"]);
    let mut client = start_client(b.path(), &addr, &["--timeout", "10"]);
    let (status, _) = wait_within(&mut client, Duration::from_secs(15));
    assert!(!status.success());
    assert!(stderr_of(&mut client).contains("different dealer runs"));
    let (status, _) = wait_within(&mut server, Duration::from_secs(15));
    assert!(!status.success());
}

#[test]
fn plain_tcp_needs_an_explicit_flag_and_still_works_with_it() {
    let dir = tempfile::tempdir().unwrap();
    deal(dir.path(), &["--m", "4", "--k", "4", "--n", "4"]);
    let out = prifft()
        .args(["party", "--role", "server", "--listen", "127.0.0.1:0", "--preproc"])
        .arg(dir.path().join("server.pp"))
        .args(["--m", "4", "--k", "4", "--n", "4"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--insecure-plaintext"), "{err}");
    // With the flag (and fresh files: the refused run used up the server's bundle).
    let dir = tempfile::tempdir().unwrap();
    deal(dir.path(), &["--m", "4", "--k", "4", "--n", "4"]);
    let plain = strings(&["--m", "4", "--k", "4", "--n", "4", "--insecure-plaintext"]);
    let (mut server, addr, _out) = start_server_with(&dir.path().join("server.pp"), &plain);
    let client = run_client_with(&dir.path().join("client.pp"), &addr, &plain);
    assert!(client.status.success(), "{}", String::from_utf8_lossy(&client.stderr));
    assert!(String::from_utf8_lossy(&client.stderr).contains("warning: --insecure-plaintext"));
    assert!(wait_within(&mut server, Duration::from_secs(30)).0.success());
}

#[test]
fn two_processes_with_a_pre_shared_secret_compute_the_product_and_a_wrong_one_is_refused() {
    let psk_dir = tempfile::tempdir().unwrap();
    let (good, bad) = (psk_dir.path().join("psk"), psk_dir.path().join("other"));
    std::fs::write(&good, b"32 bytes of a shared demo secret").unwrap();
    std::fs::write(&bad, b"32 bytes of another demo secret!").unwrap();
    let shape = ["--m", "8", "--k", "8", "--n", "8"];
    let run = |server_psk: &Path, client_psk: &Path| {
        let dir = tempfile::tempdir().unwrap();
        deal(dir.path(), &shape);
        let with = |psk: &Path| {
            let mut args = strings(&shape);
            args.extend(["--tls-psk".into(), psk.to_string_lossy().into_owned()]);
            args.extend(strings(&["--connect-timeout", "10"]));
            args
        };
        let (mut server, addr, mut out) =
            start_server_with(&dir.path().join("server.pp"), &with(server_psk));
        let client = run_client_with(&dir.path().join("client.pp"), &addr, &with(client_psk));
        let (status, _) = wait_within(&mut server, Duration::from_secs(30));
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        (status.success() && client.status.success(), rest, stderr_of(&mut server))
    };
    let (ok, stdout, err) = run(&good, &good);
    assert!(ok, "{err}");
    assert!(stdout.contains("→ OK") && stdout.contains("TLS 1.3"), "{stdout}");
    let (ok, _, err) = run(&good, &bad);
    assert!(!ok);
    assert!(err.contains("TLS"), "server said: {err}");
}

#[test]
fn a_plaintext_party_meets_a_tls_party_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    deal(dir.path(), &["--m", "4", "--k", "4", "--n", "4"]);
    let (mut server, addr, _out) =
        start_server(dir.path(), &["--m", "4", "--k", "4", "--n", "4", "--connect-timeout", "10"]);
    let plain =
        strings(&["--m", "4", "--k", "4", "--n", "4", "--insecure-plaintext", "--timeout", "5"]);
    let client = run_client_with(&dir.path().join("client.pp"), &addr, &plain);
    assert!(!client.status.success());
    let (status, _) = wait_within(&mut server, Duration::from_secs(20));
    assert!(!status.success());
    let err = stderr_of(&mut server);
    assert!(err.contains("TLS"), "server said: {err}");
}

#[test]
fn a_truncated_preprocessing_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    deal(dir.path(), &[]);
    let path = dir.path().join("server.pp");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let out = prifft()
        .args(["party", "--role", "server", "--listen", "127.0.0.1:0", "--preproc"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loading preprocessing") && err.contains("truncated"), "{err}");
}

#[cfg(not(feature = "gpu"))]
#[test]
fn without_the_gpu_feature_devices_and_bench_gpu_say_so() {
    let out = prifft().args(["devices"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no GPU support"));
    let out = prifft().args(["bench", "gpu"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("without the `gpu` feature"));
}

#[cfg(feature = "gpu")]
#[test]
fn devices_lists_adapters_or_says_there_are_none() {
    let out = prifft().args(["devices", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let adapters: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = adapters.as_array().map_or(0, Vec::len);
    if std::env::var("PRIFFT_REQUIRE_GPU").as_deref() == Ok("1") {
        assert!(
            n > 0,
            "PRIFFT_REQUIRE_GPU=1 but no adapter was found (install mesa-vulkan-drivers)"
        );
    } else if n == 0 {
        eprintln!(
            "no GPU adapter here: the listing is empty (set PRIFFT_REQUIRE_GPU=1 to make this fail)"
        );
    }
    let human = prifft().arg("devices").output().unwrap();
    assert!(human.status.success());
    assert!(!human.stdout.is_empty());
}

#[cfg(feature = "gpu")]
#[test]
fn bench_gpu_sweep_times_every_shape_and_checks_it() {
    let out = prifft()
        .args(["bench", "gpu", "--keys-log2", "5", "--matmul", "16", "--sweep", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let gpu_fss: Vec<_> = rows.iter().filter(|r| !r["aes_copies"].is_null()).collect();
    if gpu_fss.is_empty() {
        assert_ne!(std::env::var("PRIFFT_REQUIRE_GPU").as_deref(), Ok("1"), "no GPU rows");
        return;
    }
    // Every shape once per scheme (lavapipe runs all nine), each with a median and a best time.
    let mut shapes: Vec<(String, u64, u64)> = gpu_fss
        .iter()
        .map(|r| {
            let best = r["ns_per_eval_best"].as_f64().unwrap();
            assert!(best > 0.0 && best <= r["ns_per_eval"].as_f64().unwrap(), "{r}");
            let kernel = r["kernel"].as_str().unwrap().to_string();
            (kernel, r["aes_copies"].as_u64().unwrap(), r["workgroup"].as_u64().unwrap())
        })
        .collect();
    let len = shapes.len();
    shapes.sort();
    shapes.dedup();
    assert_eq!(shapes.len(), len, "a shape was timed twice");
    // DCF, DPF and the one-bit comparison, each in every shape.
    assert!(len >= 18 && len.is_multiple_of(3), "{len} GPU FSS rows");
}

#[test]
fn fl_writes_csv_plot_and_table_and_refuses_bad_options() {
    let asset = Path::new(env!("CARGO_MANIFEST_DIR")).join(prifft::fl::data::MNIST_5K);
    let font = Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");
    if !common::real_asset(&asset, "bash scripts/fetch-assets.sh")
        || !common::real_asset(font, "apt-get install fonts-dejavu-core")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("runs.csv");
    let out = prifft()
        .args(["fl", "--dataset", "mnist-5k", "--data"])
        .arg(&asset)
        .args(["--algo", "fedavg,fedproc", "--fedproc-tau", "1,0.5", "--clients", "3"])
        .args(["--rounds", "1", "--seeds", "2", "--batch", "32", "--out"])
        .arg(&csv)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    // Header + 3 runs (fedavg, fedproc at two τ) × 2 seeds × 1 round.
    let rows: Vec<String> =
        std::fs::read_to_string(&csv).unwrap().lines().map(String::from).collect();
    assert_eq!(rows.len(), 1 + 3 * 2, "{rows:?}");
    assert_eq!(rows[0], "algo,beta,seed,round,test_accuracy");
    assert!(rows.iter().any(|r| r.starts_with("fedproc τ=0.5,0.5,2,1,")), "{rows:?}");
    let png = std::fs::read(csv.with_extension("png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    for label in ["fedavg", "fedproc τ=1", "fedproc τ=0.5", "mean of last 5 rounds"] {
        assert!(stdout.contains(label), "{label} missing from:\n{stdout}");
    }
    // fl-report rebuilds the same table (and the per-seed differences) from the CSV.
    let report = prifft().args(["fl-report", "--csv"]).arg(&csv).output().unwrap();
    let report_out = String::from_utf8_lossy(&report.stdout);
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let table = |text: &str| -> Vec<String> {
        let start = text.find("algorithm").expect("a table");
        text[start..].lines().map(String::from).collect()
    };
    assert_eq!(table(&report_out), table(&stdout));
    assert!(report_out.contains("difference from fedavg"), "{report_out}");
    std::fs::write(dir.path().join("bad.csv"), "algo,beta,seed,round,test_accuracy\nx,1\n")
        .unwrap();
    let bad = prifft().args(["fl-report", "--csv"]).arg(dir.path().join("bad.csv")).output();
    let stderr = String::from_utf8_lossy(&bad.as_ref().unwrap().stderr).to_string();
    assert!(!bad.unwrap().status.success() && stderr.contains("line 2"), "{stderr}");

    for (args, expect) in [
        (&["--dataset", "mnist-5k", "--algo", "sgd"][..], "possible values: fedavg, fedprox"),
        (&["--dataset", "mnist-5k", "--fraction", "0"][..], "--fraction must be in (0, 1]"),
        (&["--dataset", "mnist-5k", "--fedproc-tau", "0"][..], "must be positive"),
        (&["--dataset", "cifar10"][..], "possible values: fashion-mnist, mnist-5k"),
    ] {
        let out = prifft()
            .args(["fl", "--data"])
            .arg(&asset)
            .args(["--rounds", "1", "--out"])
            .arg(dir.path().join("bad.csv"))
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expect), "{args:?}: {stderr}");
    }
    let out = prifft()
        .args(["fl", "--dataset", "mnist-5k", "--data", "/nonexistent/m.csv.gz"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("scripts/fetch-assets.sh"), "{stderr}");
}

#[test]
fn fl_trace_writes_a_safetensors_trace_and_refuses_bad_options() {
    let asset = Path::new(env!("CARGO_MANIFEST_DIR")).join(prifft::fl::data::MNIST_5K);
    if !common::real_asset(&asset, "bash scripts/fetch-assets.sh") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("trace.safetensors");
    let out = prifft()
        .args(["fl-trace", "--dataset", "mnist-5k", "--clients", "3", "--batch", "32", "--data"])
        .arg(&asset)
        .arg("--out")
        .arg(&out_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("scripts/xcheck_fl.py"), "{stdout}");
    let bytes = std::fs::read(&out_path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for name in ["initial.conv1.weight", "global.l3.bias", "client2.order", "client0.fc1.weight"] {
        assert!(st.tensor(name).is_ok(), "{name} missing");
    }
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().as_ref().unwrap();
    assert_eq!(meta["batch"], "32");
    assert!(meta.contains_key("pixel_mean") && meta.contains_key("pixel_std"));
    let bad = prifft().args(["fl-trace", "--clients", "0", "--data"]).arg(&asset).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--clients"));
}

#[test]
fn finetune_plaintext_trains_reports_json_and_a_plot_and_refuses_bad_options() {
    let model = prifft::model::Assets::dir(None).join("model.safetensors");
    if !common::real_asset(&model, "run scripts/fetch-assets.sh") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (json, png) = (dir.path().join("s.json"), dir.path().join("s.png"));
    let out = prifft()
        .args(["finetune", "--plaintext", "--layers-trainable", "1", "--train", "24"])
        .args(["--test", "16", "--epochs", "2", "--seq-len", "16", "--seed", "3", "--json"])
        .arg(&json)
        .arg("--plot")
        .arg(&png)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("epoch 2:") && stderr.contains("test accuracy"), "{stderr}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(s["trainable_layers"], 1);
    assert_eq!((s["train_sentences"].as_u64(), s["test_sentences"].as_u64()), (Some(24), Some(16)));
    let epochs = s["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    for e in epochs {
        let acc = e["test_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc) && e["train_loss"].as_f64().unwrap().is_finite());
    }
    // One encoder layer (1,774,464) and the head (770).
    assert_eq!(s["trainable_parameters"], 1_774_464 + 770);
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    for (bad, says) in [
        (vec!["finetune", "--pooling", "cls"], "--plaintext"),
        (vec!["finetune", "--layers-trainable", "6"], "at most 5 layers"),
        (vec!["finetune", "--plaintext", "--layers-trainable", "7"], "0..=6"),
        (vec!["finetune", "--plaintext", "--seq-len", "1"], "--seq-len"),
        (vec!["finetune", "--plaintext", "--train", "20000"], "available"),
        (vec!["finetune", "--plaintext", "--model-dir", "/nonexistent"], "fetch-assets.sh"),
    ] {
        let out = prifft().args(&bad).arg("--plot").arg(&png).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "{bad:?}: {stderr}");
    }
}

#[test]
fn finetune_secure_by_default_matches_plaintext_and_reports_both_protocol_sets() {
    let model = prifft::model::Assets::dir(None).join("model.safetensors");
    if !common::real_asset(&model, "run scripts/fetch-assets.sh") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (json, weights) = (dir.path().join("s.json"), dir.path().join("w.safetensors"));
    let png = dir.path().join("s.png");
    let out = prifft()
        .args(["finetune", "--layers-trainable", "1", "--train", "8", "--test", "16"])
        .args(["--seq-len", "8", "--seed", "2", "--net", "mem", "--baseline-steps", "1"])
        .args(["--reveal-to", "server", "--weights-out"])
        .arg(&weights)
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&png)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("CrypTen-style step") && stdout.contains("same test predictions"));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for f in ["secure_acc", "plain_acc", "agree_frac", "step_s", "baseline_step_s"] {
        assert!(s[f].as_f64().is_some(), "{f}: {s}");
    }
    for f in ["step_bytes", "step_rounds", "baseline_step_bytes", "key_bytes_per_step"] {
        assert!(s[f].as_u64().unwrap() > 0, "{f}: {s}");
    }
    // One step from the same state: the secure model predicts what the plaintext one does, and
    // the CrypTen-style step sends more.
    assert_eq!(s["agree_frac"].as_f64(), Some(1.0), "{s}");
    assert!(s["max_weight_diff"].as_f64().unwrap() < 1e-3, "{s}");
    assert!(s["baseline_step_bytes"].as_u64() > s["step_bytes"].as_u64(), "{s}");
    // The plot of every step's loss, secure beside plaintext.
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    // The revealed weights: the trainable layer and the head, by Hugging Face's names.
    let bytes = std::fs::read(&weights).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("head.weight").unwrap().shape(), [2, 384]);
    assert_eq!(st.tensor("encoder.layer.5.output.dense.weight").unwrap().shape(), [384, 1536]);
}

/// Spawn `prifft finetune --role ROLE --listen 127.0.0.1:0 …` and read the address it prints.
fn spawn_listening(args: &[String]) -> (Child, String) {
    let mut cmd = prifft();
    cmd.arg("finetune").args(args).args(["--listen", "127.0.0.1:0"]);
    let (child, addr, mut out) = listening(cmd);
    // The rest of its output, read to the end in the background so the pipe never fills.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (child, addr)
}

/// The three-process mode end to end: dealer, server and client as separate processes over
/// mutual TLS from one shared secret; one step on the real model; the weights revealed to the
/// server as safetensors; each process's JSON summary. Wrong role options are usage errors.
#[test]
fn finetune_as_three_processes_over_tls_returns_the_weights_to_the_server() {
    for (args, says) in [
        (vec!["--role", "dealer"], "--listen"),
        (vec!["--role", "server", "--listen", "127.0.0.1:0"], "--dealer"),
        (vec!["--role", "client", "--dealer", "127.0.0.1:1"], "--connect"),
        (vec!["--role", "dealer", "--plaintext"], "--plaintext"),
    ] {
        let out = prifft().arg("finetune").args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "{args:?}: {stderr}");
    }
    let model = prifft::model::Assets::dir(None).join("model.safetensors");
    if !common::real_asset(&model, "run scripts/fetch-assets.sh") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let psk = dir.path().join("psk");
    std::fs::write(&psk, [7u8; 32]).unwrap();
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let tls = vec!["--tls-psk".to_string(), path("psk")];
    let common: Vec<String> = strings(&["--layers-trainable", "1", "--reveal-to", "server"])
        .into_iter()
        .chain(strings(&["--timeout", "300", "--connect-timeout", "300"]))
        .chain(tls.clone())
        .collect();
    let mut dealer_args = strings(&["--role", "dealer", "--json"]);
    dealer_args.push(path("dealer.json"));
    dealer_args.extend(tls.clone());
    let (mut dealer, dealer_addr) = spawn_listening(&dealer_args);
    let mut server_args = strings(&["--role", "server", "--dealer", &dealer_addr, "--seed", "3"]);
    server_args.extend(common.clone());
    server_args.extend(["--weights-out".into(), path("w.safetensors")]);
    server_args.extend(["--json".into(), path("server.json")]);
    let (mut server, server_addr) = spawn_listening(&server_args);
    let out = prifft()
        .args(["finetune", "--role", "client", "--connect", &server_addr])
        .args(["--dealer", &dealer_addr, "--train", "8", "--seq-len", "8", "--seed", "3"])
        .args(&common)
        .args(["--json", &path("client.json")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client: {stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("sent its shares"));
    for (name, child) in [("server", &mut server), ("dealer", &mut dealer)] {
        let status = child.wait().unwrap();
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(status.success(), "{name}: {err}");
    }
    let json = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path(name)).unwrap()).unwrap()
    };
    let (s, c, d) = (json("server.json"), json("client.json"), json("dealer.json"));
    for v in [&s, &c] {
        assert_eq!(v["steps"].as_u64(), Some(1), "{v}");
        assert!(
            v["step_bytes"].as_u64().unwrap() > 0 && v["key_bytes_per_step"].as_u64() > Some(0)
        );
        // Over TLS, more bytes cross the wire than the protocol sends (records, handshake).
        assert!(v["wire_bytes_sent"].as_u64().unwrap() > v["step_bytes"].as_u64().unwrap());
    }
    // The parties' traffic is symmetric up to the client's input-sharing seeds (32 B each).
    let (sb, cb) = (s["step_bytes"].as_u64().unwrap(), c["step_bytes"].as_u64().unwrap());
    assert!(sb.abs_diff(cb) <= 32 * 8, "{sb} vs {cb}");
    assert_eq!(d["helper_answers"].as_u64(), Some(1), "{d}");
    assert!(d["peak_chunk_bytes"].as_u64().unwrap() <= d["bytes_per_party"].as_u64().unwrap());
    let bytes = std::fs::read(path("w.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("head.weight").unwrap().shape(), [2, 384]);
    assert_eq!(st.tensor("encoder.layer.5.output.dense.weight").unwrap().shape(), [384, 1536]);
}

#[test]
fn bench_protocols_measures_and_checks_every_protocol() {
    let out = prifft()
        .args(["bench", "protocols", "--n", "256", "--net", "mem", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ops: Vec<&str> = rows.iter().map(|r| r["op"].as_str().unwrap()).collect();
    for op in [
        "exp",
        "reciprocal",
        "rsqrt",
        "softmax",
        "sigmoid",
        "tanh",
        "gelu",
        "relu",
        "dropout",
        "layernorm",
        "matmul",
    ] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
        assert!(ops.contains(&format!("{op}_bwd").as_str()), "{op}_bwd missing");
    }
    for r in &rows {
        assert!(r["prifft_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["prifft_rounds"].as_u64().unwrap() >= 1, "{r}");
        assert!(r["prifft_bytes"].as_u64().unwrap() > 0, "{r}");
        assert!(r["prifft_key_bytes"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["prifft_max_err"].as_f64().unwrap() < 0.1, "{r}");
        // The baseline's side of the same row, and both ratios.
        for field in ["baseline_s", "baseline_preproc_bytes", "time_ratio", "bytes_ratio"] {
            assert!(r[field].as_f64().unwrap() > 0.0, "{field}: {r}");
        }
        assert!(r["baseline_bytes"].as_u64().unwrap() > 0, "{r}");
        assert!(r["baseline_max_err"].as_f64().unwrap() < 0.5, "{r}");
    }
    // The documented rounds of a few protocols, both sides (docs/protocols.md, the baseline).
    let rounds = |op: &str, side: &str| {
        rows.iter().find(|r| r["op"] == op).unwrap()[format!("{side}_rounds")].as_u64().unwrap()
    };
    assert_eq!(rounds("exp", "prifft"), 3);
    assert_eq!(rounds("relu", "prifft"), 2);
    assert_eq!(rounds("softmax", "prifft"), 11);
    assert_eq!(rounds("exp", "baseline"), 8);
    assert_eq!(rounds("reciprocal", "baseline"), 38);
    assert_eq!(rounds("softmax", "baseline"), 87);
    // An unknown protocol is a usage error naming the known ones.
    let bad = prifft().args(["bench", "protocols", "--ops", "expp"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("known: exp"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
