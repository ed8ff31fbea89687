//! `prifft demo`: dealer, server and client as three processes over TCP on this machine.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use clap::{Args, ValueEnum};

use prifft::net::NetModel;
use prifft::{Error, Result};

use super::party::{BackendArg, ShapeArgs};

/// Arguments of `prifft demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    shape: ShapeArgs,
    /// Network model applied to both parties: lan (1 Gbit/s, 0.2 ms), wan (100 Mbit/s,
    /// 20 ms) or MBITS:MILLIS.
    #[arg(long)]
    net: Option<NetModel>,
    /// Where both parties compute.
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendArg,
    /// With `--backend all`: both parties re-check samples of every GPU part on the CPU.
    #[arg(long)]
    gpu_crosscheck: bool,
    /// Run the parties over plain TCP instead of mutual TLS (with a fresh demo authority).
    #[arg(long)]
    insecure_plaintext: bool,
}

/// Deal, start both parties as processes, print their reports.
///
/// # Errors
/// Bad shapes, a party that fails.
pub fn run(args: DemoArgs) -> Result<()> {
    let (shape, net, backend, crosscheck) =
        (args.shape, args.net, args.backend, args.gpu_crosscheck);
    let spec = shape.spec()?;
    // An owner-only directory with an unpredictable name, removed on every return path (the
    // key files in it hold secret shares).
    let dir = tempfile::Builder::new()
        .prefix("prifft-demo-")
        .tempdir()
        .map_err(|source| Error::Io { path: std::env::temp_dir(), source })?;
    let [server_pp, client_pp] = super::deal::write(&spec, dir.path())?;
    let tls = if args.insecure_plaintext {
        None
    } else {
        Some(prifft::net::tls::generate_demo()?.write(dir.path())?)
    };
    let link = |cmd: &mut Command, who: usize| match &tls {
        Some(files) => {
            let f = &files[who];
            cmd.arg("--tls-ca")
                .arg(&f.ca)
                .arg("--tls-cert")
                .arg(&f.cert)
                .arg("--tls-key")
                .arg(&f.key);
        }
        None => {
            cmd.arg("--insecure-plaintext");
        }
    };
    let exe = std::env::current_exe()
        .map_err(|source| Error::Io { path: "current executable".into(), source })?;
    let common = |cmd: &mut Command| {
        cmd.args([
            "--m",
            &spec.m.to_string(),
            "--k",
            &spec.k.to_string(),
            "--n",
            &spec.n.to_string(),
        ]);
        let name = |v: Option<clap::builder::PossibleValue>| {
            v.map(|p| p.get_name().to_string()).unwrap_or_default()
        };
        cmd.args(["--op", &name(shape.op.to_possible_value())]);
        cmd.args(["--backend", &name(backend.to_possible_value())]);
        if crosscheck {
            cmd.arg("--gpu-crosscheck");
        }
        cmd.args([
            "--repeat",
            &spec.repeat.to_string(),
            "--frac-bits",
            &spec.fixed.frac_bits().to_string(),
        ]);
        if let Some(m) = net {
            cmd.args([
                "--net",
                &format!("{}:{}", m.bandwidth_bps / 1e6, m.latency.as_secs_f64() * 1e3),
            ]);
        }
    };
    let spawn_err = |source| Error::Io { path: exe.clone(), source };
    let mut server_cmd = Command::new(&exe);
    server_cmd
        .args(["party", "--role", "server", "--listen", "127.0.0.1:0", "--preproc"])
        .arg(&server_pp);
    common(&mut server_cmd);
    link(&mut server_cmd, 0);
    let mut server = server_cmd.stdout(Stdio::piped()).spawn().map_err(spawn_err)?;
    let mut server_out = BufReader::new(server.stdout.take().expect("piped"));
    let mut first = String::new();
    server_out.read_line(&mut first).map_err(spawn_err)?;
    let addr = first.trim().strip_prefix("listening on ").map(str::to_string);
    let Some(addr) = addr else {
        let _ = server.kill();
        return Err(Error::Usage("the server process did not start listening".into()));
    };
    println!("server listening on {addr}; starting the client");
    let mut client_cmd = Command::new(&exe);
    client_cmd.args(["party", "--role", "client", "--connect", &addr, "--preproc"]).arg(&client_pp);
    common(&mut client_cmd);
    link(&mut client_cmd, 1);
    let client = client_cmd.stdout(Stdio::piped()).spawn().map_err(spawn_err)?;
    let client_out = client.wait_with_output().map_err(spawn_err)?;
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut server_out, &mut rest).map_err(spawn_err)?;
    let server_status = server.wait().map_err(spawn_err)?;
    print!("{rest}{}", String::from_utf8_lossy(&client_out.stdout));
    if server_status.success() && client_out.status.success() {
        Ok(())
    } else {
        Err(Error::Usage("a party failed (see its message above)".into()))
    }
}
