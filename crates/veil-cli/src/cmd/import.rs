//! `veil import MODEL.onnx --out DIR`: an ONNX file exported from PyTorch as a veil model
//! directory (`DIR/model.safetensors` with the spec in its metadata, `DIR/spec.json`);
//! `--check` lists which nodes import translates instead.

use std::path::PathBuf;

/// Arguments of `veil import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ONNX file.
    pub onnx: PathBuf,
    /// Output directory (default `runs/<file stem>`).
    #[arg(long, value_name = "DIR", conflicts_with = "check")]
    pub out: Option<PathBuf>,
    /// List each node and whether import translates it; write nothing. Exits 2 when the file
    /// does not import.
    #[arg(long)]
    pub check: bool,
}

/// Runs `veil import`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.check {
        let coverage = veil_onnx::check_file(&args.onnx)?;
        crate::report(&coverage, |c| c.text())?;
        return match coverage.error {
            None => Ok(()),
            Some(e) => Err(anyhow::anyhow!(
                "{} does not import: {e}",
                args.onnx.display()
            )),
        };
    }
    let out = args.out.unwrap_or_else(|| {
        let stem = args.onnx.file_stem().unwrap_or_default().to_string_lossy();
        PathBuf::from("runs").join(stem.as_ref())
    });
    let report = veil_onnx::import_to_dir(&args.onnx, &out)?;
    crate::report(&report, |r| r.text())
}
