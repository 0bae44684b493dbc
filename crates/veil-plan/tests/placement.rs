//! Every placement the greedy or a baseline returns satisfies every constraint (property
//! test over random fleets, budgets, models, taus and request streams), and the checker
//! catches broken placements.

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use veil_plan::greedy::{Ledger, Placer};
use veil_plan::placement::rates;
use veil_plan::privacy::builtin;
use veil_plan::sim::with_cameras;
use veil_plan::{Budgets, DeviceClass, Fleet, ModelPlan, PrivacyRule, Strategy, Violation, check};

fn fleet(classes: &[u8], budget: f64) -> Fleet {
    let catalog = [
        DeviceClass::rpi3(),
        DeviceClass::nexus5(),
        DeviceClass::stm32h7(),
        DeviceClass::new("tiny", 5.0, 1, 1.0),
    ];
    let chosen: Vec<DeviceClass> = classes
        .iter()
        .map(|&c| catalog[c as usize % 4].clone())
        .collect();
    Fleet::mixed(
        chosen.len(),
        &chosen,
        Budgets {
            period_s: 1.0,
            compute: budget,
            bandwidth: budget,
            memory: budget,
        },
    )
}

/// The tau at which LeNet-5 can be channel-partitioned at all: one pool1 map leaks SSIM 0.926
/// (veil's built-in profile), so below that no helper may hold any conv2 input.
const LENET_TAU: f64 = 0.95;

/// Plans for `[lenet5, cifar_cnn]` at `[lenet_tau, cifar_tau]`.
fn plans_under([lenet_tau, cifar_tau]: [f64; 2], rule: PrivacyRule) -> Vec<ModelPlan> {
    [("lenet5", lenet_tau), ("cifar_cnn", cifar_tau)]
        .iter()
        .map(|&(m, tau)| {
            let spec = veil_spec::zoo::model(m).expect("zoo");
            ModelPlan::with_rule(&spec, &builtin(m).expect("profile"), tau, rule).expect("plan")
        })
        .collect()
}

fn plans(taus: [f64; 2]) -> Vec<ModelPlan> {
    plans_under(taus, PrivacyRule::Sound)
}

const STRATEGIES: [Strategy; 4] = [
    Strategy::DISTPRIVACY,
    Strategy::NoPrivacy,
    Strategy::Single,
    Strategy::Random,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn placements_satisfy_every_constraint(
        classes in proptest::collection::vec(0u8..4, 1..24),
        budget in 0.001f64..1.0,
        lenet_tau in prop_oneof![Just(0.6), Just(LENET_TAU)],
        tau in prop_oneof![Just(0.4), Just(0.6), Just(0.8)],
        strategy in 0usize..4,
        cameras in proptest::collection::vec(0usize..3, 1..25),
        seed in 0u64..1000,
    ) {
        let plans = plans([lenet_tau, tau]);
        let fleet = with_cameras(&fleet(&classes, budget), 3, &["lenet5".into(), "cifar_cnn".into(), "lenet5".into()]);
        let rates = rates(&fleet);
        let helpers = fleet.helpers.len();
        let placer = Placer { plans: &plans, rates: &rates, helpers, strategy: STRATEGIES[strategy] };
        let mut ledger = Ledger::new(&fleet);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut placed = Vec::new();
        for &camera in &cameras {
            // Cameras 0 and 2 run lenet5 (plan 0), camera 1 cifar_cnn (plan 1).
            let model = usize::from(camera == 1);
            if let Some(p) = placer.place(model, helpers + camera, &mut ledger, &mut rng) {
                placed.push(p);
            }
        }
        // All placements of one period together respect every budget and rule.
        let privacy = STRATEGIES[strategy].respects_privacy();
        prop_assert_eq!(check(&fleet, &plans, &placed, privacy), Ok(()));
        // The ledger never goes negative.
        prop_assert!(ledger.compute.iter().chain(&ledger.memory).chain(&ledger.bandwidth).all(|&v| v >= -1e-6));
    }
}

fn lenet_fleet() -> (Fleet, Vec<ModelPlan>) {
    let plans = vec![plans([LENET_TAU, 0.8]).remove(0)];
    // Eight helpers: conv2's six segments need six helpers when Nf is 1.
    let fleet = with_cameras(
        &fleet(&[0, 1, 0, 1, 0, 1, 0, 1], 1.0),
        1,
        &["lenet5".into()],
    );
    (fleet, plans)
}

#[test]
fn the_checker_catches_each_kind_of_violation() {
    let (fleet, plans) = lenet_fleet();
    let rates = rates(&fleet);
    let cam = fleet.helpers.len();
    let placer = Placer {
        plans: &plans,
        rates: &rates,
        helpers: cam,
        strategy: Strategy::DISTPRIVACY,
    };
    let mut ledger = Ledger::new(&fleet);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let good = placer
        .place(0, cam, &mut ledger, &mut rng)
        .expect("lenet5 fits on 8 helpers");
    assert_eq!(
        check(&fleet, &plans, std::slice::from_ref(&good), true),
        Ok(())
    );
    // The first stage must stay on the camera.
    let mut bad = good.clone();
    bad.devices[0][0] = 0;
    assert!(matches!(
        check(&fleet, &plans, &[bad], true),
        Err(Violation::Device { .. })
    ));
    // A camera may not compute a helper stage.
    let mut bad = good.clone();
    bad.devices[1][0] = cam;
    assert!(matches!(
        check(&fleet, &plans, &[bad], true),
        Err(Violation::Device { .. })
    ));
    // One helper holding every segment of conv2 breaks its cap (Nf(pool1) = 1 at tau 0.95), which
    // only the no-privacy baseline may ignore.
    let mut bad = good.clone();
    bad.devices[1] = vec![0; 6];
    assert!(matches!(
        check(&fleet, &plans, std::slice::from_ref(&bad), true),
        Err(Violation::Privacy { .. })
    ));
    assert_eq!(check(&fleet, &plans, &[bad], false), Ok(()));
    // A missing segment.
    let mut bad = good.clone();
    bad.devices[1].pop();
    assert!(matches!(
        check(&fleet, &plans, &[bad], true),
        Err(Violation::Shape { .. })
    ));
    // Too many requests for one period.
    let many = vec![good; 100_000];
    assert!(matches!(
        check(&fleet, &plans, &many, true),
        Err(Violation::Budget { .. })
    ));
}

/// Hand-computed latency: lenet5 on one camera and helpers of one class, placed by hand.
#[test]
fn latency_and_shared_data_follow_eqs_5_to_7() {
    let (fleet, plans) = lenet_fleet();
    let rates = rates(&fleet);
    let plan = &plans[0];
    // conv1 on the camera (4); conv2 segments split 3/3 on helpers 0 and 1; fc1 on the
    // camera if before SP, else helper 2; fc2 on helper 2; fc3 on the camera.
    let cam = fleet.helpers.len();
    let fc1 = if plan.stages[2].source_only { cam } else { 2 };
    let p = veil_plan::Placement {
        model: 0,
        source: cam,
        devices: vec![
            vec![cam],
            vec![0, 0, 0, 1, 1, 1],
            vec![fc1],
            vec![2],
            vec![cam],
        ],
    };
    let cost = veil_plan::request_cost(plan, &p, &rates);
    let rate = 72.2e6;
    let (rpi, nexus): (f64, f64) = (560e6, 800e6);
    // conv1: 6*25*784 mults on the camera (RPi3).
    let mut want = 6.0 * 25.0 * 784.0 / rpi;
    // conv2: the camera sends each helper 3 pool1 maps of 14x14 floats; helper 1 (Nexus)
    // computes 3 segments of 16*25*100 mults; helper 0 (RPi3) as well; the slower wins.
    let recv = 3.0 * 196.0 * 4.0 * 8.0 / rate;
    want += (recv + 3.0 * 40_000.0 / rpi).max(recv + 3.0 * 40_000.0 / nexus);
    // fc1: two holders send their partial sums for all 16 maps of 10x10 to the fc1 device.
    let partial = 16.0 * 100.0 * 4.0;
    // The camera and helper 2 are both RPi3s.
    want += partial * 8.0 / rate + 400.0 * 120.0 / rpi;
    // fc2 on helper 2 (RPi3): 120 floats from fc1's device (none if it is the same).
    let fc2_in = if fc1 == 2 {
        0.0
    } else {
        120.0 * 4.0 * 8.0 / rate
    };
    want += fc2_in + 120.0 * 84.0 / rpi;
    // fc3 on the camera: 84 floats from helper 2.
    want += 84.0 * 4.0 * 8.0 / rate + 84.0 * 10.0 / rpi;
    assert!(
        (cost.latency_s - want).abs() < 1e-12,
        "{} vs {want}",
        cost.latency_s
    );
    let shared = 6.0 * 196.0 * 4.0 + 2.0 * partial + if fc1 == 2 { 0.0 } else { 480.0 } + 336.0;
    assert!(
        (cost.shared_bytes - shared).abs() < 1e-9,
        "{} vs {shared}",
        cost.shared_bytes
    );
}

/// On a roomy fleet every strategy places a stream of mixed requests under the paper's rule,
/// and all of them together still pass the checker. (Under the sound rule the random baseline
/// spreads a stage over so many helpers that later exclusive stages find none left.)
#[test]
fn a_roomy_fleet_takes_every_request_under_every_strategy() {
    let plans = plans_under([LENET_TAU, 0.8], PrivacyRule::Paper);
    let classes: Vec<u8> = (0..40).map(|i| (i % 2) as u8).collect();
    let fleet = with_cameras(
        &fleet(&classes, 1.0),
        2,
        &["lenet5".into(), "cifar_cnn".into()],
    );
    let rates = rates(&fleet);
    for strategy in STRATEGIES {
        let placer = Placer {
            plans: &plans,
            rates: &rates,
            helpers: 40,
            strategy,
        };
        let mut ledger = Ledger::new(&fleet);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let placed: Vec<_> = (0..10)
            .map(|r| {
                placer
                    .place(r % 2, 40 + r % 2, &mut ledger, &mut rng)
                    .unwrap_or_else(|| panic!("{strategy:?} request {r}"))
            })
            .collect();
        assert_eq!(
            check(&fleet, &plans, &placed, strategy.respects_privacy()),
            Ok(()),
            "{strategy:?}"
        );
    }
}

/// Under the sound rule a helper holding segments of a constrained stage holds nothing else:
/// the greedy's cifar_cnn placements keep the stages' helpers apart, and the checker refuses
/// a placement where one helper holds two constrained stages (which the paper's rule accepts).
#[test]
fn a_helper_never_holds_two_constrained_stages_under_the_sound_rule() {
    let sound = plans_under([LENET_TAU, 0.8], PrivacyRule::Sound);
    let paper = plans_under([LENET_TAU, 0.8], PrivacyRule::Paper);
    let classes: Vec<u8> = (0..40).map(|i| (i % 2) as u8).collect();
    let fleet = with_cameras(&fleet(&classes, 1.0), 1, &["cifar_cnn".into()]);
    let rates = rates(&fleet);
    let placer = Placer {
        plans: &sound,
        rates: &rates,
        helpers: 40,
        strategy: Strategy::DISTPRIVACY,
    };
    let mut ledger = Ledger::new(&fleet);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let good = placer.place(1, 40, &mut ledger, &mut rng).expect("fits");
    assert_eq!(
        check(&fleet, &sound, std::slice::from_ref(&good), true),
        Ok(())
    );
    let stages = &sound[1].stages;
    let shared: Vec<usize> = (0..stages.len())
        .filter(|&s| !stages[s].source_only && stages[s].exclusive)
        .collect();
    assert!(shared.len() >= 2, "{shared:?}");
    for (i, &s) in shared.iter().enumerate() {
        for &t in &shared[i + 1..] {
            assert!(
                good.devices[s].iter().all(|d| !good.devices[t].contains(d)),
                "stages {s} and {t} share a helper"
            );
        }
    }
    // The first segment of the second shared stage moved to a helper of the first.
    let mut bad = good.clone();
    bad.devices[shared[1]][0] = good.devices[shared[0]][0];
    assert!(matches!(
        check(&fleet, &sound, std::slice::from_ref(&bad), true),
        Err(Violation::JointView { .. })
    ));
    assert!(!matches!(
        check(&fleet, &paper, &[bad], true),
        Err(Violation::JointView { .. })
    ));
}
