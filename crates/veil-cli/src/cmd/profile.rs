//! `veil profile`: the privacy profile of a model (SSIM per split layer and number of maps
//! seen, `Nf_l(tau)`, `SP(tau)`), as versioned JSON for the planner plus CSV, Markdown and a
//! heat map.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use veil_attack::profile::{
    ProfileEvent, ProfileMethod, ProfileRequest, cells_of, default_layers, profile,
};
use veil_attack::{AttackConfig, MapSelection};
use veil_model::TrainConfig;

/// Arguments of `veil profile`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The profiled model and its data.
    #[command(flatten)]
    pub target: super::attack::TargetArgs,
    /// Comma-separated split layers (default: every layer before the first flatten/linear).
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<String>,
    /// Comma-separated numbers of maps to try (default: every k from 1 to P; P is always added).
    #[arg(long, value_delimiter = ',')]
    pub ks: Vec<usize>,
    /// Comma-separated tolerated SSIM values.
    #[arg(long, value_delimiter = ',', default_value = "0.4,0.6,0.8")]
    pub taus: Vec<f64>,
    /// How cells are attacked: `chain` trains one decoder on all maps per layer and fine-tunes
    /// it down a nested chain of subsets; `per-cell` trains a decoder per cell and draw.
    #[arg(long, value_enum, default_value_t = Method::Chain)]
    pub method: Method,
    /// Chain method: auxiliary images each fine-tuning step of a chain uses (one epoch).
    #[arg(long, default_value_t = 2_000)]
    pub step_samples: usize,
    /// Auxiliary images per attack.
    #[arg(long, default_value_t = 10_000)]
    pub aux: usize,
    /// Victims per attack.
    #[arg(long, default_value_t = 1_000)]
    pub victims: usize,
    /// Decoder epochs per training (default: 5 for a chain's root, 3 per cell).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Random map orders (chains) or subsets (per cell) averaged for each k < P.
    #[arg(long, default_value_t = 1)]
    pub draws: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output JSON file (CSV, Markdown and PNG are written beside it).
    #[arg(long, default_value = "runs/profile/profile.json")]
    pub out: PathBuf,
    /// Print the profile JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `--method` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// One chain of fine-tuned decoders per layer and draw.
    Chain,
    /// One decoder per cell and draw.
    PerCell,
}

/// Runs `veil profile`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(t) = args.taus.iter().find(|t| !(0.0..=1.0).contains(*t)) {
        anyhow::bail!("--taus must be SSIM values in [0, 1], got {t}");
    }
    let (id, split, model) = args.target.load()?;
    let layers = if args.layers.is_empty() {
        default_layers(&model)
    } else {
        args.layers.clone()
    };
    for l in &layers {
        model.spec().layer_index(l)?;
    }
    let (method, epochs) = match args.method {
        Method::Chain => (ProfileMethod::Chain, 5),
        Method::PerCell => (ProfileMethod::PerCell, 3),
    };
    let base = AttackConfig {
        layer: String::new(),
        maps: None,
        selection: MapSelection::Random,
        draws: args.draws,
        aux_samples: args.aux,
        victims: args.victims,
        train: TrainConfig {
            epochs: args.epochs.unwrap_or(epochs),
            seed: args.seed,
            ..AttackConfig::default().train
        },
    };
    let cells: usize = layers
        .iter()
        .map(|l| {
            let p = model
                .spec()
                .layer_index(l)
                .ok()
                .and_then(|i| model.shapes()[i + 1].as_chw())
                .map_or(1, |s| s.0);
            cells_of(p, &args.ks).len()
        })
        .sum();
    let bar = ProgressBar::new(cells as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "profile [{elapsed_precise}] {bar:30} {pos}/{len} attacks (eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(500));
    let req = ProfileRequest {
        layers,
        ks: args.ks.clone(),
        taus: args.taus.clone(),
        attack: base,
        method,
        step_samples: args.step_samples,
    };
    let prof = profile(
        &model,
        &id.name(),
        &split.train,
        &split.test,
        &req,
        &mut |event| match event {
            ProfileEvent::Querying(l) => bar.set_message(format!("{l}: querying the device part")),
            ProfileEvent::Training(l, chain) => {
                let what = match chain {
                    None => format!("{l}: training the decoder on all maps"),
                    Some(n) => format!("{l}: chain {n} of fine-tuned decoders"),
                };
                if bar.is_hidden() {
                    eprintln!("{what}");
                }
                bar.set_message(what);
            }
            ProfileEvent::Cell(e) => {
                bar.inc(1);
                bar.set_message(format!("{} k={} ssim {:.3}", e.layer, e.k, e.ssim_mean));
                if bar.is_hidden() {
                    eprintln!(
                        "{} k={}/{}: ssim {:.4}",
                        e.layer, e.k, e.total_maps, e.ssim_mean
                    );
                }
            }
        },
    )?;
    bar.finish_and_clear();
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(&prof)?;
    std::fs::write(&args.out, &json).with_context(|| format!("writing {}", args.out.display()))?;
    std::fs::write(args.out.with_extension("csv"), prof.to_csv())?;
    std::fs::write(args.out.with_extension("md"), prof.to_markdown())?;
    let ks: Vec<usize> = {
        let mut v: Vec<usize> = prof.table.entries.iter().map(|e| e.k).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let cells: Vec<Vec<Option<f64>>> = prof
        .table
        .layers
        .iter()
        .map(|l| {
            ks.iter()
                .map(|k| {
                    prof.table
                        .entries
                        .iter()
                        .find(|e| &e.layer == l && e.k == *k)
                        .map(|e| e.ssim_mean)
                })
                .collect()
        })
        .collect();
    veil_plot::heat_map(
        &args.out.with_extension("png"),
        &format!(
            "SSIM of the inversion attack: {} / {}",
            prof.table.model, prof.table.dataset
        ),
        &prof.table.layers,
        &ks.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        &cells,
    )?;
    if args.json {
        return crate::out(&json);
    }
    crate::out(&prof.to_markdown())?;
    crate::out(&format!(
        "{:.0} s; profile in {} (+ .csv, .md, .png)",
        prof.seconds,
        args.out.display()
    ))
}
