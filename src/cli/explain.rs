//! `layer explain`: gathers why an image is fresh or stale; `render::explain` words it.

use clap::Args;

use super::args::Global;
use super::print::out;
use super::resolve::{no_teardown, open, resolve_targets};
use crate::error::Result;
use crate::plan::{self, Action, Selection};
use crate::record::Lookup;
use crate::render::{self, Explanation, Verdict};
use crate::workspace::Workspace;

/// The argument of `layer explain`: the image to explain.
#[derive(Args, Debug)]
pub struct ExplainArgs {
    image: String,
}

pub fn run(g: &Global, args: &ExplainArgs) -> Result<i32> {
    let ws = no_teardown(open(g, None)?);
    let i = resolve_targets(&ws.project, std::slice::from_ref(&args.image))?[0];
    out(&explain(&ws, i))
}

/// The plan's verdict on image `i` and, when no build of its key is recorded, every input that
/// differs from its latest build, in words.
fn explain(ws: &Workspace, i: usize) -> String {
    let image = &ws.project.images[i];
    let plan = ws.plan(&Selection::default());
    let planned = &plan.images[i];
    let latest;
    let changes;
    let verdict = if planned.action == Action::Fresh {
        Verdict::Fresh(match &ws.lookups[i] {
            Lookup::Found(r) => Some(r),
            _ => None,
        })
    } else {
        latest = ws.cache.latest_of(&image.name, ws.strategy);
        match (&ws.lookups[i], &latest) {
            (Lookup::Missing, None) => Verdict::NeverBuilt,
            (Lookup::Missing, Some(old)) => {
                changes = plan::changes_since(&ws.input(), i, old);
                Verdict::Changed {
                    latest: old,
                    changes: &changes,
                }
            }
            _ => Verdict::Reasons(&planned.reasons),
        }
    };
    let root = ws.graph.chain(crate::graph::ImageId::new(i))[0].index();
    render::explain(&Explanation {
        name: &image.name,
        key: &ws.keys[i].key,
        parent: image.parent(),
        origin: ws.project.images[root].origin(),
        verdict,
        secrets: !image.secrets.is_empty(),
    })
}
