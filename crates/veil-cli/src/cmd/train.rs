//! `veil train`: train a zoo model (or a spec file) on a dataset, save weights and a report.

use std::path::PathBuf;

use veil_data::{DatasetId, Split};
use veil_model::session::{SessionEvent, TrainOutput, TrainRequest, train_to_dir};

use crate::DataArgs;

/// Arguments of `veil train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Zoo model name, path to a `.toml`/`.json` spec, or an ONNX file (its architecture is
    /// trained from scratch; its own weights are not used).
    #[arg(long, default_value = "lenet5")]
    pub model: String,
    /// Dataset: mnist, fashion-mnist, cifar10, gtsrb, postop, activity, synthetic, folder:PATH.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Passes over the training set (default depends on the dataset).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Samples per training step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Peak Adam learning rate (cosine decay to 5 % of it).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Seed for initialisation, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Maximum random shift in pixels for augmentation (default: 2 for gtsrb, else 0).
    #[arg(long)]
    pub augment_shift: Option<usize>,
    /// Brightness/contrast jitter for augmentation (default: 0.2 for gtsrb, else 0).
    #[arg(long)]
    pub jitter: Option<f32>,
    /// Use only the first N training samples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Output directory (default `runs/<model>-<dataset>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Data directory options.
    #[command(flatten)]
    pub data: DataArgs,
}

/// Runs `veil train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    crate::report(&execute(&args)?, |o| o.text())
}

/// Trains as `args` say, with a progress bar; returns what was written.
pub fn execute(args: &Args) -> anyhow::Result<TrainOutput> {
    let (id, split) = super::load_dataset(&args.dataset, args.data.data.as_deref())?;
    let request = TrainRequest {
        spec: super::resolve_spec(&args.model)?,
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        augment_shift: args.augment_shift,
        jitter: args.jitter,
        limit: args.limit,
        out: args.out.clone(),
    };
    train_with_bar(&request, &id, &split)
}

/// Trains `request` on `split` with a progress bar (one log line per epoch without a
/// terminal).
pub fn train_with_bar(
    request: &TrainRequest,
    id: &DatasetId,
    split: &Split,
) -> anyhow::Result<TrainOutput> {
    let label = format!("train {} on {}", request.spec.name, id.name());
    let bar = crate::progress_bar(0, &label, "steps");
    let (mut per_epoch, mut epochs) = (1, 0);
    let output = train_to_dir(request, id, split, &mut |event| match event {
        SessionEvent::Resized { model, classes } if !crate::json() => eprintln!(
            "note: {model} resized to {classes} output classes for {}",
            id.name()
        ),
        SessionEvent::Resized { .. } => {}
        SessionEvent::Start {
            epochs: e,
            steps,
            steps_per_epoch,
        } => {
            bar.set_length(steps as u64);
            (per_epoch, epochs) = (steps_per_epoch, e);
        }
        SessionEvent::Step(s) => {
            bar.set_position(s.step as u64);
            if s.step % 20 == 0 {
                bar.set_message(format!("epoch {} loss {:.4}", s.epoch, s.loss));
            }
            // Without a terminal the bar is hidden: log one line per epoch instead.
            if bar.is_hidden() && s.step % per_epoch == 0 {
                eprintln!(
                    "epoch {}/{epochs} done ({} steps, last batch loss {:.4}, {:.0} s)",
                    s.epoch,
                    s.step,
                    s.loss,
                    bar.elapsed().as_secs_f64()
                );
            }
        }
    })?;
    bar.finish_and_clear();
    Ok(output)
}
