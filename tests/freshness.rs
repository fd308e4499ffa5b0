//! Freshness told as stories: record a build, change one input, see what the plan says.

mod common;
use common::Project;

fn build_names(p: &Project) -> Vec<String> {
    p.actions(&[])
        .into_iter()
        .filter(|(_, a)| a == "build")
        .map(|(n, _)| n)
        .collect()
}

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
