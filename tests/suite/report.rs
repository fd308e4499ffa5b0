//! `layer report --inventory FILE`: instances per image version, the ones to rebuild after a
//! fix, the ones on expired versions; CSV and JSON inventories, artifact ids.

use crate::common;
use crate::common::Project;

use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

fn days_ago(d: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(d * 86_400))
        .to_string()
}

/// The estate with three builds of `base-linux` and of `app` (each app on the base of its
/// day), built 100, 40 and 1 days ago, and `svc` 1.0.0 on the newest app:
///
/// ```text
/// base-linux 1.0.0 <- app 2.0.0     (100 days ago)
/// base-linux 1.0.1 <- app 2.0.1     (40 days ago)
/// base-linux 1.0.2 <- app 2.0.2 <- svc 1.0.0, node 1.0.0   (1 day ago)
/// ```
///
/// Artifact ids are `NAME-MAJOR.MINOR.BUILD`.
fn fleet() -> Project {
    let p = Project::estate();
    for (n, age) in [(0, 100), (1, 40)] {
        p.file("roles/base/files/etc/motd", &format!("welcome {n}\n"));
        p.record_at(&["base-linux", "app"], &days_ago(age));
    }
    p.file("roles/base/files/etc/motd", "welcome 2\n");
    p.record_at(&[], &days_ago(1));
    p
}

/// 38 instances on image versions, two rows by artifact id, one row on an unknown artifact,
/// one on a version the cache has no record of: `(instance, image, version, artifact)`.
fn inventory() -> Vec<(String, &'static str, &'static str, &'static str)> {
    let mut rows = Vec::new();
    let mut n = 0;
    let mut add = |image: &'static str, version: &'static str, artifact: &'static str, count| {
        for _ in 0..count {
            n += 1;
            rows.push((format!("i-{n:03}"), image, version, artifact));
        }
    };
    add("base-linux", "1.0.0", "", 3);
    add("base-linux", "1.0.1-20261120_1000", "", 4);
    add("base-linux", "1.0.2", "", 5);
    add("app", "2.0.0", "", 6);
    add("app", "2.0.1", "", 7);
    add("app", "2.0.2-20261120_1000", "", 8);
    add("svc", "1.0.0", "", 5);
    add("", "", "app-2.0.1", 2);
    add("", "", "ami-0feedbeef", 1);
    add("app", "2.0.9", "", 1);
    rows
}

fn write_csv(p: &Project) -> String {
    let mut csv = String::from("instance,region,image,version,artifact,launched\n");
    for (i, image, version, artifact) in inventory() {
        csv.push_str(&format!(
            "{i},eu-west-1,{image},{version},{artifact},2026-11-01T10:00:00Z\n"
        ));
    }
    p.file("inventory.csv", &csv);
    "inventory.csv".into()
}

fn write_json(p: &Project) -> String {
    let rows: Vec<Value> = inventory()
        .into_iter()
        .map(|(i, image, version, artifact)| {
            let mut o = json!({"instance": i, "launched": "2026-11-01T10:00:00Z"});
            if !image.is_empty() {
                o["image"] = json!(image);
                o["version"] = json!(version);
            } else {
                o["artifact"] = json!(artifact);
            }
            o
        })
        .collect();
    p.file(
        "inventory.json",
        &serde_json::to_string_pretty(&rows).unwrap(),
    );
    "inventory.json".into()
}

fn ids(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|n| format!("i-{n:03}")).collect()
}

fn report_json(p: &Project, file: &str, extra: &[&str]) -> (Value, String) {
    let mut args = vec!["report", "--inventory", file, "--format", "json"];
    args.extend_from_slice(extra);
    let out = p.layer(&args).expect(0);
    (serde_json::from_str(&out.stdout).unwrap(), out.stderr)
}

fn row(image: &str, version: &str, instances: usize) -> Value {
    json!({"image": image, "version": version, "instances": instances})
}

#[test]
fn counts_per_image_version_the_rebuild_list_and_the_expired() {
    let p = fleet();
    let file = write_csv(&p);
    let (r, stderr) = report_json(
        &p,
        &file,
        &["--fixed-in", "base-linux=1.0.2", "--max-age", "30d"],
    );
    assert_eq!(
        r["rows"],
        json!([
            row("app", "2.0.9", 1),
            row("app", "2.0.2", 8),
            row("app", "2.0.1", 9),
            row("app", "2.0.0", 6),
            row("base-linux", "1.0.2", 5),
            row("base-linux", "1.0.1", 4),
            row("base-linux", "1.0.0", 3),
            row("svc", "1.0.0", 5),
        ])
    );
    // To rebuild after the fix in base-linux 1.0.2: base-linux 1.0.0 and 1.0.1 (i-001..007),
    // and the apps built on them, 2.0.0 and 2.0.1 (i-013..025, and i-039..040 by artifact id).
    // Not app 2.0.2 nor svc (on base-linux 1.0.2), nor app 2.0.9 (no record: its base is unknown).
    let mut rebuild = ids(1..=7);
    rebuild.extend(ids(13..=25));
    rebuild.extend(ids(39..=40));
    assert_eq!(r["rebuild"], json!({"count": 22, "instances": rebuild}));
    // Built more than 30 days ago: the same builds.
    assert_eq!(r["expired"], json!({"count": 22, "instances": rebuild}));
    assert_eq!(r.as_object().unwrap().len(), 3);
    // Rows matching nothing are named on stderr (stdout is the JSON).
    assert_eq!(
        stderr,
        "warning: line 42 (`i-041`): artifact `ami-0feedbeef` is in no record\n\
         warning: line 43 (`i-042`): `app` has no recorded build 2.0.9\n\
         warning: 1 instance on versions with no record: build date unknown\n"
    );

    // Versions compare numerically: 2.0.9 < 2.0.10. A fix in app also rebuilds svc, built on
    // app 2.0.2.
    let (r, _) = report_json(&p, &file, &["--fixed-in", "app=2.0.10"]);
    let mut rebuild = ids(13..=40);
    rebuild.push("i-042".into());
    assert_eq!(r["rebuild"]["count"], 29);
    assert_eq!(r["rebuild"]["instances"], json!(rebuild));
    assert_eq!(r["expired"], json!({"count": 0, "instances": []}));
    // Two fixes; a short fix version.
    let (r, _) = report_json(
        &p,
        &file,
        &["--fixed-in", "base-linux=1.0.1", "--fixed-in", "svc=2"],
    );
    let mut rebuild = ids(1..=3);
    rebuild.extend(ids(13..=18));
    rebuild.extend(ids(34..=38));
    assert_eq!(r["rebuild"]["instances"], json!(rebuild));
    // Nothing asked: empty groups.
    let (r, _) = report_json(&p, &file, &[]);
    assert_eq!(r["rebuild"], json!({"count": 0, "instances": []}));
}

#[test]
fn a_json_inventory_reports_as_the_csv_one() {
    let p = fleet();
    let csv = write_csv(&p);
    let js = write_json(&p);
    let args = ["--fixed-in", "base-linux=1.0.2", "--max-age", "30d"];
    let (a, _) = report_json(&p, &csv, &args);
    let (b, stderr) = report_json(&p, &js, &args);
    assert_eq!(a, b);
    assert!(
        stderr.contains("warning: entry 41 (`i-041`): artifact `ami-0feedbeef` is in no record\n"),
        "{stderr}"
    );
}

#[test]
fn text_and_markdown() {
    let p = fleet();
    let file = write_csv(&p);
    let filters = vec![(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[DATE]")];
    // The fleet's report with base-linux fixed in 1.0.2, and `extra`.
    let report = |extra: &[&str]| {
        let mut args = vec![
            "report",
            "--inventory",
            &file,
            "--fixed-in",
            "base-linux=1.0.2",
        ];
        args.extend_from_slice(extra);
        p.layer(&args).expect(0).stdout
    };
    let text = report(&["--max-age", "30d"]);
    insta::with_settings!({filters => filters.clone()}, {
        insta::assert_snapshot!("report_text", text);
    });
    let md = report(&["--format", "markdown"]);
    insta::with_settings!({filters => filters}, {
        insta::assert_snapshot!("report_markdown", md);
    });
}

#[test]
fn an_inventory_of_artifact_ids_only() {
    let p = fleet();
    p.file(
        "inv.csv",
        "Instance,Artifact\ni-a,base-linux-1.0.0\ni-b,app-2.0.2\n\"i-c\",\"app-2.0.2\"\ni-d,ami-nope\n",
    );
    let (r, stderr) = report_json(&p, "inv.csv", &["--fixed-in", "base-linux=1.0.1"]);
    assert_eq!(
        r,
        json!({
            "rows": [row("app", "2.0.2", 2), row("base-linux", "1.0.0", 1)],
            "rebuild": {"count": 1, "instances": ["i-a"]},
            "expired": {"count": 0, "instances": []}
        })
    );
    assert_eq!(
        stderr,
        "warning: line 5 (`i-d`): artifact `ami-nope` is in no record\n"
    );
    let text = p
        .layer(&["report", "--inventory", "inv.csv"])
        .expect(0)
        .stdout;
    assert!(
        text.ends_with(
            "rows matching no record: 1\n  line 5 (`i-d`): artifact `ami-nope` is in no record\n"
        ),
        "{text}"
    );
}

#[test]
fn inventory_errors() {
    let p = fleet();
    let run = |args: &[&str], code| {
        let out = p.layer(args).expect(code);
        common::redact(&p, &out.stderr)
    };
    p.file("a.csv", "host,image,version\nh1,app,2.0.0\n");
    assert_eq!(
        run(&["report", "--inventory", "a.csv"], 2),
        "error: a.csv: line 1: the header has no `instance` column (it has: host, image, version)\n  hint: an inventory is CSV with a header row, or a JSON array of objects, with the fields `instance`, `image`, `version` (or `artifact`) and optionally `launched`\n"
    );
    p.file(
        "b.csv",
        "instance,image,version,launched\ni-1,app,2.0.0,yesterday\n",
    );
    assert!(run(&["report", "--inventory", "b.csv"], 2)
        .starts_with("error: b.csv: line 2: `launched` is not an RFC 3339 time: `yesterday`\n"));
    p.file(
        "c.json",
        "[{\"instance\": \"i-1\", \"image\": \"app\", \"version\": 2}]",
    );
    assert!(run(&["report", "--inventory", "c.json"], 2)
        .starts_with("error: c.json: entry 1: `version` must be a string, not `2`\n"));
    p.file("d.csv", "instance,image,version\n\"i-1,app,2.0.0\n");
    assert!(run(&["report", "--inventory", "d.csv"], 2)
        .starts_with("error: d.csv: line 2: a quoted field is not closed\n"));
    assert_eq!(
        run(&["report", "--inventory", "missing.csv"], 2),
        "error: missing.csv: cannot read the inventory: no such file or directory\n  hint: give the path of a CSV or JSON inventory with `--inventory FILE`\n"
    );
    let bad_fix = run(&["report", "--inventory", "a.csv", "--fixed-in", "app"], 2);
    assert!(bad_fix.contains("`app` is not IMAGE=VERSION"), "{bad_fix}");
}
