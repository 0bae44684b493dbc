//! veil-attack: the spear. A black-box inversion attack on what a device sends (DistPrivacy
//! §II-A, Spears and Shields Algorithm 1, SYSTEM.md section 3).
//!
//! The attacker queries the device-side part of a model (every layer up to a named split
//! layer) on **auxiliary** images that never overlap the victims' images (auxiliary images come
//! from the training split, victims from the test split), observes `k` of the `P` feature maps,
//! trains an inverse network ([`decoder::decoder_spec`]) from those maps back to the image
//! under mean squared error, and reconstructs the victims' images. Scores: SSIM, PSNR and MSE
//! per victim, summarised as mean and standard deviation.
//!
//! Key items: [`AttackConfig`], [`MapSelection`], [`attack`] (returns an [`AttackReport`]),
//! [`grid::save_grid`] (originals above reconstructions, PNG), [`campaign::run`] (one attack
//! as `veil attack` runs it, with its files), [`profile_files::run`] (a privacy profile as
//! `veil profile` runs it, with its JSON, CSV, Markdown and heat map), [`compare::image_files`]
//! (two image files scored against each other).

#![forbid(unsafe_code)]

pub mod campaign;
pub mod compare;
pub mod confirm;
pub mod decoder;
pub mod grid;
pub mod helper;
pub mod nested;
pub mod profile;
pub mod profile_files;
pub mod query_free;
mod run;
pub mod white_box;

pub use helper::{HelperView, helper_features};
pub use profile::{
    PrivacyProfile, ProfileCell, ProfileEvent, ProfileMethod, ProfileRequest, profile,
};
pub use run::{
    AttackConfig, AttackError, AttackReport, AttackSetting, DEFAULT_AUX, DecoderKind,
    LayerFeatures, MapSelection, attack, attack_features, map_order, score_with_decoder,
    select_maps, train_decoder,
};
