//! The `veil` binary: parse arguments, run the command, map errors to exit codes.
//!
//! Exit codes: 0 success, 2 bad input or any other failure reported as a one-line message on
//! stderr (veil never panics on user input).

use clap::Parser;

fn main() {
    let cli = veil_cli::Cli::parse();
    if let Err(err) = veil_cli::run(cli) {
        eprintln!("veil: error: {}", veil_cli::one_line(&err));
        std::process::exit(2);
    }
}
