//! Real builds with the `rootfs` backend, from a busybox origin (Debian's busybox-static, which
//! the README's test command installs): layers, whiteouts, staging, deep against shallow, the
//! copying fallback, verification of parents, `layer test`, and what a failing build leaves
//! (nothing).
//!
//! These need root (mounts, chroot, namespaces) and a static busybox; without them `cargo test`
//! lists them as ignored with that reason, and under `CI` they fail (see `needs`).

use crate::common;
use crate::common::{json, processes_with, Project};
use crate::needs::{self, Need};
use crate::regressions::as_nobody;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use layer::cache::Cache;
use layer::layerfs::{self, StackView};
use layer::record::Record;
use serde_json::Value;

/// The static busybox of real builds; only called by tests that checked [`Need::Busybox`].
fn busybox() -> PathBuf {
    needs::busybox().expect("checked by needs::check")
}

/// Three images on a busybox origin: `base` <- `app` <- `svc`. `base` writes files, makes a
/// folder and removes `/bin/vi`; `app` removes a file of `base`'s and adds its own; `svc`
/// changes nothing but a file. No role writes its version, so deep and shallow builds give
/// the same files.
fn chain(strategy: &str) -> Project {
    let p = Project::on_busybox(&busybox(), &format!("strategy = \"{strategy}\"\n"));
    p.file(
        "images/base.toml",
        "version = \"1.0\"\norigin = \"bb\"\nroles = [\"base\"]\n[vars]\nGREETING = \"hello\"\n",
    );
    p.file(
        "images/app.toml",
        "version = \"2.0\"\nfrom = \"base\"\nroles = [\"app\"]\n\n[[test]]\nname = \"greeting\"\nrun = \"grep -q hello /etc/motd\"\n",
    );
    p.file(
        "images/svc.toml",
        "version = \"0.3\"\nfrom = \"app\"\nroles = [\"svc\"]\n",
    );
    p.file("roles/base/files/etc/motd", "welcome\n");
    p.file(
        "roles/base/files/usr/local/bin/hello",
        "#!/bin/sh\necho hi\n",
    );
    p.chmod("roles/base/files/usr/local/bin/hello", 0o755);
    p.file("roles/base/files/etc/secret.conf", "x\n");
    p.chmod("roles/base/files/etc/secret.conf", 0o600);
    p.exec(
        "roles/base/provision.sh",
        "set -eu\necho \"$GREETING from $LAYER_ROLE\" >> /etc/motd\nrm /bin/vi\nmkdir -p /srv/data\necho 1 > /srv/data/one\necho 2 > /srv/data/two\n",
    );
    p.file("roles/base/tests/motd.sh", "grep -q welcome /etc/motd\n");
    p.exec(
        "roles/app/provision.sh",
        "set -eu\nrm /srv/data/one\necho app > /srv/app\n",
    );
    p.file(
        "roles/app/tests/app.sh",
        "test -f /srv/app && test ! -e /srv/data/one\n",
    );
    p.exec("roles/svc/provision.sh", "set -eu\necho svc >> /srv/app\n");
    p
}

fn cache(p: &Project) -> Cache {
    Cache::new(p.root().canonicalize().unwrap().join("cache"))
}

fn latest(p: &Project, name: &str) -> Record {
    cache(p).latest(name).unwrap()
}

fn layer_dir(p: &Project, name: &str) -> PathBuf {
    cache(p).dir().join(latest(p, name).artifact.path.unwrap())
}

/// The files of a tree: path -> (type letter, mode, uid, content or link target).
type Listing = BTreeMap<String, (char, u32, u32, String)>;

fn listing_of_view(view: &StackView) -> Listing {
    view.paths()
        .filter(|r| !r.is_empty())
        .map(|rel| {
            let path = view.get(rel).unwrap();
            let m = fs::symlink_metadata(&path).unwrap();
            (String::from_utf8(rel.clone()).unwrap(), entry(&path, &m))
        })
        .collect()
}

fn entry(path: &Path, m: &fs::Metadata) -> (char, u32, u32, String) {
    let kind = layerfs::kind_letter(m) as char;
    let content = match kind {
        'f' => String::from_utf8_lossy(&fs::read(path).unwrap()).into_owned(),
        'l' => fs::read_link(path).unwrap().display().to_string(),
        _ => String::new(),
    };
    (kind, m.mode() & 0o7777, m.uid(), content)
}

/// The merged view of an image's latest build: origin, then the layers of its record chain.
fn image_view(p: &Project, name: &str) -> StackView {
    let c = cache(p);
    let mut layers = Vec::new();
    let mut r = latest(p, name);
    loop {
        layers.push(c.dir().join(r.artifact.path.clone().unwrap()));
        match &r.parent {
            Some(parent) => match c.lookup(&parent.name, &parent.key) {
                layer::record::Lookup::Found(rec) => r = *rec,
                other => panic!("parent record of {name}: {other:?}"),
            },
            None => break,
        }
    }
    let origins: Vec<PathBuf> = fs::read_dir(c.dir().join("origins"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("root"))
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(origins.len(), 1, "one origin made");
    layers.push(origins[0].clone());
    layers.reverse();
    StackView::new(&layers).unwrap()
}

/// Paths in a layer folder, with `W` for whiteouts.
fn layer_paths(dir: &Path) -> Vec<String> {
    layerfs::walk(dir)
        .unwrap()
        .into_iter()
        .filter(|n| !n.rel.is_empty())
        .map(|n| {
            let s = String::from_utf8(n.rel.clone()).unwrap();
            if n.meta.file_type().is_char_device() && n.meta.rdev() == 0 {
                format!("W {s}")
            } else {
                s
            }
        })
        .collect()
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.canonicalize().unwrap().display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&d))
        .map(str::to_string)
        .collect()
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn a_deep_chain_builds_as_layers_that_hold_only_their_changes() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = chain("deep");
    let out = p.layer(&["build", "--json", "--no-progress"]).expect(0);
    let built: Vec<String> = json(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(built, ["built", "built", "built"], "{}", out.stderr);

    // base: its files with their modes, owned by root; /bin/vi removed by a whiteout.
    let base = layer_paths(&layer_dir(&p, "base"));
    for want in [
        "etc/motd",
        "etc/secret.conf",
        "usr/local/bin/hello",
        "srv/data/one",
        "W bin/vi",
    ] {
        assert!(base.contains(&want.to_string()), "{want} in {base:?}");
    }
    // app: only what it changed: a whiteout for /srv/data/one and its own file.
    assert_eq!(
        layer_paths(&layer_dir(&p, "app")),
        ["srv", "srv/app", "srv/data", "W srv/data/one"]
    );
    assert_eq!(
        layer_paths(&layer_dir(&p, "svc")),
        ["srv", "srv/app"],
        "svc's layer holds its one change"
    );

    // Nothing of layer's staging is in any layer.
    for name in ["base", "app", "svc"] {
        let paths = layer_paths(&layer_dir(&p, name));
        assert!(
            !paths.iter().any(|p| p.starts_with(".layer")
                || p.contains("policy-rc.d")
                || p.starts_with("dev/")
                || p.starts_with("proc/")
                || p == "etc/resolv.conf"),
            "{name}: {paths:?}"
        );
    }

    // The merged image of svc.
    let svc = listing_of_view(&image_view(&p, "svc"));
    assert_eq!(
        svc["etc/motd"],
        ('f', 0o644, 0, "welcome\nhello from base\n".into())
    );
    assert_eq!(svc["etc/secret.conf"].1, 0o600, "modes kept");
    assert_eq!(svc["usr/local/bin/hello"].1, 0o755);
    assert_eq!(svc["srv/app"].3, "app\nsvc\n");
    assert!(!svc.contains_key("bin/vi"), "removed in base");
    assert!(!svc.contains_key("srv/data/one"), "removed in app");
    assert!(svc.contains_key("srv/data/two"));
    assert_eq!(svc["bin/sh"].0, 'l', "the origin's applet links");

    // The record: a local artifact with a digest that matches the layer.
    let r = latest(&p, "app");
    let (digest, _) = layerfs::digest(&layer_dir(&p, "app")).unwrap();
    assert_eq!(r.artifact.blake3.as_deref(), Some(digest.as_str()));
    assert_eq!(r.tags["Release_Status"], "candidate");
    assert_eq!(r.parent.as_ref().unwrap().name, "base");

    // Nothing stays mounted, no work folder is left.
    assert!(mounts_under(p.root()).is_empty());
    assert!(runs_left(&p).is_empty(), "{:?}", runs_left(&p));

    // A second build builds nothing; a change to app's role rebuilds app and svc only.
    let again = p.layer(&["build", "--json", "--no-progress"]).expect(0);
    assert!(json(&again)
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["action"] == "fresh"));
    p.exec(
        "roles/app/provision.sh",
        "set -eu\nrm /srv/data/one\necho app2 > /srv/app\n",
    );
    let changed = p.layer(&["build", "--json", "--no-progress"]).expect(0);
    let actions = common::name_actions(&json(&changed));
    assert_eq!(
        actions,
        [
            ("base".to_string(), "fresh".to_string()),
            ("app".to_string(), "built".to_string()),
            ("svc".to_string(), "built".to_string()),
        ]
    );
    assert_eq!(
        listing_of_view(&image_view(&p, "svc"))["srv/app"].3,
        "app2\nsvc\n"
    );
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn deep_and_shallow_builds_give_the_same_files() {
    needs::check(&[Need::Root, Need::Busybox]);
    let deep = chain("deep");
    deep.layer(&["build", "--no-progress"]).expect(0);
    let shallow = chain("shallow");
    shallow.layer(&["build", "--no-progress"]).expect(0);
    // Shallow: every image is one layer straight on the origin.
    let r = latest(&shallow, "svc");
    assert!(r.parent.is_none());
    let files = |p: &Project| {
        let mut l = listing_of_view(&image_view(p, "svc"));
        // Folder modes and link targets are the same; mtimes are not compared.
        l.retain(|k, _| !k.is_empty());
        l
    };
    assert_eq!(files(&deep), files(&shallow));
    // The shallow svc layer holds the whole chain's changes.
    let paths = layer_paths(&layer_dir(&shallow, "svc"));
    assert!(paths.contains(&"W bin/vi".to_string()), "{paths:?}");
    assert!(paths.contains(&"etc/motd".to_string()));
    assert!(!paths.contains(&"srv/data/one".to_string()));
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn the_copying_fallback_makes_the_same_layers_as_overlayfs() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = chain("deep");
    p.layer(&["build", "--no-progress"]).expect(0);
    let overlay: Vec<Vec<String>> = ["base", "app", "svc"]
        .iter()
        .map(|n| layer_paths(&layer_dir(&p, n)))
        .collect();
    let view = listing_of_view(&image_view(&p, "svc"));

    let out = common::run_layer(
        p.root(),
        &["build", "--force", "--no-progress"],
        &[("LAYER_OVERLAY", Path::new("off"))],
    )
    .expect(0);
    let copied: Vec<Vec<String>> = ["base", "app", "svc"]
        .iter()
        .map(|n| layer_paths(&layer_dir(&p, n)))
        .collect();
    assert_eq!(copied, overlay, "{}", out.stderr);
    assert_eq!(listing_of_view(&image_view(&p, "svc")), view);
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn role_files_land_inside_the_image_even_through_an_absolute_link() {
    needs::check(&[Need::Root, Need::Busybox]);
    // Not below /tmp or /run, which a build sees as its own tmpfs.
    let host = tempfile::tempdir_in("/var/tmp").unwrap();
    let p = chain("deep");
    // base makes /etc/app a link to an absolute path that also exists on the host.
    let host_dir = host.path().canonicalize().unwrap();
    p.exec(
        "roles/base/provision.sh",
        &format!(
            "set -eu\nmkdir -p {0}\nln -s {0} /etc/app\n",
            host_dir.display()
        ),
    );
    p.file("roles/app/files/etc/app/app.conf", "port=80\n");
    p.remove("roles/app/provision.sh");
    p.layer(&["build", "app", "--no-progress"]).expect(0);
    assert!(
        fs::read_dir(&host_dir).unwrap().next().is_none(),
        "nothing was written on the host"
    );
    let view = listing_of_view(&image_view(&p, "app"));
    let inside = format!(
        "{}/app.conf",
        host_dir.display().to_string().trim_start_matches('/')
    );
    assert_eq!(view[&inside].3, "port=80\n", "{view:?}");
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn a_failing_provisioner_leaves_no_mount_process_record_or_work_folder() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = chain("deep");
    p.exec(
        "roles/app/provision.sh",
        "echo starting\nsleep 600 &\necho the-app-failed >&2\nexit 3\n",
    );
    let out = p.layer(&["build", "-k", "--no-progress"]).expect(1);
    out.stderr_has("the-app-failed");
    out.stderr_has("provision.sh of role `app` failed (exit status 3)");
    assert!(cache(&p).latest("app").is_none(), "no record");
    assert!(cache(&p).latest("base").is_some(), "base was recorded");
    assert!(mounts_under(p.root()).is_empty());
    assert!(
        processes_with("sleep 600").is_empty(),
        "the background sleep died"
    );
    assert!(runs_left(&p).is_empty(), "{:?}", runs_left(&p));
    let artifacts: Vec<_> = fs::read_dir(cache(&p).dir().join("artifacts"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(artifacts, ["base"], "no half-made artifact");
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn packages_on_an_origin_without_a_package_manager_fail_clearly() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = chain("deep");
    p.file(
        "images/base.toml",
        "version = \"1.0\"\norigin = \"bb\"\nroles = [\"base\"]\npackages = [\"curl\"]\n",
    );
    // A declaration error, before anything is built.
    let out = p.layer(&["build", "base", "--no-progress"]).expect(2);
    assert!(
        out.stderr.contains("images/base.toml")
            && out.stderr.contains(
                "asks for packages (curl) but is built on the `busybox` origin `bb`, which has no package manager"
            ),
        "{}",
        out.stderr
    );
    assert!(cache(&p).latest("base").is_none());
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn a_damaged_parent_layer_is_caught_before_a_child_builds_on_it() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = chain("deep");
    p.layer(&["build", "app", "--no-progress"]).expect(0);
    fs::write(layer_dir(&p, "base").join("etc/motd"), "tampered\n").unwrap();
    p.exec("roles/app/provision.sh", "echo changed > /srv/app\n");
    let out = p.layer(&["build", "app", "--no-progress"]).expect(1);
    out.stderr_has("does not match its record");
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn tests_run_in_fresh_instances_and_leave_the_artifact_unchanged() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = chain("deep");
    // A test that writes into the image and one that checks nothing was written before it.
    p.file("roles/app/tests/a-writes.sh", "echo x > /srv/written\n");
    p.file(
        "roles/app/tests/b-fresh.sh",
        "test ! -e /srv/written || { echo saw another test; exit 1; }\n",
    );
    p.file(
        "roles/app/tests/c-isolated.sh",
        "test ! -e /.layer && test ! -e /usr/sbin/policy-rc.d && ip link 2>/dev/null | grep -qv eth || true\n",
    );
    p.layer(&["build", "--no-progress"]).expect(0);
    let before = layerfs::digest(&layer_dir(&p, "app")).unwrap();
    let out = p.layer(&["test", "app", "--json"]).expect(0);
    let results = json(&out);
    let app = &results[0];
    assert_eq!(app["result"], "passed", "{}", out.stderr);
    let names: Vec<&str> = app["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "base/motd.sh",
            "app/a-writes.sh",
            "app/app.sh",
            "app/b-fresh.sh",
            "app/c-isolated.sh",
            "greeting"
        ]
    );
    assert_eq!(layerfs::digest(&layer_dir(&p, "app")).unwrap(), before);
    assert_eq!(latest(&p, "app").tags["Release_Status"], "tested");
    assert!(mounts_under(p.root()).is_empty());

    // A failing test: exit 1, its output shown, the status `failed`. (Role tests are not part
    // of keys: the same build is tested again.)
    p.file(
        "roles/app/tests/d-fails.sh",
        "echo looked for the widget\nexit 4\n",
    );
    let out = p.layer(&["build", "--no-progress", "--json"]).expect(0);
    assert!(!out.stdout.contains("\"built\""), "{}", out.stdout);
    let out = p.layer(&["test", "app"]).expect(1);
    out.stderr_has("FAIL app/d-fails.sh");
    out.stderr_has("looked for the widget");
    assert_eq!(latest(&p, "app").tags["Release_Status"], "failed");
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn tests_have_only_loopback_networking() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = chain("deep");
    p.file(
        "roles/app/tests/net.sh",
        "ls /sys/class/net 2>/dev/null > /tmp/ifs || true\nn=$(grep -cv '^lo$' /tmp/ifs || true)\n[ \"$n\" = 0 ] || { cat /tmp/ifs; exit 1; }\nhttpd -p 127.0.0.1:8080 -h /srv && wget -q -O- http://127.0.0.1:8080/app | grep -q app\n",
    );
    p.layer(&["build", "--no-progress"]).expect(0);
    let out = p.layer(&["test", "app", "--json"]).expect(0);
    assert_eq!(json(&out)[0]["result"], "passed", "{}", out.stderr);
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn testing_an_image_that_is_not_built_says_to_build_it() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = chain("deep");
    let out = p.layer(&["test", "app"]).expect(2);
    out.stderr_has("not built at their current inputs: `app`");
    out.stderr_has("layer build app");
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn the_busybox_origin_is_made_once_and_kept() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = chain("deep");
    p.layer(&["build", "base", "--no-progress"]).expect(0);
    let origins = cache(&p).dir().join("origins");
    let made: Vec<PathBuf> = fs::read_dir(&origins)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(made.len(), 1);
    let root = made[0].join("root");
    assert!(root.join("bin/busybox").is_file());
    assert_eq!(
        fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        fs::metadata(root.join("tmp")).unwrap().permissions().mode() & 0o7777,
        0o1777
    );
    let stamp = fs::metadata(made[0].join("digest"))
        .unwrap()
        .modified()
        .unwrap();
    p.layer(&["build", "app", "--no-progress"]).expect(0);
    assert_eq!(
        fs::metadata(made[0].join("digest"))
            .unwrap()
            .modified()
            .unwrap(),
        stamp,
        "not made again"
    );
}

/// Whether a build's provisioner has started: it writes `/srv/started`, which shows in the
/// running build's upper folder under `cache/runs/`.
fn provisioner_started(p: &Project) -> bool {
    let runs = p.root().join("cache/runs");
    walkdir::WalkDir::new(runs)
        .into_iter()
        .flatten()
        .any(|e| e.path().ends_with("srv/started"))
}

/// Starts `layer build` with base's provisioner sleeping in the background (`sleep BG`) and
/// in the foreground (`sleep FG`), and waits until both run.
fn start_sleeping_build(p: &Project, bg: u32, fg: u32) -> common::Running {
    p.exec(
        "roles/base/provision.sh",
        &format!("mkdir -p /srv && touch /srv/started\nsleep {bg} &\nsleep {fg}\n"),
    );
    let run = p.spawn_layer(&["build", "--no-progress"], &[]);
    common::wait_until("the provisioner to start", || provisioner_started(p));
    common::wait_until("the provisioner's sleeps", || {
        !processes_with(&format!("sleep {bg}")).is_empty()
            && !processes_with(&format!("sleep {fg}")).is_empty()
    });
    run
}

fn runs_left(p: &Project) -> Vec<PathBuf> {
    fs::read_dir(p.root().join("cache/runs"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn ctrl_c_stops_a_rootfs_build_and_leaves_no_mount_process_or_work_folder() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = chain("deep");
    let run = start_sleeping_build(&p, 611, 612);
    run.signal(libc::SIGINT);
    let out = run.wait();
    assert_eq!(out.code, 130, "{}", out.stderr);
    common::wait_until("the provisioner's processes to die", || {
        processes_with("sleep 611").is_empty() && processes_with("sleep 612").is_empty()
    });
    assert!(mounts_under(p.root()).is_empty());
    assert!(runs_left(&p).is_empty(), "{:?}", runs_left(&p));
    assert!(cache(&p).latest("base").is_none());
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn kill_9_of_layer_takes_the_provisioner_along_and_the_next_run_cleans_up() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = chain("deep");
    let run = start_sleeping_build(&p, 621, 622);
    run.signal(libc::SIGKILL);
    let _ = run.wait();
    common::wait_until("the provisioner's processes to die", || {
        processes_with("sleep 621").is_empty() && processes_with("sleep 622").is_empty()
    });
    assert!(mounts_under(p.root()).is_empty());
    // The next run removes the dead run's folder and builds.
    p.exec(
        "roles/base/provision.sh",
        "set -eu\necho \"$GREETING from $LAYER_ROLE\" >> /etc/motd\nrm /bin/vi\nmkdir -p /srv/data\necho 1 > /srv/data/one\necho 2 > /srv/data/two\n",
    );
    p.layer(&["build", "--no-progress"]).expect(0);
    assert!(runs_left(&p).is_empty(), "{:?}", runs_left(&p));
}

/// A project whose origin is a tarball of a small busybox root, in the project or at a URL.
fn tar_project(origin: &str) -> (Project, PathBuf) {
    let p = Project::new();
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    fs::create_dir_all(r.join("bin")).unwrap();
    fs::create_dir_all(r.join("etc")).unwrap();
    fs::copy(busybox(), r.join("bin/busybox")).unwrap();
    for applet in ["sh", "cat", "echo", "mkdir", "rm", "grep", "test"] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(applet)).unwrap();
    }
    fs::write(r.join("etc/os-release"), "ID=tiny\n").unwrap();
    fs::create_dir_all(p.path("origins")).unwrap();
    let tarball = p.path("origins/tiny.tar.gz");
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(r)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    p.file(
        "layer.toml",
        &format!("[project]\n\n[origins.tiny]\n{origin}\n"),
    );
    p.file(
        "images/one.toml",
        "version = \"1.0\"\norigin = \"tiny\"\nroles = [\"one\"]\n",
    );
    p.exec(
        "roles/one/provision.sh",
        "set -eu\ngrep -q tiny /etc/os-release\necho one > /etc/one\n",
    );
    (p, tarball)
}

fn sha256(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn tar_origins_in_the_project_or_at_a_url_pinned_by_sha256() {
    needs::check(&[Need::Root, Need::Busybox]);
    let (p, _) = tar_project("tar = \"origins/tiny.tar.gz\"");
    p.layer(&["build", "--no-progress"]).expect(0);
    assert_eq!(
        layer_paths(&layer_dir(&p, "one")),
        ["etc", "etc/one"],
        "the layer holds the role's change only"
    );

    // The same tarball by URL: checked against its sha256 before use.
    let (p, tarball) = tar_project("tar = \"URL\"\nsha256 = \"SHA\"");
    let url = format!("file://{}", tarball.canonicalize().unwrap().display());
    let good = sha256(&tarball);
    let wrong = "0".repeat(64);
    p.file(
        "layer.toml",
        &format!("[project]\n\n[origins.tiny]\ntar = \"{url}\"\nsha256 = \"{wrong}\"\n"),
    );
    let out = p.layer(&["build", "--no-progress"]).expect(1);
    out.stderr_has(&format!(
        "has sha256 {good}, not the {wrong} that layer.toml pins"
    ));
    assert!(
        !cache(&p).dir().join("origins").exists()
            || fs::read_dir(cache(&p).dir().join("origins"))
                .unwrap()
                .flatten()
                .all(|e| !e.path().join("digest").exists())
    );
    p.file(
        "layer.toml",
        &format!("[project]\n\n[origins.tiny]\ntar = \"{url}\"\nsha256 = \"{good}\"\n"),
    );
    p.layer(&["build", "--no-progress"]).expect(0);
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn a_debian_origin_without_mmdebstrap_names_the_package_to_install() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = Project::new();
    // A `file://` mirror with only the suite's Release: enough to lock the archive, and then
    // the origin is made to resolve the image's packages in it.
    p.file(
        "layer.toml",
        &format!(
            "[project]\n\n[origins.bookworm]\ndebian = {{ suite = \"bookworm\", variant = \"minbase\", mirror = \"file://{}/mirror\", updates = false, security = false }}\n",
            p.root().display()
        ),
    );
    p.file(
        "mirror/dists/bookworm/Release",
        "Suite: stable\nDate: Sat, 11 Jan 2025 10:48:02 UTC\n",
    );
    p.file("images/deb.toml", "origin = \"bookworm\"\n");
    let empty = tempfile::tempdir().unwrap();
    let out = common::run_layer(p.root(), &["lock"], &[("PATH", empty.path())]).expect(2);
    out.stderr_has("needs mmdebstrap on the build host: apt-get install mmdebstrap");
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn a_folder_replaced_by_a_file_hides_the_folder_in_both_build_modes() {
    needs::check(&[Need::Root, Need::Busybox]);
    for overlay in ["on", "off"] {
        let p = chain("deep");
        p.exec(
            "roles/base/provision.sh",
            "set -eu\nmkdir -p /opt/tree/sub && echo a > /opt/tree/a && echo b > /opt/tree/sub/b\n",
        );
        p.exec(
            "roles/app/provision.sh",
            "set -eu\nrm -rf /opt/tree && echo now-a-file > /opt/tree\n",
        );
        p.remove("roles/app/tests");
        common::run_layer(
            p.root(),
            &["build", "app", "--no-progress"],
            &[("LAYER_OVERLAY", Path::new(overlay))],
        )
        .expect(0);
        let view = listing_of_view(&image_view(&p, "app"));
        assert_eq!(
            view["opt/tree"],
            ('f', 0o644, 0, "now-a-file\n".into()),
            "{overlay}"
        );
        assert!(
            !view.keys().any(|k| k.starts_with("opt/tree/")),
            "{overlay}: {view:?}"
        );
    }
}

/// A tool's output, or a panic with its stderr.
fn run(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[cfg_attr(
    any(
        missing = "root",
        missing = "busybox",
        missing = "skopeo",
        missing = "e2fsprogs",
        missing = "qemu-img"
    ),
    ignore = "needs root, a static busybox, `skopeo`, e2fsprogs and `qemu-img`: apt-get install busybox-static skopeo e2fsprogs qemu-utils"
)]
fn every_export_of_a_deep_build_reads_back_without_what_the_chain_removed() {
    needs::check(&[
        Need::Root,
        Need::Busybox,
        Need::Skopeo,
        Need::E2fsprogs,
        Need::QemuImg,
    ]);
    let p = chain("deep");
    p.layer(&["build", "--no-progress"]).expect(0);
    let out = tempfile::tempdir().unwrap();
    let o = out.path();

    // tar: the merged image; files removed in base (/bin/vi) and app (/srv/data/one) absent.
    let tar = o.join("svc.tar");
    p.layer(&[
        "export",
        "svc",
        "--format",
        "tar",
        "-o",
        tar.to_str().unwrap(),
    ])
    .expect(0);
    let listing = run("tar", &["-tvf", tar.to_str().unwrap()]);
    assert!(listing.contains("./srv/app"), "{listing}");
    assert!(listing.contains("./srv/data/two"));
    assert!(listing.contains("./etc/secret.conf"));
    assert!(!listing.contains("./srv/data/one"), "{listing}");
    assert!(
        !listing.contains("./bin/vi\n") && !listing.contains("./bin/vi "),
        "{listing}"
    );
    assert!(
        listing.lines().all(|l| l.contains(" 0/0 ")),
        "numeric owners"
    );
    // The same record exports to the same bytes.
    let again = o.join("again.tar");
    p.layer(&[
        "export",
        "svc",
        "--format",
        "tar",
        "-o",
        again.to_str().unwrap(),
    ])
    .expect(0);
    assert_eq!(fs::read(&tar).unwrap(), fs::read(&again).unwrap());
    // An older build by its version.
    let version = latest(&p, "svc").version;
    let short = version.split('-').next().unwrap().to_string();
    p.layer(&[
        "export",
        &format!("svc@{short}"),
        "--format",
        "tar",
        "-o",
        o.join("by-version.tar").to_str().unwrap(),
    ])
    .expect(0);
    assert_eq!(
        fs::read(&tar).unwrap(),
        fs::read(o.join("by-version.tar")).unwrap()
    );

    // OCI: one layer per tree of the chain (origin, base, app, svc).
    let oci = o.join("oci");
    p.layer(&[
        "export",
        "svc",
        "--format",
        "oci",
        "-o",
        oci.to_str().unwrap(),
    ])
    .expect(0);
    let index: Value = serde_json::from_slice(&fs::read(oci.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest: Value = serde_json::from_slice(
        &fs::read(
            oci.join("blobs/sha256")
                .join(manifest_digest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 4);
    let inspect = run(
        "skopeo",
        &["inspect", &format!("oci:{}:{version}", oci.display())],
    );
    let v: Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 4);
    assert_eq!(v["Labels"]["Name"], "svc");

    // raw ext4 and qcow2: the image's files are in the file system.
    let raw = o.join("svc.raw");
    p.layer(&[
        "export",
        "svc",
        "--format",
        "raw",
        "-o",
        raw.to_str().unwrap(),
    ])
    .expect(0);
    let cat = run("debugfs", &["-R", "cat /srv/app", raw.to_str().unwrap()]);
    assert_eq!(cat, "app\nsvc\n");
    let ls = run("debugfs", &["-R", "ls /srv/data", raw.to_str().unwrap()]);
    assert!(ls.contains("two") && !ls.contains("one"), "{ls}");
    let qcow = o.join("svc.qcow2");
    p.layer(&[
        "export",
        "svc",
        "--format",
        "qcow2",
        "-o",
        qcow.to_str().unwrap(),
    ])
    .expect(0);
    let info = run("qemu-img", &["info", qcow.to_str().unwrap()]);
    assert!(info.contains("file format: qcow2"), "{info}");
    run(
        "qemu-img",
        &[
            "compare",
            "-f",
            "raw",
            "-F",
            "qcow2",
            raw.to_str().unwrap(),
            qcow.to_str().unwrap(),
        ],
    );
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn an_older_build_exports_on_the_very_parent_build_it_was_made_on() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = chain("deep");
    p.exec(
        "roles/base/provision.sh",
        "set -eu\necho \"$LAYER_VERSION\" > /etc/base-version\nmkdir -p /srv/data\necho 1 > /srv/data/one\n",
    );
    p.layer(&["build", "--no-progress"]).expect(0);
    let old_base = latest(&p, "base").version;
    let old_svc = latest(&p, "svc").version;
    // A forced rebuild of base: the same key, another build; its children are built again.
    p.layer(&["build", "--force", "base", "--no-progress"])
        .expect(0);
    p.layer(&["build", "--no-progress"]).expect(0);
    let new_base = latest(&p, "base").version;
    assert_ne!(new_base, old_base);
    assert_ne!(latest(&p, "svc").version, old_svc);

    let out = tempfile::tempdir().unwrap();
    let read_version = |target: &str| {
        let tar = out.path().join(format!("{target}.tar"));
        p.layer(&[
            "export",
            target,
            "--format",
            "tar",
            "-o",
            tar.to_str().unwrap(),
        ])
        .expect(0);
        run(
            "tar",
            &["-xOf", tar.to_str().unwrap(), "./etc/base-version"],
        )
        .trim()
        .to_string()
    };
    assert_eq!(read_version(&format!("svc@{old_svc}")), old_base);
    assert_eq!(read_version("svc"), new_base);
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn building_without_root_is_one_clear_error_before_anything_starts() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = chain("deep");
    fs::set_permissions(p.root(), fs::Permissions::from_mode(0o755)).unwrap();
    p.chmod("roles/base/files/etc/secret.conf", 0o644); // readable by `nobody`
                                                        // The cache folder is the user's own: one of another user's is refused.
    let cache = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(cache.path(), Some(65534), Some(65534)).unwrap();
    let (code, stderr) = as_nobody(&p, cache.path(), &["build", "--no-progress"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("`base` is built with the `rootfs` backend, which needs root"),
        "{stderr}"
    );
    assert!(!cache.path().join("records").exists());
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn gc_removes_origins_no_kept_build_or_declaration_needs() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = chain("deep");
    p.layer(&["build", "base", "--no-progress"]).expect(0);
    // Another busybox binary (a byte appended: another identity), then a build on it.
    // Outside the system's program folders, it is pinned by its digest.
    let other = p.path("busybox-copy");
    let mut bytes = fs::read(busybox()).unwrap();
    bytes.push(0);
    let digest = blake3::hash(&bytes).to_hex().to_string();
    fs::write(&other, bytes).unwrap();
    fs::set_permissions(&other, fs::Permissions::from_mode(0o755)).unwrap();
    p.file(
        "layer.toml",
        &format!(
            "[project]\nstrategy = \"deep\"\n\n[origins.bb]\nbusybox = \"{}\"\nblake3 = \"{digest}\"\n",
            other.canonicalize().unwrap().display()
        ),
    );
    p.layer(&["build", "base", "--no-progress"]).expect(0);
    let origins = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(cache(&p).dir().join("origins"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    };
    assert_eq!(origins().len(), 2);
    // --keep 2 keeps the older build too, and so its origin.
    p.layer(&["cache", "gc", "--keep", "2"]).expect(0);
    assert_eq!(origins().len(), 2);
    let out = p.layer(&["cache", "gc"]).expect(0);
    assert_eq!(origins().len(), 1, "{}", out.stdout);
    out.stdout_has("origins/");
    // What is left still builds and exports.
    p.layer(&["build", "--no-progress"]).expect(0);
    let tar = p.path("out.tar");
    p.layer(&[
        "export",
        "app",
        "--format",
        "tar",
        "-o",
        tar.to_str().unwrap(),
    ])
    .expect(0);
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn an_image_on_a_pinned_parent_builds_on_the_released_layer() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = chain("deep");
    p.layer(&["build", "base", "--no-progress"]).expect(0);
    p.layer(&["promote", "--force", "base"]).expect(0);
    let released = latest(&p, "base").version;
    // base's code moves on; app stays on the released build.
    p.file(
        "images/app.toml",
        "version = \"2.0\"\nfrom = \"base@1.0\"\nroles = [\"app\"]\n",
    );
    p.file("roles/base/files/etc/motd", "changed\n");
    p.layer(&["build", "app", "--no-progress"]).expect(0);
    let app = latest(&p, "app");
    assert_eq!(app.parent.as_ref().unwrap().version, released);
    let view = listing_of_view(&image_view(&p, "app"));
    assert_eq!(view["etc/motd"].3, "welcome\nhello from base\n");
    assert_eq!(view["srv/app"].3, "app\n");
}
