//! `[remote]` of `layer.toml` validated into a [`RemoteConfig`]: a URL whose scheme layer can
//! open, and trusted keys written as `layer keygen` prints them.

use super::file::Source;
use super::raw::RemoteRaw;
use crate::error::Diagnostics;
use crate::model::{remote_url_problem, valid_public_key, RemoteConfig};

const URL_HINT: &str = "use `s3://BUCKET/PREFIX`, `file:///PATH` or `https://HOST/PATH`";

/// The remote declared at `line`, or `None` with its problems pushed to `diags`.
pub(super) fn remote(
    src: &Source,
    line: Option<usize>,
    raw: RemoteRaw,
    diags: &mut Diagnostics,
) -> Option<RemoteConfig> {
    let mut ok = true;
    let url = match raw.url {
        None => {
            diags.push(src.diag(line, "`[remote]` needs a `url`").hint(URL_HINT));
            ok = false;
            String::new()
        }
        Some(u) => {
            if let Some(problem) = remote_url_problem(u.get_ref()) {
                diags.push(
                    src.diag(src.line_of(&u), format!("remote: {problem}"))
                        .hint(URL_HINT),
                );
                ok = false;
            }
            u.into_inner()
        }
    };
    let mut trusted_keys = Vec::new();
    for k in raw.trusted_keys {
        if !valid_public_key(k.get_ref()) {
            diags.push(
                src.diag(
                    src.line_of(&k),
                    format!("remote: `{}` is not a public key", k.get_ref()),
                )
                .hint("trusted keys are written `ed25519:BASE64`, as `layer keygen` prints them"),
            );
            ok = false;
        } else if !trusted_keys.contains(k.get_ref()) {
            trusted_keys.push(k.into_inner());
        }
    }
    ok.then_some(RemoteConfig { url, trusted_keys })
}
