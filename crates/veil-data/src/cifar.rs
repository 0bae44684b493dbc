//! CIFAR-10 binary batches: records of `<label u8><1024 R><1024 G><1024 B>`, no header.

use std::path::Path;

use crate::DataError;

const RECORD: usize = 1 + 3 * 32 * 32;

/// Reads one CIFAR-10 binary batch: `(labels, pixels [n, 3, 32, 32] in [0, 1])`.
pub fn read_cifar10_batch(path: &Path) -> Result<(Vec<u32>, Vec<f32>), DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(DataError::format(
            path,
            format!(
                "truncated: {} bytes is not a whole number of {RECORD}-byte records",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / RECORD;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * (RECORD - 1));
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] >= 10 {
            return Err(DataError::format(
                path,
                format!("record {i} has label {}, expected 0-9", rec[0]),
            ));
        }
        labels.push(u32::from(rec[0]));
        pixels.extend(rec[1..].iter().map(|&b| b as f32 / 255.0));
    }
    Ok((labels, pixels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_rejects_truncation() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("b.bin");
        let mut rec = vec![7u8];
        rec.extend((0..3072).map(|i| (i % 256) as u8));
        let two = [rec.clone(), rec.clone()].concat();
        std::fs::write(&p, &two).expect("write");
        let (labels, px) = read_cifar10_batch(&p).expect("ok");
        assert_eq!(labels, vec![7, 7]);
        assert_eq!(px.len(), 2 * 3072);
        assert_eq!(px[255], 1.0);

        std::fs::write(&p, &two[..5000]).expect("write");
        let err = read_cifar10_batch(&p).expect_err("truncated").to_string();
        assert!(err.contains("truncated"), "{err}");

        rec[0] = 12;
        std::fs::write(&p, &rec).expect("write");
        assert!(read_cifar10_batch(&p).is_err());
    }
}
