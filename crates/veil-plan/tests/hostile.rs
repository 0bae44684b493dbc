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

/// Rates and periods outside the documented ranges (`LAMBDA_RANGE`, `PERIOD_RANGE_S`) are
/// refused: `lambda = 1e-300` or `period_s = 1e-300` used to loop once per empty period.
#[test]
fn absurd_rates_and_periods_are_refused() {
    for (top, budgets) in [
        ("lambda = 1e-300\n", ""),
        ("lambda = 1e300\n", ""),
        ("", "period_s = 1e-300"),
        ("", "period_s = 1e300"),
    ] {
        let text = experiment(top, budgets, "[\"lenet5\"]");
        assert!(Experiment::from_toml_str(&text).is_err(), "{top}{budgets}");
    }
}

/// At the edges of the ranges almost every period is empty: the simulation skips empty
/// periods, so it still ends at once.
#[test]
fn the_slowest_rate_and_shortest_period_allowed_finish_quickly() {
    let (lambda, period) = (
        veil_plan::experiment::LAMBDA_RANGE.0,
        veil_plan::fleet::PERIOD_RANGE_S.0,
    );
    for (top, budgets) in [
        (format!("lambda = {lambda:e}\n"), String::new()),
        (String::new(), format!("period_s = {period:e}")),
        (
            format!("lambda = {lambda:e}\n"),
            format!("period_s = {period:e}"),
        ),
    ] {
        let e =
            Experiment::from_toml_str(&experiment(&top, &budgets, "[\"lenet5\"]")).expect("valid");
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
