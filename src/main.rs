//! The `prifft` command line: parse, dispatch to [`cli`], report errors with a hint.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// Restore the default SIGPIPE action so that `prifft … | head` ends quietly like other Unix
/// tools instead of panicking on a closed stdout (Rust ignores SIGPIPE by default).
#[cfg(unix)]
fn default_sigpipe() {
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    unsafe extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    // SAFETY: called once at start-up, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

#[cfg(not(unix))]
fn default_sigpipe() {}

fn main() -> ExitCode {
    default_sigpipe();
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,wgpu_hal=off"),
    )
    .init();
    match cli::run(cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = cli::hint(e.root()) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}
