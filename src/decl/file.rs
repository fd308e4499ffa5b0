//! One declaration file read: [`Source`] keeps its text to turn the spans of a parse into line
//! numbers, [`read_source`] reads it through [`ProjectFiles`], and [`explain_toml_error`] words
//! the parser's complaints the way `layer` words its own.

use serde::de::DeserializeOwned;
use toml::Spanned;

use crate::error::{did_you_mean, Diagnostic, Diagnostics};
use crate::model::{LOCK_FILE, PROJECT_FILE};
use crate::source::files::{Link, ProjectFiles};

/// One source file, kept for turning byte offsets into line numbers.
pub(super) struct Source {
    /// The file, relative to the project root: what every message names.
    pub rel: String,
    text: String,
    /// Byte offsets of the text's newlines, found when a line is first asked for.
    newlines: std::sync::OnceLock<Vec<usize>>,
}

impl Source {
    /// The 1-based line of a byte offset: a binary search of the line starts, found once, so
    /// a file with 100,000 spans costs no more than reading it.
    pub(super) fn line(&self, offset: usize) -> usize {
        let newlines = self.newlines.get_or_init(|| {
            self.text
                .bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect()
        });
        // Newlines before `offset`, plus one.
        newlines.partition_point(|&n| n < offset) + 1
    }

    /// The line a spanned value starts on.
    pub(super) fn line_of<T>(&self, s: &Spanned<T>) -> Option<usize> {
        Some(self.line(s.span().start))
    }

    /// A problem in this file, at `line` when known.
    pub(super) fn diag(&self, line: Option<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(self.rel.clone(), message).at(line)
    }

    /// The file parsed as `T`, or `None` with the parser's complaint pushed to `diags`.
    pub(super) fn parse<T: DeserializeOwned>(&self, diags: &mut Diagnostics) -> Option<T> {
        match toml::from_str::<T>(&self.text) {
            Ok(v) => Some(v),
            Err(e) => {
                let line = e.span().map(|s| self.line(s.start));
                let (message, hint) = explain_toml_error(e.message());
                diags.push(self.diag(line, message).maybe_hint(hint));
                None
            }
        }
    }
}

/// Reads the declaration file `rel` as UTF-8 text, or pushes why it cannot be read.
pub(super) fn read_source(
    files: &dyn ProjectFiles,
    rel: &str,
    diags: &mut Diagnostics,
) -> Option<Source> {
    // `layer.toml` and `layer.lock` may not lead out of the project (files listed in `images/`
    // and roles' `role.toml` are checked where they are found).
    if rel == PROJECT_FILE || rel == LOCK_FILE {
        if let Link::Outside(to) = files.link(rel) {
            diags.push(
                Diagnostic::new(rel, format!("is a link to `{to}`, outside the project"))
                    .hint("keep declarations inside the project"),
            );
            return None;
        }
    }
    let text = files.read(rel).and_then(|b| {
        String::from_utf8(b).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            )
        })
    });
    match text {
        Ok(text) => Some(Source {
            rel: rel.to_string(),
            text,
            newlines: std::sync::OnceLock::new(),
        }),
        // A FIFO, a device or a huge file: refused before a byte is read.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::FileTooLarge
            ) =>
        {
            diags.push(
                Diagnostic::new(rel, e.to_string())
                    .hint("a declaration is a regular file of TOML text"),
            );
            None
        }
        Err(e) => {
            diags.push(Diagnostic::new(rel, format!("cannot read: {e}")));
            None
        }
    }
}

/// Turns serde's "unknown field `x`, expected one of `a`, `b`" into our wording with a
/// "did you mean" hint, or the list of valid keys when none is close.
pub(super) fn explain_toml_error(message: &str) -> (String, Option<String>) {
    let message = message.trim_end();
    for (prefix, what) in [("unknown field `", "key"), ("unknown variant `", "value")] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let Some(end) = rest.find('`') else { break };
            let name = &rest[..end];
            let expected: Vec<&str> = rest[end + 1..].split('`').skip(1).step_by(2).collect();
            let hint = match did_you_mean(name, expected.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if expected.is_empty() => format!("remove `{name}`"),
                None => format!(
                    "valid {what}s here: {}",
                    expected
                        .iter()
                        .map(|e| format!("`{e}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return (format!("unknown {what} `{name}`"), Some(hint));
        }
    }
    (message.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_get_hints() {
        assert_eq!(
            explain_toml_error(
                "unknown field `form`, expected one of `description`, `version`, `from`, `origin`"
            ),
            (
                "unknown key `form`".to_string(),
                Some("did you mean `from`?".to_string())
            )
        );
        assert_eq!(
            explain_toml_error("unknown variant `dep`, expected `deep` or `shallow`"),
            (
                "unknown value `dep`".to_string(),
                Some("did you mean `deep`?".to_string())
            )
        );
        assert_eq!(
            explain_toml_error("unknown field `zzzzzz`, expected `strategy` or `backend`"),
            (
                "unknown key `zzzzzz`".to_string(),
                Some("valid keys here: `strategy`, `backend`".to_string())
            )
        );
    }
}
