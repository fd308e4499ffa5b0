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
        // What the fuzzer writes reads back the same.
        assert_eq!(Recipe::parse(&recipe.to_text()).unwrap(), recipe);
        let dir = tempfile::tempdir().unwrap();
        recipe.write(dir.path());
        let run = recipe.run(Path::new(env!("CARGO_BIN_EXE_layer")), dir.path(), LIMIT);
        assert!(!run.is_failure(), "{}: {}", path.display(), run.describe());
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

// ---------------------------------------------------------------------------------------------
// Declarations mutated at random: loading and planning never panic and end in bounded time.

/// One change to a declaration file: which file (an index, wrapped), where (a fraction of its
/// length, in 1/1000) and what (a byte written over, deleted, or a snippet inserted).
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u16, u8),
    Delete(usize, u16),
    Insert(usize, u16, &'static str),
}

/// Snippets that reach new paths of the loaders: names, references, nesting, odd values.
const SNIPPETS: &[&str] = &[
    "\nfrom = \"app\"\n",
    "\norigin = \"bb\"\n",
    "depends = [\"java\", \"web\", \"base\"]\n",
    "\n[vars]\nX = [1]\n",
    "[[[[[[[[[[",
    "\"\\u0000\"",
    "\n[secrets]\nS = { env = \"\" }\n",
    "\nroles = [\"web\", \"web\"]\n",
    "\nmax_age = \"99999999999d\"\n",
    "\nversion = \"1.2.3.4.5\"\n",
    "\n[origins.x]\nbusybox = \"/etc/shadow\"\n",
    "\n[origins.y]\ntar = \"../../x\"\n",
    "é\u{200b}",
];

const FILES: &[&str] = &[
    "layer.toml",
    "images/base-linux.toml",
    "images/app.toml",
    "images/svc.toml",
    "images/node.toml",
    "roles/java/role.toml",
];

fn mutation() -> impl proptest::strategy::Strategy<Value = Mutation> {
    use proptest::prelude::*;
    prop_oneof![
        (0..FILES.len(), 0..1000u16, any::<u8>()).prop_map(|(f, at, b)| Mutation::Set(f, at, b)),
        (0..FILES.len(), 0..1000u16).prop_map(|(f, at)| Mutation::Delete(f, at)),
        (0..FILES.len(), 0..1000u16, 0..SNIPPETS.len()).prop_map(|(f, at, s)| Mutation::Insert(
            f,
            at,
            SNIPPETS[s]
        )),
    ]
}

fn apply(p: &Project, m: &Mutation) {
    let (f, at) = match m {
        Mutation::Set(f, at, _) | Mutation::Delete(f, at) | Mutation::Insert(f, at, _) => {
            (FILES[*f], *at)
        }
    };
    let mut bytes = std::fs::read(p.path(f)).unwrap_or_default();
    let i = bytes.len() * usize::from(at) / 1000;
    match m {
        Mutation::Set(_, _, b) if i < bytes.len() => bytes[i] = *b,
        Mutation::Delete(_, _) if i < bytes.len() => {
            bytes.remove(i);
        }
        Mutation::Insert(_, _, s) => {
            bytes.splice(i..i, s.bytes());
        }
        _ => {}
    }
    std::fs::write(p.path(f), bytes).unwrap();
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 64, ..Default::default() })]

    #[test]
    fn mutated_declarations_load_and_plan_without_panic_in_bounded_time(
        mutations in proptest::collection::vec(mutation(), 1..6)
    ) {
        let p = Project::estate();
        p.record(&[]);
        for m in &mutations {
            apply(&p, m);
        }
        let started = std::time::Instant::now();
        // In the process: a panic fails the case with its input, shrunk.
        match layer::workspace::Workspace::open(p.root(), None, None) {
            Ok(ws) => {
                let plan = ws.plan(&layer::plan::Selection::default());
                proptest::prop_assert_eq!(plan.images.len(), ws.project.images.len());
            }
            Err(e) => {
                proptest::prop_assert!(matches!(e.exit_code(), 1 | 2), "{e}");
            }
        }
        proptest::prop_assert!(started.elapsed() < Duration::from_secs(20));
    }
}
