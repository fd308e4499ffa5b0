//! The keys of the repository's own example estate (`images/`, `roles/`, `layer.toml`), deep
//! and shallow, as layer has computed them since the key schema was last changed. A refactor
//! that changes one changes what every user's cache holds: it would rebuild every image.
//!
//! When this fails: if you changed the example estate on purpose, put the new keys here (from
//! `layer hash` and `layer plan --strategy shallow --format json`); if you did not, a change
//! made keys differ, which needs a new `key::KEY_SCHEMA` and a line in the README.

use std::path::Path;
use std::process::Command;

use crate::common::run_ok;

fn keys(args: &[&str]) -> Vec<(String, String)> {
    let cache = tempfile::tempdir().unwrap();
    let out = run_ok(
        Command::new(env!("CARGO_BIN_EXE_layer"))
            .arg("-C")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")))
            .arg("--cache")
            .arg(cache.path())
            .args(args),
    );
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
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
                "f5fe5f78f01fb7cb5ad89ab0b3eb5cd41f22f528011b23f552fbc3bf754b406b"
            ),
            (
                "app-server",
                "ef9341c01322638c9b6a4dad706b5381621f8e3b410fcb3656222fd38c7fb3f6"
            ),
            (
                "catalog-service",
                "9b1f7d3019f78f1e482b40db3451c2242011213a61c1f1cccd5ee5e9c2fac6e4"
            ),
            (
                "container-node",
                "0d7219bf46d7b8d5f828074f218cd3e9f3551fdd97114901156fd631af2114d9"
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
                "87ce31726929e31cd8006ebf6be63cc34215586b1354bd3c577528566f110ea0"
            ),
            (
                "app-server",
                "167269bd8e4e16d292f411723bd99f175ea2bdbb32271135cedd47ff6132003a"
            ),
            (
                "catalog-service",
                "74f9ab6e0c3edd0190d43d4774d89ffac3a70590247ec31edd24f18d00a6e26c"
            ),
            (
                "container-node",
                "00acde827d3c9f3268fce7ef5ac04a960583fc640a8f28c82d94e36019c755ce"
            ),
        ])
    );
}
