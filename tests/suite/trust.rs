//! Trust nothing that was not checked (issue 16): build processes die with layer, temporaries
//! of dead runs go, records and the stat cache are checksummed, damaged origins are repaired,
//! backend scripts that cannot be read are errors, and gc keeps the newest build of an image.

use crate::common::{self, processes_with, wait_until, Project, SCRIPT_DONE, SCRIPT_START};
use crate::needs::{self, Need};

use std::fs;
use std::path::{Path, PathBuf};

use layer::cache::Cache;

fn cache(p: &Project) -> Cache {
    Cache::new(p.path("cache"))
}

/// The pid of a process that has ended.
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

// ---------------------------------------------------------------------------------------------
// 1. Nothing a build starts outlives layer.

/// Whether a live process runs each of `commands`.
fn all_running(commands: &[&str]) -> bool {
    commands.iter().all(|c| !processes_with(c).is_empty())
}

/// Whether no live process runs any of `commands`.
fn all_gone(commands: &[&str]) -> bool {
    commands.iter().all(|c| processes_with(c).is_empty())
}

/// Once every one of `commands` runs, kills `parent` (with SIGKILL) and waits for them all to
/// be gone with it.
fn killed_with(mut parent: std::process::Child, commands: &[&str]) {
    wait_until("the tree's processes", || all_running(commands));
    parent.kill().unwrap();
    parent.wait().unwrap();
    wait_until("the tree to die", || all_gone(commands));
}

#[test]
fn kill_9_of_layer_takes_a_command_builds_whole_tree_along() {
    // `sleep 7301` is the script's child, `sleep 7302` an orphan of a subshell (re-parented
    // at once), `sleep 7303` in a session of its own.
    // While `out/hold` exists.
    let p = Project::command_estate(&format!(
        "if [ -e out/hold ]; then\nsleep 7301 &\n(sleep 7302 &)\nsetsid sleep 7303 &\nwait\nfi\n{SCRIPT_DONE}"
    ));
    p.file("out/hold", "");
    let run = p.spawn_layer(&["build", "base", "--no-progress"], &[]);
    wait_until("the build's sleeps", || {
        all_running(&["sleep 7301", "sleep 7302", "sleep 7303"])
    });
    run.signal(libc::SIGKILL);
    let _ = run.wait();
    wait_until("every process of the build to die", || {
        all_gone(&["sleep 7301", "sleep 7302", "sleep 7303"])
    });
    // The next build runs (and finds no stale run folder or lock in its way).
    p.remove("out/hold");
    p.layer(&["build", "base", "--no-progress"]).expect(0);
}

#[test]
fn an_interrupt_reaches_a_build_process_in_a_session_of_its_own() {
    // The helper is out of the build's process group, which layer signals: the build's reaper
    // passes the interrupt on to it, and the script waits for the helper to finish.
    let p = Project::command_estate(&format!(
        "#!/bin/sh\nmkdir -p out\ntrap 'wait; exit 5' TERM\nsetsid sh -c 'trap \"echo helper-term >> out/marks; exit 0\" TERM; echo helper-ready >> out/marks; sleep 7321 & wait' &\nwait\n{SCRIPT_DONE}"
    ));
    let run = p.spawn_layer(&["build", "base", "--no-progress"], &[]);
    wait_until("the helper to be ready", || {
        p.count_lines("out/marks", "helper-ready") == 1
    });
    run.signal(libc::SIGTERM);
    let out = run.wait();
    assert_eq!(out.code, 143, "{}", out.stderr);
    assert_eq!(p.count_lines("out/marks", "helper-term"), 1);
    wait_until("the helper's sleep to be gone", || {
        processes_with("sleep 7321").is_empty()
    });
}

#[test]
#[cfg_attr(missing = "root", ignore = "needs root (to run layer as another user)")]
fn without_root_a_build_is_reaped_by_a_child_subreaper() {
    // The path every ordinary user's build takes (no pid namespace: each build's reaper is a
    // child subreaper of the reaper server), which root's pid namespaces hide.
    needs::check(&[Need::Root]);
    let p = Project::command_estate(&format!(
        "{SCRIPT_START}sleep 7341 &\nsetsid sh -c 'echo \"away $LAYER_IMAGE\" >> out/marks; exec sleep 7342' &\nuntil grep -q \"away $LAYER_IMAGE\" out/marks; do sleep 0.01; done\nif [ -e out/hold ]; then sleep 7343; fi\n{SCRIPT_DONE}"
    ));
    let chown = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(p.root())
        .status()
        .unwrap();
    assert!(chown.success());
    let as_nobody = |args: &[&str]| {
        let mut cmd = nobody_layer(&p.path("cache"));
        cmd.args(args).current_dir(p.root());
        cmd
    };
    let mut build = as_nobody(&["build", "base", "--no-progress"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Polled, so that a build whose leftovers keep its log open fails here rather than hangs.
    let mut status = None;
    wait_until("layer to finish", || {
        status = build.try_wait().unwrap();
        status.is_some()
    });
    assert!(status.unwrap().success());
    assert_eq!(p.count_lines("out/marks", "done base"), 1);
    wait_until("what the build left to be stopped with it", || {
        all_gone(&["sleep 7341", "sleep 7342"])
    });
    // kill -9 of layer in the middle of a build: the subreaper sees its parent go.
    p.file("out/hold", "");
    let run = as_nobody(&["build", "app", "--no-progress"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    killed_with(run, &["sleep 7341", "sleep 7342", "sleep 7343"]);
}

#[test]
fn the_reaper_without_a_pid_namespace_kills_the_tree_when_its_parent_dies() {
    // The subreaper alone (what a build gets without root): its parent, a shell, is killed.
    let exe = env!("CARGO_BIN_EXE_layer");
    let dir = tempfile::tempdir().unwrap();
    let script =
        format!("{exe} __reap $$ -- sh -c '(sleep 7311 &); setsid sleep 7312 & sleep 7313'; true");
    let sh = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    killed_with(sh, &["sleep 7311", "sleep 7312", "sleep 7313"]);
}

#[test]
fn a_reaped_build_keeps_its_exit_status_and_a_missing_command_is_named() {
    let p = Project::command_estate("sleep 7321 &\nexit 3\n");
    let out = p.layer(&["build", "base", "--no-progress"]).expect(1);
    out.stderr_has("`./build.sh` exited with status 3");
    wait_until("the background sleep to die with the build", || {
        processes_with("sleep 7321").is_empty()
    });
    p.file(
        "layer.toml",
        &p.read("layer.toml").replace("./build.sh", "./nope.sh"),
    );
    let out = p.layer(&["build", "base", "--no-progress"]).expect(1);
    out.stderr_has("`./nope.sh`: command not found");
    p.file("nope.sh", "#!/bin/sh\n");
    let out = p.layer(&["build", "base", "--no-progress"]).expect(1);
    out.stderr_has("`./nope.sh`: not executable (chmod +x?)");
    // A name found on `PATH` (once per run) starts with that name as its `$0`.
    let toml = p.read("layer.toml");
    p.file(
        "layer.toml",
        &toml.replace(
            "[\"./nope.sh\"]",
            "[\"sh\", \"-c\", \"mkdir -p out; echo \\\"$0\\\" > out/arg0; exit 4\"]",
        ),
    );
    let out = p.layer(&["build", "base", "--no-progress"]).expect(1);
    out.stderr_has("exited with status 4");
    assert_eq!(p.read("out/arg0"), "sh\n");
    p.file(
        "layer.toml",
        &toml.replace("[\"./nope.sh\"]", "[\"no-such-tool-7321\"]"),
    );
    let out = p.layer(&["build", "base", "--no-progress"]).expect(1);
    out.stderr_has("`no-such-tool-7321`: command not found");
}

#[test]
fn a_build_killed_by_a_signal_says_so_and_its_output_reaches_the_log_whole() {
    // Through the run's reaper server: the program's own status comes back (not its
    // reaper's), and every line written before the end is in the log, in order.
    let p = Project::command_estate(
        "i=0; while [ $i -lt 500 ]; do i=$((i+1)); echo \"line $i\"; done\necho oops >&2\nkill -9 $$\n",
    );
    let out = p.layer(&["build", "base", "--no-progress"]).expect(1);
    out.stderr_has("`./build.sh` was killed by a signal");
    let logs: Vec<_> = fs::read_dir(p.path("cache/logs/base"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(logs.len(), 1);
    let log = fs::read_to_string(logs[0].path()).unwrap();
    let lines: Vec<String> = (1..=500).map(|i| format!("line {i}")).collect();
    let start = log.find("line 1\n").expect("the first line is logged");
    assert!(
        log[start..].starts_with(&(lines.join("\n") + "\noops\n")),
        "{log}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Temporaries of dead processes go; those of live ones stay.

/// Plants temporaries under the cache: of a dead process and of this (live) one.
fn plant_temps(p: &Project) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let dead = dead_pid();
    let live = std::process::id();
    let id = "0123456789abcdef0123456789abcdef";
    let of = |pid: u32| -> Vec<PathBuf> {
        let files = [
            format!("cache/records/base/.{}.json.tmp{pid}-0", "k".repeat(64)),
            format!("cache/records/base/old/.1.0.0.json.tmp{pid}-3"),
            format!("cache/trees/.{}.json.tmp{pid}-1", "d".repeat(64)),
            format!("cache/.stat-cache.tmp{pid}-2"),
            format!("cache/origins/{id}.tmp-{pid}/root/bin/sh"),
        ];
        files
            .iter()
            .map(|f| {
                p.file(f, "half written\n");
                let path = p.path(f);
                if f.contains("/origins/") {
                    path.parent()
                        .unwrap()
                        .parent()
                        .unwrap()
                        .parent()
                        .unwrap()
                        .to_path_buf()
                } else {
                    path
                }
            })
            .collect()
    };
    (of(dead), of(live))
}

#[test]
fn the_next_build_and_gc_remove_temporaries_of_dead_processes_only() {
    let p = Project::command_estate(SCRIPT_DONE);
    p.layer(&["build", "--no-progress"]).expect(0);
    let (dead, live) = plant_temps(&p);
    p.layer(&["build", "--no-progress"]).expect(0);
    for d in &dead {
        assert!(!d.exists(), "{} left", d.display());
    }
    for l in &live {
        assert!(l.exists(), "{} removed", l.display());
    }
    let (dead, _) = plant_temps(&p);
    let dry = p.layer(&["cache", "gc", "--dry-run"]).expect(0).stdout;
    assert!(dry.contains(".stat-cache.tmp"), "{dry}");
    p.layer(&["cache", "gc"]).expect(0);
    for d in &dead {
        assert!(!d.exists(), "{} left by gc", d.display());
    }
    for l in &live {
        assert!(l.exists(), "{} removed by gc", l.display());
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Every byte of a record is checked.

/// The record file of base's current key.
fn record_file(p: &Project, image: &str) -> PathBuf {
    p.record_path(image)
}

#[test]
fn a_record_changed_anywhere_is_corrupt_stale_and_reported_by_verify_once() {
    let p = Project::command_estate(SCRIPT_DONE);
    p.layer(&["build", "--no-progress"]).expect(0);
    let file = record_file(&p, "app");
    let good = fs::read_to_string(&file).unwrap();
    let record = cache(&p).latest("app").unwrap();
    let parent_key = record.parent.as_ref().unwrap().key.clone();
    // The fields outside the inputs that were used unchecked before.
    let edits = [
        (record.artifact.id.clone(), "art-evil".to_string()),
        (record.built_at.clone(), "2099-01-01T00:00:00Z".to_string()),
        (
            parent_key.clone(),
            parent_key.replace(&parent_key[..4], "ffff"),
        ),
        (record.version.clone(), "9.9.9-20991231_2359".to_string()),
        (
            "\"forced\": false".to_string(),
            "\"forced\": true".to_string(),
        ),
    ];
    for (from, to) in &edits {
        assert!(good.contains(from.as_str()), "{from}");
        fs::write(&file, good.replacen(from.as_str(), to, 1)).unwrap();
        let (action, reasons) = p.verdict(&[], "app");
        assert_eq!(action, "build", "{from} -> {to}");
        assert_eq!(
            reasons[0]["detail"], "record is corrupt: its checksum does not match its content",
            "{from} -> {to}"
        );
        assert_eq!(p.verdict(&[], "svc").0, "build");
        assert_eq!(p.verdict(&[], "base").0, "fresh");
    }
    // A tag added by hand is a change too.
    fs::write(
        &file,
        good.replacen(
            "\"tags\": {",
            "\"tags\": {\n    \"Release_Status\": \"released\",",
            1,
        ),
    )
    .unwrap();
    assert_eq!(p.verdict(&[], "app").0, "build");

    let out = p.layer(&["cache", "verify"]).expect(1);
    let rel = file
        .strip_prefix(p.path("cache"))
        .unwrap()
        .display()
        .to_string();
    assert!(
        out.stdout.contains(&format!(
            "record is corrupt: its checksum does not match its content; moved to `{rel}.corrupt`"
        )),
        "{}",
        out.stdout
    );
    out.stdout_has("1 record file no build can use: 1 corrupt, 0 of another format");
    // Reported once: it is aside now, and the next verify is clean.
    p.layer(&["cache", "verify"]).expect(0);
    p.layer(&["build", "--no-progress"]).expect(0);
    assert_eq!(p.verdict(&[], "app").0, "fresh");
    assert_eq!(p.verdict(&[], "svc").0, "fresh");
}

// ---------------------------------------------------------------------------------------------
// 4. A damaged origin is moved aside by verify and made again by the next build.

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn verify_moves_a_damaged_origin_aside_and_the_next_build_makes_it_again() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = Project::on_busybox(&needs::busybox().expect("checked"), "strategy = \"deep\"\n");
    p.file(
        "images/base.toml",
        "version = \"1.0\"\norigin = \"bb\"\nroles = [\"base\"]\n",
    );
    p.exec("roles/base/provision.sh", "echo hi > /etc/hi\n");
    p.layer(&["build", "--no-progress"]).expect(0);
    let origins = p.path("cache/origins");
    let made: Vec<PathBuf> = fs::read_dir(&origins)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(made.len(), 1);
    let id = made[0].file_name().unwrap().to_str().unwrap().to_string();
    fs::write(made[0].join("root/etc/damage"), "x").unwrap();

    let out = p.layer(&["build", "--force", "--no-progress"]).expect(1);
    out.stderr_has("run `layer cache verify`, which moves it aside");
    let out = p.layer(&["cache", "verify"]).expect(1);
    assert!(
        out.stdout.contains(&format!("origin {id}")) && out.stdout.contains("corrupt: blake3 "),
        "{}",
        out.stdout
    );
    out.stdout_has("1 origin: 0 ok, 1 corrupt");
    assert!(origins
        .join(format!("{id}.corrupt/root/etc/damage"))
        .exists());
    assert!(!made[0].exists());
    p.layer(&["build", "--force", "--no-progress"]).expect(0);
    assert!(made[0].join("digest").is_file());
    let out = p.layer(&["cache", "verify"]).expect(0);
    out.stdout_has("1 origin: 1 ok, 0 corrupt");
    // gc removes what was moved aside.
    p.layer(&["cache", "gc"]).expect(0);
    assert!(!origins.join(format!("{id}.corrupt")).exists());
    assert!(made[0].exists());
}

// ---------------------------------------------------------------------------------------------
// 5. A damaged stat cache is an empty one.

#[test]
fn no_flipped_bit_of_the_stat_cache_changes_a_key() {
    let p = Project::estate();
    let keys = p.layer(&["hash"]).expect(0).stdout;
    let stat = p.path("cache/stat-cache");
    // Let the scan's racy window pass, so the stat cache holds every file.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    p.layer(&["hash"]).expect(0);
    let good = fs::read(&stat).unwrap();
    assert!(good.len() > 200, "{}", good.len());
    // 48 single-bit flips spread over the file, digests and stamps among them.
    for i in 0..48usize {
        let at = (i * 7919 + 13) % good.len();
        let mut bad = good.clone();
        bad[at] ^= 1 << (i % 8);
        fs::write(&stat, &bad).unwrap();
        assert_eq!(
            p.layer(&["hash"]).expect(0).stdout,
            keys,
            "bit {} of byte {at}",
            i % 8
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 11. The smaller ones.

#[test]
fn a_backend_script_that_is_a_fifo_or_a_socket_is_an_input_error() {
    let p = Project::command_estate(SCRIPT_DONE);
    p.remove("build.sh");
    let fifo = p.path("build.sh");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out = p.layer(&["plan"]).expect(2);
    assert_eq!(
        out.stderr,
        "error: ./build.sh: backend `sh` runs it, and it cannot be read: not a regular file\n  hint: a backend's script or template must be a readable regular file\n"
    );
    p.remove("build.sh");
    let _sock = std::os::unix::net::UnixListener::bind(&fifo).unwrap();
    let out = p.layer(&["plan"]).expect(2);
    out.stderr_has("it cannot be read: not a regular file");
}

#[test]
fn gc_keeps_the_newest_build_of_every_image_after_an_uncommitted_edit() {
    let p = Project::command_estate(SCRIPT_DONE);
    p.layer(&["build", "--no-progress"]).expect(0);
    // An edit not built yet: no image has a build of its current key.
    p.file("roles/base/files/etc/motd", "edited\n");
    let out = p.layer(&["cache", "gc"]).expect(0).stdout;
    assert!(out.ends_with("kept 3 builds\n"), "{out}");
    for image in ["base", "app", "svc"] {
        assert!(cache(&p).latest(image).is_some(), "{image} lost its build");
    }
    let out = p.layer(&["cache", "gc", "--keep", "0"]).expect(2);
    assert_eq!(
        out.stderr,
        "error: `--keep 0` would remove every build of an image whose current build is missing (after an uncommitted role edit, say)\n  hint: to remove those too, use `layer cache gc --all`\n"
    );
    let dry = p
        .layer(&["cache", "gc", "--all", "--dry-run"])
        .expect(0)
        .stdout;
    assert!(dry.contains("would remove base "), "{dry}");
    assert!(cache(&p).latest("base").is_some());
    p.layer(&["cache", "gc", "--all"]).expect(0);
    assert!(cache(&p).latest("base").is_none());
}

/// `layer` as the user `nobody` (`setpriv`), with `cache` as its cache: made, and that user's
/// (another user's cache is refused before anything is read).
fn nobody_layer(cache: &Path) -> std::process::Command {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(cache).unwrap();
    fs::set_permissions(cache, fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(cache, Some(65534), Some(65534)).unwrap();
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_layer"))
        .arg("--cache")
        .arg(cache)
        .env("NO_COLOR", "1");
    cmd
}

/// Runs `layer ARGS` in `p` as the user `nobody`, with a cache of its own.
fn layer_as_nobody(p: &Project, args: &[&str]) -> common::Output {
    let out = nobody_layer(&p.path("out/nobody-cache"))
        .args(args)
        .current_dir(p.root())
        .output()
        .unwrap();
    common::Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[test]
#[cfg_attr(missing = "root", ignore = "needs root (to run layer as another user)")]
fn unreadable_role_files_and_role_folders_are_input_errors_naming_the_path() {
    use std::os::unix::fs::PermissionsExt;
    needs::check(&[Need::Root]);
    let p = Project::command_estate(SCRIPT_DONE);
    // Everything readable by others but `etc/base.key` (0600 in the estate).
    for e in walkdir::WalkDir::new(p.root()).into_iter().flatten() {
        if e.file_type().is_dir() {
            fs::set_permissions(e.path(), fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let out = layer_as_nobody(&p, &["plan"]).expect(2);
    assert_eq!(
        out.stderr,
        "error: roles/base/files/etc/base.key: role `base`: cannot read: Permission denied (os error 13)\n  hint: make the role's files and folders readable by the user running layer\n"
    );
    p.chmod("roles/base/files/etc/base.key", 0o644);
    layer_as_nobody(&p, &["plan"]).expect(0);
    p.chmod("roles", 0o700);
    let out = layer_as_nobody(&p, &["plan"]).expect(2);
    assert_eq!(
        out.stderr,
        "error: roles: cannot read folder: Permission denied (os error 13)\n"
    );
}
