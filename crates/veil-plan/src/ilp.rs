//! The exact placement: DistPrivacy's ILP (8a-8i) for the requests of one period, built with
//! good_lp and solved by microlp (pure Rust) or HiGHS (the `highs` feature; see
//! [`crate::milp`]), with a time limit, a warm start and the achieved gap.
//!
//! **Count form.** All segments of a stage cost the same (multiplications, weights, bytes), so
//! a placement is fully described by `n[r][s][d]`, the number of segments of stage `s` of
//! request `r` on device `d` (`n = sum_p A[r][s][p][d]` of the paper). veil solves the ILP in
//! that form: the same optimum without the `P!` symmetric copies of every solution.
//! [`ExactPlan::paper_binaries`] reports the size of the paper's binary form as well.
//!
//! Linearisation (every product is of a binary and a bounded integer):
//! - `h[r][s][d]` = device `d` holds a segment of stage `s`: `n <= N_s h`.
//! - `m[r][s]` = stage `s` has two or more holders: `sum_d h <= 1 + (D - 1) m`. The next stage
//!   then receives partial sums (`input_bytes_partial`) instead of finished maps
//!   (`input_bytes_whole`); `m` only raises costs, so at the optimum it is 1 exactly when
//!   needed.
//! - Latency of stage `s` (eqs. 5, 7): for every pair of a possible sender `i` and receiver
//!   `j != i`, `L[r][s] >= 8/rho_i (whole n_j + (partial - whole) q_j) + c_s/e_j n_j -
//!   M (1 - h[s-1][i])` with `q_j >= n_j - N_s (1 - m[s-1])`; and `L >= c_s/e_j n_j`.
//! - Bytes sent by `i` for stage `s`: `whole z_i + (partial - whole) w_i` with
//!   `z_i >= N_s - n_i - N_s (1 - h[s-1][i])` and `w_i >= z_i - N_s (1 - m[s-1])`.
//!
//! The objective is the sum over requests and stages of `L`, which equals the sum of
//! [`crate::request_cost`] latencies of the returned placements (a test checks it).

use good_lp::{
    Expression, ProblemVariables, Variable, VariableDefinition, constraint::Constraint, variable,
};
use serde::Serialize;

pub use crate::milp::ExactSolver;
use crate::milp::{self, Model};

use crate::placement::{Placement, budgets, counts, rates, stage_latencies};
use crate::privacy::StageCap;
use crate::{Fleet, ModelPlan, PlanError, Stage};

/// Settings of an exact solve.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExactConfig {
    /// Which MILP solver (default: [`ExactSolver::preferred`]).
    pub solver: ExactSolver,
    /// Wall-clock limit for the solver, seconds.
    pub time_limit_s: f64,
    /// Solver threads for HiGHS (1 keeps results reproducible; microlp uses one).
    pub threads: u32,
}

impl Default for ExactConfig {
    fn default() -> Self {
        ExactConfig {
            solver: ExactSolver::preferred(),
            time_limit_s: 60.0,
            threads: 1,
        }
    }
}

/// What the solver returned.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExactPlan {
    /// One placement per request, in request order.
    pub placements: Vec<Placement>,
    /// Sum of request latencies of the incumbent, seconds.
    pub objective_s: f64,
    /// Relative MIP gap reported by the solver (0 when optimality is proven; NaN when the
    /// solver reports none).
    pub gap: f64,
    /// Whether optimality was proven (within the solver's default tolerance).
    pub optimal: bool,
    /// The solver that found it.
    pub solver: ExactSolver,
    /// The solver's status.
    pub status: String,
    /// Integer and binary columns of the count form solved.
    pub integer_columns: usize,
    /// Binaries of the paper's form (one per segment, helper and request).
    pub paper_binaries: usize,
    /// Seconds the solver took.
    pub seconds: f64,
}

/// A request of the period: plan index and the global index of its camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Request {
    /// Index into the plans.
    pub model: usize,
    /// Global device index of its camera.
    pub source: usize,
}

/// A variable and its column (good_lp creates columns in the order variables are added).
#[derive(Clone, Copy, Debug)]
struct Var {
    var: Variable,
    col: usize,
}

impl From<Var> for Expression {
    fn from(v: Var) -> Expression {
        Expression::from(v.var)
    }
}

/// The problem's variables, numbering columns as they are added.
struct Columns {
    vars: ProblemVariables,
    list: Vec<Variable>,
}

impl Columns {
    fn add(&mut self, def: VariableDefinition) -> Var {
        let var = self.vars.add(def);
        self.list.push(var);
        Var {
            var,
            col: self.list.len() - 1,
        }
    }
}

/// Per request and stage: the count of segments per device, as variables or constants.
enum Counts {
    /// Source-only stage: all `N` segments on this device.
    Fixed(usize),
    /// Helper stage: one integer per helper.
    Free(Vec<Var>),
}

/// The columns of one stage of one request, kept for the warm start and the extraction.
struct StageVars {
    counts: Counts,
    /// `h` per helper (free stages).
    holds: Vec<Var>,
    /// `m` (free stages).
    many: Option<Var>,
    latency: Var,
    /// `q_j = m[s-1] n_j` per receiving device `j`.
    q: QVars,
    /// `z_i = h[s-1][i] (N_s - n_i)` and `w_i = m[s-1] z_i` per sending device `i`.
    zw: ZwVars,
}

/// `(j, q_j)` per receiving device `j` of a stage.
type QVars = Vec<(usize, Var)>;

/// `(i, z_i, w_i)` per sending device `i` of a stage (`w_i` only when the previous stage may
/// have several holders).
type ZwVars = Vec<(usize, Var, Option<Var>)>;

/// Solves the period's `requests` exactly on `fleet` (full budgets), starting from `start`
/// (one placement per request, e.g. the greedy's) when given. `Ok(None)`: infeasible, or no
/// solution found within the time limit.
pub fn solve_exact(
    fleet: &Fleet,
    plans: &[ModelPlan],
    requests: &[Request],
    start: Option<&[Placement]>,
    cfg: &ExactConfig,
) -> Result<Option<ExactPlan>, PlanError> {
    check_size(fleet, plans, requests)?;
    let rates = rates(fleet);
    let mut ilp = Builder::new(fleet, &rates);
    let mut all: Vec<Vec<StageVars>> = Vec::with_capacity(requests.len());
    for req in requests {
        let plan = request_plan(plans, req, ilp.helpers, ilp.devices)?;
        let stages = ilp.add_request(req.source, plan);
        all.push(stages);
    }
    ilp.add_budgets(fleet);
    let warm_start = match start {
        Some(start) => Some(warm_start(
            plans,
            requests,
            start,
            &all,
            &rates,
            ilp.helpers,
            ilp.vars.list.len(),
        )?),
        None => None,
    };
    let Builder {
        vars,
        cons,
        objective,
        integer_columns,
        paper_binaries,
        ..
    } = ilp;
    let model = Model {
        problem: vars.vars.minimise(objective),
        constraints: cons,
        columns: vars.list,
        warm_start,
    };
    let Some(solved) = milp::solve(model, cfg)? else {
        return Ok(None);
    };
    let placements = extract_placements(plans, requests, &all, &solved.values);
    Ok(Some(ExactPlan {
        placements,
        objective_s: solved.objective,
        gap: solved.gap,
        optimal: solved.optimal,
        solver: cfg.solver,
        status: solved.status,
        integer_columns,
        paper_binaries,
        seconds: solved.seconds,
    }))
}

/// The plan `req` names, after checking that the plan exists and that `req.source` is a camera
/// (global index in `helpers..devices`).
/// Most placement columns (requests x stages x helpers) the exact ILP is built for: past it
/// the model alone takes gigabytes and no solver finishes; the greedy is the tool there.
pub const MAX_EXACT_COLUMNS: usize = 2_000_000;

/// Refuses an instance whose ILP would pass [`MAX_EXACT_COLUMNS`], before building anything.
fn check_size(fleet: &Fleet, plans: &[ModelPlan], requests: &[Request]) -> Result<(), PlanError> {
    let stages: usize = requests
        .iter()
        .map(|r| plans.get(r.model).map_or(0, |p| p.stages.len()))
        .fold(0, usize::saturating_add);
    let columns = stages.saturating_mul(fleet.helpers.len().max(1));
    if columns > MAX_EXACT_COLUMNS {
        return Err(PlanError::config(
            "exact",
            format!(
                "{columns} placement columns (requests x stages x helpers) pass the exact solver's limit of {MAX_EXACT_COLUMNS}; use the greedy"
            ),
        ));
    }
    Ok(())
}

fn request_plan<'p>(
    plans: &'p [ModelPlan],
    req: &Request,
    helpers: usize,
    devices: usize,
) -> Result<&'p ModelPlan, PlanError> {
    let plan = plans.get(req.model).ok_or_else(|| {
        PlanError::config(
            "exact",
            format!("request names plan {} of {}", req.model, plans.len()),
        )
    })?;
    if req.source < helpers || req.source >= devices {
        return Err(PlanError::config(
            "exact",
            format!("device {} is not a camera", req.source),
        ));
    }
    Ok(plan)
}

/// The ILP under construction: its columns, constraints and objective, the per-device
/// compute, memory and sent-bytes expressions that the budgets bound at the end, and the
/// column counts reported in [`ExactPlan`].
///
/// Invariant: columns and constraints are added in a fixed order (request by request, stage
/// by stage), so the column numbers in [`StageVars`] are the solver's column indices.
struct Builder<'a> {
    /// Helpers: global devices `0..helpers`; cameras follow.
    helpers: usize,
    /// Helpers and cameras.
    devices: usize,
    /// `(rate_bps, macs_per_s)` per global device ([`rates`]).
    rates: &'a [(f64, f64)],
    vars: Columns,
    cons: Vec<Constraint>,
    objective: Expression,
    compute: Vec<Expression>,
    memory: Vec<Expression>,
    sent: Vec<Expression>,
    integer_columns: usize,
    paper_binaries: usize,
}

/// Per-stage constants of the transfer constraints of stage `s` (`s > 0`).
struct Transfer {
    /// `N_s`: segments of the stage.
    n_s: f64,
    /// Input bytes of one segment when the previous stage had a single holder.
    whole: f64,
    /// Extra bytes per segment when the previous stage had several holders (`>= 0`).
    delta: f64,
    /// The larger of the two per-segment sizes, for the big-M.
    biggest: f64,
    /// Multiplications of one segment of the stage.
    macs: f64,
}

impl<'a> Builder<'a> {
    /// An empty model over `fleet`'s devices; `rates` is [`rates`]`(fleet)`.
    fn new(fleet: &Fleet, rates: &'a [(f64, f64)]) -> Self {
        let helpers = fleet.helpers.len();
        let devices = helpers + fleet.sources.len();
        Builder {
            helpers,
            devices,
            rates,
            vars: Columns {
                vars: ProblemVariables::new(),
                list: Vec::new(),
            },
            cons: Vec::new(),
            objective: Expression::default(),
            compute: vec![Expression::default(); devices],
            memory: vec![Expression::default(); devices],
            sent: vec![Expression::default(); devices],
            integer_columns: 0,
            paper_binaries: 0,
        }
    }

    /// Adds the variables and constraints of one request of `plan` from camera `source`
    /// (already checked by [`request_plan`]): per stage a latency column in the objective,
    /// the segment counts, the compute-latency bounds and, from the second stage on, the
    /// transfer latency and sent-bytes linearisation. Returns the stages' variables in order.
    fn add_request(&mut self, source: usize, plan: &ModelPlan) -> Vec<StageVars> {
        let mut stages: Vec<StageVars> = Vec::with_capacity(plan.stages.len());
        for (s, stage) in plan.stages.iter().enumerate() {
            let n_s = stage.segments as f64;
            let latency = self.vars.add(variable().min(0.0));
            self.objective += latency.var;
            let (counts, holds, many) = if stage.source_only {
                self.add_fixed_counts(source, stage)
            } else {
                self.add_free_counts(stage)
            };
            let receivers = receivers(&counts, n_s);
            self.add_compute_latency(stage, &receivers, latency);
            let (q, zw) = match s.checked_sub(1).and_then(|p| stages.get(p)) {
                Some(prev) => self.add_transfers(stage, prev, &receivers, latency),
                None => (Vec::new(), Vec::new()),
            };
            stages.push(StageVars {
                counts,
                holds,
                many,
                latency,
                q,
                zw,
            });
        }
        self.add_joint_views(plan, &stages);
        stages
    }

    /// Under the sound rule: `h[s][d] + h[t][d] <= 1` for every exclusive stage `s`, every
    /// other helper stage `t` and helper `d` (a helper holding an exclusive stage holds
    /// nothing else of the request).
    fn add_joint_views(&mut self, plan: &ModelPlan, stages: &[StageVars]) {
        for (s, sv) in stages.iter().enumerate() {
            if !plan.stages[s].exclusive {
                continue;
            }
            for (t, tv) in stages.iter().enumerate() {
                if t == s || tv.holds.is_empty() || (plan.stages[t].exclusive && t < s) {
                    continue;
                }
                for (a, b) in sv.holds.iter().zip(&tv.holds) {
                    self.cons
                        .push((Expression::from(*a) + Expression::from(*b)).leq(1.0));
                }
            }
        }
    }

    /// A source-only stage: all segments on `source`, charged to its compute and memory. No
    /// columns.
    fn add_fixed_counts(
        &mut self,
        source: usize,
        stage: &Stage,
    ) -> (Counts, Vec<Var>, Option<Var>) {
        let n_s = stage.segments as f64;
        self.compute[source] += n_s * stage.segment_macs as f64;
        self.memory[source] += n_s * stage.segment_weight_bytes as f64;
        (Counts::Fixed(source), Vec::new(), None)
    }

    /// A helper stage: per helper an integer count `n_d` (bounded by the stage's cap) and a
    /// binary `h_d`, plus the binary `m`, with `sum n = N_s`, `n_d <= N_s h_d` and
    /// `sum h <= 1 + (D - 1) m`. Returns `(Counts::Free(n), h, Some(m))`.
    fn add_free_counts(&mut self, stage: &Stage) -> (Counts, Vec<Var>, Option<Var>) {
        let helpers = self.helpers;
        let n_s = stage.segments as f64;
        self.paper_binaries += stage.segments * helpers;
        let upper = match stage.cap {
            StageCap::Free => stage.segments,
            StageCap::AtMost(c) => c.min(stage.segments),
        };
        let n: Vec<Var> = (0..helpers)
            .map(|_| self.vars.add(variable().integer().bounds(0..=upper as i32)))
            .collect();
        let h: Vec<Var> = (0..helpers)
            .map(|_| self.vars.add(variable().binary()))
            .collect();
        let m = self.vars.add(variable().binary());
        self.integer_columns += 2 * helpers + 1;
        let total: Expression = n.iter().map(|v| v.var).sum();
        self.cons.push(total.eq(n_s));
        for d in 0..helpers {
            self.cons
                .push((Expression::from(n[d]) - n_s * h[d].var).leq(0.0));
            self.compute[d] += stage.segment_macs as f64 * n[d].var;
            self.memory[d] += stage.segment_weight_bytes as f64 * n[d].var;
        }
        let holders: Expression = h.iter().map(|v| v.var).sum();
        self.cons
            .push((holders - (helpers as f64 - 1.0) * m.var).leq(1.0));
        (Counts::Free(n), h, Some(m))
    }

    /// `L >= c_s / e_j n_j` for every receiver `j` of the stage.
    fn add_compute_latency(
        &mut self,
        stage: &Stage,
        receivers: &[(usize, Expression)],
        latency: Var,
    ) {
        for (j, n_j) in receivers {
            let comp = stage.segment_macs as f64 / self.rates[*j].1;
            self.cons.push((comp * n_j.clone() - latency.var).leq(0.0));
        }
    }

    /// The transfer part of stage `s > 0` whose previous stage is `prev`: the `q_j` columns,
    /// then per sender `i` the latency bounds and the `z_i` / `w_i` sent-bytes columns.
    /// Returns `(q, zw)` as stored in [`StageVars`].
    fn add_transfers(
        &mut self,
        stage: &Stage,
        prev: &StageVars,
        receivers: &[(usize, Expression)],
        latency: Var,
    ) -> (QVars, ZwVars) {
        let whole = stage.input_bytes_whole as f64;
        let t = Transfer {
            n_s: stage.segments as f64,
            whole,
            delta: (stage.input_bytes_partial as f64 - whole).max(0.0),
            biggest: whole.max(stage.input_bytes_partial as f64),
            macs: stage.segment_macs as f64,
        };
        // Senders of stage s: holders of s - 1 as (device, h as expression).
        let senders: Vec<(usize, Expression)> = match &prev.counts {
            Counts::Fixed(d) => vec![(*d, Expression::from(1.0))],
            Counts::Free(_) => prev
                .holds
                .iter()
                .enumerate()
                .map(|(d, &h)| (d, Expression::from(h)))
                .collect(),
        };
        let (q, q_vars) = self.add_partial_counts(&t, prev.many, receivers);
        let mut zw_vars = Vec::with_capacity(senders.len());
        for (i, h_i) in &senders {
            self.add_transfer_latency(&t, (*i, h_i), receivers, &q, latency);
            let (z, w) = self.add_sent_bytes(&t, (*i, h_i), prev.many, receivers);
            zw_vars.push((*i, z, w));
        }
        (q_vars, zw_vars)
    }

    /// `q_j = m[s-1] n_j` per receiver (`q_j >= n_j - N_s (1 - m)`), or `None` per receiver
    /// when the previous stage has one holder for sure (`many` is `None`). Returns the
    /// per-receiver options (aligned with `receivers`) and the `(j, q_j)` list.
    fn add_partial_counts(
        &mut self,
        t: &Transfer,
        many: Option<Var>,
        receivers: &[(usize, Expression)],
    ) -> (Vec<Option<Var>>, QVars) {
        let mut q_vars = Vec::new();
        let q = receivers
            .iter()
            .map(|(j, n_j)| {
                many.map(|m| {
                    let q = self.vars.add(variable().min(0.0));
                    self.cons
                        .push((n_j.clone() - t.n_s * (1.0 - m.var) - q.var).leq(0.0));
                    q_vars.push((*j, q));
                    q
                })
            })
            .collect();
        (q, q_vars)
    }

    /// For sender `i` (holding flag `h_i`) and every receiver `j != i`:
    /// `L >= 8/rho_i (whole n_j + delta q_j) + c_s/e_j n_j - M (1 - h_i)`.
    fn add_transfer_latency(
        &mut self,
        t: &Transfer,
        (i, h_i): (usize, &Expression),
        receivers: &[(usize, Expression)],
        q: &[Option<Var>],
        latency: Var,
    ) {
        let rate = self.rates[i].0;
        for ((j, n_j), q_j) in receivers.iter().zip(q) {
            if i == *j {
                continue;
            }
            let comp = t.macs / self.rates[*j].1;
            let mut rhs = (8.0 * t.whole / rate + comp) * n_j.clone();
            if let Some(q) = q_j {
                rhs += 8.0 * t.delta / rate * q.var;
            }
            let big = 8.0 * t.biggest / rate * t.n_s;
            // L >= rhs - big (1 - h_i)
            self.cons
                .push((rhs - big * (1.0 - h_i.clone()) - latency.var).leq(0.0));
        }
    }

    /// Bytes sender `i` sends for the stage: `z_i >= N_s - n_i - N_s (1 - h_i)` and, when the
    /// previous stage may have several holders, `w_i >= z_i - N_s (1 - m)`; charges
    /// `whole z_i + delta w_i` to `i`'s sent bytes. Returns `(z_i, w_i)`.
    fn add_sent_bytes(
        &mut self,
        t: &Transfer,
        (i, h_i): (usize, &Expression),
        many: Option<Var>,
        receivers: &[(usize, Expression)],
    ) -> (Var, Option<Var>) {
        let own: Expression = receivers
            .iter()
            .find(|(j, _)| *j == i)
            .map_or(Expression::from(0.0), |(_, n)| n.clone());
        let z = self.vars.add(variable().min(0.0));
        self.cons
            .push((t.n_s - own - t.n_s * (1.0 - h_i.clone()) - z.var).leq(0.0));
        self.sent[i] += t.whole * z.var;
        let w = many.map(|m| {
            let w = self.vars.add(variable().min(0.0));
            self.cons
                .push((Expression::from(z) - t.n_s * (1.0 - m.var) - w.var).leq(0.0));
            self.sent[i] += t.delta * w.var;
            w
        });
        (z, w)
    }

    /// The per-device compute, memory and sent-bytes budgets of `fleet` (constraints 8b-8d).
    fn add_budgets(&mut self, fleet: &Fleet) {
        for (d, &(c, m, b)) in budgets(fleet).iter().enumerate() {
            self.cons.push(self.compute[d].clone().leq(c));
            self.cons.push(self.memory[d].clone().leq(m));
            self.cons.push(self.sent[d].clone().leq(b));
        }
    }
}

/// Receivers of a stage: `(device, count expression)` per device that may hold segments.
fn receivers(counts: &Counts, n_s: f64) -> Vec<(usize, Expression)> {
    match counts {
        Counts::Fixed(d) => vec![(*d, Expression::from(n_s))],
        Counts::Free(n) => n
            .iter()
            .enumerate()
            .map(|(d, &v)| (d, Expression::from(v)))
            .collect(),
    }
}

/// One placement per request from the solver's column values `cols` (one per column, in
/// column order): a helper stage puts `round(n_d)` segments on each helper `d`.
fn extract_placements(
    plans: &[ModelPlan],
    requests: &[Request],
    all: &[Vec<StageVars>],
    cols: &[f64],
) -> Vec<Placement> {
    let value = |v: Var| cols[v.col];
    requests
        .iter()
        .zip(all)
        .map(|(req, stages)| Placement {
            model: req.model,
            source: req.source,
            devices: stages
                .iter()
                .zip(&plans[req.model].stages)
                .map(|(sv, stage)| match &sv.counts {
                    Counts::Fixed(d) => vec![*d; stage.segments],
                    Counts::Free(n) => n
                        .iter()
                        .enumerate()
                        .flat_map(|(d, &v)| {
                            std::iter::repeat_n(d, value(v).round().max(0.0) as usize)
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

/// Column values for a warm start from `start`: every column set exactly as the
/// linearisation defines it, so the start is feasible whenever `start` is.
fn warm_start(
    plans: &[ModelPlan],
    requests: &[Request],
    start: &[Placement],
    all: &[Vec<StageVars>],
    rates: &[(f64, f64)],
    helpers: usize,
    columns: usize,
) -> Result<Vec<f64>, PlanError> {
    if start.len() != requests.len() {
        return Err(PlanError::config(
            "exact",
            "the warm start needs one placement per request",
        ));
    }
    let mut values = vec![0.0; columns];
    for ((placement, stages), req) in start.iter().zip(all).zip(requests) {
        let plan = &plans[req.model];
        if placement.devices.len() != plan.stages.len() {
            return Err(PlanError::config(
                "exact",
                "a warm-start placement does not match its model",
            ));
        }
        let lat = stage_latencies(plan, placement, rates);
        let mut prev: Vec<(usize, usize)> = Vec::new();
        for (s, sv) in stages.iter().enumerate() {
            let held = counts(&placement.devices[s]);
            let n_of = |d: usize| held.iter().find(|&&(e, _)| e == d).map_or(0, |&(_, c)| c) as f64;
            let n_s = plan.stages[s].segments as f64;
            let many_prev = if prev.len() > 1 { 1.0 } else { 0.0 };
            values[sv.latency.col] = lat[s];
            if let Counts::Free(n) = &sv.counts {
                for &(d, c) in &held {
                    if d >= helpers {
                        return Err(PlanError::config(
                            "exact",
                            "a warm start puts a helper stage on a camera",
                        ));
                    }
                    values[n[d].col] = c as f64;
                    values[sv.holds[d].col] = 1.0;
                }
                if let Some(m) = sv.many {
                    values[m.col] = if held.len() > 1 { 1.0 } else { 0.0 };
                }
            }
            for &(j, q) in &sv.q {
                values[q.col] = many_prev * n_of(j);
            }
            for &(i, z, w) in &sv.zw {
                let holds = prev.iter().any(|&(d, _)| d == i);
                let zv = if holds { n_s - n_of(i) } else { 0.0 };
                values[z.col] = zv;
                if let Some(w) = w {
                    values[w.col] = many_prev * zv;
                }
            }
            prev = held;
        }
    }
    Ok(values)
}
