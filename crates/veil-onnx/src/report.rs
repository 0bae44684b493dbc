//! What `veil import` runs and prints: the import written as a veil model directory, and the
//! per-node coverage of `--check`.

use std::path::Path;

use serde::Serialize;

use crate::{NodeSupport, OnnxError, coverage, import, import_file, read_file};

/// The files `veil import` writes into its output directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The spec, also embedded in the weight file, as JSON a `--model` option reads.
pub const SPEC_FILE: &str = "spec.json";

/// One imported layer.
#[derive(Clone, Debug, Serialize)]
pub struct LayerLine {
    /// Layer name (a split point for `veil attack --layer`).
    pub name: String,
    /// veil operation.
    pub op: String,
    /// Output shape of one sample.
    pub output_shape: Vec<usize>,
}

/// The result of [`import_to_dir`].
#[derive(Clone, Debug, Serialize)]
pub struct ImportReport {
    /// Model name (the file stem).
    pub model: String,
    /// Default-domain opset of the file.
    pub opset: i64,
    /// One input sample's shape.
    pub input_shape: Vec<usize>,
    /// The layers, in order.
    pub layers: Vec<LayerLine>,
    /// Trainable parameters.
    pub parameters: usize,
    /// Nodes dropped (identity, dropout, the final softmax).
    pub dropped: Vec<String>,
    /// The weight file written (the spec is in its metadata).
    pub weights: String,
    /// The spec written as JSON.
    pub spec: String,
}

impl ImportReport {
    /// The report as text.
    pub fn text(&self) -> String {
        let mut s = format!(
            "imported {} (opset {}): input {:?}, {} layers, {} parameters\n",
            self.model,
            self.opset,
            self.input_shape,
            self.layers.len(),
            self.parameters
        );
        for l in &self.layers {
            s.push_str(&format!(
                "  {:<12} {:<11} -> {:?}\n",
                l.name, l.op, l.output_shape
            ));
        }
        if !self.dropped.is_empty() {
            s.push_str(&format!("dropped: {}\n", self.dropped.join(", ")));
        }
        s.push_str(&format!(
            "weights: {}\nspec:    {}",
            self.weights, self.spec
        ));
        s
    }
}

/// Imports `onnx` and writes `out/model.safetensors` (veil's weight file, the spec in its
/// metadata) and `out/spec.json`.
pub fn import_to_dir(onnx: &Path, out: &Path) -> Result<ImportReport, OnnxError> {
    let imported = import_file(onnx)?;
    let write_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| OnnxError::Write { path, source }
    };
    std::fs::create_dir_all(out).map_err(write_err(out))?;
    let weights = out.join(WEIGHTS_FILE);
    veil_spec::weights::write_file(&weights, &imported.spec, &imported.tensors).map_err(
        |source| OnnxError::WriteWeights {
            path: weights.display().to_string(),
            source,
        },
    )?;
    let spec = out.join(SPEC_FILE);
    std::fs::write(&spec, imported.spec.to_json()).map_err(write_err(&spec))?;
    let shapes = imported.spec.validate()?;
    let layers = imported
        .spec
        .layers
        .iter()
        .zip(shapes.iter().skip(1))
        .map(|(l, s)| LayerLine {
            name: l.name.clone(),
            op: l.kind.op_name().to_string(),
            output_shape: s.dims().to_vec(),
        })
        .collect();
    Ok(ImportReport {
        model: imported.spec.name.clone(),
        opset: imported.opset,
        input_shape: imported.spec.input_shape.dims().to_vec(),
        layers,
        parameters: imported.tensors.values().map(|(_, v)| v.len()).sum(),
        dropped: imported.dropped,
        weights: weights.display().to_string(),
        spec: spec.display().to_string(),
    })
}

/// The result of [`check_file`].
#[derive(Clone, Debug, Serialize)]
pub struct CoverageReport {
    /// Every node (constants excluded) and whether import translates it.
    pub nodes: Vec<NodeSupport>,
    /// Whether the whole file imports (every node, and the graph is a chain).
    pub importable: bool,
    /// Why not, when it does not.
    pub error: Option<String>,
}

impl CoverageReport {
    /// The report as text.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            let verdict = n.problem.as_deref().unwrap_or("ok");
            s.push_str(&format!("{:<28} {:<14} {verdict}\n", n.node, n.op));
        }
        match &self.error {
            None => s.push_str("importable: yes"),
            Some(e) => s.push_str(&format!("importable: no ({e})")),
        }
        s
    }
}

/// Lists which nodes of `onnx` import translates and whether the whole file imports.
pub fn check_file(onnx: &Path) -> Result<CoverageReport, OnnxError> {
    let bytes = read_file(onnx)?;
    let nodes = coverage(&bytes)?;
    let error = import(&bytes, "check").err().map(|e| e.to_string());
    Ok(CoverageReport {
        nodes,
        importable: error.is_none(),
        error,
    })
}
