//! Transposed convolution through the convolution kernels of [`super::conv`]: a transposed
//! convolution is the adjoint of a convolution, so its three products are the three products
//! of that convolution in another order.
//!
//! Contract: for `x` `[b, ci, h, w]` and `weight` `[ci, co, kh, kw]` (burn's and PyTorch's
//! layout, groups 1, dilation 1), the output is `[b, co, oh, ow]` with
//! `oh = (h - 1) sh - 2 ph + kh + oph` (likewise `ow`; `oph < sh`), the values of burn's
//! `conv_transpose2d` up to float summation order. With the *virtual convolution* `V` from
//! `[b, co, oh, ow]` to `[b, ci, h, w]` by `weight` read as `[o = ci, c = co, kh, kw]` (same
//! stride and padding): `y = Vᵀ x` (V's input gradient), `dx = V dY` (V's forward pass) and
//! `dW` is V's weight gradient with input `dY` and output gradient `x`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::module::conv_transpose2d;
use burn::tensor::ops::ConvTransposeOptions;
use burn::tensor::{DType, Tensor};

use super::conv::{ConvGeometry, Plan, bias_grad, dims4, forward, input_grad, weight_grad};

/// Transposed convolution through GEMMs, as a burn backend extension.
#[backend_extension(Flex, Autodiff)]
pub trait GemmConvTranspose: Backend {
    /// Transposed convolution of `x` (`[b, ci, h, w]`) by `weight` (`[ci, co, kh, kw]`) plus
    /// `bias` (`[co]`) on every output map; `out_pad_*` extra rows/columns at the
    /// bottom/right.
    #[allow(clippy::too_many_arguments)]
    fn conv_transpose2d_gemm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
        out_pad_h: usize,
        out_pad_w: usize,
    ) -> FloatTensor<Self>;
}

/// The backward pass the autodiff implementation of [`GemmConvTranspose`] needs.
pub trait GemmConvTransposeKernels: Backend {
    /// Gradients with respect to the input, the weight and the bias (each only when asked
    /// for).
    fn conv_transpose2d_gemm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        geometry: ConvGeometry,
        want: [bool; 3],
    ) -> [Option<FloatTensor<Self>>; 3];
}

/// `conv_transpose2d` (groups 1, dilation 1) plus an optional bias: veil's kernel on a flex
/// device, burn's `conv_transpose2d` elsewhere.
pub fn conv_transpose2d_gemm(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    geometry: ConvGeometry,
    out_padding: [usize; 2],
) -> Tensor<4> {
    let [_, ci, h, w] = x.dims();
    let [wi, co, kh, kw] = weight.dims();
    let [sh, sw] = geometry.stride;
    let [ph, pw] = geometry.padding;
    let fits = ci == wi
        && ci >= 1
        && super::bias_fits(bias.as_ref(), co)
        && kh >= 1
        && kw >= 1
        && h >= 1
        && w >= 1
        && sh >= 1
        && sw >= 1
        && out_padding[0] < sh
        && out_padding[1] < sw
        && (h - 1) * sh + kh + out_padding[0] > 2 * ph
        && (w - 1) * sw + kw + out_padding[1] > 2 * pw;
    let f32s = x.dtype() == DType::F32 && weight.dtype() == DType::F32;
    if !(super::on_flex(&x) && fits && f32s) {
        let options =
            ConvTransposeOptions::new(geometry.stride, geometry.padding, out_padding, [1, 1], 1);
        return conv_transpose2d(x, weight, bias, options);
    }
    // The bias is the output's starting value inside the kernel; without one, a constant zero
    // bias, which asks for no gradient.
    let bias = bias.unwrap_or_else(|| Tensor::zeros([co], &x.device()));
    Tensor::<4>::from_dispatch(Dispatch::conv_transpose2d_gemm(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        sh,
        sw,
        ph,
        pw,
        out_padding[0],
        out_padding[1],
    ))
}

/// The virtual convolution's plan: its input is the transposed convolution's output.
fn virtual_plan(x: [usize; 4], weight: [usize; 4], g: ConvGeometry, out_pad: [usize; 2]) -> Plan {
    let [b, _, h, w] = x;
    let [_, co, kh, kw] = weight;
    let oh = (h - 1) * g.stride[0] + kh + out_pad[0] - 2 * g.padding[0];
    let ow = (w - 1) * g.stride[1] + kw + out_pad[1] - 2 * g.padding[1];
    Plan::new([b, co, oh, ow], [kh, kw], g)
}

impl GemmConvTranspose for Flex {
    fn conv_transpose2d_gemm(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
        out_pad_h: usize,
        out_pad_w: usize,
    ) -> FlexTensor {
        let geometry = ConvGeometry {
            stride: [stride_h, stride_w],
            padding: [pad_h, pad_w],
        };
        let out_pad = [out_pad_h, out_pad_w];
        let plan = virtual_plan(dims4(&x), dims4(&weight), geometry, out_pad);
        let bias = bias.to_contiguous();
        input_grad(&weight, &x.to_contiguous(), Some(bias.storage()), &plan)
    }
}

impl GemmConvTransposeKernels for Flex {
    fn conv_transpose2d_gemm_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        geometry: ConvGeometry,
        want: [bool; 3],
    ) -> [Option<FlexTensor>; 3] {
        let grad = grad.to_contiguous();
        let dx = want[0].then(|| forward(grad.clone(), weight.clone(), None, geometry));
        let dw = want[1].then(|| {
            let [_, _, kh, kw] = dims4(&weight);
            let plan = Plan::new(dims4(&grad), [kh, kw], geometry);
            weight_grad(&grad, &x.to_contiguous(), &plan, dims4(&weight))
        });
        let db = want[2].then(|| bias_grad(&grad, dims4(&weight)[1]));
        [dx, dw, db]
    }
}

/// The backward step of [`GemmConvTranspose`] in burn's autodiff graph.
#[derive(Debug)]
struct GemmConvTransposeBackward;

impl<B: GemmConvTransposeKernels> Backward<B, 3> for GemmConvTransposeBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, ConvGeometry);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, w_node, b_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, geometry) = ops.state;
        let want = [x_node.is_some(), w_node.is_some(), b_node.is_some()];
        let [dx, dw, db] = B::conv_transpose2d_gemm_backward(x, weight, grad, geometry, want);
        for (node, grad) in [(x_node, dx), (w_node, dw), (b_node, db)] {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B, C> GemmConvTranspose for Autodiff<B, C>
where
    B: GemmConvTranspose + GemmConvTransposeKernels,
    C: CheckpointStrategy,
{
    fn conv_transpose2d_gemm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
        out_pad_h: usize,
        out_pad_w: usize,
    ) -> FloatTensor<Self> {
        let prep = GemmConvTransposeBackward.prepare::<C>([x.node(), weight.node(), bias.node()]);
        let x = <Self as AutodiffBackend>::inner(x);
        let weight = <Self as AutodiffBackend>::inner(weight);
        let bias = <Self as AutodiffBackend>::inner(bias);
        let args = (stride_h, stride_w, pad_h, pad_w, out_pad_h, out_pad_w);
        let run = |x, weight| {
            let (sh, sw, ph, pw, oph, opw) = args;
            B::conv_transpose2d_gemm(x, weight, bias, sh, sw, ph, pw, oph, opw)
        };
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
    use burn::tensor::{Device, TensorData};
    use proptest::prelude::*;

    /// Small integers cycled from `values` (exact f32 sums in any order).
    fn ints<const D: usize>(dims: [usize; D], values: &[i8], device: &Device) -> Tensor<D> {
        let n: usize = dims.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|i| f32::from(values[i % values.len()]))
            .collect();
        Tensor::from_data(TensorData::new(data, dims), device)
    }

    /// Output and the input, weight and bias gradients under an integer upstream gradient.
    fn run(
        ours: bool,
        x: [usize; 4],
        weight: [usize; 4],
        g: ConvGeometry,
        out_pad: [usize; 2],
        v: &[i8],
    ) -> [Vec<f32>; 4] {
        let device = crate::device().autodiff();
        let xt = ints(x, v, &device).require_grad();
        let wt = ints(weight, &v[1..], &device).require_grad();
        let bias = ints([weight[1]], &v[2..], &device).require_grad();
        let y = if ours {
            conv_transpose2d_gemm(xt.clone(), wt.clone(), Some(bias.clone()), g, out_pad)
        } else {
            let options = ConvTransposeOptions::new(g.stride, g.padding, out_pad, [1, 1], 1);
            conv_transpose2d(xt.clone(), wt.clone(), Some(bias.clone()), options)
        };
        let upstream = ints(y.dims(), &v[3..], &device);
        let grads = (y.clone() * upstream).sum().backward();
        let values = |d: TensorData| d.try_to_vec::<f32>().expect("f32");
        [
            values(y.into_data()),
            values(xt.grad(&grads).expect("x is used").into_data()),
            values(wt.grad(&grads).expect("w is used").into_data()),
            values(bias.grad(&grads).expect("bias is used").into_data()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Output and all three gradients equal burn's conv_transpose2d bit for bit (integer
        /// data) over strides, paddings, output paddings and rectangular kernels.
        #[test]
        fn matches_burn_conv_transpose2d_values_and_gradients(
            b in 1usize..3, ci in 1usize..4, co in 1usize..4, h in 1usize..6, w in 1usize..6,
            kh in 1usize..7, kw in 1usize..7, sh in 1usize..3, sw in 1usize..4,
            ph in 0usize..4, pw in 0usize..4, oph in 0usize..2, opw in 0usize..3,
            values in proptest::collection::vec(-3i8..4, 4..40),
        ) {
            prop_assume!(oph < sh && opw < sw);
            prop_assume!((h - 1) * sh + kh + oph > 2 * ph && (w - 1) * sw + kw + opw > 2 * pw);
            let g = ConvGeometry { stride: [sh, sw], padding: [ph, pw] };
            let ours = run(true, [b, ci, h, w], [ci, co, kh, kw], g, [oph, opw], &values);
            let theirs = run(false, [b, ci, h, w], [ci, co, kh, kw], g, [oph, opw], &values);
            prop_assert_eq!(ours, theirs);
        }
    }
}
