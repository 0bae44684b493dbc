//! `veil models`: the zoo with input shapes, parameter and multiplication counts.

/// Arguments of `veil models`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also list every layer (name, operation, output shape): the names `--layer` accepts.
    #[arg(long)]
    pub layers: bool,
}

/// Runs `veil models`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let entries = veil_spec::catalog::catalog()?;
    crate::report(&entries, |x| veil_spec::catalog::table(x, args.layers))
}
