//! One device executing requests of a [`Deployment`] as messages arrive. Transport-free: a
//! node consumes a [`Message`] and returns the messages it sends ([`Outbox`]); a harness or a
//! network layer delivers them.
//!
//! Per request a node keeps the finished input channels it has received and the partial sums
//! it is reducing; as soon as every input of one of its stages is present it computes that
//! stage (partial sums of its channels, or the whole stage) and routes the result as
//! `veil_net::deploy` describes. Each stage runs once per request; a message for a stage or
//! channel the node does not hold is an error, never a panic.
//!
//! Every stage a node computes leaves a [`TraceRecord`] (device, stage, multiplications, wait
//! and compute time, bytes sent). Records ride on the node's next outgoing message of the
//! request; since every path of a request ends at the source's last stage, the source holds
//! the whole trace when the logits are complete ([`Completed`]).
//!
//! A node holds at most [`MAX_LIVE_REQUESTS`] requests; [`Node::expire`] drops those older
//! than an age (an attempt the source gave up on, or state a misbehaving peer opened). A
//! request whose state was dropped is never opened again in the node's epoch (a replay would
//! repeat its masks: see `served`).
//!
//! Key items: [`Node`], [`Message`], [`Payload`], [`TraceRecord`], [`Node::start`],
//! [`Node::handle`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::NetError;
use crate::deploy::{Deployment, DeviceWork, Stage, StageWork, apply_post};
use crate::mask::PairKeys;
use crate::views::{Observation, Seen};
use veil_spec::kernels::Linear;

mod receive;
mod served;

pub use served::SERVED_WINDOW;

/// What a message carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Payload {
    /// Finished output channels of `stage` (bias and post ops applied): inputs of the next
    /// stage, or the logits after the last stage.
    Finished,
    /// Partial sums of output channels of `stage` for their finisher to reduce.
    Partial,
    /// Masked partial sums in the ring ([`crate::mask`]): in [`Message::ring`], never in
    /// [`Message::channels`]; only their sum over all holders of the stage means anything.
    Masked,
}

/// One message between devices.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Message {
    /// Request id.
    pub request: u64,
    /// Stage whose output the channels are.
    pub stage: usize,
    /// Finished or partial.
    pub payload: Payload,
    /// Sender.
    pub from: usize,
    /// `(channel, values)`.
    pub channels: Vec<(usize, Vec<f32>)>,
    /// `(channel, ring elements)` of masked partial sums ([`Payload::Masked`] only).
    pub ring: Vec<(usize, Vec<u64>)>,
    /// Trace records of upstream computations of this request.
    pub trace: Vec<TraceRecord>,
}

/// One stage computed by one device for one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceRecord {
    /// Device.
    pub device: usize,
    /// Stage.
    pub stage: usize,
    /// Multiplications (multiply-accumulates) of the computation.
    pub macs: u64,
    /// Microseconds from the device's first message of the request to the start of the stage
    /// (waiting for inputs).
    pub wait_us: u64,
    /// Microseconds of computing (the emulated device time when the node emulates a slower
    /// device, see [`Node::emulate_speed`]).
    pub compute_us: u64,
    /// Value bytes the stage's outputs sent to other devices.
    pub sent_bytes: u64,
    /// Messages the stage's outputs sent to other devices.
    pub messages: u64,
}

/// A request finished at the source.
#[derive(Clone, Debug, PartialEq)]
pub struct Completed {
    /// The logits.
    pub logits: Vec<f32>,
    /// Every stage's record.
    pub trace: Vec<TraceRecord>,
}

/// Most requests a node keeps state for at once; a message opening one more is refused.
pub const MAX_LIVE_REQUESTS: usize = 4096;

impl Message {
    /// Bytes of the values: 4 per scalar (the quantity the cost model counts) and 8 per
    /// masked ring element.
    pub fn value_bytes(&self) -> usize {
        let real: usize = self.channels.iter().map(|(_, v)| 4 * v.len()).sum();
        real + self.ring.iter().map(|(_, v)| 8 * v.len()).sum::<usize>()
    }
}

/// Messages to send: `(destination device, message)`.
pub type Outbox = Vec<(usize, Message)>;

struct RequestState {
    /// When the node first heard of the request.
    opened: Instant,
    /// Records to forward with the next outgoing message.
    trace: Vec<TraceRecord>,
    /// Finished inputs of stage `t`: `(t, channel) -> values`.
    inputs: HashMap<(usize, usize), Vec<f32>>,
    /// Partial sums being reduced: `(stage, channel) -> (contributions, sum)`.
    partials: HashMap<(usize, usize), (HashSet<usize>, Vec<f32>)>,
    /// Masked partial sums being reduced in the ring.
    masked: HashMap<(usize, usize), (HashSet<usize>, Vec<u64>)>,
    /// Stages already computed.
    done: HashSet<usize>,
}

impl RequestState {
    fn new() -> Self {
        RequestState {
            opened: Instant::now(),
            trace: Vec::new(),
            inputs: HashMap::new(),
            partials: HashMap::new(),
            masked: HashMap::new(),
            done: HashSet::new(),
        }
    }
}

/// One device.
pub struct Node {
    /// Device id.
    pub device: usize,
    deployment: Deployment,
    work: BTreeMap<usize, std::sync::Arc<StageWork>>,
    requests: HashMap<u64, RequestState>,
    /// Multiply-accumulates done so far.
    pub macs: u64,
    /// Emulated device speed (multiplications per second), if any.
    speed: Option<f64>,
    /// Emulated compute time owed (the caller sleeps it off, see [`Node::take_delay`]).
    delay: Duration,
    /// Pair keys when partial sums travel masked ([`crate::mask`]); plain otherwise.
    mask: Option<PairKeys>,
    /// What this device observed since the last [`Node::take_views`], when recording.
    views: Option<Vec<Observation>>,
    /// Requests whose state was dropped: never opened again.
    served: served::Served,
    /// Requests completed here (the source): never completed again.
    completed: served::Served,
}

impl Node {
    /// A node with its slices.
    pub fn new(deployment: Deployment, work: DeviceWork) -> Self {
        Node {
            device: work.device,
            work: work
                .stages
                .into_iter()
                .map(|s| (s.stage, std::sync::Arc::new(s)))
                .collect(),
            deployment,
            requests: HashMap::new(),
            macs: 0,
            speed: None,
            delay: Duration::ZERO,
            mask: None,
            views: None,
            served: served::Served::default(),
            completed: served::Served::default(),
        }
    }

    /// Records every channel this device receives, and every sum it completes, from now on
    /// (for an audit: [`crate::views`]); collect them with [`Node::take_views`].
    pub fn record_views(&mut self) {
        self.views.get_or_insert_with(Vec::new);
    }

    /// The observations recorded since the last call (none when not recording).
    pub fn take_views(&mut self) -> Vec<Observation> {
        self.views.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Records one observation of request `request` when recording.
    fn observe(
        &mut self,
        request: u64,
        (stage, channel, from): (usize, usize, usize),
        seen: Seen,
        values: &[f32],
        ring_len: usize,
    ) {
        if let Some(views) = self.views.as_mut() {
            views.push(Observation {
                request,
                stage,
                channel,
                from,
                seen,
                values: values.to_vec(),
                ring_len,
            });
        }
    }

    /// Sends and takes partial sums masked with `keys` (this device's pair keys of the plan
    /// epoch) from now on. Errors when a stage this device holds a segment of has a holder it
    /// shares no key with.
    pub fn mask_partial_sums(&mut self, keys: PairKeys) -> Result<(), NetError> {
        use crate::mask::{MAX_CHANNELS, MAX_HOLDERS, MAX_STAGES};
        if self.deployment.stages.len() > MAX_STAGES {
            return Err(NetError::Deploy(format!(
                "masking addresses at most {MAX_STAGES} stages"
            )));
        }
        for stage in self.deployment.stages.iter().filter(|st| !st.whole()) {
            let holders = stage.devices();
            if holders.len() > MAX_HOLDERS || stage.channels > MAX_CHANNELS {
                return Err(NetError::Deploy(format!(
                    "masking {}: at most {MAX_HOLDERS} holders and {MAX_CHANNELS} channels",
                    stage.layer
                )));
            }
            if holders.contains(&self.device) && !keys.covers(self.device, &holders) {
                return Err(NetError::Deploy(format!(
                    "no mask key for some holder of {} ({holders:?})",
                    stage.layer
                )));
            }
        }
        self.mask = Some(keys);
        Ok(())
    }

    /// Makes every computation take at least `macs / macs_per_s` (a device slower than this
    /// machine): the difference accumulates in [`Node::take_delay`] for the caller to wait.
    pub fn emulate_speed(&mut self, macs_per_s: f64) {
        self.speed = (macs_per_s.is_finite() && macs_per_s > 0.0).then_some(macs_per_s);
    }

    /// The emulated compute time owed since the last call (zero without emulation).
    pub fn take_delay(&mut self) -> Duration {
        std::mem::take(&mut self.delay)
    }

    /// Requests with state here.
    pub fn live_requests(&self) -> usize {
        self.requests.len()
    }

    /// Drops request `request`'s state (the source gave up on the attempt).
    pub fn forget(&mut self, request: u64) {
        self.requests.remove(&request);
        self.served.insert(request);
    }

    /// Drops the state of requests opened more than `max_age` ago; returns how many.
    pub fn expire(&mut self, max_age: Duration) -> usize {
        let stale: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, st)| st.opened.elapsed() > max_age)
            .map(|(&r, _)| r)
            .collect();
        for &r in &stale {
            self.forget(r);
        }
        stale.len()
    }

    /// The state of request `r`, opened if new (refused beyond [`MAX_LIVE_REQUESTS`], and for
    /// a request this node has already dropped: a replay).
    fn state(&mut self, r: u64) -> Result<&mut RequestState, NetError> {
        if !self.requests.contains_key(&r) && self.served.contains(r) {
            return Err(self.bad(r, "request already served here in this plan epoch".into()));
        }
        if !self.requests.contains_key(&r) && self.requests.len() >= MAX_LIVE_REQUESTS {
            return Err(self.bad(r, format!("{MAX_LIVE_REQUESTS} requests already open here")));
        }
        Ok(self.requests.entry(r).or_insert_with(RequestState::new))
    }

    fn bad(&self, request: u64, message: String) -> NetError {
        NetError::Message {
            device: self.device,
            request,
            message,
        }
    }

    /// The source starts request `request` on `input` (one sample).
    pub fn start(&mut self, request: u64, input: &[f32]) -> Result<Outbox, NetError> {
        if self.device != self.deployment.source {
            return Err(self.bad(request, "only the source starts requests".into()));
        }
        if input.len() != self.deployment.input_len {
            return Err(self.bad(
                request,
                format!(
                    "input of {} values, expected {}",
                    input.len(),
                    self.deployment.input_len
                ),
            ));
        }
        if self.requests.contains_key(&request) {
            return Err(self.bad(request, "request id already in use".into()));
        }
        let stage0 = &self.deployment.stages[0];
        let per = input.len() / stage0.segments();
        let segments = stage0.segments();
        let st = self.state(request)?;
        for p in 0..segments {
            st.inputs
                .insert((0, p), input[p * per..(p + 1) * per].to_vec());
        }
        self.progress(request)
    }

    /// Handles one message; returns what to send, and the logits with the trace when this
    /// node is the source and the request is complete.
    pub fn handle(&mut self, msg: Message) -> Result<(Outbox, Option<Completed>), NetError> {
        let r = msg.request;
        let stages = self.deployment.stages.len();
        if msg.stage >= stages {
            return Err(self.bad(r, format!("stage {} of {stages}", msg.stage)));
        }
        let stage = self.deployment.stages[msg.stage].clone();
        self.check_message(&msg, &stage)?;
        match msg.payload {
            Payload::Finished => {
                if let Some(done) = self.take_finished(&stage, msg)? {
                    return Ok((Vec::new(), Some(done)));
                }
            }
            Payload::Masked => {
                let s = msg.stage;
                self.check_holder(r, &stage, msg.from)?;
                for (q, sum) in self.take_masked(r, &stage, msg)? {
                    let v = self.finish(s, q, sum, r)?;
                    self.state(r)?.inputs.insert((s + 1, q), v);
                }
            }
            Payload::Partial => self.take_partial(&stage, msg)?,
        }
        Ok((self.progress(r)?, None))
    }

    /// Runs every stage of request `r` whose inputs are complete.
    fn progress(&mut self, r: u64) -> Result<Outbox, NetError> {
        let mut out = Outbox::new();
        loop {
            let ready: Option<usize> = {
                let Some(st) = self.requests.get(&r) else {
                    return Ok(out);
                };
                self.work.values().find_map(|w| {
                    if w.segments.is_empty() || st.done.contains(&w.stage) {
                        return None;
                    }
                    let needed: Vec<usize> = match self.deployment.stages[w.stage].kernel {
                        Linear::Conv { .. } => w.segments.clone(),
                        Linear::Dense { .. } if w.stage == 0 => vec![0],
                        Linear::Dense { .. } => {
                            (0..self.deployment.stages[w.stage - 1].channels).collect()
                        }
                    };
                    needed
                        .iter()
                        .all(|q| st.inputs.contains_key(&(w.stage, *q)))
                        .then_some(w.stage)
                })
            };
            let Some(s) = ready else {
                return Ok(out);
            };
            out.extend(self.compute(r, s)?);
        }
    }

    /// Computes stage `s` of request `r` (its inputs are complete, see [`Node::progress`]):
    /// consumes the inputs, runs the kernel on this device's weight slice, finishes the output
    /// channels itself when it runs the whole stage (else routes partial sums to their
    /// finishers), and returns one message per destination, the first carrying the request's
    /// trace with this stage's record appended. Drops the request's state once every stage of
    /// this device is done.
    fn compute(&mut self, r: u64, s: usize) -> Result<Outbox, NetError> {
        let w = self
            .work
            .get(&s)
            .cloned()
            .ok_or_else(|| self.bad(r, format!("no work at stage {s}")))?;
        let stage = self.deployment.stages[s].clone();
        let device = self.device;
        let Taken {
            x,
            wait_us,
            mut trace,
        } = self.take_inputs(r, s, &stage, &w)?;
        let lin = self.deployment.linear_for(s, w.segments.len());
        if x.len() != lin.input_len() || w.weight.len() != lin.weight_len() {
            return Err(self.bad(
                r,
                format!(
                    "{}: {} inputs / {} weights for the kernel",
                    stage.layer,
                    x.len(),
                    w.weight.len()
                ),
            ));
        }
        let macs = lin.macs() as u64;
        self.macs += macs;
        let began = Instant::now();
        let y = lin.apply(&w.weight, &x);
        let whole = stage.whole();
        let groups = self.route(r, s, &stage, &y)?;
        let (mut out, sent_bytes, messages) = match (&self.mask, whole) {
            (Some(keys), false) => {
                let masked =
                    crate::mask::mask_groups(keys, device, &stage.devices(), (r, s), groups)
                        .map_err(|m| self.bad(r, format!("{}: {m}", stage.layer)))?;
                addressed_masked(r, s, device, masked)
            }
            _ => addressed(r, s, whole, device, groups),
        };
        let compute = self.emulated(macs, began.elapsed());
        trace.push(TraceRecord {
            device,
            stage: s,
            macs,
            wait_us,
            compute_us: compute.as_micros() as u64,
            sent_bytes,
            messages,
        });
        match out.first_mut() {
            Some((_, m)) => m.trace = trace,
            None => return Err(self.bad(r, format!("{} produced no output", stage.layer))),
        }
        self.drop_if_done(r);
        Ok(out)
    }

    /// Marks stage `s` of request `r` done and takes its inputs (in kernel order: this
    /// device's segments of a conv, every channel of the previous stage for a dense layer)
    /// and the trace records waiting to be forwarded. Missing inputs come out empty (the
    /// caller's length check refuses them).
    fn take_inputs(
        &mut self,
        r: u64,
        s: usize,
        stage: &Stage,
        w: &StageWork,
    ) -> Result<Taken, NetError> {
        let dense_inputs = match s {
            0 => 1,
            _ => self.deployment.stages[s - 1].channels,
        };
        let Some(st) = self.requests.get_mut(&r) else {
            return Err(self.bad(r, format!("no state for stage {s}")));
        };
        st.done.insert(s);
        let wait_us = st.opened.elapsed().as_micros() as u64;
        let trace = std::mem::take(&mut st.trace);
        let x: Vec<f32> = match stage.kernel {
            Linear::Conv { .. } => w
                .segments
                .iter()
                .flat_map(|q| st.inputs.remove(&(s, *q)).unwrap_or_default())
                .collect(),
            Linear::Dense { .. } => (0..dense_inputs)
                .flat_map(|q| st.inputs.remove(&(s, q)).unwrap_or_default())
                .collect(),
        };
        Ok(Taken { x, wait_us, trace })
    }

    /// Groups the kernel output `y` of stage `s` (one `raw_len` chunk per output channel) by
    /// destination: finished channels to their consumers when this device runs the whole
    /// stage, raw partial sums to their finishers otherwise.
    fn route(&self, r: u64, s: usize, stage: &Stage, y: &[f32]) -> Result<Routed, NetError> {
        let whole = stage.whole();
        let mut groups: Routed = BTreeMap::new();
        for (q, chunk) in y.chunks_exact(stage.raw_len()).enumerate() {
            if whole {
                let biased = self.add_bias(s, q, chunk.to_vec(), r)?;
                let v = apply_post(&stage.post, biased);
                groups
                    .entry(self.deployment.consumer(s, q))
                    .or_default()
                    .push((q, v));
            } else {
                groups
                    .entry(self.deployment.finisher(s, q))
                    .or_default()
                    .push((q, chunk.to_vec()));
            }
        }
        Ok(groups)
    }

    /// The compute time to record for `macs` multiplications that took `measured`: with
    /// device emulation at least `macs / speed`, the difference owed in [`Node::take_delay`].
    fn emulated(&mut self, macs: u64, measured: Duration) -> Duration {
        let mut compute = measured;
        if let Some(speed) = self.speed {
            let emulated = Duration::from_secs_f64(macs as f64 / speed);
            self.delay += emulated.saturating_sub(compute);
            compute = compute.max(emulated);
        }
        compute
    }

    /// Drops request `r`'s state when every stage this device computes is done: every
    /// message a node receives is an input of one of its computations, so nothing more
    /// arrives for the request here.
    fn drop_if_done(&mut self, r: u64) {
        let finished = self.requests.get(&r).is_some_and(|st| {
            self.work
                .values()
                .filter(|w| !w.segments.is_empty())
                .all(|w| st.done.contains(&w.stage))
        });
        if finished {
            self.forget(r);
        }
    }
}

/// A computation's output channels by destination device: `(channel, values)` each.
type Routed = BTreeMap<usize, Vec<(usize, Vec<f32>)>>;

/// What [`Node::take_inputs`] takes out of a request's state for one computation.
struct Taken {
    /// The kernel's input.
    x: Vec<f32>,
    /// Microseconds since the node first heard of the request.
    wait_us: u64,
    /// Records to forward with the computation's first message.
    trace: Vec<TraceRecord>,
}

/// One message of stage `s` of request `r` from `device` per destination in `groups`
/// (finished channels when the stage is `whole`, partial sums otherwise; no trace yet), with
/// the value bytes and number of the messages that leave the device.
fn addressed(r: u64, s: usize, whole: bool, device: usize, groups: Routed) -> (Outbox, u64, u64) {
    let payload = if whole {
        Payload::Finished
    } else {
        Payload::Partial
    };
    outbox(
        device,
        groups.into_iter().map(|(to, channels)| {
            let m = message(r, s, device, payload.clone());
            (to, Message { channels, ..m })
        }),
    )
}

/// [`addressed`] for masked partial sums: one [`Payload::Masked`] message per destination.
fn addressed_masked(
    r: u64,
    s: usize,
    device: usize,
    groups: crate::mask::MaskedGroups,
) -> (Outbox, u64, u64) {
    outbox(
        device,
        groups.into_iter().map(|(to, ring)| {
            let m = message(r, s, device, Payload::Masked);
            (to, Message { ring, ..m })
        }),
    )
}

/// An empty message of stage `s` of request `r` from `device`.
fn message(r: u64, s: usize, device: usize, payload: Payload) -> Message {
    Message {
        request: r,
        stage: s,
        payload,
        from: device,
        channels: Vec::new(),
        ring: Vec::new(),
        trace: Vec::new(),
    }
}

/// The messages as an outbox, with the value bytes and number of those that leave `device`.
fn outbox(device: usize, messages: impl Iterator<Item = (usize, Message)>) -> (Outbox, u64, u64) {
    let mut out = Outbox::new();
    let (mut sent_bytes, mut sent) = (0u64, 0u64);
    for (to, m) in messages {
        if to != device {
            sent_bytes += m.value_bytes() as u64;
            sent += 1;
        }
        out.push((to, m));
    }
    (out, sent_bytes, sent)
}
