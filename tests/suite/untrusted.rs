//! Plans are run on pull requests from strangers: `layer plan` starts no process, reads
//! nothing outside the project, and writes nothing but its own caches. Canaries prove it, and
//! every path a declaration gives that could lead out of the project is an error naming it.

use crate::common::git;
use crate::common::{redact, Project};
use crate::needs::{self, Need};
use std::path::Path;

/// A script that leaves a marker named `what` in `markers` and exits 0.
fn canary(markers: &Path, what: &str) -> String {
    format!(
        "#!/bin/sh\ntouch '{}/{what}'\necho canary\n",
        markers.display()
    )
}

#[test]
fn plan_runs_nothing_writes_nothing_and_reads_git_without_running_it() {
    let markers = tempfile::tempdir().unwrap();
    let m = markers.path();
    let p = Project::new();
    p.file(
        "layer.toml",
        "[project]\nbackend = \"sh\"\n\n[origins.cloud]\nresolve = [\"./scripts/resolve.sh\"]\n\n\
         [backends.sh]\nkind = \"command\"\ncommand = [\"./scripts/build.sh\"]\n\n\
         [backends.aws]\nkind = \"packer\"\ntemplate = \"packer/aws.pkr.hcl\"\n",
    );
    p.file(
        "layer.lock",
        "version = 1\n\n[origins.cloud]\nid = \"ami-1\"\n",
    );
    p.exec("scripts/resolve.sh", &canary(m, "resolve"));
    p.exec("scripts/build.sh", &canary(m, "backend"));
    p.file("packer/aws.pkr.hcl", "source \"amazon-ebs\" \"x\" {}\n");
    p.exec("roles/base/provision.sh", &canary(m, "provision"));
    p.exec("roles/base/tests/t.sh", &canary(m, "role-test"));
    p.file(
        "images/base.toml",
        &format!(
            "origin = \"cloud\"\nroles = [\"base\"]\n\n[[test]]\nname = \"t\"\nrun = \"touch {}/image-test\"\n",
            m.display()
        ),
    );
    p.file(
        "images/app.toml",
        "from = \"base\"\nroles = [\"base\"]\nbackend = \"aws\"\n",
    );
    p.file(".gitignore", "cache/\n");
    p.file(".gitattributes", "* filter=canary diff=canary\n");
    git(p.root(), &["init", "-q"]);
    git(p.root(), &["add", "-A"]);
    git(p.root(), &["commit", "-q", "-m", "one"]);
    p.exec(
        "roles/base/provision.sh",
        &format!("{}# two\n", canary(m, "provision")),
    );
    git(p.root(), &["commit", "-q", "-a", "-m", "two"]);
    // Now the repository turns hostile: every hook, an fsmonitor, filters, textconv, a
    // credential helper, an ssh command and a pager leave markers when git runs them.
    let hook = canary(m, "git-hook");
    for h in [
        "pre-commit",
        "post-checkout",
        "post-index-change",
        "reference-transaction",
        "fsmonitor-watchman",
        "post-merge",
        "pre-auto-gc",
    ] {
        p.exec(&format!(".git/hooks/{h}"), &hook);
    }
    p.exec(".git/canary.sh", &canary(m, "git-config"));
    let script = p.path(".git/canary.sh").display().to_string();
    let mut config = std::fs::read_to_string(p.path(".git/config")).unwrap();
    config.push_str(&format!(
        "[core]\n\tfsmonitor = {script}\n\tsshCommand = {script}\n\tpager = {script}\n\thooksPath = .git/hooks\n\
         [filter \"canary\"]\n\tclean = {script}\n\tsmudge = {script}\n\tprocess = {script}\n\trequired = true\n\
         [diff \"canary\"]\n\ttextconv = {script}\n\
         [credential]\n\thelper = {script}\n"
    ));
    std::fs::write(p.path(".git/config"), config).unwrap();
    // Something recorded, so that plans find records to compare with.
    p.record(&["base"]);
    // An uncommitted change, so `--since` has something to compare.
    p.exec(
        "roles/base/provision.sh",
        &format!("{}# three\n", canary(m, "provision")),
    );
    // Programs layer must not start, first on PATH.
    let bin = tempfile::tempdir().unwrap();
    for prog in ["git", "sh", "bash", "curl", "wget", "packer", "ssh"] {
        let path = bin.path().join(prog);
        std::fs::write(
            &path,
            canary(m, &format!("ran-{prog}")).replace("#!/bin/sh", "#!/bin/dash"),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let tree = p.snapshot_tree();
    let cache = p.cache_files();
    for args in [
        &["plan"][..],
        &["plan", "--format", "json"],
        &["plan", "--format", "markdown"],
        &["plan", "--since", "HEAD"],
        &["plan", "--since", "HEAD~1", "--format", "markdown"],
        &["plan", "--since", "main", "--format", "json", "--exit-code"],
        &["plan", "--changed", "--strategy", "shallow"],
        &["build", "-n", "--since", "HEAD~1"],
        &["list"],
        &["hash", "--inputs"],
        &["explain", "app"],
        &["graph"],
    ] {
        let out = p.layer_env(args, &[("PATH", &path)]);
        assert!(
            out.code == 0 || out.code == 1,
            "{args:?}: {}\n{}",
            out.code,
            out.stderr
        );
    }
    let ran: Vec<String> = std::fs::read_dir(m)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(ran.is_empty(), "processes ran: {ran:?}");
    assert_eq!(
        p.snapshot_tree(),
        tree,
        "the project (and its .git) is byte-identical"
    );
    const CACHES: [&str; 4] = ["stat-cache", "model-cache", "record-index", "since-cache"];
    let without_stat = |c: Vec<(String, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
        c.into_iter()
            .filter(|(f, _)| !CACHES.contains(&f.as_str()))
            .collect()
    };
    assert_eq!(
        without_stat(p.cache_files()),
        without_stat(cache),
        "the cache holds the same records"
    );
    // And the comparison saw the change.
    let out = p.layer_env(&["plan", "--since", "HEAD~1"], &[("PATH", &path)]);
    out.stdout_has("role `base` changed: roles/base/provision.sh");
}

// ---------------------------------------------------------------------------------------------
// Paths that lead out of the project.

/// `layer plan` fails with exit 2, nothing on stdout, nothing written; stderr with the project
/// and `outside` redacted.
fn plan_fails(p: &Project, outside: Option<&Path>) -> String {
    let tree = p.snapshot_tree();
    let out = p.layer(&["plan"]).expect(2);
    assert_eq!(out.stdout, "");
    assert_eq!(p.snapshot_tree(), tree);
    let err = redact(p, &out.stderr);
    match outside {
        Some(o) => err.replace(
            &o.canonicalize().unwrap().display().to_string(),
            "[OUTSIDE]",
        ),
        None => err,
    }
}

fn outside_file(name: &str, content: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join(name), content).unwrap();
    d
}

#[test]
fn a_backend_script_outside_the_project() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bb]\ntar = \"origins/base.tar\"\n\n[backends.up]\nkind = \"command\"\ncommand = [\"../build.sh\"]\n",
    );
    insta::assert_snapshot!(plan_fails(&p, None), @r"
    error: layer.toml:6: backend `up`: script `../build.sh` is outside the project
      hint: name a path relative to the project root, without `..`
    ");
}

#[test]
fn a_resolve_script_outside_the_project() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bb]\ntar = \"origins/base.tar\"\n\n[origins.up]\nresolve = [\"scripts/../../latest.sh\"]\n",
    );
    insta::assert_snapshot!(plan_fails(&p, None), @r"
    error: layer.toml:6: origin `up`: `resolve` script `scripts/../../latest.sh` is outside the project
      hint: name a path relative to the project root, without `..`
    ");
}

#[test]
fn host_programs_in_commands_are_fine() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bb]\ntar = \"origins/base.tar\"\n\n[backends.up]\nkind = \"command\"\ncommand = [\"/usr/bin/env\", \"build\"]\n\n[backends.pk]\nkind = \"command\"\ncommand = [\"packer\"]\n",
    );
    p.layer(&["plan"]).expect(0);
}

#[test]
fn absolute_template_and_tarball_paths() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bb]\ntar = \"/srv/base.tar\"\n\n[backends.aws]\nkind = \"packer\"\ntemplate = \"/etc/aws.pkr.hcl\"\n",
    );
    insta::assert_snapshot!(plan_fails(&p, None), @r"
    error: layer.toml:3: origin `bb`: tarball `/srv/base.tar` is outside the project
      hint: name a path relative to the project root, without `..`
    error: layer.toml:6: backend `aws`: template `/etc/aws.pkr.hcl` is outside the project
      hint: name a path relative to the project root, without `..`
    2 declaration errors; nothing was built
    ");
}

#[test]
fn a_template_linked_outside_the_project() {
    let o = outside_file("aws.pkr.hcl", "source {}\n");
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bb]\ntar = \"origins/base.tar\"\n\n[backends.aws]\nkind = \"packer\"\ntemplate = \"packer/aws.pkr.hcl\"\n",
    );
    p.symlink(
        o.path().join("aws.pkr.hcl").to_str().unwrap(),
        "packer/aws.pkr.hcl",
    );
    insta::assert_snapshot!(plan_fails(&p, Some(o.path())), @r"
    error: layer.toml: backend `aws`: `packer/aws.pkr.hcl` leads outside the project
      hint: keep backend scripts and templates inside the project
    ");
}

#[test]
fn an_image_file_linked_outside_the_project() {
    let o = outside_file("credentials.toml", "aws_secret_access_key = \"x\"\n");
    let p = Project::estate();
    p.symlink(
        o.path().join("credentials.toml").to_str().unwrap(),
        "images/creds.toml",
    );
    insta::assert_snapshot!(plan_fails(&p, Some(o.path())), @r"
    error: images/creds.toml: is a link to `[OUTSIDE]/credentials.toml`, outside the project
      hint: keep declarations and roles inside the project
    ");
}

#[test]
fn a_role_toml_linked_outside_the_project() {
    let o = outside_file("role.toml", "depends = []\n");
    let p = Project::estate();
    p.symlink(
        o.path().join("role.toml").to_str().unwrap(),
        "roles/web/role.toml",
    );
    insta::assert_snapshot!(plan_fails(&p, Some(o.path())), @r"
    error: roles/web/role.toml: is a link to `[OUTSIDE]/role.toml`, outside the project
      hint: keep declarations inside the project
    ");
}

#[test]
fn the_roles_folder_or_the_lock_linked_outside_the_project() {
    let o = outside_file("layer.lock", "version = 1\n");
    std::fs::create_dir(o.path().join("roles")).unwrap();
    let p = Project::estate();
    p.symlink(o.path().join("layer.lock").to_str().unwrap(), "layer.lock");
    p.remove("roles");
    p.symlink(o.path().join("roles").to_str().unwrap(), "roles");
    let err = plan_fails(&p, Some(o.path()));
    assert!(
        err.contains("error: layer.lock: is a link to `[OUTSIDE]/layer.lock`, outside the project"),
        "{err}"
    );
    assert!(
        err.contains("roles: is a link to `[OUTSIDE]/roles`, outside the project"),
        "{err}"
    );
}

#[test]
fn a_role_folder_linked_outside_at_a_revision() {
    // The work tree is fine; the revision compared with had a role folder linking out.
    let p = Project::estate();
    p.file(".gitignore", "cache/\n");
    p.symlink("../../../etc", "roles/etc");
    git(p.root(), &["init", "-q"]);
    git(p.root(), &["add", "-A"]);
    git(p.root(), &["commit", "-q", "-m", "one"]);
    p.remove("roles/etc");
    let out = p.layer(&["plan", "--since", "HEAD"]).expect(2);
    out.stderr_has("roles/etc: role folder is a link to `../../../etc`, outside the project");
}

#[test]
fn an_image_file_linked_outside_at_a_revision() {
    let p = Project::estate();
    p.file(".gitignore", "cache/\n");
    p.symlink("/etc/passwd", "images/passwd.toml");
    git(p.root(), &["init", "-q"]);
    git(p.root(), &["add", "-A"]);
    git(p.root(), &["commit", "-q", "-m", "one"]);
    p.remove("images/passwd.toml");
    let out = p.layer(&["plan", "--since", "HEAD"]).expect(2);
    out.stderr_has("images/passwd.toml: is a link to `/etc/passwd`, outside the project");
}

// ---------------------------------------------------------------------------------------------
// Host files and the cache (issue 16, failure 8): plans read nothing outside the project and
// the cache but a system program, and never through a link the project put in the cache.

/// A named pipe outside the project: a plan that opened it would block forever.
fn outside_fifo() -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("busybox");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o755),
        0,
    )
    .unwrap();
    (d, fifo)
}

fn busybox_project(origin: &str) -> Project {
    let p = Project::new();
    p.file(
        "layer.toml",
        &format!("[project]\n\n[origins.bb]\n{origin}"),
    );
    p.file("images/base.toml", "origin = \"bb\"\n");
    p
}

#[test]
fn a_host_file_as_busybox_is_not_read() {
    let p = busybox_project("busybox = \"/etc/shadow\"\n");
    insta::assert_snapshot!(plan_fails(&p, None), @r#"
    error: layer.toml: origin `bb`: `/etc/shadow` is not read by plans: `/etc/shadow` is not under the system's program folders
      hint: use a program under `/usr/bin`, `/bin`, `/usr/sbin`, `/sbin`, or pin its digest: `blake3 = "..."` beside `busybox`, or `layer lock`
    "#);
    // Nor a file of the system's program folders that is not a program.
    let (_d, fifo) = outside_fifo();
    let p = busybox_project(&format!("busybox = \"{}\"\n", fifo.display()));
    let err = plan_fails(&p, None);
    assert!(
        err.contains("is not under the system's program folders"),
        "{err}"
    );
    let p = busybox_project("busybox = \"/usr/bin/../lib/os-release\"\n");
    let out = p.layer(&["plan"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn a_pinned_busybox_is_never_opened_by_plans() {
    let (_d, fifo) = outside_fifo();
    let digest = "ab".repeat(32);
    let p = busybox_project(&format!(
        "busybox = \"{}\"\nblake3 = \"{digest}\"\n",
        fifo.display()
    ));
    let out = p.layer(&["hash", "--inputs", "--json"]).expect(0);
    out.stdout_has(&digest);
    // Pinned in layer.lock instead, by `layer lock` of a trusted checkout.
    let p = busybox_project(&format!("busybox = \"{}\"\n", fifo.display()));
    p.file(
        "layer.lock",
        &format!("version = 1\n\n[origins.bb]\nblake3 = \"{digest}\"\n"),
    );
    let out = p.layer(&["hash", "--inputs", "--json"]).expect(0);
    out.stdout_has(&digest);
    // A bad pin is a declaration error, and so is a pin of anything but a busybox.
    let p = busybox_project("busybox = \"/usr/bin/busybox\"\nblake3 = \"xyz\"\n");
    insta::assert_snapshot!(plan_fails(&p, None), @r"
    error: layer.toml:3: origin `bb`: `blake3` must be 64 hex digits
      hint: `b3sum BUSYBOX`, or `layer lock`, which pins it in `layer.lock`
    ");
    let p = busybox_project(&format!("id = \"ami-1\"\nblake3 = \"{digest}\"\n"));
    insta::assert_snapshot!(plan_fails(&p, None), @r"
    error: layer.toml:3: origin `bb`: `blake3` goes with `busybox`
      hint: remove `blake3`
    ");
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn a_busybox_that_is_not_the_pinned_one_fails_the_build() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = busybox_project(&format!(
        "busybox = \"{}\"\nblake3 = \"{}\"\n",
        needs::busybox().unwrap().display(),
        "ab".repeat(32)
    ));
    let out = p.layer(&["build", "--no-progress"]).expect(1);
    assert!(
        out.stderr.contains(&format!(
            "but the key was computed from {}; run `layer lock --update` if it was upgraded",
            "ab".repeat(32)
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn a_committed_cache_link_or_a_foreign_cache_is_refused() {
    let elsewhere = tempfile::tempdir().unwrap();
    let p = Project::estate();
    p.symlink(elsewhere.path().to_str().unwrap(), "cache");
    let err = plan_fails(&p, Some(elsewhere.path()));
    assert!(
        err.contains("error: [ROOT]/cache: the cache folder is a link to `"),
        "{err}"
    );
    assert!(
        err.contains("hint: remove the link (a cache is never committed)"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    // A file where the cache folder goes.
    p.remove("cache");
    p.file("cache", "x\n");
    let out = p.layer(&["plan"]).expect(2);
    out.stderr_has("the cache folder is not a folder");
    // A cache folder of another user.
    p.remove("cache");
    std::fs::create_dir(p.path("cache")).unwrap();
    std::os::unix::fs::chown(p.path("cache"), Some(65534), Some(65534)).unwrap();
    let out = p.layer(&["plan"]).expect(2);
    out.stderr_has("the cache folder is owned by user 65534, not by the user running layer");
}

#[test]
fn links_in_the_cache_are_not_followed() {
    let p = Project::estate();
    p.record(&["base-linux"]);
    assert_eq!(p.planned(&[], "base-linux")["action"], "fresh");
    // A record that is a link to a record elsewhere (or to `/etc/shadow`) is not read.
    let record = p.record_path("base-linux");
    let outside = tempfile::tempdir().unwrap();
    let moved = outside.path().join("record.json");
    std::fs::rename(&record, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &record).unwrap();
    assert_eq!(p.planned(&[], "base-linux")["action"], "build");
    // A stat cache that is a link to a device is not read, and is replaced by a file. (The
    // plans above may have saved none: a stat cache keeps no file changed within 2 s of its
    // scan, and one with nothing to keep is not written. Past that window, this plan keeps
    // every file.)
    let _ = std::fs::remove_file(p.path("cache/stat-cache"));
    p.symlink("/dev/zero", "cache/stat-cache");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    p.layer(&["plan"]).expect(0);
    let meta = std::fs::symlink_metadata(p.path("cache/stat-cache")).unwrap();
    assert!(meta.is_file());
}
