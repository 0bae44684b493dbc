//! Saving and loading a [`Model`] as a veil safetensors file. The format (spec JSON in the
//! metadata, `f32` little-endian tensors `<layer>.weight` / `<layer>.bias`, linear weights
//! `[out, in]`, batch normalisation also `<layer>.running_mean` / `.running_var`) is read and written by [`veil_spec::weights`] only; this module converts
//! between its host tensors and burn's modules.

use std::path::Path;

use burn::module::{Param, RunningState};
use burn::tensor::{Tensor, TensorData};
use veil_spec::ModelSpec;
use veil_spec::weights::{Tensors, layout};

use crate::network::{Network, Op};
use crate::{Model, ModelError};

/// One parameter tensor as stored in a weight file.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// `<layer>.weight` or `<layer>.bias`.
    pub name: String,
    /// Shape in the file layout.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

fn weights_err(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Weights {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, ModelError> {
    t.try_into_vec_as::<f32>()
        .map_err(|e| ModelError::Invalid(format!("cannot read parameter values: {e:?}")))
}

pub use veil_spec::weights::LayerParams;

impl Model {
    /// `(weight, bias)` of each conv and linear layer, in layer order, in the file layout
    /// (conv `[out, in, kh, kw]`, linear `[out, in]`): the parameters a runtime slices per
    /// device.
    pub fn compute_layer_params(&self) -> Result<Vec<LayerParams>, ModelError> {
        Ok(veil_spec::weights::compute_layer_params(
            self.spec(),
            &self.host_tensors()?,
        )?)
    }

    /// Every parameter tensor in the file layout, by name.
    pub fn host_tensors(&self) -> Result<Tensors, ModelError> {
        Ok(self
            .named_tensors()?
            .into_iter()
            .map(|t| (t.name, (t.shape, t.values)))
            .collect())
    }

    /// Every parameter tensor in the file layout, in layer order.
    pub fn named_tensors(&self) -> Result<Vec<NamedTensor>, ModelError> {
        let mut out = Vec::new();
        for (i, layer) in self.spec().layers.iter().enumerate() {
            let (weight, bias) = match self.net.ops.get(i).and_then(Option::as_ref) {
                Some(Op::Conv(m)) => (m.weight.val(), m.bias.as_ref().map(|b| b.val())),
                Some(Op::ConvT(m)) => (m.weight.val(), m.bias.as_ref().map(|b| b.val())),
                Some(Op::Linear(m)) => {
                    // burn keeps [in, out]; the file holds [out, in].
                    let t = m.weight.val().transpose();
                    let dims = t.dims();
                    out.push(NamedTensor {
                        name: format!("{}.weight", layer.name),
                        shape: dims.to_vec(),
                        values: values(t)?,
                    });
                    let b = match m.bias.as_ref() {
                        Some(b) => values(b.val())?,
                        None => vec![0.0; dims[0]],
                    };
                    out.push(NamedTensor {
                        name: format!("{}.bias", layer.name),
                        shape: vec![dims[0]],
                        values: b,
                    });
                    continue;
                }
                Some(Op::BatchNorm(m)) => {
                    let c = m.gamma.val().dims()[0];
                    let stats = [
                        ("weight", m.gamma.val()),
                        ("bias", m.beta.val()),
                        ("running_mean", m.running_mean.value()),
                        ("running_var", m.running_var.value()),
                    ];
                    for (suffix, t) in stats {
                        out.push(NamedTensor {
                            name: format!("{}.{suffix}", layer.name),
                            shape: vec![c],
                            values: values(t)?,
                        });
                    }
                    continue;
                }
                _ => continue,
            };
            let dims = weight.dims();
            // Output channels: dim 0 of conv [out, in, ..], dim 1 of conv-transpose [in, out, ..].
            let outputs = if matches!(layer.kind, veil_spec::LayerKind::ConvTranspose2d { .. }) {
                dims[1]
            } else {
                dims[0]
            };
            out.push(NamedTensor {
                name: format!("{}.weight", layer.name),
                shape: dims.to_vec(),
                values: values(weight)?,
            });
            let b = match bias {
                Some(b) => values(b)?,
                None => vec![0.0; outputs],
            };
            out.push(NamedTensor {
                name: format!("{}.bias", layer.name),
                shape: vec![outputs],
                values: b,
            });
        }
        Ok(out)
    }

    /// Writes the weights and the spec to `path` (overwriting it).
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        Ok(veil_spec::weights::write_file(
            path,
            self.spec(),
            &self.host_tensors()?,
        )?)
    }

    /// Reads a veil weight file: the spec from its metadata, then every tensor, checking names,
    /// dtypes and shapes against the spec's layout.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let (spec, tensors) = veil_spec::weights::read_file(path)?;
        Self::assemble(spec, tensors, path)
    }

    /// Like [`Model::load`] from bytes already in memory; `path` is only used in errors.
    pub fn from_safetensors(bytes: &[u8], path: &Path) -> Result<Self, ModelError> {
        let (spec, tensors) = veil_spec::weights::decode(bytes, path)?;
        Self::assemble(spec, tensors, path)
    }

    /// A model with the spec of `self` and the weights `tensors` (names and shapes as
    /// [`Model::named_tensors`] returns them), e.g. after perturbing some of them.
    pub fn with_tensors(&self, tensors: Vec<NamedTensor>) -> Result<Self, ModelError> {
        let spec = self.spec().clone();
        let expected = layout(&spec)?;
        let path = Path::new("(in memory)");
        let mut map = Tensors::new();
        for t in tensors {
            let numel: usize = t.shape.iter().product();
            if t.values.len() != numel {
                return Err(weights_err(
                    path,
                    format!(
                        "tensor {} has {} values for shape {:?}",
                        t.name,
                        t.values.len(),
                        t.shape
                    ),
                ));
            }
            map.insert(t.name, (t.shape, t.values));
        }
        for entry in &expected {
            match map.get(&entry.name) {
                Some((shape, _)) if *shape == entry.shape => {}
                Some((shape, _)) => {
                    return Err(weights_err(
                        path,
                        format!(
                            "tensor {} is {shape:?}, expected {:?}",
                            entry.name, entry.shape
                        ),
                    ));
                }
                None => return Err(weights_err(path, format!("missing tensor {}", entry.name))),
            }
        }
        Self::assemble(spec, map, path)
    }

    /// Builds the burn network of `spec` from checked host tensors (file layout).
    fn assemble(spec: ModelSpec, mut tensors: Tensors, path: &Path) -> Result<Self, ModelError> {
        let device = crate::device();
        let mut net = Network::build(&spec, &device)?;
        for (i, layer) in spec.layers.iter().enumerate() {
            let mut take = |suffix: &str| {
                tensors
                    .remove(&format!("{}.{suffix}", layer.name))
                    .unwrap_or_default()
            };
            let ((wdims, w), (_, b)) = (take("weight"), take("bias"));
            let blen = b.len();
            if let Some(Op::BatchNorm(m)) = net.ops.get_mut(i).and_then(Option::as_mut) {
                let vector = |v: Vec<f32>| {
                    let n = v.len();
                    Tensor::<1>::from_data(TensorData::new(v, [n]), &device)
                };
                m.gamma = Param::from_tensor(vector(w));
                m.beta = Param::from_tensor(vector(b));
                m.running_mean = RunningState::new(vector(take("running_mean").1));
                m.running_var = RunningState::new(vector(take("running_var").1));
                continue;
            }
            let bias = Some(Param::from_tensor(Tensor::<1>::from_data(
                TensorData::new(b, [blen]),
                &device,
            )));
            let weight4 = |w: Vec<f32>| -> Result<Param<Tensor<4>>, ModelError> {
                let dims: [usize; 4] = wdims.as_slice().try_into().map_err(|_| {
                    weights_err(path, format!("layer {} weight must be 4-D", layer.name))
                })?;
                Ok(Param::from_tensor(Tensor::from_data(
                    TensorData::new(w, dims),
                    &device,
                )))
            };
            match net.ops.get_mut(i).and_then(Option::as_mut) {
                Some(Op::Conv(m)) => {
                    m.weight = weight4(w)?;
                    m.bias = bias;
                }
                Some(Op::ConvT(m)) => {
                    m.weight = weight4(w)?;
                    m.bias = bias;
                }
                Some(Op::Linear(m)) => {
                    let (d_out, d_in) = match wdims.as_slice() {
                        &[o, i] => (o, i),
                        _ => {
                            return Err(weights_err(
                                path,
                                format!("layer {} weight must be 2-D", layer.name),
                            ));
                        }
                    };
                    // File order is [out, in]; burn keeps [in, out]. Transpose on the host so
                    // the tensor is contiguous and matmul sums in the same order as before saving.
                    let mut t = vec![0.0f32; w.len()];
                    for (o, row) in w.chunks_exact(d_in).enumerate() {
                        for (i, &v) in row.iter().enumerate() {
                            t[i * d_out + o] = v;
                        }
                    }
                    m.weight = Param::from_tensor(Tensor::<2>::from_data(
                        TensorData::new(t, [d_in, d_out]),
                        &device,
                    ));
                    m.bias = bias;
                }
                _ => {}
            }
        }
        Model::from_parts(spec, net)
    }
}
