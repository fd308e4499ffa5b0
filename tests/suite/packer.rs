//! The `packer` backend with Debian's real `packer` (installed by the README's test command):
//! HCL2 templates with the `file` builder and `shell-local` provisioners that apply layer's
//! bundle into a folder of the test project. Without `packer` on PATH, `cargo test` lists the
//! tests that run it as ignored with that reason, and under `CI` they fail (see `needs`).

use crate::common;
use crate::common::{Output, Project};
use crate::needs::{self, Need};

use std::fs;
use std::path::Path;

use layer::cache::Cache;
use serde_json::Value;

const TEMPLATE: &str = r#"
variable "source_image" { type = string }
variable "image_name" { type = string }
variable "image_version" { type = string }
variable "layer_key" { type = string }
variable "bundle_dir" { type = string }
variable "GREETING" {
  type    = string
  default = "none"
}
variable "token" {
  type    = string
  default = env("API_TOKEN")
}

source "file" "image" {
  content = "${var.image_name} ${var.image_version} on ${var.source_image}"
  target  = "out/${var.image_name}.img"
}

build {
  sources = ["source.file.image"]
  provisioner "shell-local" {
    inline = [
      "mkdir -p out/root-${var.image_name}",
      "sh ${var.bundle_dir}/apply.sh out/root-${var.image_name}",
      "echo ${var.image_name} from=${var.source_image} greeting=${var.GREETING} >> out/marks",
      "echo token is ${var.token}",
    ]
  }
}
"#;

/// base <- app <- svc, built with Packer; each role ships a file.
fn chain() -> Project {
    let p = Project::new();
    p.file(
        "layer.toml",
        "[project]\nbackend = \"local\"\n\n[origins.ubuntu]\nid = \"ami-0origin\"\n\n[backends.local]\nkind = \"packer\"\ntemplate = \"packer/local.pkr.hcl\"\n",
    );
    p.file("packer/local.pkr.hcl", TEMPLATE);
    p.file(
        "images/base.toml",
        "version = \"1.0\"\norigin = \"ubuntu\"\nroles = [\"base\"]\n[vars]\nGREETING = \"hello\"\n[secrets]\nAPI_TOKEN = { env = \"LAYER_TEST_TOKEN\" }\n",
    );
    p.file(
        "images/app.toml",
        "version = \"2.0\"\nfrom = \"base\"\nroles = [\"app\"]\n",
    );
    p.file(
        "images/svc.toml",
        "version = \"3.0\"\nfrom = \"app\"\nroles = [\"svc\"]\n",
    );
    for role in ["base", "app", "svc"] {
        p.file(
            &format!("roles/{role}/files/etc/{role}.conf"),
            &format!("{role}\n"),
        );
    }
    p
}

fn build(p: &Project, args: &[&str]) -> Output {
    let mut all = vec!["build", "--json", "--no-progress"];
    all.extend_from_slice(args);
    p.layer_env(&all, &[("LAYER_TEST_TOKEN", "tok-5ecret-value")])
}

fn actions(out: &Output) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", out.stdout, out.stderr));
    common::name_actions(&v)
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
#[cfg_attr(missing = "packer", ignore = "needs `packer`: apt-get install packer")]
fn a_chain_builds_with_packer_is_cached_and_rebuilds_only_what_changed() {
    needs::check(&[Need::Packer]);
    let p = chain();
    let out = build(&p, &[]).expect(0);
    assert_eq!(
        actions(&out),
        pairs(&[("base", "built"), ("app", "built"), ("svc", "built")])
    );
    // Each image applied its own bundle: deep, so only its own role.
    assert_eq!(p.read("out/root-base/etc/base.conf"), "base\n");
    assert_eq!(p.read("out/root-app/etc/app.conf"), "app\n");
    assert!(!p.path("out/root-app/etc/base.conf").exists());
    assert_eq!(p.read("out/root-svc/etc/svc.conf"), "svc\n");
    // Variables: the origin's id for base, the parent's artifact id below; image vars.
    let marks = p.read("out/marks");
    assert!(
        marks.contains("base from=ami-0origin greeting=hello"),
        "{marks}"
    );
    assert!(marks.contains("app from=File greeting=none"), "{marks}");
    // The record keeps Packer's artifact id and where it lives.
    let cache = Cache::new(p.root().canonicalize().unwrap().join("cache"));
    let r = cache.latest("app").unwrap();
    assert_eq!(r.artifact.id, "File");
    assert_eq!(r.artifact.remote.as_deref(), Some("packer.file"));
    assert!(r.artifact.path.is_none());
    // The secret reached Packer through its environment, and is masked in the log.
    let log = fs::read_to_string(
        cache
            .dir()
            .join("logs/base")
            .read_dir()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap();
    assert!(log.contains("token is [secret]"), "{log}");
    assert!(!log.contains("tok-5ecret-value"));

    // Nothing to do the second time.
    let out = build(&p, &[]).expect(0);
    assert_eq!(
        actions(&out),
        pairs(&[("base", "fresh"), ("app", "fresh"), ("svc", "fresh")])
    );
    // A change to app's role rebuilds app and svc.
    p.file("roles/app/files/etc/app.conf", "app v2\n");
    let out = build(&p, &[]).expect(0);
    assert_eq!(
        actions(&out),
        pairs(&[("base", "fresh"), ("app", "built"), ("svc", "built")])
    );
    assert_eq!(p.read("out/root-app/etc/app.conf"), "app v2\n");
}

#[test]
#[cfg_attr(missing = "packer", ignore = "needs `packer`: apt-get install packer")]
fn a_failing_packer_build_shows_its_last_lines_and_records_nothing() {
    needs::check(&[Need::Packer]);
    let p = chain();
    p.file(
        "packer/local.pkr.hcl",
        &TEMPLATE.replace(
            "\"echo token is ${var.token}\",",
            "\"echo token is ${var.token}\", \"echo the disk is full >&2\", \"exit 7\",",
        ),
    );
    let out = build(&p, &[]).expect(1);
    out.stderr_has("the disk is full");
    out.stderr_has("`packer build packer/local.pkr.hcl` exited with status 1");
    let cache = Cache::new(p.root().canonicalize().unwrap().join("cache"));
    assert!(cache.latest("base").is_none());
}

#[test]
fn a_packer_run_without_an_artifact_id_fails_and_records_nothing() {
    // A stand-in `packer` that succeeds without an artifact: no real Packer is needed.
    let p = chain();
    let bin = p.path("bin");
    fs::create_dir_all(&bin).unwrap();
    p.exec(
        "bin/packer",
        "#!/bin/sh\necho '1,,ui,say,==> null: nothing to build'\necho '1,,ui,say,Builds finished but no artifacts were created.'\nexit 0\n",
    );
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let out = p
        .layer_env(
            &["build", "base", "--no-progress"],
            &[("PATH", &path), ("LAYER_TEST_TOKEN", "x-token-1")],
        )
        .expect(1);
    out.stderr_has("succeeded but printed no artifact id");
    out.stderr_has("nothing to build");
    let cache = Cache::new(p.root().canonicalize().unwrap().join("cache"));
    assert!(cache.latest("base").is_none());
}

#[test]
fn packer_missing_from_path_is_an_error_before_any_build() {
    let p = chain();
    let empty = tempfile::tempdir().unwrap();
    let out = p
        .layer_env(
            &["build", "--no-progress"],
            &[
                ("PATH", &empty.path().display().to_string()),
                ("LAYER_TEST_TOKEN", "x-token-1"),
            ],
        )
        .expect(2);
    out.stderr_has(
        "`base` cannot be built: backend `local` runs Packer, and `packer` is not on PATH",
    );
    out.stderr_has("apt-get install packer");
    assert!(!Path::new(&p.path("cache/records")).exists());
}
