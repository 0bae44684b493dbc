//! `veil attack`: inversion of a split layer's features, black-box, white-box or query-free
//! (`veil-attack`).

use std::path::PathBuf;

use anyhow::Context;
use veil_attack::campaign::{self, AttackRun, helper_view};
use veil_attack::{AttackConfig, AttackSetting, DEFAULT_AUX, DecoderKind, MapSelection};
use veil_model::inversion::MatchConfig;
use veil_model::session::TrainRequest;
use veil_model::{Model, TrainConfig};

use crate::DataArgs;

/// Arguments of `veil attack`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The attacked model and its data.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Split layer whose output the attacker sees (see `veil models --layers`).
    #[arg(long, default_value = "conv1")]
    pub layer: String,
    /// Feature maps the attacker sees (default: all).
    #[arg(long)]
    pub maps: Option<usize>,
    /// How the maps are chosen: random (averaged over --draws) or contiguous.
    #[arg(long, value_enum, default_value_t = MapSelection::Random)]
    pub selection: MapSelection,
    /// Random map subsets averaged.
    #[arg(long, default_value_t = 1)]
    pub draws: usize,
    /// What the attacker knows: black-box (queries the device part), white-box (knows its
    /// weights; feature matching, no auxiliary images) or query-free (trains a shadow device
    /// part in front of the known rest of the model).
    #[arg(long, value_enum, default_value_t = AttackSetting::BlackBox)]
    pub setting: AttackSetting,
    /// Auxiliary images the attacker queries (black-box) or trains its shadow on (query-free).
    #[arg(long, default_value_t = DEFAULT_AUX)]
    pub aux: usize,
    /// Victim images reconstructed and scored.
    #[arg(long, default_value_t = 1_000)]
    pub victims: usize,
    /// Decoder training epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Decoder architecture: mirror (the device part's path walked back to the image) or
    /// shape (derived from the feature shape alone; the decoder before issue #16).
    #[arg(long, value_enum, default_value_t = DecoderKind::Mirror)]
    pub decoder: DecoderKind,
    /// White-box: Adam steps of the feature matching.
    #[arg(long, default_value_t = MatchConfig::default().steps, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub steps: usize,
    /// White-box: weight of the total-variation prior.
    #[arg(long, default_value_t = MatchConfig::default().tv_weight)]
    pub tv: f64,
    /// Query-free: epochs of shadow training.
    #[arg(long, default_value_t = AttackConfig::default().shadow_epochs, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    pub shadow_epochs: usize,
    /// Attack a helper of the channel-partitioned scheme at this conv layer instead: it holds
    /// `--maps` input maps of the layer and receives the partial sums of the maps it owns.
    #[arg(long, value_name = "CONV")]
    pub helper_of: Option<String>,
    /// With --helper-of: output maps the helper owns (default: as many as it holds).
    #[arg(long, requires = "helper_of")]
    pub owned: Option<usize>,
    /// With --helper-of: devices holding the other input maps, each sending one partial sum
    /// per owned map (default: the other maps spread over helpers holding --maps each).
    #[arg(long, requires = "helper_of")]
    pub senders: Option<usize>,
    /// Seed (map subsets, decoder init, shuffling).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory for the image grid and the JSON report.
    #[arg(long, default_value = "runs/attack")]
    pub out: PathBuf,
}

/// Which trained model is attacked, on which data (shared by `veil attack` and `veil profile`).
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// Zoo model name, spec file or ONNX file (used to find or train weights when `--weights` is
    /// absent; an ONNX file brings its own).
    #[arg(long, default_value = "lenet5")]
    pub model: String,
    /// Weight file of the attacked model (default: `runs/<model>-<dataset>/model.safetensors`,
    /// trained first with `veil train` defaults when missing).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Dataset: auxiliary images come from its training split, victims from its test split.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Data directory options.
    #[command(flatten)]
    pub data: DataArgs,
}

impl TargetArgs {
    /// Loads the dataset and the model: `--weights`, else the default weight file
    /// (`veil_model::session::default_weights`), trained first with `veil train`'s defaults
    /// when missing.
    pub fn load(&self) -> anyhow::Result<(veil_data::DatasetId, veil_data::Split, Model)> {
        let (id, split) = super::load_dataset(&self.dataset, self.data.data.as_deref())?;
        let weights = match &self.weights {
            Some(w) => w.clone(),
            None => super::default_weights(&self.model, &id)?,
        };
        if self.weights.is_none() && !weights.is_file() {
            let dir = weights.display();
            eprintln!(
                "no weights given: training {} on {} first ({dir})",
                self.model,
                id.name()
            );
            let request = TrainRequest {
                out: weights.parent().map(PathBuf::from),
                ..TrainRequest::defaults(super::resolve_spec(&self.model)?)
            };
            super::train::train_with_bar(&request, &id, &split)?;
        }
        let model =
            Model::load(&weights).with_context(|| format!("loading {}", weights.display()))?;
        Ok((id, split, model))
    }
}

/// Runs `veil attack`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (id, split, model) = args.target.load()?;
    let helper = match &args.helper_of {
        Some(conv) => Some(helper_view(
            &model,
            conv,
            args.maps,
            args.owned,
            args.senders,
        )?),
        None => None,
    };
    let run = AttackRun {
        config: AttackConfig {
            layer: args.layer.clone(),
            maps: args.maps,
            selection: args.selection,
            draws: args.draws,
            aux_samples: args.aux,
            victims: args.victims,
            train: TrainConfig {
                epochs: args.epochs,
                seed: args.seed,
                ..AttackConfig::default().train
            },
            setting: args.setting,
            decoder: args.decoder,
            white_box: MatchConfig {
                steps: args.steps,
                tv_weight: args.tv,
                ..MatchConfig::default()
            },
            shadow_epochs: args.shadow_epochs,
        },
        helper,
        out: args.out.clone(),
    };
    let bar = crate::spinner("attack");
    let outcome = campaign::run(&model, &id.name(), &split, &run, &mut |m| {
        bar.set_message(m.to_string())
    })?;
    bar.finish_and_clear();
    crate::report(&outcome, |x| x.summary())
}
