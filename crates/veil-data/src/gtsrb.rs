//! GTSRB in its official layout: `Final_Training/Images/000CC/GT-000CC.csv` plus PPM files
//! per class, and `Final_Test/GT-final_test.csv` (or `Final_Test/Images/GT-final_test.csv`)
//! with the test PPMs in `Final_Test/Images/`. Images are resized to 32x32 when needed
//! (bilinear); the CSV ROI columns are ignored because copies in circulation are often
//! pre-resized while the CSV keeps the original geometry.

use std::path::{Path, PathBuf};

use crate::ppm::{read_ppm, resize_to_chw};
use crate::{DataError, Dataset, Split};

/// GTSRB class count.
pub const GTSRB_CLASSES: usize = 43;
const SIDE: usize = 32;

/// Loads GTSRB from `root` (the folder that contains `Final_Training` and `Final_Test`).
pub fn load_gtsrb(root: &Path) -> Result<Split, DataError> {
    let train_root = root.join("Final_Training").join("Images");
    if !train_root.is_dir() {
        return Err(DataError::Missing {
            what: "GTSRB Final_Training/Images".into(),
            path: root.to_path_buf(),
            hint: " (expected the official GTSRB layout)".into(),
        });
    }
    let mut train = empty("gtsrb/train");
    for class in 0..GTSRB_CLASSES {
        let dir = train_root.join(format!("{class:05}"));
        let csv = dir.join(format!("GT-{class:05}.csv"));
        if !csv.is_file() {
            continue;
        }
        read_csv_into(&csv, &dir, Some(class as u32), &mut train)?;
    }
    if train.is_empty() {
        return Err(DataError::Missing {
            what: "GTSRB training CSVs (GT-000CC.csv)".into(),
            path: train_root,
            hint: String::new(),
        });
    }
    let test_dir = root.join("Final_Test").join("Images");
    let csv = [
        root.join("Final_Test").join("GT-final_test.csv"),
        test_dir.join("GT-final_test.csv"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .ok_or_else(|| DataError::Missing {
        what: "GTSRB test ground truth GT-final_test.csv".into(),
        path: root.join("Final_Test"),
        hint: String::new(),
    })?;
    let mut test = empty("gtsrb/test");
    read_csv_into(&csv, &test_dir, None, &mut test)?;
    Ok(Split { train, test })
}

fn empty(name: &str) -> Dataset {
    Dataset {
        name: name.into(),
        shape: [3, SIDE, SIDE],
        classes: GTSRB_CLASSES,
        samples: Vec::new(),
        labels: Vec::new(),
    }
}

/// Appends every image listed in `csv` (`Filename;...;ClassId`) to `out`. When
/// `expected_class` is set, each row's ClassId must equal it.
fn read_csv_into(
    csv: &Path,
    image_dir: &Path,
    expected_class: Option<u32>,
    out: &mut Dataset,
) -> Result<(), DataError> {
    let text = std::fs::read_to_string(csv).map_err(|e| DataError::io(csv, e))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let columns: Vec<&str> = header.trim().split(';').collect();
    let class_col = columns
        .iter()
        .position(|c| *c == "ClassId")
        .ok_or_else(|| DataError::format(csv, "header has no ClassId column"))?;
    for (row, line) in lines.enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(';').collect();
        let bad = |what: &str| DataError::format(csv, format!("row {}: {what}", row + 2));
        let file = fields.first().ok_or_else(|| bad("empty row"))?;
        let class: u32 = fields
            .get(class_col)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad("missing or non-numeric ClassId"))?;
        if class as usize >= GTSRB_CLASSES || expected_class.is_some_and(|e| e != class) {
            return Err(bad(&format!("unexpected ClassId {class}")));
        }
        let path: PathBuf = image_dir.join(file);
        if file.contains('/') || file.contains("..") {
            return Err(bad("file name must be a plain name"));
        }
        let (w, h, rgb) = read_ppm(&path)?;
        out.samples
            .extend(resize_to_chw(&rgb, (w, h), 3, (SIDE, SIDE)));
        out.labels.push(class);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ppm(side: usize, value: u8) -> Vec<u8> {
        let mut v = format!("P6\n# test\n{side} {side}\n255\n").into_bytes();
        v.extend(std::iter::repeat_n(value, side * side * 3));
        v
    }

    /// A two-class GTSRB tree: class 0 with one 32x32 image, class 1 with one 40x40 image
    /// (resized), one test image.
    fn tree(root: &Path) {
        for (class, side) in [(0usize, 32usize), (1, 40)] {
            let dir = root.join(format!("Final_Training/Images/{class:05}"));
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join("a.ppm"), ppm(side, 200)).expect("ppm");
            std::fs::write(
                dir.join(format!("GT-{class:05}.csv")),
                format!("Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\na.ppm;{side};{side};0;0;1;1;{class}\r\n"),
            )
            .expect("csv");
        }
        let test = root.join("Final_Test/Images");
        std::fs::create_dir_all(&test).expect("mkdir");
        std::fs::write(test.join("00000.ppm"), ppm(32, 10)).expect("ppm");
        std::fs::write(
            root.join("Final_Test/GT-final_test.csv"),
            "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n00000.ppm;32;32;0;0;1;1;1\n",
        )
        .expect("csv");
    }

    #[test]
    fn loads_the_official_layout_and_resizes() {
        let dir = tempfile::tempdir().expect("tmp");
        tree(dir.path());
        let split = load_gtsrb(dir.path()).expect("load");
        assert_eq!(split.train.labels, vec![0, 1]);
        assert_eq!(split.train.shape, [3, 32, 32]);
        assert!(
            split
                .train
                .sample(1)
                .iter()
                .all(|&v| (v - 200.0 / 255.0).abs() < 1e-5)
        );
        assert_eq!(split.test.labels, vec![1]);
    }

    #[test]
    fn corrupt_csv_and_images_are_errors() {
        let dir = tempfile::tempdir().expect("tmp");
        tree(dir.path());
        let csv = dir.path().join("Final_Training/Images/00001/GT-00001.csv");
        std::fs::write(&csv, "Filename;Width\na.ppm;40\n").expect("csv");
        let err = load_gtsrb(dir.path()).expect_err("no ClassId").to_string();
        assert!(err.contains("ClassId"), "{err}");
        std::fs::write(&csv, "Filename;ClassId\na.ppm;7\n").expect("csv");
        let err = load_gtsrb(dir.path()).expect_err("wrong class").to_string();
        assert!(err.contains("unexpected ClassId 7"), "{err}");
        std::fs::write(&csv, "Filename;ClassId\n../../x.ppm;1\n").expect("csv");
        assert!(load_gtsrb(dir.path()).is_err());
        std::fs::write(&csv, "Filename;ClassId\na.ppm;1\n").expect("csv");
        std::fs::write(
            dir.path().join("Final_Training/Images/00001/a.ppm"),
            b"P6\n40 40\n255\n\x01",
        )
        .expect("ppm");
        let err = load_gtsrb(dir.path()).expect_err("truncated").to_string();
        assert!(err.contains("a.ppm") && err.contains("truncated"), "{err}");
        assert!(load_gtsrb(&dir.path().join("nope")).is_err());
    }
}
