//! The clap definitions several commands share, each defined once and `#[command(flatten)]`ed
//! where it is used: the global flags, `--json`, the selection flags of `plan` and `build`,
//! `--max-age`, and the value types behind `--strategy`, `--color` and `--format`. Each
//! command's own flags are beside its code.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::model::Strategy;

/// The flags every command takes.
#[derive(Args, Debug)]
pub struct Global {
    /// Start in DIR instead of the current folder (the project root is the first folder
    /// upwards holding `layer.toml`)
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Cache directory [default: `cache/` in the project root]
    #[arg(long, global = true, env = "LAYER_CACHE", value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Parallel builds [default: number of cores]
    #[arg(short = 'j', long = "jobs", global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Print nothing on stderr but errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more on stderr
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Colour output (`NO_COLOR` is honoured by `auto`)
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,
    /// Plain status lines instead of progress bars
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// The remote cache, over `LAYER_REMOTE` and `[remote].url` (`s3://BUCKET/PREFIX`,
    /// `file:///PATH`, `https://...`); without URL (`cache ls|verify --remote`): the one
    /// configured
    #[arg(long, global = true, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub remote: Option<String>,
    /// Use no remote cache in this run
    #[arg(long, global = true)]
    pub no_remote: bool,
    /// Fail (exit 2) when the remote cache cannot be reached, instead of warning
    #[arg(long, global = true, conflicts_with = "no_remote")]
    pub remote_required: bool,
    /// Override an entry of an image's `[vars]` for this run (repeatable; part of the key, so
    /// the plan shows it)
    #[arg(long = "var", global = true, value_name = "IMAGE.KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String, String)>,
}

/// `--var IMAGE.KEY=VALUE`: the image, the variable and its value for this run.
pub fn parse_var(s: &str) -> std::result::Result<(String, String, String), String> {
    let parsed = s.split_once('=').and_then(|(target, value)| {
        let (image, key) = target.split_once('.')?;
        (crate::model::valid_name(image) && !key.is_empty())
            .then(|| (image.to_string(), key.to_string(), value.to_string()))
    });
    parsed.ok_or_else(|| format!("`{s}` is not IMAGE.KEY=VALUE: write, say, `app.PORT=8081`"))
}

/// `--color WHEN`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    /// Whether to colour a stream that is (or is not) a `terminal`.
    pub fn enabled(self, terminal: bool) -> bool {
        match self {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => {
                terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

/// `--format text|json` of the commands that print a table or JSON (`list`, `hash`,
/// `versions`, `cache ls|verify`), with `--json` as its alias.
#[derive(Args, Debug)]
pub struct Json {
    /// Print JSON (the same as `--format json`)
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// How to print it
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = DataFormat::Text)]
    format: DataFormat,
}

impl Json {
    /// Whether to print JSON.
    pub fn json(&self) -> bool {
        self.json || matches!(self.format, DataFormat::Json)
    }
}

/// `--format text|json` of the commands that print a result per image (`build`, `test`):
/// results as text on stderr, or also as JSON on stdout; `--json` is its alias.
#[derive(Args, Debug)]
pub struct JsonResults {
    /// Print a JSON result per image on stdout (the same as `--format json`)
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// `json`: a JSON result per image on stdout
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = DataFormat::Text)]
    format: DataFormat,
}

impl JsonResults {
    /// Whether to print JSON.
    pub fn json(&self) -> bool {
        self.json || matches!(self.format, DataFormat::Json)
    }
}

/// The `--format` of commands that print text or JSON.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DataFormat {
    Text,
    Json,
}

/// What `plan` and `build` select beyond their targets, and under which strategy.
#[derive(Args, Debug)]
pub struct Select {
    /// Only stale images and their descendants
    #[arg(long)]
    pub changed: bool,
    /// Only images whose key differs from their key at git revision REF, and their descendants
    #[arg(long, value_name = "REF")]
    pub since: Option<String>,
    /// Override `[project].strategy`
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,
}

/// `--max-age` of `plan` and `build`.
#[derive(Args, Debug)]
pub struct MaxAge {
    /// Treat artifacts older than AGE (`7d`, `12h`) as expired, for every image
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub max_age: Option<(Duration, String)>,
}

/// An age as `--max-age` takes it (`7d`, `12h`), with the text as written.
pub fn parse_age(s: &str) -> std::result::Result<(Duration, String), String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok((d, s.to_string())),
        _ => Err(format!(
            "`{s}` is not an age: write a number and a unit, such as `7d` or `12h`"
        )),
    }
}

/// A time limit as `test --timeout` takes it, in whole seconds: a number and a unit (`90s`,
/// `5m`, `2h`, `7d`, as ages are written) or a bare number of seconds.
pub fn parse_seconds(s: &str) -> std::result::Result<u64, String> {
    let secs = match s.parse::<u64>() {
        Ok(n) => Some(n),
        Err(_) => humantime::parse_duration(s).ok().map(|d| d.as_secs()),
    };
    match secs {
        Some(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "`{s}` is not a time limit: write a number and a unit, such as `90s`, `5m` or `2h`"
        )),
    }
}

/// `--strategy deep|shallow`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StrategyArg {
    Deep,
    Shallow,
}

impl From<StrategyArg> for Strategy {
    fn from(s: StrategyArg) -> Strategy {
        match s {
            StrategyArg::Deep => Strategy::Deep,
            StrategyArg::Shallow => Strategy::Shallow,
        }
    }
}

/// `--format text|json|markdown` of `report` (`plan` has more: `cli::plan::PlanFormat`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TextFormat {
    Text,
    Json,
    Markdown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_everywhere() {
        for (text, secs) in [
            ("90s", 90),
            ("5m", 300),
            ("2h", 7200),
            ("7d", 604_800),
            ("45", 45),
        ] {
            assert_eq!(parse_seconds(text), Ok(secs), "{text}");
        }
        for text in ["0", "0s", "soon", "-5m", "200ms"] {
            assert_eq!(
                parse_seconds(text),
                Err(format!(
                    "`{text}` is not a time limit: write a number and a unit, such as `90s`, `5m` or `2h`"
                )),
            );
        }
        for (text, secs) in [("90s", 90), ("5m", 300), ("2h", 7200), ("7d", 604_800)] {
            assert_eq!(parse_age(text).unwrap().0.as_secs(), secs, "{text}");
        }
    }
}
