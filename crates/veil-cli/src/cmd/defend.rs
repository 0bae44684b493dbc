//! `veil defend`: shields judged by the accuracy they keep and by the attack they leave
//! (`veil-defense`). `obfnet` trains ObfNets in front of the frozen classifier; `dp` perturbs
//! the device-side parameters per privacy budget and fits `A = a ln(b eps + 1)` (written as a
//! fit file `veil game --accuracy-fit` reads); `noise` and `dropout` act on the transmitted
//! features; `split` moves the split deeper without any shield; `chart` puts the CSVs of
//! several runs on one privacy-utility chart and tabulates the attack SSIM each defence
//! leaves at equal accuracy.

use std::path::PathBuf;

use veil_attack::AttackConfig;
use veil_defense::campaign::{self, Attacker, Campaign, NoiseKind, Progress};
use veil_defense::chart::compare_files;
use veil_defense::obfnet_campaign::{self, ObfNetCampaign};

/// Arguments of `veil defend`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which shield.
    #[command(subcommand)]
    pub shield: Shield,
}

/// The shields.
#[derive(Debug, clap::Subcommand)]
pub enum Shield {
    /// ObfNets trained in front of the frozen classifier, one picked at random per sample.
    Obfnet {
        /// The classifier and its data.
        #[command(flatten)]
        target: super::attack::TargetArgs,
        /// ObfNet variant: 1 (784-784) or 2 (784-1000-784).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
        variant: u8,
        /// ObfNets trained (different seeds).
        #[arg(long, default_value_t = 3)]
        count: usize,
        /// Training epochs per ObfNet.
        #[arg(long, default_value_t = 2)]
        obf_epochs: usize,
        /// Auxiliary images of the attack.
        #[arg(long, default_value_t = 10_000)]
        aux: usize,
        /// Victims of the attack.
        #[arg(long, default_value_t = 1_000)]
        victims: usize,
        /// Decoder epochs of the attack.
        #[arg(long, default_value_t = 5)]
        epochs: usize,
        /// Output directory (JSON, CSV, image grid).
        #[arg(long, default_value = "runs/defend")]
        out: PathBuf,
    },
    /// Model perturbation: clip the device part to G, add Laplace(2G/eps) to its parameters.
    Dp {
        /// Common options.
        #[command(flatten)]
        common: Common,
        /// Comma-separated privacy budgets.
        #[arg(long, value_delimiter = ',', default_value = "1,5,10,50,100,500")]
        eps: Vec<f64>,
        /// Clip bound G (default: the device part's largest absolute parameter, so no scaling).
        #[arg(long)]
        clip: Option<f64>,
        /// `deployed`: the attacker queries the perturbed device and trains on that (the
        /// stronger attack); `stale`: it trained once on the plain device and applies that
        /// decoder to the perturbed device's features (the setting of Spears and Shields).
        #[arg(long, value_enum, default_value_t = Attacker::Deployed)]
        attacker: Attacker,
    },
    /// Additive noise on the transmitted features.
    Noise {
        /// Common options.
        #[command(flatten)]
        common: Common,
        /// gaussian (scale = sigma) or laplace (scale = b).
        #[arg(long, value_enum, default_value_t = NoiseKind::Gaussian)]
        kind: NoiseKind,
        /// Comma-separated noise scales.
        #[arg(long, value_delimiter = ',', default_value = "0.1,0.5,1,2")]
        scales: Vec<f64>,
    },
    /// Dropout on the transmitted features (survivors scaled by 1 / (1 - p)).
    Dropout {
        /// Common options.
        #[command(flatten)]
        common: Common,
        /// Comma-separated drop probabilities.
        #[arg(long, value_delimiter = ',', default_value = "0.1,0.3,0.5,0.7,0.9")]
        rates: Vec<f64>,
    },
    /// No shield, a deeper split: the attack at each layer of `--layers` (which replaces
    /// `--layer`), accuracy unchanged.
    Split {
        /// Common options (`--draws` reseeds the decoder).
        #[command(flatten)]
        common: Common,
        /// Comma-separated split layers.
        #[arg(long, value_delimiter = ',', required = true)]
        layers: Vec<String>,
    },
    /// One privacy-utility chart (attack SSIM against accuracy) from the CSVs of several
    /// `veil defend` runs, and the SSIM each defence leaves at equal accuracy.
    Chart {
        /// Comma-separated CSV files written by `veil defend` runs.
        #[arg(long, value_delimiter = ',', required = true)]
        csv: Vec<PathBuf>,
        /// Comma-separated accuracy levels of the equal-accuracy table.
        #[arg(long, value_delimiter = ',', default_value = "0.99,0.98,0.97,0.95,0.9")]
        accuracy: Vec<f64>,
        /// Chart title.
        #[arg(long, default_value = "Attack SSIM left at each accuracy kept")]
        title: String,
        /// Output PNG (a CSV of the table is written beside it).
        #[arg(long, default_value = "runs/defend/compare.png")]
        png: PathBuf,
        /// Instead: draw the accuracy and SSIM per setting of one run's CSV (the chart its
        /// run wrote) to `--png` again.
        #[arg(long)]
        settings: bool,
    },
}

/// Options every shield takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// The defended model and its data.
    #[command(flatten)]
    pub target: super::attack::TargetArgs,
    /// Split layer: the device sends its output.
    #[arg(long, default_value = "pool1")]
    pub layer: String,
    /// Noise draws per setting.
    #[arg(long, default_value_t = 3)]
    pub draws: usize,
    /// Auxiliary images of the attack.
    #[arg(long, default_value_t = 5_000)]
    pub aux: usize,
    /// Victims of the attack.
    #[arg(long, default_value_t = 1_000)]
    pub victims: usize,
    /// Decoder epochs of the attack.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Output directory (CSV, PNG).
    #[arg(long, default_value = "runs/defend")]
    pub out: PathBuf,
}

/// Runs `veil defend`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (common, shield) = match args.shield {
        Shield::Obfnet {
            target,
            variant,
            count,
            obf_epochs,
            aux,
            victims,
            epochs,
            out,
        } => {
            let campaign = ObfNetCampaign {
                variant,
                count,
                epochs: obf_epochs,
                attack: AttackConfig::with_budget(aux, victims, epochs),
                out,
            };
            return obfnet(&target, &campaign);
        }
        Shield::Chart {
            csv, png, settings, ..
        } if settings => {
            let [one] = csv.as_slice() else {
                anyhow::bail!("--settings draws one run's CSV, got {}", csv.len());
            };
            let summary = veil_defense::campaign::redraw(one, &png)?;
            return crate::report(&summary, |_| format!("redrew {}", png.display()));
        }
        Shield::Chart {
            csv,
            accuracy,
            title,
            png,
            ..
        } => {
            let comparison = compare_files(&csv, &accuracy, &title, &png)?;
            return crate::report(&comparison, |x| x.markdown());
        }
        Shield::Dp {
            common,
            eps,
            clip,
            attacker,
        } => (
            common,
            campaign::Shield::Dp {
                eps,
                clip,
                attacker,
            },
        ),
        Shield::Noise {
            common,
            kind,
            scales,
        } => (common, campaign::Shield::Noise { kind, scales }),
        Shield::Dropout { common, rates } => (common, campaign::Shield::Dropout { rates }),
        Shield::Split { common, layers } => (common, campaign::Shield::Split { layers }),
    };
    sweep(common, shield)
}

/// `veil defend dp|noise|dropout|split`: one shield's campaign with a progress bar.
fn sweep(common: Common, shield: campaign::Shield) -> anyhow::Result<()> {
    let campaign = Campaign {
        shield,
        layer: common.layer,
        draws: common.draws,
        attack: AttackConfig::with_budget(common.aux, common.victims, common.epochs),
        out: common.out,
    };
    campaign.check()?;
    let (id, split, model) = common.target.load()?;
    let bar = crate::progress_bar(0, "defend", "measurements");
    let report = campaign::run(&model, &id.name(), &split, &campaign, &mut |p| match p {
        Progress::Phase(what) => bar.set_message(what.to_string()),
        Progress::Measured { done, total, row } => {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            let line = format!(
                "{} {} draw {}: accuracy {:.4}, ssim {:.4}",
                row.defence, row.label, row.draw, row.accuracy, row.ssim_mean
            );
            if bar.is_hidden() && !crate::json() {
                eprintln!("{line}");
            }
            bar.set_message(line);
        }
    })?;
    bar.finish_and_clear();
    crate::report(&report, |r| {
        format!("{} in {}", r.markdown(), campaign.out.display())
    })
}

/// `veil defend obfnet`.
fn obfnet(target: &super::attack::TargetArgs, campaign: &ObfNetCampaign) -> anyhow::Result<()> {
    campaign.check()?;
    let (id, split, classifier) = target.load()?;
    let bar = crate::progress_bar(campaign.count, "obfnet", "trained");
    let run = obfnet_campaign::run(
        &classifier,
        &id.name(),
        &split,
        campaign,
        &mut |p| match p {
            obfnet_campaign::Progress::Trained(n) => bar.set_position(n as u64),
            obfnet_campaign::Progress::Attacking => bar.set_message("attacking"),
        },
    )?;
    bar.finish_and_clear();
    crate::report(&run.to_json(), |_| run.summary())
}
