//! `veil profile`: the privacy profile of a model (SSIM per split layer and number of maps
//! seen, `Nf_l(tau)`, `SP(tau)`), as versioned JSON for the planner plus CSV, Markdown and a
//! heat map.

use std::path::PathBuf;

use veil_attack::profile::{ProfileEvent, ProfileMethod};
use veil_attack::profile_files::{self, ProfileSettings, cell_count};

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
    #[arg(long, value_enum, default_value_t = ProfileMethod::Chain)]
    pub method: ProfileMethod,
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
    /// Skip the confirm pass (re-attacking, from scratch at full strength, every cell a
    /// threshold rests on): faster, but the fast attack may understate the leakage.
    #[arg(long)]
    pub no_confirm: bool,
    /// Confirm pass: re-attack every deciding one-map cell on each map of its layer and keep
    /// the worst (a planner gives every helper *some* map; P attacks per such cell).
    #[arg(long, conflicts_with = "no_confirm")]
    pub every_map: bool,
    /// Continue an interrupted run from its checkpoint (`<out>.checkpoint.json`, written after
    /// each layer and each confirmed cell) or any profile JSON of this model: its layers are
    /// not attacked again by the fast pass, its confirmed cells stay confirmed.
    #[arg(long, value_name = "JSON", conflicts_with = "redraw")]
    pub resume: Option<PathBuf>,
    /// Output JSON file (CSV, Markdown and PNG are written beside it).
    #[arg(long, default_value = "runs/profile/profile.json")]
    pub out: PathBuf,
    /// Attack nothing: read this profile JSON and write its files (JSON, CSV, Markdown, heat
    /// map) again at `--out`.
    #[arg(long, value_name = "JSON")]
    pub redraw: Option<PathBuf>,
}

/// Runs `veil profile`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(json) = &args.redraw {
        let prof = profile_files::redraw(json, &args.out)?;
        return crate::report(&prof, |_| {
            format!("redrew {} (+ .csv, .md, .png, .svg)", args.out.display())
        });
    }
    let settings = ProfileSettings {
        layers: args.layers.clone(),
        ks: args.ks.clone(),
        taus: args.taus.clone(),
        method: args.method,
        epochs: args.epochs,
        step_samples: args.step_samples,
        aux: args.aux,
        victims: args.victims,
        draws: args.draws,
        seed: args.seed,
        confirm: !args.no_confirm,
        every_map: args.every_map,
        resume: args.resume.clone(),
    };
    settings.check()?;
    let (id, split, model) = args.target.load()?;
    let request = settings.request(&model, &id.name())?;
    let bar = crate::progress_bar(cell_count(&model, &request), "profile", "attacks");
    let on_event = &mut |event: ProfileEvent<'_>| {
        let (line, tick) = match event {
            ProfileEvent::Querying(l) => (format!("{l}: querying the device part"), false),
            ProfileEvent::Training(l, None) => {
                (format!("{l}: training the decoder on all maps"), false)
            }
            ProfileEvent::Training(l, Some(n)) => {
                (format!("{l}: chain {n} of fine-tuned decoders"), false)
            }
            ProfileEvent::Cell(e) => (
                format!(
                    "{} k={}/{}: ssim {:.4}",
                    e.layer, e.k, e.total_maps, e.ssim_mean
                ),
                true,
            ),
            ProfileEvent::Confirming => (
                "confirm pass: re-attacking the cells the thresholds rest on at full strength"
                    .to_string(),
                false,
            ),
            ProfileEvent::Confirmed(e) => (
                format!(
                    "confirmed {} k={}/{}: ssim {:.4}",
                    e.layer, e.k, e.total_maps, e.ssim_mean
                ),
                false,
            ),
            ProfileEvent::Checkpoint(_) => return,
        };
        if tick {
            bar.inc(1);
        }
        if bar.is_hidden() {
            eprintln!("{line}");
        }
        bar.set_message(line);
    };
    let prof = profile_files::run(&model, &id.name(), &split, &request, &args.out, on_event)?;
    bar.finish_and_clear();
    if crate::json() {
        return crate::print_json(&prof);
    }
    crate::out(&prof.to_markdown())?;
    crate::out(&format!(
        "{:.0} s; profile in {} (+ .csv, .md, .png, .svg)",
        prof.seconds,
        args.out.display()
    ))
}
