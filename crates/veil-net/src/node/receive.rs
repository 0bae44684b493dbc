//! What a node does with a received message: the checks of its mode, channels and sender,
//! finished maps from their producer, plain and masked partial sums from a stage's holders
//! added up, and a complete sum finished (bias, then the channel-wise layers).

use std::collections::HashSet;

use super::{Completed, Message, Node, Payload};
use crate::NetError;
use crate::deploy::{Stage, apply_post};
use crate::views::Seen;

impl Node {
    /// The message's mode (plain and masked partial sums never mix: either would corrupt the
    /// other's sum) and the channel indices and lengths of its values against `stage`.
    pub(super) fn check_message(&self, msg: &Message, stage: &Stage) -> Result<(), NetError> {
        let r = msg.request;
        let masked = msg.payload == Payload::Masked;
        let wrong_mode = match msg.payload {
            Payload::Finished => false,
            Payload::Partial => self.mask.is_some(),
            Payload::Masked => self.mask.is_none() || !msg.channels.is_empty(),
        };
        if wrong_mode {
            // Plain and masked partial sums never mix: either would corrupt the other's sum.
            return Err(self.bad(r, format!("{:?} message in this plan", msg.payload)));
        }
        if !masked && !msg.ring.is_empty() {
            return Err(self.bad(r, "ring elements outside a masked message".into()));
        }
        for (q, len) in msg.ring.iter().map(|(q, v)| (*q, v.len())) {
            if q >= stage.channels || len != stage.raw_len() {
                return Err(self.bad(
                    r,
                    format!("{} masked channel {q} with {len} elements", stage.layer),
                ));
            }
        }
        for (q, v) in &msg.channels {
            let want = match msg.payload {
                Payload::Finished => stage.finished_len,
                Payload::Partial | Payload::Masked => stage.raw_len(),
            };
            if *q >= stage.channels || v.len() != want {
                return Err(self.bad(
                    r,
                    format!(
                        "{} channel {q} with {} values (stage {} has {} channels of {want})",
                        stage.layer,
                        v.len(),
                        msg.stage,
                        stage.channels
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Finished maps from their producer: the next stage's inputs, or the logits (with the
    /// request's trace) when they are the last stage's.
    pub(super) fn take_finished(
        &mut self,
        stage: &Stage,
        msg: Message,
    ) -> Result<Option<Completed>, NetError> {
        let (r, stages) = (msg.request, self.deployment.stages.len());
        for (q, _) in &msg.channels {
            if self.deployment.consumer(msg.stage, *q) != self.device {
                return Err(self.bad(
                    r,
                    format!("{} channel {q} is not an input of this device", stage.layer),
                ));
            }
            // Only the device that finishes a map may deliver it finished: another
            // enrolled device cannot displace it.
            let producer = self.deployment.finisher(msg.stage, *q);
            if producer != msg.from {
                return Err(self.bad(
                    r,
                    format!(
                        "{} channel {q} finished by device {}, which is not its producer (device {producer})",
                        stage.layer, msg.from
                    ),
                ));
            }
        }
        for (q, v) in &msg.channels {
            self.observe(r, (msg.stage, *q, msg.from), Seen::Finished, v, 0);
        }
        if msg.stage + 1 == stages {
            let mut logits = Vec::new();
            for (_, v) in msg.channels {
                logits.extend(v);
            }
            // The logits may arrive after this device dropped the request (its last stage
            // done), but complete it once.
            if self.completed.contains(r) {
                return Err(self.bad(r, "request already served here in this plan epoch".into()));
            }
            let mut trace = self
                .requests
                .remove(&r)
                .map(|st| st.trace)
                .unwrap_or_default();
            self.served.insert(r);
            self.completed.insert(r);
            trace.extend(msg.trace);
            return Ok(Some(Completed { logits, trace }));
        }
        let st = self.state(r)?;
        st.trace.extend(msg.trace);
        for (q, v) in msg.channels {
            st.inputs.insert((msg.stage + 1, q), v);
        }
        Ok(None)
    }

    /// Plain partial sums from a holder of the stage, added up; complete sums finished.
    pub(super) fn take_partial(&mut self, stage: &Stage, msg: Message) -> Result<(), NetError> {
        let r = msg.request;
        let senders = self.check_holder(r, stage, msg.from)?;
        let mut finished = Vec::new();
        self.state(r)?.trace.extend(msg.trace);
        for (q, v) in msg.channels {
            if self.deployment.finisher(msg.stage, q) != self.device {
                return Err(self.bad(
                    r,
                    format!("{} channel {q} is not finished here", stage.layer),
                ));
            }
            self.observe(r, (msg.stage, q, msg.from), Seen::Partial, &v, 0);
            let st = self.state(r)?;
            let entry = st
                .partials
                .entry((msg.stage, q))
                .or_insert_with(|| (HashSet::new(), vec![0.0; v.len()]));
            if !entry.0.insert(msg.from) {
                return Err(self.bad(
                    r,
                    format!(
                        "second partial sum of {} channel {q} from {}",
                        stage.layer, msg.from
                    ),
                ));
            }
            for (a, b) in entry.1.iter_mut().zip(&v) {
                *a += b;
            }
            if entry.0.len() == senders {
                let (_, sum) = st.partials.remove(&(msg.stage, q)).unwrap_or_default();
                finished.push((q, sum));
            }
        }
        for (q, sum) in finished {
            let v = self.finish(msg.stage, q, sum, r)?;
            let st = self.state(r)?;
            st.inputs.insert((msg.stage + 1, q), v);
        }
        Ok(())
    }

    /// Partial sums count only from the devices that hold segments of a stage: any other
    /// enrolled device would otherwise inject or displace one. The number of holders.
    pub(super) fn check_holder(
        &self,
        r: u64,
        stage: &Stage,
        from: usize,
    ) -> Result<usize, NetError> {
        let holders = stage.devices();
        if !holders.contains(&from) {
            return Err(self.bad(
                r,
                format!(
                    "partial sums of {} from device {from}, which holds no segment of it (holders {holders:?})",
                    stage.layer
                ),
            ));
        }
        Ok(holders.len())
    }

    /// Adds `msg`'s masked partial sums to the ring sums of request `r` and returns the
    /// channels whose sums are complete (every holder's share in), decoded: the masks have
    /// cancelled, only the complete sum is ever decoded.
    pub(super) fn take_masked(
        &mut self,
        r: u64,
        stage: &Stage,
        msg: Message,
    ) -> Result<Vec<(usize, Vec<f32>)>, NetError> {
        let senders = stage.devices().len();
        let (s, from) = (msg.stage, msg.from);
        let mut complete = Vec::new();
        self.state(r)?.trace.extend(msg.trace);
        for (q, v) in msg.ring {
            if self.deployment.finisher(s, q) != self.device {
                return Err(self.bad(
                    r,
                    format!("{} channel {q} is not finished here", stage.layer),
                ));
            }
            self.observe(r, (s, q, from), Seen::Masked, &[], v.len());
            let st = self.state(r)?;
            let entry = st
                .masked
                .entry((s, q))
                .or_insert_with(|| (HashSet::new(), vec![0; v.len()]));
            if !entry.0.insert(from) {
                return Err(self.bad(
                    r,
                    format!(
                        "second masked sum of {} channel {q} from {from}",
                        stage.layer
                    ),
                ));
            }
            for (a, b) in entry.1.iter_mut().zip(&v) {
                *a = a.wrapping_add(*b);
            }
            if entry.0.len() == senders {
                let (_, sum) = st.masked.remove(&(s, q)).unwrap_or_default();
                complete.push((q, sum.into_iter().map(crate::mask::decode).collect()));
            }
        }
        Ok(complete)
    }

    /// The complete sum of channel `q` of stage `s`, received: bias added (observed, when
    /// recording: the pre-activation output), then the post ops.
    pub(super) fn finish(
        &mut self,
        s: usize,
        q: usize,
        sum: Vec<f32>,
        r: u64,
    ) -> Result<Vec<f32>, NetError> {
        let biased = self.add_bias(s, q, sum, r)?;
        self.observe(r, (s, q, self.device), Seen::Sum, &biased, 0);
        Ok(apply_post(&self.deployment.stages[s].post, biased))
    }

    /// `sum` plus the bias of channel `q` of stage `s`.
    pub(super) fn add_bias(
        &self,
        s: usize,
        q: usize,
        mut sum: Vec<f32>,
        r: u64,
    ) -> Result<Vec<f32>, NetError> {
        let bias = self
            .work
            .get(&s)
            .and_then(|w| w.bias.iter().find(|(c, _)| *c == q))
            .ok_or_else(|| self.bad(r, format!("no bias for stage {s} channel {q}")))?;
        match bias.1.as_slice() {
            [b] => sum.iter_mut().for_each(|v| *v += b),
            bs => sum.iter_mut().zip(bs).for_each(|(v, b)| *v += b),
        }
        Ok(sum)
    }
}
