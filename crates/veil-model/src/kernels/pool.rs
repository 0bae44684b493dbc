//! Tiled max pooling: windows of `kh x kw` with stride equal to the kernel, no padding.
//!
//! Contract: for an input `[b, c, h, w]`, the output is `[b, c, h / kh, w / kw]` (floor: the
//! last `h % kh` rows and `w % kw` columns are dropped, as burn's and PyTorch's pooling do);
//! each output is the window's maximum, NaN if the window holds a NaN (PyTorch's rule). The
//! gradient flows to the first position holding the maximum (to the last NaN when there is
//! one), exactly as burn-flex's general pooling routes it.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, AutodiffBackend, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// Max pooling over tiling windows, as a burn backend extension.
#[backend_extension(Flex, Autodiff)]
pub trait TiledMaxPool: Backend {
    /// Pools `x` (`[b, c, h, w]`) over `kh x kw` windows with stride `kh x kw`.
    fn max_pool2d_tiled(x: FloatTensor<Self>, kh: usize, kw: usize) -> FloatTensor<Self>;
}

/// The forward pass that remembers where each maximum was, and its backward pass: what the
/// autodiff implementation of [`TiledMaxPool`] needs from the backend below it.
pub trait TiledMaxPoolKernels: Backend {
    /// The pooled output and, per output, the index of its maximum within the input plane.
    fn max_pool2d_tiled_with_argmax(
        x: FloatTensor<Self>,
        kh: usize,
        kw: usize,
    ) -> (FloatTensor<Self>, IntTensor<Self>);

    /// The gradient with respect to the input (`input_dims`), from the output gradient and the
    /// argmax of [`TiledMaxPoolKernels::max_pool2d_tiled_with_argmax`].
    fn max_pool2d_tiled_backward(
        grad: FloatTensor<Self>,
        argmax: IntTensor<Self>,
        input_dims: [usize; 4],
    ) -> FloatTensor<Self>;
}

/// Max pooling over tiling `kernel` windows (stride = kernel, no padding): veil's kernel on a
/// flex device, burn's `max_pool2d` elsewhere. Same values and gradients either way.
pub fn max_pool2d_tiled(x: Tensor<4>, kernel: [usize; 2]) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    // Argmax indices are i32 positions within one plane.
    let fits = kernel[0] >= 1
        && kernel[1] >= 1
        && h >= kernel[0]
        && w >= kernel[1]
        && h * w <= i32::MAX as usize;
    if super::on_flex(&x) && fits && x.dtype() == DType::F32 {
        Tensor::from_dispatch(Dispatch::max_pool2d_tiled(
            x.into_dispatch(),
            kernel[0],
            kernel[1],
        ))
    } else {
        max_pool2d(x, MaxPoolOptions::new(kernel))
    }
}

/// Input dims of a 4-d flex tensor.
fn dims4(x: &FlexTensor) -> [usize; 4] {
    let shape = x.shape();
    [shape[0], shape[1], shape[2], shape[3]]
}

/// The pooling loop over one plane: fills `out` (and `arg`, window maxima as plane indices,
/// when given).
fn pool_plane(
    plane: &[f32],
    w: usize,
    kh: usize,
    kw: usize,
    out: &mut [f32],
    mut arg: Option<&mut [i32]>,
) {
    let ow = w / kw;
    if kh == 2 && kw == 2 {
        return pool_plane_2x2(plane, w, out, arg);
    }
    for (oy, out_row) in out.chunks_exact_mut(ow).enumerate() {
        let top = oy * kh * w;
        for (ox, value) in out_row.iter_mut().enumerate() {
            let first = top + ox * kw;
            let mut best = plane[first];
            let mut best_at = first;
            for dy in 0..kh {
                let row = first + dy * w;
                for (at, &v) in (row..row + kw).zip(&plane[row..row + kw]) {
                    // NaN always wins (PyTorch's rule); the last NaN is the one reported.
                    if v > best || v.is_nan() {
                        best = v;
                        best_at = at;
                    }
                }
            }
            *value = best;
            if let Some(arg) = arg.as_deref_mut() {
                arg[oy * ow + ox] = best_at as i32;
            }
        }
    }
}

/// [`pool_plane`] for 2x2 windows: the four candidates in window order, so that the same
/// position wins as in the general loop.
fn pool_plane_2x2(plane: &[f32], w: usize, out: &mut [f32], mut arg: Option<&mut [i32]>) {
    let ow = w / 2;
    let pick = |best: (f32, usize), next: (f32, usize)| {
        if next.0 > best.0 || next.0.is_nan() {
            next
        } else {
            best
        }
    };
    for (oy, out_row) in out.chunks_exact_mut(ow).enumerate() {
        let (top, bottom) = (2 * oy * w, (2 * oy + 1) * w);
        let (r0, r1) = (&plane[top..][..w], &plane[bottom..][..w]);
        for (ox, value) in out_row.iter_mut().enumerate() {
            let x = 2 * ox;
            let mut best = (r0[x], top + x);
            best = pick(best, (r0[x + 1], top + x + 1));
            best = pick(best, (r1[x], bottom + x));
            best = pick(best, (r1[x + 1], bottom + x + 1));
            *value = best.0;
            if let Some(arg) = arg.as_deref_mut() {
                arg[oy * ow + ox] = best.1 as i32;
            }
        }
    }
}

/// Runs the pooling over every plane of a contiguous f32 input, in parallel.
fn pool_forward(
    x: &FlexTensor,
    kh: usize,
    kw: usize,
    with_argmax: bool,
) -> (FlexTensor, Option<FlexTensor>) {
    let [b, c, h, w] = dims4(x);
    let (oh, ow) = (h / kh, w / kw);
    let x = x.to_contiguous();
    let input: &[f32] = x.storage();
    let plane_in = h * w;
    let plane_out = oh * ow;
    let mut out = vec![0f32; b * c * plane_out];
    let mut arg = if with_argmax {
        vec![0i32; b * c * plane_out]
    } else {
        Vec::new()
    };
    if plane_out > 0 {
        if with_argmax {
            out.par_chunks_mut(plane_out)
                .zip(arg.par_chunks_mut(plane_out))
                .zip(input.par_chunks(plane_in))
                .for_each(|((o, a), p)| pool_plane(p, w, kh, kw, o, Some(a)));
        } else {
            out.par_chunks_mut(plane_out)
                .zip(input.par_chunks(plane_in))
                .for_each(|(o, p)| pool_plane(p, w, kh, kw, o, None));
        }
    }
    let out = FlexTensor::from_data(TensorData::new(out, [b, c, oh, ow]));
    let arg = with_argmax.then(|| FlexTensor::from_data(TensorData::new(arg, [b, c, oh, ow])));
    (out, arg)
}

impl TiledMaxPool for Flex {
    fn max_pool2d_tiled(x: FlexTensor, kh: usize, kw: usize) -> FlexTensor {
        pool_forward(&x, kh, kw, false).0
    }
}

impl TiledMaxPoolKernels for Flex {
    fn max_pool2d_tiled_with_argmax(
        x: FlexTensor,
        kh: usize,
        kw: usize,
    ) -> (FlexTensor, FlexTensor) {
        let (out, arg) = pool_forward(&x, kh, kw, true);
        (
            out,
            arg.unwrap_or_else(|| FlexTensor::from_data(TensorData::new(Vec::<i32>::new(), [0]))),
        )
    }

    fn max_pool2d_tiled_backward(
        grad: FlexTensor,
        argmax: FlexTensor,
        input_dims: [usize; 4],
    ) -> FlexTensor {
        let [b, c, h, w] = input_dims;
        let grad = grad.to_contiguous();
        let argmax = argmax.to_contiguous();
        let g: &[f32] = grad.storage();
        let a: &[i32] = argmax.storage();
        let plane_in = h * w;
        let plane_out = g.len().checked_div(b * c).unwrap_or(0);
        let mut dx = vec![0f32; b * c * plane_in];
        if plane_out > 0 && plane_in > 0 {
            dx.par_chunks_mut(plane_in)
                .zip(g.par_chunks(plane_out).zip(a.par_chunks(plane_out)))
                .for_each(|(d, (g, a))| {
                    for (gv, &at) in g.iter().zip(a) {
                        d[at as usize] += gv;
                    }
                });
        }
        FlexTensor::from_data(TensorData::new(dx, [b, c, h, w]))
    }
}

/// The backward step of tiled max pooling in burn's autodiff graph.
#[derive(Debug)]
struct TiledMaxPoolBackward;

impl<B: TiledMaxPoolKernels> Backward<B, 1> for TiledMaxPoolBackward {
    type State = (IntTensor<B>, [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = parent {
            let (argmax, dims) = ops.state;
            grads.register::<B>(node.id, B::max_pool2d_tiled_backward(grad, argmax, dims));
        }
    }
}

impl<B: TiledMaxPool + TiledMaxPoolKernels, C: CheckpointStrategy> TiledMaxPool for Autodiff<B, C> {
    fn max_pool2d_tiled(x: FloatTensor<Self>, kh: usize, kw: usize) -> FloatTensor<Self> {
        match TiledMaxPoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let inner = <Self as AutodiffBackend>::inner(x);
                let s = inner.shape();
                let dims = [s[0], s[1], s[2], s[3]];
                let (out, argmax) = B::max_pool2d_tiled_with_argmax(inner, kh, kw);
                prep.finish((argmax, dims), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::max_pool2d_tiled(
                <Self as AutodiffBackend>::inner(x),
                kh,
                kw,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use proptest::prelude::*;

    fn device() -> Device {
        crate::device()
    }

    /// Input values from a small integer range, so windows often hold ties (as after ReLU).
    fn input(dims: [usize; 4], values: &[i8], device: &Device) -> Tensor<4> {
        let n: usize = dims.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|i| f32::from(values[i % values.len()]))
            .collect();
        Tensor::from_data(TensorData::new(data, dims), device)
    }

    fn reference(x: Tensor<4>, kernel: [usize; 2]) -> Tensor<4> {
        max_pool2d(x, MaxPoolOptions::new(kernel))
    }

    /// Forward values and input gradients (under a random upstream gradient) of veil's kernel
    /// and of burn's pooling.
    fn both(dims: [usize; 4], kernel: [usize; 2], values: &[i8], up: &[i8]) -> [Vec<f32>; 4] {
        let device = device().autodiff();
        let mut results = Vec::new();
        for ours in [true, false] {
            let x = input(dims, values, &device).require_grad();
            let y = if ours {
                max_pool2d_tiled(x.clone(), kernel)
            } else {
                reference(x.clone(), kernel)
            };
            let upstream = input(y.dims(), up, &device);
            let grads = (y.clone() * upstream).sum().backward();
            let dx = x.grad(&grads).expect("x takes part in the loss");
            results.push(y.into_data().try_to_vec::<f32>().expect("f32"));
            results.push(dx.into_data().try_to_vec::<f32>().expect("f32"));
        }
        let [a, b, c, d]: [Vec<f32>; 4] = results.try_into().expect("four results");
        [a, b, c, d]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Same values and same gradients as burn's max_pool2d, ties included (the gradient goes
        /// to the first maximum), odd sizes included (trailing rows and columns dropped).
        #[test]
        fn matches_burn_pooling_values_and_gradients(
            b in 1usize..3, c in 1usize..4, h in 1usize..12, w in 1usize..12,
            kh in 1usize..4, kw in 1usize..4,
            values in proptest::collection::vec(-3i8..4, 1..40),
            up in proptest::collection::vec(-5i8..6, 1..17),
        ) {
            prop_assume!(h >= kh && w >= kw);
            let [y, dx, y_ref, dx_ref] = both([b, c, h, w], [kh, kw], &values, &up);
            prop_assert_eq!(y, y_ref);
            prop_assert_eq!(dx, dx_ref);
        }
    }

    #[test]
    fn nan_wins_its_window_as_in_burn() {
        let device = device();
        let mut data = vec![1.0f32; 16];
        data[5] = f32::NAN;
        let x = Tensor::<4>::from_data(TensorData::new(data, [1, 1, 4, 4]), &device);
        let ours = max_pool2d_tiled(x.clone(), [2, 2])
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let theirs = reference(x, [2, 2])
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(ours[0].is_nan() && theirs[0].is_nan());
        assert_eq!(ours[1..], theirs[1..]);
    }

    #[test]
    fn strided_input_is_read_in_logical_order() {
        let device = device();
        let x = Tensor::<4>::random([2, 3, 6, 4], burn::tensor::Distribution::Default, &device);
        let permuted = x.swap_dims(2, 3);
        let ours = max_pool2d_tiled(permuted.clone(), [2, 2]).into_data();
        let theirs = reference(permuted, [2, 2]).into_data();
        assert_eq!(
            ours.try_to_vec::<f32>().unwrap(),
            theirs.try_to_vec::<f32>().unwrap()
        );
    }
}
