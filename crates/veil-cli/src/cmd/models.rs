//! `veil models`: the zoo with input shapes, parameter and multiplication counts.

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

/// Runs `veil models`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let entries = veil_spec::catalog::catalog()?;
    match args.json {
        true => crate::print_json(&entries),
        false => crate::out(&veil_spec::catalog::table(&entries, args.layers)),
    }
}
