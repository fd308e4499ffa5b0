//! `layer build`: the plan `layer plan` makes, handed to the executor; builders chosen,
//! everything that can fail checked before the first build starts, interrupts watched.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::AtomicI32;
use std::sync::Arc;

use clap::Args;

use super::args::{Global, JsonResults, MaxAge, Select};
use super::plan::{open, selection};
use super::print::{out, pin_warnings};
use super::resolve::{connect, jobs, signer};
use crate::backend::{Builder, CommandBackend, Procs};
use crate::error::{Error, ErrorKind, Result};
use crate::exec;
use crate::model::BackendKind;
use crate::plan::{Action, Cached, Plan};
use crate::progress::{Bars, Plain, Progress, Streaming};
use crate::render::{self, Style};
use crate::workspace::Workspace;

/// The flags of `layer build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Images to build, with their stale ancestors in deep builds [default: all]
    targets: Vec<String>,
    #[command(flatten)]
    select: Select,
    /// Keep going: build every image that does not depend on a failure
    #[arg(short = 'k', long)]
    keep_going: bool,
    /// Rebuild the named targets (every image when none is named) even when fresh; what
    /// they are built on is built only when stale
    #[arg(long)]
    force: bool,
    /// Rebuild the targets and every image they are built on, even when fresh
    #[arg(long)]
    force_deps: bool,
    /// Print the plan instead of building
    #[arg(short = 'n', long)]
    dry_run: bool,
    #[command(flatten)]
    json: JsonResults,
    #[command(flatten)]
    max_age: MaxAge,
    /// Also download the selected images the remote cache makes fresh (parents that a build
    /// stands on are always downloaded)
    #[arg(long)]
    pull: bool,
    /// Keep a failed build's work folder (in the cache, until `layer cache gc`) and say how
    /// to open a shell in it (`layer shell --failed IMAGE`)
    #[arg(long)]
    keep_failed: bool,
    /// Build a new version of IMAGE on its own earlier build (its newest released one, or
    /// `--from`) instead of its parent or origin: its packages brought to their locked
    /// versions and its roles applied again (`rootfs` images)
    #[arg(long, conflicts_with_all = ["changed", "since", "force_deps", "pull"])]
    reheat: bool,
    /// The build `--reheat` starts from (`1.0.4`, or in full)
    #[arg(long, value_name = "VERSION", requires = "reheat")]
    from: Option<String>,
}

pub fn run(g: &Global, args: &BuildArgs, style: Style) -> Result<i32> {
    let (mut ws, since) = open(g, &args.select)?;
    // A reheat is local: it stands on a local build, and is not pushed (its key is no
    // image's current key, which is all a remote is asked for).
    let remote = match args.reheat {
        true => None,
        false => connect(g, &mut ws)?,
    };
    let signer = match &remote {
        Some(_) => signer()?,
        None => None,
    };
    let (plan, reheat) = if args.reheat {
        let (plan, from) = reheat_plan(&mut ws, args)?;
        (plan, Some(Box::new(from)))
    } else {
        let mut sel = selection(&ws, &args.targets, &args.select, &args.max_age, args.force)?;
        sel.force_deps = args.force_deps;
        (crate::since::plan(&ws, sel, since.as_ref()), None)
    };
    pin_warnings(g, &ws);
    if args.dry_run {
        return out(&if args.json.json() {
            render::json(&plan)
        } else {
            render::plan_text(&plan, style)
        });
    }

    // Everything that can fail before a build starts fails here.
    let secrets = exec::resolve_secrets(&ws.project, &plan)?;
    check_rootfs(&ws, &plan)?;
    let builders = builders(&ws, &plan)?;

    let started = std::time::Instant::now();
    let interrupt = watch_signals()?;
    let run = ws.cache.start_run()?;
    let procs = Procs::default();
    let progress = progress(g);
    let env = exec::Env {
        ws: &ws,
        builders: &builders,
        progress: progress.as_ref(),
        procs: &procs,
        interrupt: &interrupt,
        work_dir: &run.dir,
        commit: exec::git_commit(&ws.project.root, ws.cache.dir()),
        secrets,
        remote: remote.as_ref().map(|remote| exec::Shared {
            remote,
            signer: signer.as_ref(),
        }),
    };
    let report = exec::execute(
        &env,
        &plan,
        &exec::Options {
            jobs: jobs(g),
            keep_going: args.keep_going,
            force: args.force || args.force_deps,
            pull: args.pull,
            keep_failed: args.keep_failed,
            reheat,
        },
    );
    drop(run);

    if args.json.json() {
        out(&render::json(&report.images))?;
    }
    if !g.quiet {
        eprint!("{}", render::build_summary(&report, started.elapsed()));
    }
    Ok(report.exit_code())
}

/// `layer build IMAGE --reheat [--from VERSION]`: the build to reheat, found and checked, the
/// image's key in `ws` made its reheat's (`key::reheat`), and the plan that builds it alone.
fn reheat_plan(ws: &mut Workspace, args: &BuildArgs) -> Result<(Plan, crate::record::Record)> {
    let usage = |kind, message: String, hint: String| Error::Usage {
        kind,
        message,
        hint: Some(hint),
    };
    let [target] = &args.targets[..] else {
        return Err(usage(
            ErrorKind::ReheatTargets,
            format!(
                "`--reheat` builds one image, and {} named",
                match args.targets.len() {
                    0 => "none was".to_string(),
                    n => format!("{n} were"),
                }
            ),
            "name the image to reheat: `layer build IMAGE --reheat`".into(),
        ));
    };
    let i = super::resolve::resolve_targets(&ws.project, std::slice::from_ref(target))?[0];
    let image = &ws.project.images[i];
    let backend = ws.project.backend_of(image);
    if backend.kind != BackendKind::Rootfs {
        return Err(usage(
            ErrorKind::ReheatNotRootfs,
            format!(
                "`{}` is built with the `{}` backend; `--reheat` rebuilds `rootfs` images on their own earlier build",
                image.name,
                backend.kind.as_str()
            ),
            format!(
                "bake it fresh instead: `layer lock --update`, then `layer build {}`",
                image.name
            ),
        ));
    }
    let records = ws.cache.records(&image.name);
    let from = crate::release::reheat_from(&records, &image.name, args.from.as_deref())?.clone();
    if from.inputs.backend.kind != BackendKind::Rootfs || from.artifact.path.is_none() {
        return Err(usage(
            ErrorKind::ReheatNotRootfs,
            format!(
                "{} {} is not a local `rootfs` build (it was built with the `{}` backend), so it cannot be reheated",
                image.name,
                crate::version::short(&from.version),
                from.inputs.backend.kind.as_str()
            ),
            format!(
                "name a `rootfs` build with `--from` (`layer versions {}` lists them), or bake it fresh with `layer build {}`",
                image.name, image.name
            ),
        ));
    }
    let key = crate::key::reheat(
        &ws.project,
        &ws.graph,
        i,
        &ws.keys[i],
        &from.key,
        &from.version,
    );
    ws.lookups[i] = ws.cache.lookup(&image.name, &key.key);
    ws.keys[i] = key;
    let fresh = !args.force && ws.cached_locally(i);
    let plan = crate::plan::reheat(ws.plan(&Default::default()), i, &from.version, fresh);
    Ok((plan, from))
}

/// The checks of the `rootfs` images to build: run as root, and the packages their origins
/// can install.
fn check_rootfs(ws: &Workspace, plan: &Plan) -> Result<()> {
    let rootfs: Vec<usize> = plan
        .to_build()
        .filter_map(|p| ws.index(&p.name))
        .filter(|&i| ws.project.backend_of(&ws.project.images[i]).kind == BackendKind::Rootfs)
        .collect();
    if let Some(&i) = rootfs.first() {
        crate::backend::rootfs::check_root(&ws.project.images[i].name, "built")?;
    }
    crate::backend::rootfs::check_packages(&ws.project, &ws.graph, rootfs.iter().copied())?;
    // Images on `debian` origins install their locked versions: the mirror must serve them.
    let made = |origin: &str| {
        crate::key::origin_identity(&ws.project, origin, &ws.scanned)
            .ok()
            .and_then(|id| ws.cache.origin(&id))
            .is_some()
    };
    for note in crate::lock::check_served(&ws.project, &ws.graph, &rootfs, &made)? {
        eprintln!("layer: {note}");
    }
    Ok(())
}

/// A builder per backend the images to build use, by backend name; and, where one can be
/// made, for the images the remote makes fresh, which are built instead when their pull fails.
fn builders<'a>(ws: &'a Workspace, plan: &Plan) -> Result<BTreeMap<String, Box<dyn Builder + 'a>>> {
    let mut builders: BTreeMap<String, Box<dyn Builder + 'a>> = BTreeMap::new();
    let remote_fresh = plan
        .images
        .iter()
        .filter(|p| p.cached == Some(Cached::Remote));
    for p in plan.to_build().chain(remote_fresh) {
        let fallback = p.action != Action::Build;
        let image = ws.project.image(&p.name).expect("planned images exist");
        let backend = ws.project.backend_of(image);
        if builders.contains_key(&backend.name) {
            continue;
        }
        let builder: Box<dyn Builder + 'a> = match backend.kind {
            BackendKind::Command => Box::new(CommandBackend::new(backend)),
            BackendKind::Rootfs => Box::new(crate::backend::rootfs::RootfsBackend::new(
                &ws.project,
                &ws.scanned,
                &ws.cache,
            )),
            BackendKind::Packer => match crate::backend::packer::PackerBackend::new(backend) {
                Ok(b) => Box::new(b),
                Err(_) if fallback => continue,
                Err(message) => {
                    return Err(Error::Usage { kind: ErrorKind::ToolMissing,
                        message: format!("`{}` cannot be built: {message}", p.name),
                        hint: Some(
                            "install Packer (`apt-get install packer`, or from developer.hashicorp.com/packer)".into(),
                        ),
                    })
                }
            },
        };
        builders.insert(backend.name.clone(), builder);
    }
    Ok(builders)
}

/// The number of the first SIGINT or SIGTERM, set by a thread that waits for them; 0 until
/// then.
fn watch_signals() -> Result<Arc<AtomicI32>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let interrupt = Arc::new(AtomicI32::new(0));
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| Error::io("<signals>", e))?;
    let flag = Arc::clone(&interrupt);
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            flag.store(sig, std::sync::atomic::Ordering::SeqCst);
        }
    });
    Ok(interrupt)
}

/// Progress bars on a terminal, plain lines otherwise (and with `--no-progress`); with `-v`,
/// every line of the builds' output too.
fn progress(g: &Global) -> Box<dyn Progress> {
    let shown: Box<dyn Progress> = if !g.no_progress && !g.quiet && std::io::stderr().is_terminal()
    {
        Box::new(Bars::new())
    } else {
        Box::new(Plain { quiet: g.quiet })
    };
    if g.verbose > 0 {
        Box::new(Streaming(shown))
    } else {
        shown
    }
}
