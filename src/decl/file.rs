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

    /// The file parsed as `T`, with every complaint of the parser pushed to `diags`: an
    /// unknown key is reported and blanked out (its line kept, so later lines keep their
    /// numbers) and the file parsed again, so a file with three typos shows all three in one
    /// run. `None` when anything was reported.
    pub(super) fn parse<T: DeserializeOwned>(&self, diags: &mut Diagnostics) -> Option<T> {
        let mut text = self.text.clone();
        // Each round blanks one key; a file has fewer keys than bytes.
        for blanked in 0..=self.text.len() {
            let e = match toml::from_str::<T>(&text) {
                // With keys blanked, the rest would be checked without them: `form` for
                // `from` would also be "neither `from` nor `origin`".
                Ok(v) => return (blanked == 0).then_some(v),
                Err(e) => e,
            };
            if blanked > 0 && toml::de::DeTable::parse(&text).is_err() {
                // Blanking made the syntax wrong (a key of an inline table, say): what is
                // reported already is what the user wrote.
                return None;
            }
            let line = e.span().map(|s| self.line(s.start));
            let (message, hint) = match e.message().trim_end() {
                "duplicate key" => (
                    format!(
                        "duplicate key `{}`",
                        e.span().map_or("", |s| text[s].trim_matches('"'))
                    ),
                    Some("a key is set once per table: remove one of them".into()),
                ),
                m => explain_toml_error(m),
            };
            let unknown = message.starts_with("unknown key");
            diags.push(self.diag(line, message).maybe_hint(hint));
            let entry = e
                .span()
                .filter(|_| unknown)
                .and_then(|s| entry_at(&text, s.start));
            text = blank(&text, entry?);
        }
        None
    }
}

/// Where the entry (`key = value`) whose key starts at byte `at` is, key to end of value; `None`
/// when there is none or its value is a table under a `[header]` (blanking its key would
/// hand the table's keys to the table before it).
fn entry_at(text: &str, at: usize) -> Option<std::ops::Range<usize>> {
    use toml::de::{DeTable, DeValue};
    fn inline(text: &str, v: &Spanned<DeValue>) -> bool {
        match v.get_ref() {
            DeValue::Table(_) => text[v.span()].starts_with('{'),
            DeValue::Array(a) => a.iter().all(|x| inline(text, x)),
            _ => true,
        }
    }
    fn in_table(text: &str, t: &DeTable, at: usize) -> Option<std::ops::Range<usize>> {
        t.iter().find_map(|(k, v)| {
            if k.span().start == at {
                inline(text, v).then(|| k.span().start..v.span().end)
            } else {
                in_value(text, v, at)
            }
        })
    }
    fn in_value(text: &str, v: &Spanned<DeValue>, at: usize) -> Option<std::ops::Range<usize>> {
        match v.get_ref() {
            DeValue::Table(t) => in_table(text, t, at),
            DeValue::Array(a) => a.iter().find_map(|x| in_value(text, x, at)),
            _ => None,
        }
    }
    let doc = DeTable::parse(text).ok()?;
    in_table(text, doc.get_ref(), at)
}

/// `text` with the bytes of `range` made spaces, line breaks kept.
fn blank(text: &str, range: std::ops::Range<usize>) -> String {
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..range.start]);
    out.extend(
        text[range.clone()]
            .chars()
            .map(|c| if c == '\n' || c == '\r' { c } else { ' ' }),
    );
    out.push_str(&text[range.end..]);
    out
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
    fn an_entry_is_blanked_from_key_to_value_keeping_lines() {
        let text = "a = 1\nbad = [\n  \"x\",\n]\n[t]\nc = { d = 1 }\n";
        let at = text.find("bad").unwrap();
        let r = entry_at(text, at).unwrap();
        assert_eq!(&text[r.clone()], "bad = [\n  \"x\",\n]");
        assert_eq!(
            blank(text, r),
            "a = 1\n       \n      \n \n[t]\nc = { d = 1 }\n"
        );
        // A table under a header is not blanked; a key inside it is.
        assert_eq!(entry_at(text, text.find("[t]").unwrap() + 1), None);
        let c = text.find("c =").unwrap();
        assert!(entry_at(text, c).is_some());
    }

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
