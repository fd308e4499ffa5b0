//! The rootfs sandbox as a boundary (issue 16, failure 10): the escapes that worked from a
//! provisioner — remounting its read-only role folder, remounting `/sys` read-write, writing
//! the host's `/proc/sys`, a chroot escape by a static binary into the host's `/tmp` — each
//! fail inside a real busybox build; and a build that changes its own role trees fails.

use crate::common::{run_ok, Project, SCRIPT_DONE, SCRIPT_START};
use crate::needs::{self, Need};

/// A static program: `escape DIR` chroots into a subfolder without entering it, climbs up
/// from the old root with `..` and chroots there (the classic escape), then writes
/// `DIR/escaped`; it prints `ESCAPED` when that worked.
const ESCAPE_C: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char path[4096];
    mkdir("/jail", 0755);
    if (chroot("/jail") != 0) perror("chroot");
    for (int i = 0; i < 64; i++) chdir("..");
    chroot(".");
    snprintf(path, sizeof path, "%s/escaped", argv[1]);
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    if (fd < 0) { perror(path); return 0; }
    write(fd, "escaped\n", 8);
    puts("ESCAPED");
    return 0;
}
"#;

/// `escape` built static with the host's C compiler (Rust's own linker on Linux).
fn static_escape(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("escape.c");
    std::fs::write(&src, ESCAPE_C).unwrap();
    let bin = dir.join("escape");
    run_ok(
        std::process::Command::new("cc")
            .args(["-static", "-O1", "-o"])
            .arg(&bin)
            .arg(&src),
    );
    bin
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn escapes_from_a_provisioner_fail() {
    needs::check(&[Need::Root, Need::Busybox]);
    let host = tempfile::tempdir().unwrap();
    let tools = tempfile::tempdir().unwrap();
    let escape = static_escape(tools.path());
    let p = Project::on_busybox(&needs::busybox().expect("checked"), "");
    p.file("images/box.toml", "origin = \"bb\"\nroles = [\"esc\"]\n");
    std::fs::create_dir_all(p.path("roles/esc/files/usr/local/bin")).unwrap();
    std::fs::copy(&escape, p.path("roles/esc/files/usr/local/bin/escape")).unwrap();
    p.chmod("roles/esc/files/usr/local/bin/escape", 0o755);
    p.exec(
        "roles/esc/provision.sh",
        &format!(
            "try() {{ if sh -c \"$2\" >/dev/null 2>&1; then echo \"ESCAPE: $1\"; else echo \"held: $1\"; fi; }}\n\
             try remount-role 'mount -o remount,rw /.layer/role && touch /.layer/role/pwned'\n\
             try write-role 'touch /.layer/role/pwned'\n\
             try remount-sys 'mount -o remount,rw /sys && touch /sys/pwned'\n\
             try write-proc-sys 'echo pwned > /proc/sys/kernel/hostname'\n\
             try new-mount 'mount -t tmpfs none /mnt'\n\
             try unshare 'unshare -m true'\n\
             /usr/local/bin/escape {}\n\
             echo \"processes: $(ls -d /proc/[0-9]* | wc -l)\"\n",
            host.path().display()
        ),
    );
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = p.layer(&["build"]);
    let log = p
        .cache_files()
        .into_iter()
        .filter(|(f, _)| f.starts_with("logs/"))
        .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
        .collect::<String>();
    assert_eq!(out.code, 0, "{}\n{log}", out.stderr);
    for what in [
        "remount-role",
        "write-role",
        "remount-sys",
        "write-proc-sys",
        "new-mount",
        "unshare",
    ] {
        assert!(log.contains(&format!("held: {what}\n")), "{what}:\n{log}");
    }
    assert!(!log.contains("ESCAPE"), "{log}");
    assert!(!host.path().join("escaped").exists(), "{log}");
    assert!(!p.path("roles/esc/pwned").exists());
    // The provisioner sees its own processes only: itself, its shell and `ls`, `wc`.
    let seen: usize = log
        .lines()
        .find_map(|l| l.strip_prefix("processes: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{log}"));
    assert!(seen < 10, "{log}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        hostname
    );
}

#[test]
fn a_build_that_changes_its_role_tree_fails_and_records_nothing() {
    // A command backend runs in the project: nothing but the re-hash stops it.
    let p = Project::command_estate(&format!(
        "{SCRIPT_START}echo changed >> roles/base/files/etc/motd\n{SCRIPT_DONE}"
    ));
    let out = p.layer(&["build", "base"]).expect(1);
    assert!(
        out.stderr.contains(
            "role `base` changed during the build (roles/base/files/etc/motd): a build must not change its inputs; nothing was recorded"
        ),
        "{}",
        out.stderr
    );
    assert!(
        !p.cache_files()
            .iter()
            .any(|(f, _)| f.starts_with("records/")),
        "nothing recorded"
    );
}
