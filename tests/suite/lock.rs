//! `layer lock [--update]`: `resolve` commands and Debian suites pinned in `layer.lock`.
//! No network: `resolve` commands are scripts, Debian mirrors are `file://` folders.

use crate::common::{redact, Project};

/// Origins `cloud` (a script printing the content of `ami.txt`) and `bookworm` (a Debian suite
/// on a `file://` mirror in the project's `mirror/`, with its `-updates` and, in the mirror's
/// `debian-security` sibling, its `-security`); images on `cloud` and `fixed`, and one on
/// `cloud`'s image. (Images on `debian` origins, whose packages are locked in a sandbox of
/// the origin, are `debian`'s tests.)
fn project() -> Project {
    let p = Project::new();
    let mirror = format!("file://{}/mirror/debian", p.root().display());
    p.file(
        "layer.toml",
        &format!(
            "[project]\n\n[origins.cloud]\nresolve = [\"./latest.sh\", \"eu-west-1\"]\n\n\
             [origins.bookworm]\ndebian = {{ suite = \"bookworm\", mirror = \"{mirror}\" }}\n\n\
             [origins.fixed]\nid = \"ami-fixed\"\n"
        ),
    );
    p.exec(
        "latest.sh",
        "#!/bin/sh\n[ \"$1\" = eu-west-1 ] || exit 3\necho \"ran\" >> resolved\ncat ami.txt\n",
    );
    p.file("ami.txt", "ami-1\n");
    release(&p, "Sat, 11 Jan 2025 10:48:02 UTC");
    for (path, suite) in [
        (
            "mirror/debian/dists/bookworm-updates/Release",
            "stable-updates",
        ),
        (
            "mirror/debian-security/dists/bookworm-security/Release",
            "stable-security",
        ),
    ] {
        p.file(
            path,
            &format!("Suite: {suite}\nDate: Sat, 11 Jan 2025 10:48:02 UTC\nArchitectures: amd64\n"),
        );
    }
    p.file("images/app.toml", "origin = \"cloud\"\n");
    p.file("images/svc.toml", "from = \"app\"\n");
    p.file("images/other.toml", "origin = \"fixed\"\n");
    p
}

fn release(p: &Project, date: &str) {
    p.file(
        "mirror/debian/dists/bookworm/Release",
        &format!("Origin: Debian\nSuite: stable\nCodename: bookworm\nDate: {date}\nArchitectures: amd64\n"),
    );
}

fn digest(p: &Project) -> String {
    blake3::hash(&std::fs::read(p.path("mirror/debian/dists/bookworm/Release")).unwrap())
        .to_hex()
        .to_string()
}

#[test]
fn lock_pins_resolve_and_debian_origins_and_plan_reads_them() {
    let p = project();
    // Before: planning refuses the unresolved origin and runs nothing.
    let out = p.layer(&["plan"]).expect(2);
    out.stderr_has("hint: run `layer lock`");
    assert!(!p.path("resolved").exists());

    let out = p.layer(&["lock"]).expect(0);
    let d = digest(&p);
    assert_eq!(
        out.stdout,
        "bookworm: locked bookworm 2025-01-11T10:48:02Z\n\
         bookworm: locked bookworm-updates 2025-01-11T10:48:02Z\n\
         bookworm: locked bookworm-security 2025-01-11T10:48:02Z\n\
         cloud: locked ami-1\n2 of 3 images stale: app, svc\n"
    );
    let lock = p.read("layer.lock");
    let lock = lock.replace(&d, "[BLAKE3]");
    let lock: String = lock
        .lines()
        .map(|l| match l.rsplit_once(' ') {
            Some((a, b)) if b.len() == 66 => format!("{a} [OTHER]\","),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        lock,
        "# Written by `layer lock`: origins and package versions pinned for planning. Commit it.\nversion = 2\n\n\
         [origins.bookworm]\nreleases = [\n    \"bookworm 2025-01-11T10:48:02Z [BLAKE3]\",\n\
         \x20   \"bookworm-updates 2025-01-11T10:48:02Z [OTHER]\",\n\
         \x20   \"bookworm-security 2025-01-11T10:48:02Z [OTHER]\",\n]\n\n\
         [origins.cloud]\nid = \"ami-1\""
    );
    assert_eq!(p.count_lines("resolved", "ran"), 1);
    // Planning reads the pins and runs nothing.
    let plan = p.plan_json(&[]);
    assert_eq!(plan["summary"]["build"], 3);
    assert_eq!(p.count_lines("resolved", "ran"), 1);

    // Again: nothing moves; the file is the same byte for byte and is not rewritten.
    let before = std::fs::metadata(p.path("layer.lock"))
        .unwrap()
        .modified()
        .unwrap();
    let out = p.layer(&["lock"]).expect(0);
    assert_eq!(out.stdout, "layer.lock is up to date\n");
    assert_eq!(
        std::fs::metadata(p.path("layer.lock"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
    // `lock` without `--update` keeps pins even when the answer moved.
    p.file("ami.txt", "ami-2\n");
    assert_eq!(
        p.layer(&["lock"]).expect(0).stdout,
        "layer.lock is up to date\n"
    );
    assert!(p.read("layer.lock").contains("id = \"ami-1\""));
    // No temporary files are left next to it.
    let names: Vec<String> = std::fs::read_dir(p.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("layer.lock"))
        .collect();
    assert_eq!(names, ["layer.lock"]);
}

#[test]
fn lock_update_prints_what_moved_and_how_many_images_it_makes_stale() {
    let p = project();
    p.layer(&["lock"]).expect(0);
    p.record(&[]);
    assert_eq!(p.plan_json(&[])["summary"]["build"], 0);

    // The cloud image moves; Debian does not.
    p.file("ami.txt", "ami-2\n");
    let out = p.layer(&["lock", "--update"]).expect(0);
    insta::assert_snapshot!(out.stdout, @r"
    cloud: ami-1 -> ami-2
    2 of 3 images stale: app, svc
    ");
    assert_eq!(p.count_lines("resolved", "ran"), 2);
    let (action, reasons) = p.verdict(&[], "app");
    assert_eq!(action, "build");
    assert_eq!(
        reasons,
        serde_json::json!([{"kind": "origin-changed", "origin": "cloud"}])
    );

    // A new Release of the suite.
    release(&p, "Sat, 18 Jan 2025 09:00:00 UTC");
    let out = p.layer(&["lock", "--update"]).expect(0);
    assert_eq!(
        out.stdout,
        "bookworm: bookworm 2025-01-11T10:48:02Z -> 2025-01-18T09:00:00Z\n0 of 3 images stale\n"
    );
    assert!(p
        .read("layer.lock")
        .contains(&format!("\"bookworm 2025-01-18T09:00:00Z {}\"", digest(&p))));
    let out = p.layer(&["lock", "--update"]).expect(0);
    assert_eq!(out.stdout, "nothing moved: layer.lock is up to date\n");
}

#[test]
fn pins_of_origins_no_longer_declared_are_dropped() {
    let p = project();
    p.layer(&["lock"]).expect(0);
    p.file(
        "layer.toml",
        "[project]\n\n[origins.fixed]\nid = \"ami-fixed\"\n",
    );
    p.remove("images/app.toml").remove("images/svc.toml");
    let out = p.layer(&["lock"]).expect(0);
    assert_eq!(
        out.stdout,
        "bookworm: dropped (no longer declared)\ncloud: dropped (no longer declared)\n"
    );
    assert_eq!(
        p.read("layer.lock"),
        "# Written by `layer lock`: origins and package versions pinned for planning. Commit it.\nversion = 2\n"
    );
}

#[test]
fn a_failing_resolve_command_writes_nothing() {
    let p = project();
    p.exec(
        "latest.sh",
        "#!/bin/sh\necho 'no credentials' >&2\nexit 4\n",
    );
    let out = p.layer(&["lock"]).expect(2);
    insta::assert_snapshot!(out.stderr, @r"
    error: layer.toml: origin `cloud`: `./latest.sh eu-west-1` failed (exit status: 4): no credentials
      hint: the `resolve` command must print one id and exit 0
    ");
    assert!(!p.path("layer.lock").exists());

    p.exec("latest.sh", "#!/bin/sh\necho ami-1\necho ami-2\n");
    let out = p.layer(&["lock"]).expect(2);
    assert!(
        out.stderr
            .contains("`./latest.sh eu-west-1` printed 2 lines; expected one id"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_missing_release_file_names_the_url() {
    let p = project();
    p.remove("mirror/debian/dists/bookworm/Release");
    let out = p.layer(&["lock"]).expect(2);
    let err = redact(&p, &out.stderr);
    assert!(
        err.starts_with(
            "error: layer.toml: origin `bookworm`: cannot read `[ROOT]/mirror/debian/dists/bookworm/Release`"
        ),
        "{err}"
    );
    assert!(!p.path("layer.lock").exists());
}

#[test]
fn a_lock_that_does_not_load_is_written_again() {
    let p = project();
    p.file(
        "layer.lock",
        "version = 7\n\n[origins.cloud]\nid = \"ami-0\"\n",
    );
    // Planning refuses it and says what to do.
    let out = p.layer(&["plan"]).expect(2);
    out.stderr_has("hint: run `layer lock` to write it again");
    let out = p.layer(&["lock"]).expect(0);
    out.stdout_has("cloud: locked ami-1\n");
    assert!(p
        .read("layer.lock")
        .starts_with("# Written by `layer lock`"));
    p.layer(&["plan"]).expect(0);
}
