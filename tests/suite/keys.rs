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
                "f45562d37b355cacda1726bc949961c4e421e3b89ddb02caed9c94f845ccf683"
            ),
            (
                "app-server",
                "a8da1cd68d29b493ddd5c999ef4b52c15efd1ec0157721b880492d48419fe5a1"
            ),
            (
                "catalog-service",
                "404723d95df5a0a73a068fd0b394ca96ea1057f2b245596a5e1ca1767bbdd6f6"
            ),
            (
                "container-node",
                "43a44e74d059f88ae19a0aee1fe823c98cb603b94725d500138fba7fd8c8de40"
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
                "3b0232f3ffca633ae5094cd97863d8bf63328fe061b064d27df2193b97921323"
            ),
            (
                "app-server",
                "d0ef7616892ae31dd65ad53932297412cb963174ccd01a956ede92975ecc3c50"
            ),
            (
                "catalog-service",
                "018cf354bc33d737c3d8027beceddbc4d3648174d6c066937934c41518b2be79"
            ),
            (
                "container-node",
                "9f404f2204d31b38a6715d97f1e0e65b53ff88bb12f57c04e02819be3f2629fd"
            ),
        ])
    );
}
