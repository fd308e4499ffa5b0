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
                "6828d8fcf75683d6afb46da39233e63f7474cf2e3eb7a3c64fac8f47f410a392"
            ),
            (
                "app-server",
                "abb0743ea8e61655ab72788cc2d7c69838ce317d386cfdca40d6254222e35976"
            ),
            (
                "catalog-service",
                "3f66fd99be7f93ca7667fd2ab73dc43da51eb12dca931a717262319b000fa8c7"
            ),
            (
                "container-node",
                "40ac10be95938f2b48ed829c6e3ef3e053badecedc242f4190c57b7680fb2045"
            ),
        ])
    );
}

#[test]
fn the_example_estate_keeps_its_shallow_keys() {
    assert_eq!(
        keys(&["plan", "--strategy", "shallow", "--format", "json"]),
        pinned(&[
            (
                "base-linux",
                "634e912750597697443170058e12b6a3030ab13ea7dbb6b80019489e6849b979"
            ),
            (
                "app-server",
                "a3cfdfa9e351967d09d632029f42f10badbf648d2e4f1ed772095e3b3fe2bdb6"
            ),
            (
                "catalog-service",
                "5b255653ae3fb4ba024be7ce87a3b93596cd9b070ec0134fa2b7df1295c1f7c1"
            ),
            (
                "container-node",
                "f0899dde5fd842e1f63d75fa99844be62963450d54e9345623736ad8c64426df"
            ),
        ])
    );
}
