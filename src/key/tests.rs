//! The key module's unit tests: keys of inputs built in code, and their differences.

use super::*;

fn inputs() -> Inputs {
    Inputs {
        schema: KEY_SCHEMA,
        image: "app".into(),
        strategy: Strategy::Deep,
        backend: BackendInputs {
            name: "rootfs".into(),
            kind: BackendKind::Rootfs,
            command: vec![],
            template: None,
            files: BTreeMap::new(),
        }
        .into(),
        base: BaseInputs::Parent {
            key: "00".repeat(32),
        },
        chain: vec![DeclInputs {
            name: "app".into(),
            version: "1.0".into(),
            roles: vec!["java".into()],
            packages: vec![],
            sources: vec![],
            locked: vec![],
            vars: BTreeMap::new(),
        }],
        roles: vec![RoleInputs {
            name: "java".into(),
            tree: "t1".into(),
            decl: RoleDeclInputs::default(),
        }
        .into()],
    }
}

#[test]
fn key_is_stable_and_sensitive() {
    let a = inputs();
    assert_eq!(a.key(), inputs().key());
    assert_eq!(a.key().len(), 64);
    let mut b = inputs();
    b.chain[0].vars.insert("PORT".into(), "8080".into());
    assert_ne!(a.key(), b.key());
    let mut c = inputs();
    c.base = BaseInputs::Parent {
        key: "11".repeat(32),
    };
    assert_ne!(a.key(), c.key());
}

#[test]
fn a_key_from_encodings_made_before_is_the_inputs_key() {
    let with_parts = |i: &Inputs| {
        let backend = serde_json::to_vec(&*i.backend).unwrap();
        let roles: Vec<Vec<u8>> = i
            .roles
            .iter()
            .map(|r| serde_json::to_vec(&**r).unwrap())
            .collect();
        let roles: Vec<&[u8]> = roles.iter().map(Vec::as_slice).collect();
        i.key_with(&backend, &roles)
    };
    let mut i = inputs();
    assert_eq!(with_parts(&i), i.key());
    // No roles; several, with vars that need escaping; a shallow chain on an origin; a backend
    // with files.
    i.roles.clear();
    assert_eq!(with_parts(&i), i.key());
    let mut other = RoleInputs::clone(&inputs().roles[0]);
    other.name = "web \"quoted\" é".into();
    other.decl = RoleDeclInputs::of(&role(&["curl"], &["deb a b c"]));
    other
        .decl
        .vars
        .insert("MSG".into(), "a\nb\t\\ \u{1}".into());
    i.roles = vec![inputs().roles[0].clone(), Arc::new(other)];
    i.strategy = Strategy::Shallow;
    i.base = BaseInputs::Origin {
        identity: OriginIdentity::Id { id: "ami-1".into() },
    };
    i.chain.push(i.chain[0].clone());
    Arc::make_mut(&mut i.backend)
        .files
        .insert("build.sh".into(), "ab".repeat(32));
    assert_eq!(with_parts(&i), i.key());
    assert_ne!(with_parts(&i), inputs().key());
}

fn role(packages: &[&str], sources: &[&str]) -> Role {
    Role {
        name: "java".into(),
        dir: "roles/java".into(),
        depends: vec!["base".into()],
        packages: packages.iter().map(ToString::to_string).collect(),
        sources: sources.iter().map(ToString::to_string).collect(),
        vars: BTreeMap::new(),
    }
}

#[test]
fn a_roles_packages_and_sources_are_sets_and_its_other_fields_count() {
    let keyed = |r: &Role| {
        let mut i = inputs();
        Arc::make_mut(&mut i.roles[0]).decl = RoleDeclInputs::of(r);
        i.key()
    };
    let a = keyed(&role(&["curl", "less"], &["deb x y z", "deb a b c"]));
    let reordered = role(&["less", "curl", "less"], &["deb a b c", "deb x y z"]);
    assert_eq!(a, keyed(&reordered));
    assert_ne!(
        a,
        keyed(&role(&["curl", "less", "vim"], &["deb x y z", "deb a b c"]))
    );
    assert_ne!(a, keyed(&role(&["curl", "less"], &["deb x y z"])));
    let mut vars = role(&["curl", "less"], &["deb x y z", "deb a b c"]);
    vars.vars.insert("PORT".into(), "80".into());
    assert_ne!(a, keyed(&vars));
    let mut depends = vars.clone();
    depends.vars.clear();
    depends.depends.clear();
    assert_ne!(a, keyed(&depends));
}

#[test]
fn diff_names_the_fields_of_a_roles_declaration() {
    let old = inputs();
    let mut new = inputs();
    let role0 = Arc::make_mut(&mut new.roles[0]);
    role0.decl = RoleDeclInputs::of(&role(&["curl"], &[]));
    role0.decl.vars.insert("PORT".into(), "80".into());
    let none = |_: &str| None;
    let changes = diff(&old, &new, &none, &none);
    assert_eq!(
        changes,
        [
            Change::RoleDecl {
                role: "java".into(),
                field: "depends".into(),
                old: "[]".into(),
                new: "[\"base\"]".into()
            },
            Change::RoleDecl {
                role: "java".into(),
                field: "packages".into(),
                old: "[]".into(),
                new: "[\"curl\"]".into()
            },
            Change::RoleDecl {
                role: "java".into(),
                field: "vars.PORT".into(),
                old: "(unset)".into(),
                new: "\"80\"".into()
            },
        ]
    );
}

#[test]
fn diff_names_fields_roles_and_parents() {
    let old = inputs();
    let mut new = inputs();
    new.chain[0].packages = vec!["curl".into()];
    new.chain[0].vars.insert("PORT".into(), "8080".into());
    Arc::make_mut(&mut new.roles[0]).tree = "t2".into();
    new.base = BaseInputs::Parent {
        key: "11".repeat(32),
    };
    let none = |_: &str| None;
    let changes = diff(&old, &new, &none, &none);
    assert_eq!(changes.len(), 4, "{changes:?}");
    assert!(matches!(&changes[0], Change::Base { .. }));
    assert_eq!(
        changes[1],
        Change::Field {
            image: "app".into(),
            field: "packages".into(),
            old: "[]".into(),
            new: "[\"curl\"]".into()
        }
    );
    assert_eq!(
        changes[2],
        Change::Field {
            image: "app".into(),
            field: "vars.PORT".into(),
            old: "(unset)".into(),
            new: "\"8080\"".into()
        }
    );
    assert_eq!(
        changes[3],
        Change::Role {
            role: "java".into(),
            files: None
        }
    );
}
