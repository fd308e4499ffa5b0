//! The command line: parses arguments, runs the pipeline a command needs, prints its output.
//! Data goes to stdout, errors and status to stderr (SPEC §5).
//!
//! The flags several commands share are defined once in `args`, what they resolve to (the
//! project root, the workspace, the cache) in `resolve`, and printing in `print`; each command
//! has a file with its own flags and its code, which gathers values and hands them to
//! `render` for wording. Here: the command enum, `main()`, dispatch, error printing and exit
//! codes.

pub mod args;
pub mod resolve;
pub mod print;
pub mod list;
pub mod graph;
pub mod hash;
pub mod plan;
pub mod explain;
pub mod build;
pub mod lock;
pub mod test;
pub mod export;
pub mod versions;
pub mod release;
pub mod report;
pub mod cache;
pub mod keygen;
pub mod push;
pub mod pull;
pub mod logs;
pub mod init;
pub mod shell;
pub mod validate;
pub mod packages;
pub mod sbom;
pub mod audit;
pub mod enter;
pub mod watch;

use std::io::{IsTerminal, Write};

use clap::{Parser, Subcommand};

use crate::error::Result;
use crate::render::Style;
use args::Global;

#[derive(Parser, Debug)]
#[command(
    name = "layer",
    // The version and the git commit it was built from (see build.rs).
    version = env!("LAYER_VERSION"),
    about = "make for server images: builds what is stale, in parallel, from content hashes"
)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// The commands, in the order `layer --help` lists them.
#[derive(Subcommand, Debug)]
enum Command {
    /// Images with their parent or origin, roles, version, status and latest artifact
    List(list::ListArgs),
    /// The image graph
    Graph(graph::GraphArgs),
    /// What a build would do, and why; runs no user code
    Plan(plan::PlanArgs),
    /// Keys of images, and with --inputs the canonical inputs behind them
    Hash(hash::HashArgs),
    /// Why an image is stale: what differs from its latest build
    Explain(explain::ExplainArgs),
    /// Build the stale images, in parallel topological order
    Build(build::BuildArgs),
    /// Resolve `resolve` and `debian` origins into layer.lock
    Lock(lock::LockArgs),
    /// Run the tests of each built image, each test in a fresh, throwaway instance
    Test(test::TestArgs),
    /// Write a build of an image out as a tar archive, an OCI image layout, or a disk image
    Export(export::ExportArgs),
    /// An image's built versions, newest first
    Versions(versions::VersionsArgs),
    /// Mark a tested build released (without VERSION: the build of the current inputs, else the newest)
    Promote(release::PromoteArgs),
    /// Mark a build revoked: images built on it become stale
    Revoke(release::RevokeArgs),
    /// Running instances per image version, the ones to rebuild after a fix, the expired ones
    Report(report::ReportArgs),
    /// Inspect, re-hash and prune the cache (with --remote: the remote cache)
    Cache(cache::CacheArgs),
    /// Write a new signing key for the remote cache; print its public key
    Keygen(keygen::KeygenArgs),
    /// Upload the current builds the remote cache lacks (needs `LAYER_SIGNING_KEY`)
    Push(push::PushArgs),
    /// Download the remote cache's trusted builds of the current keys
    Pull(pull::PullArgs),
    /// Print a build's log, or a test run's (the newest, or of IMAGE@VERSION)
    Logs(logs::LogsArgs),
    /// Write a new project that builds and tests as it is
    Init(init::InitArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions(shell::CompletionsArgs),
    /// Check the declarations (and packer templates) without planning
    Validate(validate::ValidateArgs),
    /// Keep the stat cache current with inotify, so plans read only what changed (Ctrl-C stops)
    Watch(watch::WatchArgs),
    /// Print the man page (`layer man > /usr/local/share/man/man1/layer.1`)
    Man,
    /// The installed packages of a build, or with --diff what changed between two builds
    Packages(packages::PackagesArgs),
    /// An SPDX 2.3 or CycloneDX 1.5 document of a build's packages
    Sbom(sbom::SbomArgs),
    /// Recorded builds and running instances carrying packages that OSV advisories affect
    Audit(audit::AuditArgs),
    /// Open a shell in a throwaway instance of a build (or, with --failed, of a kept failed build)
    Shell(enter::ShellArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__sandbox") {
        // The rootfs backend's sandbox process: before anything starts a thread.
        return crate::backend::rootfs::sandbox_main(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("__reap") {
        // One program under a child subreaper of its own (`process::reap_main`).
        return crate::process::reap_main(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("__reap-server") {
        // The run's reaper server, which forks a reaper per build (`process::Reaper`).
        return crate::process::serve_main(&args[2..]);
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

/// Runs the command; its exit code, or the error `main` prints.
fn run(cli: &Cli) -> Result<i32> {
    let g = &cli.global;
    let style = Style {
        color: g.color.enabled(std::io::stdout().is_terminal()),
    };
    match &cli.command {
        Command::List(args) => list::run(g, args, style),
        Command::Graph(args) => graph::run(g, args),
        Command::Plan(args) => plan::run(g, args, style),
        Command::Hash(args) => hash::run(g, args),
        Command::Explain(args) => explain::run(g, args),
        Command::Build(args) => build::run(g, args, style),
        Command::Lock(args) => lock::run(g, args),
        Command::Test(args) => test::run(g, args, style),
        Command::Export(args) => export::run(g, args),
        Command::Versions(args) => versions::run(g, args),
        Command::Promote(args) => release::promote(g, args),
        Command::Revoke(args) => release::revoke(g, args),
        Command::Report(args) => report::run(g, args),
        Command::Cache(args) => cache::run(g, args),
        Command::Keygen(args) => keygen::run(g, args),
        Command::Push(args) => push::run(g, args),
        Command::Pull(args) => pull::run(g, args),
        Command::Logs(args) => logs::run(g, args),
        Command::Init(args) => init::run(g, args),
        Command::Completions(args) => shell::completions(args),
        Command::Man => shell::man(),
        Command::Validate(args) => validate::run(g, args),
        Command::Watch(args) => watch::run(g, args),
        Command::Packages(args) => packages::run(g, args),
        Command::Sbom(args) => sbom::run(g, args),
        Command::Audit(args) => audit::run(g, args),
        Command::Shell(args) => enter::run(g, args),
    }
}
