//! The command line: parses arguments, runs the pipeline a command needs, prints its output.
//! Data goes to stdout, errors and status to stderr (SPEC §5).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::decl;
use crate::error::{did_you_mean, Error, Result};
use crate::graph::Graph;
use crate::key::{self, BaseInputs, Change, ImageKey};
use crate::model::{Project, Strategy};
use crate::plan::{self, Action, Selection};
use crate::record::Lookup;
use crate::render::{self, Style};
use crate::workspace::Workspace;

mod life;

#[derive(Parser, Debug)]
#[command(
    name = "layer",
    version,
    about = "make for server images: builds what is stale, in parallel, from content hashes"
)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct Global {
    /// Start in DIR instead of the current folder (the project root is the first folder
    /// upwards holding `layer.toml`)
    #[arg(short = 'C', global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Cache directory [default: `cache/` in the project root]
    #[arg(long, global = true, env = "LAYER_CACHE", value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Parallel builds [default: number of cores]
    #[arg(short = 'j', long = "jobs", global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    jobs: Option<u32>,
    /// Print nothing on stderr but errors
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Print more on stderr
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// Colour output (`NO_COLOR` is honoured by `auto`)
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    color: ColorWhen,
    /// Plain status lines instead of progress bars
    #[arg(long, global = true)]
    no_progress: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ColorWhen {
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    fn enabled(self, terminal: bool) -> bool {
        match self {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => {
                terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Images with their parent or origin, roles, version, status and latest artifact
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// The image graph
    Graph {
        /// Images to show, with their ancestors [default: all]
        targets: Vec<String>,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// What a build would do, and why; runs no user code
    Plan(PlanArgs),
    /// Keys of images, and with --inputs the canonical inputs behind them
    Hash {
        targets: Vec<String>,
        /// Print the inputs each key is the hash of
        #[arg(long)]
        inputs: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Why an image is stale: what differs from its latest build
    Explain { image: String },
    /// Build the stale images, in parallel topological order
    Build(BuildArgs),
    /// Resolve `resolve` and `debian` origins into layer.lock
    Lock {
        /// Resolve every origin again, not only those without a pin, and print what moved
        #[arg(long)]
        update: bool,
    },
    /// Run the tests of each built image, each test in a fresh, throwaway instance
    Test {
        /// Images to test [default: all]
        targets: Vec<String>,
        /// Print a JSON result per image on stdout
        #[arg(long)]
        json: bool,
        /// Seconds a test may run before it is stopped and fails
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        timeout: u64,
        /// Test the builds of this strategy [default: `[project].strategy`]
        #[arg(long, value_enum)]
        strategy: Option<StrategyArg>,
    },
    /// Write a build of an image out as a tar archive, an OCI image layout, or a disk image
    Export {
        /// IMAGE or IMAGE@VERSION [default: the build of the current inputs, else the newest]
        target: String,
        #[arg(long, value_name = "FORMAT", value_parser = clap::value_parser!(crate::export::Format))]
        format: crate::export::Format,
        /// Where to write it (a file; a new or empty folder for `oci`)
        #[arg(short = 'o', long = "output", value_name = "PATH")]
        output: PathBuf,
    },
    /// An image's built versions, newest first
    Versions {
        image: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Mark a tested build released (without VERSION: the build of the current inputs, else the newest)
    Promote {
        /// IMAGE or IMAGE@VERSION (`1.0.4` or `1.0.4-20200229_0420`)
        #[arg(value_name = "IMAGE[@VERSION]")]
        target: String,
        /// Promote a build that has not been tested
        #[arg(long)]
        force: bool,
    },
    /// Mark a build revoked: images built on it become stale
    Revoke {
        #[arg(value_name = "IMAGE@VERSION")]
        target: String,
    },
    /// Running instances per image version, the ones to rebuild after a fix, the expired ones
    Report(life::ReportArgs),
    /// Inspect, re-hash and prune the cache
    Cache {
        #[command(subcommand)]
        command: life::CacheCommand,
    },
}

#[derive(Args, Debug)]
struct BuildArgs {
    /// Images to build, with their stale ancestors in deep builds [default: all]
    targets: Vec<String>,
    /// Only stale images and their descendants
    #[arg(long)]
    changed: bool,
    /// Only images whose key differs from their key at git revision REF, and their descendants
    #[arg(long, value_name = "REF")]
    since: Option<String>,
    /// Override `[project].strategy`
    #[arg(long, value_enum)]
    strategy: Option<StrategyArg>,
    /// Keep going: build every image that does not depend on a failure
    #[arg(short = 'k', long)]
    keep_going: bool,
    /// Rebuild the selected images even when they are fresh
    #[arg(long)]
    force: bool,
    /// Print the plan instead of building
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Print a JSON result per image on stdout
    #[arg(long)]
    json: bool,
    /// Treat artifacts older than AGE (`7d`, `12h`) as expired, for every image
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    max_age: Option<(std::time::Duration, String)>,
}

#[derive(Args, Debug)]
struct PlanArgs {
    /// Images to plan, with their ancestors in deep builds [default: all]
    targets: Vec<String>,
    /// Only stale images and their descendants
    #[arg(long)]
    changed: bool,
    /// Only images whose key differs from their key at git revision REF, and their descendants
    #[arg(long, value_name = "REF")]
    since: Option<String>,
    /// Override `[project].strategy`
    #[arg(long, value_enum)]
    strategy: Option<StrategyArg>,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    format: PlanFormat,
    /// Exit 1 when something would be built, 0 when nothing would
    #[arg(long)]
    exit_code: bool,
    /// Treat artifacts older than AGE (`7d`, `12h`) as expired, for every image
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    max_age: Option<(std::time::Duration, String)>,
}

fn parse_age(s: &str) -> std::result::Result<(std::time::Duration, String), String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok((d, s.to_string())),
        _ => Err(format!(
            "`{s}` is not an age: write a number and a unit, such as `7d` or `12h`"
        )),
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StrategyArg {
    Deep,
    Shallow,
}

impl From<StrategyArg> for Strategy {
    fn from(s: StrategyArg) -> Strategy {
        match s {
            StrategyArg::Deep => Strategy::Deep,
            StrategyArg::Shallow => Strategy::Shallow,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PlanFormat {
    Text,
    Json,
    Markdown,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__sandbox") {
        // The rootfs backend's sandbox process: before anything starts a thread.
        return crate::backend::rootfs::sandbox_main(&args[2..]);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = e.exit_code();
            let _ = e.print();
            return code;
        }
    };
    let err_style = Style {
        color: cli.global.color.enabled(std::io::stderr().is_terminal()),
    };
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{} {e}", err_style.paint("error:", "1;31"));
            if let Some(h) = e.hint() {
                let _ = writeln!(err, "  {} {h}", err_style.paint("hint:", "1;36"));
            }
            e.exit_code()
        }
    }
}

fn out(s: &str) -> Result<i32> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(s.as_bytes()).and_then(|_| stdout.flush()) {
        Ok(()) => Ok(0),
        // A closed pipe (`layer plan | head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Error::io("<stdout>", e)),
    }
}

fn run(cli: &Cli) -> Result<i32> {
    let g = &cli.global;
    let style = Style {
        color: g.color.enabled(std::io::stdout().is_terminal()),
    };
    match &cli.command {
        Command::List { json } => {
            let a = no_teardown(open(g, None)?);
            let plan = no_teardown(a.plan(&Selection::default()));
            let rows: Vec<render::ListRow> = a
                .project
                .images
                .iter()
                .enumerate()
                .map(|(i, img)| {
                    let p = &plan.images[i];
                    let latest = match &a.lookups[i] {
                        Lookup::Found(r) => Some(render::LatestArtifact::of(r)),
                        _ => a
                            .cache
                            .latest(&img.name)
                            .map(|r| render::LatestArtifact::of(&r)),
                    };
                    render::ListRow {
                        name: &img.name,
                        parent: img.parent(),
                        origin: img.origin(),
                        roles: &img.roles,
                        version: &img.version,
                        status: if p.reasons.is_empty() {
                            "fresh"
                        } else {
                            "stale"
                        },
                        reasons: p.reasons.clone(),
                        latest,
                    }
                })
                .collect();
            out(&if *json {
                render::json(&rows)
            } else {
                render::list_text(&rows, style)
            })
        }
        Command::Graph { targets, format } => {
            let root = project_root(g)?;
            let project = decl::load(&root)?;
            let graph = Graph::new(&project);
            let keep = with_ancestors(&graph, &resolve_targets(&project, targets)?);
            out(&match format {
                GraphFormat::Dot => render::graph_dot(&project, &keep),
                GraphFormat::Mermaid => render::graph_mermaid(&project, &keep),
                GraphFormat::Json => render::graph_json(&project, &keep),
            })
        }
        Command::Plan(args) => {
            let strategy = args.strategy.map(Strategy::from);
            let (a, since) = crate::since::open(
                &project_root(g)?,
                g.cache.clone(),
                strategy,
                args.since.as_deref(),
            )?;
            let (a, since) = (no_teardown(a), no_teardown(since));
            let sel = Selection {
                targets: resolve_targets(&a.project, &args.targets)?,
                changed: args.changed,
                force: false,
                max_age: args.max_age.clone(),
                since: None,
            };
            let plan = no_teardown(crate::since::plan(&a, sel, since.as_ref()));
            life::pin_warnings(g, &a);
            out(&match args.format {
                PlanFormat::Text => render::plan_text(&plan, style),
                PlanFormat::Json => render::json(&*plan),
                PlanFormat::Markdown => render::plan_markdown(&plan),
            })?;
            Ok(if args.exit_code && plan.summary.build > 0 {
                1
            } else {
                0
            })
        }
        Command::Hash {
            targets,
            inputs,
            json,
        } => {
            let a = no_teardown(open(g, None)?);
            let sel = resolve_targets(&a.project, targets)?;
            let keep: Vec<usize> = if sel.is_empty() {
                (0..a.keys.len()).collect()
            } else {
                sel
            };
            let chosen: Vec<(&str, &ImageKey)> = keep
                .iter()
                .map(|&i| (a.project.images[i].name.as_str(), &a.keys[i]))
                .collect();
            if *json {
                #[derive(serde::Serialize)]
                struct Row<'a> {
                    name: &'a str,
                    key: &'a str,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    inputs: Option<&'a key::Inputs>,
                }
                let rows: Vec<Row> = chosen
                    .iter()
                    .map(|(n, k)| Row {
                        name: n,
                        key: &k.key,
                        inputs: inputs.then_some(&k.inputs),
                    })
                    .collect();
                out(&render::json(&rows))
            } else if *inputs {
                let mut s = String::new();
                for (n, k) in &chosen {
                    s.push_str(&format!("{}  {n}\n{}", k.key, render::json(&k.inputs)));
                }
                out(&s)
            } else {
                let pairs: Vec<(&str, &str)> =
                    chosen.iter().map(|(n, k)| (*n, k.key.as_str())).collect();
                out(&render::hash_text(&pairs))
            }
        }
        Command::Explain { image } => {
            let a = no_teardown(open(g, None)?);
            let i = resolve_targets(&a.project, std::slice::from_ref(image))?[0];
            out(&explain(&a, i))
        }
        Command::Build(args) => build(g, args, style),
        Command::Lock { update } => {
            let outcome = crate::lock::lock(&project_root(g)?, g.cache.as_deref(), *update)?;
            out(&crate::lock::report(&outcome, *update))
        }
        Command::Test {
            targets,
            json,
            timeout,
            strategy,
        } => test(
            g,
            targets,
            *json,
            *timeout,
            strategy.map(Strategy::from),
            style,
        ),
        Command::Promote { target, force } => life::promote(g, target, *force),
        Command::Revoke { target } => life::revoke(g, target),
        Command::Report(args) => life::report(g, args),
        Command::Cache { command } => life::cache(g, command),
        Command::Export {
            target,
            format,
            output,
        } => export(g, target, *format, output),
        Command::Versions { image, json } => {
            let root = project_root(g)?;
            let project = decl::load(&root)?;
            resolve_targets(&project, std::slice::from_ref(image))?;
            let cache = crate::cache::Cache::new(
                g.cache
                    .clone()
                    .unwrap_or_else(|| project.root.join("cache")),
            );
            let records = cache.records(image);
            if *json {
                let rows: Vec<render::VersionRow> =
                    records.iter().map(render::VersionRow::of).collect();
                out(&render::json(&rows))
            } else if records.is_empty() {
                if !g.quiet {
                    eprintln!("`{image}` has no recorded builds");
                }
                Ok(0)
            } else {
                out(&render::versions_text(&records))
            }
        }
    }
}

fn test(
    g: &Global,
    targets: &[String],
    json: bool,
    timeout: u64,
    strategy: Option<Strategy>,
    style: Style,
) -> Result<i32> {
    use crate::backend::rootfs::check;
    let ws = open(g, strategy)?;
    let mut selected = resolve_targets(&ws.project, targets)?;
    if selected.is_empty() {
        selected = (0..ws.project.images.len()).collect();
    }
    let images = check::records_to_test(&ws, &selected)?;
    if let Some((i, _)) = images.first() {
        crate::backend::rootfs::check_root(&ws.project.images[*i].name, "tested")?;
    }
    let procs = crate::backend::Procs::default();
    let jobs = jobs(g);
    let quiet = g.quiet;
    let print = |r: &check::ImageTests| {
        if !quiet {
            eprint!("{}", render::image_tests_text(r, style));
        }
    };
    let results = check::run(&ws, &images, jobs, timeout, &procs, &print)?;
    if json {
        out(&render::json(&results))?;
    }
    let failed = results.iter().filter(|r| r.result != "passed").count();
    if !quiet {
        let tests: usize = results.iter().map(|r| r.tests.len()).sum();
        let passed: usize = results
            .iter()
            .map(|r| r.tests.iter().filter(|t| t.passed).count())
            .sum();
        eprintln!(
            "tested {} images: {passed} of {tests} tests passed, {failed} images failed",
            results.len()
        );
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

fn export(g: &Global, target: &str, format: crate::export::Format, output: &Path) -> Result<i32> {
    use crate::export::{self, ExportSpec};
    use crate::model::BackendKind;
    let ws = open(g, None)?;
    let (name, spec) = crate::version::split_target(target);
    let i = resolve_targets(&ws.project, &[name.to_string()])?[0];
    let records = ws.cache.records(name);
    let record = match (spec, &ws.lookups[i]) {
        (None, Lookup::Found(r)) => (**r).clone(),
        _ => crate::release::find(&records, name, spec)?.clone(),
    };
    if record.artifact.path.is_none() {
        return Err(Error::Usage {
            message: format!(
                "{name} {} is a remote artifact (`{}`): `layer export` writes out `rootfs` builds",
                record.version, record.artifact.id
            ),
            hint: None,
        });
    }
    if record.inputs.backend.kind != BackendKind::Rootfs {
        return Err(Error::Usage {
            message: format!(
                "{name} {} was built by the `{}` backend: `layer export` writes out `rootfs` builds",
                record.version,
                record.inputs.backend.kind.as_str()
            ),
            hint: None,
        });
    }
    let _shared = ws.cache.lock_shared(&mut || {
        if !g.quiet {
            eprintln!("waiting for `layer cache gc` to finish with the cache");
        }
    })?;
    let backend = crate::backend::rootfs::RootfsBackend::new(&ws.project, &ws.scanned, &ws.cache);
    let log = std::sync::Mutex::new(std::io::stderr());
    let procs = crate::backend::Procs::default();
    let stack = backend
        .stack_of_record(&record, &log, &procs)
        .map_err(|message| Error::Usage {
            message,
            hint: None,
        })?;
    let mtime = record
        .built_at_time()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    export::export(
        &ExportSpec {
            layers: &stack.trees,
            layer_names: &stack.names,
            image: name,
            version: &record.version,
            mtime,
            tags: &record.tags,
        },
        format,
        output,
    )?;
    if !g.quiet {
        eprintln!(
            "exported {name} {} ({} layers) as {format} to {}",
            record.version,
            stack.trees.len(),
            output.display()
        );
    }
    Ok(0)
}

fn build(g: &Global, args: &BuildArgs, style: Style) -> Result<i32> {
    use crate::backend::{Builder, CommandBackend, Procs};
    use crate::exec;
    use crate::model::BackendKind;
    use crate::progress::{Bars, Plain, Progress};
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicI32;
    use std::sync::Arc;

    let (ws, since) = crate::since::open(
        &project_root(g)?,
        g.cache.clone(),
        args.strategy.map(Strategy::from),
        args.since.as_deref(),
    )?;
    let sel = Selection {
        targets: resolve_targets(&ws.project, &args.targets)?,
        changed: args.changed,
        force: args.force,
        max_age: args.max_age.clone(),
        since: None,
    };
    let plan = crate::since::plan(&ws, sel, since.as_ref());
    life::pin_warnings(g, &ws);
    if args.dry_run {
        return out(&if args.json {
            render::json(&plan)
        } else {
            render::plan_text(&plan, style)
        });
    }

    // Everything that can fail before a build starts fails here.
    let secrets = exec::resolve_secrets(&ws.project, &plan)?;
    let rootfs: Vec<usize> = plan
        .to_build()
        .filter_map(|p| ws.index(&p.name))
        .filter(|&i| ws.project.backend_of(&ws.project.images[i]).kind == BackendKind::Rootfs)
        .collect();
    if let Some(&i) = rootfs.first() {
        crate::backend::rootfs::check_root(&ws.project.images[i].name, "built")?;
    }
    crate::backend::rootfs::check_packages(&ws.project, &ws.graph, rootfs.into_iter())?;
    let mut builders: BTreeMap<String, Box<dyn Builder>> = BTreeMap::new();
    for p in plan.to_build() {
        let image = ws.project.image(&p.name).expect("planned images exist");
        let backend = ws.project.backend_of(image);
        if builders.contains_key(&backend.name) {
            continue;
        }
        let builder: Box<dyn Builder> = match backend.kind {
            BackendKind::Command => Box::new(CommandBackend::new(backend)),
            BackendKind::Rootfs => Box::new(crate::backend::rootfs::RootfsBackend::new(
                &ws.project,
                &ws.scanned,
                &ws.cache,
            )),
            BackendKind::Packer => match crate::backend::packer::PackerBackend::new(backend) {
                Ok(b) => Box::new(b),
                Err(message) => {
                    return Err(Error::Usage {
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

    let interrupt = Arc::new(AtomicI32::new(0));
    {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
            .map_err(|e| Error::io("<signals>", e))?;
        let flag = Arc::clone(&interrupt);
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                flag.store(sig, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
    let run = ws.cache.start_run()?;
    let procs = Procs::default();
    let progress: Box<dyn Progress> =
        if !g.no_progress && !g.quiet && std::io::stderr().is_terminal() {
            Box::new(Bars::new())
        } else {
            Box::new(Plain { quiet: g.quiet })
        };
    let jobs = jobs(g);
    let env = exec::Env {
        ws: &ws,
        builders: &builders,
        progress: progress.as_ref(),
        procs: &procs,
        interrupt: &interrupt,
        work_dir: &run.dir,
        commit: exec::git_commit(&ws.project.root, ws.cache.dir()),
        secrets,
    };
    let report = exec::execute(
        &env,
        &plan,
        &exec::Options {
            jobs,
            keep_going: args.keep_going,
            force: args.force,
        },
    );
    drop(run);

    if args.json {
        out(&render::json(&report.images))?;
    }
    if !g.quiet {
        eprint!("{}", render::build_summary(&report));
    }
    Ok(report.exit_code())
}

/// Builds or tests at once: `-j N`, or the number of cores.
fn jobs(g: &Global) -> usize {
    g.jobs
        .map(|j| j as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The project root: from `-C DIR` or the current folder, the first folder upwards holding
/// `layer.toml`.
fn project_root(g: &Global) -> Result<PathBuf> {
    let start = match &g.dir {
        Some(d) => {
            if !d.is_dir() {
                return Err(Error::Usage {
                    message: format!("`-C {}`: no such folder", d.display()),
                    hint: None,
                });
            }
            d.clone()
        }
        None => std::env::current_dir().map_err(|e| Error::io(".", e))?,
    };
    decl::find_root(&start)
}

fn resolve_targets(project: &Project, names: &[String]) -> Result<Vec<usize>> {
    names
        .iter()
        .map(|n| {
            project
                .images
                .iter()
                .position(|i| &i.name == n)
                .ok_or_else(|| Error::UnknownImage {
                    name: n.clone(),
                    suggestion: did_you_mean(n, project.images.iter().map(|i| i.name.as_str())),
                })
        })
        .collect()
}

fn with_ancestors(graph: &Graph, targets: &[usize]) -> Vec<bool> {
    let mut keep = vec![targets.is_empty(); graph.len()];
    for &t in targets {
        for a in graph.chain(crate::graph::ImageId::new(t)) {
            keep[a.index()] = true;
        }
    }
    keep
}

/// Keeps `v` alive until the process exits instead of dropping it.
///
/// A workspace of a large project is millions of small heap objects (paths, role trees, keys'
/// inputs, records): freeing them one by one took 130 ms of a 1.5 s `layer plan` at 10,000
/// images, for memory the operating system takes back at exit anyway. The planning commands
/// (`plan`, `list`, `hash`, `explain`) only print what they computed and return an exit code,
/// after which `main` calls `std::process::exit`, so nothing is lost by not dropping: no
/// workspace type owns a lock, a temporary folder or unflushed output (stdout is flushed by
/// `out`). Never use this for values with such `Drop` duties (`Run`, held locks) or in
/// `build`, which runs for long and owns those.
fn no_teardown<T>(v: T) -> std::mem::ManuallyDrop<T> {
    std::mem::ManuallyDrop::new(v)
}

fn open(g: &Global, strategy: Option<Strategy>) -> Result<Workspace> {
    Workspace::open(&project_root(g)?, g.cache.clone(), strategy)
}

/// `layer explain`: the plan's verdict on image `i`, and every input that differs from its
/// latest build.
fn explain(ws: &Workspace, i: usize) -> String {
    let name = &ws.project.images[i].name;
    let key = &ws.keys[i].key;
    let planned = &ws.plan(&Selection::default()).images[i];
    let mut s = String::new();
    if planned.action == Action::Fresh {
        if let Lookup::Found(r) = &ws.lookups[i] {
            s.push_str(&format!(
                "`{name}` is fresh: key {} was built as {} at {}\n",
                short(key),
                r.version,
                r.built_at
            ));
        }
    } else {
        s.push_str(&format!("`{name}` is stale (key {})\n", short(key)));
        match (&ws.lookups[i], ws.cache.latest(name)) {
            (Lookup::Missing, None) => s.push_str("  never built: the cache has no record of it\n"),
            (Lookup::Missing, Some(old)) => {
                s.push_str(&format!(
                    "  latest build: {} (key {}) at {}\n",
                    old.version,
                    short(&old.key),
                    old.built_at
                ));
                let changes = plan::changes_since(&ws.input(), i, &old);
                for c in &changes {
                    for line in describe(ws, i, c) {
                        s.push_str(&format!("  {line}\n"));
                    }
                }
            }
            _ => {
                for r in &planned.reasons {
                    s.push_str(&format!("  {}\n", r.sentence()));
                }
            }
        }
    }
    if !ws.project.images[i].secrets.is_empty() {
        s.push_str("note: `[secrets]` are not part of keys; after rotating one, rebuild with `layer build --force`\n");
    }
    s
}

/// An origin's identity in words, for `explain`.
fn describe_identity(id: &key::OriginIdentity) -> String {
    use key::OriginIdentity as O;
    match id {
        O::Busybox { blake3 } => format!("busybox blake3 {}", short(blake3)),
        O::Tar {
            blake3: Some(b), ..
        } => format!("tarball blake3 {}", short(b)),
        O::Tar {
            sha256: Some(s), ..
        } => format!("tarball sha256 {}", short(s)),
        O::Tar { .. } => "tarball".to_string(),
        O::Debian {
            suite,
            variant,
            mirror,
            components,
            snapshot,
        } => {
            let mut d = format!("debian {suite}/{variant}");
            if let Some(m) = mirror {
                d.push_str(&format!(" from {m}"));
            }
            if !components.is_empty() {
                d.push_str(&format!(" ({})", components.join(", ")));
            }
            match snapshot {
                Some(s) => d.push_str(&format!(" at snapshot {s}")),
                None => d.push_str(" (not locked)"),
            }
            d
        }
        O::Id { id } => format!("id `{id}`"),
        O::Resolve { id } => format!("resolved id `{id}`"),
    }
}

fn describe(ws: &Workspace, i: usize, c: &Change) -> Vec<String> {
    let image = &ws.project.images[i];
    match c {
        Change::Schema { old, new } => vec![format!(
            "key schema changed from {old} to {new}: this layer reads inputs differently"
        )],
        Change::Strategy { old, new } => vec![format!(
            "strategy changed from {} to {}",
            old.as_str(),
            new.as_str()
        )],
        Change::Backend { old, new } => {
            let mut v = vec![format!(
                "backend `{}` changed (was `{}`)",
                new.name, old.name
            )];
            if old.kind != new.kind {
                v.push(format!(
                    "  kind: {} -> {}",
                    old.kind.as_str(),
                    new.kind.as_str()
                ));
            }
            if old.command != new.command {
                v.push(format!("  command: {:?} -> {:?}", old.command, new.command));
            }
            if old.template != new.template {
                v.push(format!(
                    "  template: {:?} -> {:?}",
                    old.template, new.template
                ));
            }
            for (f, h) in &new.files {
                if old.files.get(f) != Some(h) {
                    v.push(format!("  `{f}` changed"));
                }
            }
            v
        }
        Change::Base {
            old,
            new: BaseInputs::Parent { key },
        } => {
            let was = match old {
                BaseInputs::Parent { key } => short(key).to_string(),
                BaseInputs::Origin { .. } => "an origin".to_string(),
            };
            vec![format!(
                "parent `{}` changed: key {was} -> {}",
                image.parent().unwrap_or_default(),
                short(key)
            )]
        }
        Change::Base {
            old,
            new: BaseInputs::Origin { identity },
        } => {
            let show = describe_identity;
            let was = match old {
                BaseInputs::Origin { identity } => show(identity),
                BaseInputs::Parent { .. } => "a parent image".to_string(),
            };
            let root = ws.graph.chain(crate::graph::ImageId::new(i))[0];
            let origin = ws.project.images[root.index()].origin().unwrap_or_default();
            vec![format!(
                "origin `{origin}` changed: {was} -> {}",
                show(identity)
            )]
        }
        Change::Chain { old, new } => vec![format!(
            "image chain changed: {} -> {}",
            old.join(" -> "),
            new.join(" -> ")
        )],
        Change::Field {
            image: owner,
            field,
            old,
            new,
        } => {
            let f = if *owner == image.name {
                field.clone()
            } else {
                format!("{owner}.{field}")
            };
            vec![format!("declaration `{f}` changed: {old} -> {new}")]
        }
        Change::Role {
            role,
            files: Some(files),
        } => files
            .iter()
            .map(|(p, fc)| {
                format!(
                    "role `{role}`: {}",
                    plan::describe_file_change(&format!("roles/{role}/{p}"), fc)
                )
            })
            .collect(),
        Change::Role { role, files: None } => {
            vec![format!(
                "role `{role}` changed (its earlier files are no longer in the cache)"
            )]
        }
        Change::RoleAdded { role } => vec![format!("role `{role}` is now applied")],
        Change::RoleRemoved { role } => vec![format!("role `{role}` is no longer applied")],
    }
}

fn short(key: &str) -> &str {
    &key[..key.len().min(12)]
}
