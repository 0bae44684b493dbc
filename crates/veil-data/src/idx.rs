//! IDX files (MNIST, Fashion-MNIST): big-endian u32 magic `0x00000803` (images) or
//! `0x00000801` (labels), the dimension sizes, then `u8` data. Raw or gzip-compressed.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::DataError;

/// Largest decompressed size accepted (guards against gzip bombs): 4 GiB.
const MAX_DECOMPRESSED: u64 = 4 << 30;

const IMAGES_MAGIC: u32 = 0x0803;
const LABELS_MAGIC: u32 = 0x0801;

/// Reads `path`, gunzipping when it ends in `.gz`.
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .map_err(|e| DataError::format(path, format!("corrupt gzip stream: {e}")))?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(DataError::format(
                path,
                format!("decompresses to more than {MAX_DECOMPRESSED} bytes"),
            ));
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// `dir/stem` if it exists, else `dir/stem.gz`, else a [`DataError::Missing`].
pub(crate) fn find_raw_or_gz(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    let raw = dir.join(stem);
    if raw.is_file() {
        return Ok(raw);
    }
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(DataError::Missing {
        what: format!("IDX file {stem}[.gz]"),
        path: dir.to_path_buf(),
        hint: String::new(),
    })
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parses the header and returns `(dims, payload)` after checking the payload length.
fn parse(path: &Path, bytes: &[u8], magic: u32) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let found = be_u32(bytes, 0).ok_or_else(|| DataError::format(path, "truncated IDX header"))?;
    if found != magic {
        return Err(DataError::format(
            path,
            format!("bad IDX magic 0x{found:08x}, expected 0x{magic:08x}"),
        ));
    }
    let ndims = (magic & 0xff) as usize;
    let mut dims = Vec::with_capacity(ndims);
    for d in 0..ndims {
        let v = be_u32(bytes, 4 + 4 * d)
            .ok_or_else(|| DataError::format(path, "truncated IDX header"))?;
        dims.push(v as usize);
    }
    let header = 4 + 4 * ndims;
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::format(path, "IDX dimensions overflow"))?;
    let payload = &bytes[header..];
    if payload.len() != expected {
        return Err(DataError::format(
            path,
            format!(
                "{}: expected {expected} data bytes for dims {dims:?}, found {}",
                if payload.len() < expected {
                    "truncated"
                } else {
                    "trailing bytes"
                },
                payload.len()
            ),
        ));
    }
    Ok((dims, payload.to_vec()))
}

/// Reads an IDX image file: returns `(count, rows, cols, pixels scaled to [0, 1])`.
pub fn read_idx_images(path: &Path) -> Result<(usize, usize, usize, Vec<f32>), DataError> {
    let bytes = read_maybe_gz(path)?;
    let (dims, payload) = parse(path, &bytes, IMAGES_MAGIC)?;
    let pixels = payload.iter().map(|&b| b as f32 / 255.0).collect();
    Ok((dims[0], dims[1], dims[2], pixels))
}

/// Reads an IDX label file; every label must be `< classes`.
pub fn read_idx_labels(path: &Path, classes: usize) -> Result<Vec<u32>, DataError> {
    let bytes = read_maybe_gz(path)?;
    let (_, payload) = parse(path, &bytes, LABELS_MAGIC)?;
    if let Some(pos) = payload.iter().position(|&l| l as usize >= classes) {
        return Err(DataError::format(
            path,
            format!(
                "label {} at index {pos} is not below {classes}",
                payload[pos]
            ),
        ));
    }
    Ok(payload.into_iter().map(u32::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx_images(n: u32, r: u32, c: u32, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [IMAGES_MAGIC, n, r, c] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn reads_raw_and_gzipped_images() {
        let dir = tempfile::tempdir().expect("tmp");
        let bytes = idx_images(2, 2, 2, &[0, 255, 51, 102, 1, 2, 3, 4]);
        let raw = dir.path().join("img");
        std::fs::write(&raw, &bytes).expect("write");
        let (n, r, c, px) = read_idx_images(&raw).expect("raw");
        assert_eq!((n, r, c), (2, 2, 2));
        assert_eq!(px[1], 1.0);
        assert!((px[2] - 0.2).abs() < 1e-6);

        let gz = dir.path().join("img.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes).expect("gz");
        std::fs::write(&gz, enc.finish().expect("gz")).expect("write");
        assert_eq!(read_idx_images(&gz).expect("gz").3, px);
        assert_eq!(find_raw_or_gz(dir.path(), "img").expect("find"), raw);
    }

    #[test]
    fn corrupt_inputs_give_errors_not_panics() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("bad");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "truncated IDX header"),
            (vec![0, 0, 8, 3, 0, 0], "truncated IDX header"),
            (idx_images(2, 2, 2, &[1, 2, 3]), "truncated"),
            (idx_images(1, 1, 1, &[1, 2]), "trailing"),
            (
                [LABELS_MAGIC.to_be_bytes(), 1u32.to_be_bytes()].concat(),
                "bad IDX magic",
            ),
            (idx_images(u32::MAX, u32::MAX, u32::MAX, &[]), "overflow"),
        ];
        for (bytes, want) in cases {
            std::fs::write(&p, &bytes).expect("write");
            let err = read_idx_images(&p).expect_err("must fail").to_string();
            assert!(err.contains(want), "{err} should mention {want}");
        }
        let gz = dir.path().join("bad.gz");
        std::fs::write(&gz, b"\x1f\x8bnot really gzip").expect("write");
        let err = read_idx_images(&gz).expect_err("must fail").to_string();
        assert!(err.contains("gzip"), "{err}");
    }

    #[test]
    fn labels_out_of_range_are_rejected() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("lab");
        let mut v = Vec::new();
        v.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
        v.extend_from_slice(&3u32.to_be_bytes());
        v.extend_from_slice(&[1, 9, 10]);
        std::fs::write(&p, &v).expect("write");
        assert!(read_idx_labels(&p, 10).is_err());
        assert_eq!(read_idx_labels(&p, 11).expect("ok"), vec![1, 9, 10]);
    }
}
