//! veil-model: the plaintext interpreter of a [`veil_spec::ModelSpec`], on burn's `flex` CPU
//! backend.
//!
//! Key types:
//! - [`Model`]: a spec plus its burn parameters; build with [`Model::init`] (seeded random
//!   weights) or [`Model::load`] (a veil safetensors file), run with [`Model::forward_range`],
//!   [`Model::predict`], [`Model::evaluate`].
//! - [`Activation`]: a batch of feature maps `[b, c, h, w]` or flat vectors `[b, n]`.
//! - [`train()`] with [`TrainConfig`]: Adam, cross-entropy, seeded shuffles, optional
//!   augmentation, progress callback.
//! - [`session`]: a training session as `veil train` runs it (dataset defaults, run
//!   directory, report) and the one rule for default weight files.
//! - [`inversion`]: white-box feature matching (the input whose features match given ones).
//! - [`partial`]: run one conv layer on a subset of its input channels (DistPrivacy segments).
//! - [`ModelError`]: every failure, with the layer, shape or file it concerns.
//!
//! Weight files follow [`veil_spec::weights`]: safetensors with the spec in the metadata.

// `deny`, not `forbid`: the one exception is `kernels::matmul`, the safe wrapper around the
// gemm crate's raw-pointer matrix product.
#![deny(unsafe_code)]

pub mod bench;
mod error;
pub mod inversion;
pub mod kernels;
mod model;
mod network;
pub mod partial;
mod regress;
pub mod session;
mod train;
mod weights_io;

pub use burn::tensor::{Device, Tensor};
pub use error::ModelError;
pub use model::{Activation, Model};
pub use regress::{RegressionReport, fit_regression, fit_regression_with};
pub use train::{Augment, EpochReport, MAX_BATCH, StepInfo, TrainConfig, TrainReport, train};
pub use weights_io::{LayerParams, NamedTensor};

/// The device veil computes on: burn-flex on the CPU by default.
///
/// Built with the `cuda` feature, `VEIL_DEVICE=cuda` (or `cuda:N`) selects that GPU instead;
/// built with the `wgpu` feature, `VEIL_DEVICE=wgpu` selects the best adapter wgpu finds
/// (Vulkan, Metal, DX12 or WebGPU; `CUBECL_WGPU_DEFAULT_DEVICE` overrides the choice).
/// Without the features the variable is ignored: nothing in veil requires a GPU.
pub fn device() -> Device {
    let wanted = std::env::var("VEIL_DEVICE").ok();
    #[cfg(feature = "cuda")]
    if let Some(rest) = wanted.as_deref().and_then(|v| v.strip_prefix("cuda")) {
        let index = rest.trim_start_matches(':').parse::<usize>().unwrap_or(0);
        return Device::cuda(index);
    }
    #[cfg(feature = "wgpu")]
    if wanted.as_deref() == Some("wgpu") {
        return Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    }
    let _ = wanted;
    Device::flex()
}
