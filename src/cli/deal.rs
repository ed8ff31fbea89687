//! `prifft deal`: the dealer, writing both parties' preprocessing files.

use std::path::{Path, PathBuf};

use clap::Args;

use prifft::session::{self, MatmulSpec, SessionOp};
use prifft::{Error, Result};

use super::party::ShapeArgs;

/// Arguments of `prifft deal`.
#[derive(Args, Debug)]
pub struct DealArgs {
    #[command(flatten)]
    shape: ShapeArgs,
    /// Output directory.
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
}

/// Deal.
///
/// # Errors
/// Bad shapes, an unwritable directory.
pub fn run(args: DealArgs) -> Result<()> {
    write(&args.shape.spec()?, &args.out_dir).map(|_| ())
}

/// Write both preprocessing files for `spec` into `out_dir`; returns their paths.
///
/// # Errors
/// An unwritable directory.
pub fn write(spec: &MatmulSpec, out_dir: &Path) -> Result<[PathBuf; 2]> {
    std::fs::create_dir_all(out_dir)
        .map_err(|source| Error::Io { path: out_dir.to_path_buf(), source })?;
    let [p0, p1] = session::deal(spec)?;
    let paths = [out_dir.join("server.pp"), out_dir.join("client.pp")];
    p0.write_file(&paths[0])?;
    p1.write_file(&paths[1])?;
    let what = match spec.op {
        SessionOp::Matmul => {
            format!("matrix triple(s) for ({}×{})·({}×{})", spec.m, spec.k, spec.k, spec.n)
        }
        SessionOp::Relu => format!("ReLU key batch(es) of {} elements", spec.m * spec.k),
        SessionOp::Spline => format!("spline key batch(es) of {} elements", spec.m * spec.k),
    };
    println!("dealer: {} {what} → {} and {}", spec.repeat, paths[0].display(), paths[1].display());
    Ok(paths)
}
