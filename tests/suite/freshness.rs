//! Freshness told as stories: record a build, change one input, see what the plan says.

use crate::common::{now_rfc3339, Project};
use layer::model::Strategy;
use serde_json::json;

fn build_names(p: &Project) -> Vec<String> {
    names_with(p, &[], "build")
}

fn names_with(p: &Project, extra: &[&str], action: &str) -> Vec<String> {
    p.actions(extra)
        .into_iter()
        .filter(|(_, a)| a == action)
        .map(|(n, _)| n)
        .collect()
}

/// The estate, recorded as built: every image fresh.
fn built_estate() -> Project {
    let p = Project::estate();
    p.record(&[]);
    assert!(build_names(&p).is_empty(), "all fresh after recording");
    p
}

fn parent_changed(parent: &str) -> serde_json::Value {
    json!([{"kind": "parent-changed", "parent": parent}])
}

/// The parent is built again under the key it has (its record lost, expired, forced): the
/// child's inputs are the same, it stands on an older build.
fn parent_rebuilt(parent: &str) -> serde_json::Value {
    json!([{"kind": "parent-rebuilt", "parent": parent}])
}

fn role_changed(role: &str, paths: &[&str]) -> serde_json::Value {
    json!([{"kind": "role-changed", "role": role, "paths": paths}])
}

fn build(reasons: serde_json::Value) -> (String, serde_json::Value) {
    ("build".to_string(), reasons)
}

fn fresh() -> (String, serde_json::Value) {
    ("fresh".to_string(), json!([]))
}

// ---------------------------------------------------------------------------------------------
// Role files.

#[test]
fn a_recorded_estate_is_fresh_and_a_role_edit_rebuilds_its_images_and_descendants() {
    let p = Project::estate();
    assert_eq!(build_names(&p), ["base-linux", "app", "node", "svc"]);
    p.record(&[]);
    assert!(build_names(&p).is_empty());

    p.file("roles/java/provision.sh", "#!/bin/sh\necho java 21\n");
    let plan = p.plan_json(&[]);
    let images = plan["images"].as_array().unwrap();
    let app = images.iter().find(|i| i["name"] == "app").unwrap();
    assert_eq!(app["action"], "build");
    assert_eq!(
        app["reasons"],
        serde_json::json!([{"kind": "role-changed", "role": "java", "paths": ["roles/java/provision.sh"]}])
    );
    let svc = images.iter().find(|i| i["name"] == "svc").unwrap();
    assert_eq!(
        svc["reasons"],
        serde_json::json!([{"kind": "parent-changed", "parent": "app"}])
    );
    assert_eq!(svc["wave"], 1);
    assert_eq!(build_names(&p), ["app", "svc"]);
}

#[test]
fn deep_a_base_role_edit_makes_every_descendant_parent_changed() {
    let p = built_estate();
    p.file("roles/base/files/etc/motd", "welcome, again\n");
    assert_eq!(
        p.verdict(&[], "base-linux"),
        build(role_changed("base", &["roles/base/files/etc/motd"]))
    );
    assert_eq!(p.verdict(&[], "app"), build(parent_changed("base-linux")));
    assert_eq!(p.verdict(&[], "node"), build(parent_changed("base-linux")));
    assert_eq!(p.verdict(&[], "svc"), build(parent_changed("app")));
    let waves: Vec<_> = p.plan_json(&[])["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].clone(), i["wave"].clone()))
        .collect();
    assert_eq!(
        waves,
        [
            (json!("base-linux"), json!(0)),
            (json!("app"), json!(1)),
            (json!("node"), json!(1)),
            (json!("svc"), json!(2)),
        ]
    );
}

#[test]
fn shallow_a_role_edit_names_the_role_in_every_image_whose_chain_applies_it() {
    let p = Project::estate();
    p.record_with(Strategy::Shallow, &[]);
    let shallow = ["--strategy", "shallow"];
    assert!(names_with(&p, &shallow, "build").is_empty());
    // The deep plan does not reuse shallow records.
    assert_eq!(build_names(&p).len(), 4);

    // In shallow builds every image applies the roles of its whole chain.
    let app = p.planned(&shallow, "app");
    assert_eq!(app["roles"], json!(["base", "java"]));
    assert_eq!(
        p.planned(&shallow, "svc")["roles"],
        json!(["base", "java", "web"])
    );

    p.file("roles/java/provision.sh", "#!/bin/sh\necho java 21\n");
    let java = role_changed("java", &["roles/java/provision.sh"]);
    assert_eq!(p.verdict(&shallow, "base-linux"), fresh());
    assert_eq!(p.verdict(&shallow, "app"), build(java.clone()));
    assert_eq!(p.verdict(&shallow, "svc"), build(java));
    assert_eq!(p.verdict(&shallow, "node"), fresh());
    // No image waits for another in shallow builds.
    assert_eq!(p.planned(&shallow, "svc")["wave"], 0);
}

#[test]
fn shallow_from_the_project_file_a_base_role_edit_rebuilds_everything_in_wave_0() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\nstrategy = \"shallow\"\n\n[origins.bb]\ntar = \"origins/base.tar\"\n",
    );
    p.record(&[]);
    assert!(build_names(&p).is_empty());
    p.file("roles/base/files/etc/motd", "welcome, again\n");
    let plan = p.plan_json(&[]);
    assert_eq!(plan["strategy"], "shallow");
    for img in plan["images"].as_array().unwrap() {
        assert_eq!(img["action"], "build", "{img}");
        assert_eq!(
            img["reasons"],
            role_changed("base", &["roles/base/files/etc/motd"]),
            "{img}"
        );
        assert_eq!(img["wave"], 0, "{img}");
    }
}

#[test]
fn switching_strategy_gives_strategy_changed_and_nothing_that_did_not_change() {
    let p = built_estate();
    let shallow = ["--strategy", "shallow"];
    let strategy = json!([{"kind": "strategy-changed", "from": "deep", "to": "shallow"}]);
    for name in ["base-linux", "app", "node", "svc"] {
        assert_eq!(p.verdict(&shallow, name), build(strategy.clone()), "{name}");
    }
    p.file(
        "layer.toml",
        "[project]\nstrategy = \"shallow\"\n\n[origins.bb]\ntar = \"origins/base.tar\"\n",
    );
    let explain = p.layer(&["explain", "svc"]).expect(0).stdout;
    assert!(
        explain.contains("  strategy changed from deep to shallow\n"),
        "{explain}"
    );
    assert!(!explain.contains("origin"), "{explain}");
    assert!(!explain.contains("chain"), "{explain}");
}

#[test]
fn a_mode_change_alone_makes_the_image_stale_and_explain_says_so() {
    let p = built_estate();
    p.chmod("roles/web/provision.sh", 0o644);
    let web = role_changed("web", &["roles/web/provision.sh"]);
    assert_eq!(p.verdict(&[], "node"), build(web.clone()));
    assert_eq!(p.verdict(&[], "svc"), build(web));
    assert_eq!(build_names(&p), ["node", "svc"]);
    let explain = p.layer(&["explain", "node"]).expect(0).stdout;
    assert!(
        explain.contains("role `web`: `roles/web/provision.sh` is no longer executable"),
        "{explain}"
    );
}

#[test]
fn touching_files_or_rewriting_the_same_bytes_keeps_images_fresh() {
    let p = built_estate();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    for rel in [
        "roles/java/provision.sh",
        "roles/base/files/etc/motd",
        "origins/base.tar",
        "images/app.toml",
    ] {
        let f = std::fs::File::options()
            .write(true)
            .open(p.path(rel))
            .unwrap();
        f.set_modified(old).unwrap();
    }
    assert!(build_names(&p).is_empty());
    let same = p.read("roles/web/provision.sh");
    p.file("roles/web/provision.sh", &same);
    p.chmod("roles/web/provision.sh", 0o755);
    assert!(build_names(&p).is_empty());
}

#[test]
fn a_symlink_retarget_makes_the_image_stale() {
    let p = Project::estate();
    p.symlink("/usr/share/zoneinfo/UTC", "roles/base/files/etc/localtime");
    p.record(&[]);
    assert!(build_names(&p).is_empty());
    p.symlink(
        "/usr/share/zoneinfo/Europe/Paris",
        "roles/base/files/etc/localtime",
    );
    assert_eq!(
        p.verdict(&[], "base-linux"),
        build(role_changed("base", &["roles/base/files/etc/localtime"]))
    );
    let explain = p.layer(&["explain", "base-linux"]).expect(0).stdout;
    assert!(
        explain.contains("`roles/base/files/etc/localtime` now links to `/usr/share/zoneinfo/Europe/Paris` (was `/usr/share/zoneinfo/UTC`)"),
        "{explain}"
    );
}

#[test]
fn a_symlink_pointing_outside_the_role_is_hashed_as_a_link_not_read_through() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "one").unwrap();
    let p = Project::estate();
    p.symlink(
        outside.path().join("secret").to_str().unwrap(),
        "roles/web/files/secret",
    );
    p.record(&[]);
    std::fs::write(outside.path().join("secret"), "two").unwrap();
    assert!(build_names(&p).is_empty());
}

#[test]
fn adding_or_removing_a_role_file_makes_the_image_stale_and_explain_names_it() {
    let p = built_estate();
    p.file("roles/web/tls.sh", "true\n");
    p.remove("roles/web/provision.sh");
    let web = role_changed("web", &["roles/web/provision.sh", "roles/web/tls.sh"]);
    assert_eq!(p.verdict(&[], "node"), build(web.clone()));
    assert_eq!(p.verdict(&[], "svc"), build(web));
    let explain = p.layer(&["explain", "node"]).expect(0).stdout;
    assert!(
        explain.contains("role `web`: `roles/web/provision.sh` removed"),
        "{explain}"
    );
    assert!(
        explain.contains("role `web`: `roles/web/tls.sh` added"),
        "{explain}"
    );
}

#[test]
fn a_role_toml_edit_is_a_role_change() {
    let p = built_estate();
    p.file(
        "roles/java/role.toml",
        "depends = [\"base\"]\npackages = [\"openjdk-21\"]\n",
    );
    assert_eq!(
        p.verdict(&[], "app"),
        build(role_changed("java", &["roles/java/role.toml"]))
    );
    assert_eq!(p.verdict(&[], "svc"), build(parent_changed("app")));
}

/// Package lists are sets and `role.toml` is keyed as what it declares: reordering or
/// repeating packages, a comment or another key order rebuild nothing; a new package does.
#[test]
fn package_order_duplicates_and_comments_rebuild_nothing_and_a_new_package_rebuilds_the_role() {
    let p = Project::estate();
    let app = "version = \"2.0\"\nfrom = \"base-linux\"\nroles = [\"java\"]\npackages = [\"curl\", \"less\"]\n[vars]\nPORT = \"8080\"\n";
    p.file("images/app.toml", app);
    p.file(
        "roles/java/role.toml",
        "depends = [\"base\"]\npackages = [\"openjdk\", \"maven\"]\n",
    );
    p.record(&[]);
    p.file(
        "roles/java/role.toml",
        "# the JDK and its build tool\npackages = [\n  \"maven\",\n  \"openjdk\", \"maven\",  # twice\n]\ndepends = [\"base\"]\n",
    );
    p.file(
        "images/app.toml",
        &app.replace(
            "[\"curl\", \"less\"]",
            "[\"less\", \"curl\", \"less\"] # a set",
        ),
    );
    assert!(build_names(&p).is_empty(), "{}", p.plan_json(&[]));

    p.file(
        "roles/java/role.toml",
        "depends = [\"base\"]\npackages = [\"openjdk\", \"maven\", \"ant\"]\n",
    );
    assert_eq!(
        p.verdict(&[], "app"),
        build(role_changed("java", &["roles/java/role.toml"]))
    );
    assert_eq!(p.verdict(&[], "svc"), build(parent_changed("app")));
    assert_eq!(build_names(&p), ["app", "svc"]);
    let explain = p.layer(&["explain", "app"]).expect(0).stdout;
    assert!(
        explain.contains("role `java`: `packages` in `roles/java/role.toml` changed: [\"maven\",\"openjdk\"] -> [\"ant\",\"maven\",\"openjdk\"]"),
        "{explain}"
    );
}

// ---------------------------------------------------------------------------------------------
// Declarations and origins.

fn declaration_changed(fields: &[&str]) -> serde_json::Value {
    json!([{"kind": "declaration-changed", "fields": fields}])
}

#[test]
fn declaration_fields_that_change_the_build_are_named() {
    for (edit, fields) in [
        (
            "version = \"2.0\"\nfrom = \"base-linux\"\nroles = [\"java\"]\npackages = [\"curl\"]\n[vars]\nPORT = \"8080\"\n",
            &["packages"][..],
        ),
        (
            "version = \"2.0\"\nfrom = \"base-linux\"\nroles = [\"java\"]\n[vars]\nPORT = \"9090\"\n",
            &["vars.PORT"][..],
        ),
        (
            "version = \"2.1\"\nfrom = \"base-linux\"\nroles = [\"java\"]\n[vars]\nPORT = \"8080\"\n",
            &["version"][..],
        ),
        (
            "version = \"2.1\"\nfrom = \"base-linux\"\nroles = [\"java\"]\n[vars]\nPORT = \"8080\"\nDEBUG = \"1\"\n",
            &["version", "vars.DEBUG"][..],
        ),
    ] {
        let p = built_estate();
        p.file("images/app.toml", edit);
        assert_eq!(
            p.verdict(&[], "app"),
            build(declaration_changed(fields)),
            "{edit}"
        );
        assert_eq!(p.verdict(&[], "svc"), build(parent_changed("app")), "{edit}");
        assert_eq!(p.verdict(&[], "node"), fresh(), "{edit}");
    }
}

#[test]
fn description_tags_tests_max_age_secrets_comments_and_key_order_do_not_change_the_key() {
    let p = built_estate();
    let before = p.layer(&["hash"]).expect(0).stdout;
    // Comments, key order and the fields that describe, age or test an artifact.
    p.file(
        "images/app.toml",
        "# the application server\n\
         description = \"Application server\"\n\
         roles = [\"java\"]\n\
         max_age = \"3650d\"\n\
         from = \"base-linux\"\n\
         version = \"2.0\"\n\
         [secrets]\n\
         DB_PASSWORD = { env = \"APP_DB_PASSWORD\" }\n\
         [tags]\n\
         Team = \"checkout\"\n\
         [vars]\n\
         PORT = \"8080\" # the port\n\
         [[test]]\n\
         name = \"answers\"\n\
         run = \"true\"\n",
    );
    assert_eq!(p.layer(&["hash"]).expect(0).stdout, before);
    assert!(build_names(&p).is_empty());
}

#[test]
fn an_origin_edit_is_origin_changed_and_descendants_follow() {
    let p = built_estate();
    p.file("origins/base.tar", "another rootfs\n");
    assert_eq!(
        p.verdict(&[], "base-linux"),
        build(json!([{"kind": "origin-changed", "origin": "bb"}]))
    );
    assert_eq!(p.verdict(&[], "app"), build(parent_changed("base-linux")));
    assert_eq!(p.verdict(&[], "node"), build(parent_changed("base-linux")));
    assert_eq!(p.verdict(&[], "svc"), build(parent_changed("app")));
}

#[test]
fn renaming_an_origin_with_the_same_content_changes_nothing() {
    let p = built_estate();
    p.file(
        "layer.toml",
        "[project]\nstrategy = \"deep\"\n\n[origins.rootfs-tar]\ntar = \"origins/base.tar\"\n",
    );
    p.file(
        "images/base-linux.toml",
        "version = \"1.0\"\norigin = \"rootfs-tar\"\nroles = [\"base\"]\n",
    );
    assert!(build_names(&p).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Where the project lives.

#[test]
fn two_clones_agree_on_keys_and_plans() {
    let p = built_estate();
    p.file("roles/java/provision.sh", "#!/bin/sh\necho java 21\n");
    let a = p.clone_project();
    let b = p.clone_project();
    assert_ne!(a.root(), b.root());
    let hash_a = a.layer(&["hash"]).expect(0).stdout;
    assert_eq!(hash_a, b.layer(&["hash"]).expect(0).stdout);
    assert_eq!(hash_a, p.layer(&["hash"]).expect(0).stdout);
    let plan_a = a.layer(&["plan", "--format", "json"]).expect(0).stdout;
    let plan_b = b.layer(&["plan", "--format", "json"]).expect(0).stdout;
    assert_eq!(plan_a, plan_b);
    assert!(plan_a.contains("role-changed"));
    let inputs = |q: &Project| q.layer(&["hash", "--inputs", "--json"]).expect(0).stdout;
    assert_eq!(inputs(&a), inputs(&b));
}

// ---------------------------------------------------------------------------------------------
// Damaged caches.

fn missing_artifact(p: &Project, name: &str) -> String {
    let (action, reasons) = p.verdict(&[], name);
    assert_eq!(action, "build");
    let reasons = reasons.as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert_eq!(reasons[0]["kind"], "missing-artifact");
    reasons[0]["detail"].as_str().unwrap().to_string()
}

#[test]
fn a_truncated_record_is_stale_with_a_detail_and_no_crash() {
    let p = built_estate();
    let record = p.record_path("app");
    let bytes = std::fs::read(&record).unwrap();
    std::fs::write(&record, &bytes[..bytes.len() / 2]).unwrap();
    let detail = missing_artifact(&p, "app");
    assert!(detail.starts_with("record is corrupt: "), "{detail}");
    assert_eq!(p.verdict(&[], "svc"), build(parent_rebuilt("app")));
    assert_eq!(p.verdict(&[], "node"), fresh());
    p.layer(&["plan"]).expect(0);
    p.layer(&["list"]).expect(0);
    p.layer(&["explain", "app"]).expect(0);
}

#[test]
fn a_garbage_record_is_stale() {
    let p = built_estate();
    std::fs::write(p.record_path("base-linux"), b"\x00\xffnot json").unwrap();
    let detail = missing_artifact(&p, "base-linux");
    assert!(detail.starts_with("record is corrupt: "), "{detail}");
    assert_eq!(p.verdict(&[], "app"), build(parent_rebuilt("base-linux")));
}

#[test]
fn a_record_whose_inputs_do_not_hash_to_its_key_is_stale() {
    let p = built_estate();
    let record = p.record_path("app");
    let text = std::fs::read_to_string(&record).unwrap();
    // Changed on disk, the checksum catches it first.
    std::fs::write(&record, text.replace("\"8080\"", "\"8081\"")).unwrap();
    assert_eq!(
        missing_artifact(&p, "app"),
        "record is corrupt: its checksum does not match its content"
    );
    // Sealed again as it is (a record written wrong): its inputs still do not hash to its key.
    let mut r: layer::record::Record = serde_json::from_str(&text).unwrap();
    std::sync::Arc::make_mut(&mut r.inputs).image = "tampered".into();
    std::fs::write(&record, layer::record::seal_record(&r)).unwrap();
    assert_eq!(
        missing_artifact(&p, "app"),
        "record is corrupt: its inputs do not hash to its key"
    );
}

#[test]
fn a_record_of_another_format_is_stale() {
    let p = built_estate();
    let record = p.record_path("app");
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(text.contains("\"format\": 2,"));
    std::fs::write(&record, text.replace("\"format\": 2,", "\"format\": 99,")).unwrap();
    assert_eq!(
        missing_artifact(&p, "app"),
        "record has format 99; this layer reads format 2"
    );
    assert_eq!(p.verdict(&[], "svc"), build(parent_rebuilt("app")));
}

#[test]
fn a_deleted_artifact_is_missing_artifact() {
    let p = built_estate();
    let key = p.planned(&[], "node")["key"].as_str().unwrap().to_string();
    p.remove(&format!("cache/artifacts/node/{key}"));
    assert_eq!(
        missing_artifact(&p, "node"),
        format!("`artifacts/node/{key}` is not in the cache")
    );
    assert_eq!(build_names(&p), ["node"]);
}

#[test]
fn a_parent_rebuilt_under_the_same_key_makes_children_stale() {
    let p = built_estate();
    // A second build of `app` (forced, say): same key, new version.
    p.record(&["app"]);
    assert_eq!(p.verdict(&[], "app"), fresh());
    assert_eq!(p.verdict(&[], "svc"), build(parent_rebuilt("app")));
}

// ---------------------------------------------------------------------------------------------
// Ages.

#[test]
fn an_image_older_than_its_max_age_is_expired_and_its_descendants_follow() {
    let p = Project::estate();
    p.file(
        "images/app.toml",
        "version = \"2.0\"\nfrom = \"base-linux\"\nroles = [\"java\"]\nmax_age = \"30d\"\n[vars]\nPORT = \"8080\"\n",
    );
    p.record_at(&[], "2000-01-01T00:00:00Z");
    assert_eq!(
        p.verdict(&[], "app"),
        build(json!([{"kind": "expired", "max_age": "30d", "built_at": "2000-01-01T00:00:00Z"}]))
    );
    assert_eq!(p.verdict(&[], "svc"), build(parent_rebuilt("app")));
    assert_eq!(p.verdict(&[], "base-linux"), fresh());
    assert_eq!(p.verdict(&[], "node"), fresh());
}

#[test]
fn an_image_younger_than_its_max_age_is_fresh() {
    let p = Project::estate();
    p.file(
        "images/app.toml",
        "version = \"2.0\"\nfrom = \"base-linux\"\nroles = [\"java\"]\nmax_age = \"30d\"\n[vars]\nPORT = \"8080\"\n",
    );
    p.record_at(&[], &now_rfc3339());
    assert!(build_names(&p).is_empty());
}

#[test]
fn plan_max_age_applies_to_every_image() {
    let p = Project::estate();
    p.record_at(&[], "2000-01-01T00:00:00Z");
    assert!(build_names(&p).is_empty());
    let expired = json!([{"kind": "expired", "max_age": "1d", "built_at": "2000-01-01T00:00:00Z"}]);
    for name in ["base-linux", "app", "node", "svc"] {
        assert_eq!(
            p.verdict(&["--max-age", "1d"], name),
            build(expired.clone()),
            "{name}"
        );
    }

    let young = Project::estate();
    young.record_at(&[], &now_rfc3339());
    assert!(names_with(&young, &["--max-age", "1d"], "build").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Selection.

#[test]
fn changed_selects_stale_images_and_their_descendants() {
    let p = built_estate();
    p.file(
        "images/app.toml",
        "version = \"2.0\"\nfrom = \"base-linux\"\nroles = [\"java\"]\n[vars]\nPORT = \"9090\"\n",
    );
    assert_eq!(
        p.actions(&["--changed"]),
        [
            ("base-linux".to_string(), "skip".to_string()),
            ("app".to_string(), "build".to_string()),
            ("node".to_string(), "skip".to_string()),
            ("svc".to_string(), "build".to_string()),
        ]
    );
    let plan = p.plan_json(&["--changed"]);
    assert_eq!(plan["summary"], json!({"build": 2, "fresh": 0, "skip": 2}));
    assert_eq!(plan["images"][0]["reasons"], json!([]));
    assert_eq!(plan["images"][0]["wave"], json!(null));
}

#[test]
fn changed_on_a_fresh_estate_selects_nothing() {
    let p = built_estate();
    assert!(p.actions(&["--changed"]).iter().all(|(_, a)| a == "skip"));
}

#[test]
fn targets_select_themselves_and_their_ancestors() {
    let p = Project::estate();
    assert_eq!(
        p.actions(&["svc"]),
        [
            ("base-linux".to_string(), "build".to_string()),
            ("app".to_string(), "build".to_string()),
            ("node".to_string(), "skip".to_string()),
            ("svc".to_string(), "build".to_string()),
        ]
    );
    p.record(&[]);
    p.file("roles/java/provision.sh", "#!/bin/sh\necho java 21\n");
    assert_eq!(
        p.actions(&["node"]),
        [
            ("base-linux".to_string(), "fresh".to_string()),
            ("app".to_string(), "skip".to_string()),
            ("node".to_string(), "fresh".to_string()),
            ("svc".to_string(), "skip".to_string()),
        ]
    );
    // Shallow builds need no ancestor's artifact: a target alone is selected.
    assert_eq!(
        p.actions(&["svc", "--strategy", "shallow"]),
        [
            ("base-linux".to_string(), "skip".to_string()),
            ("app".to_string(), "skip".to_string()),
            ("node".to_string(), "skip".to_string()),
            ("svc".to_string(), "build".to_string()),
        ]
    );
}

#[test]
fn exit_code_says_whether_something_would_be_built() {
    let p = Project::estate();
    p.layer(&["plan", "--exit-code"]).expect(1);
    p.layer(&["plan"]).expect(0);
    p.record(&[]);
    p.layer(&["plan", "--exit-code"]).expect(0);
    p.file("roles/web/provision.sh", "#!/bin/sh\necho web 2\n");
    p.layer(&["plan", "--exit-code", "--format", "json"])
        .expect(1);
    p.layer(&["plan", "--exit-code", "app"]).expect(0);
}

// ---------------------------------------------------------------------------------------------
// Planning is read-only.

#[test]
fn plan_runs_no_user_code_and_writes_nothing_but_the_stat_cache() {
    let p = Project::estate();
    let marker = |name: &str| format!("#!/bin/sh\ntouch \"{}\"\n", p.path(name).display());
    p.exec("roles/base/provision.sh", &marker("ran-provision"));
    p.exec("scripts/build.sh", &marker("ran-backend"));
    p.exec("scripts/latest.sh", &marker("ran-resolve"));
    p.file(
        "layer.toml",
        "[project]\nstrategy = \"deep\"\n\n[origins.bb]\ntar = \"origins/base.tar\"\n\n\
         [origins.latest]\nresolve = [\"./scripts/latest.sh\"]\n\n\
         [backends.custom]\nkind = \"command\"\ncommand = [\"./scripts/build.sh\"]\n",
    );
    p.file(
        "layer.lock",
        "version = 1\n\n[origins.latest]\nid = \"ami-0123\"\n",
    );
    p.file(
        "images/cloud.toml",
        "origin = \"latest\"\nbackend = \"custom\"\nroles = [\"base\"]\n",
    );
    p.record(&["base-linux", "app"]);
    p.file("roles/java/provision.sh", "#!/bin/sh\necho java 21\n");

    let tree = p.snapshot_tree();
    let cache = p.cache_files();
    let first = p.layer(&["plan", "--format", "json"]).expect(0).stdout;
    for args in [
        &["plan"][..],
        &["plan", "--format", "markdown"],
        &["plan", "--changed", "--exit-code"],
        &["plan", "--strategy", "shallow"],
        &["list", "--json"],
        &["hash", "--inputs"],
        &["explain", "app"],
        &["graph"],
    ] {
        let out = p.layer(args);
        assert!(out.code == 0 || out.code == 1, "{args:?}: {}", out.stderr);
    }
    assert_eq!(
        p.layer(&["plan", "--format", "json"]).expect(0).stdout,
        first
    );
    assert_eq!(p.snapshot_tree(), tree, "the project is untouched");
    let without_stat = |c: Vec<(String, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
        c.into_iter()
            .filter(|(f, _)| f != "stat-cache" && f != "model-cache")
            .collect()
    };
    assert_eq!(without_stat(p.cache_files()), without_stat(cache));
    for m in ["ran-provision", "ran-backend", "ran-resolve"] {
        assert!(!p.path(m).exists(), "{m}");
    }
}

#[test]
fn plan_json_is_the_same_byte_for_byte_when_nothing_changed() {
    let p = built_estate();
    p.file(
        "roles/web/tests/http.sh",
        "wget -q -O- http://127.0.0.1:8080/\n",
    );
    let runs: Vec<String> = (0..3)
        .map(|_| p.layer(&["plan", "--format", "json"]).expect(0).stdout)
        .collect();
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[1], runs[2]);
}

#[test]
fn a_stat_cache_of_an_older_format_is_ignored_and_rewritten() {
    let p = built_estate();
    // Past the racy window, so the stat cache holds every file.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let first = p.layer(&["plan", "--format", "json"]).expect(0).stdout;
    let sealed = std::fs::read(p.path("cache/stat-cache")).unwrap();
    assert!(sealed.starts_with(b"layer-stat\0\x05"));
    // The same bytes under the previous format's magic, sealed again: read as that format
    // they would be nonsense, so they must not be read at all.
    let mut old = sealed[..sealed.len() - 32].to_vec();
    old[11] = 4;
    let seal = *blake3::hash(&old).as_bytes();
    old.extend_from_slice(&seal);
    std::fs::write(p.path("cache/stat-cache"), &old).unwrap();
    assert_eq!(
        p.layer(&["plan", "--format", "json"]).expect(0).stdout,
        first
    );
    let after = std::fs::read(p.path("cache/stat-cache")).unwrap();
    assert!(
        after.starts_with(b"layer-stat\0\x05"),
        "rewritten in the new format"
    );
    assert_ne!(after, old);
}
