//! `veil net audit`: a deployment run for real with every helper recording what it observes,
//! each helper's views attacked with the spear and scored against tau (`veil-audit`).

use std::path::PathBuf;

use anyhow::Context;
use veil_model::Model;
use veil_net::bench::FleetBench;
use veil_net::cluster::PartialSums;

/// `veil net audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Model (zoo name).
    #[arg(long, default_value = "lenet5")]
    pub model: String,
    /// Weight file (default `runs/<model>-<dataset>/model.safetensors`, from `veil train`).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Dataset: auxiliary images from its training split, victims from its test split.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Data directory (defaults to $VEIL_DATA).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Helpers (one process each).
    #[arg(long, default_value_t = 8)]
    pub helpers: usize,
    /// Tolerated attack SSIM of the plan.
    #[arg(long, default_value_t = 0.6)]
    pub tau: f64,
    /// The coordinator's privacy rule (default: its partial-sum mode's; `paper` for
    /// comparison only).
    #[arg(long, value_enum)]
    pub privacy_rule: Option<veil_plan::PrivacyRule>,
    /// How partial sums travel (the coordinator's `--partial-sums`).
    #[arg(long, value_enum, default_value_t = PartialSums::Masked)]
    pub partial_sums: PartialSums,
    /// Privacy profile for the coordinator (`veil profile` JSON; models without a built-in one).
    #[arg(long, value_name = "JSON")]
    pub profile: Option<PathBuf>,
    /// Auxiliary images sent through the deployment (the spear's training set).
    #[arg(long, default_value_t = veil_attack::DEFAULT_AUX)]
    pub aux: usize,
    /// Victims sent and reconstructed.
    #[arg(long, default_value_t = 1000)]
    pub victims: usize,
    /// Decoder epochs.
    #[arg(long, default_value_t = 10, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    pub epochs: usize,
    /// Confirm pass: attack every helper the first pass puts within `--confirm-margin` of tau
    /// (or above it) again with this many epochs; the stronger attack counts (none: one pass).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    pub confirm_epochs: Option<usize>,
    /// Confirm pass: how far below tau a first-pass SSIM still gets a second attack.
    #[arg(long, default_value_t = 0.15, requires = "confirm_epochs")]
    pub confirm_margin: f64,
    /// Seed of the decoders.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory (report, grids, view logs).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `veil net audit`.
pub fn audit(a: &AuditArgs) -> anyhow::Result<()> {
    let dataset: veil_data::DatasetId = a.dataset.parse()?;
    let weights = match &a.weights {
        Some(w) => w.clone(),
        None => super::default_weights(&a.model, &dataset)?,
    };
    let out = match a.out.clone() {
        Some(out) => out,
        // Named by the spec (a path or an ONNX file as --model stays inside runs/).
        None => veil_model::session::default_out_dir(
            &format!("net-audit-{}", super::resolve_spec(&a.model)?.name),
            &format!("tau{}-{}", a.tau, a.partial_sums.name()),
        ),
    };
    if !(0.0..=1.0).contains(&a.confirm_margin) {
        anyhow::bail!("--confirm-margin {}: expected 0 to 1", a.confirm_margin);
    }
    let mut attack = veil_attack::AttackConfig::with_budget(a.aux, a.victims, a.epochs);
    attack.train.seed = a.seed;
    let confirm = a.confirm_epochs.map(|epochs| {
        let mut strong = veil_attack::AttackConfig::with_budget(a.aux, a.victims, epochs);
        strong.train.seed = a.seed;
        veil_audit::net::Confirm {
            attack: strong,
            margin: a.confirm_margin,
        }
    });
    let audit = veil_audit::net::NetAudit {
        bench: FleetBench {
            program: std::env::current_exe().context("locating the veil binary")?,
            model: a.model.clone(),
            weights: weights.clone(),
            helpers: a.helpers,
            tau: a.tau,
            rate: 0.0,
            attempt_timeout_ms: 30_000,
            emulate: false,
            partial_sums: a.partial_sums,
            profile: a.profile.clone(),
            privacy_rule: a.privacy_rule,
            fault: None,
            trace: None,
            record_views: None,
        },
        dataset: a.dataset.clone(),
        aux: a.aux,
        victims: a.victims,
        attack,
        confirm,
        out,
    };
    audit.bench.validate()?;
    let model = Model::load(&weights)
        .with_context(|| format!("loading {} (train it first)", weights.display()))?;
    let (_, split) = super::load_dataset(&a.dataset, a.data.as_deref())?;
    let n = a.aux.min(split.train.len()) + a.victims.min(split.test.len());
    let bar = crate::progress_bar(n, "net audit", "requests");
    let done = bar.clone();
    let phase = bar.clone();
    let report = veil_audit::net::run(&audit, &model, &split, move || done.inc(1), &mut |m| {
        phase.set_message(m.to_string())
    })?;
    bar.finish_and_clear();
    crate::report(&report, veil_audit::net::NetAuditReport::text)
}
