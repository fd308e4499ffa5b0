//! `layer logs IMAGE[@VERSION] [--test] [--follow]`: a build's or a test run's log as it is
//! in the cache (`cache::logs` names them), and with `--follow` what is written to it until
//! its writer is done.

use std::io::Write;
use std::time::Duration;

use clap::Args;

use super::args::Global;
use super::resolve::{cache_in, project_root, resolve_targets};
use crate::cache::logs::LogFile;
use crate::decl;
use crate::error::{Error, ErrorKind, Result};

/// The flags of `layer logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// IMAGE or IMAGE@VERSION [default: the image's newest log, failed builds included]
    target: String,
    /// The log of a test run (`layer test`) instead of a build
    #[arg(long)]
    test: bool,
    /// Keep printing what is written to the log until its build or test run ends
    #[arg(short, long)]
    follow: bool,
}

pub fn run(g: &Global, args: &LogsArgs) -> Result<i32> {
    let (name, spec) = crate::version::split_target(&args.target);
    let root = project_root(g)?;
    let project = decl::load(&root)?;
    resolve_targets(&project, &[name.to_string()])?;
    let cache = cache_in(g, &project.root);
    let logs = cache.logs(name);
    let log = pick(&logs, name, spec, args.test)?;
    print(&log.path, args.follow)?;
    Ok(0)
}

/// The newest log of the kind asked (of the version `spec` names, when one is given).
fn pick<'a>(
    logs: &'a [LogFile],
    name: &str,
    spec: Option<&str>,
    test: bool,
) -> Result<&'a LogFile> {
    let what = if test { "test" } else { "build" };
    if let Some(spec) = spec.filter(|s| !crate::version::valid_version(s)) {
        return Err(Error::Usage {
            kind: ErrorKind::NotAVersion,
            message: format!("`{spec}` is not a version of a build"),
            hint: Some("name a build by MAJOR.MINOR.BUILD (`1.0.4`) or in full (`1.0.4-20200229_0420`); `layer versions IMAGE` lists them".into()),
        });
    }
    let kind: Vec<&LogFile> = logs.iter().filter(|l| l.test == test).collect();
    let found = kind
        .iter()
        .rev()
        .find(|l| spec.is_none_or(|s| crate::version::names(&l.version, s)));
    if let Some(l) = found {
        return Ok(l);
    }
    let mut versions: Vec<&str> = kind.iter().rev().map(|l| l.version.as_str()).collect();
    versions.dedup();
    Err(Error::Usage {
        kind: ErrorKind::NoLog,
        message: match spec {
            None => format!("`{name}` has no {what} logs"),
            Some(s) if versions.is_empty() => format!("`{name}` has no {what} log of {s}"),
            Some(s) => format!(
                "`{name}` has no {what} log of {s}; its {what} logs: {}",
                versions.join(", ")
            ),
        },
        hint: Some(if test {
            format!("run its tests: `layer test {name}`")
        } else {
            format!("build it: `layer build {name}`")
        }),
    })
}

/// Copies the log to stdout; with `follow`, then what is appended until no run holds its lock.
fn print(path: &std::path::Path, follow: bool) -> Result<()> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut stdout = std::io::stdout().lock();
    loop {
        // Whether the writer was done before this read: then the read gets the whole rest.
        let done = !follow || file.try_lock_shared().is_ok();
        if let Err(e) = std::io::copy(&mut file, &mut stdout) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(Error::io(path, e));
        }
        let _ = stdout.flush();
        if done {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime};

    use super::*;

    fn log(version: &str, test: bool, secs: u64) -> LogFile {
        LogFile {
            path: PathBuf::from(format!("{version}.log")),
            version: version.into(),
            test,
            attempt: 0,
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    #[test]
    fn picks_the_newest_log_of_the_kind_and_version_asked() {
        let logs = [
            log("1.0.0-20261130_0800", false, 1),
            log("1.0.0-20261130_0800", true, 2),
            log("1.0.1-20261130_0900", false, 3),
        ];
        assert_eq!(pick(&logs, "a", None, false).unwrap(), &logs[2]);
        assert_eq!(pick(&logs, "a", None, true).unwrap(), &logs[1]);
        assert_eq!(pick(&logs, "a", Some("1.0.0"), false).unwrap(), &logs[0]);
        let e = pick(&logs, "a", Some("1.0.1"), true).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoLog);
        assert_eq!(
            e.to_string(),
            "`a` has no test log of 1.0.1; its test logs: 1.0.0-20261130_0800"
        );
        let e = pick(&logs, "a", Some("latest"), false).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAVersion);
        let e = pick(&[], "a", None, false).unwrap_err();
        assert_eq!(e.to_string(), "`a` has no build logs");
        assert_eq!(e.hint().unwrap(), "build it: `layer build a`");
    }
}
