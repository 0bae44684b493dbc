//! `veil models`: the zoo with input shapes, parameter and multiplication counts.

use serde::Serialize;

/// Arguments of `veil models`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also list every layer (name, operation, output shape): the names `--layer` accepts.
    #[arg(long)]
    pub layers: bool,
}

#[derive(Serialize)]
struct Row {
    name: String,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    layers: usize,
    params: u64,
    macs: u64,
    layer_names: Vec<String>,
    #[serde(skip)]
    layer_rows: Vec<String>,
}

/// Runs `veil models`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for name in veil_spec::zoo::names() {
        let spec = veil_spec::zoo::model(name)?;
        let cost = veil_spec::cost::model_cost(&spec)?;
        rows.push(Row {
            name: spec.name.clone(),
            input_shape: spec.input_shape.dims().to_vec(),
            output_shape: spec.output_shape()?.dims().to_vec(),
            layers: spec.layers.len(),
            params: cost.params,
            macs: cost.macs,
            layer_names: spec.layers.iter().map(|l| l.name.clone()).collect(),
            layer_rows: cost
                .layers
                .iter()
                .map(|l| {
                    format!(
                        "    {:<10} {:<17} {:>12} {:>12}",
                        l.name,
                        l.op,
                        l.output_shape.to_string(),
                        l.macs
                    )
                })
                .collect(),
        });
    }
    if args.json {
        return crate::print_json(&rows);
    }
    crate::out(&format!(
        "{:<12} {:>11} {:>7} {:>12} {:>15}",
        "model", "input", "layers", "params", "mults/sample"
    ))?;
    for r in &rows {
        let input: Vec<String> = r.input_shape.iter().map(ToString::to_string).collect();
        crate::out(&format!(
            "{:<12} {:>11} {:>7} {:>12} {:>15}",
            r.name,
            input.join("x"),
            r.layers,
            r.params,
            r.macs
        ))?;
        if args.layers {
            for row in &r.layer_rows {
                crate::out(row)?;
            }
        }
    }
    Ok(())
}
