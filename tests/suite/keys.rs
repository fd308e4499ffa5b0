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
                "24453bbf63f2c8f5ea98c0b7a5d0f200c39edc6cf2ca01f7f6fe2da8dd88df3f"
            ),
            (
                "app-server",
                "bc4668b0cb28ef284298b850ca9e851634e3d7aba6540a7976ddbc35df7791d8"
            ),
            (
                "catalog-service",
                "e8f1da21ad6ed76781f918326e064db1d3f6ad8dc539435b8396e7db5d4db043"
            ),
            (
                "container-node",
                "8a761f3979b68f5670a572e7f7abfcb5c2425cb5950a9a78cdf2a86f9c850111"
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
                "2435c9af3d53a830dae618c873ed8dd57d2df28b1385030fd18e455e78441e6f"
            ),
            (
                "app-server",
                "c73fed6ee87bde05652a74bb3cbf3a51fd61932a8a6bcb4dc5d78c4a7d2bc693"
            ),
            (
                "catalog-service",
                "af5818fe17186f9ce0be5c16036f1d0dae595a8bc109c8cf70253f491d8ad259"
            ),
            (
                "container-node",
                "a06d8d36866f0f9ab9f29dde4fc96d72454d7e159e32e140a2038fa0f31a1bfc"
            ),
        ])
    );
}
