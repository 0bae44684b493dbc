//! [`Model`] (spec + parameters) and [`Activation`] (what flows between layers).

use std::ops::Range;

use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use veil_data::Dataset;
use veil_spec::{LayerKind, ModelSpec, Shape};

use crate::ModelError;
use crate::network::{Network, Op};

/// A batch flowing through the layers: feature maps `[b, c, h, w]` or vectors `[b, n]`.
#[derive(Clone, Debug)]
pub enum Activation {
    /// Feature maps.
    Maps(Tensor<4>),
    /// Flat vectors.
    Flat(Tensor<2>),
}

impl Activation {
    /// Wraps `batch` samples of `shape` (no batch dim) stored contiguously in `values`.
    pub fn from_values(
        values: Vec<f32>,
        shape: &Shape,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let per = shape.numel();
        if per == 0 || values.is_empty() || !values.len().is_multiple_of(per) {
            return Err(ModelError::Shape {
                context: "input batch".into(),
                expected: shape.dims().to_vec(),
                got: vec![values.len()],
            });
        }
        let b = values.len() / per;
        Ok(match shape.as_chw() {
            Some((c, h, w)) => Activation::Maps(Tensor::from_data(
                TensorData::new(values, [b, c, h, w]),
                device,
            )),
            None => Activation::Flat(Tensor::from_data(TensorData::new(values, [b, per]), device)),
        })
    }

    /// Batch size.
    pub fn batch(&self) -> usize {
        match self {
            Activation::Maps(t) => t.dims()[0],
            Activation::Flat(t) => t.dims()[0],
        }
    }

    /// Shape of one sample.
    pub fn sample_shape(&self) -> Shape {
        match self {
            Activation::Maps(t) => {
                let [_, c, h, w] = t.dims();
                Shape::chw(c, h, w)
            }
            Activation::Flat(t) => Shape::flat(t.dims()[1]),
        }
    }

    /// As `[b, n]` (flattening feature maps row-major).
    pub fn into_flat(self) -> Tensor<2> {
        match self {
            Activation::Maps(t) => {
                let [b, c, h, w] = t.dims();
                t.reshape([b, c * h * w])
            }
            Activation::Flat(t) => t,
        }
    }

    /// Copies the values out, sample-major.
    pub fn into_values(self) -> Result<Vec<f32>, ModelError> {
        self.into_flat()
            .try_into_vec_as::<f32>()
            .map_err(|e| ModelError::Invalid(format!("cannot read activation values: {e:?}")))
    }
}

/// A model: a validated spec and the burn parameters for it (inference mode).
#[derive(Debug, Clone)]
pub struct Model {
    spec: ModelSpec,
    shapes: Vec<Shape>,
    pub(crate) net: Network,
    device: Device,
}

impl Model {
    /// A model with freshly initialised weights (Kaiming-uniform as PyTorch), seeded.
    ///
    /// The device's random generator is shared by every thread, and burn initialises
    /// parameters lazily; so seeding and drawing every parameter happen together under one
    /// process-wide lock. Without it, two threads initialising models at once interleave
    /// their draws and the same seed gives different weights.
    pub fn init(spec: ModelSpec, seed: u64) -> Result<Self, ModelError> {
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let device = crate::device();
        let shapes = spec.validate()?;
        let guard = INIT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        device.seed(seed);
        let net = Network::build(&spec, &device)?;
        net.materialise();
        drop(guard);
        Ok(Model {
            spec,
            shapes,
            net,
            device,
        })
    }

    pub(crate) fn from_parts(spec: ModelSpec, net: Network) -> Result<Self, ModelError> {
        let shapes = spec.validate()?;
        Ok(Model {
            spec,
            shapes,
            net,
            device: crate::device(),
        })
    }

    /// The spec.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The device tensors for this model must live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Activation shapes: index 0 the input, `i + 1` the output of layer `i`.
    pub fn shapes(&self) -> &[Shape] {
        &self.shapes
    }

    /// Runs layers `range` (indices into the spec) on `x`.
    ///
    /// `x` must have the shape the first layer of the range takes.
    pub fn forward_range(
        &self,
        x: Activation,
        range: Range<usize>,
    ) -> Result<Activation, ModelError> {
        if let Some(expected) = self.shapes.get(range.start)
            && x.sample_shape() != *expected
        {
            return Err(ModelError::Shape {
                context: format!("input of layer {} of model {}", range.start, self.spec.name),
                expected: expected.dims().to_vec(),
                got: x.sample_shape().dims().to_vec(),
            });
        }
        forward_layers(&self.spec, &self.net, x, range)
    }

    /// Runs the whole model.
    pub fn forward(&self, x: Activation) -> Result<Activation, ModelError> {
        self.forward_range(x, 0..self.spec.layers.len())
    }

    /// The whole model's outputs (logits) for `inputs`, a whole number of input samples, in
    /// one batch: the plaintext reference other interpreters are checked against.
    pub fn logits(&self, inputs: &[f32]) -> Result<Vec<f32>, ModelError> {
        self.forward(self.input(inputs.to_vec())?)?.into_values()
    }

    /// Runs the prefix up to and including layer `name` (what a device sends at that split).
    pub fn forward_prefix(&self, x: Activation, name: &str) -> Result<Activation, ModelError> {
        let end = self.spec.layer_index(name)? + 1;
        self.forward_range(x, 0..end)
    }

    /// Runs the suffix after layer `name` on its output.
    pub fn forward_suffix(&self, x: Activation, name: &str) -> Result<Activation, ModelError> {
        let start = self.spec.layer_index(name)? + 1;
        self.forward_range(x, start..self.spec.layers.len())
    }

    /// Input activation for `values` (a whole number of input samples).
    pub fn input(&self, values: Vec<f32>) -> Result<Activation, ModelError> {
        Activation::from_values(values, &self.spec.input_shape, &self.device)
    }

    /// Predicted class of every sample in `ds`, in batches of `batch`.
    pub fn predict(&self, ds: &Dataset, batch: usize) -> Result<Vec<usize>, ModelError> {
        self.check_dataset(ds)?;
        let mut out = Vec::with_capacity(ds.len());
        let per = ds.sample_len();
        for start in (0..ds.len()).step_by(batch.max(1)) {
            let end = (start + batch.max(1)).min(ds.len());
            let x = self.input(ds.samples[start * per..end * per].to_vec())?;
            let logits = self.forward(x)?.into_flat();
            let idx = logits
                .argmax(1)
                .try_into_vec_as::<i64>()
                .map_err(|e| ModelError::Invalid(format!("cannot read predictions: {e:?}")))?;
            out.extend(idx.into_iter().map(|i| i as usize));
        }
        Ok(out)
    }

    /// Accuracy on `ds` in `[0, 1]`.
    pub fn evaluate(&self, ds: &Dataset) -> Result<f64, ModelError> {
        let pred = self.predict(ds, 500)?;
        let truth: Vec<usize> = ds.labels.iter().map(|&l| l as usize).collect();
        veil_metrics::accuracy(&pred, &truth).map_err(|e| ModelError::Invalid(e.to_string()))
    }

    /// Checks that `ds` has this model's input shape and no more classes than outputs.
    ///
    /// A flat `[n]` input also takes datasets of `n` scalars per sample.
    pub fn check_dataset(&self, ds: &Dataset) -> Result<(), ModelError> {
        let input = &self.spec.input_shape;
        let flat_ok = input.dims().len() == 1 && ds.sample_len() == input.numel();
        if ds.shape.as_slice() != input.dims() && !flat_ok {
            return Err(ModelError::Shape {
                context: format!("dataset {} for model {}", ds.name, self.spec.name),
                expected: self.spec.input_shape.dims().to_vec(),
                got: ds.shape.to_vec(),
            });
        }
        let outputs = self.shapes.last().map(Shape::numel).unwrap_or(0);
        if ds.classes > outputs {
            return Err(ModelError::Invalid(format!(
                "dataset {} has {} classes but model {} has {outputs} outputs",
                ds.name, ds.classes, self.spec.name
            )));
        }
        Ok(())
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.net.num_params()
    }
}

/// Runs `range` of `spec`'s layers with the modules of `net` (autodiff or not).
pub(crate) fn forward_layers(
    spec: &ModelSpec,
    net: &Network,
    mut x: Activation,
    range: Range<usize>,
) -> Result<Activation, ModelError> {
    if range.end > spec.layers.len() || range.start > range.end {
        return Err(ModelError::Invalid(format!(
            "layer range {range:?} outside model {} with {} layers",
            spec.name,
            spec.layers.len()
        )));
    }
    for i in range {
        let layer = &spec.layers[i];
        let mismatch = |x: &Activation| ModelError::Shape {
            context: format!("model {} layer {} `{}`", spec.name, i, layer.name),
            expected: vec![],
            got: x.sample_shape().dims().to_vec(),
        };
        x = match (&layer.kind, net.ops.get(i).and_then(Option::as_ref), x) {
            (LayerKind::Relu, _, Activation::Maps(t)) => Activation::Maps(relu(t)),
            (LayerKind::Relu, _, Activation::Flat(t)) => Activation::Flat(relu(t)),
            (LayerKind::Flatten, _, a) => Activation::Flat(a.into_flat()),
            (LayerKind::Reshape { shape }, _, a) => {
                let t = a.into_flat();
                let b = t.dims()[0];
                match shape.as_slice() {
                    &[c, h, w] => Activation::Maps(t.reshape([b, c, h, w])),
                    _ => Activation::Flat(t),
                }
            }
            (_, Some(Op::Conv(m)), Activation::Maps(t)) => Activation::Maps(m.forward(t)),
            (_, Some(Op::ConvT(m)), Activation::Maps(t)) => Activation::Maps(m.forward(t)),
            (_, Some(Op::MaxPool(m)), Activation::Maps(t)) => Activation::Maps(m.forward(t)),
            (_, Some(Op::AvgPool(m)), Activation::Maps(t)) => Activation::Maps(m.forward(t)),
            (_, Some(Op::Linear(m)), Activation::Flat(t)) => Activation::Flat(m.forward(t)),
            (_, Some(Op::Dropout(m)), Activation::Maps(t)) => Activation::Maps(m.forward(t)),
            (_, Some(Op::Dropout(m)), Activation::Flat(t)) => Activation::Flat(m.forward(t)),
            (_, _, other) => return Err(mismatch(&other)),
        };
    }
    Ok(x)
}
