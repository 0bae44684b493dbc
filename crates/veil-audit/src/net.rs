//! `veil net audit`: what each helper of a running deployment really observes, and how well
//! the spear reconstructs the images from it.
//!
//! 1. A coordinator and a fleet (source `cam0`, helpers `h0..`) start as processes over mutual
//!    TLS ([`veil_net::bench::start`]), every helper recording its views
//!    ([`veil_net::views`]). When the planner cannot place the model at tau the audit ends
//!    there and says so (`placed: false`, no helpers).
//! 2. `aux` auxiliary images (training split) then `victims` test images go through the
//!    deployment one at a time; every answer is compared with single-process inference. A
//!    request that needed a second attempt (a re-plan) makes the run unauditable.
//! 3. Each helper's log is lined up per request ([`veil_net::views::assemble`]): the attacker
//!    is the helper itself, training on the views the deployment gave it of the auxiliary
//!    images (which the attacker knows) and reconstructing the victims from theirs. Every
//!    reading of [`crate::views::readings`] is attacked; the strongest is the helper's
//!    leakage, within tau when its SSIM mean is at most `tau + 2` standard errors. With a
//!    [`Confirm`] pass, a helper found near tau is attacked again at full strength
//!    ([`crate::helper`]).
//!
//! The request ids the helpers see are the source's attempt ids: one attempt per request,
//! numbered from 1 in the order sent, so attempt `a` carries input `a - 1`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use veil_attack::AttackConfig;
use veil_data::{Dataset, Split};
use veil_model::Model;
use veil_net::bench::{FleetBench, start};
use veil_net::drive::drive;
use veil_net::load::{LoadConfig, RequestRecord};
use veil_net::views::{DeviceViews, Seen, assemble, read_log};
use veil_spec::ModelSpec;
use veil_spec::lower::LoweredOp;

use crate::AuditError;
pub use crate::helper::Confirm;
use crate::helper::attack_helper;
pub use crate::report::{HelperAudit, NetAuditReport, ReadingScore, SawRow};

/// What to audit.
#[derive(Clone, Debug)]
pub struct NetAudit {
    /// The deployment (program, model, weights, helpers, tau, partial sums, profile); its
    /// `record_views` is set by the audit.
    pub bench: FleetBench,
    /// Dataset name (for the report).
    pub dataset: String,
    /// Auxiliary images sent (from the training split).
    pub aux: usize,
    /// Victims sent and scored (from the test split).
    pub victims: usize,
    /// The spear's decoder training (epochs, batch, lr, seed); layer and maps are unused.
    pub attack: AttackConfig,
    /// A second, stronger attack on the helpers the first found near tau (none: one pass).
    pub confirm: Option<Confirm>,
    /// Directory of the report, the grids and the view logs.
    pub out: PathBuf,
}

/// Most images an audit sends (auxiliary and victims together).
pub const MAX_AUDIT_IMAGES: usize = 200_000;

/// Runs `audit` of `model` (the weights the fleet runs) on `data`; `on_request` hears each
/// answered request, `progress` each phase.
pub fn run(
    audit: &NetAudit,
    model: &Model,
    data: &Split,
    on_request: impl Fn() + Send + Sync + 'static,
    progress: &mut dyn FnMut(&str),
) -> Result<NetAuditReport, AuditError> {
    let (aux, victims) = take_images(audit, data)?;
    std::fs::create_dir_all(audit.out.join("views")).map_err(|e| write_err(&audit.out, e))?;
    let bench = FleetBench {
        record_views: Some(audit.out.join("views")),
        rate: 0.0,
        ..audit.bench.clone()
    };
    let mut report = NetAuditReport {
        model: model.spec().name.clone(),
        dataset: audit.dataset.clone(),
        tau: bench.tau,
        partial_sums: bench.partial_sums.name().to_string(),
        privacy_rule: bench
            .privacy_rule
            .unwrap_or(bench.partial_sums.privacy_rule())
            .name()
            .to_string(),
        helpers_started: bench.helpers,
        placed: false,
        reason: None,
        owners: serde_json::Value::Null,
        max_ssim: None,
        within_tau: true,
        helpers: Vec::new(),
        aux: aux.len(),
        victims: victims.len(),
        argmax_agree: 0,
        max_logit_diff: 0.0,
        epochs: audit.attack.train.epochs,
        confirm_epochs: audit.confirm.as_ref().map(|c| c.attack.train.epochs),
        confirm_margin: audit.confirm.as_ref().map(|c| c.margin),
        seed: audit.attack.train.seed,
        fleet_s: 0.0,
        attack_s: 0.0,
    };
    progress("starting the deployment");
    let started_at = Instant::now();
    let Some((names, records)) = run_fleet(&bench, &aux, &victims, &mut report, on_request)? else {
        return Ok(report);
    };
    report.fleet_s = started_at.elapsed().as_secs_f64();
    check_answers(model, &aux, &victims, &records, &mut report)?;
    let attack_at = Instant::now();
    for (device, name) in names.iter().enumerate() {
        progress(&format!("attacking {name}'s views"));
        let log = audit.out.join("views").join(format!("{name}.views"));
        let views = helper_views(&log, aux.len() + victims.len())?;
        let images = (&aux, &victims);
        let fresh = || HelperAudit::new(name, device, saw_rows(model.spec(), &views));
        let mut h = attack_helper(&audit.attack, (report.tau, false), fresh(), &views, images)?;
        if let Some(c) = audit
            .confirm
            .as_ref()
            .filter(|c| c.wants(report.tau, h.audit.ssim_mean))
        {
            progress(&format!("confirming {name} at full strength"));
            let strong = attack_helper(&c.attack, (report.tau, true), fresh(), &views, images)?;
            h.merge(strong, report.tau);
        }
        if let Some(b) = &h.best {
            let grid = audit.out.join(format!("{name}.png"));
            veil_attack::grid::save_victim_grid(&grid, &victims, &b.examples).map_err(
                |source| AuditError::Attack {
                    helper: name.clone(),
                    source,
                },
            )?;
            h.audit.grid = Some(grid);
        }
        report.helpers.push(h.audit);
    }
    report.attack_s = attack_at.elapsed().as_secs_f64();
    report.max_ssim = report
        .helpers
        .iter()
        .filter_map(|h| h.ssim_mean)
        .reduce(f64::max);
    report.within_tau = report.helpers.iter().all(|h| h.within_tau);
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| AuditError::Invalid(format!("encoding the report: {e}")))?;
    let path = audit.out.join("audit.json");
    std::fs::write(&path, json).map_err(|e| write_err(&path, e))?;
    Ok(report)
}

fn write_err(path: &Path, source: std::io::Error) -> AuditError {
    AuditError::Write {
        path: path.display().to_string(),
        source,
    }
}

/// The auxiliary and victim images of `audit` (checked against the data and the limit).
fn take_images(audit: &NetAudit, data: &Split) -> Result<(Dataset, Dataset), AuditError> {
    if audit.aux == 0 || audit.victims == 0 || audit.aux + audit.victims > MAX_AUDIT_IMAGES {
        return Err(AuditError::Invalid(format!(
            "--aux {} and --victims {}: each at least 1, together at most {MAX_AUDIT_IMAGES}",
            audit.aux, audit.victims
        )));
    }
    let (aux, victims) = (data.train.take(audit.aux), data.test.take(audit.victims));
    if aux.len() < 2 {
        return Err(AuditError::Invalid(
            "the training split needs at least two auxiliary images".into(),
        ));
    }
    Ok((aux, victims))
}

/// The helpers' names in device order and one record per request.
type FleetRun = (Vec<String>, Vec<RequestRecord>);

/// Starts the fleet, and when the model is placed sends the auxiliary images then the
/// victims, one at a time; the helpers' names in device order and one record per request.
/// `None` (with `report.reason`) when nothing was placed.
fn run_fleet(
    bench: &FleetBench,
    aux: &Dataset,
    victims: &Dataset,
    report: &mut NetAuditReport,
    on_request: impl Fn() + Send + Sync + 'static,
) -> Result<Option<FleetRun>, AuditError> {
    let mut started = start(bench)?;
    let Some(plan) = started.placement()? else {
        report.reason = started.first_plan["reason"].as_str().map(str::to_string);
        return Ok(None);
    };
    report.placed = true;
    report.owners = plan["owners"].clone();
    let names: Vec<String> = plan["helpers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let source_addr = plan["source_addr"]
        .as_str()
        .ok_or_else(|| AuditError::Invalid("the coordinator's plan names no source".into()))?;
    let inputs: Vec<Vec<f32>> = (0..aux.len())
        .map(|i| aux.sample(i).to_vec())
        .chain((0..victims.len()).map(|i| victims.sample(i).to_vec()))
        .collect();
    let cfg = LoadConfig {
        keys: started.keys.clone(),
        source: "cam0".into(),
        source_addr: source_addr.to_string(),
        rate: 0.0,
        requests: inputs.len(),
        timeout: Duration::from_secs(60),
        seed: 1,
    };
    let driven = drive(&cfg, &inputs, None, None, on_request)?;
    drop(started);
    if let Some(r) = driven
        .records
        .iter()
        .find(|r| r.outcome != "answered" || r.attempts != 1)
    {
        return Err(AuditError::Invalid(format!(
            "request {} was {} after {} attempts ({}): the views no longer line up with the \
             images; run the audit again",
            r.request,
            r.outcome,
            r.attempts,
            r.reason.as_deref().unwrap_or("re-planned")
        )));
    }
    Ok(Some((names, driven.records)))
}

/// Compares every answer with single-process inference (in batches of 1,000).
fn check_answers(
    model: &Model,
    aux: &Dataset,
    victims: &Dataset,
    records: &[RequestRecord],
    report: &mut NetAuditReport,
) -> Result<(), AuditError> {
    let all: Vec<&[f32]> = (0..aux.len())
        .map(|i| aux.sample(i))
        .chain((0..victims.len()).map(|i| victims.sample(i)))
        .collect();
    for (chunk, recs) in all.chunks(1000).zip(records.chunks(1000)) {
        let want = model.logits(&chunk.concat())?;
        let classes = want.len() / chunk.len();
        for (w, r) in want.chunks(classes).zip(recs) {
            if r.logits.len() != classes {
                return Err(AuditError::Invalid(format!(
                    "request {} answered {} logits, expected {classes}",
                    r.request,
                    r.logits.len()
                )));
            }
            report.argmax_agree += usize::from(argmax(w) == argmax(&r.logits));
            for (a, b) in w.iter().zip(&r.logits) {
                report.max_logit_diff = report.max_logit_diff.max(f64::from((a - b).abs()));
            }
        }
    }
    Ok(())
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv { (i, x) } else { (bi, bv) }
        })
        .0
}

/// A helper's log lined up per request; it must cover attempts `1..=n` (or nothing at all: a
/// helper the plan gave no work).
fn helper_views(log: &Path, n: usize) -> Result<DeviceViews, AuditError> {
    let views = match log.exists() {
        true => assemble(read_log(log)?)?,
        false => assemble(Vec::new())?,
    };
    let expected =
        views.requests.is_empty() || views.requests.iter().copied().eq((1..=n).map(|a| a as u64));
    if !expected {
        return Err(AuditError::Invalid(format!(
            "{}: views of {} requests, expected attempts 1..={n}",
            log.display(),
            views.requests.len()
        )));
    }
    Ok(views)
}

/// What a helper saw, grouped by kind and stage.
fn saw_rows(spec: &ModelSpec, views: &DeviceViews) -> Vec<SawRow> {
    use std::collections::{BTreeMap, BTreeSet};
    // Per (kind, stage): channels, senders, values, values of one channel.
    type Group = (BTreeSet<usize>, BTreeSet<usize>, usize, usize);
    let mut groups: BTreeMap<(Seen, usize), Group> = BTreeMap::new();
    for p in &views.parts {
        let g = groups
            .entry((p.seen, p.stage))
            .or_insert_with(|| (BTreeSet::new(), BTreeSet::new(), 0, p.len));
        g.0.insert(p.channel);
        g.1.insert(p.from);
        g.2 += p.len;
    }
    groups
        .into_iter()
        .map(
            |((seen, stage), (channels, senders, values, per_channel))| SawRow {
                seen,
                layer: stage_layer(spec, stage, seen == Seen::Finished),
                channels: channels.len(),
                senders: senders.len(),
                values,
                per_channel,
            },
        )
        .collect()
}

/// The name of compute stage `stage`'s layer (the `stage`-th linear map of the spec's one
/// lowering, as the runtime deploys it), or with `finished` the last channel-wise layer
/// applied after it (the layer itself when none).
fn stage_layer(spec: &ModelSpec, stage: usize, finished: bool) -> String {
    let Ok(ops) = veil_spec::lower::lower(spec) else {
        return format!("stage {stage}");
    };
    let mut name = None;
    let mut linear = 0;
    for op in &ops {
        match op {
            LoweredOp::Linear { layer, .. } => {
                if linear > stage {
                    break;
                }
                if linear == stage {
                    name = Some(layer);
                }
                linear += 1;
            }
            LoweredOp::Relu { layer, .. } | LoweredOp::Pool { layer, .. }
                if finished && name.is_some() =>
            {
                name = Some(layer);
            }
            _ => {}
        }
    }
    name.map_or_else(|| format!("stage {stage}"), String::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_named_by_the_runtime_s_lowering() {
        let spec = veil_spec::zoo::lenet5();
        let names: Vec<(String, String)> = (0..5)
            .map(|s| (stage_layer(&spec, s, false), stage_layer(&spec, s, true)))
            .collect();
        let want = [
            ("conv1", "pool1"),
            ("conv2", "pool2"),
            ("fc1", "relu3"),
            ("fc2", "relu4"),
            ("fc3", "fc3"),
        ];
        for ((a, b), (x, y)) in names.iter().zip(want) {
            assert_eq!((a.as_str(), b.as_str()), (x, y));
        }
        assert_eq!(stage_layer(&spec, 9, true), "stage 9");
    }
}
