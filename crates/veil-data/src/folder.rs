//! A folder of PNG/JPEG images. With sub-folders, each sub-folder (sorted by name) is a class;
//! without, every image gets label 0. All images are brought to the size and channel count of
//! the first one (bilinear resize; grayscale when the first image is grayscale).
//! [`read_image`] is also what `veil compare` uses to read one picture.

use std::path::{Path, PathBuf};

use crate::ppm::resize_to_chw;
use crate::{DataError, Dataset};

const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "ppm"];

/// Largest width or height of an image veil decodes (veil's models take 28 to 224 pixels).
pub const MAX_IMAGE_SIDE: u32 = 2048;

/// Most `f32` values a folder dataset may hold (1 GiB).
const MAX_FOLDER_VALUES: usize = 1 << 28;

/// Most memory the decoder may allocate for one image.
const MAX_DECODE_BYTES: u64 = 128 << 20;

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
    let bytes = crate::ppm::read_bounded(path, crate::ppm::MAX_IMAGE_FILE_BYTES)?;
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    // The dimensions are checked from the header before anything is decoded: a small
    // compressed file can claim a huge image.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| {
        DataError::format(
            path,
            format!("cannot decode image (at most {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}): {e}"),
        )
    })?;
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
    // Every image is brought to the first one's size: refuse a folder whose samples would
    // not fit in the budget before decoding the rest.
    let total = files.len().saturating_mul(shape.iter().product::<usize>());
    if total > MAX_FOLDER_VALUES {
        return Err(DataError::format(
            first,
            format!(
                "{} images of {}x{}x{} would take {} MiB (at most {} MiB): use smaller images",
                files.len(),
                shape[0],
                shape[1],
                shape[2],
                total.saturating_mul(4) >> 20,
                (MAX_FOLDER_VALUES * 4) >> 20
            ),
        ));
    }
    let mut samples = Vec::with_capacity(total);
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

    /// A 16 KB PNG claiming 4000x4000 pixels is refused from its header (it used to take
    /// 1.5 GB to decode), and a link to an endless file is read only up to the file limit.
    #[test]
    fn huge_images_are_refused_before_decoding() {
        let dir = tempfile::tempdir().expect("tmp");
        let big = dir.path().join("big.png");
        image::GrayImage::new(4000, 4000).save(&big).expect("save");
        assert!(std::fs::metadata(&big).expect("meta").len() < 1 << 20);
        let err = read_image(&big).expect_err("too big").to_string();
        assert!(err.contains("2048"), "{err}");
        #[cfg(unix)]
        {
            let zero = dir.path().join("zero.ppm");
            std::os::unix::fs::symlink("/dev/zero", &zero).expect("link");
            let err = read_image(&zero).expect_err("endless").to_string();
            assert!(err.contains("MiB"), "{err}");
        }
    }
}
