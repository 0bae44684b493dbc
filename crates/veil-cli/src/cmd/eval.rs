//! `veil eval`: accuracy of saved weights on a dataset's test split.

use std::path::PathBuf;

use veil_model::session::evaluate_file;

use crate::DataArgs;

/// Arguments of `veil eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model: a zoo name, a spec file or an ONNX file. With `--weights`, the name the file
    /// must hold; without, it says where the weights are (`veil train`'s run directory, or the
    /// ONNX file's own initializers).
    #[arg(long, required_unless_present = "weights")]
    pub model: Option<String>,
    /// Weight file written by `veil train` or `veil import`.
    #[arg(long)]
    pub weights: Option<PathBuf>,
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
    let (weights, expected) = super::weights_and_name(args.weights, args.model.as_deref(), &id)?;
    let eval = evaluate_file(&weights, expected.as_deref(), &id, &split)?;
    crate::report(&eval, |e| {
        format!(
            "{} on {} ({} test samples): accuracy {:.4}",
            e.model, e.dataset, e.test_samples, e.test_accuracy
        )
    })
}
