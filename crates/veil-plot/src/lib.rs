//! veil-plot: the figures veil writes, each as a PNG **and** an SVG drawn by the same code
//! (plotters; DejaVu Sans embedded and rendered by ab_glyph, so no system font library is
//! needed).
//!
//! Key items: [`Series`] (a named polyline with an optional per-point spread), [`Panel`] (one
//! chart: title, axis labels, series), [`line_charts`] (panels side by side) and [`heat_map`].
//! Both drawing functions take the PNG path `X.png` and write `X.png` and `X.svg` beside it.
//!
//! The look follows a matplotlib paper figure: 2 px lines with a marker at every point (a
//! different shape per series; about 30 evenly spaced markers on a series of more than 60
//! points), colours from the tab10 palette, a light grid, outward ticks, 18-22 px text, a
//! framed legend (line segment + marker + name) in the corner where it hides no data, or
//! outside on the right when every corner would. Tick labels are compact ("10", not "10.0";
//! "250k"; "2.5e-4"), and an axis whose values are all integers (a count) gets whole ticks
//! only. A spread is drawn as error bars when none of the panel's series with a spread has
//! more than 8 points (few points: bars stay readable), as a translucent band otherwise. The
//! PNG is drawn at twice its size and averaged down, which anti-aliases lines and text.
//!
//! Errors are [`PlotError`]s that name the file; nothing here panics on odd data (non-finite
//! points break the line, non-finite or negative spreads are left out, empty or degenerate
//! ranges are widened).

#![forbid(unsafe_code)]

mod axis;
mod heat;
mod legend;
mod line;
mod style;

use std::path::{Path, PathBuf};

use plotters::backend::{BitMapBackend, RGBPixel, SVGBackend};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::style::{Drawn, FONT, Fail, Pen};

/// A failure to draw or write a figure.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {message}")]
pub struct PlotError {
    /// Output file.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// One named polyline, with an optional spread per point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Legend label (an empty name keeps the series out of the legend).
    pub name: String,
    /// Points `(x, y)`, drawn in order; a non-finite point breaks the line.
    pub points: Vec<(f64, f64)>,
    /// Spread of each point's `y` (e.g. the standard deviation over draws), drawn as
    /// `y ± spread`: one value per point, non-finite or negative values are left out. `None`
    /// draws no spread.
    pub spread: Option<Vec<f64>>,
}

impl Series {
    /// A series without spread.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
            spread: None,
        }
    }

    /// A series with a spread per point (`spread[i]` belongs to `points[i]`; a length that
    /// differs from the points' is reported by the drawing function as a [`PlotError`]).
    pub fn with_spread(name: impl Into<String>, points: Vec<(f64, f64)>, spread: Vec<f64>) -> Self {
        Series {
            name: name.into(),
            points,
            spread: Some(spread),
        }
    }
}

/// One chart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Panel {
    /// Title above the chart.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
}

impl Panel {
    /// A panel of plain lines, each `(legend name, points)`, as the planner and the game
    /// hand them over.
    pub fn from_lines(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
        lines: Vec<(String, Vec<(f64, f64)>)>,
    ) -> Self {
        Panel {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: lines.into_iter().map(|(n, p)| Series::new(n, p)).collect(),
        }
    }
}

/// Smallest panel drawn, in pixels: a smaller request is enlarged to it so the text stays
/// legible once the figure is shrunk to a column.
pub const MIN_PANEL: (u32, u32) = line::DESIGN;

/// Largest figure side, in pixels.
const MAX_SIDE: u32 = 32_768;
/// Largest figure area, in pixels (a 150 MB canvas).
const MAX_PIXELS: u64 = 50_000_000;
/// Largest figure area drawn at twice its size for anti-aliasing.
const SUPERSAMPLED_PIXELS: u64 = 8_000_000;

/// Registers the embedded DejaVu Sans under [`FONT`] (once per process).
fn register_fonts() -> Result<(), Fail> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Fail("the embedded font could not be loaded".into()))
    }
}

/// A figure that can be drawn on any plotters backend.
trait Figure {
    /// Size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the figure on `root` (already white), scaled by `pen`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, pen: Pen) -> Drawn;
}

/// Writes `fig` as a PNG at `path` and as an SVG beside it.
fn render<F: Figure>(path: &Path, fig: &F) -> Result<(), PlotError> {
    let fail = |m: String| PlotError {
        path: path.display().to_string(),
        message: m,
    };
    let svg = svg_path(path).ok_or_else(|| fail("the PNG path must not end in .svg".into()))?;
    register_fonts().map_err(|e| fail(e.0))?;
    let (w, h) = fig.size();
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS
    {
        return Err(fail(format!(
            "a {w}x{h} figure is outside 1..={MAX_SIDE} pixels a side or {MAX_PIXELS} in all"
        )));
    }
    png(path, fig, (w, h)).map_err(|e| fail(e.0))?;
    let svg_err = |e: Fail| PlotError {
        path: svg.display().to_string(),
        message: e.0,
    };
    let root = SVGBackend::new(&svg, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| svg_err(e.into()))?;
    let pen = Pen {
        u: 1.0,
        raster: false,
    };
    fig.draw(&root, pen).map_err(svg_err)?;
    root.present().map_err(|e| svg_err(e.into()))
}

/// The SVG beside the PNG `path`; `None` when `path` is itself an SVG.
fn svg_path(path: &Path) -> Option<PathBuf> {
    let is_svg = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    (!is_svg).then(|| path.with_extension("svg"))
}

/// Draws `fig` at `scale` times its size, averages it down to `(w, h)` and writes the PNG.
fn png<F: Figure>(path: &Path, fig: &F, (w, h): (u32, u32)) -> Drawn {
    // Twice the size anti-aliases; very large figures are drawn as they are.
    let scale: u32 = if u64::from(w) * u64::from(h) <= SUPERSAMPLED_PIXELS {
        2
    } else {
        1
    };
    let (bw, bh) = (w * scale, h * scale);
    let mut big = vec![255u8; bw as usize * bh as usize * 3];
    {
        let backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut big, (bw, bh))
            .map_err(|e| Fail(e.to_string()))?;
        let root = backend.into_drawing_area();
        root.fill(&WHITE)?;
        let pen = Pen {
            u: f64::from(scale),
            raster: true,
        };
        fig.draw(&root, pen)?;
        root.present()?;
    }
    let small = downsample(&big, (w as usize, h as usize), scale as usize);
    let mut out = BitMapBackend::new(path, (w, h));
    out.blit_bitmap((0, 0), (w, h), &small)
        .map_err(|e| Fail(e.to_string()))?;
    out.present().map_err(|e| Fail(e.to_string()))
}

/// The RGB image `big` (`scale` times `w x h`) averaged over `scale x scale` blocks.
fn downsample(big: &[u8], (w, h): (usize, usize), scale: usize) -> Vec<u8> {
    let bw = w * scale;
    let mut out = vec![0u8; w * h * 3];
    let n = (scale * scale) as u32;
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut sum = 0u32;
                for dy in 0..scale {
                    let row = (y * scale + dy) * bw;
                    for dx in 0..scale {
                        sum += u32::from(
                            big.get((row + x * scale + dx) * 3 + c)
                                .copied()
                                .unwrap_or(255),
                        );
                    }
                }
                if let Some(o) = out.get_mut((y * w + x) * 3 + c) {
                    *o = ((sum + n / 2) / n) as u8;
                }
            }
        }
    }
    out
}

/// Draws `panels` side by side into a `width x height` PNG at `path` and the same figure as
/// an SVG at `path` with the extension `.svg`. Each panel gets at least [`MIN_PANEL`] pixels
/// (the figure grows when `width / panels` or `height` is smaller); panels above it scale
/// their text and lines up with their size (at most 1.6 times).
///
/// Errors when there is no panel, a series' spread length differs from its point count, the
/// path ends in `.svg`, or a file cannot be written.
pub fn line_charts(
    path: &Path,
    panels: &[Panel],
    width: u32,
    height: u32,
) -> Result<(), PlotError> {
    let fail = |m: String| PlotError {
        path: path.display().to_string(),
        message: m,
    };
    if panels.is_empty() {
        return Err(fail("no panels to draw".into()));
    }
    for (p, s) in panels
        .iter()
        .flat_map(|p| p.series.iter().map(move |s| (p, s)))
    {
        if let Some(spread) = s.spread.as_ref().filter(|d| d.len() != s.points.len()) {
            return Err(fail(format!(
                "series {:?} of panel {:?} has {} spread values for {} points",
                s.name,
                p.title,
                spread.len(),
                s.points.len()
            )));
        }
    }
    let n = u32::try_from(panels.len()).unwrap_or(u32::MAX);
    let figure = line::Lines {
        panels,
        panel_w: (width / n).max(MIN_PANEL.0),
        h: height.max(MIN_PANEL.1),
    };
    render(path, &figure)
}

/// Draws a heat map of `cells[row][col]` (values in `[0, 1]`, `None` for a missing cell) with
/// row labels `rows` (top to bottom) and column labels `cols`, each cell annotated with its
/// value: pale at 0, dark red at 1 (matplotlib's "Reds"), with a colour bar. Writes the PNG at
/// `path` and the same figure as an SVG at `path` with the extension `.svg`; the size follows
/// from the labels and the number of cells.
pub fn heat_map(
    path: &Path,
    title: &str,
    rows: &[String],
    cols: &[String],
    cells: &[Vec<Option<f64>>],
) -> Result<(), PlotError> {
    let fail = |m: String| PlotError {
        path: path.display().to_string(),
        message: m,
    };
    if rows.is_empty() || cols.is_empty() || cells.len() != rows.len() {
        return Err(fail(
            "heat map needs at least one row and column, one cell row per label".into(),
        ));
    }
    register_fonts().map_err(|e| fail(e.0))?;
    let figure = heat::Heat::new(title, rows, cols, cells).map_err(|e| fail(e.0))?;
    render(path, &figure)
}

#[cfg(test)]
mod tests;
