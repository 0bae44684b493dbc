//! `veil models`: the zoo (or one spec file) with input shapes, parameter and multiplication
//! counts.

/// Arguments of `veil models`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also list every layer (name, operation, output shape): the names `--layer` accepts.
    #[arg(long)]
    pub layers: bool,
    /// Instead of the zoo: check this spec file (`.toml` or `.json`), ONNX file or zoo model
    /// and show its shapes and costs (for an ONNX file: the layer names `--layer` accepts).
    #[arg(long, value_name = "SPEC")]
    pub spec: Option<String>,
}

/// Runs `veil models`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let entries = match &args.spec {
        Some(spec) => vec![veil_spec::catalog::entry(&super::resolve_spec(spec)?)?],
        None => veil_spec::catalog::catalog()?,
    };
    crate::report(&entries, |x| veil_spec::catalog::table(x, args.layers))
}
