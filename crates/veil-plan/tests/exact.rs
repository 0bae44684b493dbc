//! The exact ILP, with every solver this build has (microlp always; HiGHS with the `highs`
//! feature): on small instances it proves optimality, its objective equals the evaluated
//! latency of the placements it returns, those placements pass the checker, it is never worse
//! than the greedy it starts from, and on a tiny instance it matches exhaustive search.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use veil_plan::greedy::{Ledger, Placer};
use veil_plan::ilp::{ExactConfig, ExactSolver, Request, solve_exact};
use veil_plan::placement::rates;
use veil_plan::privacy::{Profile, Thresholds, builtin};
use veil_plan::sim::with_cameras;
use veil_plan::{Budgets, DeviceClass, Fleet, ModelPlan, Placement, Strategy, check, request_cost};

fn lenet_plan(profile: &Profile, tau: f64) -> ModelPlan {
    ModelPlan::new(&veil_spec::zoo::lenet5(), profile, tau).expect("plan")
}

fn fleet(classes: &[DeviceClass]) -> Fleet {
    with_cameras(
        &Fleet::mixed(classes.len(), classes, Budgets::default()),
        1,
        &["lenet5".into()],
    )
}

/// One configuration per solver compiled into this build.
fn configs() -> Vec<ExactConfig> {
    ExactSolver::available()
        .into_iter()
        .map(|solver| ExactConfig {
            solver,
            ..ExactConfig::default()
        })
        .collect()
}

fn total(plans: &[ModelPlan], ps: &[Placement], rates: &[(f64, f64)]) -> f64 {
    ps.iter()
        .map(|p| request_cost(&plans[p.model], p, rates).latency_s)
        .sum()
}

#[test]
fn the_ilp_is_optimal_consistent_and_no_worse_than_the_greedy() {
    let plans = [lenet_plan(&builtin("lenet5").expect("profile"), 0.95)];
    let classes: Vec<DeviceClass> = (0..8)
        .map(|i| {
            [
                DeviceClass::rpi3(),
                DeviceClass::nexus5(),
                DeviceClass::stm32h7(),
            ][i % 3]
                .clone()
        })
        .collect();
    let fleet = fleet(&classes);
    let rates = rates(&fleet);
    let placer = Placer {
        plans: &plans,
        rates: &rates,
        helpers: 8,
        strategy: Strategy::DISTPRIVACY,
    };
    let mut ledger = Ledger::new(&fleet);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let greedy: Vec<Placement> = (0..2)
        .map(|_| placer.place(0, 8, &mut ledger, &mut rng).expect("greedy"))
        .collect();
    let requests = vec![
        Request {
            model: 0,
            source: 8
        };
        2
    ];
    for cfg in &configs() {
        let exact = solve_exact(&fleet, &plans, &requests, Some(&greedy), cfg)
            .expect("solve")
            .expect("feasible");
        assert!(exact.optimal, "status {}", exact.status);
        assert_eq!(check(&fleet, &plans, &exact.placements, true), Ok(()));
        let evaluated = total(&plans, &exact.placements, &rates);
        assert!(
            (exact.objective_s - evaluated).abs() <= 1e-6 * evaluated,
            "{} vs {evaluated}",
            exact.objective_s
        );
        assert!(evaluated <= total(&plans, &greedy, &rates) * (1.0 + 1e-9));
        // Without a warm start the optimum is the same.
        let cold = solve_exact(&fleet, &plans, &requests, None, cfg)
            .expect("solve")
            .expect("feasible");
        assert!((cold.objective_s - exact.objective_s).abs() <= 1e-6 * evaluated);
    }
}

/// Every placement of one LeNet-5 request on three helpers (conv2: 6 segments, at most 3 per
/// helper; fc2: one helper; conv1, fc1 and fc3 on the camera) enumerated; the ILP finds the
/// cheapest feasible one.
#[test]
fn the_ilp_matches_exhaustive_search_on_a_tiny_instance() {
    let layers = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2"];
    let nf: BTreeMap<String, usize> = layers.iter().map(|l| (l.to_string(), 3)).collect();
    let profile = Profile {
        version: 1,
        model: "lenet5".into(),
        dataset: "test".into(),
        layers: layers.iter().map(|l| l.to_string()).collect(),
        entries: vec![],
        thresholds: vec![Thresholds {
            tau: 0.5,
            nf,
            sp: None,
        }],
        source: Some("test".into()),
        partial: false,
    };
    let plans = [lenet_plan(&profile, 0.5)];
    // A slow link on the fast device makes the trade-off non-trivial.
    let classes = [
        DeviceClass::rpi3(),
        DeviceClass::new("fast-slow-link", 3000.0, 64, 2.0),
        DeviceClass::stm32h7(),
    ];
    let fleet = fleet(&classes);
    let rates = rates(&fleet);
    let cam = 3;
    let mut best = f64::INFINITY;
    for a in 0..=3usize {
        for b in 0..=3usize {
            let Some(c) = 6usize.checked_sub(a + b) else {
                continue;
            };
            if c > 3 {
                continue;
            }
            for fc2 in 0..3 {
                let conv2: Vec<usize> = [(0, a), (1, b), (2, c)]
                    .iter()
                    .flat_map(|&(d, n)| std::iter::repeat_n(d, n))
                    .collect();
                let p = Placement {
                    model: 0,
                    source: cam,
                    devices: vec![vec![cam], conv2, vec![cam], vec![fc2], vec![cam]],
                };
                if check(&fleet, &plans, std::slice::from_ref(&p), true).is_ok() {
                    best = best.min(request_cost(&plans[0], &p, &rates).latency_s);
                }
            }
        }
    }
    for cfg in &configs() {
        let exact = solve_exact(
            &fleet,
            &plans,
            &[Request {
                model: 0,
                source: cam,
            }],
            None,
            cfg,
        )
        .expect("solve")
        .expect("feasible");
        assert!(exact.optimal);
        assert!(
            (exact.objective_s - best).abs() <= 1e-9 + 1e-6 * best,
            "{} vs {best}",
            exact.objective_s
        );
    }
}

#[test]
fn an_impossible_period_is_reported_as_none() {
    // Nf = 0 for conv2 at tau 0.4 with veil's measured profile: LeNet-5 cannot be placed.
    let plans = [lenet_plan(&builtin("lenet5").expect("profile"), 0.4)];
    let fleet = fleet(&[DeviceClass::rpi3(), DeviceClass::nexus5()]);
    for cfg in &configs() {
        let exact = solve_exact(
            &fleet,
            &plans,
            &[Request {
                model: 0,
                source: 2,
            }],
            None,
            cfg,
        )
        .expect("solve");
        assert!(exact.is_none());
        assert!(
            solve_exact(
                &fleet,
                &plans,
                &[Request {
                    model: 0,
                    source: 0
                }],
                None,
                cfg
            )
            .is_err()
        );
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]
    /// Whatever the ILP returns on random small fleets passes every constraint and is no worse
    /// than the greedy it starts from.
    #[test]
    fn exact_placements_satisfy_every_constraint(
        classes in proptest::collection::vec(0usize..3, 6..10),
        requests in 1usize..3,
        tau in proptest::prelude::prop_oneof![proptest::prelude::Just(0.6), proptest::prelude::Just(0.95)],
        budget in 0.0005f64..0.05,
    ) {
        let catalog = [DeviceClass::rpi3(), DeviceClass::nexus5(), DeviceClass::stm32h7()];
        let chosen: Vec<DeviceClass> = classes.iter().map(|&c| catalog[c].clone()).collect();
        let budgets = Budgets { period_s: 1.0, compute: budget, bandwidth: budget, memory: 1.0 };
        let fleet = with_cameras(&Fleet::mixed(chosen.len(), &chosen, budgets), 1, &["lenet5".into()]);
        let plans = [lenet_plan(&builtin("lenet5").expect("profile"), tau)];
        let rates = rates(&fleet);
        let helpers = chosen.len();
        let placer = Placer { plans: &plans, rates: &rates, helpers, strategy: Strategy::DISTPRIVACY };
        let mut ledger = Ledger::new(&fleet);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let greedy: Option<Vec<Placement>> = (0..requests).map(|_| placer.place(0, helpers, &mut ledger, &mut rng)).collect();
        let reqs = vec![Request { model: 0, source: helpers }; requests];
        // A short limit: the property holds for whatever the solver returns in time.
        for cfg in configs().into_iter().map(|c| ExactConfig { time_limit_s: 5.0, ..c }) {
            let exact = solve_exact(&fleet, &plans, &reqs, greedy.as_deref(), &cfg).expect("solve");
            if let Some(e) = &exact {
                proptest::prop_assert_eq!(check(&fleet, &plans, &e.placements, true), Ok(()));
                if let Some(g) = &greedy {
                    proptest::prop_assert!(total(&plans, &e.placements, &rates) <= total(&plans, g, &rates) * (1.0 + 1e-9));
                }
            } else {
                // If the solver finds nothing, the greedy cannot have found anything either.
                proptest::prop_assert!(greedy.is_none());
            }
        }
    }
}

/// Asking for a solver this build lacks is an error that says how to get it, never a panic.
#[test]
fn a_missing_solver_is_a_clear_error() {
    let plans = [lenet_plan(&builtin("lenet5").expect("profile"), 0.95)];
    // Seven helpers: six hold one conv2 map each and hold nothing else; fc1-fc3 need a seventh.
    let fleet = fleet(&vec![DeviceClass::rpi3(); 7]);
    for solver in ExactSolver::ALL {
        let cfg = ExactConfig {
            solver,
            ..ExactConfig::default()
        };
        let out = solve_exact(
            &fleet,
            &plans,
            &[Request {
                model: 0,
                source: 7,
            }],
            None,
            &cfg,
        );
        if solver.is_available() {
            assert!(out.expect("solve").is_some());
        } else {
            let message = out.expect_err("unavailable").to_string();
            assert!(message.contains("--features highs"), "{message}");
        }
    }
}

#[test]
fn an_instance_too_large_for_the_ilp_is_refused_before_it_is_built() {
    // 200,000 helpers x 20 LeNet-5 requests: millions of columns, which would take gigabytes
    // to build. Refused at once, naming the limit.
    let plans = [lenet_plan(&builtin("lenet5").expect("profile"), 0.95)];
    let classes = [DeviceClass::rpi3()];
    let fleet = with_cameras(
        &Fleet::mixed(200_000, &classes, Budgets::default()),
        1,
        &["lenet5".into()],
    );
    let source = fleet.helpers.len();
    let requests: Vec<Request> = (0..20).map(|_| Request { model: 0, source }).collect();
    let err = solve_exact(&fleet, &plans, &requests, None, &ExactConfig::default())
        .expect_err("too large");
    assert!(err.to_string().contains("greedy"), "{err}");
}
