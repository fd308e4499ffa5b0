//! Images on `debian` origins, for real: mmdebstrap makes the origin from the machine's own
//! Debian mirror (its apt sources), and a small apt repository made by the test
//! ([`AptRepo`]) plays the security update.
//! Every test shares one origin (`bookworm`, `minbase`, no extra origin sources) through one
//! cache under the target folder; image names differ between tests so their records do not
//! meet.

use std::path::{Path, PathBuf};

use crate::apt_repo::{hello_image, AptRepo};
use crate::common::{Output, Project};
use crate::needs::{self, Need};

/// The cache every test here shares, so the origin is made once.
pub(crate) fn shared_cache() -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian-cache");
    std::fs::create_dir_all(&dir).unwrap();
    dir.display().to_string()
}

pub(crate) fn layer(p: &Project, args: &[&str]) -> Output {
    let mut all = vec![args[0], "--no-progress"];
    if args[0] != "build" {
        all.pop();
    }
    all.extend(&args[1..]);
    p.layer_env(&all, &[("LAYER_CACHE", &shared_cache())])
}

/// A project on the shared origin; `images` are `(file name, declaration)`.
pub(crate) fn project(images: &[(&str, &str)]) -> Project {
    let p = Project::new();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bookworm]\ndebian = { suite = \"bookworm\", variant = \"minbase\" }\n",
    );
    for (name, text) in images {
        p.file(&format!("images/{name}.toml"), text);
    }
    p
}

/// The file `rel` in the layer of the current build of `image`.
fn in_layer(image: &str, rel: &str) -> Option<String> {
    std::fs::read_to_string(layer_dir(image)?.join(rel)).ok()
}

/// The layer folder of the current build of `image`.
fn layer_dir(image: &str) -> Option<PathBuf> {
    let cache = PathBuf::from(shared_cache());
    let dir = cache.join("records").join(image);
    let mut newest: Option<(String, serde_json::Value)> = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
        let built = v["built_at"].as_str().unwrap_or_default().to_string();
        if newest.as_ref().is_none_or(|(b, _)| built > *b) {
            newest = Some((built, v));
        }
    }
    let (_, record) = newest?;
    let artifact = record["artifact"]["path"].as_str()?;
    Some(cache.join(artifact))
}

pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "mmdebstrap"),
    ignore = "needs root and mmdebstrap: apt-get install mmdebstrap"
)]
fn a_debian_origin_gets_updates_and_security_and_the_lock_pins_all_three() {
    needs::check(&[Need::Root, Need::Mmdebstrap]);
    let name = unique("sec");
    let p = project(&[(
        &name,
        "origin = \"bookworm\"\n\n[[test]]\nname = \"sources\"\nrun = \"grep -q '^deb .* bookworm main' /etc/apt/sources.list && grep -q '^deb .* bookworm-updates main' /etc/apt/sources.list && grep -q '^deb .*-security bookworm-security main' /etc/apt/sources.list\"\n",
    )]);
    let out = layer(&p, &["lock"]).expect(0);
    let lock = p.read("layer.lock");
    for suite in ["bookworm", "bookworm-updates", "bookworm-security"] {
        assert!(
            lock.lines()
                .any(|l| l.trim_start().starts_with(&format!("\"{suite} 20"))),
            "{suite} in\n{lock}"
        );
    }
    assert!(lock.contains(&format!("[images.{name}]")), "{lock}");
    out.stdout_has("bookworm: locked bookworm-security 20");
    layer(&p, &["build"]).expect(0);
    layer(&p, &["test", &name]).expect(0);
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "mmdebstrap", missing = "apt-ftparchive"),
    ignore = "needs root, mmdebstrap and apt-ftparchive: apt-get install mmdebstrap apt-utils"
)]
fn a_new_version_in_an_archive_makes_exactly_the_images_that_install_it_stale() {
    needs::check(&[Need::Root, Need::Mmdebstrap, Need::AptFtparchive]);
    let repo = AptRepo::with("1.0");
    let (a, b, plain) = (unique("hello-a"), unique("hello-b"), unique("plain"));
    let p = project(&[
        (&a, &hello_image(&repo.source(), "")),
        (&b, &format!("from = \"{a}\"\n")),
        (&plain, "origin = \"bookworm\"\n"),
    ]);
    layer(&p, &["lock"]).expect(0);
    assert!(p.read("layer.lock").contains("\"layer-hello=1.0\","));
    layer(&p, &["build"]).expect(0);
    assert_eq!(
        in_layer(&a, "usr/share/layer-hello/version").as_deref(),
        Some("1.0\n")
    );

    repo.publish("2.0");
    let out = layer(&p, &["lock", "--update"]).expect(0);
    out.stdout_has("layer-hello 1.0 -> 2.0\n");
    let mut stale = [a.clone(), b.clone()];
    stale.sort();
    assert!(
        out.stdout
            .ends_with(&format!("2 of 3 images stale: {}\n", stale.join(", "))),
        "{}",
        out.stdout
    );
    let plan = p.layer_env(
        &["plan", "--format", "json"],
        &[("LAYER_CACHE", &shared_cache())],
    );
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let building: Vec<&str> = plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "build")
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(building.len(), 2, "{plan}");
    assert!(!building.contains(&plain.as_str()));
    layer(&p, &["build"]).expect(0);
    assert_eq!(
        in_layer(&a, "usr/share/layer-hello/version").as_deref(),
        Some("2.0\n")
    );
    the_audit_names_the_old_builds_and_their_instances(&p, &a, &b, &plain);
}

/// An OSV advisory (Debian 12, `layer-hello` fixed in 2.0) and an inventory with instances on
/// both builds of `a` and `b` and on `plain`: the audit lists the builds holding 1.0 and the
/// instances running them, never the rebuilt ones. The cache is shared with other tests (and
/// earlier runs), so only this test's images are looked at, but those exactly.
fn the_audit_names_the_old_builds_and_their_instances(p: &Project, a: &str, b: &str, plain: &str) {
    p.file(
        "osv/LAYER-2026-0001.json",
        r#"{
  "schema_version": "1.6.0",
  "id": "LAYER-2026-0001",
  "aliases": ["CVE-2026-99999"],
  "summary": "layer-hello: says hello too loudly",
  "affected": [{
    "package": {"ecosystem": "Debian:12", "name": "layer-hello"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}]
  }]
}"#,
    );
    p.file(
        "inventory.csv",
        &format!("instance,image,version\ni-a-old,{a},0.1.0\ni-a-new,{a},0.1.1\ni-b-old,{b},0.1.0\ni-b-new,{b},0.1.1\ni-plain,{plain},0.1.0\n"),
    );
    let ours = |image: &str| [a, b, plain].contains(&image);
    let args = ["audit", "--osv", "osv", "--inventory", "inventory.csv"];
    let out = layer(p, &[&args[..], &["--format", "json"]].concat()).expect(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let rows: Vec<&serde_json::Value> = v["affected"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| ours(f["image"].as_str().unwrap()))
        .collect();
    let mut want = [a, b];
    want.sort();
    assert_eq!(rows.len(), 2, "{v}");
    for (row, image) in rows.iter().zip(want) {
        let row = row.as_object().unwrap();
        let fields: Vec<&str> = row.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            [
                "advisory",
                "aliases",
                "binaries",
                "fixed",
                "image",
                "installed",
                "package",
                "version"
            ]
        );
        assert_eq!(row["image"], image);
        assert_eq!(row["version"], "0.1.0");
        assert_eq!(row["package"], "layer-hello");
        assert_eq!(row["installed"], "1.0");
        assert_eq!(row["advisory"], "LAYER-2026-0001");
        assert_eq!(row["fixed"], "2.0");
        assert_eq!(row["aliases"], serde_json::json!(["CVE-2026-99999"]));
        assert_eq!(row["binaries"], serde_json::json!(["layer-hello"]));
    }
    assert_eq!(
        v["instances"],
        serde_json::json!({"count": 2, "instances": ["i-a-old", "i-b-old"]})
    );
    // Five builds of this test's images were audited, each with a manifest.
    assert!(v["audited"].as_u64().unwrap() >= 5, "{v}");
    let not_audited = v["not_audited"].as_array().unwrap();
    assert!(
        !not_audited
            .iter()
            .any(|n| ours(n.as_str().unwrap().split(' ').next().unwrap())),
        "{v}"
    );

    let text = layer(p, &args).expect(0).stdout;
    for image in [a, b] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == [
                        image,
                        "0.1.0",
                        "layer-hello",
                        "1.0",
                        "LAYER-2026-0001",
                        "2.0"
                    ]),
            "{text}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.split_whitespace().take(2).eq([image, "0.1.1"])),
            "{text}"
        );
    }
    assert!(text.contains("2 instances to rebuild"), "{text}");
    layer(p, &[&args[..], &["--exit-code"]].concat()).expect(1);
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "mmdebstrap", missing = "apt-ftparchive"),
    ignore = "needs root, mmdebstrap and apt-ftparchive: apt-get install mmdebstrap apt-utils"
)]
fn a_locked_version_the_archive_no_longer_serves_stops_the_build_before_it_starts() {
    needs::check(&[Need::Root, Need::Mmdebstrap, Need::AptFtparchive]);
    let repo = AptRepo::with("1.0");
    let name = unique("gone");
    let p = project(&[(&name, &hello_image(&repo.source(), ""))]);
    layer(&p, &["lock"]).expect(0);
    repo.withdraw("1.0");
    let out = layer(&p, &["build"]).expect(2);
    out.stderr_has(&format!(
            "error: layer.lock: the mirror no longer serves a version locked in `layer.lock`: `layer-hello` 1.0 (image `{name}`)"
        ));
    out.stderr_has("hint: run `layer lock --update`");
    assert!(!Path::new(&shared_cache())
        .join("records")
        .join(&name)
        .exists());
}

#[test]
#[cfg_attr(missing = "root", ignore = "needs root (the rootfs backend's checks)")]
fn an_image_on_a_debian_origin_without_locked_packages_is_refused_before_building() {
    needs::check(&[Need::Root]);
    let p = project(&[("deb", "origin = \"bookworm\"\n")]);
    let out = p.layer(&["build", "--no-progress"]).expect(2);
    out.stderr_has("error: layer.lock: `deb` has no package versions in `layer.lock`: builds on `debian` origins install locked versions");
    assert!(out
        .stderr
        .contains("hint: run `layer lock` and commit `layer.lock`"));
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "mmdebstrap"),
    ignore = "needs root and mmdebstrap: apt-get install mmdebstrap"
)]
fn a_package_no_archive_serves_is_a_lock_error_that_writes_nothing() {
    needs::check(&[Need::Root, Need::Mmdebstrap]);
    let p = project(&[(
        &unique("nosuch"),
        "origin = \"bookworm\"\npackages = [\"layer-no-such-package\"]\n",
    )]);
    let out = layer(&p, &["lock"]).expect(2);
    assert!(
        out.stderr.starts_with(
            "error: layer.lock: resolving the packages of images on origin `bookworm`: `resolve nosuch-"
        ),
        "{}",
        out.stderr
    );
    out.stderr_has("Unable to locate package layer-no-such-package");
    assert!(out
        .stderr
        .contains("hint: check the images' and roles' `packages` and `sources`"));
    assert!(!p.path("layer.lock").exists());
}

/// A lock whose suite `Release` the mirror no longer serves cannot make the origin as locked:
/// refused before anything builds (a `file://` mirror holding only `Release` files is enough,
/// since nothing is fetched beyond them).
#[test]
#[cfg_attr(missing = "root", ignore = "needs root (the rootfs backend's checks)")]
fn a_moved_suite_release_is_refused_before_the_origin_is_made() {
    needs::check(&[Need::Root]);
    let p = Project::new();
    p.file(
        "layer.toml",
        &format!(
            "[project]\n\n[origins.old]\ndebian = {{ suite = \"bookworm\", mirror = \"file://{}/mirror\", updates = false, security = false }}\n",
            p.root().display()
        ),
    );
    p.file(
        "mirror/dists/bookworm/Release",
        "Suite: stable\nDate: Sat, 18 Jan 2025 09:00:00 UTC\n",
    );
    p.file("images/deb.toml", "origin = \"old\"\n");
    p.file(
        "layer.lock",
        "version = 2\n\n[origins.old]\nreleases = [\"bookworm 2025-01-11T10:48:02Z 00\"]\n\n[images.deb]\n",
    );
    let out = p.layer(&["build", "--no-progress"]).expect(2);
    assert_eq!(
        out.stderr,
        "error: layer.lock: origin `old`: the mirror's `bookworm` Release is no longer the one `layer.lock` pins (locked 2025-01-11T10:48:02Z, now 2025-01-18T09:00:00Z), so the origin cannot be made as locked\n  hint: run `layer lock --update` to lock what the mirror serves now, and commit `layer.lock`\n"
    );
    assert!(!p.path("cache/records").exists());
}

/// A small HTTP server of the folder `dir` on 127.0.0.1, as apt's `http` method sees a mirror
/// (keep-alive, pipelined requests); it notes the path of every GET it answers with a file.
struct Mirror {
    port: u16,
    gets: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Mirror {
    fn serve(dir: &Path) -> Mirror {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let gets = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (dir, noted) = (dir.to_path_buf(), gets.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (dir, noted) = (dir.clone(), noted.clone());
                std::thread::spawn(move || Mirror::answer(conn, &dir, &noted));
            }
        });
        Mirror { port, gets }
    }

    fn answer(conn: std::net::TcpStream, dir: &Path, gets: &std::sync::Mutex<Vec<String>>) {
        use std::io::{BufRead, Write};
        let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
        let mut conn = conn;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                if header.trim().is_empty() {
                    break;
                }
            }
            let mut words = line.split_whitespace();
            let method = words.next().unwrap_or_default().to_string();
            let rel = words
                .next()
                .unwrap_or("/")
                .trim_start_matches('/')
                .replace("./", "");
            let body = (!rel.contains("..") && !rel.is_empty())
                .then(|| std::fs::read(dir.join(&rel)).ok())
                .flatten();
            let sent = match body {
                Some(body) => {
                    if method == "GET" {
                        gets.lock().unwrap().push(rel);
                    }
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                    conn.write_all(head.as_bytes()).and_then(|()| {
                        if method == "GET" {
                            conn.write_all(&body)
                        } else {
                            Ok(())
                        }
                    })
                }
                None => conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            };
            if sent.is_err() {
                return;
            }
        }
    }

    fn source(&self) -> String {
        format!("deb [trusted=yes] http://127.0.0.1:{}/ ./", self.port)
    }

    /// How many times `file` was downloaded since the last call.
    fn downloads(&self, file: &str) -> usize {
        let mut gets = self.gets.lock().unwrap();
        let n = gets.iter().filter(|g| g.as_str() == file).count();
        gets.clear();
        n
    }
}

/// The copies of `file` in the shared apt folders of the test cache.
fn cached_archives(file: &str) -> Vec<PathBuf> {
    let apt = PathBuf::from(shared_cache()).join("apt");
    std::fs::read_dir(apt)
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("archives").join(file))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

/// Files of `image`'s layer that belong to apt's shared folders: packages, lists, caches.
fn apt_files_in_layer(image: &str) -> Vec<String> {
    let dir = layer_dir(image).expect("a layer");
    walkdir::WalkDir::new(&dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(&dir).unwrap().display().to_string())
        .filter(|p| {
            p.ends_with(".deb")
                || p.starts_with("var/lib/apt/lists/")
                || p.starts_with("var/cache/apt/archives/")
                || p.ends_with("pkgcache.bin")
        })
        .collect()
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "mmdebstrap", missing = "apt-ftparchive"),
    ignore = "needs root, mmdebstrap and apt-ftparchive: apt-get install mmdebstrap apt-utils"
)]
fn two_images_on_one_origin_in_one_run_download_each_package_once_into_the_shared_cache() {
    needs::check(&[Need::Root, Need::Mmdebstrap, Need::AptFtparchive]);
    let version = format!("1.{}", std::process::id());
    let repo = AptRepo::with(&version);
    let mirror = Mirror::serve(repo.path());
    let deb = format!("layer-hello_{version}_all.deb");
    let (a, b) = (unique("apt-a"), unique("apt-b"));
    let decl = hello_image(&mirror.source(), "");
    let p = project(&[(&a, &decl), (&b, &decl)]);
    layer(&p, &["lock"]).expect(0);
    mirror.downloads(&deb);
    layer(&p, &["build", "-j", "2"]).expect(0);
    assert_eq!(mirror.downloads(&deb), 1, "one download for both images");
    assert_eq!(cached_archives(&deb).len(), 1, "the cache holds it");
    let logs: Vec<String> = [&a, &b]
        .iter()
        .map(|i| layer(&p, &["logs", i]).expect(0).stdout)
        .collect();
    let fetched = |log: &str| {
        log.lines()
            .any(|l| l.starts_with("Get:") && l.contains("layer-hello"))
    };
    let (first, second): (Vec<&String>, Vec<&String>) = logs.iter().partition(|l| fetched(l));
    assert_eq!((first.len(), second.len()), (1, 1), "{logs:#?}");
    // The second image's apt fetched nothing, not even lists: they were fetched in this run.
    assert!(
        !second[0].lines().any(|l| l.starts_with("Get:")),
        "{}",
        second[0]
    );
    assert!(
        second[0].contains("layer: apt lists of these sources already fetched in this run"),
        "{}",
        second[0]
    );
    assert!(
        second[0].contains("layer: apt cache: 1 of the packages to install cached and verified"),
        "{}",
        second[0]
    );
    for image in [&a, &b] {
        assert_eq!(
            in_layer(image, "usr/share/layer-hello/version"),
            Some(format!("{version}\n"))
        );
        assert_eq!(apt_files_in_layer(image), Vec::<String>::new(), "{image}");
    }
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "mmdebstrap", missing = "apt-ftparchive"),
    ignore = "needs root, mmdebstrap and apt-ftparchive: apt-get install mmdebstrap apt-utils"
)]
fn a_damaged_package_in_the_shared_apt_cache_is_fetched_again_not_installed() {
    needs::check(&[Need::Root, Need::Mmdebstrap, Need::AptFtparchive]);
    let version = format!("2.{}", std::process::id());
    let repo = AptRepo::with(&version);
    let mirror = Mirror::serve(repo.path());
    let deb = format!("layer-hello_{version}_all.deb");
    let (c, d) = (unique("apt-c"), unique("apt-d"));
    let decl = hello_image(&mirror.source(), "");
    let p = project(&[(&c, &decl)]);
    layer(&p, &["lock"]).expect(0);
    layer(&p, &["build"]).expect(0);
    let cached = cached_archives(&deb);
    assert_eq!(cached.len(), 1);
    // Same size, other bytes: apt alone would take it for the package.
    let good = std::fs::read(&cached[0]).unwrap();
    std::fs::write(&cached[0], vec![b'x'; good.len()]).unwrap();
    mirror.downloads(&deb);

    p.file(&format!("images/{d}.toml"), &decl);
    layer(&p, &["lock"]).expect(0);
    layer(&p, &["build", &d]).expect(0);
    assert_eq!(mirror.downloads(&deb), 1, "fetched again");
    let log = layer(&p, &["logs", &d]).expect(0).stdout;
    assert!(
        log.contains("layer: apt cache: 0 of the packages to install cached and verified, 1 damaged (removed, fetched again)"),
        "{log}"
    );
    assert_eq!(
        in_layer(&d, "usr/share/layer-hello/version"),
        Some(format!("{version}\n"))
    );
    assert_eq!(std::fs::read(&cached[0]).unwrap(), good);
}
