//! The remote cache as the commands use it (SPEC §8), over `file://` remotes in temporary
//! folders: two projects with separate local caches stand for two machines sharing one
//! remote. Machine A builds and pushes; machine B plans nothing to build, builds a child on
//! pulled parents and pushes it; A then plans nothing to build. Reads never write, refusals
//! warn, an unreachable remote costs one warning (or exit 2 with `--remote-required`).
//! The remote module's own tests (stores, envelopes, moto) are in `remote`'s unit tests.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use crate::common::{Output, Project, SCRIPT_DONE, SCRIPT_START};
use crate::needs::{self, Need};

/// A remote folder, a signing key and the projects that share them.
pub(crate) struct Shared {
    pub(crate) remote: tempfile::TempDir,
    /// The remote's URL when it is not the folder's `file://` (a server serving the folder).
    pub(crate) served_at: Option<String>,
    /// Holds the key file.
    _keys: tempfile::TempDir,
    /// `layer keygen`'s secret key file.
    key: PathBuf,
    /// Its public key, `ed25519:BASE64`.
    public: String,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        let keys = tempfile::tempdir().unwrap();
        let key = keys.path().join("signing.key");
        let out = Project::new().layer(&["keygen", "-o", key.to_str().unwrap()]);
        let out = out.expect(0);
        let public = out.stdout.trim().to_string();
        assert!(public.starts_with("ed25519:"), "{public}");
        Shared {
            remote: tempfile::tempdir().unwrap(),
            served_at: None,
            _keys: keys,
            key,
            public,
        }
    }

    fn url(&self) -> String {
        (self.served_at.clone())
            .unwrap_or_else(|| format!("file://{}", self.remote.path().display()))
    }

    /// `[remote]` trusting `keys`.
    pub(crate) fn remote_table(&self, keys: &[&str]) -> String {
        let keys: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
        format!(
            "\n[remote]\nurl = \"{}\"\ntrusted_keys = [{}]\n",
            self.url(),
            keys.join(", ")
        )
    }

    /// The command estate (`base <- app <- svc` on the `sh` backend) with `[remote]` trusting
    /// this key: one machine.
    fn machine(&self) -> Project {
        let p = Project::command_estate(&format!("{SCRIPT_START}{SCRIPT_DONE}"));
        self.trust(&p, &[&self.public]);
        p
    }

    /// Rewrites `[remote]` of `p` to trust `keys`.
    fn trust(&self, p: &Project, keys: &[&str]) {
        let toml = p.read("layer.toml");
        let toml = toml.split("\n[remote]").next().unwrap().to_string();
        p.file("layer.toml", &format!("{toml}{}", self.remote_table(keys)));
    }

    /// `layer ARGS` in `p` with the signing key: a read-write run.
    pub(crate) fn signed(&self, p: &Project, args: &[&str]) -> Output {
        p.layer_env(args, &[("LAYER_SIGNING_KEY", self.key.to_str().unwrap())])
    }

    /// Every file of the remote with its bytes.
    pub(crate) fn files(&self) -> BTreeMap<String, Vec<u8>> {
        walkdir::WalkDir::new(self.remote.path())
            .into_iter()
            .map(Result::unwrap)
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let rel = e.path().strip_prefix(self.remote.path()).unwrap();
                (rel.display().to_string(), fs::read(e.path()).unwrap())
            })
            .collect()
    }

    /// The record files on the remote, by image name.
    pub(crate) fn records(&self, name: &str) -> Vec<PathBuf> {
        let dir = self.remote.path().join("records").join(name);
        let mut v: Vec<PathBuf> = fs::read_dir(&dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

pub(crate) fn plan(p: &Project, extra: &[&str]) -> (serde_json::Value, Output) {
    let mut args = vec!["plan", "--format", "json"];
    args.extend_from_slice(extra);
    let out = p.layer(&args).expect(0);
    (serde_json::from_str(&out.stdout).unwrap(), out)
}

/// `(name, action, cached)` of every image of a JSON plan.
pub(crate) fn actions(plan: &serde_json::Value) -> Vec<(String, String, Option<String>)> {
    plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["action"].as_str().unwrap().to_string(),
                i.get("cached").map(|c| c.as_str().unwrap().to_string()),
            )
        })
        .collect()
}

pub(crate) fn row(
    name: &str,
    action: &str,
    cached: Option<&str>,
) -> (String, String, Option<String>) {
    (name.into(), action.into(), cached.map(String::from))
}

/// The images whose build script ran in `p` (its `out/marks`).
fn started(p: &Project) -> Vec<String> {
    fs::read_to_string(p.path("out/marks"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("start "))
        .map(String::from)
        .collect()
}

#[test]
fn two_machines_share_builds_through_the_remote() {
    let s = Shared::new();
    let a = s.machine();
    let b = s.machine();

    // A builds and pushes each build as it is recorded.
    let out = s.signed(&a, &["build", "--no-progress"]).expect(0);
    for name in ["base", "app", "svc"] {
        out.stderr_has(&format!("pushed {name} "));
        assert_eq!(s.records(name).len(), 1, "{name}");
    }

    // B: nothing to build, everything fresh from the remote, and no blob downloaded.
    let (p, out) = plan(&b, &[]);
    assert_eq!(
        actions(&p),
        [
            row("base", "fresh", Some("remote")),
            row("app", "fresh", Some("remote")),
            row("svc", "fresh", Some("remote")),
        ]
    );
    assert_eq!(p["summary"]["build"], 0);
    assert_eq!(out.stderr, "");
    assert!(
        !b.path("cache/records").exists(),
        "a plan downloads nothing"
    );
    let text = b.layer(&["plan"]).expect(0).stdout;
    assert_eq!(
        text,
        "deep plan: 0 to build, 3 fresh, 0 skipped\n  fresh (remote)  base\n  fresh (remote)  app\n  fresh (remote)  svc\n"
    );
    let md = b.layer(&["plan", "--format", "markdown"]).expect(0).stdout;
    assert!(md.contains("| `svc` | fresh (remote) |"), "{md}");
    // `--exit-code`: nothing would be built.
    b.layer(&["plan", "--exit-code"]).expect(0);

    // B adds a child of `svc`: the build pulls its chain and builds the child only, then
    // pushes it.
    let child = "version = \"0.1\"\nfrom = \"svc\"\nroles = [\"web\"]\n";
    b.file("images/edge.toml", child);
    let (p, _) = plan(&b, &[]);
    assert_eq!(actions(&p)[3], row("edge", "build", None));
    let out = s
        .signed(&b, &["build", "--no-progress", "--json"])
        .expect(0);
    assert_eq!(started(&b), ["edge"], "{}", out.stderr);
    for name in ["base", "app", "svc"] {
        out.stderr_has(&format!("pulled {name} "));
    }
    out.stderr_has("pushed edge ");
    let results: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(results[0]["action"], "fresh");
    assert_eq!(results[0]["cause"], "pulled from the remote cache");
    assert_eq!(results[3]["action"], "built");
    // edge was built on the pulled svc: LAYER_SOURCE was A's artifact id of svc.
    let (p, _) = plan(&b, &[]);
    assert!(actions(&p)
        .iter()
        .all(|(_, a, c)| a == "fresh" && c.as_deref() == Some("local")));

    // A: nothing to build; edge is fresh from the remote.
    a.file("images/edge.toml", child);
    let (p, _) = plan(&a, &[]);
    assert_eq!(
        actions(&p),
        [
            row("base", "fresh", Some("local")),
            row("app", "fresh", Some("local")),
            row("svc", "fresh", Some("local")),
            row("edge", "fresh", Some("remote")),
        ]
    );
    // `build --pull` downloads it; nothing is built.
    let out = a.layer(&["build", "--pull", "--no-progress"]).expect(0);
    out.stderr_has("pulled edge ");
    assert_eq!(started(&a), ["base", "app", "svc"]);
    let (p, _) = plan(&a, &["--no-remote"]);
    assert!(actions(&p).iter().all(|(_, a, _)| a == "fresh"));
}

#[test]
fn a_run_without_a_signing_key_never_writes_to_the_remote() {
    let s = Shared::new();
    let a = s.machine();
    s.signed(&a, &["build", "base", "--no-progress"]).expect(0);
    let before = s.files();
    assert!(!before.is_empty());

    let b = s.machine();
    let out = b.layer(&["build", "--no-progress"]).expect(0);
    assert_eq!(started(&b), ["app", "svc"], "{}", out.stderr);
    assert!(!out.stderr.contains("pushed"), "{}", out.stderr);
    b.layer(&["pull"]).expect(0);
    b.layer(&["plan"]).expect(0);
    b.layer(&["cache", "verify", "--remote"]).expect(0);
    assert_eq!(s.files(), before, "the remote is as it was");
}

#[test]
fn push_and_pull_move_current_builds_by_hand() {
    let s = Shared::new();
    let a = s.machine();
    a.layer(&["build", "--no-progress"]).expect(0);
    assert!(s.files().is_empty(), "no key, no push");

    let out = s.signed(&a, &["push", "app"]).expect(0);
    insta::assert_snapshot!(redact_versions(&out.stderr), @r"
      base  pushed          VERSION
      app   pushed          VERSION
    2 of 2 images moved, 0 failed
    ");
    let out = s.signed(&a, &["push"]).expect(0);
    insta::assert_snapshot!(redact_versions(&out.stderr), @r"
      base  already remote  VERSION
      app   already remote  VERSION
      svc   pushed          VERSION
    1 of 3 images moved, 0 failed
    ");

    let b = s.machine();
    b.file("images/edge.toml", "from = \"svc\"\n");
    let out = b.layer(&["pull"]).expect(0);
    insta::assert_snapshot!(redact_versions(&out.stderr), @r"
      base  pulled          VERSION
      app   pulled          VERSION
      svc   pulled          VERSION
      edge  not on remote
    3 of 4 images moved, 0 failed
    ");
    let (p, _) = plan(&b, &["--no-remote"]);
    assert_eq!(p["summary"]["fresh"], 3);
    let out = b.layer(&["pull", "svc"]).expect(0);
    out.stderr_has("svc   already local");

    // `cache ls --remote` and `verify --remote`.
    let out = b.layer(&["cache", "ls", "--remote"]).expect(0);
    assert!(out.stdout.starts_with("IMAGE  VERSION"), "{}", out.stdout);
    assert!(
        out.stdout
            .ends_with("3 records on the remote, 0 not trusted\n"),
        "{}",
        out.stdout
    );
    let out = b
        .layer(&["cache", "verify", "--remote", "--json"])
        .expect(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["verdict"] == "trusted"));
}

/// Versions as `VERSION`, so lines do not change with the clock.
fn redact_versions(s: &str) -> String {
    s.lines()
        .map(|l| {
            l.split(' ')
                .map(|w| {
                    if w.contains('-') && w.starts_with(|c: char| c.is_ascii_digit()) {
                        "VERSION"
                    } else {
                        w
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn untrusted_and_tampered_records_are_refused_with_a_warning() {
    let s = Shared::new();
    let a = s.machine();
    s.signed(&a, &["build", "--no-progress"]).expect(0);

    // Signed by a key B does not trust.
    let b = s.machine();
    let other = Shared::new();
    s.trust(&b, &[&other.public]);
    let (p, out) = plan(&b, &[]);
    assert_eq!(p["summary"]["build"], 3);
    let warnings: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(warnings.len(), 3, "{}", out.stderr);
    for w in &warnings {
        assert!(w.starts_with("warning: "), "{w}");
        assert!(w.contains(&s.public), "names the signer: {w}");
    }
    // Trusting nobody is the same.
    s.trust(&b, &[]);
    let (p, out) = plan(&b, &[]);
    assert_eq!(p["summary"]["build"], 3);
    assert_eq!(out.stderr.lines().count(), 3, "{}", out.stderr);

    // A flipped byte in a record: refused, and the images on it build.
    s.trust(&b, &[&s.public]);
    let rec = &s.records("app")[0];
    let mut bytes = fs::read(rec).unwrap();
    let at = bytes.iter().position(|&c| c == b'2').unwrap();
    bytes[at] = b'3';
    fs::write(rec, bytes).unwrap();
    let (p, out) = plan(&b, &[]);
    assert_eq!(
        actions(&p),
        [
            row("base", "fresh", Some("remote")),
            row("app", "build", None),
            row("svc", "build", None),
        ]
    );
    let key = p["images"][1]["key"].as_str().unwrap();
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.starts_with("warning: "), "{}", out.stderr);
    assert!(
        out.stderr.contains(&key[..12]),
        "names the key: {}",
        out.stderr
    );
    // `cache verify --remote` fails on it.
    let out = b.layer(&["cache", "verify", "--remote"]).expect(1);
    assert!(
        out.stdout
            .ends_with("3 records on the remote, 1 not trusted\n"),
        "{}",
        out.stdout
    );
    // An unsigned record (signature and signer taken out): refused, and everything builds.
    let rec = &s.records("base")[0];
    let mut envelope: serde_json::Value = serde_json::from_slice(&fs::read(rec).unwrap()).unwrap();
    let obj = envelope.as_object_mut().unwrap();
    obj.remove("signature").unwrap();
    obj.remove("signer").unwrap();
    fs::write(rec, serde_json::to_vec(&envelope).unwrap()).unwrap();
    let (p, out) = plan(&b, &[]);
    assert_eq!(p["summary"]["build"], 3);
    let key = p["images"][0]["key"].as_str().unwrap();
    let first = out.stderr.lines().next().unwrap();
    assert!(
        first.starts_with("warning: ") && first.contains(&key[..12]),
        "{}",
        out.stderr
    );
    assert!(first.contains("unsigned"), "{}", out.stderr);
    let out = b.layer(&["build", "--no-progress"]).expect(0);
    assert_eq!(started(&b), ["base", "app", "svc"], "{}", out.stderr);
}

#[test]
fn an_unreachable_remote_is_one_warning_or_with_remote_required_an_error() {
    let p = Shared::new().machine();
    // Nothing listens on port 9 of loopback.
    let url = "http://127.0.0.1:9/cache";
    let out = p.layer(&["plan", "--remote", url]).expect(0);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    assert!(lines[0].starts_with("warning: "), "{}", out.stderr);
    assert_eq!(
        lines[1],
        "  note: going on with the local cache only (`--remote-required` makes this an error)"
    );
    // The same through LAYER_REMOTE; `--exit-code` says 1 (to build), as without a remote.
    p.layer(&["plan", "--exit-code", "--no-remote"]).expect(1);
    let out = p.layer_env(&["plan", "--exit-code"], &[("LAYER_REMOTE", url)]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.starts_with("warning: "), "{}", out.stderr);

    let out = p
        .layer(&["plan", "--remote-required", "--remote", url])
        .expect(2);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert_eq!(out.stdout, "");
    // --no-remote: not asked at all.
    let out = p.layer(&["plan", "--no-remote", "--remote", url]).expect(0);
    assert_eq!(out.stderr, "");

    // A build goes on locally, with the same exit code.
    let out = p
        .layer(&["build", "--no-progress", "--remote", url])
        .expect(0);
    assert_eq!(started(&p), ["base", "app", "svc"], "{}", out.stderr);
    assert!(out.stderr.starts_with("warning: "), "{}", out.stderr);
}

#[test]
fn remote_errors_say_what_to_do() {
    let s = Shared::new();
    let p = s.machine();

    // push without a signing key.
    let out = p.layer(&["push"]).expect(2);
    insta::assert_snapshot!(out.stderr, @r"
    error: `layer push` needs a signing key: `LAYER_SIGNING_KEY` is not set
      hint: set `LAYER_SIGNING_KEY` to the key file `layer keygen` wrote, or to the key itself
    ");
    // push, pull or `cache ls --remote` without a remote.
    let bare = Project::command_estate(&format!("{SCRIPT_START}{SCRIPT_DONE}"));
    for args in [&["pull"][..], &["cache", "ls", "--remote"]] {
        let out = bare.layer(args).expect(2);
        assert_eq!(
            out.stderr,
            "error: no remote cache: `layer.toml` has no `[remote]`\n  hint: add `[remote]` with `url = \"s3://BUCKET/PREFIX\"` to `layer.toml`, or give `--remote URL`\n"
        );
    }
    let out = p.layer(&["pull", "--no-remote"]).expect(2);
    assert!(
        out.stderr
            .starts_with("error: `--no-remote`: this command needs the remote cache\n"),
        "{}",
        out.stderr
    );
    let out = bare.layer(&["plan", "--remote-required"]).expect(2);
    assert!(
        out.stderr
            .starts_with("error: no remote cache: `layer.toml` has no `[remote]`\n"),
        "{}",
        out.stderr
    );
    // A signing key that is not one, before anything builds.
    let out = p
        .layer_env(&["build"], &[("LAYER_SIGNING_KEY", "hunter2")])
        .expect(2);
    assert!(
        out.stderr.starts_with(
            "error: `LAYER_SIGNING_KEY` is neither a secret key nor a path to a key file\n"
        ),
        "{}",
        out.stderr
    );
    assert!(started(&p).is_empty());
    // keygen never overwrites a key.
    let out = p
        .layer(&["keygen", "-o", s.key.to_str().unwrap()])
        .expect(2);
    out.stderr_has("already exists: layer never overwrites a key");
    // `--remote` with a URL layer cannot use.
    let out = p.layer(&["plan", "--remote", "ftp://host/x"]).expect(2);
    assert!(
        out.stderr.starts_with("error: remote `ftp://host/x`: "),
        "{}",
        out.stderr
    );
}

#[test]
fn remote_declarations_are_checked_with_file_and_line() {
    let p = Project::new();
    p.file(
        "layer.toml",
        "[project]\n\n[remote]\nurl = \"ftp://cache.example/layer\"\ntrusted_keys = [\"ed25519:AAAA\", \"rsa:xyz\"]\n",
    );
    let out = p.layer(&["plan"]).expect(2);
    insta::assert_snapshot!(out.stderr, @r"
    error: layer.toml:4: remote: `ftp://cache.example/layer`: `ftp://` is not a remote layer can use
      hint: use `s3://BUCKET/PREFIX`, `file:///PATH` or `https://HOST/PATH`
    error: layer.toml:5: remote: `ed25519:AAAA` is not a public key
      hint: trusted keys are written `ed25519:BASE64`, as `layer keygen` prints them
    error: layer.toml:5: remote: `rsa:xyz` is not a public key
      hint: trusted keys are written `ed25519:BASE64`, as `layer keygen` prints them
    3 declaration errors; nothing was built
    ");
    for (toml, message) in [
        (
            "[remote]\ntrusted_keys = []\n",
            "layer.toml:1: `[remote]` needs a `url`",
        ),
        (
            "[remote]\nurl = \"file://relative/path\"\n",
            "layer.toml:2: remote: `file://relative/path` is not an absolute `file:///PATH`",
        ),
        (
            "[remote]\nurl = \"s3://\"\n",
            "layer.toml:2: remote: `s3://` names no bucket",
        ),
        (
            "[remote]\nurl = \"cache.example\"\n",
            "layer.toml:2: remote: `cache.example` is not a URL",
        ),
        ("[remote]\nurll = \"s3://b\"\n", "layer.toml"),
    ] {
        p.file("layer.toml", toml);
        let out = p.layer(&["plan"]).expect(2);
        assert!(out.stderr.contains(message), "{toml}: {}", out.stderr);
    }
    // Valid: s3, https and file URLs; a key as keygen prints it, with or without padding.
    let key = Shared::new().public;
    for url in [
        "s3://bucket/prefix",
        "https://cache.example/layer",
        "file:///srv/cache",
    ] {
        p.file(
            "layer.toml",
            &format!(
                "[remote]\nurl = \"{url}\"\ntrusted_keys = [\"{key}\", \"{}\"]\n",
                key.trim_end_matches('=')
            ),
        );
        let out = p.layer(&["plan", "--no-remote"]);
        assert_eq!(out.code, 0, "{url}: {}", out.stderr);
    }
}

#[test]
fn keygen_writes_the_secret_key_0600_and_prints_the_public_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = Project::new();
    // Default: under XDG_CONFIG_HOME, outside any repository.
    let out = p
        .layer_env(
            &["keygen"],
            &[("XDG_CONFIG_HOME", dir.path().to_str().unwrap())],
        )
        .expect(0);
    let file = dir.path().join("layer/signing.key");
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        out.stdout.starts_with("ed25519:") && out.stdout.ends_with("=\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.starts_with(&format!(
            "wrote the secret key to `{}` (mode 0600)\n",
            file.display()
        )),
        "{}",
        out.stderr
    );
    assert!(!fs::read_to_string(&file)
        .unwrap()
        .contains(out.stdout.trim()));
    // Without a home there is no default.
    let out = p
        .layer_env(&["keygen"], &[("XDG_CONFIG_HOME", ""), ("HOME", "")])
        .expect(2);
    insta::assert_snapshot!(out.stderr, @r"
    error: neither `XDG_CONFIG_HOME` nor `HOME` is set: no default key file
      hint: name the file: `layer keygen -o FILE`
    ");
}

/// A project on a busybox origin, trusting `s`'s key: `base <- app`, each role changing files.
pub(crate) fn rootfs_chain(s: &Shared) -> Project {
    let p = Project::new();
    p.file(
        "layer.toml",
        &format!(
            "[project]\n\n[origins.bb]\nbusybox = \"{}\"\n{}",
            needs::busybox().unwrap().display(),
            s.remote_table(&[&s.public])
        ),
    );
    p.file("images/base.toml", "origin = \"bb\"\nroles = [\"base\"]\n");
    p.file("images/app.toml", "from = \"base\"\nroles = [\"app\"]\n");
    p.exec(
        "roles/base/provision.sh",
        "set -eu\necho base > /etc/motd\nrm /bin/vi\nmkdir -p /srv\necho 1 > /srv/one\n",
    );
    p.exec(
        "roles/app/provision.sh",
        "set -eu\nrm /srv/one\necho app > /srv/app\n",
    );
    p
}

/// A blob with a flipped byte passes the plan's look (it is there, with its size) but not
/// the pull's digest check: the image is built instead, and so is what stood on it.
#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn a_damaged_blob_is_built_instead_with_a_warning() {
    needs::check(&[Need::Root, Need::Busybox]);
    let s = Shared::new();
    let a = rootfs_chain(&s);
    s.signed(&a, &["build", "--no-progress"]).expect(0);
    let envelope: serde_json::Value =
        serde_json::from_slice(&fs::read(&s.records("base")[0]).unwrap()).unwrap();
    let blob = envelope["signed"]["blobs"][0]["path"].as_str().unwrap();
    let blob = s.remote.path().join(blob);
    let mut bytes = fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&blob, bytes).unwrap();

    let b = rootfs_chain(&s);
    // B built another base before, so its next build of base is numbered 1, not A's 0.
    let role = b.read("roles/base/provision.sh");
    b.exec(
        "roles/base/provision.sh",
        "set -eu\necho other > /etc/motd\n",
    );
    b.layer(&["build", "base", "--no-progress", "--no-remote"])
        .expect(0);
    b.exec("roles/base/provision.sh", &role);
    b.file("images/edge.toml", "from = \"app\"\n");
    let (p, _) = plan(&b, &[]);
    assert_eq!(actions(&p)[0], row("base", "fresh", Some("remote")));
    let out = b.layer(&["build", "--no-progress"]).expect(0);
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert!(
        warnings[0].starts_with("warning: pull of `base` failed: "),
        "{}",
        out.stderr
    );
    assert!(
        warnings[0].contains("does not match the digest and size the record names"),
        "{}",
        out.stderr
    );
    assert!(
        warnings[0].ends_with(": building it instead"),
        "{}",
        out.stderr
    );
    for name in ["base", "edge"] {
        out.stderr_has(&format!("built {name} "));
    }
    // `app` was built on A's build of base, not on the one B just made: built again.
    assert_eq!(
        warnings[1..],
        ["warning: the remote's build of `app` stands on another build of `base` than this run's: building it instead"],
        "{}",
        out.stderr
    );
    out.stderr_has("built app ");
    // The remote is as it was: this run had no key.
    assert_eq!(s.records("base").len(), 1);
}

/// A deep rootfs chain on a busybox origin, built on A, pulled by B (layers verified), and
/// exported to the same bytes on both.
#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn a_rootfs_chain_round_trips_through_the_remote() {
    needs::check(&[Need::Root, Need::Busybox]);
    let s = Shared::new();
    let a = rootfs_chain(&s);
    let out = s.signed(&a, &["build", "--no-progress"]).expect(0);
    // Off a terminal, a line per transfer with its size, time and rate.
    for name in ["base", "app"] {
        crate::remote_http::assert_moved(&out.stderr, "pushed", name);
    }
    let b = rootfs_chain(&s);
    b.file("images/edge.toml", "from = \"app\"\nroles = [\"edge\"]\n");
    b.exec(
        "roles/edge/provision.sh",
        "set -eu\necho edge >> /srv/app\n",
    );
    let out = s.signed(&b, &["build", "--no-progress"]).expect(0);
    crate::remote_http::assert_moved(&out.stderr, "pulled", "base");
    crate::remote_http::assert_moved(&out.stderr, "pulled", "app");
    crate::remote_http::assert_moved(&out.stderr, "pushed", "edge");
    out.stderr_has("built edge ");
    assert!(!out.stderr.contains("built app "), "{}", out.stderr);

    // The same tar on both machines: each makes the busybox origin itself, with the busybox
    // binary's mtime on every entry, and the layers are the pulled bytes.
    let export = |p: &Project, image: &str| {
        let tar = p.path(&format!("{image}.tar"));
        p.layer(&[
            "export",
            image,
            "--format",
            "tar",
            "-o",
            tar.to_str().unwrap(),
        ])
        .expect(0);
        let out = std::process::Command::new("tar")
            .args([
                "--list",
                "--verbose",
                "--full-time",
                "--numeric-owner",
                "-f",
            ])
            .arg(&tar)
            .output()
            .unwrap();
        let listing = String::from_utf8(out.stdout).unwrap();
        listing
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!("{} {} {} {}", f[0], f[1], f[2], f[5..].join(" "))
            })
            .collect::<Vec<_>>()
    };
    let listing = export(&a, "app");
    assert!(
        listing.iter().any(|l| l.ends_with(" ./srv/app")),
        "{listing:?}"
    );
    assert!(
        !listing.iter().any(|l| l.ends_with(" ./srv/one")),
        "{listing:?}"
    );
    assert_eq!(listing, export(&b, "app"), "the same tars");
    assert!(
        fs::read(a.path("app.tar")).unwrap() == fs::read(b.path("app.tar")).unwrap(),
        "the exports of one build on two machines differ in their bytes"
    );
    a.file("images/edge.toml", "from = \"app\"\nroles = [\"edge\"]\n");
    a.exec(
        "roles/edge/provision.sh",
        "set -eu\necho edge >> /srv/app\n",
    );
    let out = a.layer(&["pull", "edge"]).expect(0);
    crate::remote_http::assert_moved_row(&out.stderr, "edge");
    assert_eq!(export(&a, "edge"), export(&b, "edge"));
}
