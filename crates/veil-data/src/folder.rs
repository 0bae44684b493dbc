//! A folder of PNG/JPEG images. With sub-folders, each sub-folder (sorted by name) is a class;
//! without, every image gets label 0. All images are brought to the size and channel count of
//! the first one (bilinear resize; grayscale when the first image is grayscale).
//! [`read_image`] is also what `veil compare` uses to read one picture.

use std::path::{Path, PathBuf};

use crate::ppm::resize_to_chw;
use crate::{DataError, Dataset};

const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "ppm"];

/// A decoded image: `[c, h, w]` (c is 1 or 3) and planar values in `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanarImage {
    /// `[c, h, w]`.
    pub shape: [usize; 3],
    /// Planar values in `[0, 1]`.
    pub data: Vec<f32>,
}

/// Decodes a PNG, JPEG or PPM file into planar `f32` in `[0, 1]`: grayscale images give one
/// channel, everything else RGB (alpha is dropped).
pub fn read_image(path: &Path) -> Result<PlanarImage, DataError> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("ppm"))
    {
        let (w, h, rgb) = crate::read_ppm(path)?;
        return Ok(PlanarImage {
            shape: [3, h, w],
            data: resize_to_chw(&rgb, (w, h), 3, (w, h)),
        });
    }
    let img = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?
        .decode()
        .map_err(|e| DataError::format(path, format!("cannot decode image: {e}")))?;
    let gray = matches!(
        img.color(),
        image::ColorType::L8
            | image::ColorType::L16
            | image::ColorType::La8
            | image::ColorType::La16
    );
    let (w, h) = (img.width() as usize, img.height() as usize);
    // Full precision (16-bit PNGs keep their depth), interleaved, then to planar.
    let (c, hwc) = if gray {
        (1, img.to_luma32f().into_raw())
    } else {
        (3, img.to_rgb32f().into_raw())
    };
    let mut data = vec![0.0f32; c * h * w];
    for (i, px) in hwc.chunks_exact(c).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            data[ch * h * w + i] = v.clamp(0.0, 1.0);
        }
    }
    Ok(PlanarImage {
        shape: [c, h, w],
        data,
    })
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// Visible sub-folders of `dir`, sorted by name (dot-folders such as `.git` are skipped).
pub(crate) fn class_folders(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    Ok(sorted_entries(dir)?
        .into_iter()
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect())
}

/// Loads every image under `dir` (see the module docs for the labelling rule).
pub fn load_image_folder(dir: &Path) -> Result<Dataset, DataError> {
    let classes: Vec<String> = class_folders(dir)?
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    load_image_folder_with_classes(dir, &classes)
}

/// Loads `dir` labelling sub-folder `classes[i]` as class `i`; a sub-folder not in `classes`
/// is an error, so that a test folder is labelled exactly as its training folder.
pub fn load_image_folder_with_classes(
    dir: &Path,
    classes: &[String],
) -> Result<Dataset, DataError> {
    let entries = sorted_entries(dir)?;
    let mut files: Vec<(PathBuf, u32)> = Vec::new();
    if classes.is_empty() {
        files.extend(
            entries
                .iter()
                .filter(|p| is_image(p))
                .map(|p| (p.clone(), 0)),
        );
    } else {
        for cd in class_folders(dir)? {
            let name = cd
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let label = classes.iter().position(|c| *c == name).ok_or_else(|| {
                DataError::format(
                    &cd,
                    format!("class folder `{name}` is not among the training classes {classes:?}"),
                )
            })?;
            for f in sorted_entries(&cd)?.into_iter().filter(|p| is_image(p)) {
                files.push((f, label as u32));
            }
        }
    }
    let (first, _) = files.first().ok_or_else(|| DataError::Missing {
        what: "PNG/JPEG images".into(),
        path: dir.to_path_buf(),
        hint: String::new(),
    })?;
    let shape = read_image(first)?.shape;
    let mut samples = Vec::with_capacity(files.len() * shape.iter().product::<usize>());
    let mut labels = Vec::with_capacity(files.len());
    for (path, label) in &files {
        let img = read_image(path)?;
        samples.extend(conform(&img, shape));
        labels.push(*label);
    }
    Ok(Dataset {
        name: format!("folder:{}", dir.display()),
        shape,
        classes: classes.len().max(1),
        samples,
        labels,
    })
}

/// Converts `img` to `shape` (channel count first, then bilinear size).
fn conform(img: &PlanarImage, shape: [usize; 3]) -> Vec<f32> {
    if img.shape == shape {
        return img.data.clone();
    }
    let [c, h, w] = img.shape;
    let plane = h * w;
    // Back to interleaved bytes with the wanted channel count, then resize.
    let mut hwc = Vec::with_capacity(plane * shape[0]);
    for i in 0..plane {
        let px: Vec<f32> = (0..c).map(|ch| img.data[ch * plane + i]).collect();
        if shape[0] == 1 {
            let luma = if c == 1 {
                px[0]
            } else {
                0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2]
            };
            hwc.push((luma * 255.0).round() as u8);
        } else {
            for ch in 0..3 {
                hwc.push((px[if c == 1 { 0 } else { ch }] * 255.0).round() as u8);
            }
        }
    }
    resize_to_chw(&hwc, (w, h), shape[0], (shape[2], shape[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_class_folders_and_rejects_garbage() {
        let dir = tempfile::tempdir().expect("tmp");
        for (class, value) in [("a", 0u8), ("b", 255u8)] {
            let cd = dir.path().join(class);
            std::fs::create_dir(&cd).expect("mkdir");
            let img = image::GrayImage::from_pixel(4, 3, image::Luma([value]));
            img.save(cd.join("x.png")).expect("save");
        }
        // A larger RGB image is converted to the first image's gray 3x4 shape.
        image::RgbImage::from_pixel(8, 6, image::Rgb([255, 255, 255]))
            .save(dir.path().join("b").join("y.png"))
            .expect("save");
        let ds = load_image_folder(dir.path()).expect("load");
        assert_eq!(ds.shape, [1, 3, 4]);
        assert_eq!(ds.labels, vec![0, 1, 1]);
        assert_eq!(ds.classes, 2);
        assert!(ds.sample(2).iter().all(|&v| (v - 1.0).abs() < 1e-3));

        std::fs::create_dir(dir.path().join(".git")).expect("mkdir");
        assert_eq!(
            load_image_folder(dir.path())
                .expect("dot dirs skipped")
                .classes,
            2
        );
        let only_b = vec!["b".to_string()];
        assert!(load_image_folder_with_classes(dir.path(), &only_b).is_err());
        std::fs::write(dir.path().join("a").join("z.png"), b"not a png").expect("write");
        let err = load_image_folder(dir.path())
            .expect_err("corrupt")
            .to_string();
        assert!(err.contains("z.png"), "{err}");
    }
}
