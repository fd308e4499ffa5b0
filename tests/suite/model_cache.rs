//! The parsed declarations cached (`cache/model-cache`): reused only while nothing they were
//! parsed from changed, so a cached model never hides an edit, and a damaged or foreign one
//! is never trusted.

use std::time::Duration;

use crate::common::Project;

/// Lets the project's files age past the racy window (2 s), so that the next plan saves the
/// model it parses.
fn age() {
    std::thread::sleep(Duration::from_millis(2100));
}

fn build_names(p: &Project) -> Vec<String> {
    p.actions(&[])
        .into_iter()
        .filter(|(_, a)| a == "build")
        .map(|(n, _)| n)
        .collect()
}

/// A recorded estate whose model cache is saved: every image fresh.
fn cached_estate() -> Project {
    let p = Project::estate();
    p.record(&[]);
    age();
    assert!(build_names(&p).is_empty(), "all fresh after recording");
    assert!(p.path("cache/model-cache").is_file(), "the model is saved");
    p
}

#[test]
fn a_changed_role_file_between_two_plans_is_seen() {
    let p = cached_estate();
    let before = std::fs::read(p.path("cache/model-cache")).unwrap();
    p.file(
        "roles/java/role.toml",
        "depends = [\"base\"]\npackages = [\"openjdk\", \"maven\"]\n",
    );
    assert_eq!(build_names(&p), ["app", "svc"]);
    // A role added (a folder of `roles/`) is seen too, once an image applies it.
    p.exec("roles/extra/provision.sh", "#!/bin/sh\necho extra\n");
    p.file(
        "images/node.toml",
        "version = \"1.0\"\nfrom = \"base-linux\"\nroles = [\"web\", \"extra\"]\n",
    );
    assert_eq!(build_names(&p), ["app", "node", "svc"]);
    age();
    assert_eq!(build_names(&p), ["app", "node", "svc"]);
    let after = std::fs::read(p.path("cache/model-cache")).unwrap();
    assert_ne!(
        before, after,
        "the model is saved again once the edits aged"
    );
    assert_eq!(build_names(&p), ["app", "node", "svc"], "and reused");
}

#[test]
fn an_image_edit_that_keeps_size_and_mtime_is_seen_by_its_ctime() {
    let p = cached_estate();
    let text = std::fs::read_to_string(p.path("images/app.toml")).unwrap();
    let edited = text.replace("PORT = \"8080\"", "PORT = \"8081\"");
    assert_ne!(edited, text);
    assert_eq!(edited.len(), text.len());
    p.edit_keeping_mtime("images/app.toml", &edited);
    assert_eq!(build_names(&p), ["app", "svc"]);
    let plan = p.layer(&["plan"]).expect(0).stdout;
    assert!(plan.contains("declaration changed: vars.PORT"), "{plan}");
}

#[test]
fn a_damaged_or_foreign_model_cache_is_ignored() {
    let p = cached_estate();
    let good = std::fs::read(p.path("cache/model-cache")).unwrap();
    let expected = p.layer(&["plan", "--format", "json"]).expect(0).stdout;

    // One flipped bit anywhere fails the checksum: the declarations are read again, and the
    // model saved again.
    for at in [0, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 1;
        std::fs::write(p.path("cache/model-cache"), &bad).unwrap();
        assert_eq!(
            p.layer(&["plan", "--format", "json"]).expect(0).stdout,
            expected
        );
        assert_eq!(std::fs::read(p.path("cache/model-cache")).unwrap(), good);
    }
    std::fs::write(p.path("cache/model-cache"), b"garbage").unwrap();
    assert_eq!(
        p.layer(&["plan", "--format", "json"]).expect(0).stdout,
        expected
    );

    // Another project's model, well formed and checksummed, is not this one's.
    let other = Project::estate();
    other.file(
        "images/app.toml",
        "version = \"2.0\"\nfrom = \"base-linux\"\nroles = [\"web\"]\n",
    );
    age();
    other.layer(&["plan"]).expect(0);
    std::fs::copy(other.path("cache/model-cache"), p.path("cache/model-cache")).unwrap();
    assert_eq!(
        p.layer(&["plan", "--format", "json"]).expect(0).stdout,
        expected
    );
}
