//! `layer shell` (a shell in a throwaway instance of a build) and `layer build --keep-failed`
//! (a failed build's folder kept for it), for real on a busybox origin.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{Output, Project, SCRIPT_DONE};
use crate::needs::{self, Need};

/// A busybox project: `base` puts `/etc/some-file`; `child`, built on it, runs `provision`.
fn project(provision: &str) -> Project {
    let p = Project::on_busybox(&needs::busybox().expect("checked"), "strategy = \"deep\"\n");
    p.file("images/base.toml", "origin = \"bb\"\nroles = [\"base\"]\n");
    p.file(
        "images/child.toml",
        "from = \"base\"\nroles = [\"child\"]\n",
    );
    p.file("roles/base/files/etc/some-file", "from the image\n");
    p.exec("roles/child/provision.sh", provision);
    p
}

/// `layer ARGS` in the project, with `stdin` piped in.
fn layer_with_stdin(p: &Project, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_layer"))
        .args(args)
        .current_dir(p.root())
        .env_remove("LAYER_CACHE")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("layer starts");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    let out = child.wait_with_output().expect("layer ends");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Mounts below the project (an instance's root, a bind) that are still there.
fn mounts_below(p: &Project) -> Vec<String> {
    let root = p.root().display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&root))
        .map(String::from)
        .collect()
}

fn paths(p: &Project) -> Vec<String> {
    p.cache_files()
        .into_iter()
        .map(|(f, _)| f)
        .filter(|f| !f.starts_with("stat-cache") && !f.starts_with("model-cache"))
        .collect()
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn a_shell_runs_what_stdin_says_in_a_throwaway_instance_and_exits_with_its_code() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = project("echo child > /etc/child-file\n");
    let built = p.layer(&["build"]);
    assert_eq!(built.code, 0, "{}", built.stderr);
    let before = paths(&p);
    let out = layer_with_stdin(
        &p,
        &["shell", "child"],
        "cat /etc/some-file /etc/child-file; echo \"host=$(hostname) image=$LAYER_IMAGE\"\n\
         echo scribble > /etc/scribble; ls /proc/1 >/dev/null && echo proc; exit 3\n",
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(
        out.stdout, "from the image\nchild\nhost=child image=child\nproc\n",
        "{}",
        out.stderr
    );
    // The instance leaves nothing: no mount, no work folder, no change to the build.
    assert!(mounts_below(&p).is_empty(), "{:?}", mounts_below(&p));
    assert_eq!(paths(&p), before);
    let again = layer_with_stdin(&p, &["shell", "child"], "cat /etc/scribble\n");
    assert_ne!(again.code, 0, "a change of one instance is not in the next");
    // The shell runs in the build as it is: the script's own exit status is layer's.
    let ok = layer_with_stdin(&p, &["shell", "base"], "test ! -e /etc/child-file\n");
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn a_failed_build_kept_with_keep_failed_opens_in_a_shell_until_gc() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = project("echo half > /etc/half-done\nexit 4\n");
    let out = p.layer(&["build", "--keep-failed"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    out.stderr_has("`layer shell --failed child` opens a shell in it");
    out.stderr_has("cache/failed/child");
    assert!(p.path("cache/failed/child/layer/etc/half-done").is_file());

    let inside = layer_with_stdin(
        &p,
        &["shell", "--failed", "child"],
        "cat /etc/half-done /etc/some-file; touch /etc/touched; exit 5\n",
    );
    assert_eq!(inside.code, 5, "{}", inside.stderr);
    assert_eq!(inside.stdout, "half\nfrom the image\n", "{}", inside.stderr);
    assert!(mounts_below(&p).is_empty(), "{:?}", mounts_below(&p));
    assert!(!p.path("cache/failed/child/layer/etc/touched").exists());

    // Without --keep-failed nothing is kept; gc removes what was.
    let dry = p.layer(&["cache", "gc", "-n"]);
    assert!(
        dry.stdout.contains("failed/child") || dry.stderr.contains("failed/child"),
        "{}{}",
        dry.stdout,
        dry.stderr
    );
    assert!(p.path("cache/failed/child").exists());
    let gc = p.layer(&["cache", "gc"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert!(!p.path("cache/failed/child").exists());
    let again = p.layer(&["build"]);
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(!again.stderr.contains("layer shell"), "{}", again.stderr);
    assert!(!p.path("cache/failed/child").exists());

    let none = p.layer(&["shell", "--failed", "child"]);
    assert_eq!(none.code, 2, "{}", none.stderr);
    none.stderr_has("error: `child` has no failed build kept\n  hint: build it with `layer build --keep-failed child`");
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn a_kept_build_whose_parent_changed_since_cannot_be_opened() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = project("exit 4\n");
    let out = p.layer(&["build", "--keep-failed"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    p.file("roles/base/files/etc/some-file", "changed\n");
    let out = p.layer(&["shell", "--failed", "child"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    out.stderr_has("error: cannot make an instance of `child`: its parent `base` is not built at its current inputs");
}

#[test]
fn shell_refuses_images_of_other_backends_and_versions_of_kept_builds() {
    let p = Project::command_estate(SCRIPT_DONE);
    let out = p.layer(&["shell", "base"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "error: `base` is built with the `command` backend; `layer shell` opens images of the `rootfs` backend"
        ),
        "{}",
        out.stderr
    );
    let out = p.layer(&["shell", "--failed", "base@1.0"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "error: `layer shell --failed` opens the one failed build of `base` that is kept; it takes no version"
        ),
        "{}",
        out.stderr
    );
}
