//! A device's recorded views ([`veil_net::views::DeviceViews`]) as attack features.
//!
//! Two readings of one view, each attacked with the black-box spear's decoder for its shape
//! (the views are no device part's output, so the decoder cannot mirror one):
//! - **maps**: every observed part that is a square map (finished maps it holds, pre-activation
//!   sums it completes, plain partial sums) zero-padded around its centre to the largest side
//!   and stacked as channels (as `veil attack --helper-of` stacks a helper's observation);
//! - **flat**: all observed values as one vector, when the view has flat parts (vectors after
//!   linear layers) or maps of several sizes, and at most [`MAX_FLAT`] values.
//!
//! Masked partial sums are left out of both: each is uniform in the ring on its own (the
//! statistical test of `veil-net`'s masking), so only the complete sum they add up to, which
//! the view holds as a sum part, carries information. The audit reports the stronger attack.

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

/// The readings of `views` worth attacking (none for a device that observed nothing).
pub fn readings(views: &DeviceViews) -> Vec<ViewFeatures> {
    let real: Vec<&ViewPart> = views
        .parts
        .iter()
        .filter(|p| p.seen != Seen::Masked)
        .collect();
    let sides: Vec<Option<usize>> = real.iter().map(|p| map_side(p)).collect();
    let mut out = Vec::new();
    let side = sides.iter().flatten().copied().max();
    if let Some(side) = side {
        let channels = sides.iter().flatten().count();
        let mut rows = Vec::with_capacity(views.values.len() * channels * side * side);
        for v in &views.values {
            let mut at = 0;
            for (p, s) in real.iter().zip(&sides) {
                if let Some(s) = s {
                    push_centred(&mut rows, &v[at..at + p.len], 1, (*s, *s), (side, side));
                }
                at += p.len;
            }
        }
        out.push(ViewFeatures {
            reading: Reading::Maps,
            shape: Shape::chw(channels, side, side),
            rows,
        });
    }
    let mixed =
        sides.iter().any(Option::is_none) || sides.iter().flatten().any(|s| Some(*s) != side);
    let total: usize = real.iter().map(|p| p.len).sum();
    if (mixed || side.is_none()) && total > 0 && total <= MAX_FLAT {
        out.push(ViewFeatures {
            reading: Reading::Flat,
            shape: Shape::flat(total),
            rows: views.values.concat(),
        });
    }
    out
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
        let r = readings(&views);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].reading, Reading::Maps);
        assert_eq!(r[0].shape, Shape::chw(2, 4, 4));
        // The 2 x 2 sum (values 16..20) sits in the centre of the second 4 x 4 channel.
        assert_eq!(&r[0].rows[16 + 5..16 + 7], &[16.0, 17.0]);
        assert_eq!(&r[0].rows[16 + 9..16 + 11], &[18.0, 19.0]);
        assert_eq!(r[0].rows[16], 0.0);
        assert_eq!(r[1].reading, Reading::Flat);
        assert_eq!(r[1].shape, Shape::flat(23));
        assert_eq!(r[1].rows, views.values[0]);
    }

    #[test]
    fn a_view_of_equal_maps_is_read_as_maps_only_and_an_empty_one_not_at_all() {
        let views = DeviceViews {
            parts: vec![part(Seen::Finished, 0, 4), part(Seen::Sum, 0, 4)],
            requests: vec![1, 2],
            values: vec![vec![1.0; 8], vec![2.0; 8]],
        };
        let r = readings(&views);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].shape, Shape::chw(2, 2, 2));
        assert_eq!(r[0].rows.len(), 16);
        let empty = DeviceViews {
            parts: Vec::new(),
            requests: Vec::new(),
            values: Vec::new(),
        };
        assert!(readings(&empty).is_empty());
    }
}
