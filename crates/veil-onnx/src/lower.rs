//! Node-by-node translation of an ONNX graph into veil layers and weights.
//!
//! Invariants: the graph is walked in file order (ONNX requires topological order); a
//! translated node reads the layers that produced its activation inputs (named in the layer's
//! `inputs` unless it is just the previous layer), so the spec computes exactly the graph of
//! the file, a chain where the file is one; nodes that compute nothing at inference
//! (identity, dropout, the final softmax) pass their input's name on; every weight comes from
//! a constant, never from a graph input; the weights end in veil's layout (`[out, in]` for
//! linear layers, whatever `transB` said).

use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;

use veil_spec::graph::INPUT;
use veil_spec::weights::{Tensors, layout};
use veil_spec::{Layer, LayerKind, ModelSpec, Shape};

use crate::graph_ops::data_inputs;
use crate::ops::{Step, bias, step};
use crate::proto::{GraphProto, ModelProto, NodeProto};
use crate::tensor::{Constant, constants};
use crate::{Imported, OnnxError};

/// Default-domain opsets import accepts.
pub const OPSETS: RangeInclusive<i64> = 9..=18;

/// Whether import accepts one node (for `veil import --check`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeSupport {
    /// Node name (or `#index`).
    pub node: String,
    /// Operator.
    pub op: String,
    /// Why it cannot be imported, `None` when it can.
    pub problem: Option<String>,
}

fn label(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("#{index}")
    } else {
        node.name.clone()
    }
}

/// The graph input that is not a weight, and its sample shape (batch dimension dropped).
fn input(
    graph: &GraphProto,
    consts: &HashMap<String, Constant>,
) -> Result<(String, Shape), OnnxError> {
    let info = graph
        .input
        .iter()
        .find(|i| !consts.contains_key(&i.name))
        .ok_or_else(|| OnnxError::Invalid("the graph has no data input".into()))?;
    let dims: Vec<i64> = info
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .map(|s| s.dim.iter().map(|d| d.dim_value).collect())
        .unwrap_or_default();
    let sizes: Option<Vec<usize>> = dims
        .iter()
        .skip(1)
        .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0))
        .collect();
    let shape = match sizes.as_deref() {
        Some(&[c, h, w]) => Shape::chw(c, h, w),
        Some(&[n]) => Shape::flat(n),
        _ => {
            return Err(OnnxError::Invalid(format!(
                "input `{}` has shape {dims:?}: [batch, c, h, w] or [batch, n] with known \
                 sizes expected",
                info.name
            )));
        }
    };
    Ok((info.name.clone(), shape))
}

/// A layer name from the node name when it holds an identifier (`/conv1/Conv` -> `conv1`),
/// else the operation and a count (`conv1`, `relu2`, `fc1`); made unique.
fn layer_name(
    node: &NodeProto,
    kind: &LayerKind,
    taken: &mut HashSet<String>,
    counts: &mut HashMap<&'static str, usize>,
) -> String {
    let parts: Vec<&str> = node.name.split('/').filter(|s| !s.is_empty()).collect();
    let raw = if parts.len() >= 2 {
        parts[parts.len() - 2]
    } else {
        ""
    };
    let identifier = raw.starts_with(|c: char| c.is_ascii_alphabetic())
        && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let base = if identifier {
        raw.to_string()
    } else {
        let op = match kind {
            LayerKind::Linear { .. } => "fc",
            LayerKind::Conv2d { .. } => "conv",
            other => other.op_name().trim_end_matches("2d"),
        };
        let n = counts.entry(op).or_insert(0);
        *n += 1;
        format!("{op}{n}")
    };
    let mut name = base.clone();
    let mut k = 2;
    // veil-spec compares layer names without case.
    while !taken.insert(name.to_ascii_lowercase()) {
        name = format!("{base}_{k}");
        k += 1;
    }
    name
}

fn graph_of(model: &ModelProto) -> Result<(&GraphProto, i64), OnnxError> {
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| OnnxError::Invalid("no default-domain opset".into()))?;
    if !OPSETS.contains(&opset) {
        return Err(OnnxError::Invalid(format!(
            "opset {opset} (import reads {} to {})",
            OPSETS.start(),
            OPSETS.end()
        )));
    }
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::Invalid("the file has no graph".into()))?;
    Ok((graph, opset))
}

/// `node` as the bias addition after a MatMul whose output is `product`: a default-domain
/// `Add` of `product` and one other value, returned with that value's input index.
fn bias_add<'a>(node: &'a NodeProto, product: &str) -> Option<(&'a NodeProto, usize)> {
    let default_domain = node.domain.is_empty() || node.domain == "ai.onnx";
    if node.op_type != "Add" || !default_domain || node.input.len() != 2 {
        return None;
    }
    let at = node.input.iter().position(|i| i == product)?;
    Some((node, 1 - at))
}

/// A translated layer's parameters.
enum Params {
    /// `(weight shape, weight, bias)`.
    Affine((Vec<usize>, Vec<f32>, Vec<f32>)),
    /// Batch normalisation: scale, bias, running mean, running variance.
    Norm([Vec<f32>; 4]),
}

/// An `Identity` of a constant, which [`crate::tensor::constants`] already resolved.
fn is_constant_alias(consts: &HashMap<String, Constant>, node: &NodeProto) -> bool {
    node.op_type == "Identity" && node.input.first().is_some_and(|i| consts.contains_key(i))
}

/// Translates a decoded model (see the crate docs for the scope).
pub(crate) fn lower(model: &ModelProto, name: &str) -> Result<Imported, OnnxError> {
    let (graph, opset) = graph_of(model)?;
    let consts = constants(&graph.initializer, &graph.node)?;
    let (input_name, input_shape) = input(graph, &consts)?;
    let nodes: Vec<&NodeProto> = graph
        .node
        .iter()
        .filter(|n| n.op_type != "Constant" && !is_constant_alias(&consts, n))
        .collect();
    let (mut layers, mut tensors, mut dropped, mut taken) = (
        Vec::<Layer>::new(),
        Tensors::new(),
        Vec::new(),
        HashSet::new(),
    );
    // `input` names the model input in a spec: no layer may take it.
    taken.insert(INPUT.to_string());
    // ONNX value name -> the veil layer (or the model input) that computes it.
    let mut produced: HashMap<String, String> = HashMap::new();
    produced.insert(input_name, INPUT.to_string());
    let mut counts = HashMap::new();
    let mut i = 0;
    while i < nodes.len() {
        let (node, at) = (nodes[i], i);
        let unsupported = |what: String| OnnxError::Unsupported {
            node: label(node, at),
            op: node.op_type.clone(),
            what,
        };
        let mut reads = Vec::new();
        for value in data_inputs(&consts, node) {
            match produced.get(value) {
                Some(layer) => reads.push(layer.clone()),
                None => {
                    return Err(unsupported(format!(
                        "reads `{value}`, which is neither the model input, a constant nor the \
                         output of an earlier node"
                    )));
                }
            }
        }
        let Some(mut out) = node.output.first().filter(|o| !o.is_empty()).cloned() else {
            return Err(unsupported("no output".into()));
        };
        let mut translated = step(&consts, node, i + 1 == nodes.len()).map_err(unsupported)?;
        // MatMul + Add(bias) is one linear layer (PyTorch writes the bias first).
        if node.op_type == "MatMul"
            && let Some((next, bias_input)) = nodes.get(i + 1).and_then(|n| bias_add(n, &out))
            && consts.contains_key(&next.input[bias_input])
            && let Step::Layer(_, Some((_, _, b))) = &mut translated
        {
            *b = bias(&consts, next, bias_input, b.len()).map_err(|what| {
                OnnxError::Unsupported {
                    node: label(next, i + 1),
                    op: "Add".into(),
                    what,
                }
            })?;
            out = next.output.first().cloned().unwrap_or_default();
            i += 1;
        }
        let (kind, params) = match translated {
            Step::Dropped => {
                let [only] = reads.as_slice() else {
                    return Err(unsupported(format!(
                        "{} activation inputs (one expected)",
                        reads.len()
                    )));
                };
                produced.insert(out, only.clone());
                dropped.push(format!("{} ({})", label(node, i), node.op_type));
                i += 1;
                continue;
            }
            Step::Layer(kind, params) => (kind, params.map(Params::Affine)),
            Step::Norm(kind, stats) => (kind, Some(Params::Norm(stats))),
        };
        let arity_ok = match kind.arity() {
            veil_spec::Arity::One => reads.len() == 1,
            veil_spec::Arity::Many => reads.len() >= 2,
        };
        if !arity_ok {
            return Err(unsupported(format!(
                "{} activation inputs for a {}",
                reads.len(),
                kind.op_name()
            )));
        }
        let lname = layer_name(node, &kind, &mut taken, &mut counts);
        match params {
            Some(Params::Affine((wd, w, b))) => {
                tensors.insert(format!("{lname}.bias"), (vec![b.len()], b));
                tensors.insert(format!("{lname}.weight"), (wd, w));
            }
            Some(Params::Norm(stats)) => {
                for (suffix, v) in ["weight", "bias", "running_mean", "running_var"]
                    .iter()
                    .zip(stats)
                {
                    tensors.insert(format!("{lname}.{suffix}"), (vec![v.len()], v));
                }
            }
            None => {}
        }
        let previous = layers.last().map_or(INPUT, |l| l.name.as_str());
        let layer = match reads.as_slice() {
            [only] if only == previous => Layer::new(lname.clone(), kind),
            _ => Layer {
                name: lname.clone(),
                inputs: reads,
                kind,
            },
        };
        layers.push(layer);
        produced.insert(out, lname);
        i += 1;
    }
    if graph.output.len() != 1 {
        return Err(OnnxError::Invalid(format!(
            "{} graph outputs (one, the logits, expected)",
            graph.output.len()
        )));
    }
    let last = layers.last().map(|l| l.name.clone());
    let output = graph.output.first().and_then(|o| produced.get(&o.name));
    if last.is_none() || output != last.as_ref() {
        return Err(OnnxError::Invalid(format!(
            "the graph's output is not computed by its last node (last layer: `{}`)",
            last.unwrap_or_default()
        )));
    }
    let spec = ModelSpec::new(name, input_shape, layers)?;
    for entry in layout(&spec)? {
        match tensors.get(&entry.name) {
            Some((shape, _)) if *shape == entry.shape => {}
            got => {
                return Err(OnnxError::Invalid(format!(
                    "`{}` has shape {:?} where the model needs {:?}",
                    entry.name,
                    got.map(|g| &g.0),
                    entry.shape
                )));
            }
        }
    }
    Ok(Imported {
        spec,
        tensors,
        opset,
        dropped,
    })
}

/// For each node of the file, whether import translates it (ignoring the chain structure).
pub fn coverage(bytes: &[u8]) -> Result<Vec<NodeSupport>, OnnxError> {
    let model = crate::decode_model(bytes)?;
    let (graph, _) = graph_of(&model)?;
    let consts = constants(&graph.initializer, &graph.node)?;
    let nodes: Vec<&NodeProto> = graph
        .node
        .iter()
        .filter(|n| n.op_type != "Constant" && !is_constant_alias(&consts, n))
        .collect();
    Ok(nodes
        .iter()
        .enumerate()
        .map(|(i, node)| NodeSupport {
            node: label(node, i),
            op: node.op_type.clone(),
            problem: if i > 0
                && nodes[i - 1].op_type == "MatMul"
                && nodes[i - 1]
                    .output
                    .first()
                    .is_some_and(|out| bias_add(node, out).is_some())
            {
                None
            } else {
                step(&consts, node, i + 1 == nodes.len()).err()
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::proto::{
        Dimension, OperatorSetIdProto, TensorProto, TensorShapeProto, TensorTypeProto, TypeProto,
        ValueInfoProto,
    };
    use crate::{OnnxError, import};

    const SEQ: &[u8] = include_bytes!("../tests/fixtures/torch-seq-opset17.onnx");
    /// A graph (BatchNormalization, residual adds) for the hostile-input cases too.
    const RESNET: &[u8] = include_bytes!("../tests/fixtures/torch-resnet-opset13.onnx");

    fn fixture() -> ModelProto {
        ModelProto::decode(SEQ).expect("fixture")
    }

    fn encode(m: &ModelProto) -> Vec<u8> {
        m.encode_to_vec()
    }

    fn value(name: &str, dims: &[i64]) -> ValueInfoProto {
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                tensor_type: Some(TensorTypeProto {
                    elem_type: 1,
                    shape: Some(TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|&d| Dimension {
                                dim_value: d,
                                dim_param: String::new(),
                            })
                            .collect(),
                    }),
                }),
            }),
        }
    }

    fn floats(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
        TensorProto {
            dims: dims.to_vec(),
            data_type: 1,
            float_data: v.to_vec(),
            name: name.into(),
            ..TensorProto::default()
        }
    }

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            name: format!("/{output}/{op}"),
            op_type: op.into(),
            ..NodeProto::default()
        }
    }

    /// `x [batch, 2]` through `nodes` with the given initializers, output `y`.
    fn tiny(nodes: Vec<NodeProto>, initializer: Vec<TensorProto>) -> ModelProto {
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            producer_name: "test".into(),
            graph: Some(GraphProto {
                node: nodes,
                name: "g".into(),
                initializer,
                input: vec![value("x", &[0, 2])],
                output: vec![value("y", &[0, 3])],
            }),
        }
    }

    fn weights() -> Vec<TensorProto> {
        vec![
            floats("W", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            floats("b", &[3], &[0.5, -0.5, 0.0]),
        ]
    }

    /// The one linear layer of an import: its weight (veil's `[out, in]`) and bias.
    fn linear(imported: &Imported) -> (Vec<usize>, Vec<f32>, Vec<f32>) {
        assert_eq!(imported.spec.layers.len(), 1);
        assert_eq!(
            imported.spec.layers[0].kind,
            LayerKind::Linear { out_features: 3 }
        );
        let name = &imported.spec.layers[0].name;
        let (shape, w) = imported.tensors[&format!("{name}.weight")].clone();
        (
            shape,
            w,
            imported.tensors[&format!("{name}.bias")].1.clone(),
        )
    }

    /// `MatMul(x, W [2, 3]) + b` in both operand orders (PyTorch writes `Add(b, xW)`), and
    /// `Gemm` with `transB = 0`: one linear layer, weight transposed to veil's `[out, in]`.
    #[test]
    fn matmul_add_and_gemm_become_one_linear_layer_in_veil_layout() {
        let want = (
            vec![3, 2],
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0],
            vec![0.5, -0.5, 0.0],
        );
        for add in [["fc", "b"], ["b", "fc"]] {
            let m = tiny(
                vec![node("MatMul", &["x", "W"], "fc"), node("Add", &add, "y")],
                weights(),
            );
            assert_eq!(linear(&import(&encode(&m), "tiny").expect("import")), want);
        }
        let m = tiny(vec![node("Gemm", &["x", "W", "b"], "y")], weights());
        assert_eq!(linear(&import(&encode(&m), "tiny").expect("import")), want);
        // A bias shaped as a column adds per sample, not per feature: refused.
        let mut column = weights();
        column[1] = floats("b", &[3, 1], &[0.5, -0.5, 0.0]);
        let m = tiny(vec![node("Gemm", &["x", "W", "b"], "y")], column);
        assert!(import(&encode(&m), "tiny").is_err());
    }

    #[test]
    fn reshapes_keep_the_batch_entry_free_and_outputs_are_single() {
        let shape = |v: &[i64]| TensorProto {
            dims: vec![v.len() as i64],
            data_type: 7,
            int64_data: v.to_vec(),
            name: "s".into(),
            ..TensorProto::default()
        };
        let with = |s: &[i64]| {
            let mut init = weights();
            init.push(shape(s));
            tiny(
                vec![
                    node("Reshape", &["x", "s"], "r"),
                    node("Gemm", &["r", "W", "b"], "y"),
                ],
                init,
            )
        };
        let imported = import(&encode(&with(&[0, 2])), "m").expect("import");
        assert_eq!(
            imported.spec.layers[0].kind,
            LayerKind::Reshape { shape: vec![2] }
        );
        assert!(import(&encode(&with(&[-1, -1])), "m").is_ok());
        // A fixed batch entry would fold samples together at another batch size.
        assert!(matches!(
            import(&encode(&with(&[1, 2])), "m"),
            Err(OnnxError::Unsupported { .. })
        ));
        let mut two_outputs = tiny(vec![node("Gemm", &["x", "W", "b"], "y")], weights());
        if let Some(g) = two_outputs.graph.as_mut() {
            g.output.push(value("z", &[0, 3]));
        }
        assert!(matches!(
            import(&encode(&two_outputs), "m"),
            Err(OnnxError::Invalid(_))
        ));
    }

    fn expect_unsupported(m: &ModelProto, needle: &str) {
        match import(&encode(m), "m") {
            Err(e @ OnnxError::Unsupported { .. }) => {
                let text = e.to_string();
                assert!(text.contains(needle), "`{text}` lacks `{needle}`");
            }
            other => panic!("expected an unsupported node ({needle}), got {other:?}"),
        }
    }

    #[test]
    fn unsupported_nodes_are_named_with_what_is_missing() {
        let mut m = fixture();
        let g = m.graph.as_mut().expect("graph");
        g.node[1].op_type = "Tanh".into();
        expect_unsupported(&m, "Tanh is not supported");

        let mut m = fixture();
        let g = m.graph.as_mut().expect("graph");
        for a in &mut g.node[0].attribute {
            if a.name == "group" {
                a.i = -2;
            }
        }
        expect_unsupported(&m, "group -2");

        let mut m = fixture();
        let g = m.graph.as_mut().expect("graph");
        g.node[3].input[0] = "nowhere".into();
        expect_unsupported(&m, "neither the model input");

        let mut m = fixture();
        let g = m.graph.as_mut().expect("graph");
        for a in &mut g.node[2].attribute {
            if a.name == "pads" {
                a.ints = vec![2, 2, 2, 2];
            }
        }
        expect_unsupported(&m, "more than half the window");
    }

    /// A graph the spec cannot hold is refused with the spec's reason: two groups cannot
    /// split the image's one channel, and a branch nobody reads is not a model.
    #[test]
    fn graphs_that_do_not_validate_are_refused() {
        let mut m = fixture();
        let g = m.graph.as_mut().expect("graph");
        for a in &mut g.node[0].attribute {
            if a.name == "group" {
                a.i = 2;
            }
        }
        let err = import(&encode(&m), "m").expect_err("groups").to_string();
        assert!(err.contains("groups must divide"), "{err}");
        let mut m = fixture();
        let g = m.graph.as_mut().expect("graph");
        // conv2 now reads the first ReLU, so the max pool's output is never read.
        g.node[3].input[0] = g.node[1].output[0].clone();
        let err = import(&encode(&m), "m")
            .expect_err("dead branch")
            .to_string();
        assert!(err.contains("never read"), "{err}");
    }

    #[test]
    fn opsets_outside_the_range_are_refused() {
        let mut m = fixture();
        m.opset_import[0].version = 20;
        assert!(matches!(
            import(&encode(&m), "m"),
            Err(OnnxError::Invalid(_))
        ));
    }

    /// Every truncation of a valid file is an error, never a panic (prost bounds every length
    /// by the bytes it has).
    #[test]
    fn every_truncation_is_an_error() {
        for file in [SEQ, RESNET] {
            for len in (0..file.len()).step_by(7) {
                assert!(
                    import(&file[..len], "m").is_err(),
                    "a file cut at {len} bytes imported"
                );
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Corrupted bytes never panic: import returns a model or an error.
        #[test]
        fn corrupted_files_never_panic(
            flips in proptest::collection::vec((0..SEQ.len(), 0u8..=255), 1..8)
        ) {
            let mut bytes = SEQ.to_vec();
            for (at, v) in flips {
                bytes[at] = v;
            }
            let _ = import(&bytes, "m");
            let _ = coverage(&bytes);
        }

        /// The same for the graph fixture (batch-norm statistics, branch names).
        #[test]
        fn corrupted_graphs_never_panic(
            flips in proptest::collection::vec((0..RESNET.len(), 0u8..=255), 1..8)
        ) {
            let mut bytes = RESNET.to_vec();
            for (at, v) in flips {
                bytes[at] = v;
            }
            let _ = import(&bytes, "m");
            let _ = coverage(&bytes);
        }
    }
}
