//! Annotated heat maps: one cell per (row, column) coloured on matplotlib's "Reds" scale
//! (values in `[0, 1]`), each cell labelled with its value, a colour bar on the right; missing
//! cells are grey with a dash.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use crate::Figure;
use crate::axis;
use crate::style::{Drawn, Fail, INK, LABEL_FONT, MARGIN, Pen, TICK_FONT, TITLE_FONT};

/// Cell annotation size, design pixels.
const CELL_FONT: f64 = 16.0;
/// Cell height, design pixels.
const CELL_H: f64 = 36.0;
/// Colour bar width, design pixels.
const BAR_W: f64 = 18.0;
/// The label under the columns.
const X_LABEL: &str = "maps seen (k)";

/// matplotlib's "Reds" colour map, nine stops from 0 to 1.
const REDS: [(u8, u8, u8); 9] = [
    (255, 245, 240),
    (254, 224, 210),
    (252, 187, 161),
    (252, 146, 114),
    (251, 106, 74),
    (239, 59, 44),
    (203, 24, 29),
    (165, 15, 21),
    (103, 0, 13),
];

/// The colour of `t` (clamped to `[0, 1]`) on [`REDS`].
pub(crate) fn reds(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let pos = t * (REDS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(REDS.len() - 2);
    let f = pos - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + f * (f64::from(b) - f64::from(a))).round() as u8;
    let (a, b) = (REDS[i], REDS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A heat map with its layout, in design pixels.
pub(crate) struct Heat<'a> {
    title: &'a str,
    rows: &'a [String],
    cols: &'a [String],
    cells: &'a [Vec<Option<f64>>],
    /// Left edge of the grid.
    left: f64,
    /// Top edge of the grid.
    top: f64,
    /// Cell width.
    cell_w: f64,
    /// Figure size.
    size: (u32, u32),
}

impl<'a> Heat<'a> {
    /// Lays out a heat map whose cells fit their labels and annotations.
    pub fn new(
        title: &'a str,
        rows: &'a [String],
        cols: &'a [String],
        cells: &'a [Vec<Option<f64>>],
    ) -> Result<Self, Fail> {
        let pen = Pen {
            u: 1.0,
            raster: false,
        };
        let widest = |labels: &[String], size: f64| -> Drawn<f64> {
            let mut w = 0;
            for l in labels {
                w = w.max(pen.width(l, size)?);
            }
            Ok(f64::from(w))
        };
        let cell_w = 60f64
            .max(widest(cols, TICK_FONT)? + 14.0)
            .max(f64::from(pen.width("0.00", CELL_FONT)?) + 16.0);
        let left = MARGIN + widest(rows, TICK_FONT)? + 12.0;
        let top = MARGIN
            + if title.is_empty() {
                TICK_FONT / 2.0
            } else {
                TITLE_FONT * 1.1 + 14.0
            };
        let bar_label_w = widest(&["0.75".to_string()], TICK_FONT)?;
        let grid_w = cell_w * cols.len() as f64;
        let right = 24.0 + BAR_W + 10.0 + bar_label_w + MARGIN;
        let title_w = f64::from(pen.width(title, TITLE_FONT)?) + 2.0 * MARGIN;
        let w = (left + grid_w + right).max(title_w).max(480.0);
        let h = top + CELL_H * rows.len() as f64 + 8.0 + TICK_FONT + LABEL_FONT + 6.0 + MARGIN;
        let size = (w.ceil().min(1e6) as u32, h.ceil().min(1e6) as u32);
        Ok(Heat {
            title,
            rows,
            cols,
            cells,
            left,
            top,
            cell_w,
            size,
        })
    }
}

impl Figure for Heat<'_> {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, pen: Pen) -> Drawn {
        let (nr, nc) = (self.rows.len(), self.cols.len());
        let x_at = |c: usize| pen.px(self.left + self.cell_w * c as f64);
        let y_at = |r: usize| pen.px(self.top + CELL_H * r as f64);
        let center = (HPos::Center, VPos::Center);
        for (r, row) in self.cells.iter().enumerate().take(nr) {
            for c in 0..nc {
                let v = row.get(c).copied().flatten().filter(|v| v.is_finite());
                let (x0, y0, x1, y1) = (x_at(c), y_at(r), x_at(c + 1), y_at(r + 1));
                let fill = v.map_or(RGBColor(232, 232, 232), reds);
                // A white hairline between cells.
                let gap = pen.px(1.0).max(1);
                area_rect(root, (x0, y0), (x1 - gap, y1 - gap), fill)?;
                let text = v.map_or("–".to_string(), |v| format!("{v:.2}"));
                let ink = match v {
                    Some(v) if v > 0.55 => WHITE,
                    Some(_) => INK,
                    None => RGBColor(120, 120, 120),
                };
                let mid = ((x0 + x1) / 2, (y0 + y1) / 2);
                pen.text(root, &text, mid, CELL_FONT, ink, center, false)?;
            }
        }
        let (grid_b, grid_r) = (y_at(nr), x_at(nc));
        for (r, label) in self.rows.iter().enumerate() {
            let at = (x_at(0) - pen.px(8.0), (y_at(r) + y_at(r + 1)) / 2);
            pen.text(
                root,
                label,
                at,
                TICK_FONT,
                INK,
                (HPos::Right, VPos::Center),
                false,
            )?;
        }
        for (c, label) in self.cols.iter().enumerate() {
            let at = ((x_at(c) + x_at(c + 1)) / 2, grid_b + pen.px(6.0));
            pen.text(
                root,
                label,
                at,
                TICK_FONT,
                INK,
                (HPos::Center, VPos::Top),
                false,
            )?;
        }
        let (w, h) = root.dim_in_pixel();
        let bottom = (HPos::Center, VPos::Bottom);
        let m = pen.px(MARGIN);
        let grid_mid = (x_at(0) + grid_r) / 2;
        pen.text(
            root,
            X_LABEL,
            (grid_mid, h as i32 - m),
            LABEL_FONT,
            INK,
            bottom,
            false,
        )?;
        let top = (HPos::Center, VPos::Top);
        pen.text(
            root,
            self.title,
            (w as i32 / 2, m),
            TITLE_FONT,
            INK,
            top,
            false,
        )?;
        self.draw_bar(root, &pen, grid_r + pen.px(24.0), (y_at(0), grid_b))
    }
}

impl Heat<'_> {
    /// The colour bar: the scale from 0 (bottom) to 1 (top) at `x`, spanning `y0..y1`, with
    /// ticks and labels on its right.
    fn draw_bar<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        pen: &Pen,
        x: i32,
        (y0, y1): (i32, i32),
    ) -> Drawn {
        let x1 = x + pen.px(BAR_W);
        let steps = 64;
        for i in 0..steps {
            let t0 = f64::from(i) / f64::from(steps);
            let t1 = f64::from(i + 1) / f64::from(steps);
            let ya = y1 - ((f64::from(y1 - y0) * t1).round() as i32);
            let yb = y1 - ((f64::from(y1 - y0) * t0).round() as i32);
            area_rect(root, (x, ya), (x1, yb), reds((t0 + t1) / 2.0))?;
        }
        let ink = INK.stroke_width(pen.px(1.0).max(1) as u32);
        root.draw(&Rectangle::new([(x, y0), (x1, y1)], ink))?;
        let fit = (f64::from(y1 - y0) / (TICK_FONT * 1.6 * pen.u)) as usize;
        let (ticks, step) = axis::ticks(0.0, 1.0, fit.clamp(2, 6), false);
        let labels = axis::tick_labels(&ticks, step);
        for (v, label) in ticks.iter().zip(&labels) {
            let y = y1 - (f64::from(y1 - y0) * v).round() as i32;
            root.draw(&PathElement::new(vec![(x1, y), (x1 + pen.px(5.0), y)], ink))?;
            let at = (x1 + pen.px(8.0), y);
            pen.text(
                root,
                label,
                at,
                TICK_FONT,
                INK,
                (HPos::Left, VPos::Center),
                false,
            )?;
        }
        Ok(())
    }
}

/// A filled rectangle from `a` to `b` (backend pixels).
fn area_rect<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    a: (i32, i32),
    b: (i32, i32),
    color: RGBColor,
) -> Drawn {
    root.draw(&Rectangle::new([a, b], color.filled()))?;
    Ok(())
}
