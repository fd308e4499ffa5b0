//! The keys of the repository's own example estate (`images/`, `roles/`, `layer.toml`), deep
//! and shallow, as layer has computed them since the key schema was last changed. A refactor
//! that changes one changes what every user's cache holds: it would rebuild every image.
//!
//! When this fails: if you changed the example estate on purpose, put the new keys here (from
//! `layer hash` and `layer plan --strategy shallow --format json`); if you did not, a change
//! made keys differ, which needs a new `key::KEY_SCHEMA` and a line in the README.

use std::path::Path;
use std::process::Command;

fn keys(args: &[&str]) -> Vec<(String, String)> {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_layer"))
        .arg("-C")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")))
        .arg("--cache")
        .arg(cache.path())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let images = v.get("images").unwrap_or(&v).as_array().unwrap().clone();
    images
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["key"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pinned(rows: &[(&str, &str)]) -> Vec<(String, String)> {
    rows.iter()
        .map(|(n, k)| ((*n).to_string(), (*k).to_string()))
        .collect()
}

#[test]
fn the_example_estate_keeps_its_deep_keys() {
    assert_eq!(
        keys(&["hash", "--json"]),
        pinned(&[
            (
                "base-linux",
                "56a921b9a36c56994b5f2bbbcabb1d220cd2b7ff6cc6d215654f4b2a8ee3c15c"
            ),
            (
                "app-server",
                "bdb20b9616d71779f133797c00a33ed3d4ff56b82b8a982883fb42ebdc0f4b7d"
            ),
            (
                "catalog-service",
                "9197ef6bc6d12f15890e1cb5a7bfc22ee922933f128e9f7c42403b10b929f984"
            ),
            (
                "container-node",
                "529bfb7e1de13836d364d10277f5a2dcb77f2b978d56e019056a4fd66ab8ba67"
            ),
        ])
    );
}

/// The package list of an image is a set: its order changes nothing that is built.
#[test]
fn the_order_of_an_image_s_packages_does_not_change_its_key() {
    let p = crate::common::Project::estate();
    p.file(
        "images/base-linux.toml",
        "version = \"1.0\"\norigin = \"bb\"\nroles = [\"base\"]\npackages = [\"curl\", \"less\"]\n",
    );
    let before = p.layer(&["hash"]).expect(0).stdout;
    p.file(
        "images/base-linux.toml",
        "version = \"1.0\"\norigin = \"bb\"\nroles = [\"base\"]\npackages = [\"less\", \"curl\"]\n",
    );
    assert_eq!(p.layer(&["hash"]).expect(0).stdout, before);
}

#[test]
fn the_example_estate_keeps_its_shallow_keys() {
    assert_eq!(
        keys(&["plan", "--strategy", "shallow", "--format", "json"]),
        pinned(&[
            (
                "base-linux",
                "0179013bf5f105027860902dbee0bad18baacfcdeb07e58f0ae063527583cef0"
            ),
            (
                "app-server",
                "04ec06ebaf1df5e9305f9e985b115843f73c0d9bb72965688a51f4cf0dd78a1a"
            ),
            (
                "catalog-service",
                "795cbb18093c2dc470c9f52ebe6b1159be548441f658897fd1bdc95dc249547a"
            ),
            (
                "container-node",
                "7d01bcb601d70c662ad62962a77d172ff5bef9e4e5ae05b457bc131d1872b113"
            ),
        ])
    );
}
