//! rpm images (SPEC §9): rpm's version order against rpm itself (`rpm.vercmp()` on a few
//! hundred generated pairs); the manifest of a real rpm database (two packages built here with
//! `rpmbuild`, installed with `rpm --justdb` into a tree) against `rpm -qa`; and a build
//! carrying that database, through `layer packages`, `layer sbom` and `layer audit` against a
//! `Rocky Linux:9` advisory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use layer::packages::rpmversion::compare;
use serde_json::Value;

use crate::common::{run_ok, Project};
use crate::needs::{self, Need};
use crate::version_pairs;

/// Versions made of what makes rpm's order hard: epochs (empty too), `~` and `^`, letters
/// against digits, leading zeros, separators that only separate, releases or none.
fn generated_versions() -> Vec<String> {
    let epochs = ["", "0:", "1:", "2:", ":"];
    let versions = [
        "1.0",
        "1.0a",
        "1.0.1",
        "1.0~rc1",
        "1.0^git1",
        "1.00",
        "1_0",
        "1.0+b",
        "1.01",
        "10",
        "1.a",
        "2.0~",
        "1.0~rc1^p",
        "abc",
        "1..0",
        "0001.0",
        "1.0^",
        "a1",
        "1.0~~",
        "1-2",
    ];
    let releases = [
        "", "-1", "-1.el9", "-1.el9_1", "-2", "-1~beta", "-10", "-", "-01",
    ];
    version_pairs::generated(&epochs, &versions, &releases, 4)
}

#[test]
#[cfg_attr(
    missing = "rpm",
    ignore = "needs `rpm` and `rpmbuild`: apt-get install rpm"
)]
fn rpm_order_agrees_with_rpm_vercmp() {
    needs::check(&[Need::Rpm]);
    let pairs = version_pairs::spread_pairs(&generated_versions(), 5, 11);
    assert!(pairs.len() >= 300, "only {} pairs", pairs.len());
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("pairs");
    let text: String = pairs.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
    fs::write(&list, text).unwrap();
    // One rpm for every pair: its Lua reads the list and prints rpm.vercmp() of each.
    let script = format!(
        "%{{lua: for l in io.lines(\"{}\") do local a, b = l:match(\"^(%S+) (%S+)$\"); print(rpm.vercmp(a, b) .. \"\\n\") end}}",
        list.display()
    );
    let out = run_ok(Command::new("rpm").args(["--eval", &script]));
    let said: Vec<i32> = String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(said.len(), pairs.len());
    for ((a, b), rpm) in pairs.iter().zip(said) {
        let ours = compare(a, b) as i32;
        assert_eq!(ours, rpm, "layer says {a} vs {b} is {ours}; rpm says {rpm}");
    }
}

// ---------------------------------------------------------------------------------------------
// A real rpm database: two packages built here, installed into a tree with `rpm --justdb`.

/// `demo` (epoch 1, source of the binary `libdemo` at `release`) and `tool` (no epoch).
fn spec(release: &str) -> String {
    format!(
        "Name: demo\nEpoch: 1\nVersion: 1.0\nRelease: {release}\nSummary: a demo\nLicense: MIT\nBuildArch: noarch\n\
%description\na demo\n\
%package -n libdemo\nSummary: the demo library\n%description -n libdemo\nthe demo library\n\
%files -n libdemo\n"
    )
}

const TOOL_SPEC: &str =
    "Name: tool\nVersion: 2.3~rc1\nRelease: 4.el9\nSummary: a tool\nLicense: MIT\n\
%description\na tool\n%files\n";

/// Builds the rpms in `work` and installs them (only into the database) under `root`.
fn rpm_tree(work: &Path, root: &Path, demo_release: &str) {
    let top = work.join(format!("top-{demo_release}"));
    let mut rpms = Vec::new();
    for (name, text) in [
        ("demo", spec(demo_release)),
        ("tool", TOOL_SPEC.to_string()),
    ] {
        let file = work.join(format!("{name}.spec"));
        fs::write(&file, text).unwrap();
        run_ok(
            Command::new("rpmbuild")
                .args(["-bb", "--quiet", "--define"])
                .arg(format!("_topdir {}", top.display()))
                .args(["--define", "_build_id_links none"])
                .arg(&file),
        );
    }
    for e in walkdir::WalkDir::new(top.join("RPMS")) {
        let e = e.unwrap();
        if e.path().extension().is_some_and(|x| x == "rpm") {
            rpms.push(e.into_path());
        }
    }
    assert_eq!(rpms.len(), 2, "{rpms:?}");
    let _ = fs::remove_dir_all(root.join("var/lib/rpm"));
    fs::create_dir_all(root).unwrap();
    run_ok(
        Command::new("rpm")
            .arg("--root")
            .arg(root)
            .args(["--dbpath", "/var/lib/rpm", "-i", "--nodeps", "--justdb"])
            .args(&rpms),
    );
}

/// `rpm -qa` of the tree: name, `%{EVR}`, arch and source rpm, sorted.
fn rpm_qa(root: &Path) -> Vec<String> {
    let out = run_ok(
        Command::new("rpm")
            .arg("--root")
            .arg(root)
            .args(["--dbpath", "/var/lib/rpm", "-qa", "--qf"])
            .arg("%{NAME} %{EVR} %{ARCH} %{SOURCERPM}\\n"),
    );
    let mut lines: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

#[test]
#[cfg_attr(
    missing = "rpm",
    ignore = "needs `rpm` and `rpmbuild`: apt-get install rpm"
)]
fn the_manifest_of_an_rpm_database_is_what_rpm_lists() {
    needs::check(&[Need::Rpm]);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    rpm_tree(dir.path(), &root, "1.el9");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(
        root.join("etc/os-release"),
        "ID=\"rocky\"\nVERSION_ID=\"9.3\"\n",
    )
    .unwrap();
    let before = snapshot(&root);
    let scratch = dir.path().join("scratch");
    let m =
        layer::backend::rootfs::read_manifest(std::slice::from_ref(&root), &scratch, &mut |_| {})
            .unwrap()
            .expect("a manifest");
    assert_eq!(
        snapshot(&root),
        before,
        "reading the database changed the tree"
    );
    assert_eq!(m.manager, layer::packages::Manager::Rpm);
    assert_eq!(m.distro.as_ref().unwrap().id, "rocky");
    let mut ours: Vec<String> = m
        .packages
        .iter()
        .map(|p| {
            // `%{SOURCERPM}` again, from what the manifest keeps of it.
            let sv = p
                .source_version()
                .split_once(':')
                .map_or(p.source_version(), |(_, v)| v);
            format!(
                "{} {} {} {}-{sv}.src.rpm",
                p.name, p.version, p.arch, p.source
            )
        })
        .collect();
    ours.sort();
    let theirs = rpm_qa(&root);
    assert_eq!(ours, theirs);
    assert_eq!(
        theirs,
        [
            "libdemo 1:1.0-1.el9 noarch demo-1.0-1.el9.src.rpm",
            &format!(
                "tool 2.3~rc1-4.el9 {} tool-2.3~rc1-4.el9.src.rpm",
                m.packages[1].arch
            ),
        ]
    );
    assert_eq!(
        m.purl(&m.packages[0]),
        "pkg:rpm/rocky/libdemo@1.0-1.el9?arch=noarch&distro=rocky-9.3&epoch=1"
    );
}

/// Every file under `root` with its bytes: what a read must leave as it was.
fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_path_buf(), fs::read(e.path()).unwrap()))
        .collect()
}

const ADVISORY: &str = r#"{
  "id": "RLSA-2026:0001",
  "aliases": ["CVE-2026-0002"],
  "affected": [{
    "package": {"ecosystem": "Rocky Linux:9", "name": "demo"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:1.0-1.el9_2"}]}]
  }]
}"#;

#[test]
#[cfg_attr(
    missing = "root",
    ignore = "needs root (mounts, chroot, owners, device nodes)"
)]
#[cfg_attr(
    missing = "busybox",
    ignore = "needs a static busybox: apt-get install busybox-static"
)]
#[cfg_attr(
    missing = "rpm",
    ignore = "needs `rpm` and `rpmbuild`: apt-get install rpm"
)]
fn a_build_carrying_an_rpm_database_is_listed_and_audited_in_rpm_order() {
    needs::check(&[Need::Root, Need::Busybox, Need::Rpm]);
    let p = Project::on_busybox(&needs::busybox().expect("checked"), "");
    p.file(
        "images/rocky.toml",
        "version = \"1.0\"\norigin = \"bb\"\nroles = [\"db\"]\n",
    );
    p.file(
        "roles/db/files/etc/os-release",
        "ID=\"rocky\"\nVERSION_ID=\"9.3\"\n",
    );
    let work = tempfile::tempdir().unwrap();
    let tree = |release: &str| {
        let root = work.path().join(format!("root-{release}"));
        rpm_tree(work.path(), &root, release);
        let db = fs::read(root.join("var/lib/rpm/rpmdb.sqlite")).unwrap();
        let dest = p.path("roles/db/files/var/lib/rpm/rpmdb.sqlite");
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::write(dest, db).unwrap();
    };
    tree("1.el9");
    p.layer(&["build"]).expect(0);
    // 1.el9_2 sorts after 1.el9 in rpm's order: the fix.
    tree("1.el9_2");
    p.layer(&["build"]).expect(0);

    let out = p
        .layer(&["packages", "rocky@1.0.0", "--format", "json"])
        .expect(0);
    let m: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(m["manager"], "rpm");
    assert_eq!(m["packages"][0]["name"], "libdemo");
    assert_eq!(m["packages"][0]["version"], "1:1.0-1.el9");
    assert_eq!(m["packages"][0]["source"], "demo");

    let out = p
        .layer(&["sbom", "rocky@1.0.0", "--format", "cyclonedx-json"])
        .expect(0);
    out.stdout_has("pkg:rpm/rocky/libdemo@1.0-1.el9?arch=noarch&distro=rocky-9.3&epoch=1");

    p.file("osv/RLSA-2026-0001.json", ADVISORY);
    let out = p
        .layer(&["audit", "--osv", "osv", "--format", "markdown"])
        .expect(0);
    out.stdout_has("| `rocky` | 1.0.0 | `demo` | 1:1.0-1.el9 | RLSA-2026:0001 | 1:1.0-1.el9_2 |");
    out.stdout_has("1 of 2 audited builds affected by 1 of 1 advisories");
    // Another release's advisory is not this image's.
    p.file(
        "osv/RLSA-2026-0001.json",
        &ADVISORY.replace("Rocky Linux:9", "Rocky Linux:8"),
    );
    let out = p.layer(&["audit", "--osv", "osv"]).expect(0);
    assert!(
        out.stdout.starts_with("no recorded build is affected"),
        "{}",
        out.stdout
    );
}

#[test]
#[cfg_attr(
    missing = "root",
    ignore = "needs root (mounts, chroot, owners, device nodes)"
)]
#[cfg_attr(
    missing = "busybox",
    ignore = "needs a static busybox: apt-get install busybox-static"
)]
fn an_old_rpm_database_is_named_as_not_read_and_the_build_not_audited() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = Project::on_busybox(&needs::busybox().expect("checked"), "");
    p.file(
        "images/centos.toml",
        "version = \"7.0\"\norigin = \"bb\"\nroles = [\"db\"]\n",
    );
    // BerkeleyDB's magic, as rpm < 4.16 leaves `Packages`.
    p.file(
        "roles/db/files/var/lib/rpm/Packages",
        "\0\0\0\0\x61\x15\x06\0",
    );
    let out = p.layer(&["build", "-v"]).expect(0);
    out.stderr_has("note: rpm's database `var/lib/rpm/Packages` is BerkeleyDB or ndb, which layer does not read (only rpm ≥ 4.16's `rpmdb.sqlite`): this build records no package manifest");
    p.file("osv/a.json", ADVISORY);
    let out = p.layer(&["audit", "--osv", "osv"]).expect(0);
    out.stdout_has("1 without a package manifest, not audited: centos 7.0.0");
}
