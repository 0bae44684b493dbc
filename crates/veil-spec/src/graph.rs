//! The data flow of a spec: which activation each layer reads ([`Source`]), whether the spec
//! is a plain chain, and where it can be cut in two.
//!
//! A spec is a list of layers in execution order; a layer reads the layers named in its
//! `inputs` (each defined before it) or, with none named, the layer before it. So the list is
//! a topological order of the graph and cycles cannot be written. The last layer's output is
//! the model's output, and every other layer's output must be read by some layer.

use std::collections::HashMap;

use crate::{ModelSpec, SpecError};

/// The name by which a layer reads the model's input.
pub const INPUT: &str = "input";

/// Where one input of a layer comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The model's input.
    Input,
    /// The output of the layer at this index.
    Layer(usize),
}

impl Source {
    /// What layer `index` reads when it names no inputs: the layer before it, or the model
    /// input for the first layer.
    pub fn before(index: usize) -> Source {
        index.checked_sub(1).map_or(Source::Input, Source::Layer)
    }

    /// Position in the activation list of [`ModelSpec::validate`]: 0 for the input, `i + 1`
    /// for layer `i`.
    pub fn slot(self) -> usize {
        match self {
            Source::Input => 0,
            Source::Layer(i) => i + 1,
        }
    }
}

/// Every layer's sources, in the order of its `inputs`. Names resolve case-insensitively, to
/// layers defined earlier only; an unknown or later name is an error naming both layers.
pub(crate) fn resolve(spec: &ModelSpec) -> Result<Vec<Vec<Source>>, SpecError> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut sources = Vec::with_capacity(spec.layers.len());
    for (index, layer) in spec.layers.iter().enumerate() {
        let row = if layer.inputs.is_empty() {
            vec![Source::before(index)]
        } else {
            layer
                .inputs
                .iter()
                .map(|name| {
                    let key = name.to_ascii_lowercase();
                    if key == INPUT {
                        return Ok(Source::Input);
                    }
                    seen.get(&key)
                        .map(|&i| Source::Layer(i))
                        .ok_or_else(|| SpecError::Param {
                            index,
                            layer: layer.name.clone(),
                            reason: format!(
                                "input `{name}` is not the model input or a layer defined before this one"
                            ),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        seen.insert(layer.name.to_ascii_lowercase(), index);
        sources.push(row);
    }
    Ok(sources)
}

/// The first layer (other than the last) whose output no layer reads, if any.
pub(crate) fn unread_layer(sources: &[Vec<Source>]) -> Option<usize> {
    let mut read = vec![false; sources.len()];
    for s in sources.iter().flatten() {
        if let Source::Layer(i) = *s {
            read[i] = true;
        }
    }
    let last = sources.len().checked_sub(1)?;
    (0..last).find(|&i| !read[i])
}

/// Whether every layer reads exactly the layer before it (the model input for the first).
pub(crate) fn is_chain(sources: &[Vec<Source>]) -> bool {
    sources
        .iter()
        .enumerate()
        .all(|(i, row)| row.as_slice() == [Source::before(i)])
}

/// The layers after which the rest of the model reads nothing but that layer's output and
/// what is computed from it: the valid split points, in order. Every layer of a chain is one;
/// inside a residual block none is.
pub(crate) fn cut_points(sources: &[Vec<Source>]) -> Vec<usize> {
    let n = sources.len();
    // earliest[j]: the smallest slot any layer from j on reads.
    let mut earliest = vec![usize::MAX; n + 1];
    for j in (0..n).rev() {
        let here = sources[j].iter().map(|s| s.slot()).min().unwrap_or(0);
        earliest[j] = earliest[j + 1].min(here);
    }
    (0..n).filter(|&c| earliest[c + 1] > c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Layer, LayerKind, Shape};

    fn residual() -> ModelSpec {
        let conv = |out| LayerKind::Conv2d {
            out_channels: out,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            groups: 1,
        };
        ModelSpec {
            name: "res".into(),
            input_shape: Shape::chw(1, 8, 8),
            layers: vec![
                Layer::new("stem", conv(4)),
                Layer::new("relu0", LayerKind::Relu),
                Layer::new("conv1", conv(4)),
                Layer::new("relu1", LayerKind::Relu),
                Layer::new("conv2", conv(4)),
                Layer::reading("add", &["conv2", "relu0"], LayerKind::Add),
                Layer::new("relu2", LayerKind::Relu),
                Layer::new("flatten", LayerKind::Flatten),
                Layer::new("fc", LayerKind::Linear { out_features: 3 }),
            ],
        }
    }

    #[test]
    fn a_residual_block_has_no_cut_inside_it() {
        let spec = residual();
        spec.validate().expect("valid");
        let sources = resolve(&spec).expect("resolves");
        assert_eq!(sources[5], vec![Source::Layer(4), Source::Layer(1)]);
        assert!(!is_chain(&sources));
        let names: Vec<&str> = cut_points(&sources)
            .into_iter()
            .map(|i| spec.layers[i].name.as_str())
            .collect();
        assert_eq!(names, ["stem", "relu0", "add", "relu2", "flatten", "fc"]);
        assert_eq!(spec.split_index("add").expect("a cut"), 5);
        let err = spec.split_index("relu1").expect_err("inside").to_string();
        assert!(
            err.contains("not a split point") && err.contains("relu0, add"),
            "{err}"
        );
    }

    #[test]
    fn every_layer_of_a_chain_is_a_cut() {
        let spec = crate::zoo::lenet5();
        let sources = resolve(&spec).expect("resolves");
        assert!(is_chain(&sources));
        assert_eq!(
            cut_points(&sources),
            (0..spec.layers.len()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn forward_and_unknown_references_and_dead_branches_are_refused() {
        let mut spec = residual();
        spec.layers[5].inputs = vec!["conv2".into(), "relu2".into()];
        let err = spec.validate().expect_err("later layer").to_string();
        assert!(err.contains("`relu2`") && err.contains("add"), "{err}");
        let mut spec = residual();
        spec.layers[5].inputs = vec!["conv2".into(), "nowhere".into()];
        assert!(spec.validate().is_err());
        // conv2's output unread: add reads relu1 and relu0 instead.
        let mut spec = residual();
        spec.layers[5].inputs = vec!["relu1".into(), "relu0".into()];
        let err = spec.validate().expect_err("dead").to_string();
        assert!(err.contains("conv2") && err.contains("never read"), "{err}");
    }
}
