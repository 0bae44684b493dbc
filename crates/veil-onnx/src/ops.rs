//! One ONNX node at a time: attribute checks and the veil layer (with its weights in veil's
//! layout) each supported operator becomes. Every refusal is a sentence saying what is
//! missing, which [`crate::lower`] wraps with the node's name and operator.

use std::collections::HashMap;

use veil_spec::LayerKind;

use crate::proto::{AttributeProto, NodeProto};
use crate::tensor::Constant;

/// Operators import translates.
pub const SUPPORTED: &[&str] = &[
    "Conv (grouped and depthwise too)",
    "Gemm",
    "MatMul",
    "Add (of two activations, or a MatMul's bias)",
    "Concat (channels)",
    "BatchNormalization",
    "Relu",
    "Clip",
    "Sigmoid",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "Reshape",
    "Identity",
    "Dropout",
    "Constant",
    "Softmax/LogSoftmax (last)",
];

/// One translated node: the layer (when it makes one) and its parameters.
pub(crate) enum Step {
    /// A layer and, for layers with parameters, `(weight shape, weight, bias)`.
    Layer(LayerKind, Option<(Vec<usize>, Vec<f32>, Vec<f32>)>),
    /// Batch normalisation and its scale, bias, running mean and running variance.
    Norm(LayerKind, [Vec<f32>; 4]),
    /// Nothing to compute at inference (identity, dropout, the final softmax).
    Dropped,
}

pub(crate) fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

pub(crate) fn int(node: &NodeProto, name: &str, default: i64) -> i64 {
    attribute(node, name).map_or(default, |a| a.i)
}

pub(crate) fn float(node: &NodeProto, name: &str, default: f32) -> f32 {
    attribute(node, name).map_or(default, |a| a.f)
}

/// A pair attribute (`strides`, `kernel_shape`) as positive sizes, `default` when absent.
fn pair(node: &NodeProto, name: &str, default: [usize; 2]) -> Result<[usize; 2], String> {
    match attribute(node, name).map(|a| a.ints.as_slice()) {
        None => Ok(default),
        Some(&[a, b]) if a > 0 && b > 0 => Ok([a as usize, b as usize]),
        Some(v) => Err(format!("{name} {v:?} (two positive values expected)")),
    }
}

/// `pads` `[top, left, bottom, right]` as symmetric `[h, w]` padding.
fn symmetric_pads(node: &NodeProto) -> Result<[usize; 2], String> {
    match attribute(node, "pads").map(|a| a.ints.as_slice()) {
        None => Ok([0, 0]),
        Some(&[t, l, b, r]) if t == b && l == r && t >= 0 && l >= 0 => Ok([t as usize, l as usize]),
        Some(v) => Err(format!("pads {v:?} (only symmetric padding is supported)")),
    }
}

fn no_auto_pad(node: &NodeProto) -> Result<(), String> {
    match attribute(node, "auto_pad").map(|a| a.s.as_slice()) {
        None | Some(b"NOTSET") | Some(b"") => Ok(()),
        Some(v) => Err(format!(
            "auto_pad {} (explicit pads only)",
            String::from_utf8_lossy(v)
        )),
    }
}

fn unit_dilations(node: &NodeProto) -> Result<(), String> {
    match attribute(node, "dilations").map(|a| a.ints.as_slice()) {
        None => Ok(()),
        Some(d) if d.iter().all(|&v| v == 1) => Ok(()),
        Some(d) => Err(format!("dilations {d:?} (only 1 is supported)")),
    }
}

pub(crate) fn real<'a>(
    consts: &'a HashMap<String, Constant>,
    name: &str,
    what: &str,
) -> Result<(&'a [usize], &'a [f32]), String> {
    match consts.get(name) {
        Some(Constant::Real(d, v)) => Ok((d, v)),
        Some(Constant::Integer(..)) => Err(format!("{what} `{name}` holds integers")),
        None => Err(format!(
            "{what} `{name}` is not a constant of the file (weights must be initializers)"
        )),
    }
}

/// The optional bias input `index` of `node`, `out` values (zeros when absent).
pub(crate) fn bias(
    consts: &HashMap<String, Constant>,
    node: &NodeProto,
    index: usize,
    out: usize,
) -> Result<Vec<f32>, String> {
    match node.input.get(index).filter(|s| !s.is_empty()) {
        None => Ok(vec![0.0; out]),
        Some(name) => {
            let (d, v) = real(consts, name, "bias")?;
            // A per-feature bias: `[out]` or `[1, .., out]` (a `[out, 1]` column would add
            // per sample, not per feature).
            let leading_ones = d.iter().rev().skip(1).all(|&x| x == 1);
            if v.len() == out && d.last() == Some(&out) && leading_ones {
                Ok(v.to_vec())
            } else {
                Err(format!("bias `{name}` of shape {d:?} for {out} outputs"))
            }
        }
    }
}

fn conv(consts: &HashMap<String, Constant>, node: &NodeProto) -> Result<Step, String> {
    let groups = usize::try_from(int(node, "group", 1))
        .ok()
        .filter(|g| (1..=veil_spec::MAX_DIM).contains(g))
        .ok_or_else(|| {
            format!(
                "group {} (a positive count expected)",
                int(node, "group", 1)
            )
        })?;
    unit_dilations(node)?;
    no_auto_pad(node)?;
    let w_name = node.input.get(1).ok_or("no weight input")?;
    let (d, w) = real(consts, w_name, "weight")?;
    let &[out, _, kh, kw] = d else {
        return Err(format!(
            "weight of shape {d:?} (a 2-D convolution expected)"
        ));
    };
    let kernel = pair(node, "kernel_shape", [kh, kw])?;
    if kernel != [kh, kw] {
        return Err(format!(
            "kernel_shape {kernel:?} but weight kernel {:?}",
            [kh, kw]
        ));
    }
    let kind = LayerKind::Conv2d {
        out_channels: out,
        kernel,
        stride: pair(node, "strides", [1, 1])?,
        padding: symmetric_pads(node)?,
        groups,
    };
    Ok(Step::Layer(
        kind,
        Some((d.to_vec(), w.to_vec(), bias(consts, node, 2, out)?)),
    ))
}

/// `[rows, cols]` row-major values transposed.
fn transpose(rows: usize, cols: usize, v: &[f32]) -> Vec<f32> {
    let mut t = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = v[r * cols + c];
        }
    }
    t
}

/// A dense layer from weight `w` with dimensions `d`, `[out, in]` when `out_first`.
fn dense(d: &[usize], w: &[f32], out_first: bool, bias: Vec<f32>) -> Result<Step, String> {
    let &[a, b] = d else {
        return Err(format!("weight of shape {d:?} (a matrix expected)"));
    };
    let (out, input, values) = if out_first {
        (a, b, w.to_vec())
    } else {
        (b, a, transpose(a, b, w))
    };
    if bias.len() != out {
        return Err(format!("{} bias values for {out} outputs", bias.len()));
    }
    Ok(Step::Layer(
        LayerKind::Linear { out_features: out },
        Some((vec![out, input], values, bias)),
    ))
}

fn gemm(consts: &HashMap<String, Constant>, node: &NodeProto) -> Result<Step, String> {
    if int(node, "transA", 0) != 0
        || float(node, "alpha", 1.0) != 1.0
        || float(node, "beta", 1.0) != 1.0
    {
        return Err("transA, alpha or beta other than 0, 1, 1".into());
    }
    let (d, w) = real(
        consts,
        node.input.get(1).ok_or("no weight input")?,
        "weight",
    )?;
    let &[a, b] = d else {
        return Err(format!("weight of shape {d:?} (a matrix expected)"));
    };
    // ONNX reads any nonzero transB as true.
    let out_first = int(node, "transB", 0) != 0;
    let out = if out_first { a } else { b };
    dense(d, w, out_first, bias(consts, node, 2, out)?)
}

fn pool(node: &NodeProto, max: bool) -> Result<Step, String> {
    unit_dilations(node)?;
    no_auto_pad(node)?;
    let padding = symmetric_pads(node)?;
    if int(node, "ceil_mode", 0) != 0 {
        return Err("ceil_mode 1 (floor only)".into());
    }
    let kernel = pair(node, "kernel_shape", [0, 0])?;
    if kernel == [0, 0] {
        return Err("no kernel_shape".into());
    }
    if padding[0] * 2 > kernel[0] || padding[1] * 2 > kernel[1] {
        return Err(format!(
            "pads {padding:?} more than half the window {kernel:?}"
        ));
    }
    // veil writes a stride equal to the window as no stride at all.
    let stride = Some(pair(node, "strides", [1, 1])?).filter(|&s| s != kernel);
    Ok(Step::Layer(
        if max {
            LayerKind::MaxPool2d {
                kernel,
                stride,
                padding,
            }
        } else {
            LayerKind::AvgPool2d {
                kernel,
                stride,
                padding,
                count_include_pad: padding != [0, 0] && int(node, "count_include_pad", 0) != 0,
            }
        },
        None,
    ))
}

fn reshape(consts: &HashMap<String, Constant>, node: &NodeProto) -> Result<Step, String> {
    let name = node.input.get(1).ok_or("no shape input")?;
    let Some(Constant::Integer(_, shape)) = consts.get(name) else {
        return Err(format!(
            "shape `{name}` is not a constant list of integers (export `nn.Flatten()` rather \
             than `x.view(x.size(0), -1)`)"
        ));
    };
    let Some((&batch, rest)) = shape.split_first() else {
        return Err("an empty target shape".into());
    };
    if batch != -1 && batch != 0 {
        return Err(format!(
            "target shape {shape:?} (the batch entry must be 0 or -1)"
        ));
    }
    // veil checks a reshape's size against its input; -1 in the flat case is a flatten.
    match rest {
        &[-1] => Ok(Step::Layer(LayerKind::Flatten, None)),
        dims if dims.iter().all(|&d| d > 0) && (dims.len() == 1 || dims.len() == 3) => {
            Ok(Step::Layer(
                LayerKind::Reshape {
                    shape: dims.iter().map(|&d| d as usize).collect(),
                },
                None,
            ))
        }
        _ => Err(format!(
            "target shape {shape:?} ([batch, n] or [batch, c, h, w] only)"
        )),
    }
}

/// Whether a `Softmax`/`LogSoftmax` runs over the class axis of `[batch, classes]` logits.
fn class_axis(node: &NodeProto) -> Result<(), String> {
    match int(node, "axis", -1) {
        -1 | 1 => Ok(()),
        a => Err(format!(
            "axis {a} (the class axis of [batch, classes] only)"
        )),
    }
}

/// `Dropout` is the identity at inference unless its `training_mode` input is given.
fn inference_dropout(node: &NodeProto) -> Result<Step, String> {
    match node.input.get(2).filter(|s| !s.is_empty()) {
        None => Ok(Step::Dropped),
        Some(_) => Err("a training_mode input (export the model in eval mode)".into()),
    }
}

/// Translates one node; `last` says whether it is the graph's final node.
pub(crate) fn step(
    consts: &HashMap<String, Constant>,
    node: &NodeProto,
    last: bool,
) -> Result<Step, String> {
    if !node.domain.is_empty() && node.domain != "ai.onnx" {
        return Err(format!(
            "domain `{}` (the default domain only)",
            node.domain
        ));
    }
    match node.op_type.as_str() {
        "Conv" => conv(consts, node),
        "Gemm" => gemm(consts, node),
        "MatMul" => {
            let (d, w) = real(
                consts,
                node.input.get(1).ok_or("no weight input")?,
                "weight",
            )?;
            dense(d, w, false, vec![0.0; d.get(1).copied().unwrap_or(0)])
        }
        "Relu" => Ok(Step::Layer(LayerKind::Relu, None)),
        "Sigmoid" => Ok(Step::Layer(LayerKind::Sigmoid, None)),
        "Clip" => crate::graph_ops::clip(consts, node),
        "BatchNormalization" => crate::graph_ops::batch_norm(consts, node),
        "GlobalAveragePool" => Ok(Step::Layer(LayerKind::GlobalAvgPool2d, None)),
        "Add" => crate::graph_ops::add(consts, node),
        "Concat" => crate::graph_ops::concat(consts, node),
        "MaxPool" => pool(node, true),
        "AveragePool" => pool(node, false),
        "Flatten" if int(node, "axis", 1) == 1 => Ok(Step::Layer(LayerKind::Flatten, None)),
        "Flatten" => Err(format!("axis {} (1 only)", int(node, "axis", 1))),
        "Reshape" => reshape(consts, node),
        "Identity" => Ok(Step::Dropped),
        "Dropout" => inference_dropout(node),
        "Softmax" | "LogSoftmax" if last => class_axis(node).map(|()| Step::Dropped),
        "Softmax" | "LogSoftmax" => Err("a softmax before the last node".into()),
        other => Err(format!(
            "operator {other} is not supported by import yet (supported: {})",
            SUPPORTED.join(", ")
        )),
    }
}
