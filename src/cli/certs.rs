//! `prifft certs`: a demo certificate authority and both parties' certificates for the mutual-TLS
//! link of `prifft party`.

use std::path::PathBuf;

use clap::Args;

use prifft::{Error, Result};

/// Arguments of `prifft certs`.
#[derive(Args, Debug)]
pub struct CertsArgs {
    /// Output directory (created if missing).
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
}

/// Generate and write the files, and say how to use them.
///
/// # Errors
/// An unwritable directory.
pub fn run(args: CertsArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out_dir)
        .map_err(|source| Error::Io { path: args.out_dir.clone(), source })?;
    let [server, client, dealer] = prifft::net::tls::generate_demo()?.write(&args.out_dir)?;
    println!("certificate authority: {} (its key is not kept)", server.ca.display());
    for (who, f) in [("server", &server), ("client", &client), ("dealer", &dealer)] {
        let cmd = if who == "dealer" { "finetune" } else { "party" };
        println!(
            "{who}: prifft {cmd} --role {who} ... --tls-ca {} --tls-cert {} --tls-key {}",
            f.ca.display(),
            f.cert.display(),
            f.key.display()
        );
    }
    println!(
        "Give each process its own key only. For real deployments use certificates from your own authority: the server's must be issued for `{}`, the dealer's (secure fine-tuning as three processes) for `{}`.",
        prifft::net::tls::SERVER_NAME,
        prifft::net::tls::DEALER_NAME
    );
    Ok(())
}
