//! `veil attack`: black-box inversion of a split layer's features (`veil-attack`).

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use veil_attack::{
    AttackConfig, AttackReport, HelperView, LayerFeatures, MapSelection, attack_features,
    grid::save_grid, helper_features,
};
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
    #[arg(long, value_enum, default_value_t = SelectionArg::Random)]
    pub selection: SelectionArg,
    /// Random map subsets averaged.
    #[arg(long, default_value_t = 1)]
    pub draws: usize,
    /// Auxiliary images the attacker queries.
    #[arg(long, default_value_t = 10_000)]
    pub aux: usize,
    /// Victim images reconstructed and scored.
    #[arg(long, default_value_t = 1_000)]
    pub victims: usize,
    /// Decoder training epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
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
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Which trained model is attacked, on which data (shared by `veil attack` and `veil profile`).
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// Zoo model name (used to find or train weights when `--weights` is absent).
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
    /// Loads the dataset and the model (training it first when needed).
    pub fn load(&self) -> anyhow::Result<(veil_data::DatasetId, veil_data::Split, Model)> {
        let (id, split) = super::load_dataset(&self.dataset, self.data.data.as_deref())?;
        let weights = weights_for(
            &self.model,
            &self.dataset,
            &id,
            self.weights.as_ref(),
            self.data.data.clone(),
        )?;
        let model =
            Model::load(&weights).with_context(|| format!("loading {}", weights.display()))?;
        Ok((id, split, model))
    }
}

/// The weights to attack: `given`, else `runs/<model>-<dataset>/model.safetensors`, trained
/// first with `veil train` defaults when missing.
pub fn weights_for(
    model: &str,
    dataset: &str,
    id: &veil_data::DatasetId,
    given: Option<&PathBuf>,
    data: Option<PathBuf>,
) -> anyhow::Result<PathBuf> {
    if let Some(w) = given {
        return Ok(w.clone());
    }
    let cached = super::train::default_weights(model, &id.name());
    if !cached.is_file() {
        eprintln!(
            "no weights given: training {model} on {} first ({})",
            id.name(),
            cached.display()
        );
        let mut t = super::train::default_args(model, dataset, data);
        t.out = cached.parent().map(PathBuf::from);
        super::train::execute(&t)?;
    }
    Ok(cached)
}

/// `--selection`: which of a layer's maps the attacker sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SelectionArg {
    /// Random subsets, averaged over `--draws`.
    Random,
    /// The first k maps.
    Contiguous,
}

/// Runs `veil attack`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let selection = match args.selection {
        SelectionArg::Random => MapSelection::Random,
        SelectionArg::Contiguous => MapSelection::Contiguous,
    };
    let (id, split, model) = args.target.load()?;
    let cfg = AttackConfig {
        layer: args.layer.clone(),
        maps: args.maps,
        selection,
        draws: args.draws,
        aux_samples: args.aux,
        victims: args.victims,
        train: TrainConfig {
            epochs: args.epochs,
            seed: args.seed,
            ..AttackConfig::default().train
        },
    };
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar.set_message(format!("attack {}: querying the device part", args.layer));
    let started = std::time::Instant::now();
    let (feats, helper) = match &args.helper_of {
        None => {
            let feats = LayerFeatures::extract(
                &model,
                &split.train,
                &split.test,
                &args.layer,
                args.aux,
                args.victims,
            )?;
            (feats, None)
        }
        Some(conv) => {
            let view = helper_view(&model, conv, &args)?;
            let feats = helper_features(
                &model,
                &split.train,
                &split.test,
                &view,
                args.aux,
                args.victims,
            )?;
            (feats, Some(view))
        }
    };
    // A helper's observation is attacked whole: --maps named what it holds.
    let cfg = AttackConfig {
        maps: if helper.is_some() { None } else { cfg.maps },
        ..cfg
    };
    let mut report: AttackReport = attack_features(&feats, &cfg, &mut |m| {
        bar.set_message(format!("attack {}: {m}", feats.layer))
    })?;
    report.seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let stem = match &helper {
        None => format!("{}-{}-k{}", model.spec().name, report.layer, report.maps),
        Some(v) => format!(
            "{}-{}-helper-k{}-q{}-g{}",
            model.spec().name,
            v.conv,
            v.held,
            v.owned,
            v.senders
        ),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let grid = args.out.join(format!("{stem}.png"));
    let originals: Vec<&[f32]> = (0..report.examples.len())
        .map(|i| split.test.sample(i))
        .collect();
    let recon: Vec<&[f32]> = report.examples.iter().map(Vec::as_slice).collect();
    save_grid(&grid, split.test.shape, &originals, &recon)?;
    std::fs::write(args.out.join(format!("{stem}.csv")), csv(&report))
        .with_context(|| format!("writing {stem}.csv"))?;
    let mut value = serde_json::to_value(&report)?;
    value["model"] = serde_json::json!(model.spec().name);
    value["dataset"] = serde_json::json!(id.name());
    value["grid"] = serde_json::json!(grid);
    value["helper"] = serde_json::json!(helper);
    std::fs::write(
        args.out.join(format!("{stem}.json")),
        serde_json::to_string_pretty(&value)?,
    )?;
    if args.json {
        return crate::print_json(&value);
    }
    crate::out(&format!(
        "{} / {} at {} with {} of {} maps: SSIM {:.4} +- {:.4}, PSNR {:.2} dB, MSE {:.5} over {} victims ({:.0} s); grid {}",
        model.spec().name,
        id.name(),
        report.layer,
        report.maps,
        report.total_maps,
        report.ssim_mean,
        report.ssim_std,
        report.psnr_mean,
        report.mse_mean,
        report.victims,
        report.seconds,
        grid.display()
    ))
}

/// The helper share from the flags: holds `--maps` (required), owns `--owned` (default: as
/// many), hears from `--senders` devices (default: the rest spread over helpers like it).
fn helper_view(model: &Model, conv: &str, args: &Args) -> anyhow::Result<HelperView> {
    let index = model.spec().layer_index(conv)?;
    let p = model.shapes()[index].as_chw().map_or(0, |(c, _, _)| c);
    let out_c = model.shapes()[index + 1].as_chw().map_or(0, |(c, _, _)| c);
    let Some(held) = args.maps else {
        anyhow::bail!("--helper-of needs --maps: the input maps of {conv} the helper holds");
    };
    if held == 0 || held > p {
        anyhow::bail!("--maps {held}: {conv} has {p} input maps");
    }
    Ok(HelperView {
        conv: conv.to_string(),
        held,
        owned: args.owned.unwrap_or(held.min(out_c)),
        senders: args.senders.unwrap_or((p - held).div_ceil(held)),
    })
}

/// One report as a CSV header and row.
fn csv(r: &AttackReport) -> String {
    format!(
        "layer,maps,total_maps,selection,draws,victims,aux_samples,ssim_mean,ssim_std,psnr_mean,psnr_std,mse_mean,mse_std,seconds\n\
         \"{}\",{},{},{},{},{},{},{:.6},{:.6},{:.4},{:.4},{:.6},{:.6},{:.1}\n",
        r.layer,
        r.maps,
        r.total_maps,
        match r.selection {
            MapSelection::Random => "random",
            MapSelection::Contiguous => "contiguous",
        },
        r.draws,
        r.victims,
        r.aux_samples,
        r.ssim_mean,
        r.ssim_std,
        r.psnr_mean,
        r.psnr_std,
        r.mse_mean,
        r.mse_std,
        r.seconds
    )
}
