//! ObfNet (the survey's §3, SYSTEM.md section 6): a small dense network trained in front of a
//! frozen classifier so that the classifier still recognises its output while a person (or
//! an inversion attack) should not. Use stays voluntary: the classifier is unchanged and still
//! accepts raw inputs. Several ObfNets are trained with different seeds and the device picks
//! one at random per sample.
//!
//! [`train_obfnets`] builds each composite (`obf_*` layers, then the classifier's layers with
//! the classifier's weights), trains it with the classifier's layers frozen and returns them;
//! [`Obfuscators::obfuscate`] sends each image through a randomly chosen ObfNet; [`judge`]
//! measures accuracy and runs the spear against a coordinator who knows every ObfNet but not
//! which one a sample went through: it trains the inversion on obfuscated auxiliary images
//! (each through a random ObfNet) and reconstructs obfuscated victims, with both the
//! convolutional decoder and a dense one, and keeps the stronger.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use veil_attack::{AttackConfig, AttackReport, LayerFeatures, attack_features};
use veil_data::{Dataset, Split};
use veil_model::{Model, TrainConfig};
use veil_spec::{Layer, ModelSpec};

use crate::DefenseError;

/// Trained ObfNets in front of one classifier.
pub struct Obfuscators {
    /// Composite models: ObfNet layers (`obf_*`) then the frozen classifier.
    pub composites: Vec<Model>,
    /// Layers of the ObfNet part of each composite.
    pub obf_layers: usize,
}

/// The composite spec: `obfnet`'s layers renamed `obf_<name>`, then `classifier`'s layers.
pub fn composite_spec(
    obfnet: &ModelSpec,
    classifier: &ModelSpec,
) -> Result<ModelSpec, DefenseError> {
    if obfnet.input_shape != classifier.input_shape
        || obfnet.output_shape()? != classifier.input_shape
    {
        return Err(DefenseError::Invalid(format!(
            "ObfNet {} maps {} to {}, but classifier {} takes {}",
            obfnet.name,
            obfnet.input_shape,
            obfnet.output_shape()?,
            classifier.name,
            classifier.input_shape
        )));
    }
    // Names the ObfNet's layers read are renamed with them; the classifier's references to
    // the model input now mean the ObfNet's output.
    let rename = |name: &str| match name.eq_ignore_ascii_case(veil_spec::graph::INPUT) {
        true => name.to_string(),
        false => format!("obf_{name}"),
    };
    let mut layers: Vec<Layer> = obfnet
        .layers
        .iter()
        .map(|l| Layer {
            name: rename(&l.name),
            inputs: l.inputs.iter().map(|i| rename(i)).collect(),
            kind: l.kind.clone(),
        })
        .collect();
    let obf_output = layers.last().map(|l| l.name.clone());
    layers.extend(classifier.layers.iter().map(|l| {
        let mut l = l.clone();
        for i in &mut l.inputs {
            if let Some(out) = obf_output.as_ref()
                && i.eq_ignore_ascii_case(veil_spec::graph::INPUT)
            {
                *i = out.clone();
            }
        }
        l
    }));
    Ok(ModelSpec::new(
        format!("{}+{}", obfnet.name, classifier.name),
        classifier.input_shape.clone(),
        layers,
    )?)
}

/// Trains `count` ObfNets of spec `obfnet` in front of `classifier` (frozen) on
/// `train`, seeds `cfg.seed + i`.
pub fn train_obfnets(
    obfnet: &ModelSpec,
    classifier: &Model,
    train: &Dataset,
    count: usize,
    cfg: &TrainConfig,
    on_trained: &mut dyn FnMut(usize),
) -> Result<Obfuscators, DefenseError> {
    if count == 0 {
        return Err(DefenseError::Invalid("train at least one ObfNet".into()));
    }
    let spec = composite_spec(obfnet, classifier.spec())?;
    let frozen: Vec<String> = classifier
        .spec()
        .layers
        .iter()
        .map(|l| l.name.clone())
        .collect();
    let classifier_tensors = classifier.named_tensors()?;
    let mut composites = Vec::with_capacity(count);
    for i in 0..count {
        let seed = cfg.seed.wrapping_add(i as u64);
        let fresh = Model::init(spec.clone(), seed)?;
        let tensors = fresh
            .named_tensors()?
            .into_iter()
            .map(|t| {
                classifier_tensors
                    .iter()
                    .find(|c| c.name == t.name)
                    .cloned()
                    .unwrap_or(t)
            })
            .collect();
        let start = fresh.with_tensors(tensors)?;
        let cfg = TrainConfig {
            seed,
            frozen: frozen.clone(),
            ..cfg.clone()
        };
        let (trained, _) = veil_model::train(start, train, None, &cfg, &mut |_| {})?;
        composites.push(trained);
        on_trained(i + 1);
    }
    Ok(Obfuscators {
        composites,
        obf_layers: obfnet.layers.len(),
    })
}

impl Obfuscators {
    /// Each image of `images` through an ObfNet drawn at random (seeded): the values the device
    /// sends, sample-major, with the indices of the ObfNets used.
    pub fn obfuscate(
        &self,
        images: &Dataset,
        seed: u64,
    ) -> Result<(Vec<f32>, Vec<usize>), DefenseError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let choice: Vec<usize> = (0..images.len())
            .map(|_| rng.random_range(0..self.composites.len()))
            .collect();
        let per = images.sample_len();
        let mut out = vec![0.0f32; images.samples.len()];
        for (k, model) in self.composites.iter().enumerate() {
            let idx: Vec<usize> = (0..images.len()).filter(|&i| choice[i] == k).collect();
            for chunk in idx.chunks(500) {
                let mut batch = Vec::with_capacity(chunk.len() * per);
                for &i in chunk {
                    batch.extend_from_slice(images.sample(i));
                }
                let x = model.input(batch)?;
                let y = model.forward_range(x, 0..self.obf_layers)?.into_values()?;
                for (j, &i) in chunk.iter().enumerate() {
                    out[i * per..(i + 1) * per].copy_from_slice(&y[j * per..(j + 1) * per]);
                }
            }
        }
        Ok((out, choice))
    }
}

/// ObfNet's accuracy and the attack on obfuscated data.
#[derive(Clone, Debug, Serialize)]
pub struct ObfNetReport {
    /// Classifier alone on raw test images.
    pub accuracy_plain: f64,
    /// Each ObfNet + classifier on the test images.
    pub accuracy_each: Vec<f64>,
    /// Mean of `accuracy_each`: the expected accuracy when each sample picks one at random.
    pub accuracy_defended: f64,
    /// SSIM between the obfuscated victims and the originals, with no attack at all.
    pub ssim_obfuscated_as_is: f64,
    /// The stronger of the two attacks on obfuscated data (higher mean SSIM).
    pub attack: AttackReport,
    /// SSIM of the convolutional decoder (derived from the image shape) and of the dense
    /// decoder (flattened features; an ObfNet mixes every pixel, which a local deconvolution
    /// cannot undo).
    pub ssim_by_decoder: [f64; 2],
}

/// Accuracy and attack for `obf` (victims and accuracy from `data.test`, auxiliary images
/// from `data.train`).
pub fn judge(
    obf: &Obfuscators,
    classifier: &Model,
    data: &Split,
    attack: &AttackConfig,
    seed: u64,
) -> Result<ObfNetReport, DefenseError> {
    let accuracy_plain = classifier.evaluate(&data.test)?;
    let accuracy_each = obf
        .composites
        .iter()
        .map(|m| m.evaluate(&data.test))
        .collect::<Result<Vec<_>, _>>()?;
    let accuracy_defended = accuracy_each.iter().sum::<f64>() / accuracy_each.len() as f64;
    let aux = data.train.take(attack.aux_samples);
    let victims = data.test.take(attack.victims);
    let (aux_feats, _) = obf.obfuscate(&aux, seed)?;
    let (victim_feats, _) = obf.obfuscate(&victims, seed ^ 0xdead)?;
    let shape = obf.composites[0].shapes()[obf.obf_layers].clone();
    let as_is = {
        let per = victims.sample_len();
        let mut sum = 0.0;
        for i in 0..victims.len() {
            let a = veil_metrics::Image::new(victims.sample(i), victims.shape)
                .map_err(|e| DefenseError::Invalid(e.to_string()))?;
            let clamped: Vec<f32> = victim_feats[i * per..(i + 1) * per]
                .iter()
                .map(|v| v.clamp(0.0, 1.0))
                .collect();
            let b = veil_metrics::Image::new(&clamped, victims.shape)
                .map_err(|e| DefenseError::Invalid(e.to_string()))?;
            sum += veil_metrics::ssim(&a, &b).map_err(|e| DefenseError::Invalid(e.to_string()))?;
        }
        sum / victims.len().max(1) as f64
    };
    let cfg = AttackConfig {
        maps: None,
        ..attack.clone()
    };
    let mut feats = LayerFeatures {
        layer: "obfnet output".into(),
        shape: shape.clone(),
        aux,
        victims,
        aux_feats,
        victim_feats,
        device: None,
    };
    let conv = attack_features(&feats, &cfg, &mut |_| {})
        .map_err(|e| DefenseError::Invalid(e.to_string()))?;
    feats.shape = veil_spec::Shape::flat(shape.numel());
    feats.layer = "obfnet output (flattened)".into();
    let dense = attack_features(&feats, &cfg, &mut |_| {})
        .map_err(|e| DefenseError::Invalid(e.to_string()))?;
    let ssim_by_decoder = [conv.ssim_mean, dense.ssim_mean];
    let attack = if dense.ssim_mean > conv.ssim_mean {
        dense
    } else {
        conv
    };
    Ok(ObfNetReport {
        accuracy_plain,
        accuracy_each,
        accuracy_defended,
        ssim_obfuscated_as_is: as_is,
        attack,
        ssim_by_decoder,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_composite_renames_the_obfnet_and_checks_shapes() {
        let spec = composite_spec(
            &veil_spec::zoo::model("obfnet1").expect("zoo"),
            &veil_spec::zoo::lenet5(),
        )
        .expect("composite");
        assert_eq!(spec.layers[0].name, "obf_flatten");
        assert!(spec.layers.iter().any(|l| l.name == "conv1"));
        assert!(
            composite_spec(
                &veil_spec::zoo::model("obfnet1").expect("zoo"),
                &veil_spec::zoo::model("gtsrb_cnn").expect("zoo")
            )
            .is_err()
        );
    }
}
