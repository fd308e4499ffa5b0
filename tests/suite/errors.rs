//! Every error message, pinned: what a user sees on stderr, exit code 2, and nothing written.

use crate::common::{redact, run_layer, Project};

/// Runs `layer ARGS` expecting a usage or declaration error: exit code 2, nothing on stdout,
/// the project untouched and no record in the cache. Returns stderr with paths redacted.
fn fails(p: &Project, args: &[&str]) -> String {
    let tree = p.snapshot_tree();
    let out = p.layer(args).expect(2);
    assert_eq!(out.stdout, "", "nothing on stdout");
    assert_eq!(p.snapshot_tree(), tree, "the project is untouched");
    let cache: Vec<String> = p.cache_files().into_iter().map(|(f, _)| f).collect();
    assert!(
        cache
            .iter()
            .all(|f| f == "stat-cache" || f == "model-cache" || f == "since-cache"),
        "nothing in the cache but the stat, model and since caches: {cache:?}"
    );
    redact(p, &out.stderr)
}

/// [`fails`] for `layer plan`, which must also leave no cache folder at all when the
/// declarations do not load.
fn plan_fails(p: &Project) -> String {
    let err = fails(p, &["plan"]);
    assert!(!p.path("cache").exists(), "no cache folder on a load error");
    err
}

// ---------------------------------------------------------------------------------------------
// Unknown keys.

#[test]
fn unknown_key_in_layer_toml_with_a_hint() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\nstrategi = \"deep\"\n\n[origins.bb]\ntar = \"origins/base.tar\"\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn unknown_key_in_an_origin_with_a_hint() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bb]\ntarr = \"origins/base.tar\"\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn unknown_key_in_an_image_with_a_hint() {
    let p = Project::estate();
    p.file(
        "images/node.toml",
        "version = \"1.0\"\nform = \"base-linux\"\nroles = [\"web\"]\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn unknown_key_in_a_role_toml_with_a_hint() {
    let p = Project::estate();
    p.file("roles/java/role.toml", "depend = [\"base\"]\n");
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn unknown_key_without_a_close_match_lists_the_valid_keys() {
    let p = Project::estate();
    p.file(
        "images/node.toml",
        "version = \"1.0\"\nfrom = \"base-linux\"\ncolour = \"red\"\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn unknown_strategy_value_with_a_hint() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\nstrategy = \"dep\"\n\n[origins.bb]\ntar = \"origins/base.tar\"\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn toml_syntax_error_names_the_line() {
    let p = Project::estate();
    p.file(
        "images/node.toml",
        "version = \"1.0\"\nfrom = \"base-linux\nroles = [\"web\"]\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

// ---------------------------------------------------------------------------------------------
// Where an image starts.

#[test]
fn both_from_and_origin() {
    let p = Project::estate();
    p.file(
        "images/node.toml",
        "from = \"base-linux\"\norigin = \"bb\"\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn neither_from_nor_origin() {
    let p = Project::estate();
    p.file("images/node.toml", "version = \"1.0\"\nroles = [\"web\"]\n");
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn image_built_from_itself() {
    let p = Project::estate();
    p.file("images/node.toml", "from = \"node\"\n");
    insta::assert_snapshot!(plan_fails(&p));
}

// ---------------------------------------------------------------------------------------------
// Unknown names.

#[test]
fn unknown_parent_with_did_you_mean() {
    let p = Project::estate();
    p.file("images/node.toml", "from = \"base-linx\"\n");
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn unknown_parent_without_a_close_match_lists_the_images() {
    let p = Project::estate();
    p.file("images/node.toml", "from = \"ubuntu\"\n");
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn unknown_role_with_did_you_mean() {
    let p = Project::estate();
    p.file(
        "images/node.toml",
        "from = \"base-linux\"\nroles = [\"wbe\"]\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn unknown_role_in_depends_with_did_you_mean() {
    let p = Project::estate();
    p.file("roles/java/role.toml", "depends = [\"bsae\"]\n");
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn unknown_origin_with_did_you_mean() {
    let p = Project::estate();
    p.file("images/base-linux.toml", "origin = \"b\"\n");
    let err = plan_fails(&p);
    insta::assert_snapshot!(err);
    p.file("images/base-linux.toml", "origin = \"bbb\"\n");
    assert!(plan_fails(&p).contains("did you mean `bb`?"));
}

#[test]
fn unknown_backend_with_did_you_mean() {
    let p = Project::estate();
    p.file(
        "images/node.toml",
        "from = \"base-linux\"\nbackend = \"rootf\"\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn unknown_default_backend_in_layer_toml() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\nbackend = \"packr\"\n\n[origins.bb]\ntar = \"origins/base.tar\"\n\n\
         [backends.packer]\nkind = \"packer\"\ntemplate = \"packer/aws.pkr.hcl\"\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn a_backend_with_its_own_error_is_not_also_unknown_where_it_is_used() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\nbackend = \"aws\"\n\n[origins.bb]\ntar = \"origins/base.tar\"\n\n\
         [backends.aws]\nkind = \"packer\"\n",
    );
    p.file(
        "images/node.toml",
        "from = \"base-linux\"\nbackend = \"aws\"\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn backend_settings_that_do_not_go_together() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bb]\ntar = \"origins/base.tar\"\n\n\
         [backends.local]\nkind = \"rootfs\"\ncommand = [\"./x.sh\"]\n\n\
         [backends.cmd]\nkind = \"command\"\ntemplate = \"t.hcl\"\n\n\
         [backends.aws]\nkind = \"packer\"\ntemplate = \"../t.hcl\"\ncommand = [\"x\"]\n\n\
         [backends.gcp]\nkind = \"packer\"\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn unknown_backend_kind() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bb]\ntar = \"origins/base.tar\"\n\n\
         [backends.kube]\nkind = \"kubernetes\"\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn origin_settings_that_do_not_go_together() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bb]\ntar = \"origins/base.tar\"\n\n\
         [origins.two]\ntar = \"origins/base.tar\"\nid = \"ami-1\"\n\n\
         [origins.url]\ntar = \"https://example.com/rootfs.tar\"\n\n\
         [origins.short]\ntar = \"https://example.com/rootfs.tar\"\nsha256 = \"abc\"\n\n\
         [origins.pinned]\nid = \"ami-1\"\nsha256 = \"abc\"\n\n\
         [origins.blank]\nid = \"\"\n\n\
         [origins.nothing]\nresolve = []\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

// ---------------------------------------------------------------------------------------------
// Invalid names and values.

#[test]
fn invalid_image_name() {
    let p = Project::estate();
    p.file("images/Node.toml", "from = \"base-linux\"\n");
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn invalid_role_name() {
    let p = Project::estate();
    p.exec("roles/Web_Server/provision.sh", "#!/bin/sh\n");
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn invalid_origin_and_backend_names() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bb]\ntar = \"origins/base.tar\"\n\n\
         [origins.\"Base.Tar\"]\ntar = \"origins/base.tar\"\n\n\
         [backends.\"-aws\"]\nkind = \"command\"\ncommand = [\"./build.sh\"]\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn role_listed_twice() {
    let p = Project::estate();
    p.file(
        "images/node.toml",
        "from = \"base-linux\"\nroles = [\"web\",\n  \"web\"]\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn bad_version() {
    let p = Project::estate();
    p.file(
        "images/node.toml",
        "from = \"base-linux\"\nversion = \"1.0.3\"\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn bad_max_age() {
    let p = Project::estate();
    p.file(
        "images/node.toml",
        "from = \"base-linux\"\nmax_age = \"soon\"\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn bad_var_name() {
    let p = Project::estate();
    p.file(
        "images/node.toml",
        "from = \"base-linux\"\n[vars]\n\"1PORT\" = \"80\"\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn layer_variables_are_reserved() {
    let p = Project::estate();
    p.file(
        "images/node.toml",
        "from = \"base-linux\"\n[vars]\nLAYER_IMAGE = \"other\"\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn a_var_that_is_not_a_scalar() {
    let p = Project::estate();
    p.file("roles/web/role.toml", "[vars]\nPORTS = [80, 443]\n");
    insta::assert_snapshot!(plan_fails(&p));
}

// ---------------------------------------------------------------------------------------------
// Cycles.

#[test]
fn a_cycle_of_images() {
    let p = Project::estate();
    p.file("images/a.toml", "from = \"b\"\n");
    p.file("images/b.toml", "from = \"a\"\n");
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn a_cycle_of_role_depends() {
    let p = Project::estate();
    p.file("roles/base/role.toml", "depends = [\"web\"]\n");
    p.file("roles/web/role.toml", "depends = [\"java\"]\n");
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn a_role_that_depends_on_itself() {
    let p = Project::estate();
    p.file("roles/web/role.toml", "depends = [\"web\"]\n");
    insta::assert_snapshot!(plan_fails(&p));
}

// ---------------------------------------------------------------------------------------------
// Several at once.

#[test]
fn several_errors_in_several_files_are_reported_together_sorted() {
    let p = Project::estate();
    p.file("images/svc.toml", "from = \"ap\"\nversion = \"one\"\n");
    p.file(
        "images/node.toml",
        "from = \"base-linux\"\nroles = [\"wbe\"]\n",
    );
    p.file(
        "roles/java/role.toml",
        "depends = [\"base\"]\npackage = []\n",
    );
    p.file(
        "layer.toml",
        "[project]\nstrategy = \"deep\"\n\n[origins.bb]\ntar = \"origins/base.tar\"\n\n\
         [origins.empty]\n",
    );
    let err = plan_fails(&p);
    insta::assert_snapshot!(err);
    // Every command that loads the project says the same.
    for cmd in [&["list"][..], &["graph"], &["hash"], &["explain", "app"]] {
        assert_eq!(fails(&p, cmd), err, "{cmd:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs that cannot be read or must not be.

#[test]
fn a_symlinked_role_folder_outside_the_project() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(outside.path().join("shared")).unwrap();
    std::fs::write(outside.path().join("shared/provision.sh"), "#!/bin/sh\n").unwrap();
    let p = Project::estate();
    p.symlink(
        outside.path().join("shared").to_str().unwrap(),
        "roles/shared",
    );
    let err = plan_fails(&p).replace(
        &outside.path().canonicalize().unwrap().display().to_string(),
        "[OUTSIDE]",
    );
    insta::assert_snapshot!(err);
}

#[test]
fn a_symlinked_role_folder_inside_the_project_is_fine() {
    let p = Project::estate();
    p.symlink("web", "roles/www");
    p.layer(&["plan"]).expect(0);
}

#[test]
fn a_tar_origin_path_with_dotdot() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bb]\ntar = \"../base.tar\"\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn a_tar_origin_linked_outside_the_project() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("base.tar"), "rootfs").unwrap();
    let p = Project::estate();
    p.symlink(
        outside.path().join("base.tar").to_str().unwrap(),
        "origins/base.tar",
    );
    insta::assert_snapshot!(fails(&p, &["plan"]));
}

#[test]
fn a_missing_tar_origin_file() {
    let p = Project::estate();
    p.remove("origins/base.tar");
    insta::assert_snapshot!(fails(&p, &["plan"]));
}

#[test]
fn a_missing_busybox_file() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bb]\nbusybox = \"/nonexistent/bin/busybox\"\n",
    );
    insta::assert_snapshot!(fails(&p, &["plan"]));
}

#[test]
fn an_unresolved_resolve_origin_and_its_command_is_not_run() {
    let p = Project::estate();
    p.exec(
        "scripts/latest.sh",
        &format!(
            "#!/bin/sh\ntouch \"{}\"\necho ami-1\n",
            p.path("ran").display()
        ),
    );
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bb]\nresolve = [\"./scripts/latest.sh\"]\n",
    );
    insta::assert_snapshot!(fails(&p, &["plan"]));
    assert!(!p.path("ran").exists());
}

#[test]
fn a_fifo_inside_a_role_folder() {
    let p = Project::estate();
    let status = std::process::Command::new("mkfifo")
        .arg(p.path("roles/web/files-pipe"))
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    insta::assert_snapshot!(fails(&p, &["plan"]));
}

// ---------------------------------------------------------------------------------------------
// The command line.

#[test]
fn no_layer_toml() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_layer(dir.path(), &["plan"], &[]).expect(2);
    assert_eq!(out.stdout, "");
    let err = out
        .stderr
        .replace(&dir.path().display().to_string(), "[DIR]");
    insta::assert_snapshot!(err);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn dash_c_to_a_missing_folder() {
    let p = Project::estate();
    insta::assert_snapshot!(fails(&p, &["-C", "no/such/dir", "plan"]));
}

#[test]
fn unknown_target_with_did_you_mean() {
    let p = Project::estate();
    insta::assert_snapshot!(fails(&p, &["plan", "sv"]));
}

#[test]
fn unknown_target_without_a_close_match() {
    let p = Project::estate();
    insta::assert_snapshot!(fails(&p, &["plan", "database"]));
}

#[test]
fn unknown_image_in_every_command_that_takes_one() {
    let p = Project::estate();
    let err = fails(&p, &["plan", "ap"]);
    for cmd in [
        &["explain", "ap"][..],
        &["hash", "ap"],
        &["graph", "ap"],
        &["plan", "--changed", "svc", "ap"],
    ] {
        assert_eq!(fails(&p, cmd), err, "{cmd:?}");
    }
}

#[test]
fn a_bad_max_age_flag() {
    let p = Project::estate();
    insta::assert_snapshot!(fails(&p, &["plan", "--max-age", "soon"]));
}

#[test]
fn a_bad_strategy_flag() {
    let p = Project::estate();
    insta::assert_snapshot!(fails(&p, &["plan", "--strategy", "wide"]));
}

// ---------------------------------------------------------------------------------------------
// layer.lock

#[test]
fn unknown_key_in_layer_lock() {
    let p = Project::estate();
    p.file(
        "layer.lock",
        "version = 1\n\n[origins.bb]\nidd = \"ami-1\"\n",
    );
    insta::assert_snapshot!(plan_fails(&p));
}

#[test]
fn unknown_layer_lock_version() {
    let p = Project::estate();
    p.file("layer.lock", "version = 3\n");
    insta::assert_snapshot!(plan_fails(&p));
}

// ---------------------------------------------------------------------------------------------
// Apt sources and Debian archives.

#[test]
fn an_apt_source_that_is_not_a_deb_line() {
    let p = Project::estate();
    p.file(
        "images/base-linux.toml",
        "origin = \"bb\"\nsources = [\"https://example.com/debian bookworm main\", \"deb https://example.com/debian bookworm\"]\n",
    );
    insta::assert_snapshot!(plan_fails(&p), @r"
    error: images/base-linux.toml:2: source `https://example.com/debian bookworm main` is not a `deb URI SUITE [COMPONENT...]` line
      hint: e.g. `deb [signed-by=/etc/apt/keyrings/x.gpg] https://example.com/debian bookworm main`
    error: images/base-linux.toml:2: source `deb https://example.com/debian bookworm` names no component (a flat repository's suite ends in `/`, as `./`)
      hint: e.g. `deb [signed-by=/etc/apt/keyrings/x.gpg] https://example.com/debian bookworm main`
    2 declaration errors; nothing was built
    ");
}

#[test]
fn a_debian_origin_whose_security_is_neither_a_switch_nor_a_url() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bb]\ndebian = { suite = \"bookworm\", security = \"yes\" }\n",
    );
    insta::assert_snapshot!(plan_fails(&p), @r#"
    error: layer.toml:3: origin `bb`: `security = "yes"` is neither `true`, `false` nor a URL
      hint: e.g. `security = "http://deb.debian.org/debian-security"`
    "#);
}
