//! The attack on a small synthetic setting: it learns something, and hiding maps does not
//! make it stronger.

use veil_attack::{AttackConfig, MapSelection, attack};
use veil_model::{Model, TrainConfig};

fn setting() -> (Model, veil_data::Split) {
    let split = veil_data::synthetic::mnist_like(1200, 11);
    let model = Model::init(veil_spec::zoo::lenet5(), 4).expect("init");
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 32,
        ..TrainConfig::default()
    };
    let (model, _) =
        veil_model::train(model, &split.train, None, &cfg, &mut |_| {}).expect("train");
    (model, split)
}

fn cfg(layer: &str, maps: Option<usize>, selection: MapSelection) -> AttackConfig {
    AttackConfig {
        layer: layer.into(),
        maps,
        selection,
        draws: 2,
        aux_samples: 1000,
        victims: 200,
        train: TrainConfig {
            epochs: 3,
            batch_size: 32,
            seed: 1,
            ..TrainConfig::default()
        },
    }
}

#[test]
fn removing_maps_never_helps_beyond_noise() {
    let (model, split) = setting();
    let mut previous: Option<(usize, f64, f64)> = None;
    for k in [6, 3, 1] {
        let r = attack(
            &model,
            &split.train,
            &split.test,
            &cfg("conv1", Some(k), MapSelection::Random),
            &mut |_| {},
        )
        .expect("attack");
        assert_eq!((r.maps, r.total_maps, r.victims), (k, 6, 200));
        assert!(r.ssim_mean.is_finite() && r.ssim_std >= 0.0);
        if let Some((pk, pmean, pstd)) = previous {
            // Standard error of the two means, doubled: the allowance for noise.
            let noise = 2.0 * (pstd.powi(2) / 200.0 + r.ssim_std.powi(2) / 200.0).sqrt();
            assert!(
                r.ssim_mean <= pmean + noise,
                "k {k}: {} > k {pk}: {pmean} + {noise}",
                r.ssim_mean
            );
        }
        previous = Some((k, r.ssim_mean, r.ssim_std));
    }
}

#[test]
fn the_attack_recovers_structure_and_rejects_bad_requests() {
    let (model, split) = setting();
    let r = attack(
        &model,
        &split.train,
        &split.test,
        &cfg("conv1", None, MapSelection::Contiguous),
        &mut |_| {},
    )
    .expect("attack");
    // Synthetic images are a bright square on a noisy background: a working decoder gets the
    // square; the mean image alone would score far lower.
    assert!(r.ssim_mean > 0.3, "ssim {}", r.ssim_mean);
    assert_eq!(r.examples.len(), 16);
    assert!(
        attack(
            &model,
            &split.train,
            &split.test,
            &cfg("conv1", Some(7), MapSelection::Random),
            &mut |_| {}
        )
        .is_err()
    );
    assert!(
        attack(
            &model,
            &split.train,
            &split.test,
            &cfg("conv9", None, MapSelection::Random),
            &mut |_| {}
        )
        .is_err()
    );
    assert!(
        attack(
            &model,
            &split.train,
            &split.test,
            &cfg("fc1", Some(3), MapSelection::Random),
            &mut |_| {}
        )
        .is_err()
    );
}
