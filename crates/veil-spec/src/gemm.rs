//! The dense matrix products behind [`crate::kernels`]: a convolution lowered to
//! `W cols` (im2col) and a dense layer's dot products, over any ring the kernels accept
//! (`Wrapping<u64>` for the secure engine's shares, `f32` for the runtime, `f64` and `i64` in
//! tests).
//!
//! Each function is compiled three times, for AVX-512 (F, DQ, VL: 8-lane 64-bit multiplies),
//! AVX2 and the baseline, and the widest the CPU supports is picked at run time
//! (`multiversion`; no `unsafe` here). The code is the same plain Rust in every version:
//! blocks of [`ROWS`] x [`COLS`] accumulators that the compiler keeps in vector registers.
//!
//! Invariant (kept for floating point): every output entry is the sum of its products in the
//! order of the reduction index, starting from zero, exactly as the direct definition
//! computes it, so `f32` and `f64` results equal (`==`) those of the one-tap-at-a-time loops.

use std::ops::{Add, Mul};

use multiversion::multiversion;

/// Values the kernels compute with: a ring (or a field of floats) with zero as `Default`.
pub trait Scalar: Copy + Default + Add<Output = Self> + Mul<Output = Self> {}

impl<T: Copy + Default + Add<Output = T> + Mul<Output = T>> Scalar for T {}

/// Output rows per accumulator block.
pub const ROWS: usize = 4;

/// Output columns per accumulator block; `b`'s row length must be a multiple of it.
pub const COLS: usize = 16;

/// `out[r * stride + p] = sum_k a[r * k + kk] * b[kk * n + p]` for every row `r < m` and column
/// `p < valid`, where `a` is `m x k` and `b` is `k x n`, both row-major, `n` a multiple of
/// [`COLS`] (`b`'s columns from `valid` on are padding: computed, never written).
///
/// Panics if a slice is shorter than these dimensions say (callers size them; no input value
/// reaches this point unchecked).
#[multiversion(targets("x86_64+avx512f+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub fn matmul<T: Scalar>(
    a: &[T],
    b: &[T],
    (m, k, n): (usize, usize, usize),
    out: &mut [T],
    stride: usize,
    valid: usize,
) {
    let mut row = 0;
    while row < m {
        let rows = ROWS.min(m - row);
        for col in (0..n).step_by(COLS) {
            let width = COLS.min(valid.saturating_sub(col));
            if width == 0 {
                break;
            }
            if rows == ROWS {
                block::<T, ROWS>(a, b, (row, col, k, n), out, stride, width);
            } else {
                for r in row..row + rows {
                    block::<T, 1>(a, b, (r, col, k, n), out, stride, width);
                }
            }
        }
        row += rows;
    }
}

/// One `R x COLS` block of [`matmul`] at (`row`, `col`), writing its first `width` columns.
#[inline(always)]
fn block<T: Scalar, const R: usize>(
    a: &[T],
    b: &[T],
    (row, col, k, n): (usize, usize, usize, usize),
    out: &mut [T],
    stride: usize,
    width: usize,
) {
    let mut acc = [[T::default(); COLS]; R];
    for kk in 0..k {
        let base = kk * n + col;
        let tap: &[T] = &b[base..base + COLS];
        for (r, acc) in acc.iter_mut().enumerate() {
            let w = a[(row + r) * k + kk];
            for (s, &v) in acc.iter_mut().zip(tap) {
                *s = *s + w * v;
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let start = (row + r) * stride + col;
        out[start..start + width].copy_from_slice(&acc[..width]);
    }
}

/// `out[s * m + o] = sum_i w[o * k + i] * xs[s * k + i]` for `batch` samples of `k` inputs and
/// `m` outputs (a dense layer). Weight rows are walked once per block of `sample_block`
/// samples, so a large matrix streams from memory `batch / sample_block` times.
#[multiversion(targets("x86_64+avx512f+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub fn dense_rows<T: Scalar>(
    w: &[T],
    xs: &[T],
    (m, k, batch): (usize, usize, usize),
    sample_block: usize,
    out: &mut [T],
) {
    for first in (0..batch).step_by(sample_block.max(1)) {
        let block = sample_block.max(1).min(batch - first);
        for o in 0..m {
            let row = &w[o * k..(o + 1) * k];
            for s in first..first + block {
                let x = &xs[s * k..(s + 1) * k];
                out[s * m + o] = row
                    .iter()
                    .zip(x)
                    .fold(T::default(), |acc, (&a, &b)| acc + a * b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::Wrapping;

    /// The tiled product equals the triple loop for row counts around [`ROWS`] and valid
    /// widths around [`COLS`], in `Z_2^64` with full-width values (products wrap).
    #[test]
    fn tiled_product_equals_the_triple_loop() {
        let val = |i: usize| Wrapping((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xabcd);
        for (m, k, valid) in [
            (1usize, 1usize, 1usize),
            (3, 5, 16),
            (4, 7, 17),
            (9, 3, 40),
            (6, 25, 33),
        ] {
            let n = valid.div_ceil(COLS) * COLS;
            let a: Vec<_> = (0..m * k).map(val).collect();
            let b: Vec<_> = (0..k * n).map(|i| val(i + 99)).collect();
            let stride = valid + 2;
            let mut out = vec![Wrapping(7u64); m * stride];
            matmul(&a, &b, (m, k, n), &mut out, stride, valid);
            for r in 0..m {
                for p in 0..stride {
                    let want = if p < valid {
                        (0..k).fold(Wrapping(0), |s, kk| s + a[r * k + kk] * b[kk * n + p])
                    } else {
                        Wrapping(7)
                    };
                    assert_eq!(
                        out[r * stride + p],
                        want,
                        "m {m} k {k} valid {valid} at {r},{p}"
                    );
                }
            }
        }
    }
}
