//! A privacy profile on a small synthetic setting: monotone in `k` for both methods, and the
//! confirm pass re-attacks exactly the cells the thresholds rest on, never lowering a cell.

mod common;

use veil_attack::profile::{PrivacyProfile, ProfileEvent, ProfileMethod, ProfileRequest, profile};
use veil_attack::{AttackConfig, MapSelection};
use veil_model::{Model, TrainConfig};
use veil_spec::profile::{ProfileCell, deciding_cells, derive_thresholds};

/// The tests here compare whole profile runs with each other, so they take turns. Two trainings
/// running at once in one process do not give the same bits as either alone: seen in session
/// 18 as `every_map_confirms_one_map_cells_at_their_worst_map` failing in 1 of 8 concurrent
/// runs at 49c96e4 and 2 of 6 at its successor, never with `--test-threads=1`. Suspected
/// (not shown): burn-flex's parallel reductions sum in the order rayon splits the work, which
/// depends on what else the pool is running.
fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn setting() -> (Model, veil_data::Split) {
    common::trained_lenet(900, 8, 6)
}

fn attack(epochs: usize) -> AttackConfig {
    AttackConfig {
        selection: MapSelection::Random,
        draws: 1,
        aux_samples: 600,
        victims: 60,
        train: TrainConfig {
            epochs,
            batch_size: 32,
            seed: 2,
            ..TrainConfig::default()
        },
        ..AttackConfig::default()
    }
}

fn request(method: ProfileMethod, taus: Vec<f64>, confirm: bool) -> ProfileRequest {
    ProfileRequest {
        layers: vec!["conv1".into(), "pool1".into()],
        ks: Vec::new(),
        taus,
        attack: attack(1),
        method,
        step_samples: 200,
        confirm: confirm.then(|| attack(3)),
        every_map: false,
        resume: Vec::new(),
        resume_seconds: (0.0, 0.0),
    }
}

/// The profile of `req` on the synthetic setting.
fn run(model: &Model, split: &veil_data::Split, req: &ProfileRequest) -> PrivacyProfile {
    profile(
        model,
        "synthetic",
        &split.train,
        &split.test,
        req,
        &mut |_| {},
    )
    .expect("profile")
}

fn assert_monotone(cells: &[ProfileCell]) {
    for a in cells {
        for b in cells {
            if a.layer == b.layer && a.k < b.k {
                assert!(
                    a.ssim_mean <= b.ssim_mean,
                    "{} k={} {} > k={} {}",
                    a.layer,
                    a.k,
                    a.ssim_mean,
                    b.k,
                    b.ssim_mean
                );
            }
        }
    }
}

#[test]
fn profiles_are_monotone_in_k() {
    let _turn = take_turn();
    let (model, split) = setting();
    for method in [ProfileMethod::Chain, ProfileMethod::PerCell] {
        let prof = profile(
            &model,
            "synthetic",
            &split.train,
            &split.test,
            &request(method, vec![0.5], false),
            &mut |_| {},
        )
        .expect("profile");
        assert_eq!(prof.table.entries.len(), 12);
        assert_eq!(prof.confirmed_cells, 0);
        assert_monotone(&prof.table.entries);
    }
}

#[test]
fn the_confirm_pass_covers_every_deciding_cell() {
    let _turn = take_turn();
    let (model, split) = setting();
    let fast = run(
        &model,
        &split,
        &request(ProfileMethod::Chain, vec![], false),
    );
    // Taus between the measured cells, so that thresholds rest on some of them.
    let mut ssims: Vec<f64> = fast.table.entries.iter().map(|c| c.ssim_mean).collect();
    ssims.sort_by(f64::total_cmp);
    let taus = vec![ssims[2] + 1e-9, ssims[ssims.len() / 2] + 1e-9, 1.0];
    let confirmed = run(
        &model,
        &split,
        &request(ProfileMethod::Chain, taus.clone(), true),
    );
    let cells = &confirmed.table.entries;
    assert!(confirmed.confirmed_cells > 0);
    assert_eq!(
        confirmed.confirmed_cells,
        cells.iter().filter(|c| c.confirmed).count()
    );
    assert_monotone(cells);
    let layers = &confirmed.table.layers;
    for &tau in &taus {
        let t = derive_thresholds(layers, cells, tau);
        assert_eq!(confirmed.table.thresholds_at(tau).expect("tau"), t);
        for (layer, k) in deciding_cells(layers, cells, &t) {
            let cell = cells
                .iter()
                .find(|c| c.layer == layer && c.k == k)
                .expect("cell");
            assert!(
                cell.confirmed,
                "{layer} k={k} decides tau {tau} unconfirmed"
            );
        }
    }
    // Same seed, same fast pass: a confirmed cell never scores below its fast value.
    for c in cells.iter().filter(|c| c.confirmed) {
        let before = fast
            .table
            .entries
            .iter()
            .find(|f| f.layer == c.layer && f.k == c.k)
            .expect("fast cell");
        assert!(c.ssim_mean >= before.ssim_mean, "{} k={}", c.layer, c.k);
    }
}

/// With `every_map`, a deciding one-map cell is re-attacked on each map and keeps the worst:
/// never below the confirm pass on its one random map (the same attack on one of the maps).
#[test]
fn every_map_confirms_one_map_cells_at_their_worst_map() {
    let _turn = take_turn();
    let (model, split) = setting();
    let fast = run(
        &model,
        &split,
        &request(ProfileMethod::Chain, vec![], false),
    );
    let lowest_one_map = fast
        .table
        .entries
        .iter()
        .filter(|c| c.k == 1)
        .map(|c| c.ssim_mean)
        .fold(f64::INFINITY, f64::min);
    let taus = vec![lowest_one_map + 1e-9];
    let run = |every_map: bool| {
        let req = ProfileRequest {
            every_map,
            ..request(ProfileMethod::Chain, taus.clone(), true)
        };
        profile(
            &model,
            "synthetic",
            &split.train,
            &split.test,
            &req,
            &mut |_| {},
        )
        .expect("profile")
    };
    let (random, worst) = (run(false), run(true));
    assert!(worst.every_map && !random.every_map);
    let mut compared = 0;
    for w in worst
        .table
        .entries
        .iter()
        .filter(|c| c.k == 1 && c.confirmed)
    {
        if let Some(r) = random
            .table
            .entries
            .iter()
            .find(|r| r.layer == w.layer && r.k == 1 && r.confirmed)
        {
            assert!(
                w.ssim_mean >= r.ssim_mean - 1e-9,
                "{}: {} < {}",
                w.layer,
                w.ssim_mean,
                r.ssim_mean
            );
            compared += 1;
        }
    }
    assert!(compared > 0, "no one-map cell decided a threshold");
}

/// A sweep checkpoints after each layer and each confirmed cell; resuming from a checkpoint
/// attacks only what it lacks, and resuming from a finished profile attacks nothing.
#[test]
fn a_resumed_sweep_attacks_only_what_its_checkpoint_lacks() {
    let _turn = take_turn();
    let (model, split) = setting();
    let req = request(ProfileMethod::Chain, vec![0.4, 0.8], true);
    let mut checkpoints: Vec<PrivacyProfile> = Vec::new();
    let full = profile(
        &model,
        "synthetic",
        &split.train,
        &split.test,
        &req,
        &mut |e| {
            if let ProfileEvent::Checkpoint(p) = e {
                checkpoints.push(p.clone());
            }
        },
    )
    .expect("profile");
    assert_eq!(
        checkpoints.len(),
        2 + full.confirmed_cells,
        "one per layer and confirm"
    );
    let after_conv1 = &checkpoints[0];
    assert!(after_conv1.table.entries.iter().all(|c| c.layer == "conv1"));
    let last = checkpoints.last().expect("a checkpoint");
    assert_eq!(last.table.entries, full.table.entries);
    // Resumed after conv1: only pool1's cells are attacked by the fast pass.
    let resume = |from: &PrivacyProfile| {
        let req = ProfileRequest {
            resume: from.table.entries.clone(),
            resume_seconds: (from.seconds, from.confirm_seconds),
            ..req.clone()
        };
        let (mut cells, mut confirms) = (Vec::new(), 0);
        let p = profile(
            &model,
            "synthetic",
            &split.train,
            &split.test,
            &req,
            &mut |e| match e {
                ProfileEvent::Cell(c) => cells.push(c.layer.clone()),
                ProfileEvent::Confirmed(_) => confirms += 1,
                _ => {}
            },
        )
        .expect("resumed");
        (p, cells, confirms)
    };
    let (p, cells, _) = resume(after_conv1);
    assert!(
        !cells.is_empty() && cells.iter().all(|l| l == "pool1"),
        "{cells:?}"
    );
    assert!(p.seconds >= after_conv1.seconds);
    assert_monotone(&p.table.entries);
    // Resumed from the finished profile: nothing left to attack.
    let (p, cells, confirms) = resume(&full);
    assert!(cells.is_empty() && confirms == 0, "{cells:?} {confirms}");
    assert_eq!(p.table.entries, full.table.entries);
    assert_eq!(p.table.thresholds, full.table.thresholds);
}
