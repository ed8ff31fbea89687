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

/// Marks a process that runs with the huge-page heap already (or, set to anything by the user,
/// one that must not re-execute itself).
const HEAP_FLAG: &str = "PRIFFT_HUGEPAGE_HEAP";

/// The glibc tunable that puts the C heap on transparent huge pages.
const HUGE_PAGE_TUNABLE: &str = "glibc.malloc.hugetlb=1";

/// Re-execute this program with glibc's heap on transparent huge pages (`GLIBC_TUNABLES=
/// glibc.malloc.hugetlb=1`), unless the user already chose a `glibc.malloc.hugetlb` setting or
/// set [`HEAP_FLAG`]. A protocol step allocates and frees tens of megabytes per gate (one-time
/// keys, share vectors); on 4 KiB pages that is thousands of page faults and unmaps per gate, on
/// 2 MiB pages a five-hundredth of them. `prifft finetune --seed 1` on the 2-core EPYC of
/// docs/results: 6.69 s and 7.26 s per step against 8.04 s and 8.73 s in back-to-back runs. The
/// variable is read by the C library at start-up only, hence the re-execution (same process id,
/// same arguments). If it fails, the program goes on with the default heap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn huge_page_heap() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(HEAP_FLAG).is_some() {
        return;
    }
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if tunables.contains("glibc.malloc.hugetlb") {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let value = if tunables.is_empty() {
        HUGE_PAGE_TUNABLE.to_string()
    } else {
        format!("{tunables}:{HUGE_PAGE_TUNABLE}")
    };
    // `exec` returns only when it failed; then this process simply goes on.
    let _ = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", value)
        .env(HEAP_FLAG, "1")
        .exec();
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn huge_page_heap() {}

fn main() -> ExitCode {
    huge_page_heap();
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
