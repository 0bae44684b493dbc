//! Axis arithmetic for the charts: data ranges, count-axis detection, "nice" tick positions
//! (1, 2, 2.5 or 5 times a power of ten) and compact tick labels ("10", not "10.0"; "250k";
//! "2.5e-4").

/// Largest magnitude an axis may reach: past it the padded span overflows `f64` and tick
/// placement never ends. Larger values are treated like non-finite ones (dropped).
pub(crate) const AXIS_LIMIT: f64 = 1e300;

/// Largest magnitude at which an `f64` still tells integers apart (2^53).
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Whether `v` can be placed on an axis (finite, within [`AXIS_LIMIT`]).
pub(crate) fn usable(v: f64) -> bool {
    v.is_finite() && v.abs() <= AXIS_LIMIT
}

/// One axis: its range, tick positions and tick labels.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Axis {
    /// Lower end of the drawn range.
    pub lo: f64,
    /// Upper end of the drawn range (always `> lo`, finite).
    pub hi: f64,
    /// Tick positions, ascending, within `lo..=hi`.
    pub ticks: Vec<f64>,
    /// One label per tick.
    pub labels: Vec<String>,
}

impl Axis {
    /// Where `v` falls on a pixel span `from..to` (either direction).
    pub fn map(&self, v: f64, from: i32, to: i32) -> i32 {
        let t = (v - self.lo) / (self.hi - self.lo);
        let p = f64::from(from) + t * f64::from(to - from);
        p.round().clamp(-1e6, 1e6) as i32
    }
}

/// Whether every usable value is an integer small enough to be exact (a count axis); false
/// when there is no usable value.
pub(crate) fn is_count(values: &[f64]) -> bool {
    let mut any = false;
    for &v in values.iter().filter(|v| usable(**v)) {
        if v.fract() != 0.0 || v.abs() > EXACT_INT {
            return false;
        }
        any = true;
    }
    any
}

/// The padded axis range of `values` (usable ones only): 5 % of the span on each side, at
/// least half a unit on a count axis (so the end ticks sit inside the frame), 5 % of the value
/// when all values are equal, `(0, 1)` when none is usable. Always finite with `lo < hi`.
pub(crate) fn range(values: impl Iterator<Item = f64>, count: bool) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| usable(*v))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    let mut pad = if span > 0.0 {
        span * 0.05
    } else if lo == 0.0 {
        0.05
    } else {
        lo.abs() * 0.05
    };
    if count {
        pad = pad.max(0.5);
    }
    // Keep the range wider than the rounding error of its own ends.
    pad = pad.max(1e-12 * lo.abs().max(hi.abs()));
    (lo - pad, hi + pad)
}

/// Nice tick positions within `lo..=hi`: at most `max_ticks` (at least one when the range
/// holds a multiple of the step), equally spaced by 1, 2, 2.5 or 5 times a power of ten; on a
/// count axis the step is a whole number. Returns the ticks and the step.
pub(crate) fn ticks(lo: f64, hi: f64, max_ticks: usize, count: bool) -> (Vec<f64>, f64) {
    let max_ticks = max_ticks.max(2);
    let span = hi - lo;
    if !(span > 0.0 && span.is_finite()) {
        return (vec![], 1.0);
    }
    let raw = span / max_ticks as f64;
    let mut mag = 10f64.powf(raw.log10().floor());
    let mut step = mag;
    'search: for _ in 0..4 {
        for m in [1.0, 2.0, 2.5, 5.0] {
            step = m * mag;
            if count && (step < 1.0 || step.fract() != 0.0) {
                continue;
            }
            let n = (hi / step).floor() - (lo / step).ceil() + 1.0;
            if n <= max_ticks as f64 {
                break 'search;
            }
        }
        mag *= 10.0;
    }
    let first = (lo / step).ceil();
    let mut out: Vec<f64> = Vec::new();
    for k in 0..=max_ticks {
        let v = (first + k as f64) * step;
        if v > hi + step * 1e-9 {
            break;
        }
        // Snap away the rounding residue (0.30000000000000004) and negative zero.
        let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
        if out.last() != Some(&v) {
            out.push(v);
        }
    }
    (out, step)
}

/// The fewest decimals (0..=12) that write every multiple of `step` exactly.
fn decimals(step: f64) -> usize {
    (0..=12)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() <= 1e-6 * scaled.abs().max(1.0)
        })
        .unwrap_or(12)
}

/// `v` with `d` decimals, trailing zeros (and a lone point) removed, never "-0".
fn plain(v: f64, d: usize) -> String {
    let mut s = format!("{v:.d$}");
    if s.contains('.') {
        let kept = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(kept);
    }
    if s == "-0" { "0".into() } else { s }
}

/// `v` in `e` notation with as many mantissa decimals as multiples of `step` need ("2.5e-4",
/// "1e18").
fn sci(v: f64, step: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let mut e = v.abs().log10().floor() as i32;
    let mut m = plain(v / 10f64.powi(e), decimals(step / 10f64.powi(e)).min(6));
    if m.trim_start_matches('-')
        .parse::<f64>()
        .is_ok_and(|m| m >= 10.0)
    {
        e += 1;
        m = plain(v / 10f64.powi(e), decimals(step / 10f64.powi(e)).min(6));
    }
    format!("{m}e{e}")
}

/// Compact labels for `ticks` spaced by `step`: plain decimals without trailing zeros
/// ("0", "0.5", "10"); a k/M/G/T suffix from 100 000 on ("250k", "1.5M"); `e` notation past
/// 10^15, below 10^-3, or where plain labels would need more than four decimals ("2.5e-4").
/// Minus signs are typeset as U+2212, as matplotlib does.
pub(crate) fn tick_labels(ticks: &[f64], step: f64) -> Vec<String> {
    ascii_labels(ticks, step)
        .into_iter()
        .map(|l| l.replace('-', "\u{2212}"))
        .collect()
}

/// [`tick_labels`] with ASCII minus signs.
fn ascii_labels(ticks: &[f64], step: f64) -> Vec<String> {
    let big = ticks.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if big >= 1e15 || (big > 0.0 && (big < 1e-3 || decimals(step) > 4)) {
        return ticks.iter().map(|&v| sci(v, step)).collect();
    }
    if big >= 1e5 {
        let suffix = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
            .into_iter()
            .find(|(unit, _)| big >= *unit && step >= unit / 100.0);
        if let Some((unit, suffix)) = suffix {
            let d = decimals(step / unit);
            return ticks
                .iter()
                .map(|&v| match plain(v / unit, d) {
                    z if z == "0" => z,
                    m => format!("{m}{suffix}"),
                })
                .collect();
        }
    }
    let d = decimals(step);
    ticks.iter().map(|&v| plain(v, d)).collect()
}

/// An axis over `values` with at most `max_ticks` labelled ticks; `count` as from
/// [`is_count`].
pub(crate) fn axis(values: impl Iterator<Item = f64>, count: bool, max_ticks: usize) -> Axis {
    let (lo, hi) = range(values, count);
    let (ticks, step) = ticks(lo, hi, max_ticks, count);
    let labels = tick_labels(&ticks, step);
    Axis {
        lo,
        hi,
        ticks,
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_stay_finite_whatever_the_data() {
        for values in [
            vec![1e308, -1e308],
            vec![f64::NAN, f64::INFINITY],
            vec![],
            vec![3.0, 3.0],
            vec![0.0],
            vec![1e300, -1e300],
            vec![1e15, 1e15 + 0.125],
        ] {
            for count in [false, true] {
                let (lo, hi) = range(values.clone().into_iter(), count);
                assert!(lo.is_finite() && hi.is_finite() && lo < hi && (hi - lo).is_finite());
                let (t, step) = ticks(lo, hi, 8, count);
                assert!(t.len() <= 9 && step > 0.0, "{values:?}: {t:?}");
                assert!(t.iter().all(|v| *v >= lo && *v <= hi + step * 1e-6));
            }
        }
    }

    #[test]
    fn count_axes_are_detected() {
        assert!(is_count(&[1.0, 2.0, 10.0, f64::NAN]));
        assert!(!is_count(&[1.0, 2.5]));
        assert!(!is_count(&[f64::NAN]));
        assert!(!is_count(&[1e20]));
    }

    #[test]
    fn count_axes_get_whole_ticks_without_decimals() {
        let a = axis([1.0, 2.0, 3.0].into_iter(), true, 8);
        assert_eq!(a.labels, vec!["1", "2", "3"]);
        let a = axis([10.0, 20.0, 100.0].into_iter(), true, 6);
        assert!(a.labels.iter().all(|l| !l.contains('.')), "{:?}", a.labels);
        assert!(a.labels.contains(&"20".to_string()), "{:?}", a.labels);
        // The same values on a real axis may take half steps.
        let a = axis([1.0, 2.0, 3.0].into_iter(), false, 8);
        assert!(a.labels.contains(&"1.5".to_string()), "{:?}", a.labels);
    }

    #[test]
    fn labels_are_compact() {
        let l = |t: &[f64], s: f64| ascii_labels(t, s);
        assert_eq!(l(&[0.0, 0.2, 0.4, 1.0], 0.2), vec!["0", "0.2", "0.4", "1"]);
        assert_eq!(l(&[-0.0, 10.0, 20.0], 10.0), vec!["0", "10", "20"]);
        assert_eq!(l(&[0.1 + 0.2], 0.1), vec!["0.3"]);
        assert_eq!(
            l(&[0.0, 250_000.0, 500_000.0], 250_000.0),
            vec!["0", "250k", "500k"]
        );
        assert_eq!(l(&[1.5e6, 2e6], 5e5), vec!["1.5M", "2M"]);
        assert_eq!(l(&[0.0, 2.5e-4, 5e-4], 2.5e-4), vec!["0", "2.5e-4", "5e-4"]);
        assert_eq!(l(&[1e18, 2e18], 1e18), vec!["1e18", "2e18"]);
        assert_eq!(
            l(&[0.0, 5e5, 1e6, 1.5e6], 5e5),
            vec!["0", "0.5M", "1M", "1.5M"]
        );
        assert_eq!(l(&[1e5, 1.5e5], 5e4), vec!["100k", "150k"]);
        assert_eq!(
            l(&[2.5e-4, 7.5e-4, 1e-3, 1.25e-3], 2.5e-4),
            vec!["2.5e-4", "7.5e-4", "1e-3", "1.25e-3"]
        );
        assert_eq!(l(&[-2e-4, 0.0], 1e-4), vec!["-2e-4", "0"]);
        let typeset = tick_labels(&[-2e-4, 0.0], 1e-4);
        assert_eq!(typeset, vec!["\u{2212}2e\u{2212}4", "0"]);
        assert_eq!(tick_labels(&[-1.0, -0.0], 1.0), vec!["\u{2212}1", "0"]);
        assert_eq!(l(&[100_000.0, 100_001.0], 1.0), vec!["100000", "100001"]);
    }

    #[test]
    fn ticks_are_nice_and_bounded() {
        let (t, step) = ticks(-0.05, 1.05, 6, false);
        assert_eq!(step, 0.2);
        assert_eq!(t.len(), 6);
        let (t, _) = ticks(0.5, 3.5, 8, true);
        assert_eq!(t, vec![1.0, 2.0, 3.0]);
    }
}
