//! Chart legends in the matplotlib manner: one row per named series (a short line segment
//! with the series' marker on it, then the name) in a white, light-edged box, placed where it
//! hides the least data.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use crate::style::{Drawn, INK, LEGEND_EDGE, Pen, marker};

/// Legend text size, design pixels.
pub(crate) const LEGEND_FONT: f64 = 17.0;

/// One legend row.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// Series name.
    pub name: String,
    /// Line and marker colour.
    pub color: RGBColor,
    /// Marker shape (see [`crate::style::marker`]).
    pub shape: usize,
}

/// A measured legend, sizes in backend pixels.
#[derive(Clone, Debug)]
pub(crate) struct Legend {
    entries: Vec<Entry>,
    /// Box width.
    pub w: i32,
    /// Box height.
    pub h: i32,
}

/// A rectangle `(left, top, right, bottom)` in backend pixels.
pub(crate) type Rect = (i32, i32, i32, i32);

impl Legend {
    /// Measures a legend for `entries` (unnamed ones are left out); `None` when no entry has
    /// a name.
    pub fn measure(pen: &Pen, entries: Vec<Entry>) -> Drawn<Option<Legend>> {
        let entries: Vec<Entry> = entries.into_iter().filter(|e| !e.name.is_empty()).collect();
        if entries.is_empty() {
            return Ok(None);
        }
        let mut text_w = 0;
        for e in &entries {
            text_w = text_w.max(pen.width(&e.name, LEGEND_FONT)?);
        }
        let f = LEGEND_FONT;
        let w = pen.px(2.0 * 0.5 * f + 2.0 * f + 0.6 * f) + text_w;
        let h = pen.px(2.0 * 0.5 * f + 1.4 * f * entries.len() as f64);
        Ok(Some(Legend { entries, w, h }))
    }

    /// The inside position (top-left corner) that covers the fewest of `samples` (points on
    /// the drawn data, backend pixels) within the plot frame `plot`, and how many it covers.
    /// Candidates in matplotlib's "best" order: upper right, upper left, lower left, lower
    /// right, then the middles of the right, left, top and bottom edges.
    pub fn best_inside(
        &self,
        pen: &Pen,
        plot: Rect,
        samples: &[(i32, i32)],
    ) -> (usize, (i32, i32)) {
        let (l, t, r, b) = plot;
        let inset = pen.px(8.0);
        let (x_left, x_right) = (l + inset, r - inset - self.w);
        let (y_top, y_bottom) = (t + inset, b - inset - self.h);
        let (x_mid, y_mid) = ((l + r - self.w) / 2, (t + b - self.h) / 2);
        let candidates = [
            (x_right, y_top),
            (x_left, y_top),
            (x_left, y_bottom),
            (x_right, y_bottom),
            (x_right, y_mid),
            (x_left, y_mid),
            (x_mid, y_top),
            (x_mid, y_bottom),
        ];
        let margin = pen.px(5.0);
        let cost = |(x, y): (i32, i32)| {
            samples
                .iter()
                .filter(|(px, py)| {
                    *px >= x - margin
                        && *px <= x + self.w + margin
                        && *py >= y - margin
                        && *py <= y + self.h + margin
                })
                .count()
        };
        candidates
            .iter()
            .map(|&c| (cost(c), c))
            .enumerate()
            .min_by_key(|(i, (cost, _))| (*cost, *i))
            .map(|(_, best)| best)
            .unwrap_or((0, (x_right, y_top)))
    }

    /// Draws the legend box with its top-left corner at `at` (backend pixels in `area`).
    pub fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        pen: &Pen,
        at: (i32, i32),
    ) -> Drawn {
        let (x, y) = at;
        let f = LEGEND_FONT;
        let corners = [(x, y), (x + self.w, y + self.h)];
        area.draw(&Rectangle::new(corners, WHITE.mix(0.9).filled()))?;
        area.draw(&Rectangle::new(
            corners,
            LEGEND_EDGE.stroke_width(pen.px(1.0).max(1) as u32),
        ))?;
        let handle = (x + pen.px(0.5 * f), x + pen.px(2.5 * f));
        for (i, e) in self.entries.iter().enumerate() {
            let cy = y + pen.px(0.5 * f + 1.4 * f * (i as f64 + 0.5));
            area.draw(&PathElement::new(
                vec![(handle.0, cy), (handle.1, cy)],
                e.color.stroke_width(pen.px(2.0).max(1) as u32),
            ))?;
            marker(
                area,
                pen,
                e.shape,
                ((handle.0 + handle.1) / 2, cy),
                4.5,
                e.color,
            )?;
            let tx = handle.1 + pen.px(0.6 * f);
            pen.text(
                area,
                &e.name,
                (tx, cy),
                f,
                INK,
                (HPos::Left, VPos::Center),
                false,
            )?;
        }
        Ok(())
    }
}
