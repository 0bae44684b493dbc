//! [`Model`] (spec + parameters) and [`Activation`] (what flows between layers).

use std::ops::Range;

use burn::module::Module;
use burn::tensor::activation::sigmoid;
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
        // Inference state: batch normalisation uses its running statistics even when an
        // attack differentiates through the model (`train` restores training behaviour).
        let net = net.valid();
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
            net: net.valid(),
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
///
/// `x` is what layer `range.start` reads: the model input, or the output of the layer before
/// it, which must then be a cut point of a graph spec (no layer of the range may read an
/// activation computed before `range.start`).
pub(crate) fn forward_layers(
    spec: &ModelSpec,
    net: &Network,
    x: Activation,
    range: Range<usize>,
) -> Result<Activation, ModelError> {
    if range.end > spec.layers.len() || range.start > range.end {
        return Err(ModelError::Invalid(format!(
            "layer range {range:?} outside model {} with {} layers",
            spec.name,
            spec.layers.len()
        )));
    }
    let sources = spec.sources()?;
    // The slot each layer's output lives in is `i + 1`; `x` fills slot `range.start`. A slot
    // is dropped after its last reader in the range.
    let mut last_read = vec![0usize; spec.layers.len() + 1];
    for i in range.clone() {
        for s in &sources[i] {
            if s.slot() < range.start {
                return Err(ModelError::Invalid(format!(
                    "model {}: layer `{}` reads `{}`, computed before layer {} where this run starts \
                     (a graph can be split only at its cut points)",
                    spec.name,
                    spec.layers[i].name,
                    spec.layers[i].inputs.join(", "),
                    range.start
                )));
            }
            last_read[s.slot()] = i;
        }
    }
    let mut slots: Vec<Option<Activation>> = vec![None; spec.layers.len() + 1];
    slots[range.start] = Some(x);
    for i in range.clone() {
        let layer = &spec.layers[i];
        // Each slot this layer is the last reader of is moved out at its last position in
        // the layer's inputs (so a chain never clones); every other read is a cheap handle
        // clone. Linear in the number of inputs.
        let mut last_position: std::collections::HashMap<usize, usize> =
            std::collections::HashMap::with_capacity(sources[i].len());
        for (j, s) in sources[i].iter().enumerate() {
            last_position.insert(s.slot(), j);
        }
        let mut inputs = Vec::with_capacity(sources[i].len());
        for (j, s) in sources[i].iter().enumerate() {
            let slot = s.slot();
            let value = match last_read[slot] == i && last_position[&slot] == j {
                true => slots[slot].take(),
                false => slots[slot].clone(),
            };
            inputs.push(value.ok_or_else(|| {
                ModelError::Invalid(format!(
                    "model {} layer `{}`: an input was released before it was read",
                    spec.name, layer.name
                ))
            })?);
        }
        let out = match inputs.len() {
            1 => apply(spec, net, i, inputs.pop().expect("one input"))?,
            _ => combine(spec, i, inputs)?,
        };
        slots[i + 1] = Some(out);
    }
    slots[range.end].take().ok_or_else(|| {
        ModelError::Invalid(format!(
            "model {}: no output for layer range {range:?}",
            spec.name
        ))
    })
}

/// Layer `i` of `spec` (one input) on `x`.
fn apply(
    spec: &ModelSpec,
    net: &Network,
    i: usize,
    x: Activation,
) -> Result<Activation, ModelError> {
    let layer = &spec.layers[i];
    let mismatch = |x: &Activation| ModelError::Shape {
        context: format!("model {} layer {} `{}`", spec.name, i, layer.name),
        expected: vec![],
        got: x.sample_shape().dims().to_vec(),
    };
    let map = |x: Activation,
               f: &dyn Fn(Tensor<4>) -> Tensor<4>,
               g: &dyn Fn(Tensor<2>) -> Tensor<2>| match x {
        Activation::Maps(t) => Activation::Maps(f(t)),
        Activation::Flat(t) => Activation::Flat(g(t)),
    };
    Ok(
        match (&layer.kind, net.ops.get(i).and_then(Option::as_ref), x) {
            (LayerKind::Relu, _, x) => map(x, &|t| crate::kernels::relu_parallel(t), &|t| {
                crate::kernels::relu_parallel(t)
            }),
            (LayerKind::Sigmoid, _, x) => map(x, &|t| sigmoid(t), &|t| sigmoid(t)),
            (LayerKind::Clip { min, max }, _, x) => {
                let (lo, hi) = (*min as f32, *max as f32);
                map(x, &|t| t.clamp(lo, hi), &|t| t.clamp(lo, hi))
            }
            (LayerKind::Identity, _, x) => x,
            (LayerKind::GlobalAvgPool2d, _, Activation::Maps(t)) => {
                Activation::Maps(t.mean_dim(3).mean_dim(2))
            }
            (LayerKind::Flatten, _, a) => Activation::Flat(a.into_flat()),
            (LayerKind::Reshape { shape }, _, a) => {
                let t = a.into_flat();
                let b = t.dims()[0];
                match shape.as_slice() {
                    &[c, h, w] => Activation::Maps(t.reshape([b, c, h, w])),
                    _ => Activation::Flat(t),
                }
            }
            (
                LayerKind::Conv2d {
                    stride,
                    padding,
                    groups: 1,
                    ..
                },
                Some(Op::Conv(m)),
                Activation::Maps(t),
            ) => {
                let geometry = crate::kernels::ConvGeometry {
                    stride: *stride,
                    padding: *padding,
                };
                let bias = m.bias.as_ref().map(|b| b.val());
                Activation::Maps(crate::kernels::conv2d_gemm(
                    t,
                    m.weight.val(),
                    bias,
                    geometry,
                ))
            }
            (_, Some(Op::Conv(m)), Activation::Maps(t)) => Activation::Maps(m.forward(t)),
            (
                LayerKind::ConvTranspose2d {
                    stride,
                    padding,
                    output_padding,
                    ..
                },
                Some(Op::ConvT(m)),
                Activation::Maps(t),
            ) => {
                let geometry = crate::kernels::ConvGeometry {
                    stride: *stride,
                    padding: *padding,
                };
                let bias = m.bias.as_ref().map(|b| b.val());
                Activation::Maps(crate::kernels::conv_transpose2d_gemm(
                    t,
                    m.weight.val(),
                    bias,
                    geometry,
                    *output_padding,
                ))
            }
            (
                LayerKind::MaxPool2d {
                    kernel,
                    stride,
                    padding: [0, 0],
                },
                _,
                Activation::Maps(t),
            ) if stride.is_none_or(|s| s == *kernel) => {
                Activation::Maps(crate::kernels::max_pool2d_tiled(t, *kernel))
            }
            (_, Some(Op::MaxPool(m)), Activation::Maps(t)) => Activation::Maps(m.forward(t)),
            (_, Some(Op::AvgPool(m)), Activation::Maps(t)) => Activation::Maps(m.forward(t)),
            (_, Some(Op::BatchNorm(m)), Activation::Maps(t)) => Activation::Maps(m.forward(t)),
            (_, Some(Op::Linear(m)), Activation::Flat(t)) => Activation::Flat(m.forward(t)),
            (_, Some(Op::Dropout(m)), Activation::Maps(t)) => Activation::Maps(m.forward(t)),
            (_, Some(Op::Dropout(m)), Activation::Flat(t)) => Activation::Flat(m.forward(t)),
            (_, _, other) => return Err(mismatch(&other)),
        },
    )
}

/// Layer `i` of `spec` (add or concat) on `inputs`, which validation gave compatible shapes.
fn combine(spec: &ModelSpec, i: usize, inputs: Vec<Activation>) -> Result<Activation, ModelError> {
    let layer = &spec.layers[i];
    let maps: Option<Vec<Tensor<4>>> = inputs
        .iter()
        .map(|a| match a {
            Activation::Maps(t) => Some(t.clone()),
            Activation::Flat(_) => None,
        })
        .collect();
    let concat = matches!(layer.kind, LayerKind::Concat);
    Ok(match maps {
        Some(ts) if concat => Activation::Maps(Tensor::cat(ts, 1)),
        Some(ts) => Activation::Maps(sum(ts)),
        None => {
            let flats: Vec<Tensor<2>> = inputs.into_iter().map(Activation::into_flat).collect();
            match concat {
                true => Activation::Flat(Tensor::cat(flats, 1)),
                false => Activation::Flat(sum(flats)),
            }
        }
    })
}

/// Element-wise sum of a non-empty list of tensors of one shape.
fn sum<const D: usize>(ts: Vec<Tensor<D>>) -> Tensor<D> {
    let mut it = ts.into_iter();
    let first = it.next().expect("add has two or more inputs (validated)");
    it.fold(first, |acc, t| acc + t)
}
