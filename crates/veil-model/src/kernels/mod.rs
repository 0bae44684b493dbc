//! veil's own CPU kernels for the layers that dominate training, registered with burn as a
//! backend extension (`#[backend_extension]`), so models keep burn's tensor API and the GPU
//! backends keep burn's own operators.
//!
//! Each operation has three parts: a burn-flex implementation (the fast path on the CPU; safe
//! Rust but for one call, the gemm crate's matrix product behind the bounds-checked
//! `matmul::matmul_into`, which writes products straight into the kernels' buffers), an
//! `Autodiff` implementation with a hand-written backward pass, and a public [`Tensor`]
//! function that uses the extension only on a flex device and otherwise calls
//! burn's operator, so nothing here is needed for correctness on other backends.
//!
//! - [`max_pool2d_tiled`]: max pooling whose windows tile the input (kernel = stride, no
//!   padding, no dilation), the pooling of every zoo network; burn-flex's general pooling
//!   spends most of its time on window bounds (three divisions per output).
//! - [`conv2d_gemm`]: convolution (groups 1) as im2col and one GEMM, its backward pass as two
//!   GEMMs over the same column matrix; burn's decomposition of the backward pass (transposed
//!   convolutions and permuted copies) took most of a LeNet-5 training step.
//! - [`conv_transpose2d_gemm`]: transposed convolution (the attack decoders' layer) through the
//!   same kernels, as the adjoint of a convolution.
//! - [`relu_parallel`]: ReLU split over the worker pool and in place (burn-flex's element-wise
//!   operations run on one thread).

mod conv;
mod conv_transpose;
mod matmul;
mod pool;
mod relu;

use burn::backend::DispatchDevice;
use burn::tensor::Tensor;

pub use conv::{ConvGeometry, GemmConv, GemmConvKernels, conv2d_gemm};
pub use conv_transpose::{GemmConvTranspose, GemmConvTransposeKernels, conv_transpose2d_gemm};
pub use pool::{TiledMaxPool, TiledMaxPoolKernels, max_pool2d_tiled};
pub use relu::{ParallelRelu, ParallelReluKernels, relu_parallel};

/// Whether an optional bias is one the kernels take: absent, or f32 of shape `[channels]`
/// (anything else goes to burn's operator, which reports it).
fn bias_fits(bias: Option<&Tensor<1>>, channels: usize) -> bool {
    bias.is_none_or(|b| b.dims() == [channels] && b.dtype() == burn::tensor::DType::F32)
}

/// Whether `tensor` lives on a burn-flex device (with or without autodiff): the devices veil's
/// extension kernels are implemented for.
fn on_flex<const D: usize>(tensor: &Tensor<D>) -> bool {
    matches!(
        tensor.device().as_dispatch().clone().inner(),
        DispatchDevice::Flex(_)
    )
}
