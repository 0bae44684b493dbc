//! Comparing shields at equal accuracy: every `veil defend` run writes its rows in one CSV
//! schema ([`write_rows_csv`], [`read_rows_csv`]); [`ssim_at_accuracy`] answers "how much does
//! the attack still recover if this defence must keep at least accuracy `A`?".
//!
//! The answer for one defence is the lowest attack SSIM over its measured settings whose mean
//! accuracy is at least `A`, and over the points where the straight line between two
//! neighbouring settings (in parameter order) crosses accuracy `A`. It is `None` when no
//! setting of the defence keeps `A`: that defence cannot be used at that accuracy at all.
//!
//! Key items: [`ROWS_HEADER`], [`write_rows_csv`], [`read_rows_csv`], [`ssim_at_accuracy`].

use std::path::Path;

use crate::DefenseError;
use crate::sweep::{Row, SettingSummary};

/// The header of the shared CSV schema.
pub const ROWS_HEADER: &str = "defence,param,label,draw,accuracy,ssim_mean,psnr_mean,mse_mean";

/// Writes `rows` to `path` in the shared schema (commas in labels become `;`).
pub fn write_rows_csv(path: &Path, rows: &[Row]) -> Result<(), DefenseError> {
    let mut text = format!("{ROWS_HEADER}\n");
    for r in rows {
        text.push_str(&format!(
            "{},{},{},{},{:.6},{:.6},{:.4},{:.6}\n",
            r.defence,
            r.param,
            r.label.replace(',', ";"),
            r.draw,
            r.accuracy,
            r.ssim_mean,
            r.psnr_mean,
            r.mse_mean
        ));
    }
    std::fs::write(path, text).map_err(|e| DefenseError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Reads rows written by [`write_rows_csv`]. A missing file, another header, a short line or
/// a number that does not parse is an error naming the file and line.
pub fn read_rows_csv(path: &Path) -> Result<Vec<Row>, DefenseError> {
    let file_err = |message: String| DefenseError::File {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h.trim() == ROWS_HEADER => {}
        other => {
            return Err(file_err(format!(
                "header {:?}, expected `{ROWS_HEADER}` (a CSV written by `veil defend`)",
                other.unwrap_or("")
            )));
        }
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = |m: String| file_err(format!("line {}: {m}", i + 2));
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != 8 {
            return Err(at(format!("{} fields, expected 8", cells.len())));
        }
        // Every number finite and in its range (PSNR may be +inf: a perfect reconstruction).
        let num = |k: usize, range: std::ops::RangeInclusive<f64>| -> Result<f64, DefenseError> {
            cells[k]
                .parse::<f64>()
                .ok()
                .filter(|v| !v.is_nan() && range.contains(v))
                .ok_or_else(|| {
                    at(format!(
                        "`{}` is not a number in [{}, {}]",
                        cells[k],
                        range.start(),
                        range.end()
                    ))
                })
        };
        let any = f64::MIN..=f64::MAX;
        let draw = cells[3]
            .parse::<usize>()
            .map_err(|_| at(format!("draw `{}` is not a count", cells[3])))?;
        rows.push(Row {
            defence: cells[0].to_string(),
            param: num(1, any.clone())?,
            label: cells[2].to_string(),
            draw,
            accuracy: num(4, 0.0..=1.0)?,
            ssim_mean: num(5, -1.0..=1.0)?,
            psnr_mean: num(6, f64::MIN..=f64::INFINITY)?,
            mse_mean: num(7, 0.0..=f64::MAX)?,
            examples: Vec::new(),
        });
    }
    Ok(rows)
}

/// The lowest attack SSIM `curve` (one defence's settings in parameter order) reaches while
/// keeping mean accuracy `>= accuracy`, interpolating linearly between neighbouring settings;
/// `None` when no setting keeps that accuracy.
pub fn ssim_at_accuracy(curve: &[SettingSummary], accuracy: f64) -> Option<f64> {
    let mut best: Option<f64> = None;
    let mut offer = |s: f64| best = Some(best.map_or(s, |b: f64| b.min(s)));
    for s in curve.iter().filter(|s| s.accuracy >= accuracy) {
        offer(s.ssim_mean);
    }
    for pair in curve.windows(2) {
        let (p, q) = (&pair[0], &pair[1]);
        let (lo, hi) = if p.accuracy <= q.accuracy {
            (p, q)
        } else {
            (q, p)
        };
        if lo.accuracy < accuracy && accuracy <= hi.accuracy {
            let t = (accuracy - lo.accuracy) / (hi.accuracy - lo.accuracy);
            offer(lo.ssim_mean + t * (hi.ssim_mean - lo.ssim_mean));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::summarise;

    fn row(defence: &str, param: f64, draw: usize, accuracy: f64, ssim: f64) -> Row {
        Row {
            defence: defence.into(),
            param,
            label: format!("x={param}, y"),
            draw,
            accuracy,
            ssim_mean: ssim,
            psnr_mean: 12.5,
            mse_mean: 0.05,
            examples: vec![vec![1.0]],
        }
    }

    #[test]
    fn rows_round_trip_through_the_csv() {
        let dir = std::env::temp_dir().join(format!("veil-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("rows.csv");
        let rows = vec![row("dp", 5.0, 0, 0.5, 0.25), row("dp", 0.5, 2, 0.75, 0.125)];
        write_rows_csv(&path, &rows).expect("write");
        let back = read_rows_csv(&path).expect("read");
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].draw, 2);
        assert_eq!(back[0].label, "x=5; y");
        assert_eq!((back[0].accuracy, back[1].ssim_mean), (0.5, 0.125));
        assert!(back[0].examples.is_empty());
        std::fs::write(&path, "defence,param\n").expect("write");
        assert!(
            read_rows_csv(&path)
                .expect_err("bad csv")
                .to_string()
                .contains("header")
        );
        std::fs::write(&path, format!("{ROWS_HEADER}\ndp,1,a,0,x,0,0,0\n")).expect("write");
        let e = read_rows_csv(&path).expect_err("bad csv").to_string();
        assert!(e.contains("line 2") && e.contains("`x`"), "{e}");
        // Hostile numbers: NaN parameters (they broke the grouping) and accuracies far out of
        // range (they hung the chart's axis) are refused on read.
        for line in [
            "dp,NaN,a,0,0.5,0.5,20,0.01",
            "dp,1,a,0,1e308,0.5,20,0.01",
            "dp,1,a,0,0.5,-1e308,20,0.01",
            "dp,inf,a,0,0.5,0.5,20,0.01",
            "dp,1,a,0,0.5,0.5,NaN,0.01",
        ] {
            std::fs::write(&path, format!("{ROWS_HEADER}\n{line}\n")).expect("write");
            assert!(read_rows_csv(&path).is_err(), "{line}");
        }
        std::fs::write(&path, format!("{ROWS_HEADER}\ndp,1,a,0,0.5,0.5,inf,0\n")).expect("write");
        assert!(
            read_rows_csv(&path).is_ok(),
            "a perfect reconstruction has PSNR +inf"
        );
        std::fs::remove_dir_all(&dir).expect("clean");
    }

    #[test]
    fn ssim_at_accuracy_takes_the_best_kept_setting_and_interpolates() {
        // Noise scales 0.1, 1, 2: accuracy 0.99, 0.9, 0.5, SSIM 0.9, 0.5, 0.1.
        let curve = summarise(&[
            row("gaussian", 0.1, 0, 0.99, 0.9),
            row("gaussian", 1.0, 0, 0.9, 0.5),
            row("gaussian", 2.0, 0, 0.5, 0.1),
        ]);
        assert_eq!(ssim_at_accuracy(&curve, 0.995), None);
        assert_eq!(ssim_at_accuracy(&curve, 0.99), Some(0.9));
        // Halfway between 0.9 and 0.5 in accuracy: SSIM halfway between 0.5 and 0.1.
        assert!((ssim_at_accuracy(&curve, 0.7).expect("kept") - 0.3).abs() < 1e-12);
        assert_eq!(ssim_at_accuracy(&curve, 0.2), Some(0.1));
        // A single point (ObfNet) counts only where it keeps the accuracy.
        let one = summarise(&[row("obfnet2", 10.0, 0, 0.98, 0.6)]);
        assert_eq!(ssim_at_accuracy(&one, 0.98), Some(0.6));
        assert_eq!(ssim_at_accuracy(&one, 0.985), None);
    }
}
