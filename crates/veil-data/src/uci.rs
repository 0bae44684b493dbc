//! UCI sensor datasets used by PE-HEALTH.
//!
//! **Post-operative** (`post-operative.data`, 90 rows, 8 attributes + decision): categorical
//! attributes are ordinal-encoded into `[0, 1]` (low/mid/high = 0, 0.5, 1; poor/fair/good/
//! excellent = 0, 1/3, 2/3, 1; unstable/mod-stable/stable = 0, 0.5, 1), COMFORT is divided by
//! 20 and a missing value (`?`) becomes the mean of the known ones. Decision I/S/A gives labels
//! 0/1/2. A header line, CRLF line ends and stray spaces are tolerated. Shape `[1, 1, 8]`.
//! Split: 70 % train / 30 % test (as PE-HEALTH), seeded shuffle with seed 0.
//!
//! **Activity** (older people, batteryless wearable; `S1_Dataset/`, `S2_Dataset/`): headerless
//! CSV `time,accF,accV,accL,antenna,rssi,phase,freq,label`. veil keeps 7 features (everything
//! but time and label) standardised with the training mean and std; labels 1-4 become 0-3.
//! Split by sequence file so that no recording is in both parts: files sorted by name, every
//! file whose position is 0, 3 or 6 modulo 10 goes to test (about 30 %). Shape `[1, 1, 7]`.

use std::path::{Path, PathBuf};

use crate::{DataError, Dataset, Split};

fn ordinal(field: &str, levels: &[&str]) -> Option<f32> {
    let pos = levels.iter().position(|l| l.eq_ignore_ascii_case(field))?;
    Some(pos as f32 / (levels.len() - 1) as f32)
}

/// Loads UCI Post-operative from `dir` (prefers `post-operative.data`).
pub fn load_post_operative(dir: &Path) -> Result<Split, DataError> {
    let path = ["post-operative.data", "post-operative.alt-with-header.data"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| DataError::Missing {
            what: "post-operative.data".into(),
            path: dir.to_path_buf(),
            hint: String::new(),
        })?;
    let all = parse_post_operative(&path)?;
    let (train, test) = all.shuffled_split(0.7, 0);
    Ok(Split {
        train: Dataset {
            name: "postop/train".into(),
            ..train
        },
        test: Dataset {
            name: "postop/test".into(),
            ..test
        },
    })
}

pub(crate) fn parse_post_operative(path: &Path) -> Result<Dataset, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let three = ["low", "mid", "high"];
    let o2 = ["poor", "fair", "good", "excellent"];
    let stbl = ["unstable", "mod-stable", "stable"];
    let levels: [&[&str]; 7] = [&three, &three, &o2, &three, &stbl, &stbl, &stbl];
    let mut rows: Vec<[Option<f32>; 8]> = Vec::new();
    let mut labels = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.iter().all(|f| f.is_empty()) {
            continue;
        }
        if n == 0 && fields[0].eq_ignore_ascii_case("L-CORE") {
            continue;
        }
        let bad = |what: String| DataError::format(path, format!("line {}: {what}", n + 1));
        if fields.len() != 9 {
            return Err(bad(format!("expected 9 fields, found {}", fields.len())));
        }
        let mut row = [None; 8];
        for (i, lv) in levels.iter().enumerate() {
            row[i] = Some(ordinal(fields[i], lv).ok_or_else(|| {
                bad(format!("unknown value `{}` in column {}", fields[i], i + 1))
            })?);
        }
        row[7] = match fields[7] {
            "?" => None,
            s => {
                let v: f32 = s.parse().map_err(|_| bad(format!("bad COMFORT `{s}`")))?;
                if !(0.0..=20.0).contains(&v) {
                    return Err(bad(format!("COMFORT {v} outside 0-20")));
                }
                Some(v / 20.0)
            }
        };
        labels.push(match fields[8] {
            "I" => 0,
            "S" => 1,
            "A" => 2,
            s => return Err(bad(format!("unknown decision `{s}` (I, S or A)"))),
        });
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(DataError::format(path, "no data rows"));
    }
    let known: Vec<f32> = rows.iter().filter_map(|r| r[7]).collect();
    let mean = known.iter().sum::<f32>() / known.len().max(1) as f32;
    let samples = rows
        .iter()
        .flat_map(|r| r.iter().map(|v| v.unwrap_or(mean)))
        .collect();
    Ok(Dataset {
        name: "postop".into(),
        shape: [1, 1, 8],
        classes: 3,
        samples,
        labels,
    })
}

/// Loads UCI Activity (older people) from `dir` (holding `S1_Dataset/` and/or `S2_Dataset/`).
pub fn load_activity(dir: &Path) -> Result<Split, DataError> {
    let mut files: Vec<PathBuf> = Vec::new();
    for sub in ["S1_Dataset", "S2_Dataset"] {
        let d = dir.join(sub);
        if let Ok(rd) = std::fs::read_dir(&d) {
            files.extend(
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && p.extension().is_none()),
            );
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(DataError::Missing {
            what: "activity sequence files (S1_Dataset/, S2_Dataset/)".into(),
            path: dir.to_path_buf(),
            hint: String::new(),
        });
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    let (mut train_y, mut test_y) = (Vec::new(), Vec::new());
    for (i, f) in files.iter().enumerate() {
        let (x, y) = parse_activity_file(f)?;
        if matches!(i % 10, 0 | 3 | 6) {
            test.extend(x);
            test_y.extend(y);
        } else {
            train.extend(x);
            train_y.extend(y);
        }
    }
    standardise(&mut train, &mut test, 7);
    let make = |name: &str, samples, labels| Dataset {
        name: name.into(),
        shape: [1, 1, 7],
        classes: 4,
        samples,
        labels,
    };
    Ok(Split {
        train: make("activity/train", train, train_y),
        test: make("activity/test", test, test_y),
    })
}

fn parse_activity_file(path: &Path) -> Result<(Vec<f32>, Vec<u32>), DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let mut x = Vec::new();
    let mut y = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |what: &str| DataError::format(path, format!("line {}: {what}", n + 1));
        let vals: Vec<f32> = line
            .split(',')
            .map(|f| f.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad("non-numeric field"))?;
        if vals.len() != 9 {
            return Err(bad(&format!("expected 9 fields, found {}", vals.len())));
        }
        if vals.iter().any(|v| !v.is_finite()) {
            return Err(bad("non-finite value"));
        }
        let label = vals[8];
        if !(1.0..=4.0).contains(&label) || label.fract() != 0.0 {
            return Err(bad(&format!("label {label} is not 1-4")));
        }
        x.extend_from_slice(&vals[1..8]);
        y.push(label as u32 - 1);
    }
    Ok((x, y))
}

/// Z-scores both sets per feature with the training statistics.
fn standardise(train: &mut [f32], test: &mut [f32], features: usize) {
    let n = (train.len() / features).max(1) as f64;
    for f in 0..features {
        let mean = train
            .iter()
            .skip(f)
            .step_by(features)
            .map(|&v| v as f64)
            .sum::<f64>()
            / n;
        let var = train
            .iter()
            .skip(f)
            .step_by(features)
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        let std = var.sqrt().max(1e-12);
        for set in [&mut *train, &mut *test] {
            for v in set.iter_mut().skip(f).step_by(features) {
                *v = ((*v as f64 - mean) / std) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_operative_parses_header_missing_values_and_rejects_garbage() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("post-operative.data");
        std::fs::write(
            &p,
            "L-CORE,L-SURF,L-O2,L-BP,SURF-STBL,CORE-STBL,BP-STBL,COMFORT,decision\n\
             mid,low,excellent,mid,stable,stable,stable,15,A \r\n\
             high,high,poor,low,unstable,mod-stable,stable,?,I\n",
        )
        .expect("write");
        let ds = parse_post_operative(&p).expect("parse");
        assert_eq!(ds.labels, vec![2, 0]);
        assert_eq!(&ds.sample(0)[..4], &[0.5, 0.0, 1.0, 0.5]);
        assert_eq!(ds.sample(1)[7], 0.75); // missing COMFORT -> mean of known (15/20)

        std::fs::write(&p, "mid,low,excellent,mid,stable,stable,stable,15,X\n").expect("write");
        assert!(
            parse_post_operative(&p)
                .expect_err("bad")
                .to_string()
                .contains("decision")
        );
        std::fs::write(&p, "mid,low\n").expect("write");
        assert!(parse_post_operative(&p).is_err());
    }

    #[test]
    fn activity_rows_are_checked() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("d1p01M");
        std::fs::write(
            &p,
            "0,0.1,0.2,0.3,1,-60,1.5,920.5,3\n0.5,0.1,0.2,0.3,2,-61,1.6,921,1\n",
        )
        .expect("write");
        let (x, y) = parse_activity_file(&p).expect("parse");
        assert_eq!(y, vec![2, 0]);
        assert_eq!(x.len(), 14);
        std::fs::write(&p, "0,0.1,0.2,0.3,1,-60,1.5,920.5,7\n").expect("write");
        assert!(parse_activity_file(&p).is_err());
        std::fs::write(&p, "0,0.1,zz\n").expect("write");
        assert!(parse_activity_file(&p).is_err());
    }
}
