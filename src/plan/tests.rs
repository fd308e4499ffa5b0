//! The plan made from tiny projects built in code, against a fake [`History`].

use super::*;
use crate::key::compute;
use crate::model::*;
use crate::record::{Artifact, ParentRef};
use crate::scan::{Entry, EntryKind, Scanned};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Records by name, trees by digest, and artifacts that exist unless listed as gone.
#[derive(Default)]
struct FakeHistory {
    latest: BTreeMap<String, Record>,
    trees: BTreeMap<String, Tree>,
    gone: Vec<String>,
    /// `(image, version)` of revoked builds.
    revoked: Vec<(String, String)>,
    asked: Mutex<Vec<String>>,
    /// Trusted remote records, by name.
    remote: BTreeMap<String, Record>,
}

impl History for FakeHistory {
    fn latest(&self, name: &str, _strategy: Strategy) -> Option<Record> {
        self.asked.lock().unwrap().push(name.to_string());
        self.latest.get(name).cloned()
    }
    fn tree(&self, digest: &str) -> Option<Tree> {
        self.trees.get(digest).cloned()
    }
    fn artifact_exists(&self, r: &Record) -> bool {
        !self.gone.contains(&r.name)
    }
    fn revoked(&self, name: &str, version: &str) -> bool {
        self.revoked.iter().any(|(n, v)| n == name && v == version)
    }
    fn remote(&self, name: &str) -> Option<&Record> {
        self.remote.get(name)
    }
}

fn image(name: &str, base: Base, roles: &[&str]) -> Image {
    Image {
        name: name.into(),
        file: format!("images/{name}.toml"),
        description: None,
        version: "1.0".into(),
        base,
        roles: roles.iter().map(ToString::to_string).collect(),
        packages: vec![],
        sources: vec![],
        backend: None,
        max_age: None,
        max_age_text: None,
        pin: None,
        vars: BTreeMap::new(),
        secrets: BTreeMap::new(),
        tags: BTreeMap::new(),
        tests: vec![],
    }
}

/// base <- app <- svc, base <- node; one role per image.
fn project() -> Project {
    let mut roles = BTreeMap::new();
    for r in ["base", "java", "web"] {
        roles.insert(
            r.to_string(),
            Role {
                name: r.into(),
                dir: format!("roles/{r}"),
                depends: vec![],
                packages: vec![],
                sources: vec![],
                vars: BTreeMap::new(),
            },
        );
    }
    let mut origins = BTreeMap::new();
    origins.insert(
        "o".to_string(),
        Origin {
            name: "o".into(),
            source: OriginSource::Id { id: "ami-1".into() },
        },
    );
    let mut backends = BTreeMap::new();
    backends.insert("rootfs".to_string(), Backend::builtin_rootfs());
    let images = vec![
        image("base", Base::Origin("o".into()), &["base"]),
        image("app", Base::Parent("base".into()), &["java"]),
        image("node", Base::Parent("base".into()), &["web"]),
        image("svc", Base::Parent("app".into()), &["web"]),
    ];
    Project {
        root: "/p".into(),
        strategy: Strategy::Deep,
        backend: "rootfs".into(),
        origins,
        backends,
        roles,
        images,
        lock: Lock::default(),
        remote: None,
    }
}

fn tree(content: &str) -> Tree {
    Tree::new(vec![Entry {
        path: "provision.sh".into(),
        kind: EntryKind::File {
            exec: true,
            blake3: crate::scan::FileDigest::of(content.as_bytes()),
        },
    }])
}

fn scanned(java: &str) -> Scanned {
    let mut s = Scanned::default();
    for (role, t) in [
        ("base", tree("base")),
        ("java", tree(java)),
        ("web", tree("web")),
    ] {
        s.digests.insert(role.into(), t.digest.clone());
        s.trees.insert(role.into(), t);
    }
    s
}

fn record(name: &str, k: &ImageKey, parent: Option<(&str, &ImageKey)>, built_at: &str) -> Record {
    Record {
        format: crate::record::RECORD_FORMAT,
        name: name.into(),
        key: k.key.clone(),
        version: format!("1.0.0-{name}"),
        built_at: built_at.into(),
        duration_ms: 1,
        forced: false,
        artifact: Artifact {
            id: name.into(),
            path: Some(format!("artifacts/{name}")),
            blake3: None,
            size: None,
            remote: None,
        },
        parent: parent.map(|(p, pk)| ParentRef {
            name: p.into(),
            key: pk.key.clone(),
            version: format!("1.0.0-{p}"),
        }),
        tags: BTreeMap::new(),
        inputs: k.inputs.clone(),
        packages: None,
    }
}

struct World {
    project: Project,
    graph: Graph,
    scanned: Scanned,
    keys: Vec<ImageKey>,
    lookups: Vec<Lookup>,
    history: FakeHistory,
}

impl World {
    /// Every image recorded with the keys of `java` content `recorded`, planned with `now`.
    fn new(recorded: &str, now: &str) -> World {
        let project = project();
        let graph = Graph::new(&project);
        let old = compute(&project, &graph, Strategy::Deep, &scanned(recorded)).unwrap();
        let scanned = scanned(now);
        let keys = compute(&project, &graph, Strategy::Deep, &scanned).unwrap();
        let mut history = FakeHistory::default();
        let mut lookups = Vec::new();
        for (i, img) in project.images.iter().enumerate() {
            let parent = graph.parent[ImageId::new(i)]
                .map(|p| (project.images[p.index()].name.as_str(), &old[p.index()]));
            let r = record(&img.name, &old[i], parent, "2026-11-01T00:00:00Z");
            lookups.push(if old[i].key == keys[i].key {
                Lookup::Found(Box::new(r.clone()))
            } else {
                Lookup::Missing
            });
            history.latest.insert(img.name.clone(), r);
        }
        history.trees.insert(tree(recorded).digest, tree(recorded));
        World {
            project,
            graph,
            scanned,
            keys,
            lookups,
            history,
        }
    }

    fn plan(&self, sel: &Selection) -> Plan {
        let input = PlanInput {
            project: &self.project,
            graph: &self.graph,
            strategy: Strategy::Deep,
            keys: &self.keys,
            lookups: &self.lookups,
            trees: &self.scanned.trees,
            history: &self.history,
            now: humantime::parse_rfc3339("2026-11-10T00:00:00Z").unwrap(),
        };
        make(&input, sel)
    }
}

fn actions(p: &Plan) -> Vec<(&str, Action, Option<usize>)> {
    p.images
        .iter()
        .map(|i| (i.name.as_str(), i.action, i.wave))
        .collect()
}

/// `java` changed: `app` and `svc` have no local build; the remote has builds of their
/// current keys (`svc`'s on `parent_version` of `app`).
fn remote_world(parent_version: &str) -> World {
    let mut w = World::new("java 17", "java 21");
    let app = record(
        "app",
        &w.keys[1],
        Some(("base", &w.keys[0])),
        "2026-11-09T00:00:00Z",
    );
    let mut svc = record(
        "svc",
        &w.keys[3],
        Some(("app", &w.keys[1])),
        "2026-11-09T00:00:00Z",
    );
    svc.parent.as_mut().unwrap().version = parent_version.into();
    w.history.remote.insert("app".into(), app);
    w.history.remote.insert("svc".into(), svc);
    w
}

fn cached(p: &Plan) -> Vec<(&str, Action, Option<Cached>)> {
    p.images
        .iter()
        .map(|i| (i.name.as_str(), i.action, i.cached))
        .collect()
}

#[test]
fn trusted_remote_records_make_images_fresh_from_the_remote() {
    let w = remote_world("1.0.0-app");
    let p = w.plan(&Selection::default());
    assert_eq!(
        cached(&p),
        [
            ("base", Action::Fresh, Some(Cached::Local)),
            ("app", Action::Fresh, Some(Cached::Remote)),
            ("node", Action::Fresh, Some(Cached::Local)),
            ("svc", Action::Fresh, Some(Cached::Remote)),
        ]
    );
    assert!(p.images.iter().all(|i| i.reasons.is_empty()));
    // Forced images build anyway, and say nothing of a cache.
    let p = w.plan(&Selection {
        targets: vec![3],
        force: true,
        ..Selection::default()
    });
    assert_eq!(p.images[3].action, Action::Build);
    assert_eq!(p.images[3].cached, None);
}

#[test]
fn a_remote_build_on_another_parent_build_is_not_used() {
    // svc's remote build was made on another build of app's key: app comes from the
    // remote, svc builds on it.
    let w = remote_world("1.0.0-other");
    let p = w.plan(&Selection::default());
    assert_eq!(p.images[1].cached, Some(Cached::Remote));
    assert_eq!(
        (p.images[3].action, p.images[3].wave),
        (Action::Build, Some(0))
    );
    assert_eq!(
        p.images[3].reasons,
        [Reason::ParentChanged {
            parent: "app".into()
        }]
    );
    // Without app on the remote, svc's record cannot stand on anything.
    let mut w = remote_world("1.0.0-app");
    w.history.remote.remove("app");
    let p = w.plan(&Selection::default());
    assert_eq!(
        actions(&p)[1..],
        [
            ("app", Action::Build, Some(0)),
            ("node", Action::Fresh, None),
            ("svc", Action::Build, Some(1))
        ]
    );
}

#[test]
fn remote_records_follow_the_rules_of_local_ones() {
    // Expired under --max-age.
    let w = remote_world("1.0.0-app");
    let p = w.plan(&Selection {
        max_age: Some((std::time::Duration::from_secs(3600), "1h".into())),
        ..Selection::default()
    });
    assert_eq!(p.images[1].action, Action::Build);
    // Revoked.
    let mut w = remote_world("1.0.0-app");
    let app = w.history.remote.get_mut("app").unwrap();
    app.tags.insert("Release_Status".into(), "revoked".into());
    let p = w.plan(&Selection::default());
    assert_eq!(p.images[1].action, Action::Build);
    assert_eq!(p.images[3].action, Action::Build);
}

#[test]
fn nothing_changed_is_all_fresh_and_asks_no_history() {
    let w = World::new("java 17", "java 17");
    let p = w.plan(&Selection::default());
    assert_eq!(
        p.summary,
        Summary {
            build: 0,
            fresh: 4,
            skip: 0
        }
    );
    assert!(w.history.asked.lock().unwrap().is_empty());
}

#[test]
fn a_role_change_builds_the_image_and_its_descendants_in_waves() {
    let w = World::new("java 17", "java 21");
    let p = w.plan(&Selection::default());
    assert_eq!(
        actions(&p),
        [
            ("base", Action::Fresh, None),
            ("app", Action::Build, Some(0)),
            ("node", Action::Fresh, None),
            ("svc", Action::Build, Some(1))
        ]
    );
    assert_eq!(
        p.images[1].reasons,
        [Reason::RoleChanged {
            role: "java".into(),
            paths: vec!["roles/java/provision.sh".into()]
        }]
    );
    assert_eq!(
        p.images[3].reasons,
        [Reason::ParentChanged {
            parent: "app".into()
        }]
    );
}

#[test]
fn changed_and_targets_select() {
    let w = World::new("java 17", "java 21");
    let p = w.plan(&Selection {
        changed: true,
        ..Default::default()
    });
    assert_eq!(
        actions(&p).iter().map(|a| a.1).collect::<Vec<_>>(),
        [Action::Skip, Action::Build, Action::Skip, Action::Build]
    );
    // A target brings its ancestors (deep), and nothing else.
    let p = w.plan(&Selection {
        targets: vec![1],
        ..Default::default()
    });
    assert_eq!(
        actions(&p).iter().map(|a| a.1).collect::<Vec<_>>(),
        [Action::Fresh, Action::Build, Action::Skip, Action::Skip]
    );
}

#[test]
fn a_missing_parent_artifact_rebuilds_the_parent_and_its_children() {
    let mut w = World::new("java 17", "java 17");
    w.history.gone.push("base".into());
    let p = w.plan(&Selection::default());
    assert!(matches!(
        p.images[0].reasons[..],
        [Reason::MissingArtifact { .. }]
    ));
    assert_eq!(
        actions(&p),
        [
            ("base", Action::Build, Some(0)),
            ("app", Action::Build, Some(1)),
            ("node", Action::Build, Some(1)),
            ("svc", Action::Build, Some(2))
        ]
    );
}

#[test]
fn expiry_and_force() {
    let w = World::new("java 17", "java 17");
    let limit = (Duration::from_secs(86_400), "1d".to_string());
    let p = w.plan(&Selection {
        max_age: Some(limit),
        ..Default::default()
    });
    assert!(
        matches!(&p.images[0].reasons[..], [Reason::Expired { max_age, .. }] if max_age == "1d")
    );
    assert_eq!(p.summary.build, 4);
    let p = w.plan(&Selection {
        force: true,
        targets: vec![2],
        ..Default::default()
    });
    assert_eq!(p.images[2].reasons, [Reason::Forced]);
    // What the target is built on is built only when stale.
    assert_eq!(p.images[0].action, Action::Fresh);
    assert_eq!(p.images[1].action, Action::Skip);
    let p = w.plan(&Selection {
        force_deps: true,
        targets: vec![2],
        ..Default::default()
    });
    assert_eq!(p.images[2].reasons, [Reason::Forced]);
    assert_eq!(p.images[0].reasons, [Reason::Forced]);
    assert_eq!(p.images[1].action, Action::Skip);
}

#[test]
fn a_child_built_on_an_older_parent_build_is_stale() {
    let mut w = World::new("java 17", "java 17");
    // The parent was rebuilt under the same key: a new version the child was not built on.
    if let Lookup::Found(r) = &mut w.lookups[0] {
        r.version = "1.0.1-base".into();
    }
    let p = w.plan(&Selection::default());
    assert_eq!(
        p.images[1].reasons,
        [Reason::ParentRebuilt {
            parent: "base".into()
        }]
    );
    assert_eq!(p.images[0].action, Action::Fresh);
}

#[test]
fn a_revoked_build_and_the_builds_on_it_are_stale() {
    let mut w = World::new("java 17", "java 17");
    w.history.revoked.push(("base".into(), "1.0.0-base".into()));
    if let Lookup::Found(r) = &mut w.lookups[0] {
        r.tags.insert("Release_Status".into(), "revoked".into());
    }
    let p = w.plan(&Selection::default());
    assert_eq!(
        p.images[0].reasons,
        [Reason::Revoked {
            version: "1.0.0".into()
        }]
    );
    for i in [1, 2] {
        assert_eq!(
            p.images[i].reasons,
            [Reason::ParentRevoked {
                parent: "base".into(),
                version: "1.0.0".into()
            }]
        );
    }
    // app is built again from the same inputs: svc's inputs did not change.
    assert_eq!(
        p.images[3].reasons[0].sentence(),
        "parent `app` was rebuilt from the same inputs"
    );
    assert_eq!(
        p.images[1].reasons[0].sentence(),
        "built on revoked base 1.0.0"
    );
}

#[test]
fn shallow_builds_everything_stale_in_wave_zero() {
    let w = World::new("java 17", "java 17");
    let keys = compute(&w.project, &w.graph, Strategy::Shallow, &w.scanned).unwrap();
    let lookups = vec![
        Lookup::Missing,
        Lookup::Missing,
        Lookup::Missing,
        Lookup::Missing,
    ];
    let empty = FakeHistory::default();
    let input = PlanInput {
        project: &w.project,
        graph: &w.graph,
        strategy: Strategy::Shallow,
        keys: &keys,
        lookups: &lookups,
        trees: &w.scanned.trees,
        history: &empty,
        now: SystemTime::now(),
    };
    let p = make(&input, &Selection::default());
    assert!(p
        .images
        .iter()
        .all(|i| i.wave == Some(0) && i.reasons == [Reason::New]));
    // Shallow keys flatten the chain: svc applies base, java and web.
    assert_eq!(p.images[3].roles, ["base", "java", "web"]);
    assert_ne!(keys[3].key, w.keys[3].key);
}

#[test]
fn since_an_unchanged_image_no_cache_holds_is_not_cached_and_other_reasons_stay() {
    let app = Reason::RoleChanged {
        role: "java".into(),
        paths: vec!["roles/java/provision.sh".into()],
    };
    let since = Selection {
        since: Some(vec![
            vec![],
            vec![app.clone()],
            vec![],
            vec![Reason::ParentChanged {
                parent: "app".into(),
            }],
        ]),
        ..Default::default()
    };
    let reasons =
        |p: &Plan| -> Vec<Vec<Reason>> { p.images.iter().map(|i| i.reasons.clone()).collect() };
    // `base` never built, `app` changed since the revision: `base` is built, not cached.
    let mut w = World::new("java 17", "java 21");
    w.lookups[0] = Lookup::Missing;
    w.history.latest.remove("base");
    let p = w.plan(&since);
    assert_eq!(
        actions(&p),
        [
            ("base", Action::Build, Some(0)),
            ("app", Action::Build, Some(1)),
            ("node", Action::Skip, None),
            ("svc", Action::Build, Some(2))
        ]
    );
    assert_eq!(p.images[0].reasons, [Reason::NotCached]);
    assert_eq!(p.images[1].reasons, std::slice::from_ref(&app));
    // A record whose artifact is gone holds nothing either.
    let mut w = World::new("java 17", "java 21");
    w.history.gone.push("base".into());
    assert_eq!(reasons(&w.plan(&since))[0], [Reason::NotCached]);
    // Expired is a reason of its own, not a want of cache.
    let w = World::new("java 17", "java 21");
    let p = w.plan(&Selection {
        max_age: Some((Duration::from_secs(86_400), "1d".to_string())),
        ..since
    });
    assert!(matches!(p.images[0].reasons[..], [Reason::Expired { .. }]));
    assert_eq!(p.images[1].reasons, [app]);
}

#[test]
fn a_reheat_builds_its_image_alone_under_a_key_of_its_own() {
    let w = World::new("java 17", "java 21");
    let svc = 3;
    let p = crate::plan::reheat(
        w.plan(&Selection::default()),
        svc,
        "2.0.1-20261101_0000",
        false,
    );
    assert_eq!(
        actions(&p),
        [
            ("base", Action::Skip, None),
            ("app", Action::Skip, None),
            ("node", Action::Skip, None),
            ("svc", Action::Build, Some(0))
        ]
    );
    assert_eq!(
        p.images[svc].reasons,
        [Reason::Reheat {
            from: "2.0.1".into()
        }]
    );
    let p = crate::plan::reheat(w.plan(&Selection::default()), svc, "2.0.1", true);
    assert_eq!(p.images[svc].cached, Some(Cached::Local));
    assert_eq!(p.summary.fresh, 1);

    let fresh = &w.keys[svc];
    let of = |key: &str, version: &str| {
        crate::key::reheat(&w.project, &w.graph, svc, fresh, key, version)
    };
    let a = of("k1", "2.0.1-20261101_0000");
    assert_ne!(a.key, fresh.key);
    assert_eq!(a.key, of("k1", "2.0.1-20261101_0000").key);
    assert_ne!(a.key, of("k1", "2.0.2-20261102_0000").key);
    assert_ne!(a.key, of("k2", "2.0.1-20261101_0000").key);
    // The whole chain's declarations: a reheat installs the chain's locked packages.
    let chain: Vec<&str> = a.inputs.chain.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(chain, ["base", "app", "svc"]);
    assert_eq!(a.inputs.roles, fresh.inputs.roles);
}
