//! `veil infer`: a model's logits and predictions on the first test samples of a dataset (the
//! plaintext answer every other interpreter is compared with).

use std::path::PathBuf;

use veil_model::session::{Inference, infer_file};

use crate::DataArgs;

/// Arguments of `veil infer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model: a zoo name, a spec file or an ONNX file (weights from its initializers).
    #[arg(long, required_unless_present = "weights")]
    pub model: Option<String>,
    /// Weight file (default: `veil train`'s run directory for the model and dataset).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Dataset whose test split is run.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Run only the first N test samples.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub limit: Option<u64>,
    /// Data directory options.
    #[command(flatten)]
    pub data: DataArgs,
}

/// Runs `veil infer`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (id, split) = super::load_dataset(&args.dataset, args.data.data.as_deref())?;
    let (weights, expected) = super::weights_and_name(args.weights, args.model.as_deref(), &id)?;
    let limit = args.limit.map(|n| n as usize);
    let inference = infer_file(&weights, expected.as_deref(), &id, &split, limit)?;
    crate::report(&inference, text)
}

/// One line per sample (prediction, label, logits), then the accuracy.
fn text(r: &Inference) -> String {
    let mut s = format!(
        "{} on {} ({} test samples, {})\n",
        r.model,
        r.dataset,
        r.samples,
        r.weights.display()
    );
    for (i, ((p, l), logits)) in r
        .predictions
        .iter()
        .zip(&r.labels)
        .zip(&r.logits)
        .enumerate()
    {
        let values: Vec<String> = logits.iter().map(|v| format!("{v:.4}")).collect();
        s.push_str(&format!(
            "{i:>6}  predicted {p:<3} label {l:<3} [{}]\n",
            values.join(", ")
        ));
    }
    s.push_str(&format!("accuracy {:.4}", r.accuracy));
    s
}
