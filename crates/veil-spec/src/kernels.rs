//! Reference kernels on plain numbers, shared by the interpreters that do not use burn: the
//! secure engine computes them in the ring `Z_2^64` (`Wrapping<u64>`), the distributed
//! runtime in `f32` on weight slices, tests in `f64`.
//!
//! A convolution restricted to a subset of its input channels, with the matching slice of
//! the weight (`[out, subset, kh, kw]`), yields exactly the partial sums of SYSTEM.md section
//! 4: [`Linear::Conv`] with `input[0]` set to the subset size is that computation.
//!
//! Key items: [`Linear`], [`Linear::apply`], [`pool_windows`].

use crate::gemm;
pub use crate::gemm::Scalar;

/// A bilinear layer `y = W x` (the bias is added separately).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Linear {
    /// 2-D convolution, weight `[out, in / groups, kh, kw]`.
    Conv {
        /// Input `[c, h, w]`.
        input: [usize; 3],
        /// Output `[c, h, w]`.
        output: [usize; 3],
        /// Kernel `[kh, kw]`.
        kernel: [usize; 2],
        /// Stride `[sh, sw]`.
        stride: [usize; 2],
        /// Zero padding `[ph, pw]`.
        padding: [usize; 2],
        /// Channel groups (1: a full convolution): output group `g` reads input group `g`
        /// only. Both channel counts are multiples of it.
        #[serde(default = "one_group", skip_serializing_if = "is_one_group")]
        groups: usize,
    },
    /// Fully connected, weight `[out, in]`.
    Dense {
        /// Input features.
        input: usize,
        /// Output features.
        output: usize,
    },
}

fn one_group() -> usize {
    1
}

fn is_one_group(groups: &usize) -> bool {
    *groups == 1
}

impl Linear {
    /// Input elements per sample.
    pub fn input_len(&self) -> usize {
        match self {
            Linear::Conv { input, .. } => input.iter().product(),
            Linear::Dense { input, .. } => *input,
        }
    }

    /// Output elements per sample.
    pub fn output_len(&self) -> usize {
        match self {
            Linear::Conv { output, .. } => output.iter().product(),
            Linear::Dense { output, .. } => *output,
        }
    }

    /// Weight elements.
    pub fn weight_len(&self) -> usize {
        match self {
            Linear::Conv {
                input,
                output,
                kernel,
                groups,
                ..
            } => output[0] * (input[0] / (*groups).max(1)) * kernel[0] * kernel[1],
            Linear::Dense { input, output } => input * output,
        }
    }

    /// Multiplications per sample.
    pub fn macs(&self) -> usize {
        match self {
            Linear::Conv { output, .. } => {
                self.weight_len() / output[0] * output.iter().product::<usize>()
            }
            Linear::Dense { input, output } => input * output,
        }
    }

    /// `W x` for one sample, in any ring (`Wrapping<u64>` for shares, `f64` for the
    /// reference). `w` and `x` must have [`Linear::weight_len`] and [`Linear::input_len`]
    /// elements (else it panics, see [`Linear::apply_many`]); the result has
    /// [`Linear::output_len`]. Each output sums its products in the order of the weight layout
    /// (input channel, kernel row, kernel column), so floating-point results do not depend on
    /// how the work is tiled (padding taps add `w * 0`: finite weights, which weight files
    /// guarantee, leave the sum unchanged).
    pub fn apply<T: Scalar>(&self, w: &[T], x: &[T]) -> Vec<T> {
        self.apply_many(w, x, 1)
    }

    /// `W x` for each of `batch` samples (`xs` holds them one after another); the results are
    /// concatenated in the same order. Equal to [`Linear::apply`] on each sample.
    ///
    /// A convolution is lowered, channel group by channel group and [`CONV_BLOCK`] output
    /// positions at a time, to a matrix product of the group's weight rows (`out/g x in/g kh
    /// kw`) with the gathered input windows (im2col, zeros for the
    /// padding), tiled and vectorised by the private `gemm` module. A dense layer walks its
    /// weight rows once per block of [`SAMPLE_BLOCK`] samples rather than once per sample, so a
    /// large weight matrix streams from memory `batch / SAMPLE_BLOCK` times instead of `batch`
    /// times.
    ///
    /// # Panics
    ///
    /// If `w` does not hold [`Linear::weight_len`] values or `xs` does not hold `batch` samples
    /// of [`Linear::input_len`] (callers check sizes that come from files or peers first).
    pub fn apply_many<T: Scalar>(&self, w: &[T], xs: &[T], batch: usize) -> Vec<T> {
        let (n_in, n_out) = (self.input_len(), self.output_len());
        assert!(
            w.len() == self.weight_len() && xs.len() == batch * n_in,
            "Linear::apply_many: {} weights and {} inputs for {} weights and {batch} x {n_in} inputs",
            w.len(),
            xs.len(),
            self.weight_len()
        );
        let mut out = vec![T::default(); batch * n_out];
        match *self {
            Linear::Dense { input, output } => {
                gemm::dense_rows(w, xs, (output, input, batch), SAMPLE_BLOCK, &mut out);
            }
            Linear::Conv { .. } => {
                let mut cols = Vec::new();
                let (n_in, n_out) = (n_in.max(1), n_out.max(1));
                for (x, y) in xs.chunks_exact(n_in).zip(out.chunks_exact_mut(n_out)) {
                    self.conv_into(w, x, y, &mut cols);
                }
            }
        }
        out
    }

    /// One sample of a convolution into `out` (`[oc, oh, ow]`), through `cols` (scratch):
    /// each channel group's input windows times its rows of the weight.
    fn conv_into<T: Scalar>(&self, w: &[T], x: &[T], out: &mut [T], cols: &mut Vec<T>) {
        let Linear::Conv {
            input: [c, h, wd],
            output: [oc, oh, ow],
            kernel: [kh, kw],
            groups,
            ..
        } = *self
        else {
            return;
        };
        let groups = groups.max(1);
        let (cg, ocg, positions) = (c / groups, oc / groups, oh * ow);
        let taps = cg * kh * kw;
        for g in 0..groups {
            let xg = &x[g * cg * h * wd..(g + 1) * cg * h * wd];
            let wg = &w[g * ocg * taps..(g + 1) * ocg * taps];
            let outg = &mut out[g * ocg * positions..(g + 1) * ocg * positions];
            self.group_into(wg, xg, (cg, ocg), outg, cols);
        }
    }

    /// One channel group (`cg` input channels `xg`, `ocg` filters `wg`) of
    /// [`Linear::conv_into`].
    fn group_into<T: Scalar>(
        &self,
        wg: &[T],
        xg: &[T],
        (cg, ocg): (usize, usize),
        out: &mut [T],
        cols: &mut Vec<T>,
    ) {
        let Linear::Conv {
            input: [_, h, wd],
            output: [_, oh, ow],
            kernel: [kh, kw],
            stride: [sh, sw],
            padding: [ph, pw],
            ..
        } = *self
        else {
            return;
        };
        let (positions, taps) = (oh * ow, cg * kh * kw);
        for first in (0..positions).step_by(CONV_BLOCK) {
            let valid = CONV_BLOCK.min(positions - first);
            let width = valid.div_ceil(gemm::COLS) * gemm::COLS;
            cols.clear();
            cols.resize(taps * width, T::default());
            for (tap, row) in cols.chunks_exact_mut(width).enumerate() {
                let (ci, i, j) = (tap / (kh * kw), tap / kw % kh, tap % kw);
                let plane = &xg[ci * h * wd..(ci + 1) * h * wd];
                let (mut y, mut xo) = (first / ow, first % ow);
                for slot in &mut row[..valid] {
                    let (iy, ix) = (y * sh + i, xo * sw + j);
                    if iy >= ph && ix >= pw && iy - ph < h && ix - pw < wd {
                        *slot = plane[(iy - ph) * wd + ix - pw];
                    }
                    xo += 1;
                    if xo == ow {
                        (y, xo) = (y + 1, 0);
                    }
                }
            }
            gemm::matmul(
                wg,
                cols,
                (ocg, taps, width),
                &mut out[first..],
                positions,
                valid,
            );
        }
    }
}

/// Output positions of a convolution gathered per matrix product in [`Linear::apply_many`]
/// (bounds the im2col scratch to `in kh kw x CONV_BLOCK` values).
pub const CONV_BLOCK: usize = 256;

/// Samples per pass over a dense layer's weights in [`Linear::apply_many`].
pub const SAMPLE_BLOCK: usize = 8;

/// For each output element of a `kernel`/`stride` pooling over a `[c, h, w]` input (no
/// padding), the row-major input indices of its window, output-major.
pub fn pool_windows(input: [usize; 3], kernel: [usize; 2], stride: [usize; 2]) -> Vec<Vec<usize>> {
    let [c, h, w] = input;
    if kernel[0] == 0 || kernel[1] == 0 || kernel[0] > h || kernel[1] > w {
        return Vec::new();
    }
    let oh = (h - kernel[0]) / stride[0].max(1) + 1;
    let ow = (w - kernel[1]) / stride[1].max(1) + 1;
    let mut out = Vec::with_capacity(c * oh * ow);
    for ci in 0..c {
        for y in 0..oh {
            for x in 0..ow {
                let mut win = Vec::with_capacity(kernel[0] * kernel[1]);
                for i in 0..kernel[0] {
                    for j in 0..kernel[1] {
                        win.push((ci * h + y * stride[0] + i) * w + x * stride[1] + j);
                    }
                }
                out.push(win);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::Wrapping;

    #[test]
    fn conv_matches_a_direct_sum_in_both_rings() {
        // 2 input channels 4x5, 3 filters 3x3, stride 2, padding 1: out 3 x 2 x 3.
        let lin = Linear::Conv {
            input: [2, 4, 5],
            output: [3, 2, 3],
            kernel: [3, 3],
            stride: [2, 2],
            padding: [1, 1],
            groups: 1,
        };
        let x: Vec<i64> = (0..40).map(|v| (v * 7 % 11) - 5).collect();
        let w: Vec<i64> = (0..54).map(|v| (v * 5 % 13) - 6).collect();
        let want = direct_conv(&lin, &w, &x);
        let f: Vec<f64> = lin.apply(
            &w.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            &x.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        );
        assert_eq!(f, want.iter().map(|&v| v as f64).collect::<Vec<_>>());
        let r = lin.apply(
            &w.iter().map(|&v| Wrapping(v as u64)).collect::<Vec<_>>(),
            &x.iter().map(|&v| Wrapping(v as u64)).collect::<Vec<_>>(),
        );
        assert_eq!(r.iter().map(|v| v.0 as i64).collect::<Vec<_>>(), want);
        assert_eq!(lin.macs(), 18 * 18);
    }

    #[test]
    fn channel_subsets_sum_to_the_whole_convolution() {
        // 3 input channels split {0}, {1, 2}: the partial sums of the two slices add up to the
        // full convolution (SYSTEM.md section 4).
        let full = Linear::Conv {
            input: [3, 5, 5],
            output: [2, 3, 3],
            kernel: [3, 3],
            stride: [1, 1],
            padding: [0, 0],
            groups: 1,
        };
        let x: Vec<f64> = (0..75)
            .map(|v| f64::from((v * 13 % 7) as u8) - 3.0)
            .collect();
        let w: Vec<f64> = (0..54)
            .map(|v| f64::from((v * 5 % 11) as u8) - 5.0)
            .collect();
        let want = full.apply(&w, &x);
        let part = |lo: usize, n: usize| {
            let lin = Linear::Conv {
                input: [n, 5, 5],
                output: [2, 3, 3],
                kernel: [3, 3],
                stride: [1, 1],
                padding: [0, 0],
                groups: 1,
            };
            let ws: Vec<f64> = (0..2)
                .flat_map(|o| w[(o * 3 + lo) * 9..(o * 3 + lo + n) * 9].to_vec())
                .collect();
            lin.apply(&ws, &x[lo * 25..(lo + n) * 25])
        };
        let (a, b) = (part(0, 1), part(1, 2));
        let got: Vec<f64> = a.iter().zip(&b).map(|(p, q)| p + q).collect();
        assert_eq!(got, want);
        assert_eq!(
            pool_windows([1, 4, 4], [2, 2], [2, 2])[3],
            vec![10, 11, 14, 15]
        );
    }

    /// The direct definition of a convolution: every output sums `w * x` over its window and
    /// its group's input channels, skipping taps in the zero padding.
    fn direct_conv(lin: &Linear, w: &[i64], x: &[i64]) -> Vec<i64> {
        let Linear::Conv {
            input: [c, h, wd],
            output: [oc, oh, ow],
            kernel: [kh, kw],
            stride: [sh, sw],
            padding: [ph, pw],
            groups,
        } = *lin
        else {
            unreachable!("a convolution")
        };
        let (cg, ocg) = (c / groups, oc / groups);
        let mut out = vec![0i64; oc * oh * ow];
        for o in 0..oc {
            for y in 0..oh {
                for xo in 0..ow {
                    for k in 0..cg {
                        let ci = o / ocg * cg + k;
                        for i in 0..kh {
                            for j in 0..kw {
                                let (iy, ix) = (y * sh + i, xo * sw + j);
                                if iy < ph || ix < pw || iy - ph >= h || ix - pw >= wd {
                                    continue;
                                }
                                out[(o * oh + y) * ow + xo] += w[((o * cg + k) * kh + i) * kw + j]
                                    * x[(ci * h + iy - ph) * wd + ix - pw];
                            }
                        }
                    }
                }
            }
        }
        out
    }

    proptest::proptest! {
        /// The kernel (im2col blocks, zeros for padding taps, a tiled product, per channel
        /// group) equals the direct sum over shapes, kernels, strides, paddings and groups
        /// (1 to 3, depthwise included), in `Z_2^64`; output channels up to 6 per group cover
        /// full and partial row tiles.
        #[test]
        fn conv_equals_the_direct_sum(
            cg in 1usize..3, ocg in 1usize..7, groups in 1usize..4, h in 1usize..8,
            wd in 1usize..8, kh in 1usize..4, kw in 1usize..4, sh in 1usize..4, sw in 1usize..4,
            ph in 0usize..3, pw in 0usize..3, seed in 0u64..1000,
        ) {
            proptest::prop_assume!(h + 2 * ph >= kh && wd + 2 * pw >= kw);
            let (oh, ow) = ((h + 2 * ph - kh) / sh + 1, (wd + 2 * pw - kw) / sw + 1);
            let lin = Linear::Conv {
                input: [cg * groups, h, wd],
                output: [ocg * groups, oh, ow],
                kernel: [kh, kw],
                stride: [sh, sw],
                padding: [ph, pw],
                groups,
            };
            let val = |k: usize| ((k as u64 * 2_654_435_761 + seed) % 19) as i64 - 9;
            let x: Vec<i64> = (0..lin.input_len()).map(val).collect();
            let w: Vec<i64> = (0..lin.weight_len()).map(|k| val(k + 7)).collect();
            let want = direct_conv(&lin, &w, &x);
            let got = lin.apply(
                &w.iter().map(|&v| Wrapping(v as u64)).collect::<Vec<_>>(),
                &x.iter().map(|&v| Wrapping(v as u64)).collect::<Vec<_>>(),
            );
            proptest::prop_assert_eq!(got.iter().map(|v| v.0 as i64).collect::<Vec<_>>(), want);
        }
    }

    /// More output positions than one im2col block (a block then starts mid-row), five output
    /// channels (a full and a partial row tile), padding 2: equal to the direct sum.
    #[test]
    fn a_convolution_over_several_blocks_equals_the_direct_sum() {
        let lin = Linear::Conv {
            input: [2, 28, 28],
            output: [5, 28, 28],
            kernel: [5, 5],
            stride: [1, 1],
            padding: [2, 2],
            groups: 1,
        };
        const { assert!(28 * 28 > 3 * CONV_BLOCK) };
        let x: Vec<i64> = (0..lin.input_len())
            .map(|k| (k as i64 * 7) % 23 - 11)
            .collect();
        let w: Vec<i64> = (0..lin.weight_len())
            .map(|k| (k as i64 * 5) % 17 - 8)
            .collect();
        let want = direct_conv(&lin, &w, &x);
        let ring = |v: &[i64]| v.iter().map(|&v| Wrapping(v as u64)).collect::<Vec<_>>();
        let got = lin.apply(&ring(&w), &ring(&x));
        assert_eq!(got.iter().map(|v| v.0 as i64).collect::<Vec<_>>(), want);
        let f = |v: &[i64]| v.iter().map(|&v| v as f64).collect::<Vec<_>>();
        let got = lin.apply(&f(&w), &f(&x));
        assert_eq!(got, want.iter().map(|&v| v as f64).collect::<Vec<_>>());
    }

    /// Many samples at once equal one sample at a time, for a dense layer (blocks of
    /// [`SAMPLE_BLOCK`] and a partial one) and a convolution.
    #[test]
    fn many_samples_equal_one_at_a_time() {
        let dense = Linear::Dense {
            input: 7,
            output: 5,
        };
        let conv = Linear::Conv {
            input: [2, 4, 4],
            output: [3, 2, 2],
            kernel: [3, 3],
            stride: [1, 1],
            padding: [0, 0],
            groups: 1,
        };
        for lin in [dense, conv] {
            let batch = SAMPLE_BLOCK + 3;
            let w: Vec<i64> = (0..lin.weight_len())
                .map(|k| (k as i64 * 7) % 11 - 5)
                .collect();
            let xs: Vec<i64> = (0..batch * lin.input_len())
                .map(|k| (k as i64 * 5) % 13 - 6)
                .collect();
            let one: Vec<i64> = xs
                .chunks(lin.input_len())
                .flat_map(|x| lin.apply(&w, x))
                .collect();
            assert_eq!(lin.apply_many(&w, &xs, batch), one);
        }
    }
}
