//! Origins made into root filesystems on the build host, once per identity, kept in the cache:
//!
//! ```text
//! cache/origins/ID/root     the tree (ID: blake3 of the origin's identity, SPEC §2)
//! cache/origins/ID/digest   its layer digest, written last: a folder without it is unfinished
//! ```
//!
//! An origin is made in a temporary folder beside its place and put there by the cache module
//! ([`Cache::store_origin`]), under a lock, so two builds never make the same origin twice and
//! a killed one leaves nothing half made.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::backend::{Log, Procs};
use crate::cache::Cache;
use crate::key::OriginIdentity;
use crate::model::{Origin, OriginSource};

/// The origin's root folder and digest, made first if needed.
pub fn materialize(
    cache: &Cache,
    project_root: &Path,
    origin: &Origin,
    identity: &OriginIdentity,
    log: Log,
    procs: &Procs,
) -> Result<(PathBuf, String), String> {
    if let Some(made) = cache.origin(identity) {
        return Ok(made);
    }
    let _lock = cache
        .lock_origin(identity, &mut || {
            let _ = writeln!(
                log.lock().unwrap(),
                "layer: waiting for another build making origin `{}`",
                origin.name
            );
        })
        .map_err(|e| e.to_string())?;
    if let Some(made) = cache.origin(identity) {
        return Ok(made);
    }
    let _ = writeln!(log.lock().unwrap(), "==> origin {}", origin.name);
    let tmp = cache.origin_work(identity).map_err(|e| e.to_string())?;
    let tmp_root = tmp.join("root");
    let apt = match origin.source {
        OriginSource::Debian { .. } => Some(
            cache
                .apt_dir(identity)
                .map_err(|e| e.to_string())?
                .join("archives"),
        ),
        _ => None,
    };
    let made = make(
        project_root,
        origin,
        identity,
        &tmp,
        &tmp_root,
        apt.as_deref(),
        log,
        procs,
    )
    .and_then(|()| check_busybox(identity, &tmp_root));
    if let Err(e) = made {
        let _ = crate::fsutil::remove_tree(&tmp);
        return Err(format!("making origin `{}`: {e}", origin.name));
    }
    let (digest, size) = crate::layerfs::digest(&tmp_root).map_err(|e| e.to_string())?;
    let _ = writeln!(
        log.lock().unwrap(),
        "layer: origin `{}` made: {:.1} MB",
        origin.name,
        size as f64 / 1e6
    );
    let root = cache
        .store_origin(identity, &tmp, &digest)
        .map_err(|e| e.to_string())?;
    Ok((root, digest))
}

/// The busybox copied into the origin is the one its key was computed from (a pinned digest,
/// or the file as the plan hashed it): a binary replaced since is refused.
fn check_busybox(identity: &OriginIdentity, root: &Path) -> Result<(), String> {
    let OriginIdentity::Busybox { blake3: want } = identity else {
        return Ok(());
    };
    let bb = root.join("bin/busybox");
    let bytes = fs::read(&bb).map_err(|e| format!("{}: {e}", bb.display()))?;
    let got = blake3::hash(&bytes).to_hex().to_string();
    if &got != want {
        return Err(format!(
            "the busybox binary has blake3 {got}, but the key was computed from {want}; run `layer lock --update` if it was upgraded"
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn make(
    project_root: &Path,
    origin: &Origin,
    identity: &OriginIdentity,
    tmp: &Path,
    root: &Path,
    apt_archives: Option<&Path>,
    log: Log,
    procs: &Procs,
) -> Result<(), String> {
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let status = procs.run(cmd, log).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{what}: command not found"),
            _ => format!("{what}: {e}"),
        })?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{what} failed ({status}); see the log"))
        }
    };
    match &origin.source {
        OriginSource::Busybox { path, .. } => busybox(path, root),
        OriginSource::TarFile { path } => {
            let file = project_root.join(path);
            run(&mut untar(&file, root), &format!("unpacking `{path}`"))
        }
        OriginSource::TarUrl { url, sha256 } => {
            let file = tmp.join("download");
            run(
                Command::new("curl")
                    .args(["-fsSL", "--retry", "3", "-o"])
                    .arg(&file)
                    .arg(url),
                &format!("downloading {url} (curl)"),
            )?;
            let got = sha256_of(&file)?;
            if !got.eq_ignore_ascii_case(sha256) {
                return Err(format!(
                    "{url} has sha256 {got}, not the {sha256} that layer.toml pins; if the new file is trusted, update `sha256`"
                ));
            }
            let r = run(&mut untar(&file, root), &format!("unpacking {url}"));
            let _ = fs::remove_file(&file);
            r
        }
        OriginSource::Debian { suite, variant, .. } => {
            if crate::backend::find_program("mmdebstrap").is_none() {
                return Err(
                    "the `debian` origin needs mmdebstrap on the build host: apt-get install mmdebstrap".into(),
                );
            }
            let mut cmd = Command::new("mmdebstrap");
            cmd.arg(format!("--variant={variant}"))
                .arg("--mode=root")
                .arg("--format=directory");
            // Nothing of the host's (mmdebstrap copies its hostname and resolver; builds
            // that download get the resolver from the sandbox).
            cmd.arg("--customize-hook=echo localhost > \"$1/etc/hostname\"")
                .arg("--customize-hook=rm -f \"$1/etc/resolv.conf\"");
            // No translations (builds never read them), and the packages mmdebstrap downloads
            // filed away into the cache's shared apt folder of this origin (hard links; the
            // tree keeps none), where later builds' verified downloads go too.
            cmd.arg("--aptopt=Acquire::Languages \"none\"")
                .arg("--skip=essential/unlink");
            if let Some(archives) = apt_archives {
                cmd.arg(format!(
                    "--customize-hook=for f in \"$1\"/var/cache/apt/archives/*.deb; do [ -f \"$f\" ] || continue; ln -f \"$f\" {} 2>/dev/null || true; rm -f \"$f\"; done",
                    crate::backend::bundle::sh_quote(&format!("{}/", archives.display()))
                ));
            }
            // The same tree on every machine: mmdebstrap's reproducible mode (logs and caches
            // removed, machine-id empty) at the locked Release date.
            let epoch = source_date_epoch(identity);
            if let Some(epoch) = epoch {
                cmd.env("SOURCE_DATE_EPOCH", epoch.to_string());
            }
            cmd.arg(suite).arg(root);
            // Every archive as a whole `deb` line (the suite, `-updates`, `-security`,
            // `sources`): mmdebstrap writes them into the origin's sources list as given.
            for a in crate::lock::archive::origin_archives(&origin.source) {
                cmd.arg(a.source.line());
            }
            run(&mut cmd, "mmdebstrap")?;
            // mmdebstrap clamps the mtimes of its tarballs only: a tree keeps install times.
            match epoch {
                Some(epoch) => clamp_mtimes(root, epoch),
                None => Ok(()),
            }
        }
        OriginSource::Id { .. } | OriginSource::Resolve { .. } => Err(format!(
            "origin `{}` is an image id for `command` and `packer` backends; the `rootfs` backend builds on `busybox`, `tar` or `debian` origins",
            origin.name
        )),
    }
}

/// The `Date:` of the suite's `Release` file that `layer.lock` pins for a `debian` origin
/// (`snapshot = "DATE BLAKE3"`), in seconds since 1970: mmdebstrap's `SOURCE_DATE_EPOCH`.
/// `None` without a pin: the origin is then made at the current time, and differs by machine.
fn source_date_epoch(identity: &OriginIdentity) -> Option<u64> {
    let OriginIdentity::Debian {
        snapshot: Some(snapshot),
        ..
    } = identity
    else {
        return None;
    };
    let date = snapshot.split_whitespace().next()?;
    let at = humantime::parse_rfc3339_weak(date).ok()?;
    at.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// Every mtime under `root` later than `epoch` set to it (links themselves, never followed).
fn clamp_mtimes(root: &Path, epoch: u64) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    for entry in walkdir::WalkDir::new(root).same_file_system(true) {
        let entry = entry.map_err(|e| e.to_string())?;
        let m = entry.metadata().map_err(|e| e.to_string())?;
        if u64::try_from(m.mtime()).is_ok_and(|t| t > epoch) {
            crate::fsutil::set_mtime(entry.path(), epoch).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// `tar` unpacking a root filesystem archive (any compression GNU tar recognizes) into `root`,
/// owners by number.
fn untar(file: &Path, root: &Path) -> Command {
    let mut cmd = Command::new("tar");
    cmd.arg("-xpf")
        .arg(file)
        .arg("-C")
        .arg(root)
        .arg("--numeric-owner");
    cmd
}

/// The sha256 of a downloaded file, in hex, as `layer.toml` pins it.
fn sha256_of(file: &Path) -> Result<String, String> {
    use sha2::{Digest, Sha256};
    let mut f = fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(format!("{:x}", h.finalize()))
}

/// A root of one static busybox: `/bin/busybox`, a link for each of its applets, the folders a
/// system expects, and a `root` user.
fn busybox(host_binary: &Path, root: &Path) -> Result<(), String> {
    let e = |p: &Path, err: std::io::Error| format!("{}: {err}", p.display());
    let out = Command::new(host_binary)
        .arg("--list-full")
        .output()
        .map_err(|err| e(host_binary, err))?;
    if !out.status.success() {
        return Err(format!(
            "`{} --list-full` failed: is it a busybox binary?",
            host_binary.display()
        ));
    }
    for (dir, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc", 0o755),
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("run", 0o755),
        ("tmp", 0o1777),
        ("var/tmp", 0o1777),
        ("root", 0o700),
    ] {
        let p = root.join(dir);
        fs::create_dir_all(&p).map_err(|err| e(&p, err))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(|err| e(&p, err))?;
    }
    let bb = root.join("bin/busybox");
    fs::copy(host_binary, &bb).map_err(|err| e(&bb, err))?;
    fs::set_permissions(&bb, fs::Permissions::from_mode(0o755)).map_err(|err| e(&bb, err))?;
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim().trim_start_matches('/');
        if applet.is_empty() || applet == "bin/busybox" || applet.contains("..") {
            continue;
        }
        let link = root.join(applet);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).map_err(|err| e(parent, err))?;
        }
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink("/bin/busybox", &link).map_err(|err| e(&link, err))?;
        }
    }
    for (file, text) in [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ("etc/group", "root:x:0:\n"),
        ("etc/hostname", "localhost\n"),
    ] {
        let p = root.join(file);
        fs::write(&p, text).map_err(|err| e(&p, err))?;
    }
    // Every entry gets the busybox binary's own mtime (its package's, as dpkg keeps it), not
    // the time this machine made the origin: two machines with the same busybox make origins
    // whose exports are the same bytes.
    let mtime = fs::metadata(host_binary)
        .map_err(|err| e(host_binary, err))?
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    for entry in walkdir::WalkDir::new(root).contents_first(true) {
        let entry = entry.map_err(|err| format!("{}: {err}", root.display()))?;
        crate::fsutil::set_mtime(entry.path(), mtime).map_err(|err| err.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    #[cfg_attr(
        missing = "busybox",
        ignore = "needs a static busybox: apt-get install busybox-static"
    )]
    fn a_busybox_origin_has_the_binary_s_mtime_on_every_entry() {
        let host = [Path::new("/bin/busybox"), Path::new("/usr/bin/busybox")]
            .into_iter()
            .find(|p| p.is_file())
            .expect("a static busybox (apt-get install busybox-static)");
        let want = fs::metadata(host).unwrap().mtime();
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        fs::create_dir(&root).unwrap();
        busybox(host, &root).unwrap();
        let mut seen = 0;
        for entry in walkdir::WalkDir::new(&root) {
            let entry = entry.unwrap();
            let m = fs::symlink_metadata(entry.path()).unwrap();
            assert_eq!(m.mtime(), want, "{}", entry.path().display());
            seen += 1;
        }
        assert!(seen > 100, "applet links and folders: {seen}");
    }

    #[test]
    fn mtimes_later_than_the_epoch_are_clamped_to_it() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/old"), "").unwrap();
        crate::fsutil::set_mtime(&root.join("etc/old"), 1_000).unwrap();
        fs::write(root.join("etc/new"), "").unwrap();
        std::os::unix::fs::symlink("/nowhere", root.join("etc/link")).unwrap();
        clamp_mtimes(&root, 5_000).unwrap();
        let mtime = |p: &str| fs::symlink_metadata(root.join(p)).unwrap().mtime();
        assert_eq!(
            [
                mtime(""),
                mtime("etc"),
                mtime("etc/old"),
                mtime("etc/new"),
                mtime("etc/link")
            ],
            [5_000, 5_000, 1_000, 5_000, 5_000]
        );
    }

    #[test]
    fn a_locked_debian_origin_is_made_at_its_release_date() {
        let debian = |snapshot: Option<&str>| OriginIdentity::Debian {
            suite: "bookworm".into(),
            variant: "minbase".into(),
            mirror: None,
            components: vec![],
            updates: true,
            security: crate::model::Security::Default,
            sources: vec![],
            snapshot: snapshot.map(String::from),
        };
        assert_eq!(
            source_date_epoch(&debian(Some("2025-01-11T10:48:02Z abc123"))),
            Some(1_736_592_482)
        );
        assert_eq!(source_date_epoch(&debian(None)), None);
        assert_eq!(source_date_epoch(&debian(Some("not-a-date abc"))), None);
        assert_eq!(
            source_date_epoch(&OriginIdentity::Id { id: "ami-1".into() }),
            None
        );
    }
}
