//! Bugs of issue 13 that need real `rootfs` builds (root and a static busybox): an image
//! without tests is not `tested`, and a build whose tests changed since it was tested says so.

use crate::common::{Output, Project};
use crate::needs::{self, Need};

use serde_json::Value;

/// `plain` (no tests) and `checked` (a role test) on a busybox origin.
fn project() -> Project {
    let p = Project::new();
    p.file(
        "layer.toml",
        &format!(
            "[project]\n\n[origins.bb]\nbusybox = \"{}\"\n",
            needs::busybox().expect("checked").display()
        ),
    );
    p.exec("roles/r/provision.sh", "set -eu\necho hi > /etc/hi\n");
    p.file(
        "images/plain.toml",
        "version = \"1.0\"\norigin = \"bb\"\nroles = [\"r\"]\n",
    );
    p.exec("roles/t/provision.sh", "set -eu\necho t > /etc/t\n");
    p.file("roles/t/tests/hi.sh", "grep -q hi /etc/hi\n");
    p.file(
        "images/checked.toml",
        "version = \"2.1\"\nfrom = \"plain\"\nroles = [\"t\"]\n",
    );
    p
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: not JSON\n--- stdout\n{}", out.stdout))
}

fn status(p: &Project, image: &str) -> String {
    let v = json(&p.layer(&["versions", image, "--json"]).expect(0));
    v[0]["status"].as_str().unwrap().to_string()
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn an_image_without_tests_stays_a_candidate() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = project();
    p.layer(&["build", "plain", "--no-progress"]).expect(0);
    let out = p.layer(&["test", "plain", "--json"]).expect(0);
    let r = &json(&out)[0];
    assert_eq!(r["result"], "no-tests", "{}", out.stdout);
    assert_eq!(r["release_status"], "candidate");
    assert!(
        out.stderr.contains("plain") && out.stderr.contains("no tests"),
        "{}",
        out.stderr
    );
    assert_eq!(status(&p, "plain"), "candidate");
    let out = p.layer(&["promote", "plain"]).expect(2);
    assert!(out.stderr.contains("untested candidate"), "{}", out.stderr);
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn a_build_whose_tests_changed_since_it_was_tested_says_so() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = project();
    p.layer(&["build", "--no-progress"]).expect(0);
    p.layer(&["test", "checked"]).expect(0);
    let list = json(&p.layer(&["list", "--json"]).expect(0));
    let checked = |list: &Value| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == "checked")
            .unwrap()
            .clone()
    };
    assert_eq!(checked(&list)["tests_changed"], false);

    // A new role test: no rebuild, but the `tested` status is of other tests.
    p.file("roles/t/tests/t.sh", "grep -q t /etc/t\n");
    assert!(
        p.actions(&[]).iter().all(|(_, a)| a == "fresh"),
        "no rebuild"
    );
    let list = json(&p.layer(&["list", "--json"]).expect(0));
    assert_eq!(checked(&list)["tests_changed"], true);
    let text = p.layer(&["list"]).expect(0).stdout;
    assert!(text.contains("tests changed"), "{text}");
    let out = p.layer(&["test", "checked"]).expect(0);
    assert!(
        out.stderr
            .contains("tests changed since it was last tested"),
        "{}",
        out.stderr
    );
    let list = json(&p.layer(&["list", "--json"]).expect(0));
    assert_eq!(checked(&list)["tests_changed"], false);
}
