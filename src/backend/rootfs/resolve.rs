//! `layer lock`'s package resolution ([`crate::lock::Resolver`]), in a throwaway sandbox of
//! the origin: the origin is made (or taken from the cache) as for a build, and apt inside it
//! — never the host's — simulates each image's chain: `apt-get -s dist-upgrade` (the security
//! and point updates of what the origin has) and `apt-get -s install --no-install-recommends`
//! of the chain's packages, with the chain's extra sources added. Nothing is installed; the
//! sandbox's upper folder is thrown away.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;

use super::{sandbox, RootfsBackend};
use crate::backend::bundle::sh_quote;
use crate::backend::Procs;
use crate::cache::Cache;
use crate::error::{Error, ErrorKind, Result};
use crate::lock::{Request, Resolution, Resolver};
use crate::model::{AptSource, Project, LOCK_FILE};
use crate::scan::Scanned;

/// How long one image's resolution may take (apt-get update over a slow mirror included).
const RESOLVE_TIMEOUT_SECS: u64 = 1800;

/// Resolves in sandboxes of origins made in `cache`.
pub struct SandboxResolver<'a> {
    pub scanned: &'a Scanned,
    pub cache: &'a Cache,
}

impl Resolver for SandboxResolver<'_> {
    fn resolve(&self, project: &Project, origin: &str, requests: &[Request]) -> Result<Resolution> {
        super::check_root(&requests[0].image, "locked")?;
        let fail = |message: String| Error::Input {
            kind: ErrorKind::PackagesUnresolved,
            path: LOCK_FILE.into(),
            message: format!("resolving the packages of images on origin `{origin}`: {message}"),
            hint: Some("check the images' and roles' `packages` and `sources`".into()),
        };
        let run = self.cache.start_run()?;
        let log_path = run.dir.join("resolve.log");
        let file = fs::File::create(&log_path).map_err(|e| Error::io(&log_path, e))?;
        let log = Mutex::new(file);
        let procs = Procs::default();
        let backend = RootfsBackend::new(project, self.scanned, self.cache);
        let tail = || log_tail(&log_path);
        let stack = backend
            .origin_stack(origin, &log, &procs)
            .map_err(|e| fail(format!("{e}{}", tail())))?;
        let mut steps = vec![sandbox::Step::Test {
            name: "installed".into(),
            role: None,
            script: "dpkg-query -W -f '${db:Status-Abbrev}|${Package}|${Version}\\n'".into(),
            timeout_secs: RESOLVE_TIMEOUT_SECS,
        }];
        steps.extend(requests.iter().map(|r| sandbox::Step::Test {
            name: format!("resolve {}", r.image),
            role: None,
            script: script(r),
            timeout_secs: RESOLVE_TIMEOUT_SECS,
        }));
        let origin_lines = crate::lock::archive::origin_archives(&project.origins[origin].source)
            .into_iter()
            .map(|a| a.source.line());
        let mut binds: Vec<PathBuf> = Vec::new();
        for line in origin_lines.chain(requests.iter().flat_map(|r| r.sources.clone())) {
            if let Some(d) = AptSource::parse(&line)
                .ok()
                .and_then(|a| a.local_dir().map(PathBuf::from))
            {
                if !binds.contains(&d) {
                    binds.push(d);
                }
            }
        }
        let work = run.dir.join("resolve");
        let results = work.join("results");
        fs::create_dir_all(&results).map_err(|e| Error::io(&results, e))?;
        let spec = sandbox::Spec {
            root: PathBuf::new(),
            overlay: None,
            hostname: "layer-lock".into(),
            host_network: true,
            env: sandbox::base_env(&BTreeMap::new()),
            secret_names: vec![],
            steps,
            results: Some(results.clone()),
            binds,
            apt: None,
        };
        let ok = backend
            .run_sandbox(&stack, None, &work, spec, &[], &log, &procs)
            .map_err(|e| fail(format!("{e}{}", tail())))?;
        let read =
            |n: usize| fs::read_to_string(results.join(format!("{n:03}.out"))).unwrap_or_default();
        let passed: Vec<sandbox::TestResult> = fs::read(results.join("results.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if !ok || passed.len() != requests.len() + 1 {
            return Err(fail(format!("the sandbox failed{}", tail())));
        }
        if let Some((n, r)) = passed.iter().enumerate().find(|(_, r)| !r.passed) {
            let out = read(n);
            let last: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
            let last = last[last.len().saturating_sub(8)..].join("\n  ");
            return Err(fail(format!(
                "`{}` failed ({}):\n  {last}",
                r.name, r.status
            )));
        }
        let base = installed(&read(0));
        let images = (0..requests.len())
            .map(|i| after(&base, &read(i + 1)))
            .collect();
        Ok(Resolution { base, images })
    }
}

/// The last lines of the log, for an error message.
fn log_tail(path: &std::path::Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    format!(
        ":\n  {}",
        lines[lines.len().saturating_sub(8)..].join("\n  ")
    )
}

/// The shell script that simulates one chain's packages.
fn script(r: &Request) -> String {
    let mut s = String::from(
        "set -e; export DEBIAN_FRONTEND=noninteractive; rm -f /etc/apt/sources.list.d/layer-lock.list; ",
    );
    if !r.sources.is_empty() {
        let lines: Vec<String> = r.sources.iter().map(|l| sh_quote(l)).collect();
        s.push_str(&format!(
            "printf '%s\\n' {} > /etc/apt/sources.list.d/layer-lock.list; ",
            lines.join(" ")
        ));
    }
    s.push_str("apt-get update -qq --error-on=any; apt-get -s -q dist-upgrade; ");
    if !r.packages.is_empty() {
        let names: Vec<String> = r.packages.iter().map(|p| sh_quote(p)).collect();
        s.push_str(&format!(
            "apt-get -s -q install --no-install-recommends {}; ",
            names.join(" ")
        ));
    }
    s
}

/// `dpkg-query`'s `STATUS|NAME|VERSION` lines: the installed packages.
fn installed(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| {
            let mut f = l.split('|');
            let (status, name, version) = (f.next()?, f.next()?, f.next()?);
            (status.as_bytes().get(1) == Some(&b'i'))
                .then(|| (name.to_string(), version.trim().to_string()))
        })
        .collect()
}

/// `base` after the `Inst` and `Remv` lines of apt-get's simulations in `out`:
/// `Inst NAME [OLD] (NEW ARCHIVE [ARCH])`, `Remv NAME [OLD]`.
fn after(base: &BTreeMap<String, String>, out: &str) -> BTreeMap<String, String> {
    let mut state = base.clone();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Inst ") {
            let mut words = rest.split_whitespace();
            let Some(name) = words.next() else { continue };
            let version = words.find_map(|w| w.strip_prefix('('));
            if let Some(v) = version {
                state.insert(name.to_string(), v.to_string());
            }
        } else if let Some(rest) = line.strip_prefix("Remv ") {
            if let Some(name) = rest.split_whitespace().next() {
                state.remove(name);
            }
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulations_move_the_installed_set() {
        let base = installed("ii |libssl3|3.0.14-1~deb12u1\nrc |gone|1\nii |old|1.0\n");
        assert_eq!(base.len(), 2);
        let out = "Reading package lists...\n\
            Inst libssl3 [3.0.14-1~deb12u1] (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])\n\
            Inst curl (7.88.1-10+deb12u8 Debian:12.8/stable [amd64])\n\
            Conf curl (7.88.1-10+deb12u8 Debian:12.8/stable [amd64])\n\
            Remv old [1.0]\n";
        let s = after(&base, out);
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            [
                ("curl".to_string(), "7.88.1-10+deb12u8".to_string()),
                ("libssl3".to_string(), "3.0.15-1~deb12u1".to_string()),
            ]
        );
    }

    #[test]
    fn the_script_adds_the_chain_s_sources_and_asks_for_its_packages() {
        let s = script(&Request {
            image: "app".into(),
            sources: vec!["deb [trusted=yes] file:///srv/repo ./".into()],
            packages: vec!["hello".into()],
        });
        assert!(s.contains("printf '%s\\n' 'deb [trusted=yes] file:///srv/repo ./' > /etc/apt/sources.list.d/layer-lock.list"), "{s}");
        assert!(
            s.ends_with("apt-get -s -q install --no-install-recommends 'hello'; "),
            "{s}"
        );
    }
}
