//! Bugs of issue 13 that need real `rootfs` builds (root and a static busybox): an image
//! without tests is not `tested`, `export -o -` streams, an OCI export's bytes do not depend on
//! the build's release status and carry the tags registries expect, and a build whose tests
//! changed since it was tested says so.

use crate::common::{json, run_ok, Project};
use crate::needs::{self, Need};

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// `plain` (no tests) and `checked` (a role test) on a busybox origin.
fn project() -> Project {
    let p = Project::on_busybox(&needs::busybox().expect("checked"), "");
    p.exec("roles/r/provision.sh", "set -eu\necho hi > /etc/hi\n");
    p.file(
        "images/plain.toml",
        "version = \"1.0\"\norigin = \"bb\"\nroles = [\"r\"]\n",
    );
    p.exec("roles/t/provision.sh", "set -eu\necho t > /etc/t\n");
    p.file("roles/t/tests/hi.sh", "grep -q hi /etc/hi\n");
    p.file(
        "images/checked.toml",
        "version = \"2.1\"\nfrom = \"plain\"\nroles = [\"t\"]\n",
    );
    p
}

fn status(p: &Project, image: &str) -> String {
    let v = json(&p.layer(&["versions", image, "--json"]).expect(0));
    v[0]["status"].as_str().unwrap().to_string()
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn an_image_without_tests_stays_a_candidate() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = project();
    p.layer(&["build", "plain", "--no-progress"]).expect(0);
    let out = p.layer(&["test", "plain", "--json"]).expect(0);
    let r = &json(&out)[0];
    assert_eq!(r["result"], "no-tests", "{}", out.stdout);
    assert_eq!(r["release_status"], "candidate");
    assert!(
        out.stderr.contains("plain") && out.stderr.contains("no tests"),
        "{}",
        out.stderr
    );
    assert_eq!(status(&p, "plain"), "candidate");
    let out = p.layer(&["promote", "plain"]).expect(2);
    out.stderr_has("untested candidate");
}

/// `layer ARGS` with stdout as bytes.
fn layer_bytes(p: &Project, args: &[&str]) -> (i32, Vec<u8>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_layer"))
        .args(args)
        .current_dir(p.root())
        .env_remove("LAYER_CACHE")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn export_to_dash_streams_a_tar_and_refuses_folders() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = project();
    p.layer(&["build", "plain", "--no-progress"]).expect(0);
    let (code, tar, stderr) = layer_bytes(&p, &["export", "plain", "--format", "tar", "-o", "-"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!p.path("-").exists(), "no file named `-`");
    assert_eq!(&tar[257..262], b"ustar", "a tar on stdout");
    let mut listing = Command::new("tar")
        .arg("-tf")
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    listing.stdin.take().unwrap().write_all(&tar).unwrap();
    let names = String::from_utf8(listing.wait_with_output().unwrap().stdout).unwrap();
    assert!(names.lines().any(|l| l == "./etc/hi"), "{names}");
    // A layout is a folder: no stream.
    let (code, out, stderr) = layer_bytes(&p, &["export", "plain", "--format", "oci", "-o", "-"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(out.is_empty());
    assert!(
        stderr.contains("`oci`") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(!p.path("-").exists());
}

/// Every file of an OCI layout, relative to it, with its bytes.
fn layout(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(dir).unwrap().display().to_string(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox", missing = "skopeo"),
    ignore = "needs root, a static busybox and skopeo: apt-get install busybox-static skopeo"
)]
fn an_oci_export_is_the_same_bytes_whatever_the_release_status_and_is_tagged() {
    needs::check(&[Need::Root, Need::Busybox, Need::Skopeo]);
    let p = project();
    p.layer(&["build", "--no-progress"]).expect(0);
    p.layer(&["export", "checked", "--format", "oci", "-o", "a"])
        .expect(0);
    p.layer(&["test", "checked"]).expect(0);
    p.layer(&["promote", "checked"]).expect(0);
    p.layer(&["export", "checked", "--format", "oci", "-o", "b"])
        .expect(0);
    assert!(layout(&p.path("a")) == layout(&p.path("b")), "same bytes");

    let index: Value = serde_json::from_slice(&fs::read(p.path("a/index.json")).unwrap()).unwrap();
    let refs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    let version = json(&p.layer(&["versions", "checked", "--json"]).expect(0))[0]["version"]
        .as_str()
        .unwrap()
        .to_string();
    let full = format!("checked:{version}");
    assert_eq!(
        refs,
        [
            version.as_str(),
            full.as_str(),
            "checked:2.1",
            "checked:latest"
        ]
    );
    for tag in ["latest", "2.1"] {
        run_ok(
            Command::new("skopeo")
                .arg("inspect")
                .arg(format!("oci:{}:checked:{tag}", p.path("a").display())),
        );
    }
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn a_build_whose_tests_changed_since_it_was_tested_says_so() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = project();
    p.layer(&["build", "--no-progress"]).expect(0);
    p.layer(&["test", "checked"]).expect(0);
    let list = json(&p.layer(&["list", "--json"]).expect(0));
    let checked = |list: &Value| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == "checked")
            .unwrap()
            .clone()
    };
    assert_eq!(checked(&list)["tests_changed"], false);

    // A new role test: no rebuild, but the `tested` status is of other tests.
    p.file("roles/t/tests/t.sh", "grep -q t /etc/t\n");
    assert!(
        p.actions(&[]).iter().all(|(_, a)| a == "fresh"),
        "no rebuild"
    );
    let list = json(&p.layer(&["list", "--json"]).expect(0));
    assert_eq!(checked(&list)["tests_changed"], true);
    let text = p.layer(&["list"]).expect(0).stdout;
    assert!(text.contains("tests changed"), "{text}");
    let out = p.layer(&["test", "checked"]).expect(0);
    out.stderr_has("tests changed since it was last tested");
    let list = json(&p.layer(&["list", "--json"]).expect(0));
    assert_eq!(checked(&list)["tests_changed"], false);
}
