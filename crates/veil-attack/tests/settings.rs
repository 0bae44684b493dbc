//! Every attacker setting (black-box, white-box, query-free) on a small synthetic setting
//! beats the best guess without features, the mean auxiliary image (scored in the test),
//! by more than two standard errors.

mod common;

use veil_attack::{AttackConfig, AttackSetting, MapSelection, attack};
use veil_metrics::{Image, ssim};
use veil_model::inversion::MatchConfig;
use veil_model::{Model, TrainConfig};

fn setting() -> (Model, veil_data::Split) {
    common::trained_lenet(1200, 5, 2)
}

/// Mean SSIM of the mean auxiliary image against the first `victims` test images.
fn mean_image_ssim(split: &veil_data::Split, victims: usize) -> f64 {
    let per = split.train.sample_len();
    let mut mean = vec![0.0f32; per];
    for i in 0..split.train.len() {
        for (m, v) in mean.iter_mut().zip(split.train.sample(i)) {
            *m += v / split.train.len() as f32;
        }
    }
    let guess = Image::new(&mean, split.train.shape).expect("image");
    let victims = split.test.take(victims);
    let total: f64 = (0..victims.len())
        .map(|i| {
            let truth = Image::new(victims.sample(i), victims.shape).expect("image");
            ssim(&truth, &guess).expect("ssim")
        })
        .sum();
    total / victims.len() as f64
}

fn config(layer: &str, setting: AttackSetting) -> AttackConfig {
    AttackConfig {
        layer: layer.into(),
        maps: None,
        selection: MapSelection::Contiguous,
        draws: 1,
        aux_samples: 1000,
        victims: 60,
        train: TrainConfig {
            epochs: 3,
            batch_size: 32,
            seed: 3,
            ..TrainConfig::default()
        },
        setting,
        decoder: veil_attack::DecoderKind::Mirror,
        white_box: MatchConfig {
            steps: 150,
            ..MatchConfig::default()
        },
        shadow_epochs: 5,
    }
}

#[test]
fn every_setting_beats_the_mean_image() {
    let (model, split) = setting();
    let baseline = mean_image_ssim(&split, 60);
    for (layer, setting) in [
        ("relu2", AttackSetting::BlackBox),
        ("relu2", AttackSetting::WhiteBox),
        ("relu2", AttackSetting::QueryFree),
    ] {
        let r = attack(
            &model,
            &split.train,
            &split.test,
            &config(layer, setting),
            &mut |_| {},
        )
        .expect("attack");
        assert_eq!(r.setting, setting);
        assert_eq!(r.victims, 60);
        // Beyond noise: two standard errors of the attack's mean SSIM.
        let noise = 2.0 * r.ssim_std / (r.victims as f64).sqrt();
        assert!(
            r.ssim_mean > baseline + noise,
            "{setting:?} at {layer}: SSIM {} vs the mean image's {baseline}",
            r.ssim_mean
        );
    }
}

#[test]
fn the_white_box_attacker_matches_only_the_maps_it_sees() {
    let (model, split) = setting();
    let all = attack(
        &model,
        &split.train,
        &split.test,
        &config("conv1", AttackSetting::WhiteBox),
        &mut |_| {},
    )
    .expect("all maps");
    let one = attack(
        &model,
        &split.train,
        &split.test,
        &AttackConfig {
            maps: Some(1),
            ..config("conv1", AttackSetting::WhiteBox)
        },
        &mut |_| {},
    )
    .expect("one map");
    assert_eq!((one.maps, one.total_maps), (1, 6));
    assert!(
        one.ssim_mean < all.ssim_mean,
        "{} vs {}",
        one.ssim_mean,
        all.ssim_mean
    );
}
