//! Hostile and huge projects: graphs deep enough to overflow a recursive walk, declaration
//! files that are not files, and every input the fuzzer (`examples/fuzz.rs`) found to crash or
//! hang `layer plan`, replayed from `tests/fixtures/hostile/`. Plans end, with exit 0 or 2,
//! and never by a signal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{redact, Project};
use crate::recipe::Recipe;

/// How long a plan may take before it counts as hung: generous for a debug build on a
/// loaded machine; the hangs found took forever, and `benches/deep.sh` holds the real target.
const LIMIT: Duration = Duration::from_secs(120);

/// The fixtures the fuzzer found.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile")
}

#[test]
fn every_fixture_plans_to_its_expected_end() {
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).unwrap();
        let recipe = Recipe::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let dir = tempfile::tempdir().unwrap();
        recipe.write(dir.path());
        let run = recipe.run(Path::new(env!("CARGO_BIN_EXE_layer")), dir.path(), LIMIT);
        assert!(
            run.matches(&recipe),
            "{}: expected exit {} with {:?}, got {}\n{}",
            path.display(),
            recipe.expect_code,
            recipe.expect_stderr,
            run.describe(),
            run.stderr
        );
        seen += 1;
    }
    assert!(seen >= 3, "fixtures found: {seen}");
}

#[test]
fn ten_thousand_roles_linked_by_depends() {
    let p = Project::new();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.o]\nid = \"ami-1\"\n\n[backends.sh]\nkind = \"command\"\ncommand = [\"true\"]\n",
    );
    let n = 10_000;
    for i in 0..n {
        let deps = if i == 0 {
            String::new()
        } else {
            format!("depends = [\"r{}\"]\n", i - 1)
        };
        p.file(&format!("roles/r{i}/role.toml"), &deps);
    }
    p.file(
        "images/top.toml",
        &format!(
            "origin = \"o\"\nbackend = \"sh\"\nroles = [\"r{}\"]\n",
            n - 1
        ),
    );
    let out = p.layer(&["plan", "--format", "json"]).expect(0);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let roles = plan["images"][0]["roles"].as_array().unwrap();
    assert_eq!(roles.len(), n);
    assert_eq!(roles[0], "r0");
    // Closed into a cycle, the same chain is one error with its whole path.
    p.file(
        "roles/r0/role.toml",
        &format!("depends = [\"r{}\"]\n", n - 1),
    );
    let out = p.layer(&["plan"]).expect(2);
    assert!(
        out.stderr
            .contains("roles depend on each other: r0 -> r9999 -> r9998 -> "),
        "{}",
        &out.stderr[..out.stderr.len().min(2000)]
    );
}

#[test]
fn a_cycle_of_ten_thousand_images() {
    let p = Project::new();
    let n = 10_000;
    for i in 0..n {
        p.file(
            &format!("images/i{i}.toml"),
            &format!("from = \"i{}\"\n", (i + 1) % n),
        );
    }
    let out = p.layer(&["plan"]).expect(2);
    assert!(
        out.stderr
            .contains("images are built from each other: i0 -> i1 -> i2 -> i3 -> "),
        "{}",
        &out.stderr[..out.stderr.len().min(2000)]
    );
    assert_eq!(redact(&p, &out.stderr).lines().count(), 2);
}
