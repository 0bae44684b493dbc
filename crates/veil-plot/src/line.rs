//! Line charts: panels side by side, each with a light grid, thin lines with a marker at every
//! point (shape and tab10 colour per series), optional spread as a band or error bars, compact
//! tick labels (whole numbers on count axes) and a legend placed where it hides no data.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use crate::axis::{self, Axis, usable};
use crate::legend::{Entry, Legend, Rect};
use crate::style::{
    COLORS, Drawn, GRID, INK, LABEL_FONT, MARGIN, MARKERS, Pen, TICK_FONT, TITLE_FONT, marker,
};
use crate::{Figure, Panel};

/// Tick mark length (outwards), design pixels.
const TICK_LEN: f64 = 5.0;
/// Line width, design pixels.
const LINE_WIDTH: f64 = 2.0;
/// Marker radius, design pixels (a series of a single point gets a larger one).
const MARKER_R: f64 = 4.5;
/// A series of up to this many points gets a marker at every point; a denser one gets about
/// [`MARKS_WHEN_DENSE`] evenly spaced markers (matplotlib's `markevery`), which keeps the line
/// readable.
const MARK_ALL_UP_TO: usize = 60;
/// Markers on a dense series.
const MARKS_WHEN_DENSE: usize = 30;
/// Series whose spread is drawn as error bars when no spread series of the panel has more
/// points than this; past it the spread becomes a translucent band.
const ERROR_BAR_MAX_POINTS: usize = 8;
/// Opacity of a spread band.
const BAND_ALPHA: f64 = 0.2;

/// The design size of one panel; larger panels scale fonts, lines and markers up with them
/// (up to [`MAX_GROWTH`]) so every panel reads the same once shrunk to a column.
pub(crate) const DESIGN: (u32, u32) = (640, 480);
/// Largest growth of fonts and strokes for a panel above the design size.
const MAX_GROWTH: f64 = 1.6;

/// One usable point of a series: `(x, y, spread)`, the spread kept only when finite, not
/// negative and within the axis limits.
type Point = (f64, f64, Option<f64>);

/// A series split into runs of consecutive usable points (a non-finite point breaks the line).
struct Prepared {
    runs: Vec<Vec<Point>>,
    color: RGBColor,
    shape: usize,
}

/// Splits every series of `panel` into runs of usable points.
fn prepare(panel: &Panel) -> Vec<Prepared> {
    panel
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut runs: Vec<Vec<Point>> = vec![];
            let mut run: Vec<Point> = vec![];
            for (k, &(x, y)) in s.points.iter().enumerate() {
                if !(usable(x) && usable(y)) {
                    runs.extend((!run.is_empty()).then(|| std::mem::take(&mut run)));
                    continue;
                }
                let spread = s
                    .spread
                    .as_ref()
                    .and_then(|v| v.get(k).copied())
                    .filter(|d| *d >= 0.0 && usable(*d) && usable(y + d) && usable(y - d));
                run.push((x, y, spread));
            }
            runs.extend((!run.is_empty()).then_some(run));
            Prepared {
                runs,
                color: COLORS[i % COLORS.len()],
                // Past the palette the shapes shift, so no two series look alike.
                shape: (i + i / COLORS.len()) % MARKERS,
            }
        })
        .collect()
}

/// The plot frame and its two axes.
struct Frame {
    rect: Rect,
    x: Axis,
    y: Axis,
}

impl Frame {
    /// Backend pixel of the data point `(x, y)`.
    fn at(&self, x: f64, y: f64) -> (i32, i32) {
        let (l, t, r, b) = self.rect;
        (self.x.map(x, l, r), self.y.map(y, b, t))
    }
}

/// Line charts, panels side by side, each `panel_w x h` design pixels.
pub(crate) struct Lines<'a> {
    /// The panels, left to right.
    pub panels: &'a [Panel],
    /// Width of one panel.
    pub panel_w: u32,
    /// Height of the figure.
    pub h: u32,
}

impl Figure for Lines<'_> {
    fn size(&self) -> (u32, u32) {
        (
            self.panel_w
                .saturating_mul(u32::try_from(self.panels.len()).unwrap_or(u32::MAX)),
            self.h,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, base: Pen) -> Drawn {
        let growth = (f64::from(self.panel_w) / f64::from(DESIGN.0))
            .min(f64::from(self.h) / f64::from(DESIGN.1))
            .clamp(1.0, MAX_GROWTH);
        let pen = Pen {
            u: base.u * growth,
            ..base
        };
        for (area, panel) in root
            .split_evenly((1, self.panels.len()))
            .iter()
            .zip(self.panels)
        {
            draw_panel(area, &pen, panel)?;
        }
        Ok(())
    }
}

/// The x axis for a plot `width` backend pixels wide: as many ticks (8 at most) as fit with
/// a gap of one label height between labels.
fn x_axis(pen: &Pen, xs: &[f64], width: i32) -> Drawn<Axis> {
    let count = axis::is_count(xs);
    let mut best = axis::axis(xs.iter().copied(), count, 2);
    for n in (2..=8).rev() {
        let a = axis::axis(xs.iter().copied(), count, n);
        let mut widest = 0;
        for l in &a.labels {
            widest = widest.max(pen.width(l, TICK_FONT)?);
        }
        if a.labels.len() as i32 * (widest + pen.px(TICK_FONT)) <= width {
            best = a;
            break;
        }
    }
    Ok(best)
}

/// Lays out the frame of `panel` in `area`: title and axis labels outside, tick labels sized
/// to their text, `right_reserve` backend pixels kept free on the right (an outside legend).
fn layout<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pen: &Pen,
    panel: &Panel,
    series: &[Prepared],
    right_reserve: i32,
) -> Drawn<Frame> {
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let points = || series.iter().flat_map(|s| s.runs.iter().flatten());
    let xs: Vec<f64> = points().map(|p| p.0).collect();
    let ys: Vec<f64> = points().map(|p| p.1).collect();
    let spread_ys = points().flat_map(|&(_, y, d)| d.map(|d| [y - d, y + d]).into_iter().flatten());
    let m = pen.px(MARGIN);
    let top = m + if panel.title.is_empty() {
        pen.px(TICK_FONT / 2.0)
    } else {
        pen.px(TITLE_FONT * 1.1 + 10.0)
    };
    let x_desc = if panel.x_label.is_empty() {
        0
    } else {
        pen.px(LABEL_FONT + 6.0)
    };
    let bottom = h - m - x_desc - pen.px(TICK_LEN + 5.0 + TICK_FONT);
    let y_ticks = ((bottom - top) / pen.px(TICK_FONT * 3.2).max(1)).clamp(2, 8) as usize;
    let y = axis::axis(
        ys.iter().copied().chain(spread_ys),
        axis::is_count(&ys),
        y_ticks,
    );
    let mut widest = 0;
    for l in &y.labels {
        widest = widest.max(pen.width(l, TICK_FONT)?);
    }
    let y_desc = if panel.y_label.is_empty() {
        0
    } else {
        pen.px(LABEL_FONT + 10.0)
    };
    let left = m + y_desc + widest + pen.px(TICK_LEN + 5.0);
    let right = (w - m - pen.px(TICK_FONT * 0.8) - right_reserve).max(left + 1);
    let x = x_axis(pen, &xs, right - left)?;
    Ok(Frame {
        rect: (left, top, right, bottom.max(top + 1)),
        x,
        y,
    })
}

/// Points along the drawn data (lines every few pixels, markers several times over, spread
/// ends), backend pixels: what a legend should not cover.
fn samples(frame: &Frame, series: &[Prepared], pen: &Pen) -> Vec<(i32, i32)> {
    let step = f64::from(pen.px(4.0).max(1));
    let mut out = vec![];
    for run in series.iter().flat_map(|s| &s.runs) {
        for (k, &(x, y, d)) in run.iter().enumerate() {
            let p = frame.at(x, y);
            out.extend([p; 4]);
            if let Some(d) = d {
                out.extend([frame.at(x, y - d), frame.at(x, y + d)]);
            }
            if let Some(&(nx, ny, _)) = run.get(k + 1) {
                let q = frame.at(nx, ny);
                let len = f64::from(q.0 - p.0).hypot(f64::from(q.1 - p.1));
                let n = (len / step).min(2000.0) as i32;
                out.extend((1..n).map(|i| {
                    let t = f64::from(i) / f64::from(n);
                    (
                        p.0 + (t * f64::from(q.0 - p.0)) as i32,
                        p.1 + (t * f64::from(q.1 - p.1)) as i32,
                    )
                }));
            }
        }
    }
    out
}

/// Draws one panel into `area`.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pen: &Pen,
    panel: &Panel,
) -> Drawn {
    let series = prepare(panel);
    let entries = panel
        .series
        .iter()
        .zip(&series)
        .map(|(s, p)| Entry {
            name: s.name.clone(),
            color: p.color,
            shape: p.shape,
        })
        .collect();
    let legend = Legend::measure(pen, entries)?;
    let mut frame = layout(area, pen, panel, &series, 0)?;
    let mut legend_at = None;
    if let Some(legend) = &legend {
        let (cost, at) = legend.best_inside(pen, frame.rect, &samples(&frame, &series, pen));
        let (w, _) = area.dim_in_pixel();
        if cost > 0 && f64::from(legend.w) <= 0.4 * f64::from(w) {
            let gap = pen.px(14.0);
            frame = layout(area, pen, panel, &series, legend.w + gap)?;
            legend_at = Some((frame.rect.2 + gap, frame.rect.1));
        } else {
            legend_at = Some(at);
        }
    }
    draw_grid(area, pen, &frame)?;
    draw_data(area, pen, &frame, &series)?;
    draw_axes(area, pen, &frame, panel)?;
    if let (Some(legend), Some(at)) = (legend, legend_at) {
        legend.draw(area, pen, at)?;
    }
    Ok(())
}

/// Light grid lines at every tick.
fn draw_grid<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, pen: &Pen, frame: &Frame) -> Drawn {
    let (l, t, r, b) = frame.rect;
    let style = GRID.stroke_width(pen.px(1.0).max(1) as u32);
    for &v in &frame.x.ticks {
        let x = frame.x.map(v, l, r);
        area.draw(&PathElement::new(vec![(x, t), (x, b)], style))?;
    }
    for &v in &frame.y.ticks {
        let y = frame.y.map(v, b, t);
        area.draw(&PathElement::new(vec![(l, y), (r, y)], style))?;
    }
    Ok(())
}

/// Spreads (bands or error bars), then lines, then markers, series by series in that order
/// so every marker sits above every band.
fn draw_data<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pen: &Pen,
    frame: &Frame,
    series: &[Prepared],
) -> Drawn {
    let most = series
        .iter()
        .filter(|s| s.runs.iter().flatten().any(|p| p.2.is_some()))
        .map(|s| s.runs.iter().map(Vec::len).sum::<usize>())
        .max()
        .unwrap_or(0);
    let bars = most <= ERROR_BAR_MAX_POINTS;
    for s in series {
        for run in &s.runs {
            draw_spread(area, pen, frame, run, s.color, bars)?;
        }
    }
    let line = |c: RGBColor| c.stroke_width(pen.px(LINE_WIDTH).max(1) as u32);
    for s in series {
        for run in s.runs.iter().filter(|r| r.len() > 1) {
            let pts = run
                .iter()
                .map(|&(x, y, _)| frame.at(x, y))
                .collect::<Vec<_>>();
            area.draw(&PathElement::new(pts, line(s.color)))?;
        }
    }
    for s in series {
        let total: usize = s.runs.iter().map(Vec::len).sum();
        let r = if total == 1 { MARKER_R * 1.6 } else { MARKER_R };
        let every = if total > MARK_ALL_UP_TO {
            total.div_ceil(MARKS_WHEN_DENSE)
        } else {
            1
        };
        for &(x, y, _) in s.runs.iter().flatten().step_by(every) {
            marker(area, pen, s.shape, frame.at(x, y), r, s.color)?;
        }
    }
    Ok(())
}

/// The spread of one run: error bars with caps (`bars`) or a translucent band; a point whose
/// spread is unknown interrupts the band, and a lone point with a spread gets an error bar.
fn draw_spread<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pen: &Pen,
    frame: &Frame,
    run: &[Point],
    color: RGBColor,
    bars: bool,
) -> Drawn {
    let stroke = color.stroke_width(pen.px(1.5).max(1) as u32);
    let cap = pen.px(4.0);
    let mut segments: Vec<Vec<(f64, f64, f64)>> = vec![vec![]];
    for &(x, y, d) in run {
        match d {
            Some(d) => {
                if let Some(s) = segments.last_mut() {
                    s.push((x, y, d));
                }
            }
            None => segments.push(vec![]),
        }
    }
    for seg in segments.iter().filter(|s| !s.is_empty()) {
        if bars || seg.len() == 1 {
            for &(x, y, d) in seg {
                let (lo, hi) = (frame.at(x, y - d), frame.at(x, y + d));
                area.draw(&PathElement::new(vec![lo, hi], stroke))?;
                for (px, py) in [lo, hi] {
                    area.draw(&PathElement::new(
                        vec![(px - cap, py), (px + cap, py)],
                        stroke,
                    ))?;
                }
            }
        } else {
            let upper = seg.iter().map(|&(x, y, d)| frame.at(x, y + d));
            let lower = seg.iter().rev().map(|&(x, y, d)| frame.at(x, y - d));
            let outline: Vec<(i32, i32)> = upper.chain(lower).collect();
            area.draw(&Polygon::new(outline, color.mix(BAND_ALPHA).filled()))?;
        }
    }
    Ok(())
}

/// Frame, outward ticks, tick labels, axis labels and title.
fn draw_axes<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pen: &Pen,
    frame: &Frame,
    panel: &Panel,
) -> Drawn {
    let (l, t, r, b) = frame.rect;
    let (w, h) = area.dim_in_pixel();
    let ink = INK.stroke_width(pen.px(1.0).max(1) as u32);
    area.draw(&Rectangle::new([(l, t), (r, b)], ink))?;
    let tick = pen.px(TICK_LEN);
    let gap = pen.px(TICK_LEN + 4.0);
    for (&v, label) in frame.x.ticks.iter().zip(&frame.x.labels) {
        let x = frame.x.map(v, l, r);
        area.draw(&PathElement::new(vec![(x, b), (x, b + tick)], ink))?;
        let anchor = (HPos::Center, VPos::Top);
        pen.text(area, label, (x, b + gap), TICK_FONT, INK, anchor, false)?;
    }
    for (&v, label) in frame.y.ticks.iter().zip(&frame.y.labels) {
        let y = frame.y.map(v, b, t);
        area.draw(&PathElement::new(vec![(l - tick, y), (l, y)], ink))?;
        let anchor = (HPos::Right, VPos::Center);
        pen.text(area, label, (l - gap, y), TICK_FONT, INK, anchor, false)?;
    }
    // Labels too long for their side shrink (to 60 % at most); a title stays within the panel.
    let (w, h) = (w as i32, h as i32);
    let m = pen.px(MARGIN);
    let mid = ((l + r) / 2, (t + b) / 2);
    let (size, _) = pen.fit(&panel.x_label, LABEL_FONT, w - 2 * m)?;
    let bottom = (HPos::Center, VPos::Bottom);
    pen.text(
        area,
        &panel.x_label,
        (mid.0, h - m),
        size,
        INK,
        bottom,
        false,
    )?;
    let (size, _) = pen.fit(&panel.y_label, LABEL_FONT, h - 2 * m)?;
    let top = (HPos::Center, VPos::Top);
    pen.text(area, &panel.y_label, (m, mid.1), size, INK, top, true)?;
    let (size, tw) = pen.fit(&panel.title, TITLE_FONT, w - 2 * m)?;
    let x = mid.0.min(w - m - tw / 2).max(m + tw / 2);
    pen.text(area, &panel.title, (x, m), size, INK, top, false)?;
    Ok(())
}
