//! The zoo as a table (`veil models`): every model with its input and output shapes, layer
//! count, parameters and multiplications per sample, optionally layer by layer.
//!
//! Key items: [`catalog`], [`ZooEntry`], [`table`].

use serde::Serialize;

use crate::SpecError;
use crate::cost::model_cost;

/// One zoo model's summary.
#[derive(Clone, Debug, Serialize)]
pub struct ZooEntry {
    /// Model name.
    pub name: String,
    /// Input shape.
    pub input_shape: Vec<usize>,
    /// Output shape.
    pub output_shape: Vec<usize>,
    /// Number of layers.
    pub layers: usize,
    /// Parameters.
    pub params: u64,
    /// Multiply-accumulates per sample.
    pub macs: u64,
    /// Layer names in order.
    pub layer_names: Vec<String>,
    /// The layers a model can be split after (`--layer` of `veil attack` and `veil
    /// profile`): every layer of a chain, the cut points of a graph.
    pub split_points: Vec<String>,
    /// One text row per layer (name, op, output shape, multiplications; for a graph also
    /// the layers it reads and whether it is a split point).
    #[serde(skip)]
    pub layer_rows: Vec<String>,
}

/// Every zoo model, in the zoo's order.
pub fn catalog() -> Result<Vec<ZooEntry>, SpecError> {
    crate::zoo::names()
        .iter()
        .map(|name| entry(&crate::zoo::model(name)?))
        .collect()
}

/// The summary of any spec (a zoo model's or a spec file's): shapes inferred, costs counted,
/// nothing allocated. Errors: the spec's shape inference or its size budgets.
pub fn entry(spec: &crate::ModelSpec) -> Result<ZooEntry, SpecError> {
    spec.validate()?;
    let cost = model_cost(spec)?;
    let cuts = spec.cut_points()?;
    let graph = !spec.is_chain();
    let layer_rows = cost
        .layers
        .iter()
        .zip(&spec.layers)
        .map(|(l, layer)| {
            let mut row = format!(
                "    {:<14} {:<17} {:>12} {:>12}",
                l.name,
                l.op,
                l.output_shape.to_string(),
                l.macs
            );
            if graph {
                row.push_str(if cuts.contains(&l.index) {
                    "  split"
                } else {
                    "       "
                });
                if !layer.inputs.is_empty() {
                    row.push_str(&format!("  reads {}", layer.inputs.join(", ")));
                }
            }
            row
        })
        .collect();
    Ok(ZooEntry {
        name: spec.name.clone(),
        input_shape: spec.input_shape.dims().to_vec(),
        output_shape: spec.output_shape()?.dims().to_vec(),
        layers: spec.layers.len(),
        params: cost.params,
        macs: cost.macs,
        layer_names: spec.layers.iter().map(|l| l.name.clone()).collect(),
        split_points: cuts.iter().map(|&i| spec.layers[i].name.clone()).collect(),
        layer_rows,
    })
}

/// The catalog as an aligned text table, with each model's layers under it when `layers`.
pub fn table(entries: &[ZooEntry], layers: bool) -> String {
    let mut text = format!(
        "{:<12} {:>11} {:>7} {:>12} {:>15}",
        "model", "input", "layers", "params", "mults/sample"
    );
    for r in entries {
        let input: Vec<String> = r.input_shape.iter().map(ToString::to_string).collect();
        text.push_str(&format!(
            "\n{:<12} {:>11} {:>7} {:>12} {:>15}",
            r.name,
            input.join("x"),
            r.layers,
            r.params,
            r.macs
        ));
        if layers {
            for row in &r.layer_rows {
                text.push('\n');
                text.push_str(row);
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_lists_every_zoo_model_with_its_costs() {
        let entries = catalog().expect("catalog");
        assert_eq!(entries.len(), crate::zoo::names().len());
        let lenet = entries.iter().find(|e| e.name == "lenet5").expect("lenet5");
        assert_eq!(lenet.input_shape, vec![1, 28, 28]);
        assert!(lenet.params > 0 && lenet.macs > lenet.params);
        let text = table(&entries, true);
        assert!(text.contains("lenet5") && text.contains("conv1"), "{text}");
        assert!(!table(&entries, false).contains("conv1"));
        let resnet = entries
            .iter()
            .find(|e| e.name == "resnet8")
            .expect("resnet8");
        assert!(resnet.split_points.contains(&"b1_out".to_string()));
        assert!(!resnet.split_points.contains(&"b1_relu".to_string()));
        assert!(text.contains("reads b1_b_bn, stem_relu"), "{text}");
    }
}
