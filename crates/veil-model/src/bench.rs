//! Micro-benchmarks of the engine on any spec: training throughput (Adam, including batch
//! assembly; cross-entropy for a classifier, mean squared error against random target maps for
//! a spec whose output is maps, such as an attack decoder), single-sample inference latency and
//! batched inference throughput. Inputs are real samples when a dataset is given (cycled as needed), else seeded
//! uniform random values. The choice matters: burn-flex is measurably faster on inputs with
//! many zeros (MNIST digits) than on dense noise. Timings are wall-clock, release builds only.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use veil_data::Dataset;
use veil_spec::ModelSpec;

use crate::{Model, ModelError, TrainConfig};

/// How much work each measurement does.
#[derive(Clone, Debug, Serialize)]
pub struct BenchConfig {
    /// Training steps timed (after one warm-up epoch of 10 steps).
    pub train_steps: usize,
    /// Training batch size.
    pub train_batch: usize,
    /// Single-sample inferences timed.
    pub latency_iters: usize,
    /// Batched inferences timed.
    pub throughput_iters: usize,
    /// Batch size of the throughput measurement.
    pub throughput_batch: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            train_steps: 300,
            train_batch: 64,
            latency_iters: 2000,
            throughput_iters: 50,
            throughput_batch: 256,
        }
    }
}

/// What the training measurement trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchTask {
    /// A classifier (flat output): cross-entropy against labels.
    Classify,
    /// A spec whose output is maps (an inversion decoder): mean squared error against random
    /// target maps in `[0, 1)`.
    Regress,
}

impl BenchTask {
    /// The task a spec's output calls for.
    pub fn of(spec: &ModelSpec) -> Result<Self, ModelError> {
        Ok(match spec.output_shape()?.as_chw() {
            Some(_) => BenchTask::Regress,
            None => BenchTask::Classify,
        })
    }
}

/// Measured figures.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Model name.
    pub model: String,
    /// The spec measured (so that a reference implementation can build the same network).
    pub spec: ModelSpec,
    /// What the training measurement trained.
    pub task: BenchTask,
    /// Settings used.
    pub config: BenchConfig,
    /// Training steps per second.
    pub train_steps_per_second: f64,
    /// Training images per second.
    pub train_images_per_second: f64,
    /// Median latency of one single-sample forward pass (input upload and result read-back
    /// included), in milliseconds.
    pub latency_median_ms: f64,
    /// Single-sample inferences per second (mean over the run).
    pub single_inferences_per_second: f64,
    /// Batched forward passes per second.
    pub batches_per_second: f64,
    /// Images per second in batched inference.
    pub batched_images_per_second: f64,
    /// Rayon worker threads available to burn-flex.
    pub threads: usize,
    /// Where the inputs came from (`random` or a dataset name).
    pub inputs: String,
}

/// `n` samples for `spec`: cycled from `data` when given, else uniform noise in `[0, 1)`.
fn bench_dataset(
    spec: &ModelSpec,
    n: usize,
    classes: usize,
    seed: u64,
    data: Option<&Dataset>,
) -> Dataset {
    let per = spec.input_shape.numel();
    let shape = match *spec.input_shape.dims() {
        [c, h, w] => [c, h, w],
        _ => [1, 1, per],
    };
    let (samples, labels) = match data.filter(|d| !d.is_empty() && d.sample_len() == per) {
        Some(d) => {
            let idx = (0..n).map(|i| (i + seed as usize * 7919) % d.len());
            let mut samples = Vec::with_capacity(n * per);
            let mut labels = Vec::with_capacity(n);
            for i in idx {
                samples.extend_from_slice(d.sample(i));
                labels.push(d.labels[i].min(classes as u32 - 1));
            }
            (samples, labels)
        }
        None => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (
                (0..n * per).map(|_| rng.random::<f32>()).collect(),
                (0..n).map(|i| (i % classes) as u32).collect(),
            )
        }
    };
    Dataset {
        name: "bench".into(),
        shape,
        classes,
        samples,
        labels,
    }
}

/// Most bytes of training inputs a benchmark generates (the timed steps read distinct batches).
pub const MAX_BENCH_DATA_BYTES: usize = 1 << 30;

/// Runs the three measurements on `spec`.
pub fn bench(
    spec: &ModelSpec,
    cfg: &BenchConfig,
    threads: usize,
    data: Option<&Dataset>,
) -> Result<BenchReport, ModelError> {
    if cfg.train_steps > 100_000 || cfg.latency_iters > 10_000_000 || cfg.throughput_iters > 100_000
    {
        return Err(ModelError::Invalid(
            "benchmark too large: at most 100000 training steps, 1e7 latency and 100000 throughput iterations".into(),
        ));
    }
    // Inputs, plus the target maps a decoder trains against.
    let out_numel = spec.output_shape()?.numel();
    let sample_bytes = (spec.input_shape.numel().saturating_add(out_numel)).saturating_mul(4);
    let data_bytes = (cfg.train_batch.saturating_mul(cfg.train_steps)).saturating_mul(sample_bytes);
    if data_bytes > MAX_BENCH_DATA_BYTES {
        return Err(ModelError::Invalid(format!(
            "benchmark too large: {} training steps of batch {} need {} MiB of inputs, more than {} MiB",
            cfg.train_steps,
            cfg.train_batch,
            data_bytes >> 20,
            MAX_BENCH_DATA_BYTES >> 20
        )));
    }
    let classes = spec.output_shape()?.numel();
    let task = BenchTask::of(spec)?;
    if task == BenchTask::Regress && data.is_some() {
        return Err(ModelError::Invalid(format!(
            "{} outputs maps (a decoder): it trains on random features, not on a dataset",
            spec.name
        )));
    }
    let model = Model::init(spec.clone(), 0)?;
    let (model, train_steps_per_second) = match task {
        BenchTask::Classify => time_classifier(spec, model, cfg, classes, data)?,
        BenchTask::Regress => time_regression(spec, model, cfg)?,
    };

    let one = bench_dataset(spec, 1, classes, 3, data).samples;
    let run_one = |m: &Model| -> Result<Vec<f32>, ModelError> {
        m.forward(m.input(one.clone())?)?.into_values()
    };
    for _ in 0..50 {
        run_one(&model)?;
    }
    let mut times = Vec::with_capacity(cfg.latency_iters);
    let started = Instant::now();
    for _ in 0..cfg.latency_iters {
        let t = Instant::now();
        run_one(&model)?;
        times.push(t.elapsed().as_secs_f64());
    }
    let total_single = started.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let latency_median_ms = times.get(times.len() / 2).copied().unwrap_or(f64::NAN) * 1e3;

    let batch = bench_dataset(spec, cfg.throughput_batch, classes, 4, data).samples;
    let run_batch = |m: &Model| -> Result<Vec<f32>, ModelError> {
        m.forward(m.input(batch.clone())?)?.into_values()
    };
    for _ in 0..3 {
        run_batch(&model)?;
    }
    let started = Instant::now();
    for _ in 0..cfg.throughput_iters {
        run_batch(&model)?;
    }
    let batched = started.elapsed().as_secs_f64();
    let batches_per_second = cfg.throughput_iters as f64 / batched.max(1e-9);
    Ok(BenchReport {
        model: spec.name.clone(),
        spec: spec.clone(),
        task,
        config: cfg.clone(),
        train_steps_per_second,
        train_images_per_second: train_steps_per_second * cfg.train_batch as f64,
        latency_median_ms,
        single_inferences_per_second: cfg.latency_iters as f64 / total_single.max(1e-9),
        batches_per_second,
        batched_images_per_second: batches_per_second * cfg.throughput_batch as f64,
        threads,
        inputs: data.map_or_else(|| "random".to_string(), |d| d.name.clone()),
    })
}

/// Training steps per second of a classifier: a warm-up run of 10 steps, then `train_steps`
/// timed steps over distinct batches.
fn time_classifier(
    spec: &ModelSpec,
    model: Model,
    cfg: &BenchConfig,
    classes: usize,
    data: Option<&Dataset>,
) -> Result<(Model, f64), ModelError> {
    let warm = bench_dataset(spec, cfg.train_batch * 10, classes, 1, data);
    let tcfg = TrainConfig {
        epochs: 1,
        batch_size: cfg.train_batch,
        ..TrainConfig::default()
    };
    let (model, _) = crate::train(model, &warm, None, &tcfg, &mut |_| {})?;
    let train_data = bench_dataset(spec, cfg.train_batch * cfg.train_steps, classes, 2, data);
    let (model, report) = crate::train(model, &train_data, None, &tcfg, &mut |_| {})?;
    Ok((
        model,
        cfg.train_steps as f64 / report.train_seconds.max(1e-9),
    ))
}

/// Training steps per second of a decoder (mean squared error against random target maps),
/// timed as [`time_classifier`] times a classifier.
fn time_regression(
    spec: &ModelSpec,
    model: Model,
    cfg: &BenchConfig,
) -> Result<(Model, f64), ModelError> {
    let out_per = spec.output_shape()?.numel();
    let tcfg = TrainConfig {
        epochs: 1,
        batch_size: cfg.train_batch,
        ..TrainConfig::default()
    };
    let timed = |model: Model, steps: usize, seed: u64| {
        let n = cfg.train_batch * steps;
        let inputs = bench_dataset(spec, n, 1, seed, None).samples;
        let mut rng = ChaCha8Rng::seed_from_u64(seed + 100);
        let targets: Vec<f32> = (0..n * out_per).map(|_| rng.random::<f32>()).collect();
        crate::fit_regression(model, &inputs, &targets, &tcfg, &mut |_| {})
    };
    let (model, _) = timed(model, 10, 1)?;
    let (model, report) = timed(model, cfg.train_steps, 2)?;
    Ok((model, cfg.train_steps as f64 / report.seconds.max(1e-9)))
}

impl BenchReport {
    /// The figures in words, one line per workload.
    pub fn text(&self) -> String {
        let c = &self.config;
        format!(
            "{} ({} threads, {} inputs)\ntraining ({}), batch {}: {:.1} steps/s = {:.0} images/s\ninference, batch 1: median {:.3} ms, {:.0} inferences/s\ninference, batch {}: {:.1} batches/s = {:.0} images/s",
            self.model,
            self.threads,
            self.inputs,
            match self.task {
                BenchTask::Classify => "cross-entropy",
                BenchTask::Regress => "mean squared error",
            },
            c.train_batch,
            self.train_steps_per_second,
            self.train_images_per_second,
            self.latency_median_ms,
            self.single_inferences_per_second,
            c.throughput_batch,
            self.batches_per_second,
            self.batched_images_per_second
        )
    }
}

/// Threads the engine uses: `RAYON_NUM_THREADS` when set, else the machine's parallelism.
pub fn engine_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
