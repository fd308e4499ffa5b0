//! A package step with the cache's shared apt folder (`cache/apt/ID`, see [`crate::cache`]),
//! as `BuildKit`'s cache mounts do it: apt's lists and downloaded archives are bound into the
//! root for the step only, so they are never part of the layer, and the image's own
//! `/var/lib/apt/lists` and `/var/cache/apt/archives` stay as a build without the cache leaves
//! them (empty).
//!
//! Under the folder's lock (two builds on one origin never download into it at once): the
//! lists of the root's set of sources are fetched once a run (no translations), the cached
//! `.deb`s the install needs are checked against the sha256 of the lists' `Packages` (apt
//! itself trusts a cached file of the right size), damaged ones removed, the missing ones
//! downloaded. The install then runs without the lock, from files no one changes.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::mounts::mount;
use super::{say, Sandbox};

/// The shared apt folder a package step uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AptCache {
    /// `apt/ID` in the cache, made by [`crate::cache::Cache::apt_dir`].
    pub dir: PathBuf,
    /// This run's token: the lists of a set of sources are fetched once per token.
    pub run: String,
}

/// Where apt keeps lists and archives in the root.
const LISTS: &str = "var/lib/apt/lists";
const ARCHIVES: &str = "var/cache/apt/archives";

/// The options of every install: locked versions may be older than the installed ones, and
/// a package's changed configuration files keep the image's.
const INSTALL: &str = "apt-get install -y -q --no-install-recommends --allow-downgrades";

impl Sandbox<'_> {
    /// Installs `names` (after writing `sources` to `/etc/apt/sources.list.d/LIST`) with the
    /// shared apt folder; whether apt succeeded.
    pub(super) fn install_cached(
        &mut self,
        apt: &AptCache,
        names: &[String],
        sources: &[String],
        list_name: &str,
    ) -> io::Result<bool> {
        let root = self.root().to_path_buf();
        if !sources.is_empty() {
            let list = root.join("etc/apt/sources.list.d").join(list_name);
            fs::create_dir_all(root.join("etc/apt/sources.list.d"))?;
            let mut text = sources.join("\n");
            text.push('\n');
            fs::write(&list, text)?;
        }
        let set = sources_digest(&root)?;
        let lock_path = apt.dir.join("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        if lock.try_lock().is_err() {
            eprintln!("layer: waiting for another build using the apt cache");
            lock.lock()?;
        }
        let lists = apt.dir.join("lists").join(&set);
        if !lists.exists() {
            seed_lists(&apt.dir.join("lists"), &lists)?;
        }
        self.bind_rw(&lists, LISTS)?;
        self.bind_rw(&apt.dir.join("archives"), ARCHIVES)?;
        let list: Vec<String> = names
            .iter()
            .map(|n| crate::backend::bundle::sh_quote(n))
            .collect();
        let list = list.join(" ");
        let env = "export DEBIAN_FRONTEND=noninteractive; set -e;";
        let marker = apt.dir.join("lists").join(format!("{set}.run"));
        if fs::read_to_string(&marker).ok().as_deref() == Some(apt.run.as_str()) {
            eprintln!("layer: apt lists of these sources already fetched in this run");
        } else {
            let update = format!("{env} apt-get update -q -o Acquire::Languages=none");
            if !self.run_in_root(&update, &[], None, None)?.success() {
                return Ok(false);
            }
            fs::write(&marker, &apt.run)?;
        }
        // What the install needs, with the hashes the lists give, as if nothing were cached.
        let uris = root.join("run/layer-apt-uris");
        fs::create_dir_all(root.join("run/layer-apt-empty/partial"))?;
        let print = format!(
            "{env} {INSTALL} -qq --print-uris -o Dir::Cache::Archives=/run/layer-apt-empty/ {list} > /run/layer-apt-uris"
        );
        if !self.run_in_root(&print, &[], None, None)?.success() {
            return Ok(false);
        }
        let uris = fs::read_to_string(&uris)?;
        // apt prints MD5 sums there: the SHA256 of each comes from its record in the lists.
        let wanted: Vec<String> = needed(&uris)
            .iter()
            .map(|n| crate::backend::bundle::sh_quote(&format!("{}={}", n.name, n.version)))
            .collect();
        let records = if wanted.is_empty() {
            String::new()
        } else {
            let show = format!(
                "apt-cache show {} > /run/layer-apt-records",
                wanted.join(" ")
            );
            if !self.run_in_root(&show, &[], None, None)?.success() {
                return Ok(false);
            }
            fs::read_to_string(root.join("run/layer-apt-records"))?
        };
        let (cached, damaged) = verify_archives(&uris, &records, &apt.dir.join("archives"))?;
        eprintln!(
            "layer: apt cache: {cached} of the packages to install cached and verified{}",
            if damaged > 0 {
                format!(", {damaged} damaged (removed, fetched again)")
            } else {
                String::new()
            }
        );
        let download = format!("{env} {INSTALL} --download-only {list}");
        if !self.run_in_root(&download, &[], None, None)?.success() {
            return Ok(false);
        }
        drop(lock);
        say("install");
        // Everything is downloaded: apt reads the archives without their lock, which another
        // build may hold while it downloads. Its binary caches are not the image's.
        let install = format!(
            "{env} {INSTALL} -o Debug::NoLocking=1 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold {list}; \
             rm -f /var/cache/apt/pkgcache.bin /var/cache/apt/srcpkgcache.bin"
        );
        Ok(self.run_in_root(&install, &[], None, None)?.success())
    }

    /// Binds the host folder `from` read-write at `rel` below the root for the sandbox's
    /// life, making (and noting for removal) the folders on the way.
    fn bind_rw(&mut self, from: &Path, rel: &str) -> io::Result<()> {
        let mut at = self.root().to_path_buf();
        for part in Path::new(rel).components() {
            at.push(part);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(io::Error::other(format!(
                        "cannot bind the apt cache at `/{rel}`: `{}` in the image is not a folder",
                        at.display()
                    )))
                }
                Err(_) => {
                    fs::create_dir(&at)?;
                    self.made.push(at.clone());
                }
            }
        }
        let src = from.display().to_string();
        mount(Some(&src), &at, None, libc::MS_BIND, None)?;
        self.mounts.push(at);
        Ok(())
    }
}

/// A short digest of the root's apt sources (what `/etc/apt/sources.list` and the files of
/// `sources.list.d` say, whatever the files are named): the lists of one set of sources live
/// in their own folder, so that an update for another set never removes them under a build
/// that reads them.
pub(super) fn sources_digest(root: &Path) -> io::Result<String> {
    let mut files = vec![root.join("etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir(root.join("etc/apt/sources.list.d")) {
        files.extend(entries.flatten().map(|e| e.path()));
    }
    let mut texts: Vec<Vec<u8>> = files.iter().filter_map(|f| fs::read(f).ok()).collect();
    texts.sort();
    texts.dedup();
    let mut h = blake3::Hasher::new();
    for t in &texts {
        h.update(&(t.len() as u64).to_le_bytes());
        h.update(t);
    }
    Ok(h.finalize().to_hex()[..16].to_string())
}

/// Makes the lists folder `dir` of a new set of sources, its files hard-linked from a sibling
/// folder (another set on the same origin): apt then fetches only what differs, and replaces
/// files by renaming, so the sibling never sees a change.
fn seed_lists(parent: &Path, dir: &Path) -> io::Result<()> {
    let tmp = parent.join(format!(
        "{}.tmp-{}",
        dir.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(tmp.join("partial"))?;
    let sibling = fs::read_dir(parent)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.extension().is_none() && *p != tmp)
        .max_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok());
    if let Some(from) = sibling {
        for e in fs::read_dir(&from)?.flatten() {
            if e.file_type().is_ok_and(|t| t.is_file()) && e.file_name() != "lock" {
                let _ = fs::hard_link(e.path(), tmp.join(e.file_name()));
            }
        }
    }
    fs::rename(&tmp, dir)
}

/// A package file `apt-get --print-uris` names (`'URI' FILE SIZE HASH`, FILE being
/// `NAME_VERSION_ARCH.deb` with the epoch's `:` as `%3a`).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Needed {
    pub file: String,
    pub size: u64,
    pub name: String,
    pub version: String,
    pub arch: String,
}

pub(super) fn needed(uris: &str) -> Vec<Needed> {
    let mut out = vec![];
    for line in uris.lines() {
        let mut fields = line.rsplitn(4, ' ');
        let (Some(_hash), Some(size), Some(file)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if file.contains('/') || file.starts_with('.') {
            continue;
        }
        let Some(stem) = file.strip_suffix(".deb") else {
            continue;
        };
        let mut parts = stem.splitn(3, '_');
        let (Some(name), Some(version), Some(arch)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(size) = size.parse() else { continue };
        out.push(Needed {
            file: file.to_string(),
            size,
            name: name.to_string(),
            version: version.replace("%3a", ":").replace("%3A", ":"),
            arch: arch.to_string(),
        });
    }
    out
}

/// `(package, version, architecture)` -> the SHA256s `apt-cache show` gives them.
fn sha256s(records: &str) -> BTreeMap<(String, String, String), Vec<String>> {
    let mut out: BTreeMap<_, Vec<String>> = BTreeMap::new();
    for record in records.split("\n\n") {
        let field = |name: &str| {
            record
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        };
        if let (Some(p), Some(v), Some(a), Some(sha)) = (
            field("Package"),
            field("Version"),
            field("Architecture"),
            field("SHA256"),
        ) {
            out.entry((p, v, a)).or_default().push(sha);
        }
    }
    out
}

/// Checks every cached archive the install needs (`uris`, from `apt-get --print-uris`)
/// against its size and the SHA256 of its record in the lists (`records`, from `apt-cache
/// show`), removing the damaged ones and those without a SHA256, so that apt fetches them
/// again; (found and good, removed).
pub(super) fn verify_archives(
    uris: &str,
    records: &str,
    archives: &Path,
) -> io::Result<(usize, usize)> {
    let sums = sha256s(records);
    let (mut good, mut removed) = (0, 0);
    for n in needed(uris) {
        let path = archives.join(&n.file);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let want = sums
            .get(&(n.name.clone(), n.version.clone(), n.arch.clone()))
            .cloned()
            .unwrap_or_default();
        let ok = meta.is_file() && n.size == meta.size() && {
            let got = sha256_of(&path)?;
            want.iter().any(|w| w.eq_ignore_ascii_case(&got))
        };
        if ok {
            good += 1;
        } else {
            fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok((good, removed))
}

/// The SHA256 of a file, in hex.
fn sha256_of(path: &Path) -> io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(format!("{:x}", h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_and_unrecorded_archives_are_removed_good_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let good = b"a good package";
        let sha = {
            use sha2::{Digest, Sha256};
            format!("{:x}", Sha256::digest(good))
        };
        fs::write(d.path().join("good_1:1_all.deb".replace(':', "%3a")), good).unwrap();
        fs::write(d.path().join("bad_1_amd64.deb"), b"a bad  package").unwrap();
        fs::write(d.path().join("norecord_1_all.deb"), good).unwrap();
        let uris = format!(
            "'http://x/good_1_all.deb' good_1%3a1_all.deb {n} MD5Sum:00\n\
             'http://x/bad_1_amd64.deb' bad_1_amd64.deb {n} MD5Sum:00\n\
             'http://x/norecord_1_all.deb' norecord_1_all.deb {n} MD5Sum:00\n\
             'http://x/gone_1_all.deb' gone_1_all.deb {n} MD5Sum:00\n",
            n = good.len()
        );
        let records = format!(
            "Package: good\nVersion: 1:1\nArchitecture: all\nSHA256: {sha}\n\n\
             Package: bad\nVersion: 1\nArchitecture: amd64\nSHA256: {sha}\n\n\
             Package: gone\nVersion: 1\nArchitecture: all\nSHA256: {sha}\n"
        );
        assert_eq!(verify_archives(&uris, &records, d.path()).unwrap(), (1, 2));
        assert!(d.path().join("good_1%3a1_all.deb").exists());
        assert!(!d.path().join("bad_1_amd64.deb").exists());
        assert!(!d.path().join("norecord_1_all.deb").exists());
        assert_eq!(needed(&uris)[0].version, "1:1");
    }

    #[test]
    fn the_sources_digest_follows_every_sources_file() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc/apt/sources.list.d")).unwrap();
        fs::write(d.path().join("etc/apt/sources.list"), "deb http://a b c\n").unwrap();
        let one = sources_digest(d.path()).unwrap();
        assert_eq!(one, sources_digest(d.path()).unwrap());
        fs::write(
            d.path().join("etc/apt/sources.list.d/x.list"),
            "deb http://x ./\n",
        )
        .unwrap();
        let two = sources_digest(d.path()).unwrap();
        assert_ne!(one, two);
        fs::rename(
            d.path().join("etc/apt/sources.list.d/x.list"),
            d.path().join("etc/apt/sources.list.d/y.list"),
        )
        .unwrap();
        assert_eq!(two, sources_digest(d.path()).unwrap(), "names do not count");
    }
}
