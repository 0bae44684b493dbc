//! Constant tensors of an ONNX graph (initializers and `Constant` nodes) decoded defensively:
//! sizes are checked before anything is allocated, only `float`, `double`, `int32` and
//! `int64` tensors are read, non-finite weights are refused.

use std::collections::HashMap;

use crate::OnnxError;
use crate::proto::{NodeProto, TensorProto};

/// Largest number of elements one tensor may hold (2^28: 1 GiB of `f32`).
pub const MAX_ELEMENTS: usize = 1 << 28;

/// A decoded constant.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Constant {
    /// Real values (float or double in the file), row-major, with their dimensions.
    Real(Vec<usize>, Vec<f32>),
    /// Integer values (int32 or int64 in the file).
    Integer(Vec<usize>, Vec<i64>),
}

/// `TensorProto.DataType` codes import reads.
const FLOAT: i32 = 1;
const INT32: i32 = 6;
const INT64: i32 = 7;
const DOUBLE: i32 = 11;

fn bad(name: &str, what: impl Into<String>) -> OnnxError {
    OnnxError::Tensor {
        name: name.to_string(),
        what: what.into(),
    }
}

/// Dimensions as sizes, and their product, checked against [`MAX_ELEMENTS`].
fn dimensions(t: &TensorProto) -> Result<(Vec<usize>, usize), OnnxError> {
    let mut count = 1usize;
    let mut dims = Vec::with_capacity(t.dims.len().min(8));
    for &d in &t.dims {
        let d = usize::try_from(d)
            .ok()
            .filter(|&d| (1..=veil_spec::MAX_DIM).contains(&d))
            .ok_or_else(|| {
                bad(
                    &t.name,
                    format!("dimension {d} (1 to {} expected)", veil_spec::MAX_DIM),
                )
            })?;
        count = count
            .checked_mul(d)
            .filter(|&c| c <= MAX_ELEMENTS)
            .ok_or_else(|| bad(&t.name, format!("more than {MAX_ELEMENTS} elements")))?;
        dims.push(d);
    }
    Ok((dims, count))
}

/// Little-endian words of `width` bytes from `raw`, exactly `count` of them.
fn words<const W: usize>(t: &TensorProto, count: usize) -> Result<Vec<[u8; W]>, OnnxError> {
    if t.raw_data.len() != count * W {
        return Err(bad(
            &t.name,
            format!(
                "{} bytes of raw data for {count} elements of {W} bytes",
                t.raw_data.len()
            ),
        ));
    }
    Ok(t.raw_data
        .chunks_exact(W)
        .map(|c| {
            let mut w = [0u8; W];
            w.copy_from_slice(c);
            w
        })
        .collect())
}

/// Decodes one tensor.
pub(crate) fn decode(t: &TensorProto) -> Result<Constant, OnnxError> {
    if t.data_location == 1 {
        return Err(bad(
            &t.name,
            "its values are in an external file (not supported)",
        ));
    }
    let (dims, count) = dimensions(t)?;
    let raw = !t.raw_data.is_empty();
    let check_len = |n: usize| {
        if n == count {
            Ok(())
        } else {
            Err(bad(&t.name, format!("{n} values for {count} elements")))
        }
    };
    let constant = match t.data_type {
        FLOAT if raw => Constant::Real(
            dims,
            words::<4>(t, count)?
                .into_iter()
                .map(f32::from_le_bytes)
                .collect(),
        ),
        FLOAT => {
            check_len(t.float_data.len())?;
            Constant::Real(dims, t.float_data.clone())
        }
        DOUBLE if raw => Constant::Real(
            dims,
            words::<8>(t, count)?
                .into_iter()
                .map(|w| f64::from_le_bytes(w) as f32)
                .collect(),
        ),
        DOUBLE => {
            check_len(t.double_data.len())?;
            Constant::Real(dims, t.double_data.iter().map(|&v| v as f32).collect())
        }
        INT64 if raw => Constant::Integer(
            dims,
            words::<8>(t, count)?
                .into_iter()
                .map(i64::from_le_bytes)
                .collect(),
        ),
        INT64 => {
            check_len(t.int64_data.len())?;
            Constant::Integer(dims, t.int64_data.clone())
        }
        INT32 if raw => Constant::Integer(
            dims,
            words::<4>(t, count)?
                .into_iter()
                .map(|w| i64::from(i32::from_le_bytes(w)))
                .collect(),
        ),
        INT32 => {
            check_len(t.int32_data.len())?;
            Constant::Integer(dims, t.int32_data.iter().map(|&v| i64::from(v)).collect())
        }
        other => {
            return Err(bad(
                &t.name,
                format!("element type {other} (import reads float, double, int32 and int64)"),
            ));
        }
    };
    if let Constant::Real(_, v) = &constant
        && let Some(i) = v.iter().position(|x| !x.is_finite())
    {
        return Err(bad(&t.name, format!("element {i} is not finite")));
    }
    Ok(constant)
}

/// Every initializer and `Constant` node output of the graph, by value name.
pub(crate) fn constants(
    initializers: &[TensorProto],
    nodes: &[NodeProto],
) -> Result<HashMap<String, Constant>, OnnxError> {
    let mut map = HashMap::new();
    for t in initializers {
        map.insert(t.name.clone(), decode(t)?);
    }
    for node in nodes.iter().filter(|n| n.op_type == "Constant") {
        let value = node
            .attribute
            .iter()
            .find(|a| a.name == "value")
            .and_then(|a| a.t.as_ref())
            .ok_or_else(|| OnnxError::Unsupported {
                node: if node.name.is_empty() {
                    "(unnamed)".into()
                } else {
                    node.name.clone()
                },
                op: "Constant".into(),
                what: "a constant without a tensor `value` attribute".into(),
            })?;
        if let Some(out) = node.output.first() {
            map.insert(out.clone(), decode(value)?);
        }
    }
    // An Identity of a constant (PyTorch writes them for shared parameters) is that constant.
    for node in nodes.iter().filter(|n| n.op_type == "Identity") {
        if let (Some(input), Some(out)) = (node.input.first(), node.output.first())
            && let Some(value) = map.get(input).cloned()
        {
            map.insert(out.clone(), value);
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float_tensor(dims: Vec<i64>, raw: Vec<u8>) -> TensorProto {
        TensorProto {
            dims,
            data_type: FLOAT,
            raw_data: raw,
            name: "w".into(),
            ..TensorProto::default()
        }
    }

    #[test]
    fn raw_floats_decode_little_endian() {
        let raw: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            decode(&float_tensor(vec![2], raw)).ok(),
            Some(Constant::Real(vec![2], vec![1.5, -2.0]))
        );
    }

    #[test]
    fn hostile_tensors_are_refused_before_allocating() {
        // Absurd dimensions: refused from the dims alone (no allocation of 2^60 values), and a
        // zero dimension cannot hide a huge one (an empty tensor of shape [0, 2^40]).
        assert!(decode(&float_tensor(vec![1 << 30, 1 << 30], vec![])).is_err());
        assert!(decode(&float_tensor(vec![0, 1 << 40], vec![])).is_err());
        assert!(decode(&float_tensor(vec![-1], vec![])).is_err());
        // Too few or too many bytes.
        assert!(decode(&float_tensor(vec![3], vec![0; 8])).is_err());
        assert!(decode(&float_tensor(vec![1], vec![0; 5])).is_err());
        // Non-finite weights.
        let nan: Vec<u8> = f32::NAN.to_le_bytes().to_vec();
        assert!(decode(&float_tensor(vec![1], nan)).is_err());
        // External data and unknown element types.
        let mut ext = float_tensor(vec![1], vec![0; 4]);
        ext.data_location = 1;
        assert!(decode(&ext).is_err());
        let mut strings = float_tensor(vec![1], vec![0; 4]);
        strings.data_type = 8;
        assert!(decode(&strings).is_err());
    }
}
