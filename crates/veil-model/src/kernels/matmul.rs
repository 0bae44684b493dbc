//! The one call into the `gemm` crate's raw-pointer matrix product, behind a safe interface:
//! a matrix is a slice plus its shape and strides, and every matrix is checked to lie inside
//! its slice before the call. The kernels write products straight into their output buffers
//! (no temporary per product, no copy) and accumulate into them (`dst += lhs · rhs`).
//!
//! This module is the only `unsafe` code in veil-model. The call is sound because: every
//! element the product reads or writes lies inside a live slice (checked below, with overflow
//! checks); `dst` is a unique borrow, so it aliases neither operand; and `gemm` reads nothing
//! outside the `m x k`, `k x n` and `m x n` index ranges it is given.
#![allow(unsafe_code)]

use std::ops::Range;

use gemm::Parallelism;

/// A read-only `rows x cols` f32 matrix inside a slice: element `(i, j)` is
/// `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Matrix<'a> {
    /// The row-major `rows x cols` matrix at the start of `data`.
    pub(super) fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Matrix {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// Rows `rows` and columns `cols` of this matrix, as a view.
    ///
    /// # Panics
    /// When a range reaches past the matrix: ranges come from the kernels' own plans.
    pub(super) fn block(self, rows: Range<usize>, cols: Range<usize>) -> Self {
        assert!(
            rows.start <= rows.end && rows.end <= self.rows,
            "Matrix::block: rows out of range"
        );
        assert!(
            cols.start <= cols.end && cols.end <= self.cols,
            "Matrix::block: columns out of range"
        );
        let offset = rows.start * self.row_stride + cols.start * self.col_stride;
        Matrix {
            data: self.data.get(offset..).unwrap_or_default(),
            rows: rows.len(),
            cols: cols.len(),
            ..self
        }
    }

    /// The transpose, as a view (strides swapped).
    pub(super) fn transposed(self) -> Self {
        Matrix {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Whether every element lies inside the slice and every offset fits `isize`.
    fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1)
            .checked_mul(self.row_stride)
            .zip((self.cols - 1).checked_mul(self.col_stride))
            .and_then(|(a, b)| a.checked_add(b));
        let strides_fit =
            isize::try_from(self.row_stride).is_ok() && isize::try_from(self.col_stride).is_ok();
        strides_fit
            && matches!(last, Some(last) if last < self.data.len() && isize::try_from(last).is_ok())
    }
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` with `accumulate`, where `dst` is the row-major
/// `[lhs.rows, rhs.cols]` matrix at the start of the slice. With `parallel`, the product is
/// split over rayon's pool (for one large product); otherwise it runs on the calling thread
/// (the kernels parallelise over samples). The result's bits depend only on the operands,
/// with or without `parallel`: gemm 0.19 splits the output among threads, never the inner
/// dimension, and its blocking does not depend on the thread count (tested in
/// `kernels::conv`).
///
/// # Panics
/// When the inner dimensions differ or a matrix does not fit its slice: shapes come from the
/// kernels' own plans, never from data, so this is a bug in the caller.
pub(super) fn matmul_into(
    dst: &mut [f32],
    lhs: Matrix<'_>,
    rhs: Matrix<'_>,
    accumulate: bool,
    parallel: bool,
) {
    matmul_into_rows(dst, rhs.cols, lhs, rhs, accumulate, parallel);
}

/// [`matmul_into`] with the destination's rows `dst_row_stride` apart (at least `rhs.cols`:
/// rows never overlap), for a product that fills a block of columns of a wider matrix.
///
/// # Panics
/// As [`matmul_into`], and when the stride is below the row length.
pub(super) fn matmul_into_rows(
    dst: &mut [f32],
    dst_row_stride: usize,
    lhs: Matrix<'_>,
    rhs: Matrix<'_>,
    accumulate: bool,
    parallel: bool,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "matmul_into: inner dimensions differ");
    assert!(
        lhs.in_bounds() && rhs.in_bounds(),
        "matmul_into: operand out of bounds"
    );
    assert!(dst_row_stride >= n, "matmul_into: destination rows overlap");
    let len = match m {
        0 => 0,
        _ => (m - 1)
            .checked_mul(dst_row_stride)
            .and_then(|last_row| last_row.checked_add(n))
            .expect("matmul_into: destination size overflows"),
    };
    assert!(
        dst.len() >= len && isize::try_from(len).is_ok() && isize::try_from(dst_row_stride).is_ok(),
        "matmul_into: destination too small"
    );
    let dst = &mut dst[..len];
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.chunks_mut(dst_row_stride)
                .for_each(|row| row[..n].fill(0.0));
        }
        return;
    }
    let parallelism = match parallel {
        true => Parallelism::Rayon(0),
        false => Parallelism::None,
    };
    let stride = |s: usize| s as isize; // in_bounds: every offset fits isize
    // SAFETY: see the module documentation; the bounds of all three matrices were checked
    // above, and `dst` (a unique borrow) cannot overlap the shared operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            stride(dst_row_stride),
            accumulate,
            lhs.data.as_ptr(),
            stride(lhs.col_stride),
            stride(lhs.row_stride),
            rhs.data.as_ptr(),
            stride(rhs.col_stride),
            stride(rhs.row_stride),
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook triple loop.
    fn naive(a: Matrix<'_>, b: Matrix<'_>) -> Vec<f32> {
        let mut out = vec![0f32; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                out[i * b.cols + j] = (0..a.cols)
                    .map(|l| {
                        a.data[i * a.row_stride + l * a.col_stride]
                            * b.data[l * b.row_stride + j * b.col_stride]
                    })
                    .sum();
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Small-integer data (exact sums): every layout, overwrite and accumulate, serial and
        /// parallel, destination rows packed or apart, equal the triple loop exactly, and the
        /// destination's gaps between rows are left alone.
        #[test]
        fn equals_the_triple_loop(
            m in 0usize..20, k in 0usize..20, n in 0usize..40, gap in 0usize..4,
            ta: bool, tb: bool, accumulate: bool, parallel: bool,
            values in proptest::collection::vec(-3i8..4, 1..30),
        ) {
            let fill = |len: usize, shift: usize| -> Vec<f32> {
                (0..len).map(|i| f32::from(values[(i + shift) % values.len()])).collect()
            };
            let (a_data, b_data) = (fill(m * k, 0), fill(k * n, 1));
            let a = match ta {
                true => Matrix::row_major(&a_data, k, m).transposed(),
                false => Matrix::row_major(&a_data, m, k),
            };
            let b = match tb {
                true => Matrix::row_major(&b_data, n, k).transposed(),
                false => Matrix::row_major(&b_data, k, n),
            };
            let stride = n + gap;
            let start = fill(m * stride, 2);
            let mut dst = start.clone();
            matmul_into_rows(&mut dst, stride, a, b, accumulate, parallel);
            let product = naive(a, b);
            let mut want = start.clone();
            for i in 0..m {
                for j in 0..n {
                    let w = &mut want[i * stride + j];
                    *w = product[i * n + j] + if accumulate { *w } else { 0.0 };
                }
            }
            prop_assert_eq!(dst, want);
        }
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn rejects_an_operand_larger_than_its_slice() {
        let a = [1.0f32; 5];
        let mut dst = [0f32; 4];
        matmul_into(
            &mut dst,
            Matrix::row_major(&a, 2, 3),
            Matrix::row_major(&a, 3, 2),
            false,
            false,
        );
    }

    #[test]
    #[should_panic(expected = "rows overlap")]
    fn rejects_overlapping_destination_rows() {
        let a = [1.0f32; 6];
        let mut dst = [0f32; 8];
        matmul_into_rows(
            &mut dst,
            1,
            Matrix::row_major(&a, 2, 3),
            Matrix::row_major(&a, 3, 2),
            false,
            false,
        );
    }
}
