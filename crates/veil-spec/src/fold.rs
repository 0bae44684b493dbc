//! Batch normalisation folded into the convolution before it: the inference-time identity
//! `bn(conv(x)) = conv'(x)` with `W'[o] = W[o] s_o`, `b'_o = (b_o - mean_o) s_o + beta_o` and
//! `s_o = gamma_o / sqrt(var_o + eps)`, for the interpreters that evaluate convolutions but
//! not batch normalisation (secure inference, the runtime).
//!
//! Contract of [`fold_batch_norm`]: a `batch_norm2d` layer is folded when it reads a `conv2d`
//! layer that nothing else reads; the result computes the same function (up to `f32`
//! rounding of the folded weights, computed in `f64`), names every remaining layer as before,
//! and readers of a folded layer read its convolution. Other batch normalisations stay.

use crate::graph::{INPUT, Source};
use crate::weights::Tensors;
use crate::{LayerKind, ModelSpec, SpecError};

fn tensor<'a>(tensors: &'a Tensors, name: &str) -> Result<&'a [f32], SpecError> {
    tensors
        .get(name)
        .map(|(_, v)| v.as_slice())
        .ok_or_else(|| SpecError::Weights {
            path: "(in memory)".into(),
            reason: format!("missing tensor {name}"),
        })
}

/// `spec` and `tensors` (in `veil_spec::weights` layout, checked here) with every foldable
/// batch normalisation folded (see the module docs), and how many were.
pub fn fold_batch_norm(
    spec: &ModelSpec,
    tensors: &Tensors,
) -> Result<(ModelSpec, Tensors, usize), SpecError> {
    let sources = spec.sources()?;
    crate::weights::check(spec, tensors)?;
    let mut readers = vec![0usize; spec.layers.len()];
    for s in sources.iter().flatten() {
        if let Source::Layer(i) = *s {
            readers[i] += 1;
        }
    }
    let mut out = tensors.clone();
    // Folded BN index -> the conv it folds into.
    let mut folded: Vec<Option<usize>> = vec![None; spec.layers.len()];
    for (b, layer) in spec.layers.iter().enumerate() {
        let LayerKind::BatchNorm2d { eps } = layer.kind else {
            continue;
        };
        let [Source::Layer(c)] = sources[b].as_slice() else {
            continue;
        };
        let conv = &spec.layers[*c];
        if !matches!(conv.kind, LayerKind::Conv2d { .. }) || readers[*c] != 1 {
            continue;
        }
        let stat = |suffix: &str| tensor(tensors, &format!("{}.{suffix}", layer.name));
        let (gamma, beta, mean, var) = (
            stat("weight")?,
            stat("bias")?,
            stat("running_mean")?,
            stat("running_var")?,
        );
        let weight = tensor(tensors, &format!("{}.weight", conv.name))?;
        let bias = tensor(tensors, &format!("{}.bias", conv.name))?;
        let per_out = weight.len() / gamma.len().max(1);
        let scale: Vec<f64> = gamma
            .iter()
            .zip(var)
            .map(|(&g, &v)| f64::from(g) / (f64::from(v) + eps).sqrt())
            .collect();
        if scale.iter().any(|s| !s.is_finite()) {
            return Err(SpecError::Weights {
                path: "(in memory)".into(),
                reason: format!(
                    "{}: a running variance below -eps or a non-finite statistic",
                    layer.name
                ),
            });
        }
        let new_weight: Vec<f32> = weight
            .iter()
            .enumerate()
            .map(|(i, &w)| (f64::from(w) * scale[i / per_out]) as f32)
            .collect();
        let new_bias: Vec<f32> = (0..gamma.len())
            .map(|o| {
                ((f64::from(bias[o]) - f64::from(mean[o])) * scale[o] + f64::from(beta[o])) as f32
            })
            .collect();
        if let Some(entry) = out.get_mut(&format!("{}.weight", conv.name)) {
            entry.1 = new_weight;
        }
        if let Some(entry) = out.get_mut(&format!("{}.bias", conv.name)) {
            entry.1 = new_bias;
        }
        for suffix in ["weight", "bias", "running_mean", "running_var"] {
            out.remove(&format!("{}.{suffix}", layer.name));
        }
        folded[b] = Some(*c);
    }
    let count = folded.iter().flatten().count();
    Ok((rebuild(spec, &sources, &folded)?, out, count))
}

/// The spec without the folded layers; readers of a folded layer read its convolution. Inputs
/// are written out where the layer before is no longer what a layer reads.
fn rebuild(
    spec: &ModelSpec,
    sources: &[Vec<Source>],
    folded: &[Option<usize>],
) -> Result<ModelSpec, SpecError> {
    let name_of = |s: &Source| match *s {
        Source::Input => INPUT.to_string(),
        Source::Layer(i) => spec.layers[folded[i].unwrap_or(i)].name.clone(),
    };
    let mut layers: Vec<crate::Layer> = Vec::with_capacity(spec.layers.len());
    for (i, layer) in spec.layers.iter().enumerate() {
        if folded[i].is_some() {
            continue;
        }
        let reads: Vec<String> = sources[i].iter().map(name_of).collect();
        let previous = layers.last().map_or(INPUT.to_string(), |l| l.name.clone());
        let mut kept = layer.clone();
        kept.inputs = match reads.as_slice() {
            [only] if *only == previous => Vec::new(),
            _ => reads,
        };
        layers.push(kept);
    }
    ModelSpec::new(spec.name.clone(), spec.input_shape.clone(), layers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::layout;

    /// Deterministic tensors for `spec` (variances positive).
    fn tensors(spec: &ModelSpec) -> Tensors {
        let mut x = 0.37f32;
        layout(spec)
            .expect("layout")
            .into_iter()
            .map(|e| {
                let n: usize = e.shape.iter().product();
                let values = (0..n)
                    .map(|_| {
                        x = (x * 7.13 + 0.29).fract();
                        if e.name.ends_with("running_var") {
                            0.5 + x
                        } else {
                            x - 0.5
                        }
                    })
                    .collect();
                (e.name, (e.shape, values))
            })
            .collect()
    }

    #[test]
    fn every_batch_norm_of_resnet8_folds_and_the_graph_stays_valid() {
        let spec = crate::zoo::resnet8(43);
        let (folded, weights, count) = fold_batch_norm(&spec, &tensors(&spec)).expect("fold");
        assert_eq!(count, 9);
        assert_eq!(folded.layers.len(), spec.layers.len() - 9);
        assert!(!folded.contains(|k| matches!(k, LayerKind::BatchNorm2d { .. })));
        crate::weights::check(&folded, &weights).expect("the layout of the folded spec");
        let add = &folded.layers[folded.layer_index("b2_add").expect("add")];
        assert_eq!(add.inputs, ["b2_b_conv", "b2_proj_conv"]);
        assert_eq!(
            folded.cut_points().expect("cuts").len(),
            spec.cut_points().expect("cuts").len() - 1
        );
    }

    #[test]
    fn a_folded_channel_is_the_affine_map_of_its_statistics() {
        let spec = crate::zoo::mobilenet_tiny(43);
        let t = tensors(&spec);
        let (_, folded, _) = fold_batch_norm(&spec, &t).expect("fold");
        let get = |m: &Tensors, n: &str| m[n].1.clone();
        let (w, b) = (get(&t, "stem_conv.weight"), get(&t, "stem_conv.bias"));
        let (g, be, mu, var) = (
            get(&t, "stem_bn.weight"),
            get(&t, "stem_bn.bias"),
            get(&t, "stem_bn.running_mean"),
            get(&t, "stem_bn.running_var"),
        );
        let (w2, b2) = (
            get(&folded, "stem_conv.weight"),
            get(&folded, "stem_conv.bias"),
        );
        let per = w.len() / g.len();
        for o in 0..g.len() {
            let s = f64::from(g[o]) / (f64::from(var[o]) + 1e-5).sqrt();
            let want = (f64::from(b[o]) - f64::from(mu[o])) * s + f64::from(be[o]);
            assert!((f64::from(b2[o]) - want).abs() < 1e-6);
            let wi = o * per;
            assert!((f64::from(w2[wi]) - f64::from(w[wi]) * s).abs() < 1e-6);
        }
    }
}
