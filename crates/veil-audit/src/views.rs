//! A device's recorded views ([`veil_net::views::DeviceViews`]) as attack features.
//!
//! The readings of one view, each attacked with the black-box spear's decoder for its shape
//! (the views are no device part's output, so the decoder cannot mirror one):
//! - **maps**: every observed part that is a square map (finished maps it holds, pre-activation
//!   sums it completes, plain partial sums) zero-padded around its centre to the largest side
//!   and stacked as channels (as `veil attack --helper-of` stacks a helper's observation);
//! - **flat**: all observed values as one vector, when the view has flat parts (vectors after
//!   linear layers) or maps of several sizes, and at most [`MAX_FLAT`] values;
//! - **part**: when the view holds maps of several kinds or stages, the maps of each
//!   `(kind, stage)` alone, stacked the same way. A view holds each of its parts, so it leaks
//!   at least as much as the best of them; a decoder trained on a very wide stack at a small
//!   budget can do worse than one on a part (measured: docs/BENCHMARKS.md), and the audit
//!   keeps the strongest reading.
//!
//! Masked partial sums are left out of both: each is uniform in the ring on its own (the
//! statistical test of `veil-net`'s masking), so only the complete sum they add up to, which
//! the view holds as a sum part, carries information. The audit reports the stronger attack.

use std::collections::BTreeMap;

use serde::Serialize;
use veil_attack::helper::push_centred;
use veil_net::views::{DeviceViews, Seen, ViewPart};
use veil_spec::Shape;

/// Most values of a view attacked as one flat vector (the flat decoder's first layer has
/// 1,024 weights per value).
pub const MAX_FLAT: usize = 16_384;

/// How a view is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reading {
    /// Square maps stacked as channels.
    Maps,
    /// Every value as one vector.
    Flat,
    /// The square maps of one kind and stage alone, stacked as channels.
    Part {
        /// What kind of value.
        seen: Seen,
        /// The stage whose output channels they are.
        stage: usize,
    },
}

/// One reading of a device's views: its shape and one row per request (in the views'
/// request order).
#[derive(Clone, Debug, PartialEq)]
pub struct ViewFeatures {
    /// How the view is read.
    pub reading: Reading,
    /// Shape of one row.
    pub shape: Shape,
    /// Rows, request-major.
    pub rows: Vec<f32>,
}

/// The side of a part that is a square map of at least 2 x 2 (masked parts never count).
fn map_side(p: &ViewPart) -> Option<usize> {
    if p.seen == Seen::Masked || p.len < 4 {
        return None;
    }
    let s = (p.len as f64).sqrt().round() as usize;
    (s * s == p.len).then_some(s)
}

/// The readings of `views` worth attacking (none for a device that observed nothing), built
/// one at a time as the iterator is advanced: a wide view's readings together can exceed the
/// memory its log took, so only one is held at once.
pub fn readings(views: &DeviceViews) -> impl Iterator<Item = ViewFeatures> + '_ {
    let real: Vec<(usize, &ViewPart)> = real_parts(views).collect();
    let sides: Vec<Option<usize>> = real.iter().map(|(_, p)| map_side(p)).collect();
    let mut plans: Vec<(Reading, Vec<usize>)> = vec![(Reading::Maps, (0..real.len()).collect())];
    let side = sides.iter().flatten().copied().max();
    let mixed =
        sides.iter().any(Option::is_none) || sides.iter().flatten().any(|s| Some(*s) != side);
    let total: usize = real.iter().map(|(_, p)| p.len).sum();
    if (mixed || side.is_none()) && total > 0 && total <= MAX_FLAT {
        plans.push((Reading::Flat, Vec::new()));
    }
    // The square maps of each (kind, stage), in one pass; ordered by kind, then stage.
    let mut groups: BTreeMap<(Seen, usize), Vec<usize>> = BTreeMap::new();
    for (i, ((_, p), side)) in real.iter().zip(&sides).enumerate() {
        if side.is_some() {
            groups.entry((p.seen, p.stage)).or_default().push(i);
        }
    }
    if groups.len() > 1 {
        plans.extend(
            groups
                .into_iter()
                .map(|((seen, stage), members)| (Reading::Part { seen, stage }, members)),
        );
    }
    plans
        .into_iter()
        .filter_map(move |(reading, members)| match reading {
            Reading::Flat => Some(ViewFeatures {
                reading,
                shape: Shape::flat(total),
                rows: views.values.concat(),
            }),
            _ => stacked(views, &real, &sides, &members, reading),
        })
}

/// The parts of `views` that are not masked, each with the offset of its values in a
/// request's row (the rows hold no values of masked parts).
fn real_parts(views: &DeviceViews) -> impl Iterator<Item = (usize, &ViewPart)> {
    views
        .parts
        .iter()
        .filter(|p| p.seen != Seen::Masked)
        .scan(0, |at, p| {
            let start = *at;
            *at += p.len;
            Some((start, p))
        })
}

/// The square maps among `real[members]` zero-padded around their centres to their largest
/// side and stacked as channels; `None` when there is none.
fn stacked(
    views: &DeviceViews,
    real: &[(usize, &ViewPart)],
    sides: &[Option<usize>],
    members: &[usize],
    reading: Reading,
) -> Option<ViewFeatures> {
    let side = members.iter().filter_map(|&i| sides[i]).max()?;
    let maps: Vec<(usize, usize, usize)> = members
        .iter()
        .filter_map(|&i| sides[i].map(|s| (real[i].0, real[i].1.len, s)))
        .collect();
    let mut rows = Vec::with_capacity(views.values.len() * maps.len() * side * side);
    for v in &views.values {
        for &(at, len, s) in &maps {
            push_centred(&mut rows, &v[at..at + len], 1, (s, s), (side, side));
        }
    }
    Some(ViewFeatures {
        reading,
        shape: Shape::chw(maps.len(), side, side),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(seen: Seen, channel: usize, len: usize) -> ViewPart {
        ViewPart {
            seen,
            stage: 1,
            channel,
            from: 0,
            len,
        }
    }

    #[test]
    fn maps_are_stacked_centred_and_mixed_views_are_also_read_flat() {
        let views = DeviceViews {
            parts: vec![
                part(Seen::Finished, 0, 16),
                part(Seen::Masked, 1, 4),
                part(Seen::Sum, 1, 4),
                part(Seen::Finished, 2, 3),
            ],
            requests: vec![1],
            values: vec![(0..23).map(|x| x as f32).collect()],
        };
        let r: Vec<ViewFeatures> = readings(&views).collect();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].reading, Reading::Maps);
        assert_eq!(r[0].shape, Shape::chw(2, 4, 4));
        // The 2 x 2 sum (values 16..20) sits in the centre of the second 4 x 4 channel.
        assert_eq!(&r[0].rows[16 + 5..16 + 7], &[16.0, 17.0]);
        assert_eq!(&r[0].rows[16 + 9..16 + 11], &[18.0, 19.0]);
        assert_eq!(r[0].rows[16], 0.0);
        assert_eq!(r[1].reading, Reading::Flat);
        assert_eq!(r[1].shape, Shape::flat(23));
        assert_eq!(r[1].rows, views.values[0]);
        // Each kind of map alone, at its own side: the 4 x 4 finished map, the 2 x 2 sum.
        let finished = Reading::Part {
            seen: Seen::Finished,
            stage: 1,
        };
        assert_eq!(
            (r[2].reading, &r[2].shape),
            (finished, &Shape::chw(1, 4, 4))
        );
        assert_eq!(r[2].rows, &views.values[0][..16]);
        let sum = Reading::Part {
            seen: Seen::Sum,
            stage: 1,
        };
        assert_eq!((r[3].reading, &r[3].shape), (sum, &Shape::chw(1, 2, 2)));
        assert_eq!(r[3].rows, &views.values[0][16..20]);
    }

    #[test]
    fn a_view_of_equal_maps_is_read_as_maps_and_per_kind_and_an_empty_one_not_at_all() {
        let views = DeviceViews {
            parts: vec![part(Seen::Finished, 0, 4), part(Seen::Sum, 0, 4)],
            requests: vec![1, 2],
            values: vec![vec![1.0; 8], vec![2.0; 8]],
        };
        let r: Vec<ViewFeatures> = readings(&views).collect();
        // All maps together, then each kind alone (a finished map and a sum).
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].shape, Shape::chw(2, 2, 2));
        assert_eq!(r[0].rows.len(), 16);
        assert_eq!(r[1].shape, Shape::chw(1, 2, 2));
        assert_eq!(r[1].rows, [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]);
        let one_kind = DeviceViews {
            parts: vec![part(Seen::Finished, 0, 4), part(Seen::Finished, 1, 4)],
            ..views.clone()
        };
        assert_eq!(readings(&one_kind).count(), 1, "one kind: no part readings");
        let empty = DeviceViews {
            parts: Vec::new(),
            requests: Vec::new(),
            values: Vec::new(),
        };
        assert_eq!(readings(&empty).count(), 0);
    }
}
