//! `layer lock`: `resolve` and `debian` origins resolved into `layer.lock`.

use clap::Args;

use super::args::Global;
use super::print::out;
use super::resolve::project_root;
use crate::error::Result;

/// The flags of `layer lock`.
#[derive(Args, Debug)]
pub struct LockArgs {
    /// Resolve every origin again, not only those without a pin, and print what moved
    #[arg(long)]
    update: bool,
}

pub fn run(g: &Global, args: &LockArgs) -> Result<i32> {
    let root = project_root(g)?;
    let cache = super::resolve::cache_in(g, &root);
    // Origins are made as builds make them; only `debian` origins are read from (no role
    // tree or origin file is needed to resolve packages).
    let scanned = crate::scan::Scanned::default();
    let resolver = crate::backend::rootfs::resolve::SandboxResolver {
        scanned: &scanned,
        cache: &cache,
    };
    let outcome = crate::lock::lock(&root, g.cache.as_deref(), args.update, &resolver)?;
    out(&crate::lock::report(&outcome, args.update))
}
