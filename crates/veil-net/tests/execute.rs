//! Distributed execution equals single-process inference: lenet5 (random initialisation)
//! placed on a source and four helpers in many random ways, every request run by nodes that
//! hold only their slices and exchange messages, compared with the burn engine.

use std::collections::{HashMap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use veil_model::Model;
use veil_net::deploy::Deployment;
use veil_net::node::{Message, Node, Payload};

/// Runs requests through `nodes`, showing every message and its destination to `observe`;
/// returns logits per request and the bytes sent between different devices.
fn run(
    nodes: &mut HashMap<usize, Node>,
    source: usize,
    inputs: &[Vec<f32>],
    observe: &mut dyn FnMut(usize, &Message),
) -> (Vec<Vec<f32>>, usize) {
    let mut queue: VecDeque<(usize, Message)> = VecDeque::new();
    let mut results = vec![Vec::new(); inputs.len()];
    let mut bytes = 0;
    let (mut traced_bytes, mut traced_macs) = (0usize, 0u64);
    let macs_before: u64 = nodes.values().map(|n| n.macs).sum();
    for (r, x) in inputs.iter().enumerate() {
        let out = nodes
            .get_mut(&source)
            .expect("source")
            .start(r as u64, x)
            .expect("start");
        queue.extend(out);
    }
    while let Some((to, msg)) = queue.pop_front() {
        observe(to, &msg);
        if to != msg.from {
            bytes += msg.value_bytes();
        }
        let r = msg.request as usize;
        let (out, result) = nodes
            .get_mut(&to)
            .expect("node")
            .handle(msg)
            .expect("handle");
        if let Some(done) = result {
            // The trace that reached the source accounts for every byte and multiplication
            // of its request.
            traced_bytes += done
                .trace
                .iter()
                .map(|t| t.sent_bytes as usize)
                .sum::<usize>();
            traced_macs += done.trace.iter().map(|t| t.macs).sum::<u64>();
            results[r] = done.logits;
        }
        // Deliver out of order across requests: interleave by pushing to the back.
        queue.extend(out);
    }
    assert_eq!(traced_bytes, bytes, "trace bytes");
    // No node keeps state of a finished request.
    assert!(nodes.values().all(|n| n.live_requests() == 0));
    assert_eq!(
        traced_macs,
        nodes.values().map(|n| n.macs).sum::<u64>() - macs_before,
        "trace multiplications"
    );
    (results, bytes)
}

#[test]
fn random_placements_of_lenet5_match_single_process_inference() {
    let spec = veil_spec::zoo::lenet5();
    let model = Model::init(spec.clone(), 3).expect("model");
    let params = model.compute_layer_params().expect("parameters");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let inputs: Vec<Vec<f32>> = (0..6)
        .map(|_| (0..784).map(|_| rng.random_range(0.0..1.0)).collect())
        .collect();
    let flat: Vec<f32> = inputs.concat();
    let want = model
        .forward(model.input(flat).expect("input"))
        .expect("forward")
        .into_values()
        .expect("values");
    for trial in 0..12 {
        // Source 0; helpers 1..=4. conv2's 6 segments and fc1, fc2 spread at random; in
        // some trials conv2 runs whole on one helper.
        let helpers = 1 + trial % 4;
        let conv2: Vec<usize> = (0..6).map(|_| 1 + rng.random_range(0..helpers)).collect();
        let owners = vec![
            vec![0],
            conv2,
            vec![1 + rng.random_range(0..4)],
            vec![1 + rng.random_range(0..4)],
            vec![0],
        ];
        let dep = Deployment::new(&spec, &owners, 0).expect("deploy");
        let mut nodes: HashMap<usize, Node> = (0..5)
            .map(|d| (d, Node::new(dep.clone(), dep.work_of(d, &params))))
            .collect();
        // A helper holds only its slices: conv2 weights for its maps, not the whole layer.
        for d in 1..5 {
            let work = dep.work_of(d, &params);
            let held: usize = owners[1].iter().filter(|&&o| o == d).count();
            let conv2_weights = work
                .stages
                .iter()
                .find(|s| s.stage == 1)
                .map_or(0, |s| s.weight.len());
            assert_eq!(conv2_weights, held * 16 * 25, "trial {trial} device {d}");
        }
        let (got, bytes) = run(&mut nodes, 0, &inputs, &mut |_, _| {});
        for (r, logits) in got.iter().enumerate() {
            assert_eq!(logits.len(), 10, "trial {trial} request {r}");
            for (g, w) in logits.iter().zip(&want[r * 10..(r + 1) * 10]) {
                assert!(
                    (g - w).abs() < 1e-4,
                    "trial {trial} request {r}: {g} vs {w}"
                );
            }
        }
        assert!(bytes > 0);
    }
}

#[test]
fn bad_messages_are_errors() {
    let spec = veil_spec::zoo::lenet5();
    let owners = vec![vec![0], vec![1, 1, 2, 2, 1, 2], vec![1], vec![2], vec![0]];
    let dep = Deployment::new(&spec, &owners, 0).expect("deploy");
    // Every boundary crosses devices here; a whole stage followed by one on the same device
    // is no hop.
    assert_eq!(dep.hops(), 4);
    let local = vec![vec![0], vec![0; 6], vec![0], vec![2], vec![0]];
    assert_eq!(Deployment::new(&spec, &local, 0).expect("deploy").hops(), 2);
    let params: Vec<(Vec<f32>, Vec<f32>)> =
        [(150, 6), (2400, 16), (48000, 120), (10080, 84), (840, 10)]
            .iter()
            .map(|&(w, b)| (vec![0.01; w], vec![0.0; b]))
            .collect();
    let mut helper = Node::new(dep.clone(), dep.work_of(1, &params));
    let msg = |stage, channels| Message {
        request: 7,
        stage,
        payload: veil_net::node::Payload::Finished,
        from: 0,
        channels,
        ring: Vec::new(),
        trace: Vec::new(),
    };
    assert!(helper.handle(msg(9, vec![])).is_err());
    assert!(
        helper.handle(msg(0, vec![(0, vec![0.0; 3])])).is_err(),
        "wrong size"
    );
    assert!(
        helper.handle(msg(0, vec![(2, vec![0.0; 196])])).is_err(),
        "channel of device 2"
    );
    assert!(
        helper.start(1, &[0.0; 784]).is_err(),
        "only the source starts"
    );
    // Integrity: device 2 (a helper of conv2) cannot deliver conv1's maps, which the source
    // finishes; the source, which holds no segment of conv2, cannot add a partial sum of it.
    let from = |from, stage, payload, channels| Message {
        request: 8,
        stage,
        payload,
        from,
        channels,
        ring: Vec::new(),
        trace: Vec::new(),
    };
    use veil_net::node::Payload;
    let err = helper
        .handle(from(2, 0, Payload::Finished, vec![(0, vec![0.0; 196])]))
        .expect_err("a finished map from another device than its producer");
    assert!(err.to_string().contains("not its producer"), "{err}");
    let conv2_raw = dep.stages[1].raw_len();
    let err = helper
        .handle(from(
            0,
            1,
            Payload::Partial,
            vec![(0, vec![0.0; conv2_raw])],
        ))
        .expect_err("a partial sum from a device without a segment of the stage");
    assert!(err.to_string().contains("holds no segment"), "{err}");
    // The real holders' partial sums are taken.
    assert!(
        helper
            .handle(from(
                2,
                1,
                Payload::Partial,
                vec![(0, vec![0.0; conv2_raw])]
            ))
            .is_ok()
    );
    assert!(Deployment::new(&spec, &owners[..4], 0).is_err());
    let mut wrong = owners.clone();
    wrong[0] = vec![3];
    assert!(
        Deployment::new(&spec, &wrong, 0).is_err(),
        "source must run the first stage"
    );
}

#[test]
fn the_planner_s_greedy_placement_runs_and_matches() {
    use veil_plan::{Budgets, DeviceClass, Fleet, ModelPlan, Strategy};
    let spec = veil_spec::zoo::lenet5();
    let profile = veil_plan::privacy::builtin("lenet5").expect("profile");
    // At tau 0.95 the built-in profile lets a helper hold one conv2 input map (the worst pool1
    // map leaks 0.926), so conv2 needs six helpers that hold nothing else of the request, and
    // fc1-fc3 a seventh; fewer are rejected by the planner (below 0.926 none can be placed).
    for helpers in [7, 8] {
        let fleet = Fleet::mixed(
            helpers,
            &[DeviceClass::rpi3(), DeviceClass::nexus5()],
            Budgets::default(),
        );
        let plan = ModelPlan::new(&spec, &profile, 0.95).expect("plan");
        let report = veil_plan::single::plan_one(&fleet, plan, Strategy::DISTPRIVACY, None)
            .expect("plan_one")
            .expect("a placement");
        let dep = Deployment::new(&spec, &report.owners, report.source).expect("deploy");
        // The privacy cap holds in the deployment: no helper owns more conv2 maps than allowed.
        let cap = report.stages[1].cap.expect("conv2 is capped");
        for d in 0..helpers {
            assert!(dep.stages[1].owners.iter().filter(|&&o| o == d).count() <= cap);
        }
        let model = Model::init(spec.clone(), 5).expect("model");
        let params = model.compute_layer_params().expect("parameters");
        let mut nodes: HashMap<usize, Node> = (0..=report.source)
            .map(|d| (d, Node::new(dep.clone(), dep.work_of(d, &params))))
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(helpers as u64);
        let inputs: Vec<Vec<f32>> = (0..4)
            .map(|_| (0..784).map(|_| rng.random_range(0.0..1.0)).collect())
            .collect();
        let want = model
            .forward(model.input(inputs.concat()).expect("input"))
            .expect("forward")
            .into_values()
            .expect("values");
        let (got, _) = run(&mut nodes, report.source, &inputs, &mut |_, _| {});
        for (r, logits) in got.iter().enumerate() {
            for (g, w) in logits.iter().zip(&want[r * 10..(r + 1) * 10]) {
                assert!(
                    (g - w).abs() < 1e-4,
                    "{helpers} helpers, request {r}: {g} vs {w}"
                );
            }
        }
    }
    // Six helpers at tau 0.95, or any number below the worst pool1 map: no placement.
    for (helpers, tau) in [(6, 0.95), (16, 0.9)] {
        let fleet = Fleet::mixed(helpers, &[DeviceClass::rpi3()], Budgets::default());
        let plan = ModelPlan::new(&spec, &profile, tau).expect("plan");
        let report = veil_plan::single::plan_one(&fleet, plan, Strategy::DISTPRIVACY, None)
            .expect("plan_one");
        assert!(report.is_none(), "{helpers} helpers at tau {tau}");
    }
}

#[test]
fn an_assignment_that_breaks_the_deployment_invariants_is_refused_when_decoded() {
    use veil_net::deploy::DeviceWork;
    use veil_net::wire::{Assignment, Envelope};
    let spec = veil_spec::zoo::lenet5();
    let owners = vec![vec![0], vec![1, 1, 2, 2, 1, 2], vec![1], vec![2], vec![0]];
    let deployment = Deployment::new(&spec, &owners, 0).expect("deploy");
    let peers: Vec<(usize, String, String)> = (0..3)
        .map(|d| (d, format!("n{d}"), format!("127.0.0.1:{}", 9000 + d)))
        .collect();
    let assignment = |deployment: Deployment| Assignment {
        epoch: 1,
        device: 1,
        deployment,
        work: DeviceWork {
            device: 1,
            stages: Vec::new(),
        },
        peers: peers.clone(),
        mask: None,
    };
    let decode = |a: Assignment| Envelope::decode(&Envelope::Assign(Box::new(a)).encode());
    assert!(
        decode(assignment(deployment.clone())).is_ok(),
        "a valid assignment"
    );
    // A stage without owners (a node would index owners[0]), a stage that reads more than the
    // one before finishes, no stages at all, and an owner that is no peer: all refused.
    let mut no_owners = deployment.clone();
    no_owners.stages[1].owners.clear();
    let mut wrong_chain = deployment.clone();
    wrong_chain.stages[2].finished_len += 1;
    let mut empty = deployment.clone();
    empty.stages.clear();
    let mut stranger = deployment.clone();
    stranger.stages[3].owners[0] = 7;
    for (what, bad) in [
        ("no owners", no_owners),
        ("wrong chain", wrong_chain),
        ("no stages", empty),
        ("unknown owner", stranger),
    ] {
        let err = decode(assignment(bad)).expect_err(what);
        assert!(err.to_string().contains("assignment"), "{what}: {err}");
    }
}

/// Nodes of `dep` with `params`, their partial sums masked with keys dealt from `seed` when
/// `masked`.
fn nodes_of(
    dep: &Deployment,
    params: &[(Vec<f32>, Vec<f32>)],
    devices: usize,
    masked: bool,
    seed: u64,
) -> HashMap<usize, Node> {
    let ids: Vec<usize> = (0..devices).collect();
    let mut keys = veil_net::mask::deal(&ids, &mut rand_chacha::ChaCha20Rng::seed_from_u64(seed));
    ids.iter()
        .map(|&d| {
            let mut n = Node::new(dep.clone(), dep.work_of(d, params));
            if masked {
                n.mask_partial_sums(keys.remove(&d).expect("keys"))
                    .expect("masks");
            }
            (d, n)
        })
        .collect()
}

/// Masked partial sums give the plain logits within the fixed-point bound: each reduced
/// element is off by at most `holders * 2^-17`, ReLU and max pooling do not grow it, and each
/// later dense layer grows it by at most its largest row sum of absolute weights.
#[test]
fn masked_partial_sums_match_plain_within_the_fixed_point_bound() {
    let spec = veil_spec::zoo::lenet5();
    let model = Model::init(spec.clone(), 3).expect("model");
    let params = model.compute_layer_params().expect("parameters");
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let inputs: Vec<Vec<f32>> = (0..6)
        .map(|_| (0..784).map(|_| rng.random_range(0.0..1.0)).collect())
        .collect();
    let row_sum = |(w, b): &(Vec<f32>, Vec<f32>)| {
        w.chunks(w.len() / b.len())
            .map(|row| row.iter().map(|x| x.abs()).sum::<f32>())
            .fold(0.0f32, f32::max)
    };
    for trial in 0..6 {
        let conv2: Vec<usize> = (0..6).map(|_| 1 + rng.random_range(0..4)).collect();
        let holders = {
            let mut h = conv2.clone();
            h.sort_unstable();
            h.dedup();
            h.len()
        };
        let owners = vec![vec![0], conv2, vec![1 + trial % 4], vec![1], vec![0]];
        let dep = Deployment::new(&spec, &owners, 0).expect("deploy");
        let (plain, plain_bytes) = run(
            &mut nodes_of(&dep, &params, 5, false, 0),
            0,
            &inputs,
            &mut |_, _| {},
        );
        let mut masked_seen = 0;
        let (masked, masked_bytes) = run(
            &mut nodes_of(&dep, &params, 5, true, trial as u64),
            0,
            &inputs,
            &mut |_, m| masked_seen += usize::from(m.payload == Payload::Masked),
        );
        let bound = (holders as f32 * veil_net::mask::rounding_bound())
            * row_sum(&params[2])
            * row_sum(&params[3])
            * row_sum(&params[4])
            + 1e-4;
        for (r, (p, m)) in plain.iter().zip(&masked).enumerate() {
            for (a, b) in p.iter().zip(m) {
                assert!(
                    (a - b).abs() <= bound,
                    "trial {trial} request {r}: {a} vs {b} (bound {bound})"
                );
            }
        }
        if holders > 1 {
            assert!(masked_seen > 0, "trial {trial}: no masked message");
            // Ring elements are 8 bytes, plain values 4: partial-sum links cost twice as much.
            assert!(masked_bytes > plain_bytes, "trial {trial}");
        }
    }
}

/// What the finisher of a map sees of one other device's masked partial sum does not depend on
/// the input: over 400 requests, every bit of the observed element is 1 about half the time
/// for an all-zero and for an all-one image alike (within 6 standard deviations). In plain mode
/// the same observation is the partial sum itself and tells the two images apart.
#[test]
fn one_masked_partial_sum_looks_uniform_whatever_the_input() {
    let spec = veil_spec::zoo::lenet5();
    let model = Model::init(spec.clone(), 5).expect("model");
    let params = model.compute_layer_params().expect("parameters");
    // conv2 held by devices 1, 2, 3; fc1 (which finishes conv2's maps) on device 4.
    let owners = vec![vec![0], vec![1, 1, 2, 2, 3, 3], vec![4], vec![4], vec![0]];
    let dep = Deployment::new(&spec, &owners, 0).expect("deploy");
    let requests = 400;
    let observe = |masked: bool, pixel: f32| {
        let inputs = vec![vec![pixel; 784]; requests];
        let mut seen: Vec<u64> = Vec::new();
        let mut nodes = nodes_of(&dep, &params, 5, masked, 9);
        run(&mut nodes, 0, &inputs, &mut |to, m| {
            if to == 4 && m.from == 1 && m.stage == 1 {
                match m.payload {
                    Payload::Masked => seen.push(m.ring[0].1[7]),
                    _ => seen.push(u64::from(m.channels[0].1[7].to_bits())),
                }
            }
        });
        assert_eq!(seen.len(), requests);
        seen
    };
    let sigma = (0.25 / requests as f64).sqrt();
    for pixel in [0.0f32, 1.0] {
        let seen = observe(true, pixel);
        for bit in 0..64 {
            let ones = seen.iter().filter(|&&x| x >> bit & 1 == 1).count() as f64;
            let share = ones / requests as f64;
            assert!(
                (share - 0.5).abs() < 6.0 * sigma,
                "pixel {pixel} bit {bit}: {share}"
            );
        }
    }
    let (zeros, ones) = (observe(false, 0.0), observe(false, 1.0));
    assert!(
        zeros.iter().all(|x| *x == zeros[0]) && zeros[0] != ones[0],
        "plain partial sums reveal the input"
    );
}

/// The coordinator's planner takes a `veil profile` JSON (`--profile`) and says so when a
/// model has no built-in profile.
#[test]
fn a_planner_takes_a_measured_profile_and_names_the_flag_when_none_is_built_in() {
    use veil_net::planner::Planner;
    use veil_plan::Budgets;
    let unprofiled = veil_spec::zoo::model("lenet_large").expect("zoo");
    let Err(err) = Planner::new(unprofiled, 0.8, Budgets::default(), Vec::new()) else {
        panic!("lenet_large has no built-in profile");
    };
    assert!(err.to_string().contains("--profile"), "{err}");
    let profile = veil_plan::privacy::Profile::from_json_str(include_str!(
        "../../../docs/results/profile-lenet5-mnist.json"
    ))
    .expect("profile");
    let spec = veil_spec::zoo::lenet5();
    let params = Model::init(spec.clone(), 1)
        .expect("model")
        .compute_layer_params()
        .expect("parameters");
    // The built-in profile (worst pool1 map 0.926) blocks conv2 below that tau on any fleet.
    let strict = Planner::new(spec.clone(), 0.8, Budgets::default(), params.clone()).expect("p");
    assert_eq!(strict.blocked_stage(), Some("conv2"));
    let loose = Planner::new(spec.clone(), 0.95, Budgets::default(), params.clone()).expect("p");
    assert_eq!(loose.blocked_stage(), None);
    assert!(Planner::with_profile(spec, &profile, 0.8, Budgets::default(), params).is_ok());
}

/// A recording node observes exactly what it receives: the finished maps it holds, every
/// holder's partial sum of the maps it finishes (plain: the values, which add up with the bias
/// to the recorded sum; masked: ring elements only) and the complete pre-activation sums,
/// which masking leaves equal within the fixed-point bound.
#[test]
fn recorded_views_are_what_a_node_receives_and_masking_hides_only_the_contributions() {
    use veil_net::views::{Seen, assemble};
    let spec = veil_spec::zoo::lenet5();
    let model = Model::init(spec.clone(), 5).expect("model");
    let params = model.compute_layer_params().expect("parameters");
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let inputs: Vec<Vec<f32>> = (0..3)
        .map(|_| (0..784).map(|_| rng.random_range(0.0..1.0)).collect())
        .collect();
    // conv2's six input maps on devices 1-3; device 1 runs fc1, so it finishes every conv2 map.
    let owners = vec![vec![0], vec![1, 2, 1, 3, 2, 3], vec![1], vec![2], vec![0]];
    let dep = Deployment::new(&spec, &owners, 0).expect("deploy");
    let mut views = Vec::new();
    for masked in [false, true] {
        let mut nodes = nodes_of(&dep, &params, 4, masked, 9);
        nodes.values_mut().for_each(Node::record_views);
        run(&mut nodes, 0, &inputs, &mut |_, _| {});
        let seen = nodes.get_mut(&1).expect("device 1").take_views();
        views.push(assemble(seen).expect("lines up"));
    }
    let (plain, masked) = (&views[0], &views[1]);
    assert_eq!(plain.requests, vec![0, 1, 2]);
    let count =
        |v: &veil_net::views::DeviceViews, s: Seen| v.parts.iter().filter(|p| p.seen == s).count();
    // Two held pool1 maps from the source; 16 conv2 maps, 3 holders each.
    for v in [plain, masked] {
        assert_eq!(count(v, Seen::Finished), 2);
        assert_eq!(count(v, Seen::Sum), 16);
    }
    assert_eq!(
        (count(plain, Seen::Partial), count(plain, Seen::Masked)),
        (48, 0)
    );
    assert_eq!(
        (count(masked, Seen::Partial), count(masked, Seen::Masked)),
        (0, 48)
    );
    let plane = 100; // conv2's 10 x 10 output
    let bias = &params[1].1;
    for (r, (pv, mv)) in plain.values.iter().zip(&masked.values).enumerate() {
        // Plain: finished maps, then partial sums (channel-major, 3 senders), then sums.
        let partial = &pv[2 * 196..2 * 196 + 48 * plane];
        let sums = &pv[2 * 196 + 48 * plane..];
        let masked_sums = &mv[2 * 196..];
        assert_eq!(masked_sums.len(), sums.len());
        for q in 0..16 {
            for i in 0..plane {
                let added: f32 = (0..3).map(|s| partial[(3 * q + s) * plane + i]).sum();
                let sum = sums[q * plane + i];
                assert!((added + bias[q] - sum).abs() < 1e-4, "request {r} map {q}");
                let bound = 3.0 * veil_net::mask::rounding_bound() + 1e-6;
                assert!((masked_sums[q * plane + i] - sum).abs() <= bound);
            }
        }
    }
}

/// A request id is served once per plan epoch: replaying any message of a finished request
/// (which would make a holder repeat its masked contribution under the same mask) is
/// refused, at the source and at every helper, and so is starting the id again.
#[test]
fn a_finished_request_replayed_is_refused_everywhere() {
    let spec = veil_spec::zoo::lenet5();
    let model = Model::init(spec.clone(), 6).expect("model");
    let params = model.compute_layer_params().expect("parameters");
    let owners = vec![vec![0], vec![1, 2, 1, 3, 2, 3], vec![1], vec![2], vec![0]];
    let dep = Deployment::new(&spec, &owners, 0).expect("deploy");
    let mut nodes = nodes_of(&dep, &params, 4, true, 11);
    let input: Vec<f32> = (0..784).map(|i| (i % 7) as f32 / 7.0).collect();
    let mut seen: Vec<(usize, Message)> = Vec::new();
    run(&mut nodes, 0, std::slice::from_ref(&input), &mut |to, m| {
        seen.push((to, m.clone()))
    });
    assert!(seen.iter().any(|(to, _)| *to != 0), "helpers took part");
    for (to, msg) in seen {
        let err = nodes
            .get_mut(&to)
            .expect("node")
            .handle(msg)
            .expect_err("a replay is refused");
        assert!(err.to_string().contains("already served"), "{err}");
    }
    let source = nodes.get_mut(&0).expect("source");
    let err = source.start(0, &input).expect_err("id 0 again");
    assert!(err.to_string().contains("already served"), "{err}");
    // The next id runs as usual.
    assert!(source.start(1, &input).is_ok());
}
