//! Tests of the public drawing functions: they render to a temporary folder and read the SVG
//! text back (legend names, tick labels, spread elements), and feed odd data.

use super::*;

/// The texts of every `<text>` element of the SVG at `path`.
fn svg_texts(path: &Path) -> Vec<String> {
    let svg = std::fs::read_to_string(path).expect("svg");
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = t.split_once('>')?.1;
            Some(body.split_once("</text>")?.0.trim().to_string())
        })
        .collect()
}

/// How many `tag` elements of the SVG at `path` are drawn in the first series colour.
fn count_tags(path: &Path, tag: &str) -> usize {
    let svg = std::fs::read_to_string(path).expect("svg");
    svg.lines()
        .filter(|l| l.starts_with(&format!("<{tag} ")) && l.contains("#1F77B4"))
        .count()
}

fn panel(series: Vec<Series>) -> Panel {
    Panel {
        title: "title".into(),
        x_label: "number of vehicles".into(),
        y_label: "utility".into(),
        series,
    }
}

fn line(n: usize, k: f64) -> Vec<(f64, f64)> {
    (1..=n).map(|i| (i as f64, k * (i as f64).sqrt())).collect()
}

#[test]
fn writes_png_and_svg_with_legend_and_whole_ticks_on_a_count_axis() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("f.png");
    let p = panel(vec![
        Series::new("centralized", line(10, 1.0)),
        Series::new("distributed", line(10, 2.0)),
        Series::new("linear & <more>", line(10, 3.0)),
    ]);
    line_charts(&path, &[p.clone(), p], 1200, 480).expect("draw");
    assert_eq!(&std::fs::read(&path).expect("png")[1..4], b"PNG");
    let svg = dir.path().join("f.svg");
    let texts = svg_texts(&svg);
    for name in [
        "centralized",
        "distributed",
        "linear &amp; &lt;more&gt;",
        "title",
    ] {
        assert_eq!(
            texts.iter().filter(|t| *t == name).count(),
            2,
            "{name}: {texts:?}"
        );
    }
    assert!(texts.iter().any(|t| t == "10"), "{texts:?}");
    assert!(
        !texts.iter().any(|t| t.ends_with(".0")),
        "a count axis shows whole numbers: {texts:?}"
    );
    // Every x tick of the count axis is a whole number.
    let ticks: Vec<&String> = texts.iter().filter(|t| t.parse::<f64>().is_ok()).collect();
    assert!(ticks.iter().any(|t| *t == "2" || *t == "4"), "{ticks:?}");
}

#[test]
fn spread_draws_a_band_when_points_are_many_and_bars_when_few() {
    let dir = tempfile::tempdir().expect("tmp");
    let draw = |name: &str, n: usize, spread: bool| {
        let pts = line(n, 1.0);
        let s = if spread {
            Series::with_spread("a", pts, vec![0.2; n])
        } else {
            Series::new("a", pts)
        };
        let path = dir.path().join(format!("{name}.png"));
        line_charts(&path, &[panel(vec![s])], 640, 480).expect("draw");
        path.with_extension("svg")
    };
    let (plain, band) = (draw("plain20", 20, false), draw("band20", 20, true));
    assert!(
        count_tags(&band, "polygon") > count_tags(&plain, "polygon"),
        "a band is a polygon in the series colour"
    );
    let (plain, bars) = (draw("plain5", 5, false), draw("bars5", 5, true));
    assert!(
        count_tags(&bars, "polyline") >= count_tags(&plain, "polyline") + 5 * 3,
        "an error bar and two caps per point"
    );
    assert_eq!(count_tags(&bars, "polygon"), count_tags(&plain, "polygon"));
}

#[test]
fn odd_points_and_spreads_do_not_panic() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("odd.png");
    let nan = f64::NAN;
    let series = vec![
        Series::with_spread(
            "gaps",
            vec![
                (0.0, 1.0),
                (1.0, nan),
                (2.0, 2.0),
                (3.0, 2.5),
                (f64::INFINITY, 1.0),
            ],
            vec![0.1, 0.1, f64::INFINITY, -1.0, nan],
        ),
        Series::new("flat", vec![(0.0, 5.0), (1.0, 5.0)]),
        Series::new("one", vec![(0.5, 3.0)]),
        Series::new("empty", vec![]),
        Series::new("", vec![(0.0, 0.0), (3.0, 1.0)]),
        Series::with_spread("huge", vec![(0.0, 1e308), (1.0, -1e308)], vec![1e308, nan]),
    ];
    line_charts(&path, &[panel(series)], 100, 100).expect("draw");
    let all_nan = Series::with_spread("n", vec![(nan, nan); 3], vec![nan; 3]);
    line_charts(&path, &[panel(vec![all_nan]), Panel::default()], 10, 10).expect("draw");
    let tiny = Series::new("tiny", vec![(0.0, 1e-9), (1.0, 3e-9)]);
    let big = Series::new("big", vec![(0.0, 1e6), (1e9, 3e6)]);
    line_charts(&path, &[panel(vec![tiny]), panel(vec![big])], 0, 0).expect("draw");
}

#[test]
fn bad_requests_are_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("f.png");
    let mismatch = Series::with_spread("a", vec![(0.0, 1.0), (1.0, 2.0)], vec![0.1]);
    let err = line_charts(&path, &[panel(vec![mismatch])], 640, 480).expect_err("mismatch");
    assert!(
        err.message.contains("1 spread values for 2 points"),
        "{err}"
    );
    assert!(!path.exists());
    assert!(line_charts(&path, &[], 10, 10).is_err());
    let missing = dir.path().join("missing-dir").join("f.png");
    assert!(line_charts(&missing, &[Panel::default()], 100, 100).is_err());
    let svg = dir.path().join("f.svg");
    assert!(line_charts(&svg, &[Panel::default()], 100, 100).is_err());
    let many = vec![Panel::default(); 100];
    assert!(
        line_charts(&path, &many, 640, 480).is_err(),
        "64000 pixels wide"
    );
}

#[test]
fn heat_map_writes_both_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let hm = dir.path().join("h.png");
    let rows = vec!["conv1".to_string(), "relu1".to_string()];
    let cols = vec!["1".to_string(), "2".to_string()];
    let cells = [vec![Some(0.9), None], vec![Some(0.2), Some(f64::NAN)]];
    heat_map(&hm, "t", &rows, &cols, &cells).expect("heat map");
    assert_eq!(&std::fs::read(&hm).expect("png")[1..4], b"PNG");
    let texts = svg_texts(&hm.with_extension("svg"));
    for want in ["conv1", "relu1", "0.90", "0.20", "maps seen (k)", "t"] {
        assert!(texts.iter().any(|t| t == want), "{want}: {texts:?}");
    }
    assert!(heat_map(&hm, "t", &rows, &cols, &[]).is_err());
    let short = [vec![Some(0.5)], vec![]];
    heat_map(&hm, "", &rows, &cols, &short).expect("short rows are missing cells");
}
