//! Hostile experiment files: every reproduction of issue #18 for `veil simulate --config`
//! is refused with an error, or runs in bounded time, instead of panicking or hanging.

use std::time::{Duration, Instant};

use veil_plan::experiment::Experiment;

/// An experiment file with `top` top-level keys, a `[budgets]` table body and `models`.
fn experiment(top: &str, budgets: &str, models: &str) -> String {
    format!(
        "{top}requests = 40\ndevices = [6]\ntaus = [0.8]\nstrategies = [\"distprivacy\"]\n\
         [budgets]\n{budgets}\n[[mixes]]\nlabel = \"m\"\nclasses = [\"rpi3\", \"nexus5\"]\n\
         [[workloads]]\nlabel = \"w\"\nmodels = {models}\n"
    )
}

#[test]
fn a_workload_without_models_is_refused() {
    let err = Experiment::from_toml_str(&experiment("", "", "[]"))
        .expect_err("refused")
        .to_string();
    assert!(err.contains("no model"), "{err}");
}

#[test]
fn absurd_counts_and_budgets_are_refused_before_allocating() {
    for (top, budgets) in [
        ("cameras = 1000000000\n", ""),
        ("", "period_s = -1.0"),
        ("", "compute = nan"),
    ] {
        let text = experiment(top, budgets, "[\"lenet5\"]");
        assert!(Experiment::from_toml_str(&text).is_err(), "{top}{budgets}");
    }
}

/// Arrival rates and periods that make almost every period empty: the simulation skips empty
/// periods, so it ends at once (it used to loop once per empty period, practically forever).
#[test]
fn tiny_rates_and_periods_finish_quickly() {
    for (top, budgets) in [
        ("lambda = 1e-300\n", ""),
        ("", "period_s = 1e-300"),
        ("lambda = 1e-300\n", "period_s = 1e-300"),
    ] {
        let e =
            Experiment::from_toml_str(&experiment(top, budgets, "[\"lenet5\"]")).expect("valid");
        let started = Instant::now();
        let rows = e.run(&mut |_| {}).expect("runs");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].result.requests, 40);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{top}{budgets}"
        );
    }
}
