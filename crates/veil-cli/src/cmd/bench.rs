//! `veil bench`: engine micro-benchmarks (training, latency, batched throughput) on a model or
//! on the attack's decoder for one of its layers.
//! Numbers go to `docs/BENCHMARKS.md` together with this command line.

use veil_model::bench::{BenchConfig, bench, engine_threads};

/// Arguments of `veil bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Zoo model name, spec file or ONNX file.
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
    /// Benchmark the decoder the default attack trains against this layer's output instead of
    /// the model (training is then mean squared error against random target maps).
    #[arg(long, value_name = "LAYER")]
    pub decoder_at: Option<String>,
    /// Feed real samples from this dataset's test split (default: uniform random inputs).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Data directory options.
    #[command(flatten)]
    pub data: crate::DataArgs,
}

/// Runs `veil bench`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let model = super::resolve_spec(&args.model)?;
    let spec = match &args.decoder_at {
        Some(layer) => veil_attack::decoder::decoder_at(&model, layer)?,
        None => model,
    };
    let cfg = BenchConfig {
        train_steps: args.train_steps.max(1),
        latency_iters: args.latency_iters.max(1),
        throughput_iters: args.throughput_iters.max(1),
        ..BenchConfig::default()
    };
    let data = match &args.dataset {
        Some(name) => Some(super::load_dataset(name, args.data.data.as_deref())?.1.test),
        None => None,
    };
    let report = bench(&spec, &cfg, engine_threads(), data.as_ref())?;
    crate::report(&report, |r| r.text())
}
