//! The bundle handed to `command` and `packer` backends (`LAYER_BUNDLE`): the roles a build
//! applies, in order, and an `apply.sh ROOT` that applies them the way the rootfs
//! backend does — packages first with the tree's own package manager, then per role its
//! `files/` copied onto ROOT (modes kept, owned by root, existing folders left as they are)
//! and its `provision.sh` run inside ROOT from `/.layer/role`, with the role's `[vars]` under
//! the image's. `apply.sh /` applies to the running system (a builder instance); any other
//! ROOT is entered with chroot. Secrets are not written into the bundle: they reach
//! `apply.sh` through its environment. The bundle is made once per content and shared by the
//! builds that apply it (`cache::stage`): it is read by builds, never a place to write.
//!
//! ```text
//! bundle/
//!   apply.sh
//!   roles/01-base/ ...      the role folders (files hard-linked), symlinks kept as links
//!   roles/02-java/ ...
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// One role as the bundle stages it.
pub struct BundleRole<'a> {
    pub name: &'a str,
    /// The role folder (absolute).
    pub dir: &'a Path,
    pub vars: &'a BTreeMap<String, String>,
}

/// Single-quotes `s` for POSIX sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The bundle's `apply.sh` for `roles`, in order, each staged as `NN-NAME` (the second
/// value, in the roles' order); the cache stages the folder ([`crate::cache::Cache::stage_bundle`]).
pub fn apply_script(
    image: &str,
    roles: &[BundleRole],
    packages: &[String],
    image_vars: &BTreeMap<String, String>,
) -> (String, Vec<String>) {
    let mut steps = String::new();
    let mut names = Vec::with_capacity(roles.len());
    if !packages.is_empty() {
        let list: Vec<String> = packages.iter().map(|p| sh_quote(p)).collect();
        let _ = writeln!(steps, "install_packages {}", list.join(" "));
    }
    for (n, role) in roles.iter().enumerate() {
        let staged = format!("{:02}-{}", n + 1, role.name);
        // The role's vars are defaults; the image's win.
        let mut vars = role.vars.clone();
        vars.extend(image_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        let env: Vec<String> = vars
            .iter()
            .map(|(k, v)| format!("{k}={}", sh_quote(v)))
            .collect();
        let _ = writeln!(
            steps,
            "apply_role {} {} {}",
            sh_quote(&staged),
            sh_quote(role.name),
            env.join(" ")
        );
        names.push(staged);
    }
    let script = APPLY_SH
        .replace("@IMAGE@", &sh_quote(image))
        .replace("@STEPS@", steps.trim_end());
    (script, names)
}

const APPLY_SH: &str = r#"#!/bin/sh
# Written by layer: applies this bundle's roles to ROOT, in order, as layer's rootfs backend
# does. Usage: apply.sh ROOT   (ROOT is / on a builder instance, or a root filesystem folder)
set -eu
ROOT=${1:?usage: apply.sh ROOT}
BUNDLE=$(cd "$(dirname "$0")" && pwd)
LAYER_IMAGE=${LAYER_IMAGE:-@IMAGE@}
export LAYER_IMAGE

in_root() {
    if [ "$ROOT" = / ]; then
        sh -c "$1"
    else
        chroot "$ROOT" /bin/sh -c "$1"
    fi
}

install_packages() {
    if in_root 'command -v apt-get' >/dev/null 2>&1; then
        in_root "export DEBIAN_FRONTEND=noninteractive; apt-get update -q -o Acquire::Languages=none && apt-get install -y -q --no-install-recommends $*"
    elif in_root 'command -v apk' >/dev/null 2>&1; then
        in_root "apk add --no-cache $*"
    elif in_root 'command -v dnf' >/dev/null 2>&1; then
        in_root "dnf install -y $*"
    else
        echo "apply.sh: $ROOT has no apt-get, apk or dnf to install: $*" >&2
        exit 1
    fi
}

# apply_role STAGED NAME [VAR=value...]
apply_role() {
    dir=$BUNDLE/roles/$1
    role=$2
    shift 2
    echo "==> role $role" >&2
    if [ -d "$dir/files" ]; then
        (cd "$dir/files" && tar -cf - --owner=0 --group=0 --numeric-owner .) |
            tar -xpf - -C "$ROOT" --no-overwrite-dir --keep-directory-symlink
    fi
    [ -f "$dir/provision.sh" ] || return 0
    if [ "$ROOT" = / ]; then
        (cd "$dir" && env "$@" LAYER_ROLE="$role" sh ./provision.sh)
    else
        if [ ! -x "$ROOT/bin/sh" ]; then
            echo "apply.sh: $ROOT has no /bin/sh to run the provisioner of role $role in" >&2
            exit 1
        fi
        rm -rf "$ROOT/.layer"
        mkdir -p "$ROOT/.layer"
        cp -a "$dir" "$ROOT/.layer/role"
        status=0
        env "$@" LAYER_ROLE="$role" chroot "$ROOT" /bin/sh -c 'cd /.layer/role && sh ./provision.sh' || status=$?
        rm -rf "$ROOT/.layer"
        [ "$status" -eq 0 ] || { echo "apply.sh: provision.sh of role $role failed ($status)" >&2; exit "$status"; }
    fi
}

@STEPS@
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
