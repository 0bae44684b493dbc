//! veil-plot: the PNG figures veil writes (plotters, bitmap backend, DejaVu Sans embedded and
//! rendered by ab_glyph, so no system font library is needed).
//!
//! Key items: [`Series`] (a named polyline), [`Panel`] (one chart: title, axis labels,
//! series) and [`line_charts`] (panels side by side in one PNG). Errors are [`PlotError`]s that
//! name the file; nothing here panics on odd data (non-finite points are dropped, empty or
//! degenerate ranges are widened).

#![forbid(unsafe_code)]

use std::path::Path;

use plotters::prelude::*;

/// Registers the embedded DejaVu Sans as plotters' "sans-serif" (once per process).
fn register_fonts(path: &Path) -> Result<(), PlotError> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError {
            path: path.display().to_string(),
            message: "the embedded font could not be loaded".into(),
        })
    }
}

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
    /// Legend label.
    pub name: String,
    /// Points `(x, y)`, drawn in order.
    pub points: Vec<(f64, f64)>,
    /// Spread of each point's `y` (e.g. the standard deviation over draws): one value per
    /// point, non-finite or negative values are left out. `None` draws no spread.
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

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Largest magnitude an axis may reach: past it the padded span overflows `f64` and tick
/// placement never ends.
const AXIS_LIMIT: f64 = 1e300;

/// The axis range of `values` (finite ones within [`AXIS_LIMIT`]), padded by 5 %; `(0, 1)`
/// when none is usable. Always finite with `lo < hi`.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && v.abs() <= AXIS_LIMIT)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9 * lo.abs().max(1.0));
    (lo - pad, hi + pad)
}

/// The plot corner with the fewest data points within a third of the axes' span of it, so
/// the legend hides as little as possible (ties: upper right, upper left, lower right, lower
/// left).
fn emptiest_corner(
    points: impl Iterator<Item = (f64, f64)>,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> SeriesLabelPosition {
    let mut counts = [0usize; 4];
    for (x, y) in points.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        let u = (x - x0) / (x1 - x0).max(f64::MIN_POSITIVE);
        let v = (y - y0) / (y1 - y0).max(f64::MIN_POSITIVE);
        let (right, left, top, bottom) = (u > 0.6, u < 0.4, v > 0.6, v < 0.4);
        counts[0] += usize::from(right && top);
        counts[1] += usize::from(left && top);
        counts[2] += usize::from(right && bottom);
        counts[3] += usize::from(left && bottom);
    }
    let best = (0..4).min_by_key(|&i| (counts[i], i)).unwrap_or(0);
    [
        SeriesLabelPosition::UpperRight,
        SeriesLabelPosition::UpperLeft,
        SeriesLabelPosition::LowerRight,
        SeriesLabelPosition::LowerLeft,
    ][best]
        .clone()
}

/// Draws `panels` side by side into a `width x height` PNG at `path`.
pub fn line_charts(
    path: &Path,
    panels: &[Panel],
    width: u32,
    height: u32,
) -> Result<(), PlotError> {
    let err = |e: &dyn std::fmt::Display| PlotError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    if panels.is_empty() {
        return Err(err(&"no panels to draw"));
    }
    for (p, s) in panels
        .iter()
        .flat_map(|p| p.series.iter().map(move |s| (p, s)))
    {
        if let Some(spread) = s.spread.as_ref().filter(|d| d.len() != s.points.len()) {
            return Err(err(&format!(
                "series {:?} of panel {:?} has {} spread values for {} points",
                s.name,
                p.title,
                spread.len(),
                s.points.len()
            )));
        }
    }
    register_fonts(path)?;
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let areas = root.split_evenly((1, panels.len()));
    for (area, panel) in areas.iter().zip(panels) {
        let points = || panel.series.iter().flat_map(|s| s.points.iter());
        let (x0, x1) = range(points().map(|p| p.0));
        let (y0, y1) = range(points().map(|p| p.1));
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(&panel.x_label)
            .y_desc(&panel.y_label)
            .draw()
            .map_err(|e| err(&e))?;
        let count = panel.series.len();
        for (i, s) in panel.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            // Earlier series are drawn wider, so a later series lying on top stays visible.
            let width = 2 + 2 * (count - 1 - i).min(2) as u32;
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(width)))
                .map_err(|e| err(&e))?
                .label(&s.name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
                });
            // A series of one point (one setting, e.g. ObfNet) gets a marker that stays visible.
            let radius = if pts.len() == 1 { 8 } else { 3 };
            chart
                .draw_series(
                    pts.into_iter()
                        .map(|p| Circle::new(p, radius, color.filled())),
                )
                .map_err(|e| err(&e))?;
        }
        let corner = emptiest_corner(points().copied(), (x0, x1), (y0, y1));
        chart
            .configure_series_labels()
            .position(corner)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}

/// Draws a heat map of `cells[row][col]` (values in `[0, 1]`, `None` for a missing cell) with
/// row labels `rows` (top to bottom) and column labels `cols`, each cell annotated with its
/// value: white at 0, dark red at 1.
pub fn heat_map(
    path: &Path,
    title: &str,
    rows: &[String],
    cols: &[String],
    cells: &[Vec<Option<f64>>],
) -> Result<(), PlotError> {
    let err = |e: &dyn std::fmt::Display| PlotError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    if rows.is_empty() || cols.is_empty() || cells.len() != rows.len() {
        return Err(err(
            &"heat map needs at least one row and column, one cell row per label",
        ));
    }
    let (w, h) = (
        (160 + 48 * cols.len()) as u32,
        (100 + 36 * rows.len()) as u32,
    );
    register_fonts(path)?;
    let root = BitMapBackend::new(path, (w.max(480), h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (nr, nc) = (rows.len() as i32, cols.len() as i32);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(90)
        .build_cartesian_2d((0..nc - 1).into_segmented(), (0..nr - 1).into_segmented())
        .map_err(|e| err(&e))?;
    // Segmented axes put each label at the centre of its cell.
    let col_label = |x: &SegmentValue<i32>| match x {
        SegmentValue::CenterOf(i) => cols.get(*i as usize).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let row_label = |y: &SegmentValue<i32>| match y {
        SegmentValue::CenterOf(i) => rows
            .get((nr - 1 - *i) as usize)
            .cloned()
            .unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(cols.len())
        .y_labels(rows.len())
        .x_label_formatter(&col_label)
        .y_label_formatter(&row_label)
        .x_desc("maps seen (k)")
        .draw()
        .map_err(|e| err(&e))?;
    for (r, row) in cells.iter().enumerate() {
        let y = nr - 1 - r as i32;
        for (c, v) in row.iter().enumerate().take(cols.len()) {
            let Some(v) = v.filter(|v| v.is_finite()) else {
                continue;
            };
            let t = v.clamp(0.0, 1.0);
            let color = RGBColor(
                255,
                (255.0 * (1.0 - 0.8 * t)) as u8,
                (255.0 * (1.0 - t)) as u8,
            );
            let x = c as i32;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [
                        (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                    ],
                    color.filled(),
                )))
                .map_err(|e| err(&e))?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{v:.2}"),
                    (SegmentValue::CenterOf(x), SegmentValue::Exact(y + 1)),
                    ("sans-serif", 12).into_font().color(&BLACK),
                )))
                .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_ranges_stay_finite_whatever_the_data() {
        for values in [
            vec![1e308, -1e308],
            vec![f64::NAN, f64::INFINITY],
            vec![],
            vec![3.0, 3.0],
        ] {
            let (lo, hi) = range(values.into_iter());
            assert!(lo.is_finite() && hi.is_finite() && lo < hi && (hi - lo).is_finite());
        }
    }

    #[test]
    fn draws_a_png_and_survives_odd_data() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("f.png");
        let panel = Panel {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![
                Series::new("a", vec![(0.0, 1.0), (1.0, 2.0), (2.0, f64::NAN)]),
                Series {
                    name: "flat".into(),
                    points: vec![(0.0, 5.0), (1.0, 5.0)],
                    ..Default::default()
                },
            ],
        };
        line_charts(&path, &[panel.clone(), panel], 800, 400).expect("draw");
        let bytes = std::fs::read(&path).expect("png");
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(line_charts(&path, &[], 10, 10).is_err());
        let bad = dir.path().join("missing-dir").join("f.png");
        let one = Panel {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            series: vec![],
        };
        assert!(line_charts(&bad, &[one], 100, 100).is_err());
        let hm = dir.path().join("h.png");
        let rows = vec!["conv1".to_string(), "relu1".to_string()];
        let cols = vec!["1".to_string(), "2".to_string()];
        heat_map(
            &hm,
            "t",
            &rows,
            &cols,
            &[vec![Some(0.9), None], vec![Some(0.2), Some(f64::NAN)]],
        )
        .expect("heat map");
        assert_eq!(&std::fs::read(&hm).expect("png")[1..4], b"PNG");
        assert!(heat_map(&hm, "t", &rows, &cols, &[]).is_err());
        let short = Series::with_spread("s", vec![(0.0, 1.0), (1.0, 2.0)], vec![0.1]);
        let panel = Panel {
            series: vec![short],
            ..Default::default()
        };
        let e = line_charts(&path, &[panel], 800, 400).expect_err("spread length");
        assert!(e.message.contains("1 spread values for 2 points"), "{e}");
    }
}
