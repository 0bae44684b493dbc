//! veil-cli: the `veil` command line. Each sub-command lives in [`cmd`] and calls the library
//! crates; this file holds the argument types and the dispatcher.
//!
//! `--json` (anywhere on the command line) makes a command print one JSON document on stdout
//! instead of text; every command reports bad input as an error, which `main` prints on one
//! line before exiting with code 2.

#![forbid(unsafe_code)]

pub mod cmd;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// veil: privacy-preserving collaborative CNN inference toolkit.
#[derive(Debug, Parser)]
#[command(name = "veil", version, about)]
pub struct Cli {
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the model zoo with parameter and multiplication counts.
    Models(cmd::models::Args),
    /// Train a model on a dataset and save its weights.
    Train(cmd::train::Args),
    /// Evaluate saved weights on a dataset's test split.
    Eval(cmd::eval::Args),
    /// Logits and predicted class of each test sample (the plaintext answer).
    Infer(cmd::infer::Args),
    /// Compare two images: SSIM, PSNR and MSE.
    Compare(cmd::compare::Args),
    /// Import an ONNX model (exported from PyTorch) as a veil spec and weight file.
    Import(cmd::import::Args),
    /// Benchmark the engine on a model: training, latency, batched throughput.
    Bench(cmd::bench::Args),
    /// Price privacy: solve the Stackelberg incentive game or regenerate Figs. 6-9.
    Game(cmd::game::Args),
    /// Measure leakage: black-box inversion of a split layer's features.
    Attack(cmd::attack::Args),
    /// Privacy profile: attack SSIM per split layer and maps seen, Nf(tau), SP(tau).
    Profile(cmd::profile::Args),
    /// Defend: judge a shield (DP model perturbation, feature noise, dropout) by accuracy kept
    /// and attack left.
    Defend(cmd::defend::Args),
    /// Plan: place one request's segments on a fleet (DistPrivacy greedy or a baseline).
    Plan(cmd::plan::Args),
    /// Simulate fleets: Poisson workloads, latency, shared data, rejections; Fig. 3 panels.
    Simulate(cmd::simulate::Args),
    /// Secure two-server inference: keys, the four parties, and a loopback benchmark.
    Mpc(cmd::mpc::Args),
    /// Distributed runtime tools: certificates, loopback benchmark.
    Net(cmd::net::NetArgs),
    /// Run a distributed-runtime node (source or helper).
    Node(cmd::net::NodeArgs),
    /// Run the distributed runtime's coordinator.
    Coordinator(cmd::net::CoordinatorArgs),
}

/// Whether `--json` was given, set once by [`run`]: the process prints JSON instead of text.
static JSON_OUTPUT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Whether this run prints JSON (`--json`) instead of text.
pub fn json() -> bool {
    JSON_OUTPUT.get().copied().unwrap_or(false)
}

/// Prints `value` as JSON with `--json`, else `text(value)`.
pub fn report<T: serde::Serialize>(
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    match json() {
        true => print_json(value),
        false => out(&text(value)),
    }
}

/// Writes a figure's data as `<dir>/<name>.csv` and its chart as `<dir>/<name>.png` (and
/// `.svg`); returns the CSV and PNG paths.
pub fn write_figure(
    dir: &std::path::Path,
    name: &str,
    csv: &str,
    panels: &[veil_plot::Panel],
    (width, height): (u32, u32),
) -> anyhow::Result<(PathBuf, PathBuf)> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (csv_path, png) = (
        dir.join(format!("{name}.csv")),
        dir.join(format!("{name}.png")),
    );
    std::fs::write(&csv_path, csv).with_context(|| format!("writing {}", csv_path.display()))?;
    veil_plot::line_charts(&png, panels, width, height)?;
    Ok((csv_path, png))
}

/// Options shared by commands that read datasets.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Data directory (defaults to $VEIL_DATA).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let _ = JSON_OUTPUT.set(cli.json);
    match cli.command {
        Command::Models(a) => cmd::models::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Infer(a) => cmd::infer::run(a),
        Command::Compare(a) => cmd::compare::run(a),
        Command::Import(a) => cmd::import::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Game(a) => cmd::game::run(a),
        Command::Attack(a) => cmd::attack::run(a),
        Command::Profile(a) => cmd::profile::run(a),
        Command::Defend(a) => cmd::defend::run(a),
        Command::Plan(a) => cmd::plan::run(a),
        Command::Simulate(a) => cmd::simulate::run(a),
        Command::Mpc(a) => cmd::mpc::run(a),
        Command::Net(a) => cmd::net::run(a),
        Command::Node(a) => cmd::net::node(a),
        Command::Coordinator(a) => cmd::net::coordinator(a),
    }
}

/// An error and its causes on one line, newlines removed.
pub fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}").replace(['\n', '\r'], " ")
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    out(&serde_json::to_string_pretty(value)?)
}

/// Writes one line to stdout, returning an error (rather than panicking like `println!`)
/// when stdout is closed.
pub fn out(line: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    Ok(())
}

/// Whether `err` is a closed stdout (e.g. `veil models | head -1`), which is not a failure.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The one progress-bar style of every long command:
/// `<label> [elapsed] ████ pos/len <unit> (eta) message`, ticking on its own so a long step
/// still shows time passing. Hidden when stderr is not a terminal (indicatif's rule).
pub fn progress_bar(len: usize, label: &str, unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    let template = format!(
        "{label} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}}) {{msg}}"
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(500));
    bar
}

/// A spinner with elapsed time and a message, for work of unknown length.
pub fn spinner(message: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar.set_message(message.to_string());
    bar
}
