//! `veil bench`: engine micro-benchmarks (training, latency, batched throughput) on a model.
//! Numbers go to `docs/BENCHMARKS.md` together with this command line.

use veil_model::bench::{BenchConfig, bench};

/// Arguments of `veil bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Zoo model name or spec file.
    #[arg(long, default_value = "lenet5")]
    pub model: String,
    /// Timed training steps.
    #[arg(long, default_value_t = 300)]
    pub train_steps: usize,
    /// Timed single-sample inferences.
    #[arg(long, default_value_t = 2000)]
    pub latency_iters: usize,
    /// Timed batched inferences.
    #[arg(long, default_value_t = 50)]
    pub throughput_iters: usize,
    /// Feed real samples from this dataset's test split (default: uniform random inputs).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Data directory options.
    #[command(flatten)]
    pub data: crate::DataArgs,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `veil bench`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let spec = super::resolve_spec(&args.model)?;
    let cfg = BenchConfig {
        train_steps: args.train_steps.max(1),
        latency_iters: args.latency_iters.max(1),
        throughput_iters: args.throughput_iters.max(1),
        ..BenchConfig::default()
    };
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let data = match &args.dataset {
        Some(name) => Some(super::load_dataset(name, args.data.data.as_deref())?.1.test),
        None => None,
    };
    let r = bench(&spec, &cfg, threads, data.as_ref())?;
    if args.json {
        return crate::print_json(&r);
    }
    crate::out(&format!(
        "{} ({} threads, {} inputs)",
        r.model, r.threads, r.inputs
    ))?;
    crate::out(&format!(
        "training, batch {}: {:.1} steps/s = {:.0} images/s",
        cfg.train_batch, r.train_steps_per_second, r.train_images_per_second
    ))?;
    crate::out(&format!(
        "inference, batch 1: median {:.3} ms, {:.0} inferences/s",
        r.latency_median_ms, r.single_inferences_per_second
    ))?;
    crate::out(&format!(
        "inference, batch {}: {:.1} batches/s = {:.0} images/s",
        cfg.throughput_batch, r.batches_per_second, r.batched_images_per_second
    ))?;
    Ok(())
}
