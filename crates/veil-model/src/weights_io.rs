//! Saving and loading a [`Model`] as a veil safetensors file (layout in
//! [`veil_spec::weights`]): spec JSON in the metadata, `f32` little-endian tensors named
//! `<layer>.weight` / `<layer>.bias`, linear weights as `[out, in]`.

use std::collections::HashMap;
use std::path::Path;

use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use veil_spec::ModelSpec;
use veil_spec::weights::{SPEC_METADATA_KEY, layout};

use crate::network::{Network, Op};
use crate::{Model, ModelError};

const FORMAT_KEY: &str = "veil.format";
const FORMAT: &str = "veil-weights-1";

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

/// `(weight, bias)` values of one layer.
pub type LayerParams = (Vec<f32>, Vec<f32>);

impl Model {
    /// `(weight, bias)` of each conv and linear layer, in layer order, in the file layout
    /// (conv `[out, in, kh, kw]`, linear `[out, in]`): the parameters a runtime slices per
    /// device.
    pub fn compute_layer_params(&self) -> Result<Vec<LayerParams>, ModelError> {
        let mut tensors: HashMap<String, Vec<f32>> = self
            .named_tensors()?
            .into_iter()
            .map(|t| (t.name, t.values))
            .collect();
        let mut take = |name: String| {
            tensors
                .remove(&name)
                .ok_or_else(|| ModelError::Invalid(format!("missing tensor {name}")))
        };
        self.spec()
            .layers
            .iter()
            .filter(|l| {
                matches!(
                    l.kind,
                    veil_spec::LayerKind::Conv2d { .. } | veil_spec::LayerKind::Linear { .. }
                )
            })
            .map(|l| {
                Ok((
                    take(format!("{}.weight", l.name))?,
                    take(format!("{}.bias", l.name))?,
                ))
            })
            .collect()
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
        let tensors = self.named_tensors()?;
        let bytes: Vec<Vec<u8>> = tensors
            .iter()
            .map(|t| t.values.iter().flat_map(|x| x.to_le_bytes()).collect())
            .collect();
        let mut views = Vec::with_capacity(tensors.len());
        for (NamedTensor { name, shape, .. }, data) in tensors.iter().zip(&bytes) {
            let view = TensorView::new(Dtype::F32, shape.clone(), data)
                .map_err(|e| weights_err(path, format!("tensor {name}: {e}")))?;
            views.push((name.clone(), view));
        }
        let mut meta = HashMap::new();
        meta.insert(SPEC_METADATA_KEY.to_string(), self.spec().to_json());
        meta.insert(FORMAT_KEY.to_string(), FORMAT.to_string());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| weights_err(path, e.to_string()))?;
        }
        safetensors::serialize_to_file(views, Some(meta), path)
            .map_err(|e| weights_err(path, e.to_string()))
    }

    /// Reads a veil weight file: the spec from its metadata, then every tensor, checking names,
    /// dtypes and shapes against the spec's layout.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| weights_err(path, e.to_string()))?;
        Self::from_safetensors(&bytes, path)
    }

    /// Like [`Model::load`] from bytes already in memory; `path` is only used in errors.
    pub fn from_safetensors(bytes: &[u8], path: &Path) -> Result<Self, ModelError> {
        let (_, metadata) = SafeTensors::read_metadata(bytes)
            .map_err(|e| weights_err(path, format!("not a safetensors file: {e}")))?;
        let spec_json = metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get(SPEC_METADATA_KEY))
            .ok_or_else(|| {
                weights_err(
                    path,
                    format!("no `{SPEC_METADATA_KEY}` metadata: not a veil weight file"),
                )
            })?;
        let spec = ModelSpec::from_json_str(spec_json)?;
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| weights_err(path, format!("corrupt safetensors: {e}")))?;
        let mut tensors: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
        for entry in layout(&spec)? {
            let view = st
                .tensor(&entry.name)
                .map_err(|_| weights_err(path, format!("missing tensor {}", entry.name)))?;
            if view.dtype() != Dtype::F32 || view.shape() != entry.shape.as_slice() {
                return Err(weights_err(
                    path,
                    format!(
                        "tensor {} is {:?} {:?}, expected F32 {:?}",
                        entry.name,
                        view.dtype(),
                        view.shape(),
                        entry.shape
                    ),
                ));
            }
            let vals = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            tensors.insert(entry.name, (entry.shape, vals));
        }
        Self::assemble(spec, tensors, path)
    }

    /// A model with the spec of `self` and the weights `tensors` (names and shapes as
    /// [`Model::named_tensors`] returns them), e.g. after perturbing some of them.
    pub fn with_tensors(&self, tensors: Vec<NamedTensor>) -> Result<Self, ModelError> {
        let spec = self.spec().clone();
        let expected = layout(&spec)?;
        let path = Path::new("(in memory)");
        let mut map: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
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
    fn assemble(
        spec: ModelSpec,
        mut tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
        path: &Path,
    ) -> Result<Self, ModelError> {
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
