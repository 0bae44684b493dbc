//! [`ModelSpec`]: a named layer list (a chain, or a graph whose layers name their inputs) with
//! its input shape, validation and (de)serialization.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

use crate::graph::{self, INPUT, Source};
use crate::{Layer, LayerKind, Shape, SpecError};

/// Most parameters a spec may have (2^28, 1 GiB as `f32`): checked by
/// [`ModelSpec::validate`] before any interpreter allocates weights, so a few hostile bytes of
/// spec cannot ask for terabytes.
pub const MAX_PARAMS: u64 = 1 << 28;

/// Most values one sample's activation may have at any layer (2^26, 256 MiB as `f32`).
pub const MAX_ACTIVATION: usize = 1 << 26;

/// A model: input shape plus an ordered list of uniquely named layers.
///
/// Invariant after [`ModelSpec::validate`] succeeds: every name is unique (and none is
/// `input`), every layer reads layers defined before it ([`crate::graph`]), accepts the shapes
/// they produce, and is read by a later layer unless it is the last. All interpreters
/// (engine, cost model, planner, secure engine) assume a validated spec; those that run
/// chains only call [`ModelSpec::require_chain`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Model name (for zoo models, the zoo key).
    pub name: String,
    /// Shape of one input sample.
    pub input_shape: Shape,
    /// Layers in execution order.
    pub layers: Vec<Layer>,
}

impl ModelSpec {
    /// Creates a spec and validates it.
    pub fn new(
        name: impl Into<String>,
        input_shape: Shape,
        layers: Vec<Layer>,
    ) -> Result<Self, SpecError> {
        let spec = ModelSpec {
            name: name.into(),
            input_shape,
            layers,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Runs shape inference over all layers and checks names, inputs and hyper-parameters,
    /// and that no activation passes [`MAX_ACTIVATION`] values per sample and the whole model
    /// [`MAX_PARAMS`] parameters.
    ///
    /// Returns the activation shapes: element 0 is the input, element `i + 1` the output of
    /// layer `i`. Layer `i` reads the elements its [`ModelSpec::sources`] name (for a chain,
    /// element `i`).
    pub fn validate(&self) -> Result<Vec<Shape>, SpecError> {
        if !self.input_shape.is_valid() {
            return Err(SpecError::Input(self.input_shape.clone()));
        }
        let mut names = HashSet::new();
        for layer in &self.layers {
            let key = layer.name.to_ascii_lowercase();
            if layer.name.trim().is_empty() || key == INPUT || !names.insert(key) {
                return Err(SpecError::Name(layer.name.clone()));
            }
        }
        let sources = graph::resolve(self)?;
        let mut shapes = Vec::with_capacity(self.layers.len() + 1);
        shapes.push(self.input_shape.clone());
        let mut params: u64 = 0;
        for (index, layer) in self.layers.iter().enumerate() {
            layer
                .kind
                .check_params()
                .map_err(|reason| SpecError::Param {
                    index,
                    layer: layer.name.clone(),
                    reason,
                })?;
            let inputs: Vec<&Shape> = sources[index].iter().map(|s| &shapes[s.slot()]).collect();
            let shape_err = |reason| SpecError::Shape {
                index,
                layer: layer.name.clone(),
                input: inputs[0].clone(),
                reason,
            };
            let out = layer.kind.output_shape_of(&inputs).map_err(shape_err)?;
            if !out.is_valid() || out.numel() > MAX_ACTIVATION {
                return Err(shape_err(format!(
                    "output shape {out} is empty or above the budget of {MAX_ACTIVATION} values per sample"
                )));
            }
            params =
                params.saturating_add(crate::cost::params_and_macs(&layer.kind, inputs[0], &out).0);
            if params > MAX_PARAMS {
                return Err(SpecError::Param {
                    index,
                    layer: layer.name.clone(),
                    reason: format!(
                        "the model reaches {params} parameters here, above the budget of {MAX_PARAMS}"
                    ),
                });
            }
            shapes.push(out);
        }
        if let Some(index) = graph::unread_layer(&sources) {
            return Err(SpecError::Param {
                index,
                layer: self.layers[index].name.clone(),
                reason: "its output is never read (only the last layer is the model's output)"
                    .into(),
            });
        }
        Ok(shapes)
    }

    /// Where each layer's inputs come from (see [`crate::graph`]); validates the spec.
    pub fn sources(&self) -> Result<Vec<Vec<Source>>, SpecError> {
        self.validate()?;
        graph::resolve(self)
    }

    /// Whether every layer reads just the layer before it (true of a spec that names no
    /// inputs). A spec that does not validate is not a chain.
    pub fn is_chain(&self) -> bool {
        self.sources().is_ok_and(|s| graph::is_chain(&s))
    }

    /// Refuses a graph spec on behalf of `interpreter`, which runs chains only: the error
    /// names the first layer that reads something other than the layer before it.
    pub fn require_chain(&self, interpreter: &str) -> Result<(), SpecError> {
        let sources = self.sources()?;
        let off_chain = sources
            .iter()
            .enumerate()
            .position(|(i, row)| row.as_slice() != [Source::before(i)]);
        match off_chain {
            None => Ok(()),
            Some(i) => Err(SpecError::Unsupported {
                model: self.name.clone(),
                layer: self.layers[i].name.clone(),
                reason: format!(
                    "{interpreter} runs chains of layers only, and this layer reads {} (a graph); \
                     graph models run in `veil eval`, `veil infer`, `veil train`, `veil attack`, \
                     `veil profile` and the cost model",
                    self.layers[i].inputs.join(", ")
                ),
            }),
        }
    }

    /// Index of layer `name` as a split point: the layer must be a cut point
    /// ([`ModelSpec::cut_points`]), since inside a residual block the device would have to
    /// send more than that layer's output (what an attack there would understate). For a
    /// chain this is [`ModelSpec::layer_index`].
    pub fn split_index(&self, name: &str) -> Result<usize, SpecError> {
        let index = self.layer_index(name)?;
        let cuts = self.cut_points()?;
        if cuts.contains(&index) {
            return Ok(index);
        }
        Err(SpecError::Unsupported {
            model: self.name.clone(),
            layer: self.layers[index].name.clone(),
            reason: format!(
                "not a split point: layers after it also read activations from before it (a \
                 residual block); split points: {}",
                cuts.iter()
                    .map(|&i| self.layers[i].name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// The layers after which the rest of the model depends on nothing computed before them:
    /// where the model can be split between a device and a helper (every layer of a chain).
    pub fn cut_points(&self) -> Result<Vec<usize>, SpecError> {
        Ok(graph::cut_points(&self.sources()?))
    }

    /// Activation shapes (see [`ModelSpec::validate`]).
    pub fn shapes(&self) -> Result<Vec<Shape>, SpecError> {
        self.validate()
    }

    /// Shape of the model output.
    pub fn output_shape(&self) -> Result<Shape, SpecError> {
        let mut shapes = self.validate()?;
        Ok(shapes.pop().unwrap_or_else(|| self.input_shape.clone()))
    }

    /// Index of the layer called `name` (case-insensitive).
    pub fn layer_index(&self, name: &str) -> Result<usize, SpecError> {
        self.layers
            .iter()
            .position(|l| l.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| SpecError::UnknownLayer {
                model: self.name.clone(),
                layer: name.to_string(),
                available: self
                    .layers
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Indices of the layers that own parameters, in order.
    pub fn param_layers(&self) -> impl Iterator<Item = (usize, &Layer)> {
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, l)| l.kind.has_params())
    }

    /// The same spec with its last linear layer resized to `classes` outputs (a classifier
    /// head for another dataset). Fails when the model output is not a flat vector produced by
    /// a linear layer (e.g. ObfNets, whose output is an image).
    pub fn with_output_classes(&self, classes: usize) -> Result<Self, SpecError> {
        let last = self.layers.len().checked_sub(1);
        let head = last.filter(|&i| matches!(self.layers[i].kind, LayerKind::Linear { .. }));
        let Some(index) = head else {
            return Err(SpecError::Param {
                index: last.unwrap_or(0),
                layer: self
                    .layers
                    .last()
                    .map(|l| l.name.clone())
                    .unwrap_or_default(),
                reason: format!(
                    "model {} does not end in a linear classifier layer, so it cannot be trained as a classifier",
                    self.name
                ),
            });
        };
        let mut spec = self.clone();
        spec.layers[index].kind = LayerKind::Linear {
            out_features: classes,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Whether the spec contains a layer of this kind anywhere.
    pub fn contains(&self, pred: impl Fn(&LayerKind) -> bool) -> bool {
        self.layers.iter().any(|l| pred(&l.kind))
    }

    /// Parses and validates a TOML spec.
    pub fn from_toml_str(text: &str) -> Result<Self, SpecError> {
        let spec: ModelSpec = toml::from_str(text).map_err(|e| SpecError::Parse {
            format: "TOML",
            message: e.to_string(),
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Parses and validates a JSON spec.
    pub fn from_json_str(text: &str) -> Result<Self, SpecError> {
        let spec: ModelSpec = serde_json::from_str(text).map_err(|e| SpecError::Parse {
            format: "JSON",
            message: e.to_string(),
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// What a `--model` names: a spec file (`.toml` or `.json` extension), else a zoo model.
    pub fn resolve(model: &str) -> Result<Self, SpecError> {
        let path = Path::new(model);
        let is_spec_file = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml") || e.eq_ignore_ascii_case("json"));
        match is_spec_file {
            true => Self::from_file(path),
            false => crate::zoo::model(model),
        }
    }

    /// Reads a spec file: `.json` is JSON, anything else TOML.
    pub fn from_file(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            Self::from_json_str(&text)
        } else {
            Self::from_toml_str(&text)
        }
    }

    /// The spec as pretty TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot serialize: {e}\n"))
    }

    /// The spec as compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo;

    #[test]
    fn lenet5_shapes_follow_the_paper() {
        let spec = zoo::model("lenet5").expect("zoo");
        let shapes = spec.validate().expect("valid");
        let by_name = |n: &str| shapes[spec.layer_index(n).expect("layer") + 1].clone();
        assert_eq!(by_name("conv1"), Shape::chw(6, 28, 28));
        assert_eq!(by_name("pool1"), Shape::chw(6, 14, 14));
        assert_eq!(by_name("conv2"), Shape::chw(16, 10, 10));
        assert_eq!(by_name("pool2"), Shape::chw(16, 5, 5));
        assert_eq!(by_name("flatten"), Shape::flat(400));
        assert_eq!(spec.output_shape().expect("out"), Shape::flat(10));
    }

    #[test]
    fn linear_without_flatten_is_rejected_with_context() {
        let text = r#"
            name = "bad"
            input_shape = [1, 28, 28]
            [[layers]]
            name = "fc1"
            op = "linear"
            out_features = 10
        "#;
        let err = ModelSpec::from_toml_str(text).expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("fc1") && msg.contains("flatten"), "{msg}");
    }

    #[test]
    fn oversized_kernel_is_rejected() {
        let text = r#"{"name":"k","input_shape":[1,4,4],"layers":[
            {"name":"c","op":"conv2d","out_channels":2,"kernel":[5,5]}]}"#;
        let err = ModelSpec::from_json_str(text).expect_err("must fail");
        assert!(matches!(err, SpecError::Shape { index: 0, .. }), "{err}");
    }

    #[test]
    fn duplicate_names_and_bad_params_are_rejected() {
        let dup = r#"{"name":"d","input_shape":[4],"layers":[
            {"name":"a","op":"relu"},{"name":"A","op":"relu"}]}"#;
        assert!(matches!(
            ModelSpec::from_json_str(dup),
            Err(SpecError::Name(_))
        ));
        let drop = r#"{"name":"d","input_shape":[4],"layers":[
            {"name":"a","op":"dropout","prob":1.5}]}"#;
        assert!(matches!(
            ModelSpec::from_json_str(drop),
            Err(SpecError::Param { .. })
        ));
        let zero = r#"{"name":"d","input_shape":[0,2,2],"layers":[]}"#;
        assert!(matches!(
            ModelSpec::from_json_str(zero),
            Err(SpecError::Input(_))
        ));
        let garbage = "name = [";
        assert!(matches!(
            ModelSpec::from_toml_str(garbage),
            Err(SpecError::Parse { .. })
        ));
    }

    #[test]
    fn every_zoo_model_round_trips_through_toml_and_json() {
        for name in zoo::names() {
            let spec = zoo::model(name).expect("zoo");
            let toml_back = ModelSpec::from_toml_str(&spec.to_toml()).expect("toml");
            assert_eq!(toml_back, spec, "{name} via TOML");
            let json_back = ModelSpec::from_json_str(&spec.to_json()).expect("json");
            assert_eq!(json_back, spec, "{name} via JSON");
        }
    }

    #[test]
    fn hostile_sizes_are_rejected_without_overflow() {
        let huge = r#"{"name":"h","input_shape":[1,28,28],"layers":[
            {"name":"c","op":"conv2d","out_channels":2,"kernel":[3,3],"padding":[18446744073709551615,0]}]}"#;
        assert!(matches!(
            ModelSpec::from_json_str(huge),
            Err(SpecError::Param { .. })
        ));
        let big_input =
            r#"{"name":"h","input_shape":[4294967296,4294967296,4294967296],"layers":[]}"#;
        assert!(matches!(
            ModelSpec::from_json_str(big_input),
            Err(SpecError::Input(_))
        ));
        let wide = r#"{"name":"h","input_shape":[1000],"layers":[
            {"name":"f","op":"linear","out_features":1048576},
            {"name":"r","op":"reshape","shape":[1048576, 1024, 1]}]}"#;
        assert!(ModelSpec::from_json_str(wide).is_err());
        let outpad = r#"{"name":"t","input_shape":[8,7,7],"layers":[
            {"name":"up","op":"conv_transpose2d","out_channels":1,"kernel":[4,4],
             "stride":[2,2],"output_padding":[2,0]}]}"#;
        assert!(matches!(
            ModelSpec::from_json_str(outpad),
            Err(SpecError::Param { .. })
        ));
    }

    #[test]
    fn output_classes_can_be_changed_only_on_classifiers() {
        let spec = zoo::lenet5().with_output_classes(43).expect("classifier");
        assert_eq!(spec.output_shape().expect("out"), Shape::flat(43));
        assert!(
            zoo::model("obfnet1")
                .expect("zoo")
                .with_output_classes(10)
                .is_err()
        );
    }

    #[test]
    fn conv_transpose_inverts_a_stride_two_conv() {
        let text = r#"{"name":"t","input_shape":[8,7,7],"layers":[
            {"name":"up","op":"conv_transpose2d","out_channels":1,"kernel":[4,4],
             "stride":[2,2],"padding":[1,1]}]}"#;
        let spec = ModelSpec::from_json_str(text).expect("valid");
        assert_eq!(spec.output_shape().expect("out"), Shape::chw(1, 14, 14));
    }

    #[test]
    fn layer_lookup_is_case_insensitive_and_lists_names_on_error() {
        let spec = zoo::model("cifar_cnn").expect("zoo");
        assert_eq!(
            spec.layer_index("ReLU22").expect("found"),
            spec.layer_index("relu22").expect("found")
        );
        let err = spec.layer_index("conv99").expect_err("missing").to_string();
        assert!(err.contains("conv11"), "{err}");
    }

    #[test]
    fn specs_beyond_the_budgets_are_refused_before_anything_allocates() {
        let wide = r#"{"name": "w", "input_shape": [1, 28, 28], "layers": [
            {"name": "c", "op": "conv2d", "out_channels": 1048576, "kernel": [5, 5]}]}"#;
        let err = ModelSpec::from_json_str(wide)
            .expect_err("activation")
            .to_string();
        assert!(err.contains("budget"), "{err}");
        let dense = r#"{"name": "d", "input_shape": [1048576], "layers": [
            {"name": "fc", "op": "linear", "out_features": 1048576}]}"#;
        let err = ModelSpec::from_json_str(dense)
            .expect_err("parameters")
            .to_string();
        assert!(err.contains("parameters"), "{err}");
        for name in crate::zoo::names() {
            crate::zoo::model(name).expect("every zoo model fits the budgets");
        }
    }
}
