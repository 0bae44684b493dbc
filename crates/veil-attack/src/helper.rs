//! What one helper of the channel-partitioned scheme really sees (SYSTEM.md section 4).
//!
//! At conv layer `l` with `P` input maps, a helper holds `k` input maps (its segments of `l`)
//! and owns `q` output maps of `l` (its segments of `l + 1`). To form an owned output map it
//! receives, from every other device, that device's partial sums for it. DistPrivacy counts
//! only the `k` maps; the partial sums are extra observations of the other `P - k` maps, and
//! the more devices they are spread over, the more separately each is seen.
//!
//! [`HelperView`] fixes the layout: the helper holds maps `0..k`, the remaining maps are split
//! into `senders` contiguous groups of near-equal size (one per other device), and the helper
//! owns output maps `0..q`. Its observation, per image, is the `k` held maps followed by the
//! `senders * q` received partial sums, each zero-padded around its border to the input size
//! so that an output pixel sits over the centre of its receptive field (a valid convolution
//! shrinks the map by `kernel - 1`). [`helper_features`] builds that observation; the usual
//! attack ([`crate::attack_features`], all maps) is then trained on it.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use veil_data::Dataset;
use veil_model::Model;
use veil_model::partial::partial_sums_values;
use veil_spec::{LayerKind, Shape};

use crate::{AttackError, LayerFeatures};

/// The share of conv layer `conv` that a helper handles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperView {
    /// Conv layer whose segments the helper holds.
    pub conv: String,
    /// Input maps held (`k`): maps `0..k`.
    pub held: usize,
    /// Output maps owned (`q`): maps `0..q`; their partial sums are received.
    pub owned: usize,
    /// Devices holding the other input maps (each sends one partial sum per owned map).
    pub senders: usize,
}

impl HelperView {
    /// The channel groups of the senders: maps `k..P` split into `senders` contiguous runs
    /// whose sizes differ by at most one.
    pub fn sender_groups(&self, p: usize) -> Vec<Range<usize>> {
        let rest = p.saturating_sub(self.held);
        let g = self.senders.min(rest);
        let mut groups = Vec::with_capacity(g);
        let mut start = self.held;
        for i in 0..g {
            let len = rest / g + usize::from(i < rest % g);
            groups.push(start..start + len);
            start += len;
        }
        groups
    }
}

/// Copies `src` (`[c, sh, sw]`) into the centre of a zeroed `[c, h, w]` block appended to `out`
/// (`sh <= h`, `sw <= w`): maps of different sizes stacked with their centres aligned.
pub fn push_centred(
    out: &mut Vec<f32>,
    src: &[f32],
    c: usize,
    (sh, sw): (usize, usize),
    (h, w): (usize, usize),
) {
    let (top, left) = ((h - sh) / 2, (w - sw) / 2);
    let base = out.len();
    out.resize(base + c * h * w, 0.0);
    for ch in 0..c {
        for y in 0..sh {
            let from = ch * sh * sw + y * sw;
            let to = base + ch * h * w + (top + y) * w + left;
            out[to..to + sw].copy_from_slice(&src[from..from + sw]);
        }
    }
}

/// The helper's observation for the auxiliary and victim images of `aux` and `victims`:
/// features of shape `[k + senders * q, h, w]` where `h x w` is the conv layer's input size.
pub fn helper_features(
    model: &Model,
    aux: &Dataset,
    victims: &Dataset,
    view: &HelperView,
    aux_samples: usize,
    victim_count: usize,
) -> Result<LayerFeatures, AttackError> {
    let index = model.spec().layer_index(&view.conv)?;
    let LayerKind::Conv2d { .. } = model.spec().layers[index].kind else {
        return Err(AttackError::Invalid(format!(
            "`{}` is not a conv2d layer of {}",
            view.conv,
            model.spec().name
        )));
    };
    if index == 0 {
        return Err(AttackError::Invalid(format!(
            "`{}` reads the image itself; its segments stay on the source device",
            view.conv
        )));
    }
    let (Some((p, h, w)), Some((out_c, oh, ow))) = (
        model.shapes()[index].as_chw(),
        model.shapes()[index + 1].as_chw(),
    ) else {
        return Err(AttackError::Invalid(format!(
            "`{}` has no feature maps",
            view.conv
        )));
    };
    let invalid = view.held == 0
        || view.held > p
        || view.owned == 0
        || view.owned > out_c
        || (view.held < p && view.senders == 0)
        || view.senders > p - view.held;
    if invalid || oh > h || ow > w {
        return Err(AttackError::Invalid(format!(
            "a helper of {} ({p} input maps, {out_c} output maps) cannot hold {} maps, own {} and hear from {} senders (held >= 1, owned >= 1, 1 <= senders <= {p} - held)",
            view.conv, view.held, view.owned, view.senders
        )));
    }
    let input = &model.spec().layers[index - 1].name;
    let base = LayerFeatures::extract(model, aux, victims, input, aux_samples, victim_count)?;
    let groups = view.sender_groups(p);
    let received = groups.len() * view.owned;
    let observe = |inputs: &[f32]| -> Result<Vec<f32>, AttackError> {
        let sums = if groups.is_empty() {
            Vec::new()
        } else {
            partial_sums_values(model, &view.conv, inputs, &groups, 0..view.owned)?
        };
        let (per_in, per_sum) = (p * h * w, received * oh * ow);
        let n = inputs.len() / per_in;
        let mut out = Vec::with_capacity(n * (view.held + received) * h * w);
        for i in 0..n {
            out.extend_from_slice(&inputs[i * per_in..i * per_in + view.held * h * w]);
            if received > 0 {
                let s = &sums[i * per_sum..(i + 1) * per_sum];
                push_centred(&mut out, s, received, (oh, ow), (h, w));
            }
        }
        Ok(out)
    };
    Ok(LayerFeatures {
        layer: format!(
            "{} helper (holds {}/{p} input maps, owns {}/{out_c} outputs, {} senders)",
            view.conv,
            view.held,
            view.owned,
            groups.len()
        ),
        shape: Shape::chw(view.held + received, h, w),
        aux_feats: observe(&base.aux_feats)?,
        victim_feats: observe(&base.victim_feats)?,
        aux: base.aux,
        victims: base.victims,
        device: base.device,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_groups_split_the_rest_evenly() {
        let v = |held, senders| HelperView {
            conv: "conv2".into(),
            held,
            owned: 1,
            senders,
        };
        assert_eq!(v(2, 2).sender_groups(6), vec![2..4, 4..6]);
        assert_eq!(v(1, 2).sender_groups(6), vec![1..4, 4..6]);
        assert_eq!(v(1, 5).sender_groups(6), vec![1..2, 2..3, 3..4, 4..5, 5..6]);
        assert_eq!(v(6, 3).sender_groups(6), Vec::<Range<usize>>::new());
    }

    #[test]
    fn centring_pads_each_map_evenly() {
        let mut out = vec![9.0];
        push_centred(&mut out, &[1.0, 2.0, 3.0, 4.0], 1, (2, 2), (4, 4));
        #[rustfmt::skip]
        let want = vec![9.0,
            0.0, 0.0, 0.0, 0.0,
            0.0, 1.0, 2.0, 0.0,
            0.0, 3.0, 4.0, 0.0,
            0.0, 0.0, 0.0, 0.0];
        assert_eq!(out, want);
    }
}
