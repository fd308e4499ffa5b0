//! Package manifests, SBOMs and audits (SPEC §9): dpkg's version order against `dpkg
//! --compare-versions`; the manifest a build records, read from the image's own dpkg database
//! (a real Debian build compared with `dpkg-query`, and a busybox image carrying a dpkg status
//! file); `packages --diff`; SPDX and CycloneDX output checked by their own validators; and
//! `layer audit` against an OSV advisory, with an inventory and `--exit-code`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use layer::packages::debversion::compare;
use serde_json::Value;

use crate::apt_repo::{build_deb, Deb};
use crate::common::{json, run_ok, Project};
use crate::needs::{self, Need};
use crate::remote::python_venv;
use crate::version_pairs;

// ---------------------------------------------------------------------------------------------
// dpkg's order

/// A few hundred versions made of the pieces that make dpkg's order hard: epochs, `~`, `+`,
/// letters against digits, leading zeros, revisions with and without hyphens.
fn generated_versions() -> Vec<String> {
    let upstreams = [
        "1.0",
        "1.0~rc1",
        "1.0~~",
        "1.0a",
        "1.0+dfsg",
        "1.00",
        "1.0.1",
        "1.10",
        "1.9",
        "2",
        "0.9~beta+1",
        "1.0-2",
        "3.0.15",
    ];
    let revisions = [
        "",
        "-1",
        "-1~deb12u1",
        "-1+deb12u1",
        "-0",
        "-1.1",
        "-a",
        "-10",
    ];
    // Every epoch with a third of the rest.
    version_pairs::generated(&["", "1:", "2:"], &upstreams, &revisions, 3)
}

#[test]
fn dpkg_order_agrees_with_dpkg_compare_versions() {
    let pairs = version_pairs::spread_pairs(&generated_versions(), 7, 9);
    for (a, b) in &pairs {
        let op = match compare(a, b) {
            std::cmp::Ordering::Less => "lt",
            std::cmp::Ordering::Equal => "eq",
            std::cmp::Ordering::Greater => "gt",
        };
        let status = Command::new("dpkg")
            .args(["--compare-versions", a, op, b])
            .status()
            .expect("dpkg runs");
        assert!(status.success(), "layer says {a} {op} {b}; dpkg disagrees");
    }
    assert!(pairs.len() >= 300, "only {} pairs compared", pairs.len());
}

// ---------------------------------------------------------------------------------------------
// A busybox image carrying a dpkg database: a role places a real status file.

const OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";

fn status(demo_version: &str) -> String {
    format!(
        "Package: libdemo1\nStatus: install ok installed\nPriority: optional\nSection: libs\nInstalled-Size: 10\nMaintainer: Layer Tests <tests@example.org>\nArchitecture: amd64\nMulti-Arch: same\nSource: demo\nVersion: {demo_version}\nDescription: a demo library\n demo library, for tests\n\n\
Package: openssl\nStatus: install ok installed\nPriority: optional\nSection: utils\nInstalled-Size: 10\nMaintainer: Layer Tests <tests@example.org>\nArchitecture: amd64\nVersion: 3.0.15-1~deb12u1\nDescription: Secure Sockets Layer toolkit\n\n\
Package: removed\nStatus: deinstall ok config-files\nPriority: optional\nArchitecture: amd64\nVersion: 1.0\nDescription: gone\n"
    )
}

/// `base` on a busybox origin, its role holding a dpkg status file with `libdemo1` at
/// `demo_version`, and `app` on it.
fn dpkg_project(demo_version: &str) -> Project {
    let p = Project::on_busybox(&needs::busybox().expect("checked"), "");
    p.file(
        "images/base.toml",
        "version = \"1.0\"\norigin = \"bb\"\nroles = [\"db\"]\n",
    );
    p.file("images/app.toml", "version = \"2.0\"\nfrom = \"base\"\n");
    p.file("roles/db/files/etc/os-release", OS_RELEASE);
    p.file("roles/db/files/var/lib/dpkg/status", &status(demo_version));
    p
}

const ADVISORY: &str = r#"{
  "schema_version": "1.6.0",
  "id": "DSA-9999-1",
  "aliases": ["CVE-2026-0001"],
  "summary": "demo: buffer overflow",
  "affected": [{
    "package": {"ecosystem": "Debian:12", "name": "demo", "purl": "pkg:deb/debian/demo?arch=source"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0-1"}]}]
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
fn manifests_diffs_and_audits_of_builds_holding_a_fixed_and_an_unfixed_version() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = dpkg_project("1.0-1");
    p.layer(&["build"]).expect(0);
    p.file("roles/db/files/var/lib/dpkg/status", &status("2.0-1"));
    p.layer(&["build"]).expect(0);

    // The manifest: installed packages only, with their source; `app` inherits `base`'s.
    let m = json(&p.layer(&["packages", "app", "--format", "json"]).expect(0));
    assert_eq!(m["manager"], "dpkg");
    assert_eq!(m["distro"]["id"], "debian");
    assert_eq!(m["distro"]["version"], "12");
    let names: Vec<&str> = m["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["libdemo1", "openssl"]);
    assert_eq!(m["packages"][0]["version"], "2.0-1");
    assert_eq!(m["packages"][0]["source"], "demo");
    let text = p.layer(&["packages", "base@1.0.0"]).expect(0).stdout;
    assert!(text.contains("libdemo1  1.0-1"), "{text}");

    let d = p
        .layer(&["packages", "--diff", "base@1.0.0", "base@1.0.1"])
        .expect(0)
        .stdout;
    assert!(
        d.starts_with(
            "~ libdemo1 1.0-1 -> 2.0-1 (amd64)\n0 added, 0 removed, 1 changed from base 1.0.0-"
        ),
        "{d}"
    );

    // The audit: the build holding 1.0-1 (and `app` on it), not those holding 2.0-1.
    p.file("osv/DSA-9999-1.json", ADVISORY);
    p.file(
        "inventory.csv",
        "instance,image,version\ni-old,base,1.0.0\ni-new,base,1.0.1\ni-app-old,app,2.0.0\ni-app-new,app,2.0.1\n",
    );
    let out = p.layer(&[
        "audit",
        "--osv",
        "osv",
        "--inventory",
        "inventory.csv",
        "--format",
        "json",
    ]);
    let a = json(&out.expect(0));
    let rows: Vec<(String, String, String, String, String)> = a["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap().to_string();
            (
                s("image"),
                s("version"),
                s("package"),
                s("installed"),
                s("fixed"),
            )
        })
        .collect();
    let row = |i: &str, v: &str| {
        (
            i.into(),
            v.into(),
            "demo".into(),
            "1.0-1".into(),
            "2.0-1".into(),
        )
    };
    assert_eq!(rows, [row("app", "2.0.0"), row("base", "1.0.0")]);
    assert_eq!(a["affected"][0]["advisory"], "DSA-9999-1");
    assert_eq!(a["affected"][0]["binaries"][0], "libdemo1");
    assert_eq!(a["instances"]["count"], 2);
    assert_eq!(
        a["instances"]["instances"],
        serde_json::json!(["i-old", "i-app-old"])
    );

    let text = p.layer(&[
        "audit",
        "--osv",
        "osv/DSA-9999-1.json",
        "--inventory",
        "inventory.csv",
    ]);
    let text = text.expect(0).stdout;
    assert!(
        text.contains("2 of 4 audited builds affected by 1 of 1 advisories"),
        "{text}"
    );
    assert!(text.contains("2 instances to rebuild"), "{text}");
    p.layer(&["audit", "--osv", "osv", "--exit-code"]).expect(1);
    let md = p
        .layer(&["audit", "--osv", "osv", "--format", "markdown"])
        .expect(0)
        .stdout;
    assert!(
        md.contains("| `base` | 1.0.0 | `demo` | 1.0-1 | DSA-9999-1 | 2.0-1 |"),
        "{md}"
    );

    // Fixed in an older version: nothing is affected, and `--exit-code` passes.
    p.file(
        "osv/DSA-9999-1.json",
        &ADVISORY.replace("\"2.0-1\"", "\"1.0-1\""),
    );
    p.layer(&["audit", "--osv", "osv", "--exit-code"]).expect(0);

    // SBOMs, checked by each format's own validator.
    let cdx = p.path("app.cdx.json");
    let spdx = p.path("app.spdx.json");
    p.layer(&[
        "sbom",
        "app",
        "--format",
        "cyclonedx-json",
        "-o",
        cdx.to_str().unwrap(),
    ])
    .expect(0);
    p.layer(&[
        "sbom",
        "app",
        "--format",
        "spdx-json",
        "-o",
        spdx.to_str().unwrap(),
    ])
    .expect(0);
    let c: Value = serde_json::from_str(&fs::read_to_string(&cdx).unwrap()).unwrap();
    let purls: Vec<&str> = c["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["purl"].as_str())
        .collect();
    assert_eq!(
        purls,
        [
            "pkg:deb/debian/libdemo1@2.0-1?arch=amd64&distro=debian-12",
            "pkg:deb/debian/openssl@3.0.15-1~deb12u1?arch=amd64&distro=debian-12"
        ]
    );
    assert_eq!(c["metadata"]["component"]["name"], "app");
    assert_eq!(
        c["metadata"]["component"]["pedigree"]["ancestors"][0]["name"],
        "base"
    );
    let s: Value = serde_json::from_str(&fs::read_to_string(&spdx).unwrap()).unwrap();
    assert!(s["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["relationshipType"] == "DESCENDANT_OF"));
    validate_sboms(&spdx, &cdx);
}

/// The virtual environment with `pyspdxtools` and `cyclonedx-python-lib`, made once.
fn sbom_venv() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        python_venv(
            "sbom-venv",
            &["spdx-tools", "cyclonedx-python-lib[json-validation]"],
        )
    })
    .clone()
}

const CDX_VALIDATE: &str = "
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())
if errors:
    print(errors)
    sys.exit(1)
";

fn validate_sboms(spdx: &Path, cdx: &Path) {
    needs::check(&[Need::Python3]);
    let venv = sbom_venv();
    let out = Command::new(venv.join("bin/pyspdxtools"))
        .arg("-i")
        .arg(spdx)
        .output()
        .expect("pyspdxtools runs");
    assert!(
        out.status.success(),
        "pyspdxtools refuses the SPDX document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", CDX_VALIDATE])
        .arg(cdx)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "cyclonedx-python-lib refuses the CycloneDX document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn a_build_without_a_manifest_and_a_file_that_is_no_advisory_are_errors() {
    let p = Project::command_estate("echo id > \"$LAYER_OUTPUT\"\n");
    p.record(&["base"]);
    let out = p.layer(&["packages", "base"]).expect(2);
    assert!(
        out.stderr.contains("error: base 1.0.0-")
            && out
                .stderr
                .contains("has no package manifest: only `rootfs` builds record their packages"),
        "{}",
        out.stderr
    );
    let out = p
        .layer(&["sbom", "base", "--format", "spdx-json"])
        .expect(2);
    out.stderr_has("has no package manifest");
    let rootfs = Project::estate();
    rootfs.record(&["base-linux"]);
    let out = rootfs
        .layer(&["sbom", "base-linux", "--format", "spdx-json"])
        .expect(2);
    out.stderr_has("has no package manifest: its image has no package database layer reads (dpkg's, apk's or rpm's `rpmdb.sqlite`), or it was built before layer recorded packages");
    assert!(
        out.stderr.contains("hint: a build of a `debian` or `tar` origin with dpkg, apk or rpm (≥ 4.16) records one; rebuild with `layer build --force base-linux`"),
        "{}",
        out.stderr
    );

    p.file("osv/bad.json", "{\"summary\": \"no id\"}");
    let out = p.layer(&["audit", "--osv", "osv"]).expect(2);
    assert!(
        out.stderr.starts_with("error: ")
            && out
                .stderr
                .contains("osv/bad.json: not an OSV advisory: missing field `id`"),
        "{}",
        out.stderr
    );
    out.stderr_has("hint: `--osv` takes OSV JSON files");

    // A build without a manifest is not audited, and said so, never counted clean.
    p.file("osv/bad.json", ADVISORY);
    let out = p.layer(&["audit", "--osv", "osv"]).expect(0);
    assert!(
        out.stdout.contains("0 of 0 audited builds affected by 0 of 1 advisories; 1 without a package manifest, not audited: base 1.0.0"),
        "{}",
        out.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// A real Debian build: mmdebstrap minbase from the machine's apt mirror, and a role that
// installs a package made here with `dpkg-deb --build`.

/// `layer-dummy` at `version` (built from the source package `dummy-src`) as the file `out`.
fn dummy_deb(work: &Path, version: &str, out: &Path) {
    let deb = Deb {
        name: "layer-dummy",
        version,
        source: Some("dummy-src"),
    };
    build_deb(work, &deb, out);
}

/// `dpkg-query -W` of the dpkg database in `admindir`: installed packages as
/// `(name, version, arch, source)`, sorted.
fn dpkg_query(admindir: &Path) -> Vec<(String, String, String, String)> {
    let out = run_ok(Command::new("dpkg-query")
        .arg(format!("--admindir={}", admindir.display()))
        .args([
            "-W",
            "-f",
            "${db:Status-Status}\\t${Package}\\t${Version}\\t${Architecture}\\t${source:Package}\\n",
        ]));
    let mut rows: Vec<_> = String::from_utf8(out)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0] == "installed").then(|| {
                (
                    f[1].to_string(),
                    f[2].to_string(),
                    f[3].to_string(),
                    f[4].to_string(),
                )
            })
        })
        .collect();
    rows.sort();
    rows
}

#[test]
#[cfg_attr(
    missing = "root",
    ignore = "needs root (mounts, chroot, owners, device nodes)"
)]
#[cfg_attr(
    missing = "mmdebstrap",
    ignore = "needs `mmdebstrap` and `dpkg-deb`: apt-get install mmdebstrap"
)]
fn a_debian_build_records_what_dpkg_query_lists_inside_it() {
    needs::check(&[Need::Root, Need::Mmdebstrap]);
    let p = Project::new();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bookworm]\ndebian = { suite = \"bookworm\", variant = \"minbase\" }\n",
    );
    p.file(
        "images/deb.toml",
        "version = \"1.0\"\norigin = \"bookworm\"\nroles = [\"dummy\"]\n",
    );
    p.exec(
        "roles/dummy/provision.sh",
        "set -eu\ndpkg -i /root/layer-dummy.deb\nrm /root/layer-dummy.deb\n",
    );
    let work = p.path("work");
    dummy_deb(
        &work,
        "1.0-1",
        &p.path("roles/dummy/files/root/layer-dummy.deb"),
    );
    // Builds on `debian` origins install locked package versions.
    p.layer(&["lock"]).expect(0);
    p.layer(&["build"]).expect(0);
    dummy_deb(
        &work,
        "2.0-1",
        &p.path("roles/dummy/files/root/layer-dummy.deb"),
    );
    p.layer(&["build"]).expect(0);

    // The manifest equals what dpkg-query reads from the image's own database.
    let tar = p.path("deb.tar");
    p.layer(&[
        "export",
        "deb",
        "--format",
        "tar",
        "-o",
        tar.to_str().unwrap(),
    ])
    .expect(0);
    let root = p.path("root");
    fs::create_dir_all(&root).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&root)
        .arg("./var/lib/dpkg")
        .status()
        .unwrap();
    assert!(st.success());
    let want = dpkg_query(&root.join("var/lib/dpkg"));
    let m = json(&p.layer(&["packages", "deb", "--format", "json"]).expect(0));
    let got: Vec<(String, String, String, String)> = m["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap().to_string();
            (s("name"), s("version"), s("arch"), s("source"))
        })
        .collect();
    assert!(
        want.len() > 50,
        "a minbase Debian has dozens of packages: {want:?}"
    );
    assert_eq!(got, want);
    assert_eq!(
        m["distro"],
        serde_json::json!({"id": "debian", "version": "12"})
    );
    assert!(want.contains(&(
        "layer-dummy".into(),
        "2.0-1".into(),
        "all".into(),
        "dummy-src".into()
    )));

    // What the second build changed, and an audit of both against a fix in 2.0-1.
    let d = p
        .layer(&["packages", "--diff", "deb@1.0.0", "deb@1.0.1"])
        .expect(0)
        .stdout;
    assert!(
        d.starts_with("~ layer-dummy 1.0-1 -> 2.0-1 (all)\n0 added, 0 removed, 1 changed"),
        "{d}"
    );
    p.file(
        "osv/dummy.json",
        &ADVISORY.replace("\"demo\"", "\"dummy-src\""),
    );
    let a = json(
        &p.layer(&["audit", "--osv", "osv", "--format", "json"])
            .expect(0),
    );
    let affected = a["affected"].as_array().unwrap();
    assert_eq!(affected.len(), 1, "{a}");
    assert_eq!(affected[0]["version"], "1.0.0");
    assert_eq!(affected[0]["installed"], "1.0-1");
    assert_eq!(affected[0]["binaries"], serde_json::json!(["layer-dummy"]));
}
