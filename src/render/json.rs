//! JSON output: every `--json` and `--format json` is pretty-printed the same way.

use serde::Serialize;

/// Pretty JSON with a final newline.
pub fn json<T: Serialize + ?Sized>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("output serializes");
    s.push('\n');
    s
}
