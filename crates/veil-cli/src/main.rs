//! The `veil` binary: parse arguments, run the command, map errors to exit codes.
//!
//! Exit codes: 0 success (and `--help` / `--version`); 2 for bad arguments, bad input or any
//! other failure, reported as one line on stderr. A panic (a bug) is also reported on one line
//! with exit code 2 rather than a backtrace.

use clap::Parser;

/// mimalloc keeps freed memory for reuse instead of returning it to the kernel every step
/// (see the dependency's note in Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("veil: internal error{at}: {}", msg.replace('\n', " "));
        std::process::exit(2);
    }));
    let cli = match veil_cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return;
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "veil: {} (see veil --help)",
                first.trim_start_matches("error: ")
            );
            std::process::exit(2);
        }
    };
    if let Err(err) = veil_cli::run(cli) {
        if veil_cli::is_broken_pipe(&err) {
            return;
        }
        eprintln!("veil: error: {}", veil_cli::one_line(&err));
        std::process::exit(2);
    }
}
