//! `layer watch`: keeps the stat cache current with inotify until stopped (`crate::watch`),
//! so a no-op `plan` reads only what changed. Foreground; Ctrl-C stops it.

use clap::Args;

use super::args::Global;
use super::resolve::{cache_in, project_root};
use crate::decl;
use crate::error::Result;

/// The flags of `layer watch`.
#[derive(Args, Debug)]
pub struct WatchArgs {}

pub fn run(g: &Global, _args: &WatchArgs) -> Result<i32> {
    let project = decl::load(&project_root(g)?)?;
    let cache = cache_in(g, &project.root);
    cache.check_folder()?;
    // A role folder reached through a link is not watched (the link could be pointed
    // elsewhere unseen): plans check it in full.
    let roots = project
        .roles
        .values()
        .map(|r| project.root.join(&r.dir))
        .filter(|r| r.canonicalize().is_ok_and(|c| &c == r))
        .collect();
    crate::watch::run(&cache, &project.root, roots, &mut |line| {
        eprintln!("{line}");
    })?;
    Ok(0)
}
