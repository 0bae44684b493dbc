//! The operators of graph models: batch normalisation, ReLU6 and other clips, sigmoid,
//! global average pooling, and the two that join branches (a residual `Add`, a channel
//! `Concat`). Each returns the veil layer or a sentence saying what is missing.

use std::collections::HashMap;

use veil_spec::LayerKind;

use crate::ops::{Step, attribute, float, int, real};
use crate::proto::NodeProto;
use crate::tensor::Constant;

/// `BatchNormalization` in inference form: scale, bias, mean and variance constants of one
/// length each, and no training outputs.
pub(crate) fn batch_norm(
    consts: &HashMap<String, Constant>,
    node: &NodeProto,
) -> Result<Step, String> {
    if int(node, "training_mode", 0) != 0 || node.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err("training mode (export the model in evaluation mode)".into());
    }
    let names = ["scale", "bias", "mean", "variance"];
    let mut stats: Vec<Vec<f32>> = Vec::with_capacity(4);
    for (k, what) in names.iter().enumerate() {
        let name = node
            .input
            .get(k + 1)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("no {what} input"))?;
        let (d, v) = real(consts, name, what)?;
        if d.len() != 1 || stats.first().is_some_and(|s| s.len() != v.len()) {
            return Err(format!(
                "{what} `{name}` of shape {d:?} (one value per channel expected)"
            ));
        }
        if v.iter().any(|x| !x.is_finite()) || (k == 3 && v.iter().any(|&x| x < 0.0)) {
            return Err(format!(
                "{what} `{name}` holds a non-finite or negative value"
            ));
        }
        stats.push(v.to_vec());
    }
    let eps = f64::from(float(node, "epsilon", 1e-5));
    let [scale, bias, mean, var]: [Vec<f32>; 4] = stats
        .try_into()
        .map_err(|_| "four statistics expected".to_string())?;
    Ok(Step::Norm(
        LayerKind::BatchNorm2d { eps },
        [scale, bias, mean, var],
    ))
}

/// One bound of a `Clip`: input `index` (opset 11 on; absent or empty means unbounded), else
/// the attribute of older opsets.
fn clip_bound(
    consts: &HashMap<String, Constant>,
    node: &NodeProto,
    index: usize,
    attr: &str,
    unbounded: f32,
) -> Result<f64, String> {
    let value = match node.input.get(index).filter(|s| !s.is_empty()) {
        Some(name) => match real(consts, name, attr)? {
            (_, [v]) => *v,
            (d, _) => {
                return Err(format!(
                    "{attr} `{name}` of shape {d:?} (a scalar expected)"
                ));
            }
        },
        None => attribute(node, attr).map_or(unbounded, |a| a.f),
    };
    match value.is_nan() {
        true => Err(format!("{attr} is not a number")),
        false => Ok(f64::from(value.clamp(-f32::MAX, f32::MAX))),
    }
}

/// `Clip` with constant bounds (ReLU6 is `Clip(0, 6)`).
pub(crate) fn clip(consts: &HashMap<String, Constant>, node: &NodeProto) -> Result<Step, String> {
    let min = clip_bound(consts, node, 1, "min", f32::MIN)?;
    let max = clip_bound(consts, node, 2, "max", f32::MAX)?;
    if min > max {
        return Err(format!("min {min} above max {max}"));
    }
    Ok(Step::Layer(LayerKind::Clip { min, max }, None))
}

/// The inputs of `node` that are not constants (the activations it reads).
pub(crate) fn data_inputs<'a>(
    consts: &HashMap<String, Constant>,
    node: &'a NodeProto,
) -> Vec<&'a String> {
    node.input
        .iter()
        .filter(|i| !i.is_empty() && !consts.contains_key(*i))
        .collect()
}

/// `Add` of two activations (a residual connection); adding a constant is only supported as
/// a `MatMul`'s bias, which [`crate::lower`] folds before it gets here.
pub(crate) fn add(consts: &HashMap<String, Constant>, node: &NodeProto) -> Result<Step, String> {
    match data_inputs(consts, node).len() {
        2 if node.input.len() == 2 => Ok(Step::Layer(LayerKind::Add, None)),
        _ => Err(
            "adding a constant (only two activations, or a MatMul's bias right after it)".into(),
        ),
    }
}

/// `Concat` of activations along the channel axis.
pub(crate) fn concat(consts: &HashMap<String, Constant>, node: &NodeProto) -> Result<Step, String> {
    if int(node, "axis", 1) != 1 {
        return Err(format!(
            "axis {} (the channel axis, 1, only)",
            int(node, "axis", 1)
        ));
    }
    match data_inputs(consts, node).len() == node.input.len() && node.input.len() >= 2 {
        true => Ok(Step::Layer(LayerKind::Concat, None)),
        false => Err("a constant among the inputs (activations only)".into()),
    }
}
