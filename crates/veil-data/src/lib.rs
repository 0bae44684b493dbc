//! veil-data: every dataset veil trains, attacks and evaluates on, as plain `f32` tensors.
//!
//! Key types: [`Dataset`] (samples `[n, c, h, w]` plus labels), [`Split`] (train and test),
//! [`DatasetId`] (which dataset, parsed from a CLI name) and [`DataError`].
//! [`load`] reads a dataset from the data directory ([`data_dir`]: `--data` or `VEIL_DATA`).
//!
//! Formats: MNIST and Fashion-MNIST IDX (raw or `.gz`), CIFAR-10 binary, GTSRB (PPM images
//! with `;`-separated CSV), a folder of PNG/JPEG images (one sub-folder per class), UCI
//! Post-operative and UCI Activity (older people, wearable sensor). A [`synthetic`] dataset,
//! generated in code, keeps unit tests fast and independent of files.
//!
//! Every parser treats its input as untrusted: a truncated or corrupt file gives a
//! [`DataError`] naming the file, never a panic.

#![forbid(unsafe_code)]

mod cifar;
mod dataset;
mod error;
mod folder;
mod gtsrb;
mod idx;
mod ppm;
mod registry;
pub mod synthetic;
mod uci;

pub use cifar::read_cifar10_batch;
pub use dataset::{Dataset, Split};
pub use error::DataError;
pub use folder::{PlanarImage, load_image_folder, load_image_folder_with_classes, read_image};
pub use gtsrb::load_gtsrb;
pub use idx::{read_idx_images, read_idx_labels};
pub use ppm::read_ppm;
pub use registry::{DatasetId, data_dir, load, load_named};
pub use uci::{load_activity, load_post_operative};
