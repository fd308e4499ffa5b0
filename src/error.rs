//! Errors: one enum for the library, and `Diagnostics`, the list of declaration errors that a
//! load collects so that a user sees every problem of a project in one run.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in one declaration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, relative to the project root (`images/app.toml`).
    pub file: String,
    /// 1-based line, where the parser or a span gives one.
    pub line: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.into(),
            line: None,
            message: message.into(),
            hint: None,
        }
    }

    pub fn at(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message)?,
            None => write!(f, "{}: {}", self.file, self.message)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every declaration error of one load, sorted by file and line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `Ok(())` when empty, otherwise the sorted list as an error.
    pub fn into_result(mut self) -> Result<(), Error> {
        if self.0.is_empty() {
            return Ok(());
        }
        self.0
            .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        self.0.dedup();
        Err(Error::Declarations(self))
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
                write!(f, "error: ")?;
            }
            write!(f, "{d}")?;
        }
        if self.0.len() > 1 {
            write!(
                f,
                "\n{} declaration errors; nothing was built",
                self.0.len()
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The first line is printed after `error: `; the rest follow as they are.
    #[error("{0}")]
    Declarations(Diagnostics),

    #[error("no `layer.toml` in `{}` or any folder above it", start.display())]
    NoProject { start: PathBuf },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("unknown image `{name}`")]
    UnknownImage {
        name: String,
        suggestion: Option<String>,
    },

    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },

    #[error("cache `{}`: {message}", path.display())]
    Cache { path: PathBuf, message: String },

    /// A project file that cannot be an input (a fifo in a role, a missing origin file).
    #[error("{path}: {message}")]
    Input {
        path: String,
        message: String,
        hint: Option<String>,
    },
}

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hint: None,
        }
    }

    /// A `hint:` line to print under the message.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NoProject { .. } => {
                Some("run `layer` inside a project, or name its root with `-C DIR`".to_string())
            }
            Error::UnknownImage {
                suggestion: Some(s),
                ..
            } => Some(format!("did you mean `{s}`?")),
            Error::UnknownImage {
                suggestion: None, ..
            } => Some("`layer list` shows the images of this project".to_string()),
            Error::Usage { hint, .. } | Error::Input { hint, .. } => hint.clone(),
            _ => None,
        }
    }

    /// SPEC §5.2: 2 for usage and declaration errors (nothing was built), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Declarations(_)
            | Error::NoProject { .. }
            | Error::UnknownImage { .. }
            | Error::Usage { .. }
            | Error::Input { .. } => 2,
            Error::Io { .. } | Error::Cache { .. } => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The closest of `candidates` to `name`, when it is close enough to be a likely typo: at most
/// a third of the longer name's length (and at least one) edits away; of equally close names,
/// the first in byte order. An edit is an insertion, a deletion, a substitution or a swap of two
/// neighbouring characters (`form` -> `from`): optimal string alignment distance.
pub fn did_you_mean<'a, I>(name: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = strsim::osa_distance(name, c);
        let limit = (name.len().max(c.len()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, bc)| (d, c) < (bd, bc)) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_names_only() {
        assert_eq!(
            did_you_mean("strtegy", ["strategy", "backend"]),
            Some("strategy".into())
        );
        assert_eq!(
            did_you_mean("form", ["from", "origin"]),
            Some("from".into())
        );
        assert_eq!(did_you_mean("zzz", ["from", "origin"]), None);
        assert_eq!(did_you_mean("bse", ["base", "java"]), Some("base".into()));
    }

    #[test]
    fn diagnostics_sort_and_count() {
        let mut d = Diagnostics::default();
        d.push(Diagnostic::new("images/b.toml", "second").at(Some(2)));
        d.push(Diagnostic::new("images/a.toml", "first").hint("fix it"));
        let err = d.into_result().unwrap_err();
        assert_eq!(
            err.to_string(),
            "images/a.toml: first\n  hint: fix it\nerror: images/b.toml:2: second\n2 declaration errors; nothing was built"
        );
        assert_eq!(err.exit_code(), 2);
    }
}
