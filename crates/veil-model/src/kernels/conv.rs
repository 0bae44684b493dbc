//! Convolution as matrix products over im2col matrices (groups 1, dilation 1, any stride, zero
//! padding), sample by sample and in parallel over the batch.
//!
//! Contract: for `x` `[b, c, h, w]` and `weight` `[o, c, kh, kw]`, the output is
//! `[b, o, oh, ow]` with `oh = (h + 2 ph - kh) / sh + 1` (and likewise `ow`), the same values
//! as burn's `conv2d` up to float summation order. Sample `n`'s column matrix is
//! `cols[(ci * kh + ky) * kw + kx][oy * ow + ox]` = the input at
//! `(n, ci, oy * sh + ky - ph, ox * sw + kx - pw)`, zero outside the input; with `W` as
//! `[o, c kh kw]` and `dY_n` as `[o, oh ow]`: `y_n = W · cols`, `dWᵀ = Σ_n cols · dY_nᵀ`
//! (summed over fixed groups of samples in a fixed order: the same bits for any thread count),
//! and the input gradient either as a forward convolution of `dY` with the rotated kernel
//! (stride 1) or `Wᵀ · dY_n` scattered back by col2im. A sample's column matrix stays in cache
//! between its im2col and its product; the products run on gemm through
//! [`super::matmul::matmul_into`], straight into the output.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Shape, Tensor, TensorData};
use std::ops::Range;

use rayon::prelude::*;

use super::matmul::{Matrix, matmul_into, matmul_into_rows};

/// Stride and zero padding of a convolution, `[h, w]` each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Stride, `[h, w]`, each at least 1.
    pub stride: [usize; 2],
    /// Zero padding on both sides, `[h, w]`.
    pub padding: [usize; 2],
}

/// Convolution through im2col and GEMM, as a burn backend extension.
#[backend_extension(Flex, Autodiff)]
pub trait GemmConv: Backend {
    /// Convolves `x` (`[b, c, h, w]`) with `weight` (`[o, c, kh, kw]`) and adds `bias`
    /// (`[o]`) to every output map.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_gemm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
    ) -> FloatTensor<Self>;
}

/// The backward pass the autodiff implementation of [`GemmConv`] needs from the backend.
pub trait GemmConvKernels: Backend {
    /// Gradients with respect to the input, the weight and the bias (each only when asked
    /// for), from the output gradient `grad` (`[b, o, oh, ow]`).
    fn conv2d_gemm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        geometry: ConvGeometry,
        want: [bool; 3],
    ) -> [Option<FloatTensor<Self>>; 3];
}

/// `conv2d` (groups 1, dilation 1) plus an optional bias: veil's kernel on a flex device,
/// burn's `conv2d` elsewhere.
pub fn conv2d_gemm(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    geometry: ConvGeometry,
) -> Tensor<4> {
    let [_, c, h, w] = x.dims();
    let [o, wc, kh, kw] = weight.dims();
    let [ph, pw] = geometry.padding;
    let fits = c == wc
        && c >= 1
        && super::bias_fits(bias.as_ref(), o)
        && kh >= 1
        && kw >= 1
        && geometry.stride.iter().all(|&s| s >= 1)
        && h + 2 * ph >= kh
        && w + 2 * pw >= kw;
    if !(super::on_flex(&x) && fits && x.dtype() == DType::F32 && weight.dtype() == DType::F32) {
        let options = ConvOptions::new(geometry.stride, geometry.padding, [1, 1], 1);
        return conv2d(x, weight, bias, options);
    }
    // The bias is added inside the kernel (the product accumulates onto it); without one, a
    // constant zero bias, which asks for no gradient.
    let bias = bias.unwrap_or_else(|| Tensor::zeros([o], &x.device()));
    Tensor::<4>::from_dispatch(Dispatch::conv2d_gemm(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        geometry.stride[0],
        geometry.stride[1],
        ph,
        pw,
    ))
}

/// Dims of a 4-d flex tensor.
pub(super) fn dims4(x: &FlexTensor) -> [usize; 4] {
    let shape = x.layout().shape();
    [shape[0], shape[1], shape[2], shape[3]]
}

/// Everything the loops need about one convolution.
#[derive(Clone, Copy, Debug)]
pub(super) struct Plan {
    /// Input `[b, c, h, w]`.
    input: [usize; 4],
    /// Kernel `[kh, kw]`.
    kernel: [usize; 2],
    /// Output `[oh, ow]`.
    out: [usize; 2],
    geometry: ConvGeometry,
}

impl Plan {
    pub(super) fn new(input: [usize; 4], kernel: [usize; 2], geometry: ConvGeometry) -> Self {
        let [_, _, h, w] = input;
        let [sh, sw] = geometry.stride;
        let [ph, pw] = geometry.padding;
        let out = [
            (h + 2 * ph - kernel[0]) / sh + 1,
            (w + 2 * pw - kernel[1]) / sw + 1,
        ];
        Plan {
            input,
            kernel,
            out,
            geometry,
        }
    }

    /// Rows of the column matrix: `c kh kw`.
    fn rows(&self) -> usize {
        self.input[1] * self.kernel[0] * self.kernel[1]
    }

    /// The input row read by output row `oy` at kernel row `ky`, or `None` in the padding.
    fn source_row(&self, oy: usize, ky: usize) -> Option<usize> {
        let iy = (oy * self.geometry.stride[0] + ky).checked_sub(self.geometry.padding[0])?;
        (iy < self.input[2]).then_some(iy)
    }

    /// The output columns `lo..hi` whose input column at kernel column `kx` lies inside the
    /// input; output column `ox` reads input column `ox * sw + kx - pw`.
    fn valid_columns(&self, kx: usize) -> (usize, usize) {
        let (sw, pw, w) = (
            self.geometry.stride[1],
            self.geometry.padding[1],
            self.input[3],
        );
        // Both ends at most `ow`: a kernel wider than the padded row leaves some kernel columns
        // no valid output column at all (then `lo == hi == ow`).
        let lo = pw.saturating_sub(kx).div_ceil(sw).min(self.out[1]);
        let hi = (w + pw).saturating_sub(kx).div_ceil(sw).min(self.out[1]);
        (lo, hi.max(lo))
    }
}

/// The column matrix of sample `bi` of `x` (contiguous f32) into `dst`, row-major
/// `[c kh kw, oh ow]`. With `padding` = [`Padding::Write`] every element is written (zeros
/// where the padding falls); with [`Padding::Kept`] the padding positions are left alone (they
/// hold zeros from an earlier column matrix of the same plan in this buffer). With `parallel`, the
/// rows are filled by the worker pool (for a batch too small to keep every worker busy).
fn im2col_sample(x: &[f32], plan: &Plan, bi: usize, dst: &mut [f32], pad: Padding, parallel: bool) {
    let ohw = plan.out[0] * plan.out[1];
    if parallel {
        dst.par_chunks_exact_mut(ohw)
            .with_min_len(8)
            .enumerate()
            .for_each(|(row, dst)| im2col_row(x, plan, bi, row, dst, pad));
    } else {
        for (row, dst) in dst.chunks_exact_mut(ohw).enumerate() {
            im2col_row(x, plan, bi, row, dst, pad);
        }
    }
}

/// Row `row` (`(ci, ky, kx)`) of sample `bi`'s column matrix: `[oh ow]`.
fn im2col_row(x: &[f32], plan: &Plan, bi: usize, row: usize, dst: &mut [f32], pad: Padding) {
    im2col_row_window(x, plan, bi, row, 0, dst, pad);
}

/// Output positions `first..first + dst.len()` (`oy * ow + ox`) of row `row` (`(ci, ky, kx)`)
/// of sample `bi`'s column matrix, into `dst`.
fn im2col_row_window(
    x: &[f32],
    plan: &Plan,
    bi: usize,
    row: usize,
    first: usize,
    dst: &mut [f32],
    pad: Padding,
) {
    let [_, c, h, w] = plan.input;
    let [kh, kw] = plan.kernel;
    let ow = plan.out[1];
    let (ci, ky, kx) = (row / (kh * kw), row / kw % kh, row % kw);
    let taps = Taps {
        plane: &x[(bi * c + ci) * h * w..][..h * w],
        ky,
        kx,
        valid: plan.valid_columns(kx),
    };
    if plan.geometry.stride == [1, 1] && ow == w {
        taps.shifted(plan, first, dst, pad);
        return;
    }
    // One stretch of an output row at a time (no division per stretch).
    let (mut oy, mut ox0) = (first / ow, first % ow);
    let mut rest = dst;
    while !rest.is_empty() {
        let ox1 = ow.min(ox0 + rest.len());
        let (stretch, tail) = std::mem::take(&mut rest).split_at_mut(ox1 - ox0);
        rest = tail;
        taps.stretch(plan, oy, ox0, stretch, pad);
        (oy, ox0) = (oy + 1, 0);
    }
}

/// What one row `(ci, ky, kx)` of a column matrix reads: input plane `ci` of the sample, at
/// kernel offset `(ky, kx)`.
struct Taps<'a> {
    /// The sample's input plane `ci`, `[h, w]`.
    plane: &'a [f32],
    ky: usize,
    kx: usize,
    /// [`Plan::valid_columns`] of `kx`.
    valid: (usize, usize),
}

impl Taps<'_> {
    /// The window `first..first + dst.len()` of this row when the stride is 1 and the output
    /// is as wide as the input (`ow == w`, "same" padding of the width): then output position
    /// `p` reads plane position `p + (ky - ph) w + (kx - pw)` whenever it reads inside the
    /// plane, so the row is the plane shifted: one copy, then zeros at the few positions that
    /// fall in the padding columns (the shifted copy put neighbouring rows' values there) and,
    /// with [`Padding::Write`], in the padding rows.
    fn shifted(&self, plan: &Plan, first: usize, dst: &mut [f32], pad: Padding) {
        let [_, _, h, w] = plan.input;
        let [oh, ow] = plan.out;
        let [ph, pw] = plan.geometry.padding;
        let end = first + dst.len();
        // The output rows whose input row lies inside the plane, as positions in the window.
        let rows_lo = ph.saturating_sub(self.ky).min(oh);
        let rows_hi = (h + ph).saturating_sub(self.ky).clamp(rows_lo, oh);
        let (lo, hi) = (
            (rows_lo * ow).clamp(first, end),
            (rows_hi * ow).clamp(first, end),
        );
        if pad == Padding::Write {
            dst[..lo - first].fill(0.0);
            dst[hi - first..].fill(0.0);
        }
        if lo == hi {
            return;
        }
        // Source = position + shift; positions whose source falls outside the plane lie in
        // the padding columns, zeroed below.
        let (forward, back) = (self.ky * w + self.kx, ph * w + pw);
        let source = |p: usize| (p + forward).saturating_sub(back).min(h * w);
        let (src_lo, src_hi) = (source(lo), source(hi));
        if src_lo < src_hi {
            // Not clamped at the plane's end (`src_hi` would be too), so `dst_lo >= lo`.
            let dst_lo = src_lo + back - forward;
            dst[dst_lo - first..][..src_hi - src_lo].copy_from_slice(&self.plane[src_lo..src_hi]);
        }
        // The padding columns of every output row in `lo..hi`.
        let (valid_lo, valid_hi) = self.valid;
        for oy in lo / ow..hi.div_ceil(ow) {
            let row = oy * ow;
            for p in (row..row + valid_lo).chain(row + valid_hi..row + ow) {
                if (lo..hi).contains(&p) {
                    dst[p - first] = 0.0;
                }
            }
        }
    }

    /// Output columns `ox0..ox0 + dst.len()` of output row `oy`, into `dst`.
    #[inline]
    fn stretch(&self, plan: &Plan, oy: usize, ox0: usize, dst: &mut [f32], pad: Padding) {
        let w = plan.input[3];
        let (sw, pw) = (plan.geometry.stride[1], plan.geometry.padding[1]);
        let Some(iy) = plan.source_row(oy, self.ky) else {
            if pad == Padding::Write {
                dst.fill(0.0);
            }
            return;
        };
        // The columns of this stretch that read inside the input.
        let ox1 = ox0 + dst.len();
        let (a, b) = (self.valid.0.clamp(ox0, ox1), self.valid.1.clamp(ox0, ox1));
        if pad == Padding::Write {
            dst[..a - ox0].fill(0.0);
            dst[b - ox0..].fill(0.0);
        }
        if a == b {
            return;
        }
        let (dst, kx) = (&mut dst[a - ox0..b - ox0], self.kx);
        let src = &self.plane[iy * w..][..w];
        if sw == 1 {
            dst.copy_from_slice(&src[a + kx - pw..b + kx - pw]);
        } else {
            for (d, ox) in dst.iter_mut().zip(a..b) {
                *d = src[ox * sw + kx - pw];
            }
        }
    }
}

/// Whether [`im2col_sample`] writes the zeros of the padding positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Padding {
    /// Write them: the buffer's contents are arbitrary.
    Write,
    /// Leave them: the buffer holds an earlier column matrix of the same plan.
    Kept,
}

impl Padding {
    /// [`Padding::Write`] for a buffer's first column matrix, [`Padding::Kept`] after.
    fn first(first: bool) -> Self {
        match first {
            true => Padding::Write,
            false => Padding::Kept,
        }
    }
}

/// Scatters one sample's column-matrix gradient (`[c kh kw, oh ow]`) onto its input gradient
/// `dx` (`[c, h, w]`, accumulated into): the adjoint of [`im2col_sample`].
fn col2im_sample(dcols: &[f32], plan: &Plan, dx: &mut [f32]) {
    let [_, _, h, w] = plan.input;
    let [kh, kw] = plan.kernel;
    let [oh, ow] = plan.out;
    let (sw, pw) = (plan.geometry.stride[1], plan.geometry.padding[1]);
    for (row, src_rows) in dcols.chunks_exact(oh * ow).enumerate() {
        let (ci, ky, kx) = (row / (kh * kw), row / kw % kh, row % kw);
        let (lo, hi) = plan.valid_columns(kx);
        let plane = &mut dx[ci * h * w..][..h * w];
        for oy in 0..oh {
            let Some(iy) = plan.source_row(oy, ky) else {
                continue;
            };
            let src = &src_rows[oy * ow..][lo..hi];
            let dst = &mut plane[iy * w..][..w];
            for (s, ox) in src.iter().zip(lo..hi) {
                dst[ox * sw + kx - pw] += s;
            }
        }
    }
}

/// The forward pass: for each sample, its column matrix (`[c kh kw, oh ow]`, built in a buffer
/// each worker reuses) multiplied by the weight into the sample's output, which starts as the
/// bias (`[o]`, or zeros without one). The batch is spread over the worker pool, a sample per
/// task. A batch too small to keep every worker busy spreads each sample instead, in panels of
/// at most [`SPREAD_PANEL`] output positions whose column matrix stays in a core's cache.
/// Either way every output element is the same sum in the same order ([`depth_chunks`]): the
/// same bits for any thread count.
pub(super) fn forward(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<&[f32]>,
    geometry: ConvGeometry,
) -> FlexTensor {
    let [o, _, kh, kw] = dims4(&weight);
    let plan = Plan::new(dims4(&x), [kh, kw], geometry);
    let x = x.to_contiguous();
    let weight = weight.to_contiguous();
    let [oh, ow] = plan.out;
    let (rows, ohw) = (plan.rows(), oh * ow);
    let panels = Panels {
        x: x.storage(),
        weight: weight.storage(),
        plan: &plan,
        channels: o,
    };
    let mut y = vec![0f32; plan.input[0] * o * ohw];
    if o * ohw == 0 {
        return FlexTensor::from_data(TensorData::new(y, [plan.input[0], o, oh, ow]));
    }
    let fill_bias = |block: &mut [f32]| {
        if let Some(bias) = bias {
            fill_rows(block, bias);
        }
    };
    if ohw > SPREAD_PANEL && split_products(plan.input[0], o * ohw * rows) {
        // Few samples: each sample's panels over the pool, each into a block of its own
        // (output columns of different panels interleave in memory), copied in after.
        let count = ohw.div_ceil(SPREAD_PANEL);
        let panel = ohw.div_ceil(count);
        for (bi, out) in y.chunks_exact_mut(o * ohw).enumerate() {
            let blocks: Vec<Vec<f32>> = (0..count)
                .into_par_iter()
                .map_init(
                    || Scratch::take(rows * panel),
                    |scratch, index| {
                        let first = index * panel;
                        let width = panel.min(ohw - first);
                        let mut block = vec![0f32; o * width];
                        fill_bias(&mut block);
                        let cols = &mut scratch.buf[..rows * width];
                        let at = Window {
                            sample: bi,
                            first,
                            stride: width,
                        };
                        panels.product(at, cols, &mut block, SPREAD_CHANNELS, bias.is_some());
                        block
                    },
                )
                .collect();
            for (index, block) in blocks.iter().enumerate() {
                let width = block.len() / o;
                for (dst, src) in out.chunks_exact_mut(ohw).zip(block.chunks_exact(width)) {
                    dst[index * panel..][..width].copy_from_slice(src);
                }
            }
        }
    } else {
        // Enough samples: one sample per task, its whole column matrix in one product.
        for_each_sample(&mut y, o * ohw, rows * ohw, |bi, out, scratch, _| {
            fill_bias(out);
            let at = Window {
                sample: bi,
                first: 0,
                stride: ohw,
            };
            panels.product(at, &mut scratch[..rows * ohw], out, o, bias.is_some());
        });
    }
    FlexTensor::from_data(TensorData::new(y, [plan.input[0], o, oh, ow]))
}

/// One convolution's operands, for [`forward`]'s panel products.
struct Panels<'a> {
    /// The input, contiguous `[b, c, h, w]`.
    x: &'a [f32],
    /// The weight, contiguous `[o, c, kh, kw]`: row-major `[o, c kh kw]`.
    weight: &'a [f32],
    plan: &'a Plan,
    /// Output channels `o`.
    channels: usize,
}

impl Panels<'_> {
    /// Output positions `at.first..at.first + width` of sample `at.sample`: builds their
    /// column matrix in `cols` (`c kh kw x width` floats) and multiplies the weight by it,
    /// `group` output channels per product, into `dst`, a `[o, width]` matrix whose rows are
    /// `at.stride` apart (overwriting, or adding with `accumulate`).
    fn product(
        &self,
        at: Window,
        cols: &mut [f32],
        dst: &mut [f32],
        group: usize,
        accumulate: bool,
    ) {
        let rows = self.plan.rows();
        let width = cols.len() / rows.max(1);
        for (row, dst) in cols.chunks_exact_mut(width).enumerate() {
            im2col_row_window(
                self.x,
                self.plan,
                at.sample,
                row,
                at.first,
                dst,
                Padding::Write,
            );
        }
        let cols = Matrix::row_major(cols, rows, width);
        let weight = Matrix::row_major(self.weight, self.channels, rows);
        for channels in (0..self.channels).step_by(group.max(1)) {
            let count = group.min(self.channels - channels);
            let dst = &mut dst[channels * at.stride..];
            for (index, depth) in depth_chunks(rows).enumerate() {
                let lhs = weight.block(channels..channels + count, depth.clone());
                let rhs = cols.block(depth, 0..width);
                matmul_into_rows(dst, at.stride, lhs, rhs, accumulate || index > 0, false);
            }
        }
    }
}

/// The inner dimension `0..depth` of a product in near-equal chunks of at most
/// [`DEPTH_CHUNK`], each summed by its own gemm call into the destination.
///
/// gemm 0.19 sums the inner dimension in blocks whose size depends on the product's other two
/// dimensions (one rule when both are at most 64, another otherwise) and adds each block's sum
/// to the destination; its blocks never split a dimension of at most 512. Chunking here first
/// fixes every output element's summation order by the depth alone, so [`forward`] can cut a
/// product into panels or channel groups of any shape and still give the same bits.
fn depth_chunks(depth: usize) -> impl Iterator<Item = Range<usize>> {
    let count = depth.div_ceil(DEPTH_CHUNK).max(1);
    let size = depth.div_ceil(count).max(1);
    (0..depth)
        .step_by(size)
        .map(move |start| start..(start + size).min(depth))
}

/// The largest inner dimension of one gemm call in [`Panels::product`]: gemm's smallest
/// inner block (see [`depth_chunks`]).
const DEPTH_CHUNK: usize = 512;

/// Where a [`Panels::product`] goes: sample, first output position, and the distance
/// between its output rows in the destination.
#[derive(Clone, Copy)]
struct Window {
    sample: usize,
    first: usize,
    stride: usize,
}

/// Output positions per panel when [`forward`] spreads one sample over the pool: small
/// enough that a panel of a 64-channel 3x3 convolution (576 rows x 128, 288 KiB) and its
/// weight stay in a core's L2 cache, large enough to amortise gemm's per-call cost; 128 beat
/// 64 and 256 for the GTSRB CNN at batch 1 (session 19). Performance only: any value gives
/// the same bits.
const SPREAD_PANEL: usize = 128;

/// Output channels per product of a spread panel. For the GTSRB CNN at batch 1, 48 gave
/// 1,307 inferences/s against 1,267 for all 64 channels in one product (means of 4 alternating
/// runs each, session 19; within the noise of this 2-core VM, so a weak preference).
/// Performance only: any value gives the same bits.
const SPREAD_CHANNELS: usize = 48;

/// Runs `f(sample, its output block, scratch, first)` over the `block`-sized pieces of `out`:
/// on the worker pool when there are several, on the calling thread when there is one
/// (handing a single sample to the pool costs a wake-up, a large share of a batch-1
/// inference). Each task works in one scratch buffer of `scratch_len` floats, contents
/// arbitrary when `first` (the task's first sample) and as `f` left them after. `block` must
/// be positive.
fn for_each_sample<F>(out: &mut [f32], block: usize, scratch_len: usize, f: F)
where
    F: Fn(usize, &mut [f32], &mut [f32], bool) + Sync,
{
    let run = |scratch: &mut Scratch, (bi, out): (usize, &mut [f32])| {
        let first = std::mem::replace(&mut scratch.fresh, false);
        f(bi, out, &mut scratch.buf[..scratch_len], first);
    };
    if out.len() <= block {
        let mut scratch = Scratch::take(scratch_len);
        out.chunks_mut(block)
            .enumerate()
            .for_each(|item| run(&mut scratch, item));
    } else {
        out.par_chunks_mut(block)
            .enumerate()
            .for_each_init(|| Scratch::take(scratch_len), run);
    }
}

thread_local! {
    /// This thread's column-matrix buffer, kept from call to call (no allocation, zeroing or
    /// fresh pages per product).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// This thread's scratch buffer, taken for one task and given back when dropped. Re-entrant:
/// a nested task on the same thread (work stolen while a split product waits) takes an empty
/// buffer and allocates its own.
struct Scratch {
    /// At least the requested length; contents arbitrary.
    buf: Vec<f32>,
    /// No sample has used the buffer yet in this task.
    fresh: bool,
}

impl Scratch {
    fn take(len: usize) -> Self {
        let mut buf = SCRATCH.with(|s| s.take());
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        Scratch { buf, fresh: true }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        SCRATCH.with(|s| s.replace(buf));
    }
}

/// Multiply-adds above which one product is split over the pool when the batch alone cannot
/// keep every worker busy (burn-flex's threshold for its own products).
const PARALLEL_PRODUCT: usize = 192 * 192 * 192;

/// Whether each of `tasks` products of `multiply_adds` is split over the pool: only when the
/// tasks alone cannot keep every worker busy and a product is large enough to share.
fn split_products(tasks: usize, multiply_adds: usize) -> bool {
    tasks < rayon::current_num_threads() && multiply_adds >= PARALLEL_PRODUCT
}

impl GemmConv for Flex {
    fn conv2d_gemm(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
    ) -> FlexTensor {
        let geometry = ConvGeometry {
            stride: [stride_h, stride_w],
            padding: [pad_h, pad_w],
        };
        let bias = bias.to_contiguous();
        forward(x, weight, Some(bias.storage()), geometry)
    }
}

impl GemmConvKernels for Flex {
    fn conv2d_gemm_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        geometry: ConvGeometry,
        want: [bool; 3],
    ) -> [Option<FlexTensor>; 3] {
        let [o, _, kh, kw] = dims4(&weight);
        let plan = Plan::new(dims4(&x), [kh, kw], geometry);
        let dy = grad.to_contiguous();
        let dx = want[0].then(|| input_grad(&weight, &dy, None, &plan));
        let dw = want[1].then(|| weight_grad(&x, &dy, &plan, dims4(&weight)));
        let db = want[2].then(|| bias_grad(&dy, o));
        [dx, dw, db]
    }
}

/// The input gradient. With stride 1 and padding below the kernel size it is the forward
/// convolution of `dY` with the kernel rotated by 180 degrees and its two channel axes swapped,
/// padded by `k - 1 - p` (the GEMM then has the long `o kh kw` inner dimension); otherwise
/// `Wᵀ · dY` per sample, scattered back by col2im. With `bias` (`[c]`, the transposed
/// convolution's), the result starts from it.
pub(super) fn input_grad(
    weight: &FlexTensor,
    dy: &FlexTensor,
    bias: Option<&[f32]>,
    plan: &Plan,
) -> FlexTensor {
    let [o, c, kh, kw] = dims4(weight);
    let [ph, pw] = plan.geometry.padding;
    if plan.geometry.stride == [1, 1] && ph < kh && pw < kw {
        let rotated = rotate_kernel(weight);
        let geometry = ConvGeometry {
            stride: [1, 1],
            padding: [kh - 1 - ph, kw - 1 - pw],
        };
        return forward(dy.clone(), rotated, bias, geometry);
    }
    let [b, _, h, w] = plan.input;
    let (rows, ohw) = (plan.rows(), plan.out[0] * plan.out[1]);
    let weight = weight.to_contiguous();
    let wt = Matrix::row_major(weight.storage(), o, rows).transposed();
    let dy = dy.to_contiguous();
    let dys: &[f32] = dy.storage();
    let mut dx = vec![0f32; b * c * h * w];
    let split = split_products(b, rows * ohw * o);
    if c * h * w > 0 && o * ohw > 0 {
        for_each_sample(&mut dx, c * h * w, rows * ohw, |bi, dx, dcols, _| {
            if let Some(bias) = bias {
                fill_rows(dx, bias);
            }
            let dy_n = Matrix::row_major(&dys[bi * o * ohw..], o, ohw);
            matmul_into(dcols, wt, dy_n, false, split);
            col2im_sample(dcols, plan, dx);
        });
    }
    FlexTensor::from_data(TensorData::new(dx, plan.input))
}

/// Fills a sample's `[channels, plane]` block (contiguous) with `values[channel]` per row.
fn fill_rows(block: &mut [f32], values: &[f32]) {
    if values.is_empty() {
        return;
    }
    let plane = block.len() / values.len();
    for (row, &v) in block.chunks_exact_mut(plane.max(1)).zip(values) {
        row.fill(v);
    }
}

/// The bias gradient: `dY` (contiguous `[b, o, oh, ow]`) summed over samples and positions,
/// per sample in order (the same bits for any thread count).
pub(super) fn bias_grad(dy: &FlexTensor, o: usize) -> FlexTensor {
    let dy = dy.to_contiguous();
    let dys: &[f32] = dy.storage();
    let per_sample = dys.len() / dims4(&dy)[0].max(1);
    let plane = per_sample / o.max(1);
    let sums: Vec<Vec<f32>> = dys
        .par_chunks(per_sample.max(1))
        .with_min_len(2)
        .map(|sample| sample.chunks_exact(plane.max(1)).map(row_sum).collect())
        .collect();
    let mut db = vec![0f32; o];
    for sample in sums {
        db.iter_mut().zip(&sample).for_each(|(d, s)| *d += s);
    }
    FlexTensor::from_data(TensorData::new(db, [o]))
}

/// The sum of `row` over 16 interleaved partial sums (vectorised; a fixed order, so the same
/// bits every time).
fn row_sum(row: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = row.chunks_exact(16);
    for chunk in &mut chunks {
        lanes.iter_mut().zip(chunk).for_each(|(l, v)| *l += v);
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// The kernel rotated by 180 degrees with its two channel axes swapped: `[o, c, kh, kw]` to
/// `[c, o, kh, kw]`, `r[ci][oi][ky][kx] = w[oi][ci][kh - 1 - ky][kw - 1 - kx]`.
fn rotate_kernel(weight: &FlexTensor) -> FlexTensor {
    let [o, c, kh, kw] = dims4(weight);
    let weight = weight.to_contiguous();
    let w: &[f32] = weight.storage();
    let k = kh * kw;
    let mut rotated = vec![0f32; w.len()];
    for (ci, block) in rotated.chunks_exact_mut(o * k).enumerate() {
        for (oi, dst) in block.chunks_exact_mut(k).enumerate() {
            let src = &w[(oi * c + ci) * k..][..k];
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        }
    }
    FlexTensor::from_data(TensorData::new(rotated, [c, o, kh, kw]))
}

/// Samples per partial sum of the weight gradient.
const SAMPLES_PER_PARTIAL: usize = 8;

/// The weight gradient, summed over samples: per sample `cols · dY_nᵀ` (`[c kh kw, o]`: the
/// column matrix as the row-major left operand packs faster than its transposed view)
/// accumulated in place, one transpose at the end.
pub(super) fn weight_grad(
    x: &FlexTensor,
    dy: &FlexTensor,
    plan: &Plan,
    dims: [usize; 4],
) -> FlexTensor {
    let [o, ..] = dims;
    let [b, ..] = plan.input;
    let (rows, ohw) = (plan.rows(), plan.out[0] * plan.out[1]);
    let x = x.to_contiguous();
    let xs: &[f32] = x.storage();
    let dy = dy.to_contiguous();
    let dys: &[f32] = dy.storage();
    let groups = b.div_ceil(SAMPLES_PER_PARTIAL);
    let split = split_products(groups, rows * ohw * o);
    // Fixed groups of samples, summed in group order: the same bits for any thread count and
    // any scheduling (a rayon fold/reduce would sum in whatever order the work was stolen).
    let partials: Vec<Vec<f32>> = (0..groups)
        .into_par_iter()
        .map(|g| {
            let mut acc = vec![0f32; rows * o];
            let first = g * SAMPLES_PER_PARTIAL;
            let mut scratch = Scratch::take(rows * ohw);
            let cols = &mut scratch.buf[..rows * ohw];
            for bi in first..b.min(first + SAMPLES_PER_PARTIAL) {
                im2col_sample(xs, plan, bi, cols, Padding::first(bi == first), split);
                let dy_t = Matrix::row_major(&dys[bi * o * ohw..], o, ohw).transposed();
                let cols = Matrix::row_major(cols, rows, ohw);
                // The first sample overwrites `acc`, the others add to it.
                matmul_into(&mut acc, cols, dy_t, bi > first, split);
            }
            acc
        })
        .collect();
    let dw_t = partials
        .into_iter()
        .reduce(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
            a
        })
        .unwrap_or_else(|| vec![0f32; rows * o]);
    FlexTensor::from_data(TensorData::new(dw_t, [rows, o]))
        .transpose(0, 1)
        .to_contiguous()
        .reshape(Shape::new(dims))
}

/// The backward step of [`GemmConv`] in burn's autodiff graph.
#[derive(Debug)]
struct GemmConvBackward;

impl<B: GemmConvKernels> Backward<B, 3> for GemmConvBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, ConvGeometry);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, w_node, b_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, geometry) = ops.state;
        let want = [x_node.is_some(), w_node.is_some(), b_node.is_some()];
        let [dx, dw, db] = B::conv2d_gemm_backward(x, weight, grad, geometry, want);
        for (node, grad) in [(x_node, dx), (w_node, dw), (b_node, db)] {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: GemmConv + GemmConvKernels, C: CheckpointStrategy> GemmConv for Autodiff<B, C> {
    fn conv2d_gemm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
    ) -> FloatTensor<Self> {
        let prep = GemmConvBackward.prepare::<C>([x.node(), weight.node(), bias.node()]);
        let x = <Self as AutodiffBackend>::inner(x);
        let weight = <Self as AutodiffBackend>::inner(weight);
        let bias = <Self as AutodiffBackend>::inner(bias);
        let run = |x, weight| B::conv2d_gemm(x, weight, bias, stride_h, stride_w, pad_h, pad_w);
        match prep.compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let geometry = ConvGeometry {
                    stride: [stride_h, stride_w],
                    padding: [pad_h, pad_w],
                };
                let y = run(x.clone(), weight.clone());
                prep.finish((x, weight, geometry), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(run(x, weight)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use proptest::prelude::*;

    /// A tensor of small integers cycled from `values`: every product and sum in a convolution
    /// of such tensors is an exact f32 integer, so any summation order gives the same bits.
    fn ints<const D: usize>(dims: [usize; D], values: &[i8], device: &Device) -> Tensor<D> {
        let n: usize = dims.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|i| f32::from(values[i % values.len()]))
            .collect();
        Tensor::from_data(TensorData::new(data, dims), device)
    }

    type Run = [Vec<f32>; 4];

    /// Output, input gradient, weight gradient and bias gradient, under an integer upstream
    /// gradient, of veil's kernel (`ours`) or burn's `conv2d`.
    fn run(ours: bool, input: [usize; 4], weight: [usize; 4], g: ConvGeometry, v: &[i8]) -> Run {
        let device = crate::device().autodiff();
        let x = ints(input, v, &device).require_grad();
        let w = ints(weight, &v[1..], &device).require_grad();
        let bias = ints([weight[0]], &v[2..], &device).require_grad();
        let y = if ours {
            conv2d_gemm(x.clone(), w.clone(), Some(bias.clone()), g)
        } else {
            let options = ConvOptions::new(g.stride, g.padding, [1, 1], 1);
            conv2d(x.clone(), w.clone(), Some(bias.clone()), options)
        };
        let upstream = ints(y.dims(), &v[3..], &device);
        let grads = (y.clone() * upstream).sum().backward();
        let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().expect("f32");
        [
            values(y),
            values(x.grad(&grads).expect("x is used")),
            values(w.grad(&grads).expect("w is used")),
            bias.grad(&grads)
                .expect("bias is used")
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32"),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Output and all three gradients equal burn's conv2d bit for bit (integer data), over
        /// strides, paddings, rectangular kernels (some wider than the padded input's rows
        /// reach) and odd sizes.
        #[test]
        fn matches_burn_conv2d_values_and_gradients(
            b in 1usize..3, c in 1usize..4, o in 1usize..4, h in 1usize..9, w in 1usize..9,
            kh in 1usize..8, kw in 1usize..8, sh in 1usize..3, sw in 1usize..4,
            ph in 0usize..4, pw in 0usize..4,
            values in proptest::collection::vec(-3i8..4, 4..40),
        ) {
            prop_assume!(h + 2 * ph >= kh && w + 2 * pw >= kw);
            let g = ConvGeometry { stride: [sh, sw], padding: [ph, pw] };
            let ours = run(true, [b, c, h, w], [o, c, kh, kw], g, &values);
            let theirs = run(false, [b, c, h, w], [o, c, kh, kw], g, &values);
            prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn matches_burn_conv2d_over_several_panels_and_channel_groups() {
        // 70 output channels (two products per panel); 15 x 15 = 225 output positions (two
        // panels) for one sample whose products are large enough to spread its panels over a
        // pool of several workers, and 11 x 9 = 99 for three samples spread over the pool; the
        // stride-1 input gradient goes through the same panels.
        let g = ConvGeometry {
            stride: [1, 1],
            padding: [1, 1],
        };
        let values = [1, -2, 3, 0, -1, 2, 1, -3, 2];
        for (input, c) in [([1, 64, 15, 15], 64), ([3, 5, 11, 9], 5)] {
            let ours = run(true, input, [70, c, 3, 3], g, &values);
            let theirs = run(false, input, [70, c, 3, 3], g, &values);
            assert_eq!(ours, theirs, "input {input:?}");
        }
    }

    /// Output, input gradient and weight gradient of a convolution (`[b, c, h, w]` input, `o`
    /// kernels of 3x3, padding 1) on fixed pseudo-random reals, computed in a pool of
    /// `threads` workers.
    fn gradients_with(threads: usize, [b, c, h, w, o]: [usize; 5]) -> [Vec<f32>; 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        pool.install(|| {
            let device = crate::device().autodiff();
            let g = ConvGeometry {
                stride: [1, 1],
                padding: [1, 1],
            };
            // Not small integers, whose sums are exact in any order.
            let reals = |n: usize, seed: f32| -> Vec<f32> {
                (0..n).map(|i| (i as f32 * 0.7311 + seed).sin()).collect()
            };
            let x = TensorData::new(reals(b * c * h * w, 0.1), [b, c, h, w]);
            let x = Tensor::<4>::from_data(x, &device).require_grad();
            let w = TensorData::new(reals(o * c * 9, 0.7), [o, c, 3, 3]);
            let w = Tensor::<4>::from_data(w, &device).require_grad();
            let y = conv2d_gemm(x.clone(), w.clone(), None, g);
            let grads = (y.clone() * y.clone()).sum().backward();
            let values = |d: TensorData| d.try_to_vec::<f32>().expect("f32");
            [
                values(y.into_data()),
                values(x.grad(&grads).expect("x is used").into_data()),
                values(w.grad(&grads).expect("w is used").into_data()),
            ]
        })
    }

    #[test]
    fn gradients_have_the_same_bits_for_any_thread_count() {
        // A batch: samples and groups of samples spread over the workers.
        let one = gradients_with(1, [37, 3, 9, 9, 5]);
        assert_eq!(one, gradients_with(2, [37, 3, 9, 9, 5]));
        assert_eq!(one, gradients_with(3, [37, 3, 9, 9, 5]));
        // One sample, products above PARALLEL_PRODUCT: the forward pass in panels over the
        // workers, the gradients' products split by gemm (which divides the output, never the
        // inner dimension). An inner dimension above 512 (576, 1170) makes the panels' shape
        // matter to gemm's own blocking (see depth_chunks); 70 channels make a second channel
        // group; 13 x 13 = 169 positions make two uneven panels; 3 x 43 = 129 positions make
        // panels of 65 and 64, whose products gemm would block differently without
        // depth_chunks.
        for shape in [
            [1, 64, 24, 24, 64],
            [1, 130, 13, 13, 70],
            [1, 130, 3, 43, 64],
        ] {
            let one = gradients_with(1, shape);
            assert_eq!(one, gradients_with(2, shape), "{shape:?}");
            assert_eq!(one, gradients_with(3, shape), "{shape:?}");
        }
    }

    #[test]
    fn weight_only_gradient_when_the_input_is_data() {
        // The first layer of a training step: the input does not require a gradient.
        let device = crate::device().autodiff();
        let g = ConvGeometry {
            stride: [1, 1],
            padding: [1, 1],
        };
        let x = ints([2, 1, 6, 6], &[1, -2, 3], &device);
        let w = ints([3, 1, 3, 3], &[2, 0, -1, 1], &device).require_grad();
        let ours = conv2d_gemm(x.clone(), w.clone(), None, g).sum().backward();
        let options = ConvOptions::new(g.stride, g.padding, [1, 1], 1);
        let theirs = conv2d(x, w.clone(), None, options).sum().backward();
        let grad = |grads| w.grad(grads).expect("w is used").into_data();
        assert_eq!(grad(&ours), grad(&theirs));
    }
}
