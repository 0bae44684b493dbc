//! `veil eval`: accuracy of saved weights on a dataset's test split.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Serialize;
use veil_model::Model;

use crate::DataArgs;

/// Arguments of `veil eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Expected model name (must match the spec stored in the weight file).
    #[arg(long)]
    pub model: Option<String>,
    /// Weight file written by `veil train`.
    #[arg(long)]
    pub weights: PathBuf,
    /// Dataset whose test split is evaluated.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Data directory options.
    #[command(flatten)]
    pub data: DataArgs,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct EvalOutput {
    model: String,
    dataset: String,
    weights: PathBuf,
    test_samples: usize,
    test_accuracy: f64,
    seconds: f64,
}

/// Runs `veil eval`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let model = Model::load(&args.weights)
        .with_context(|| format!("loading {}", args.weights.display()))?;
    if let Some(name) = &args.model
        && !name.eq_ignore_ascii_case(&model.spec().name)
    {
        bail!(
            "{} holds model `{}`, not `{name}`",
            args.weights.display(),
            model.spec().name
        );
    }
    let (id, split) = super::load_dataset(&args.dataset, args.data.data.as_deref())?;
    let started = std::time::Instant::now();
    let acc = model.evaluate(&split.test)?;
    let out = EvalOutput {
        model: model.spec().name.clone(),
        dataset: id.name(),
        weights: args.weights,
        test_samples: split.test.len(),
        test_accuracy: acc,
        seconds: started.elapsed().as_secs_f64(),
    };
    if args.json {
        return crate::print_json(&out);
    }
    crate::out(&format!(
        "{} on {} ({} test samples): accuracy {:.4}",
        out.model, out.dataset, out.test_samples, out.test_accuracy
    ))?;
    Ok(())
}
