//! `veil game`: JSON fields, figures and bad configurations.

mod common;

use common::{assert_bad_input, json, veil};

#[test]
fn default_scenario_json_has_every_field() {
    let v = json(&veil(&["game", "--json"]));
    for key in [
        "reward",
        "sp_utility",
        "epsilons",
        "vehicle_utilities",
        "iterations",
        "method",
        "vehicles",
        "unit_expense",
        "profit_coefficient",
        "eps_min",
        "eps_max",
        "accuracy_a",
        "accuracy_b",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    let n = v["vehicles"].as_array().expect("vehicles").len();
    assert_eq!(v["epsilons"].as_array().expect("eps").len(), n);
    assert!(v["vehicles"][0]["speed"].as_f64().is_some());
    assert_eq!(v["method"], "centralized");
    let d = json(&veil(&["game", "--method", "distributed", "--json"]));
    let (c, dd) = (
        v["sp_utility"].as_f64().expect("u"),
        d["sp_utility"].as_f64().expect("u"),
    );
    assert!((c - dd).abs() <= 1e-3 * c.abs());
    let l = json(&veil(&["game", "--method", "linear", "--json"]));
    assert!(l["sp_utility"].as_f64().expect("u") < c);
}

#[test]
fn config_files_are_read_and_checked() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = dir.path().join("g.toml");
    std::fs::write(
        &good,
        "vehicles = [{ speed = 8.0, privacy_value = 6.0 }, { speed = 12.0, privacy_value = 7.0 }, { speed = 10.0, privacy_value = 5.5 }]\n\
         unit_expense = 10.0\nprofit_coefficient = 1100.0\neps_min = 0.01\neps_max = 100.0\naccuracy_a = 0.2\naccuracy_b = 1.0\n",
    )
    .expect("write");
    let v = json(&veil(&[
        "game",
        "--config",
        good.to_str().expect("p"),
        "--json",
    ]));
    assert_eq!(v["vehicles"].as_array().expect("v").len(), 3);
    assert_eq!(v["profit_coefficient"], 1100.0);

    for (body, mention) in [
        (
            "vehicles = [{ speed = -8.0, privacy_value = 6.0 }, { speed = 12.0, privacy_value = 7.0 }]\nunit_expense = 10.0\nprofit_coefficient = 1000.0\neps_min = 0.1\neps_max = 10.0\naccuracy_a = 0.2\naccuracy_b = 1.0\n",
            "speed",
        ),
        (
            "vehicles = [{ speed = 8.0, privacy_value = 6.0 }, { speed = 12.0, privacy_value = 7.0 }]\nunit_expense = 10.0\nprofit_coefficient = 1000.0\neps_min = 5.0\neps_max = 1.0\naccuracy_a = 0.2\naccuracy_b = 1.0\n",
            "eps_max",
        ),
        (
            "vehicles = [{ speed = 8.0, privacy_value = 6.0 }]\nunit_expense = 10.0\nprofit_coefficient = 1000.0\neps_min = 0.1\neps_max = 10.0\naccuracy_a = 0.2\naccuracy_b = 1.0\n",
            "two vehicles",
        ),
        ("vehicles = 3\n", "g.toml"),
    ] {
        std::fs::write(&good, body).expect("write");
        assert_bad_input(
            &veil(&["game", "--config", good.to_str().expect("p")]),
            mention,
        );
    }
    assert_bad_input(&veil(&["game", "--method", "auction"]), "auction");
    assert_bad_input(&veil(&["game", "--figure", "5"]), "figure");
}

#[test]
fn figure_writes_csv_and_png() {
    let dir = tempfile::tempdir().expect("tmp");
    let v = json(&veil(&[
        "game",
        "--figure",
        "8",
        "--out",
        dir.path().to_str().expect("p"),
        "--json",
    ]));
    assert_eq!(v["rows"].as_array().expect("rows").len(), 18);
    let csv = std::fs::read_to_string(dir.path().join("fig8.csv")).expect("csv");
    assert!(csv.starts_with("figure,x_name,x,method"));
    let png = std::fs::read(dir.path().join("fig8.png")).expect("png");
    assert_eq!(&png[1..4], b"PNG");
}

#[test]
fn a_measured_accuracy_fit_replaces_the_placeholder_curve() {
    let dir = tempfile::tempdir().expect("tmp");
    let fit = dir.path().join("fit.toml");
    // The shape `veil defend dp` writes (its *-fit.toml).
    std::fs::write(
        &fit,
        "# A = a ln(b eps + 1)\naccuracy_a = 0.1883\naccuracy_b = 0.3084\nr2 = 0.83\nsource = \"gtsrb_cnn gtsrb conv4\"\n",
    )
    .expect("write");
    let fit_arg = fit.to_str().expect("utf-8");
    let v = json(&veil(&["game", "--accuracy-fit", fit_arg, "--json"]));
    assert_eq!(v["accuracy_a"].as_f64(), Some(0.1883));
    assert_eq!(v["accuracy_b"].as_f64(), Some(0.3084));
    let plain = json(&veil(&["game", "--json"]));
    assert_ne!(v["reward"], plain["reward"], "the fit changes the game");
    std::fs::write(&fit, "accuracy_a = 0.2\n").expect("write");
    assert_bad_input(&veil(&["game", "--accuracy-fit", fit_arg]), "accuracy_b");
    assert_bad_input(
        &veil(&["game", "--figure", "6", "--accuracy-fit", fit_arg]),
        "--accuracy-fit",
    );
}
