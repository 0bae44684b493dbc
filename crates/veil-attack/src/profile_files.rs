//! A privacy profile as `veil profile` runs it: the request built from the command's
//! settings ([`ProfileSettings`]), the sweep ([`crate::profile::profile`]) and the files
//! written beside each other: `<out>.json` (versioned, what the planner reads), `.csv`, `.md`
//! (DistPrivacy Table I's shape) and a heat map of SSIM per layer and `k` (`.png` and `.svg`).
//!
//! A long sweep checkpoints itself: after each layer of the fast pass and each confirmed
//! cell the profile so far is written to `<out>.checkpoint.json` ([`checkpoint_path`]), and
//! `veil profile --resume` ([`ProfileSettings::resume`]) continues from it; the checkpoint is
//! removed once the profile is written.
//!
//! Key items: [`ProfileSettings`], [`run`], [`redraw`].

use std::path::{Path, PathBuf};

use veil_data::Split;
use veil_model::{Model, TrainConfig};

use crate::profile::{
    PrivacyProfile, ProfileCell, ProfileEvent, ProfileMethod, ProfileRequest, cells_of,
    default_layers, profile,
};
use crate::{AttackConfig, AttackError, MapSelection};

/// What to profile and how hard to attack each cell.
#[derive(Clone, Debug)]
pub struct ProfileSettings {
    /// Split layers (empty: every conv, ReLU and pool layer, [`default_layers`]).
    pub layers: Vec<String>,
    /// Numbers of maps seen (empty: all of `1..=P` for small layers, a spread for large).
    pub ks: Vec<usize>,
    /// Tolerated SSIMs whose thresholds are reported, each in `[0, 1]`.
    pub taus: Vec<f64>,
    /// How cells are attacked.
    pub method: ProfileMethod,
    /// Decoder epochs (default: 5 for a chain's root, 3 per cell).
    pub epochs: Option<usize>,
    /// Fine-tuning samples per chain step.
    pub step_samples: usize,
    /// Auxiliary images.
    pub aux: usize,
    /// Victims.
    pub victims: usize,
    /// Random map subsets averaged per cell.
    pub draws: usize,
    /// Seed.
    pub seed: u64,
    /// Re-attack the cells the thresholds rest on at full strength (the confirm pass).
    pub confirm: bool,
    /// Confirm pass: re-attack a deciding one-map cell on every map and keep the worst.
    pub every_map: bool,
    /// A checkpoint (or any profile JSON of this model) to continue from: its layers are not
    /// attacked again by the fast pass, and its confirmed cells stay confirmed.
    pub resume: Option<PathBuf>,
}

impl ProfileSettings {
    /// Checks what needs no model (taus in `[0, 1]`): cheap, so callers check before loading
    /// or training anything.
    pub fn check(&self) -> Result<(), AttackError> {
        match self.taus.iter().find(|t| !(0.0..=1.0).contains(*t)) {
            Some(t) => Err(AttackError::Invalid(format!(
                "--taus must be SSIM values in [0, 1], got {t}"
            ))),
            None => Ok(()),
        }
    }

    /// The sweep's request for `model` on `dataset`, checked (taus in `[0, 1]`, layers exist,
    /// a resumed profile measured the same way).
    pub fn request(&self, model: &Model, dataset: &str) -> Result<ProfileRequest, AttackError> {
        self.check()?;
        let layers = match self.layers.is_empty() {
            true => default_layers(model),
            false => self.layers.clone(),
        };
        for l in &layers {
            model.spec().split_index(l)?;
        }
        let epochs = match self.method {
            ProfileMethod::Chain => 5,
            ProfileMethod::PerCell => 3,
        };
        Ok(ProfileRequest {
            layers,
            ks: self.ks.clone(),
            taus: self.taus.clone(),
            attack: AttackConfig {
                layer: String::new(),
                maps: None,
                selection: MapSelection::Random,
                draws: self.draws,
                aux_samples: self.aux,
                victims: self.victims,
                train: TrainConfig {
                    epochs: self.epochs.unwrap_or(epochs),
                    seed: self.seed,
                    ..AttackConfig::default().train
                },
                ..AttackConfig::default()
            },
            method: self.method,
            step_samples: self.step_samples,
            confirm: self.confirm.then(|| AttackConfig {
                selection: MapSelection::Random,
                draws: self.draws,
                victims: self.victims,
                train: TrainConfig {
                    seed: self.seed,
                    ..AttackConfig::default().train
                },
                ..AttackConfig::default()
            }),
            every_map: self.every_map,
            resume: Vec::new(),
            resume_seconds: (0.0, 0.0),
        })
        .and_then(|req| match &self.resume {
            Some(path) => resume_from(path, (model, dataset), req),
            None => Ok(req),
        })
    }
}

/// `req` continuing from the profile at `path`: its cells of `req`'s layers and its
/// seconds. Refused when it profiles another model or dataset, was measured with other
/// settings (its cells would then be reported under settings they were not measured with),
/// or holds other cells than `req` asks of a layer.
fn resume_from(
    path: &Path,
    (model, dataset): (&Model, &str),
    mut req: ProfileRequest,
) -> Result<ProfileRequest, AttackError> {
    let before = read_profile(path)?;
    let differs = |what: &str, was: String, now: String| {
        AttackError::Invalid(format!(
            "{}: measured with {what} {was}, this run asks for {now}; resume with the same settings",
            path.display()
        ))
    };
    let (a, b) = (&before.attack, &req.attack);
    let steps = match req.method {
        ProfileMethod::Chain => req.step_samples,
        ProfileMethod::PerCell => 0,
    };
    let settings = [
        (
            "model",
            before.table.model.clone(),
            model.spec().name.clone(),
        ),
        ("dataset", before.table.dataset.clone(), dataset.to_string()),
        (
            "--aux",
            a.aux_samples.to_string(),
            b.aux_samples.to_string(),
        ),
        ("--victims", a.victims.to_string(), b.victims.to_string()),
        ("--draws", a.draws.to_string(), b.draws.to_string()),
        (
            "--epochs",
            a.train.epochs.to_string(),
            b.train.epochs.to_string(),
        ),
        ("--seed", a.train.seed.to_string(), b.train.seed.to_string()),
        (
            "--method",
            format!("{:?}", before.method),
            format!("{:?}", req.method),
        ),
        (
            "--step-samples",
            before.step_samples.to_string(),
            steps.to_string(),
        ),
        (
            "a confirm pass, every map",
            format!("{} {}", before.confirm.is_some(), before.every_map),
            format!(
                "{} {}",
                req.confirm.is_some(),
                req.every_map && req.confirm.is_some()
            ),
        ),
    ];
    for (what, was, now) in settings {
        if was != now {
            return Err(differs(what, was, now));
        }
    }
    let cells: Vec<ProfileCell> = before
        .table
        .entries
        .into_iter()
        .filter(|c| req.layers.contains(&c.layer))
        .collect();
    for layer in &req.layers {
        let p = maps_of(model, layer);
        let mut held: Vec<(usize, usize)> = cells
            .iter()
            .filter(|c| &c.layer == layer)
            .map(|c| (c.k, c.total_maps))
            .collect();
        held.sort_unstable();
        let wanted: Vec<(usize, usize)> =
            cells_of(p, &req.ks).into_iter().map(|k| (k, p)).collect();
        if !held.is_empty() && held != wanted {
            return Err(differs(
                &format!("{layer} cells (k, maps)"),
                format!("{held:?}"),
                format!("{wanted:?}"),
            ));
        }
    }
    req.resume = cells;
    req.resume_seconds = (before.seconds, before.confirm_seconds);
    Ok(req)
}

/// Cells the request will measure on `model` (for a progress bar).
pub fn cell_count(model: &Model, request: &ProfileRequest) -> usize {
    request
        .layers
        .iter()
        .map(|l| cells_of(maps_of(model, l), &request.ks).len())
        .sum()
}

/// Feature maps of `layer`'s output (1 for a flat layer or an unknown name).
fn maps_of(model: &Model, layer: &str) -> usize {
    model
        .spec()
        .layer_index(layer)
        .ok()
        .and_then(|i| model.shapes()[i + 1].as_chw())
        .map_or(1, |s| s.0)
}

/// Profiles `model` on `data` (auxiliary images from the training split, victims from the
/// test split) and writes `out` (JSON) with its `.csv`, `.md` and heat map beside it,
/// checkpointing to [`checkpoint_path`] on the way (removed at the end).
pub fn run(
    model: &Model,
    dataset: &str,
    data: &Split,
    request: &ProfileRequest,
    out: &Path,
    on_event: &mut dyn FnMut(ProfileEvent<'_>),
) -> Result<PrivacyProfile, AttackError> {
    let checkpoint = checkpoint_path(out);
    create_parent(out)?;
    let mut failed: Option<AttackError> = None;
    let mut events = |event: ProfileEvent<'_>| {
        if let ProfileEvent::Checkpoint(so_far) = event
            && let Err(e) = write_checkpoint(so_far, &checkpoint)
        {
            failed.get_or_insert(e);
        }
        on_event(event);
    };
    let prof = profile(
        model,
        dataset,
        &data.train,
        &data.test,
        request,
        &mut events,
    )?;
    write_files(&prof, out)?;
    if checkpoint.exists() {
        std::fs::remove_file(&checkpoint).map_err(|e| write_error(&checkpoint, &e))?;
    }
    // The profile is written; a checkpoint that could not be is reported all the same.
    match failed {
        Some(e) => Err(e),
        None => Ok(prof),
    }
}

/// Where [`run`] checkpoints a profile bound for `out`: `<out>` with the extension
/// `checkpoint.json`.
pub fn checkpoint_path(out: &Path) -> PathBuf {
    out.with_extension("checkpoint.json")
}

/// Reads a profile JSON (the table's checks, then the measurement settings around it).
fn read_profile(json: &Path) -> Result<PrivacyProfile, AttackError> {
    let text = std::fs::read_to_string(json).map_err(|source| AttackError::Read {
        path: json.display().to_string(),
        source,
    })?;
    veil_spec::profile::Profile::from_json_str_unfinished(&text)?;
    serde_json::from_str(&text)
        .map_err(|e| AttackError::Invalid(format!("{}: not a profile: {e}", json.display())))
}

/// Reads the profile JSON at `json` and writes its files again at `out` (`veil profile
/// --redraw`): for a new chart style without re-running the attacks. The file must parse as
/// a profile of this version.
pub fn redraw(json: &Path, out: &Path) -> Result<PrivacyProfile, AttackError> {
    let prof = read_profile(json)?;
    write_files(&prof, out)?;
    Ok(prof)
}

fn write_error(path: &Path, e: &std::io::Error) -> AttackError {
    AttackError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn create_parent(out: &Path) -> Result<(), AttackError> {
    match out.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|e| write_error(dir, &e)),
        None => Ok(()),
    }
}

/// Writes `prof` at `path` whole or not at all (a temporary file renamed over it), so an
/// interrupted run leaves the previous checkpoint readable.
fn write_checkpoint(prof: &PrivacyProfile, path: &Path) -> Result<(), AttackError> {
    let tmp = path.with_extension("tmp");
    write_json(prof, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| write_error(path, &e))
}

/// Writes `prof` as JSON at `path`.
fn write_json(prof: &PrivacyProfile, path: &Path) -> Result<(), AttackError> {
    let json = serde_json::to_string_pretty(prof)
        .map_err(|e| AttackError::Invalid(format!("encoding the profile: {e}")))?;
    std::fs::write(path, json).map_err(|e| write_error(path, &e))
}

/// Writes `prof` as `out` (JSON) and its `.csv`, `.md`, `.png` and `.svg` siblings.
pub fn write_files(prof: &PrivacyProfile, out: &Path) -> Result<(), AttackError> {
    create_parent(out)?;
    write_json(prof, out)?;
    for (ext, text) in [("csv", prof.to_csv()), ("md", prof.to_markdown())] {
        let path = out.with_extension(ext);
        std::fs::write(&path, text).map_err(|e| write_error(&path, &e))?;
    }
    heat_map(prof, &out.with_extension("png"))
}

/// SSIM per layer (rows) and `k` (columns); blank where a layer has fewer maps.
fn heat_map(prof: &PrivacyProfile, png: &Path) -> Result<(), AttackError> {
    let mut ks: Vec<usize> = prof.table.entries.iter().map(|e| e.k).collect();
    ks.sort_unstable();
    ks.dedup();
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
    let title = format!(
        "SSIM of the inversion attack: {} / {}",
        prof.table.model, prof.table.dataset
    );
    let columns: Vec<String> = ks.iter().map(|k| k.to_string()).collect();
    veil_plot::heat_map(png, &title, &prof.table.layers, &columns, &cells)?;
    Ok(())
}
