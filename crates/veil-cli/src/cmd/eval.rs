//! `veil eval`: accuracy of saved weights on a dataset's test split.

use std::path::PathBuf;

use veil_model::session::evaluate_file;

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
}

/// Runs `veil eval`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (id, split) = super::load_dataset(&args.dataset, args.data.data.as_deref())?;
    let eval = evaluate_file(&args.weights, args.model.as_deref(), &id, &split)?;
    crate::report(&eval, |e| {
        format!(
            "{} on {} ({} test samples): accuracy {:.4}",
            e.model, e.dataset, e.test_samples, e.test_accuracy
        )
    })
}
