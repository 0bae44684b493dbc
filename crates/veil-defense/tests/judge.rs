//! Shields judged end to end on a small synthetic task: a strong defence spoils the attack
//! (and, for feature noise, accuracy), a negligible one changes nothing.

use veil_attack::AttackConfig;
use veil_defense::features::FeatureShield;
use veil_defense::sweep::Judge;
use veil_model::{Model, TrainConfig};

fn setting() -> (Model, veil_data::Split) {
    let split = veil_data::synthetic::mnist_like(1200, 5);
    let model = Model::init(veil_spec::zoo::lenet5(), 2).expect("init");
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 32,
        ..TrainConfig::default()
    };
    let (model, _) =
        veil_model::train(model, &split.train, None, &cfg, &mut |_| {}).expect("train");
    (model, split)
}

#[test]
fn perturbation_and_feature_noise_trade_accuracy_for_privacy() {
    let (model, split) = setting();
    let plain = model.evaluate(&split.test).expect("eval");
    let judge = Judge {
        model: &model,
        data: &split,
        split: "pool1".into(),
        attack: AttackConfig {
            aux_samples: 600,
            victims: 150,
            train: TrainConfig {
                epochs: 3,
                batch_size: 32,
                seed: 1,
                ..TrainConfig::default()
            },
            ..AttackConfig::default()
        },
    };
    // eps = 1e9: noise scale 2G/eps is negligible, nothing changes.
    let mild = judge.perturbation(1e9, None, 0).expect("mild");
    assert!(
        (mild.accuracy - plain).abs() < 1e-9,
        "{} vs {plain}",
        mild.accuracy
    );
    // eps = 0.01: noise 200 G swamps every device-side weight. The synthetic task (a bright
    // square's position) survives random first-layer filters, so accuracy may stay; the
    // attack must not.
    let harsh = judge.perturbation(0.01, None, 0).expect("harsh");
    assert!(harsh.accuracy <= plain + 1e-9);
    assert!(
        harsh.ssim_mean < mild.ssim_mean - 0.1,
        "{} vs {}",
        harsh.ssim_mean,
        mild.ssim_mean
    );
    let none = judge
        .feature_shield(FeatureShield::Gaussian { sigma: 0.0 }, 0)
        .expect("none");
    assert!((none.accuracy - plain).abs() < 1e-9);
    assert!(
        (none.ssim_mean - mild.ssim_mean).abs() < 0.05,
        "{none:?} vs {mild:?}"
    );
    let loud = judge
        .feature_shield(FeatureShield::Gaussian { sigma: 50.0 }, 0)
        .expect("loud");
    assert!(loud.accuracy < plain, "{loud:?}");
    assert!(
        loud.ssim_mean < none.ssim_mean - 0.1,
        "{loud:?} vs {none:?}"
    );
    assert!(judge.perturbation(-1.0, None, 0).is_err());
    // The stale attacker's decoder, trained on the plain device, does as well as the fresh
    // one when nothing changed, and is lost when the device part is swamped with noise.
    let decoder = judge.stale_decoder().expect("decoder");
    let stale_mild = judge
        .perturbation_stale(1e9, None, 0, &decoder)
        .expect("stale");
    assert!((stale_mild.accuracy - mild.accuracy).abs() < 1e-9);
    assert!(
        (stale_mild.ssim_mean - mild.ssim_mean).abs() < 0.05,
        "{stale_mild:?} vs {mild:?}"
    );
    let stale_harsh = judge
        .perturbation_stale(0.01, None, 0, &decoder)
        .expect("stale");
    assert!(
        stale_harsh.ssim_mean < stale_mild.ssim_mean - 0.1,
        "{stale_harsh:?} vs {stale_mild:?}"
    );
}
