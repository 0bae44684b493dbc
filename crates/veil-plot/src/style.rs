//! The look shared by every figure: the tab10 palette, marker shapes, the font, and small
//! drawing helpers that work in "design pixels" (the size a figure has at 640x480 per panel)
//! scaled by [`Pen::u`] to the backend's real pixels.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The font family the figures use: DejaVu Sans, embedded and registered under this name so
/// the PNG renders it through ab_glyph and the SVG asks for the same face (with a fallback).
pub(crate) const FONT: &str = "DejaVu Sans, sans-serif";
/// Title size, design pixels (every chart).
pub(crate) const TITLE_FONT: f64 = 22.0;
/// Axis label size, design pixels.
pub(crate) const LABEL_FONT: f64 = 20.0;
/// Tick, row and column label size, design pixels.
pub(crate) const TICK_FONT: f64 = 18.0;
/// Outer margin, design pixels.
pub(crate) const MARGIN: f64 = 12.0;

/// matplotlib's tab10 palette (first eight colours), one per series.
pub(crate) const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Near-black for text, frame and ticks.
pub(crate) const INK: RGBColor = RGBColor(38, 38, 38);
/// Grid lines.
pub(crate) const GRID: RGBColor = RGBColor(228, 228, 228);
/// Legend frame.
pub(crate) const LEGEND_EDGE: RGBColor = RGBColor(204, 204, 204);

/// A drawing failure inside a figure, as text (the caller adds the file name).
#[derive(Debug)]
pub(crate) struct Fail(pub String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for Fail {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        Fail(e.to_string())
    }
}

/// Result of a drawing step.
pub(crate) type Drawn<T = ()> = Result<T, Fail>;

/// Scale from design pixels to backend pixels, plus how the backend places text.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pen {
    /// Backend pixels per design pixel.
    pub u: f64,
    /// Whether text is rasterised by ab_glyph (the PNG), which draws centred text a little
    /// high; the SVG leaves text to the viewer.
    pub raster: bool,
}

impl Pen {
    /// `v` design pixels in backend pixels, rounded.
    pub fn px(&self, v: f64) -> i32 {
        (v * self.u).round() as i32
    }

    /// A font of `size` design pixels in `color`, anchored at `(h, v)`.
    pub fn font(&self, size: f64, color: RGBColor, (h, v): (HPos, VPos)) -> TextStyle<'static> {
        TextStyle {
            font: (FONT, size * self.u).into_font(),
            color: color.to_backend_color(),
            pos: Pos::new(h, v),
        }
    }

    /// Width in backend pixels of `text` at `size` design pixels.
    pub fn width(&self, text: &str, size: f64) -> Drawn<i32> {
        if text.is_empty() {
            return Ok(0);
        }
        let font = (FONT, size * self.u).into_font();
        let (w, _) = font.box_size(text).map_err(|e| Fail(e.to_string()))?;
        Ok(w as i32)
    }

    /// The size (design pixels, at most `size`, at least 60 % of it) at which `text` fits in
    /// `room` backend pixels, and its width there.
    pub fn fit(&self, text: &str, size: f64, room: i32) -> Drawn<(f64, i32)> {
        let w = self.width(text, size)?;
        if w <= room.max(1) {
            return Ok((size, w));
        }
        let fitted = (size * f64::from(room.max(1)) / f64::from(w)).max(0.6 * size);
        Ok((fitted, self.width(text, fitted)?))
    }

    /// Draws `text` at `at` (backend pixels within `area`), `size` design pixels, anchored
    /// at `anchor`; `upright` turns it to read bottom to top (a y-axis label).
    #[allow(clippy::too_many_arguments)]
    pub fn text<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        text: &str,
        at: (i32, i32),
        size: f64,
        color: RGBColor,
        anchor: (HPos, VPos),
        upright: bool,
    ) -> Drawn {
        if text.is_empty() {
            return Ok(());
        }
        // The SVG backend writes `size / 1.24` as the font size, while ab_glyph (the PNG and
        // every width estimate) scales DejaVu's ascent-to-descent height, 1.164 em, to `size`.
        let size = if self.raster {
            size
        } else {
            size * 1.24 / 1.164
        };
        let mut style = self.font(size, color, anchor);
        let (mut x, mut y) = at;
        if self.raster && matches!(anchor.1, VPos::Center) {
            // ab_glyph puts the centre of a line of text about a fifth of the size too high.
            let shift = (0.2 * size * self.u).round() as i32;
            if upright {
                x += shift;
            } else {
                y += shift;
            }
        }
        if upright {
            style = style.transform(FontTransform::Rotate270);
        }
        area.draw_text(text, &style, (x, y))?;
        Ok(())
    }
}

/// Marker shapes, cycled per series: circle, square, triangle up, diamond, triangle down,
/// cross (x), plus, pentagon.
pub(crate) const MARKERS: usize = 8;

/// Regular polygon vertices around `(cx, cy)`, radius `r`, first vertex at angle `start`
/// (radians, 0 = right, counter-clockwise on screen).
fn regular(cx: i32, cy: i32, r: f64, sides: usize, start: f64) -> Vec<(i32, i32)> {
    (0..sides)
        .map(|i| {
            let a = start + std::f64::consts::TAU * i as f64 / sides as f64;
            (
                cx + (r * a.cos()).round() as i32,
                cy - (r * a.sin()).round() as i32,
            )
        })
        .collect()
}

/// Draws marker `shape` (index into the cycle above) of radius `r` design pixels at `at`
/// (backend pixels), filled with `color` and edged in white so overlapping markers stay
/// apart; the cross and plus are drawn as strokes.
pub(crate) fn marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pen: &Pen,
    shape: usize,
    at: (i32, i32),
    r: f64,
    color: RGBColor,
) -> Drawn {
    use std::f64::consts::{FRAC_PI_2, FRAC_PI_4};
    let (cx, cy) = at;
    let ru = r * pen.u;
    let edge = WHITE.stroke_width(pen.px(0.9).max(1) as u32);
    let poly = match shape % MARKERS {
        0 => {
            let rr = ru.round().max(1.0) as i32;
            area.draw(&Circle::new(at, rr, color.filled()))?;
            area.draw(&Circle::new(at, rr, edge))?;
            return Ok(());
        }
        1 => regular(cx, cy, ru * 1.2, 4, FRAC_PI_4),
        2 => regular(cx, cy, ru * 1.3, 3, FRAC_PI_2),
        3 => regular(cx, cy, ru * 1.3, 4, FRAC_PI_2),
        4 => regular(cx, cy, ru * 1.3, 3, -FRAC_PI_2),
        5 | 6 => {
            let start = if shape % MARKERS == 5 { FRAC_PI_4 } else { 0.0 };
            let tips = regular(cx, cy, ru * 1.25, 4, start);
            let stroke = color.stroke_width(pen.px(2.2).max(1) as u32);
            area.draw(&PathElement::new(vec![tips[0], tips[2]], stroke))?;
            area.draw(&PathElement::new(vec![tips[1], tips[3]], stroke))?;
            return Ok(());
        }
        _ => regular(cx, cy, ru * 1.2, 5, FRAC_PI_2),
    };
    let mut ring = poly.clone();
    ring.extend(poly.first().copied());
    area.draw(&Polygon::new(poly, color.filled()))?;
    area.draw(&PathElement::new(ring, edge))?;
    Ok(())
}
