//! The attack on a small synthetic setting: it learns something, and hiding maps does not
//! make it stronger.

mod common;

use veil_attack::{AttackConfig, MapSelection, attack};
use veil_model::{Model, TrainConfig};

fn setting() -> (Model, veil_data::Split) {
    common::trained_lenet(1200, 11, 4)
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
        ..AttackConfig::default()
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

/// The nested chain of a profile: one root training, every k scored by a decoder fine-tuned
/// to its subset; with the attacker's choice of usable decoder, SSIM must not rise beyond
/// noise as maps are hidden, and seeing everything must beat seeing one map.
#[test]
fn a_chain_scores_every_k_monotonically() {
    use veil_attack::nested::{ChainConfig, best_usable, train_root, walk_chain};
    let (model, split) = setting();
    let feats =
        veil_attack::LayerFeatures::extract(&model, &split.train, &split.test, "conv1", 1000, 200)
            .expect("features");
    let c = cfg("conv1", None, MapSelection::Random);
    let chain = ChainConfig {
        root: c.train.clone(),
        step: TrainConfig {
            epochs: 1,
            ..c.train.clone()
        },
        step_samples: 500,
        validation: 100,
    };
    let root = train_root(&feats, &chain).expect("root");
    let order = veil_attack::map_order(6, MapSelection::Random, 1, 0);
    let steps = walk_chain(&root, &feats, &order, &[1, 2, 3, 4, 5], &chain).expect("chain");
    assert_eq!(
        steps.iter().map(|s| s.k).collect::<Vec<_>>(),
        vec![6, 5, 4, 3, 2, 1]
    );
    let per = feats.victims.sample_len();
    let means: Vec<veil_metrics::Summary> = best_usable(&steps)
        .into_iter()
        .map(|used| {
            let recon = &steps[used].reconstructions;
            let scores: Vec<f64> = (0..feats.victims.len())
                .map(|i| {
                    let a = veil_metrics::Image::new(feats.victims.sample(i), feats.victims.shape)
                        .expect("a");
                    let b = veil_metrics::Image::new(
                        &recon[i * per..(i + 1) * per],
                        feats.victims.shape,
                    )
                    .expect("b");
                    veil_metrics::ImageScores::compute(&a, &b)
                        .expect("scores")
                        .ssim
                })
                .collect();
            veil_metrics::Summary::of(&scores).expect("summary")
        })
        .collect();
    for (i, pair) in means.windows(2).enumerate() {
        let (more, fewer) = (&pair[0], &pair[1]);
        let noise = 2.0 * ((more.std.powi(2) + fewer.std.powi(2)) / 200.0).sqrt();
        assert!(
            fewer.mean <= more.mean + noise,
            "k {}: {} > k {}: {} + {noise}",
            steps[i + 1].k,
            fewer.mean,
            steps[i].k,
            more.mean
        );
    }
    assert!(means[0].mean > means[5].mean);
    assert!(walk_chain(&root, &feats, &[0, 1, 2], &[1], &chain).is_err());
    let no_validation = ChainConfig {
        validation: 0,
        ..chain
    };
    assert!(train_root(&feats, &no_validation).is_err());
}

/// A helper's observation: its held maps plus the centred partial sums it receives.
#[test]
fn a_helper_sees_its_maps_and_the_partial_sums_it_is_sent() {
    let (model, split) = setting();
    let view = veil_attack::HelperView {
        conv: "conv2".into(),
        held: 2,
        owned: 3,
        senders: 2,
    };
    let feats = veil_attack::helper_features(&model, &split.train, &split.test, &view, 100, 20)
        .expect("helper features");
    // conv2 reads pool1's 6 maps of 14x14; 2 held + 2 senders x 3 owned partial sums.
    assert_eq!(feats.shape.dims(), &[8, 14, 14]);
    assert_eq!(feats.aux_feats.len(), 100 * 8 * 14 * 14);
    assert_eq!(feats.victim_feats.len(), 20 * 8 * 14 * 14);
    let pool1 =
        veil_attack::LayerFeatures::extract(&model, &split.train, &split.test, "pool1", 100, 20)
            .expect("pool1");
    assert_eq!(&feats.aux_feats[..2 * 196], &pool1.aux_feats[..2 * 196]);
    // Partial sums of a valid 5x5 convolution are 10x10, centred: a 2-pixel zero border.
    let first_sum = &feats.aux_feats[2 * 196..3 * 196];
    assert!(first_sum[..2 * 14].iter().all(|&v| v == 0.0));
    assert!(first_sum[2 * 14 + 2..2 * 14 + 12].iter().any(|&v| v != 0.0));
    let bad = |held, owned, senders| veil_attack::HelperView {
        conv: "conv2".into(),
        held,
        owned,
        senders,
    };
    for v in [
        bad(0, 1, 1),
        bad(7, 1, 1),
        bad(2, 0, 1),
        bad(2, 17, 1),
        bad(2, 1, 0),
        bad(2, 1, 5),
    ] {
        assert!(
            veil_attack::helper_features(&model, &split.train, &split.test, &v, 10, 5).is_err()
        );
    }
    let first = veil_attack::HelperView {
        conv: "conv1".into(),
        ..bad(1, 1, 0)
    };
    assert!(
        veil_attack::helper_features(&model, &split.train, &split.test, &first, 10, 5).is_err()
    );
}
