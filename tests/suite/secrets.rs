//! Secrets that leaked before (issue 16, failure 9): a multi-line value printed a line at a
//! time, a value split between stdout and stderr with no order between them, an artifact id
//! that holds a secret, and values too short to mask.

use crate::common::Project;

/// A key of three lines, the second long enough to be a secret on its own.
const KEY: &str = "-----BEGIN TEST KEY-----\nMIIEowIBAAKCAQEAx4Vq9\n-----END TEST KEY-----";

/// `base` with the secret `TOKEN` from `$T`, built by `script` (after `set -eu`).
fn project(script: &str) -> Project {
    let p = Project::command_estate(&format!(
        "#!/bin/sh\nset -eu\nmkdir -p out\n{script}\necho \"ami-$LAYER_IMAGE\" > \"$LAYER_OUTPUT\"\n"
    ));
    p.file(
        "images/base.toml",
        &format!(
            "{}\n[secrets]\nTOKEN = {{ env = \"T\" }}\n",
            p.read("images/base.toml")
        ),
    );
    p
}

/// Everything a run left: its output and every file of the cache.
fn everything(p: &Project, out: &crate::common::Output) -> String {
    let mut all = format!("{}\n{}\n", out.stdout, out.stderr);
    for (_, bytes) in p.cache_files() {
        all.push_str(&String::from_utf8_lossy(&bytes));
    }
    all
}

#[test]
fn each_line_of_a_multi_line_secret_is_masked() {
    let p = project(
        "printf '%s\\n' \"$TOKEN\" | head -2 | tail -1\nprintf '%s\\n' \"$TOKEN\" | head -1",
    );
    let out = p
        .layer_env(&["build", "-v", "--no-progress", "base"], &[("T", KEY)])
        .expect(0);
    let all = everything(&p, &out);
    assert!(!all.contains("MIIEowIBAAKCAQEAx4Vq9"), "{all}");
    assert!(!all.contains("BEGIN TEST KEY"), "{all}");
    // Both lines printed, both masked in the log.
    assert!(all.matches("[secret]\n").count() >= 2, "{all}");
}

#[test]
fn a_secret_split_between_stdout_and_stderr_is_masked() {
    // No pause between the halves: only one stream for both keeps them in order.
    let p = project(
        "for i in 1 2 3 4 5 6 7 8; do printf 'x%s' \"${TOKEN%??????????}\"; printf '%s\\n' \"${TOKEN#????????}\" >&2; done",
    );
    let token = "hunter2-XYZZY-0451";
    let out = p
        .layer_env(&["build", "-v", "--no-progress", "base"], &[("T", token)])
        .expect(0);
    let all = everything(&p, &out);
    assert!(!all.contains(token), "{all}");
    // Eight times in the log, and again in what `-v` showed.
    assert!(all.matches("x[secret]\n").count() >= 8, "{all}");
}

#[test]
fn an_artifact_id_holding_a_secret_fails_and_records_nothing() {
    let p = project("echo \"ami-$TOKEN\" > \"$LAYER_OUTPUT\"\nexit 0");
    let out = p
        .layer_env(&["build", "--json", "base"], &[("T", "hunter2-XYZZY-0451")])
        .expect(1);
    assert!(
        out.stderr.contains(
            "the artifact id the backend reported holds the value of secret `TOKEN`; nothing was recorded"
        ),
        "{}",
        out.stderr
    );
    let all = everything(&p, &out);
    assert!(!all.contains("hunter2-XYZZY-0451"), "{all}");
    assert!(
        !p.cache_files()
            .iter()
            .any(|(f, _)| f.starts_with("records/")),
        "nothing recorded"
    );
}

#[test]
fn a_secret_shorter_than_six_characters_is_refused() {
    let p = project("echo built > out/marks");
    let out = p.layer_env(&["build", "base"], &[("T", "abc12")]).expect(2);
    assert_eq!(
        out.stderr,
        "error: secret values shorter than 6 characters: `T` (secret `TOKEN` of `base`)\n  hint: a value that short cannot be masked in logs without destroying them; use a longer secret\n"
    );
    assert!(!p.path("out/marks").exists(), "no build started");
    p.layer_env(&["build", "base"], &[("T", "abc123")])
        .expect(0);
}
