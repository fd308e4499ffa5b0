//! The README's commands, run as written on the repository's own example estate, so they cannot
//! rot: its "Packages, SBOMs and audits" block (`layer packages base-linux`, a diff of two
//! builds, an SBOM, and an audit against `doc/examples/osv` with `doc/examples/inventory.csv`).
//!
//! The fixture is a copy of the estate (`layer.toml`, `layer.lock`, `images/`, `roles/`,
//! `doc/examples/`) whose builds are recorded through the library, as a rootfs build records
//! them, each holding the packages `layer.lock` pins for its chain: `base-linux` twice, first
//! with an older `openssl` (the build a security update replaces), then as locked.

use std::fs;
use std::path::Path;

use layer::packages::{Distro, Manager, Manifest, Package};
use serde_json::Value;

use crate::common::{record_images_holding, Output, Project};

/// The openssl of the first `base-linux` build, before the update `layer.lock` pins.
const OLD_OPENSSL: &str = "3.0.15-1~deb12u1";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The `layer` arguments of the README's `cargo run -q -- ...` lines in the fenced block that
/// follows `heading`, comments left out.
fn readme_commands(heading: &str) -> Vec<Vec<String>> {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let section = &readme[readme.find(heading).expect("the README has the section")..];
    let block = section
        .split("```")
        .nth(1)
        .expect("the section has a fenced block");
    block
        .lines()
        .filter_map(|l| l.trim().strip_prefix("cargo run -q -- "))
        .map(|l| {
            let l = l.split(" #").next().unwrap();
            l.split_whitespace().map(str::to_string).collect()
        })
        .collect()
}

/// A copy of the example estate with `doc/examples/`, nothing built.
fn estate_copy() -> Project {
    let p = Project::new();
    for top in [
        "layer.toml",
        "layer.lock",
        "images",
        "roles",
        "doc/examples",
    ] {
        for e in walkdir::WalkDir::new(repo().join(top)) {
            let e = e.unwrap();
            if e.file_type().is_file() {
                let rel = e.path().strip_prefix(repo()).unwrap();
                p.file(
                    rel.to_str().unwrap(),
                    &fs::read_to_string(e.path()).unwrap(),
                );
            }
        }
    }
    // Role scripts keep their modes: they are part of the keys.
    for e in walkdir::WalkDir::new(repo().join("roles")) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(repo()).unwrap();
            let mode = fs::metadata(e.path()).unwrap();
            p.chmod(
                rel.to_str().unwrap(),
                std::os::unix::fs::PermissionsExt::mode(&mode.permissions()),
            );
        }
    }
    p
}

/// What a build of `image` holds: the locked packages of its whole chain (Debian 12, dpkg),
/// `libssl3` built from `openssl` as in Debian.
fn manifest(root: &Path, image: &str) -> Option<Manifest> {
    let project = layer::decl::load(root).expect("the estate loads");
    let mut packages = Vec::new();
    let mut at = Some(image.to_string());
    while let Some(name) = at {
        for pin in project.lock.packages_of(&name) {
            let (n, v) = pin.split_once('=').expect("NAME=VERSION");
            let source = if n == "libssl3" { "openssl" } else { n };
            packages.push(Package {
                name: n.into(),
                version: v.into(),
                arch: "amd64".into(),
                source: source.into(),
                source_version: None,
            });
        }
        let i = project.images.iter().find(|i| i.name == name)?;
        at = i.parent().map(str::to_string);
    }
    packages.sort();
    Some(Manifest {
        manager: Manager::Dpkg,
        distro: Some(Distro {
            id: "debian".into(),
            version: Some("12".into()),
        }),
        packages,
    })
}

/// The estate recorded: `base-linux` on [`OLD_OPENSSL`], then every image as locked.
fn recorded_estate() -> Project {
    let p = estate_copy();
    let lock = p.read("layer.lock");
    let locked = |n: &str| {
        lock.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("\"{n}=")))
            .and_then(|v| v.strip_suffix("\","))
            .unwrap_or_else(|| panic!("`{n}` is locked"))
            .to_string()
    };
    let current = locked("openssl");
    assert_eq!(current, locked("libssl3"));
    p.file("layer.lock", &lock.replace(&current, OLD_OPENSSL));
    let packages = |image: &str| manifest(p.root(), image);
    let record = |names: &[&str], at: &str| {
        record_images_holding(p.root(), None, None, names, at, &packages);
    };
    record(&["base-linux"], "2026-11-10T10:00:00Z");
    p.file("layer.lock", &lock);
    record(&[], "2026-11-20T10:00:00Z");
    p
}

fn run(p: &Project, args: &[String]) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    p.layer(&args)
}

#[test]
fn the_readme_s_package_and_audit_commands_run_on_the_example_estate() {
    let commands = readme_commands("## Packages, SBOMs and audits");
    let verbs: Vec<&str> = commands.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(verbs, ["packages", "packages", "sbom", "audit"]);
    assert_eq!(commands[0], ["packages", "base-linux"]);
    assert_eq!(
        commands[3],
        [
            "audit",
            "--osv",
            "doc/examples/osv",
            "--inventory",
            "doc/examples/inventory.csv"
        ]
    );
    let p = recorded_estate();

    // `layer packages base-linux`: the current build, as locked.
    let out = run(&p, &commands[0]).expect(0).stdout;
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        lines.contains(&vec!["openssl", "3.0.22-1~deb12u2", "amd64", "openssl"]),
        "{out}"
    );
    assert!(
        lines.contains(&vec!["libssl3", "3.0.22-1~deb12u2", "amd64", "openssl"]),
        "{out}"
    );

    // `layer packages --diff base-linux@1.4.0 base-linux@1.4.1`: the security update.
    let out = run(&p, &commands[1]).expect(0).stdout;
    assert!(
        out.starts_with(&format!(
            "~ libssl3 {OLD_OPENSSL} -> 3.0.22-1~deb12u2 (amd64)\n~ openssl {OLD_OPENSSL} -> 3.0.22-1~deb12u2 (amd64)\n0 added, 0 removed, 2 changed from base-linux 1.4.0-"
        )),
        "{out}"
    );

    // `layer sbom base-linux --format spdx-json -o base-linux.spdx.json`.
    run(&p, &commands[2]).expect(0);
    let spdx: Value =
        serde_json::from_str(&p.read(commands[2].last().unwrap())).expect("the SBOM is JSON");
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");

    // The audit: every build carries openssl before 3.0.99, so every instance of the
    // inventory runs an affected build.
    let out = run(&p, &commands[3]).expect(0).stdout;
    assert!(
        out.lines().any(|l| l.split_whitespace().eq([
            "base-linux",
            "1.4.0",
            "openssl",
            OLD_OPENSSL,
            "DSA-0000-1",
            "3.0.99-1~deb12u1"
        ])),
        "{out}"
    );
    assert!(
        out.contains("5 of 5 audited builds affected by 1 of 1 advisories"),
        "{out}"
    );
    let inventory = p.read("doc/examples/inventory.csv");
    let instances = inventory.lines().count() - 1;
    assert!(
        out.contains(&format!("\n{instances} instances to rebuild\n")),
        "{out}"
    );
    let mut json = commands[3].clone();
    json.extend(["--format".into(), "json".into(), "--exit-code".into()]);
    let v: Value = serde_json::from_str(&run(&p, &json).expect(1).stdout).unwrap();
    assert_eq!(v["instances"]["count"], instances);
    assert_eq!(v["affected"].as_array().unwrap().len(), 5, "{v}");
}
