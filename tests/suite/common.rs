//! Test support: a project written into a temporary folder, the real `layer` binary run on it,
//! and records written through the library as a successful build would write them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use layer::model::Strategy;
use layer::record::Lookup;
use layer::record::{Artifact, ParentRef, Record, RECORD_FORMAT};
use layer::workspace::Workspace;

pub(crate) struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics with both streams unless the exit code is `code`.
    pub(crate) fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics with stderr unless it holds `text`.
    #[track_caller]
    pub(crate) fn stderr_has(&self, text: &str) -> &Self {
        holds("stderr", &self.stderr, text);
        self
    }

    /// Panics with stdout unless it holds `text`.
    #[track_caller]
    pub(crate) fn stdout_has(&self, text: &str) -> &Self {
        holds("stdout", &self.stdout, text);
        self
    }
}

#[track_caller]
fn holds(name: &str, stream: &str, text: &str) {
    assert!(
        stream.contains(text),
        "{name} lacks {text:?}\n--- {name}\n{stream}"
    );
}

/// The stdout of `out` as JSON (panics with it when it is not).
pub(crate) fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: not JSON\n--- stdout\n{}", out.stdout))
}

pub(crate) struct Project {
    dir: tempfile::TempDir,
}

impl Default for Project {
    fn default() -> Self {
        Self::new()
    }
}

impl Project {
    /// An empty folder with a `layer.toml` holding `[project]` only.
    pub(crate) fn new() -> Self {
        let p = Project {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        p.file("layer.toml", "[project]\n");
        p
    }

    /// A project on the static `busybox`: `layer.toml` holds `[project]` with the lines
    /// `project`, and origin `bb`.
    pub(crate) fn on_busybox(busybox: &Path, project: &str) -> Self {
        let p = Project::new();
        p.file(
            "layer.toml",
            &format!(
                "[project]\n{project}\n[origins.bb]\nbusybox = \"{}\"\n",
                busybox.display()
            ),
        );
        p
    }

    /// A small estate: origin `bb` (a file in the project used as a tarball), roles
    /// `base` <- `java` (depends), `web`; images `base-linux` <- `app` <- `svc`, and
    /// `node` on `base-linux`.
    pub(crate) fn estate() -> Self {
        let p = Project::new();
        p.file(
            "layer.toml",
            "[project]\nstrategy = \"deep\"\n\n[origins.bb]\ntar = \"origins/base.tar\"\n",
        );
        p.file(
            "origins/base.tar",
            "not really a tarball, but content is what is hashed\n",
        );
        p.file("roles/base/files/etc/motd", "welcome\n");
        p.exec("roles/base/provision.sh", "#!/bin/sh\necho base\n");
        p.file(
            "roles/java/role.toml",
            "depends = [\"base\"]\npackages = [\"openjdk\"]\n",
        );
        p.exec("roles/java/provision.sh", "#!/bin/sh\necho java\n");
        p.exec("roles/web/provision.sh", "#!/bin/sh\necho web\n");
        p.file("roles/web/tests/http.sh", "wget -q -O- http://127.0.0.1/\n");
        p.file(
            "images/base-linux.toml",
            "version = \"1.0\"\norigin = \"bb\"\nroles = [\"base\"]\n",
        );
        p.file("images/app.toml", "version = \"2.0\"\nfrom = \"base-linux\"\nroles = [\"java\"]\n[vars]\nPORT = \"8080\"\n");
        p.file(
            "images/svc.toml",
            "version = \"1.0\"\nfrom = \"app\"\nroles = [\"web\"]\n",
        );
        p.file(
            "images/node.toml",
            "version = \"1.0\"\nfrom = \"base-linux\"\nroles = [\"web\"]\n",
        );
        p
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub(crate) fn file(&self, rel: &str, content: &str) -> &Self {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        self
    }

    /// Replaces `rel`'s content, keeping its mtime (`touch -r` of its old self).
    pub(crate) fn edit_keeping_mtime(&self, rel: &str, content: &str) {
        let path = self.path(rel);
        let mtime = fs::metadata(&path).unwrap().modified().unwrap();
        self.file(rel, content);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    }

    /// A file with mode 0755.
    pub(crate) fn exec(&self, rel: &str, content: &str) -> &Self {
        self.file(rel, content);
        self.chmod(rel, 0o755)
    }

    pub(crate) fn chmod(&self, rel: &str, mode: u32) -> &Self {
        fs::set_permissions(self.path(rel), fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    pub(crate) fn symlink(&self, target: &str, rel: &str) -> &Self {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = fs::remove_file(&path);
        std::os::unix::fs::symlink(target, &path).unwrap();
        self
    }

    pub(crate) fn remove(&self, rel: &str) -> &Self {
        let path = self.path(rel);
        if path.is_dir() {
            fs::remove_dir_all(path).unwrap();
        } else {
            fs::remove_file(path).unwrap();
        }
        self
    }

    pub(crate) fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }

    /// Runs `layer ARGS` in the project root, with a clean colour setting.
    pub(crate) fn layer(&self, args: &[&str]) -> Output {
        self.layer_in(self.root(), args)
    }

    pub(crate) fn layer_in(&self, cwd: &Path, args: &[&str]) -> Output {
        run_layer(cwd, args, &[])
    }

    /// `layer plan --format json ARGS`, the image named `name` of it.
    pub(crate) fn planned(&self, extra: &[&str], name: &str) -> serde_json::Value {
        planned_in(&self.plan_json(extra), name)
    }

    /// `(action, reasons)` of image `name` in `layer plan --format json ARGS`.
    pub(crate) fn verdict(&self, extra: &[&str], name: &str) -> (String, serde_json::Value) {
        let i = self.planned(extra, name);
        (
            i["action"].as_str().unwrap().to_string(),
            i["reasons"].clone(),
        )
    }

    /// Records under a strategy other than the project's.
    pub(crate) fn record_with(&self, strategy: Strategy, names: &[&str]) {
        record_images_with(
            self.root(),
            None,
            Some(strategy),
            names,
            "2026-11-20T10:00:00Z",
        );
    }

    /// The record file of the current key of `name` in the default cache.
    pub(crate) fn record_path(&self, name: &str) -> PathBuf {
        let dir = self.path(&format!("cache/records/{name}"));
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "one record of `{name}`: {files:?}");
        files.pop().unwrap()
    }

    /// Every file under the cache folder, relative to it, with its content.
    pub(crate) fn cache_files(&self) -> Vec<(String, Vec<u8>)> {
        let dir = self.path("cache");
        if !dir.exists() {
            return vec![];
        }
        walkdir::WalkDir::new(&dir)
            .sort_by_file_name()
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                (
                    e.path()
                        .strip_prefix(&dir)
                        .unwrap()
                        .to_string_lossy()
                        .to_string(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    }

    /// A copy of the project (cache included) in a new temporary folder: files, modes and
    /// symlinks as they are.
    pub(crate) fn clone_project(&self) -> Project {
        let p = Project {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        for e in walkdir::WalkDir::new(self.root()).min_depth(1) {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(self.root()).unwrap();
            let to = p.root().join(rel);
            let ft = e.file_type();
            if ft.is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(e.path()).unwrap(), &to).unwrap();
            } else if ft.is_dir() {
                fs::create_dir_all(&to).unwrap();
            } else {
                fs::copy(e.path(), &to).unwrap();
            }
        }
        p
    }

    /// `layer plan --format json`, parsed.
    pub(crate) fn plan_json(&self, extra: &[&str]) -> serde_json::Value {
        let mut args = vec!["plan", "--format", "json"];
        args.extend_from_slice(extra);
        let out = self.layer(&args).expect(0);
        serde_json::from_str(&out.stdout).unwrap()
    }

    /// `action` of every image in the plan, by name.
    pub(crate) fn actions(&self, extra: &[&str]) -> Vec<(String, String)> {
        name_actions(&self.plan_json(extra)["images"])
    }

    /// Records the named images (all when empty) as built now, with their current keys, the
    /// way a successful build records them: parents first, each on its parent's record.
    pub(crate) fn record(&self, names: &[&str]) {
        self.record_at(names, "2026-11-20T10:00:00Z");
    }

    pub(crate) fn record_at(&self, names: &[&str], built_at: &str) {
        record_images(self.root(), None, names, built_at);
    }

    /// Every file under the project (cache excluded) with its content, for "nothing was
    /// written" checks.
    pub(crate) fn snapshot_tree(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for e in walkdir::WalkDir::new(self.root()).sort_by_file_name() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(self.root())
                .unwrap()
                .to_string_lossy()
                .to_string();
            if rel == "cache" || rel.starts_with("cache/") {
                continue;
            }
            let content = if e.file_type().is_file() {
                fs::read(e.path()).unwrap()
            } else {
                vec![]
            };
            out.push((rel, content));
        }
        out
    }
}

/// Records the named images of the project at `root` (all when empty) as built at
/// `built_at`, with their current keys, as a successful build records them: parents first,
/// each on its parent's record, with an artifact file in the cache.
pub(crate) fn record_images(root: &Path, cache: Option<PathBuf>, names: &[&str], built_at: &str) {
    record_images_with(root, cache, None, names, built_at);
}

/// [`record_images`] under `strategy` (the project's own when `None`).
pub(crate) fn record_images_with(
    root: &Path,
    cache: Option<PathBuf>,
    strategy: Option<Strategy>,
    names: &[&str],
    built_at: &str,
) {
    record_images_holding(root, cache, strategy, names, built_at, &|_| None);
}

/// [`record_images_with`], each record holding the package manifest `packages(IMAGE)` gives,
/// as a rootfs build records what it installed.
pub(crate) fn record_images_holding(
    root: &Path,
    cache: Option<PathBuf>,
    strategy: Option<Strategy>,
    names: &[&str],
    built_at: &str,
    packages: &dyn Fn(&str) -> Option<layer::packages::Manifest>,
) {
    let ws = Workspace::open(root, cache, strategy).expect("project loads");
    let mut parent_versions: std::collections::HashMap<String, String> =
        std::collections::HashMap::new();
    for (i, l) in ws.lookups.iter().enumerate() {
        if let Lookup::Found(r) = l {
            parent_versions.insert(ws.project.images[i].name.clone(), r.version.clone());
        }
    }
    for (i, image) in ws.project.images.iter().enumerate() {
        if !names.is_empty() && !names.contains(&image.name.as_str()) {
            continue;
        }
        let key = &ws.keys[i];
        let build = ws.cache.records(&image.name).len();
        let version = format!("{}.{build}-20261120_1000", image.version);
        let artifact_rel = format!("artifacts/{}/{}", image.name, key.key);
        let artifact = ws.cache.dir().join(&artifact_rel);
        fs::create_dir_all(artifact.parent().unwrap()).unwrap();
        fs::write(&artifact, format!("artifact of {}", image.name)).unwrap();
        let parent = image.parent().map(|p| {
            let pi = ws.index(p).unwrap();
            ParentRef {
                name: p.to_string(),
                key: ws.keys[pi].key.clone(),
                version: parent_versions
                    .get(p)
                    .cloned()
                    .unwrap_or_else(|| "unbuilt".into()),
            }
        });
        let record = Record {
            format: RECORD_FORMAT,
            name: image.name.clone(),
            key: key.key.clone(),
            version: version.clone(),
            built_at: built_at.to_string(),
            duration_ms: 1,
            forced: false,
            artifact: Artifact {
                id: format!("{}-{}.{build}", image.name, image.version),
                path: Some(artifact_rel),
                blake3: None,
                size: None,
                remote: None,
            },
            parent,
            tags: Default::default(),
            inputs: key.inputs.clone(),
            packages: packages(&image.name),
        };
        let trees: Vec<layer::scan::Tree> = key
            .inputs
            .roles
            .iter()
            .map(|r| ws.tree(&r.name).expect("the role's tree"))
            .collect();
        ws.cache
            .write_record(&record, &trees.iter().collect::<Vec<_>>())
            .expect("record written");
        parent_versions.insert(image.name.clone(), version);
    }
}

/// Runs a tool and returns its stdout; panics with the command and its stderr when it fails.
pub(crate) fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("the tool runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs the `layer` binary in `cwd` with `NO_COLOR=1`, no `LAYER_CACHE` and the extra
/// environment `env`.
pub(crate) fn run_layer(cwd: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = layer_command(cwd, args, &[]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("layer runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Now, as RFC 3339 (UTC, seconds), for records young enough for any `max_age`.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Replaces the temporary project path in `s` with `[ROOT]`.
pub(crate) fn redact(p: &Project, s: &str) -> String {
    let root = p.root().canonicalize().unwrap();
    s.replace(&root.display().to_string(), "[ROOT]")
        .replace(&p.root().display().to_string(), "[ROOT]")
}

// ---------------------------------------------------------------------------------------------
// Builds through the real binary with the `command` backend.

/// The backend script's opening: `out/` (outside the cache, ignored by keys) gets a `start`
/// line per build in `out/marks`.
pub(crate) const SCRIPT_START: &str =
    "#!/bin/sh\nset -eu\nmkdir -p out\necho \"start $LAYER_IMAGE\" >> out/marks\n";

/// The backend script's end: a `done` line, and the artifact id `art-IMAGE-VERSION`.
pub(crate) const SCRIPT_DONE: &str =
    "echo \"done $LAYER_IMAGE\" >> out/marks\necho \"art-$LAYER_IMAGE-$LAYER_VERSION\" > \"$LAYER_OUTPUT\"\n";

/// Shell lines that wait for the file `out/go` (for at most about 30 s, then fail), so a test
/// can hold a build in the middle.
pub(crate) const SCRIPT_WAIT_FOR_GO: &str =
    "n=0\nwhile [ ! -e out/go ]; do n=$((n+1)); [ $n -lt 600 ] || exit 9; sleep 0.05; done\n";

impl Project {
    /// A project built by the `command` backend `sh` running `./build.sh` (whose body is
    /// `script`), from the origin `cloud` (`id = "ami-0abc"`):
    ///
    /// ```text
    /// cloud -> base [base] -> app [app] -> svc [web]
    /// ```
    ///
    /// Role `base` has `files/` (modes 0644, 0755 and 0600), a `[vars]` GREETING and a
    /// `provision.sh`; `app` and `web` have a `provision.sh`. Every provisioner appends a line
    /// to `/provisioned` using shell builtins only. `app` has `[vars] PORT = "8080"`.
    pub(crate) fn command_estate(script: &str) -> Self {
        let p = Project::new();
        p.file(
            "layer.toml",
            "[project]\nstrategy = \"deep\"\nbackend = \"sh\"\n\n[origins.cloud]\nid = \"ami-0abc\"\n\n[backends.sh]\nkind = \"command\"\ncommand = [\"./build.sh\"]\n",
        );
        p.exec("build.sh", script);
        p.file(".gitignore", "cache/\nout/\n");
        p.file("roles/base/role.toml", "[vars]\nGREETING = \"hello\"\n");
        p.file("roles/base/files/etc/motd", "welcome\n");
        p.exec(
            "roles/base/files/usr/local/bin/hello",
            "#!/bin/sh\necho hello\n",
        );
        p.file("roles/base/files/etc/base.key", "private\n");
        p.chmod("roles/base/files/etc/base.key", 0o600);
        p.chmod("roles/base/files/etc/motd", 0o644);
        p.exec(
            "roles/base/provision.sh",
            "motd=no\n[ -f /etc/motd ] && motd=yes\necho \"role=$LAYER_ROLE image=$LAYER_IMAGE pwd=$(pwd) greeting=$GREETING motd=$motd\" >> /provisioned\n",
        );
        p.exec(
            "roles/app/provision.sh",
            "echo \"role=$LAYER_ROLE port=$PORT\" >> /provisioned\n",
        );
        p.exec(
            "roles/web/provision.sh",
            "echo \"role=$LAYER_ROLE\" >> /provisioned\n",
        );
        p.file(
            "images/base.toml",
            "version = \"1.0\"\norigin = \"cloud\"\nroles = [\"base\"]\n",
        );
        p.file(
            "images/app.toml",
            "version = \"2.3\"\nfrom = \"base\"\nroles = [\"app\"]\n\n[vars]\nPORT = \"8080\"\n",
        );
        p.file(
            "images/svc.toml",
            "version = \"0.4\"\nfrom = \"app\"\nroles = [\"web\"]\n",
        );
        p
    }

    /// Runs `layer ARGS` in the project root with extra environment variables.
    pub(crate) fn layer_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = layer_command(self.root(), args, env);
        let out = cmd.output().expect("layer runs");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// Starts `layer ARGS` in the project root in the background, its output going to files
    /// under `out/`.
    pub(crate) fn spawn_layer(&self, args: &[&str], env: &[(&str, &str)]) -> Running {
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        fs::create_dir_all(self.path("out")).unwrap();
        let stdout = self.path(&format!("out/layer-{n}.stdout"));
        let stderr = self.path(&format!("out/layer-{n}.stderr"));
        let mut cmd = layer_command(self.root(), args, env);
        cmd.stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap());
        Running {
            child: Some(cmd.spawn().expect("layer starts")),
            stdout,
            stderr,
        }
    }

    /// How many lines of `rel` are exactly `line` (0 when the file does not exist).
    pub(crate) fn count_lines(&self, rel: &str, line: &str) -> usize {
        fs::read_to_string(self.path(rel))
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == line)
            .count()
    }

    /// Every file under the cache folder, relative to the cache.
    pub(crate) fn cache_paths(&self) -> Vec<String> {
        self.cache_files().into_iter().map(|(p, _)| p).collect()
    }
}

/// The image named `name` in a plan's JSON (`layer plan --format json`).
pub(crate) fn planned_in(plan: &serde_json::Value, name: &str) -> serde_json::Value {
    plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("`{name}` is in the plan"))
        .clone()
}

fn layer_command(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_layer"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("LAYER_CACHE")
        .env_remove("LAYER_REMOTE")
        .env_remove("LAYER_SIGNING_KEY")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A `layer` process started by [`Project::spawn_layer`]; killed if the test ends first.
pub(crate) struct Running {
    child: Option<std::process::Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Running {
    pub(crate) fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// Sends `sig` to the `layer` process (not to its process group).
    pub(crate) fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on a child of this process that has not been waited for.
        let r = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(r, 0, "kill({}, {sig})", self.pid());
    }

    /// What the process has written to stderr so far.
    pub(crate) fn stderr_so_far(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until the process has written `text` to stderr (panics after [`wait_until`]'s
    /// deadline, naming `what` it waited for).
    pub(crate) fn wait_for_stderr(&self, what: &str, text: &str) {
        wait_until(what, || self.stderr_so_far().contains(text));
    }

    /// Waits for the process to end (panics after a generous deadline); `code` is 128 + the
    /// signal when a signal ended it.
    pub(crate) fn wait(mut self) -> Output {
        use std::os::unix::process::ExitStatusExt;
        let mut child = self.child.take().expect("running");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "layer did not finish in time\n--- stderr\n{}",
                    fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        Output {
            code: status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            stdout: fs::read_to_string(&self.stdout).unwrap(),
            stderr: fs::read_to_string(&self.stderr).unwrap(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `cond` every few milliseconds until it holds; panics after a generous deadline.
pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Live processes (zombies have no command line) whose command line contains `needle`.
pub(crate) fn processes_with(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// `(name, action)` of each object of a JSON array (a plan's `images`, `layer build --json`).
pub(crate) fn name_actions(v: &serde_json::Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Runs git in `dir` with a fixed identity and neither global nor system configuration, and
/// returns its standard output; panics with its error output when it fails.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
