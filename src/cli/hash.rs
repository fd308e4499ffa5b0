//! `layer hash`: the keys of images, and with `--inputs` the canonical inputs behind them.

use clap::Args;

use super::args::{Global, Json, StrategyArg};
use super::print::out;
use super::resolve::{no_teardown, open, resolve_targets};
use crate::error::Result;
use crate::key::{self, ImageKey};
use crate::render;

/// The flags of `layer hash`.
#[derive(Args, Debug)]
pub struct HashArgs {
    targets: Vec<String>,
    /// Print the inputs each key is the hash of
    #[arg(long)]
    inputs: bool,
    #[command(flatten)]
    json: Json,
    /// Keys under this strategy [default: `[project].strategy`]
    #[arg(long, value_enum)]
    strategy: Option<StrategyArg>,
}

/// A key as `layer hash --json` prints it.
#[derive(serde::Serialize)]
struct Row<'a> {
    name: &'a str,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    inputs: Option<&'a key::Inputs>,
}

pub fn run(g: &Global, args: &HashArgs) -> Result<i32> {
    let ws = no_teardown(open(g, args.strategy.map(crate::model::Strategy::from))?);
    let sel = resolve_targets(&ws.project, &args.targets)?;
    let keep: Vec<usize> = if sel.is_empty() {
        (0..ws.keys.len()).collect()
    } else {
        sel
    };
    let chosen: Vec<(&str, &ImageKey)> = keep
        .iter()
        .map(|&i| (ws.project.images[i].name.as_str(), &ws.keys[i]))
        .collect();
    if args.json.json() {
        let rows: Vec<Row> = chosen
            .iter()
            .map(|(n, k)| Row {
                name: n,
                key: &k.key,
                inputs: args.inputs.then_some(&k.inputs),
            })
            .collect();
        out(&render::json(&rows))
    } else if args.inputs {
        let mut s = String::new();
        for (n, k) in &chosen {
            s.push_str(&format!("{}  {n}\n{}", k.key, render::json(&k.inputs)));
        }
        out(&s)
    } else {
        let pairs: Vec<(&str, &str)> = chosen.iter().map(|(n, k)| (*n, k.key.as_str())).collect();
        out(&render::hash_text(&pairs))
    }
}
