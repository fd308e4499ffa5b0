//! `layer graph`: the image graph, or the targets and their ancestors, as dot, mermaid or JSON.

use clap::{Args, ValueEnum};

use super::args::Global;
use super::print::out;
use super::resolve::{project_root, resolve_targets};
use crate::decl;
use crate::error::Result;
use crate::graph::Graph;
use crate::render;

/// The flags of `layer graph`.
#[derive(Args, Debug)]
pub struct GraphArgs {
    /// Images to show, with their ancestors [default: all]
    targets: Vec<String>,
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    format: GraphFormat,
    /// The same as `--format json`
    #[arg(long, conflicts_with = "format")]
    json: bool,
}

/// `layer graph --format`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}

pub fn run(g: &Global, args: &GraphArgs) -> Result<i32> {
    let root = project_root(g)?;
    let project = decl::load(&root)?;
    let graph = Graph::new(&project);
    let keep = with_ancestors(&graph, &resolve_targets(&project, &args.targets)?);
    let format = if args.json {
        GraphFormat::Json
    } else {
        args.format
    };
    out(&match format {
        GraphFormat::Dot => render::graph_dot(&project, &keep),
        GraphFormat::Mermaid => render::graph_mermaid(&project, &keep),
        GraphFormat::Json => render::graph_json(&project, &keep),
    })
}

/// By image index: whether it is a target or an ancestor of one; all images when there are no
/// targets.
fn with_ancestors(graph: &Graph, targets: &[usize]) -> Vec<bool> {
    let mut keep = vec![targets.is_empty(); graph.len()];
    for &t in targets {
        for a in graph.chain(crate::graph::ImageId::new(t)) {
            keep[a.index()] = true;
        }
    }
    keep
}
