//! Recipes: hostile projects as text, the fixtures of `tests/fixtures/hostile/` and what the
//! fuzzer (`examples/fuzz.rs`, which includes this file) writes when `layer plan` crashes,
//! hangs or ends with an exit code outside the interface. One step a line:
//!
//! ```text
//! # what it found, and the issue
//! expect 2 is not a regular file    exit code, then text stderr must hold (optional)
//! file PATH                         the lines up to a line `.` are the file's content
//! repeat N PATH                     N files, `{i}` = 0..N-1 and `{p}` = i-1 in the path and
//!                                   content; a content line with `{p}` is left out for i = 0
//!                                   and one starting `?0 ` is kept for i = 0 only
//! fifo PATH                         a named pipe
//! link TARGET PATH                  a symbolic link
//! sparse PATH BYTES                 a file of BYTES zero bytes that takes no disk
//! ```

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One step of a recipe.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    File(String, String),
    Repeat(usize, String, String),
    Fifo(String),
    Link(String, String),
    Sparse(String, u64),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recipe {
    pub comment: Vec<String>,
    pub expect_code: i32,
    pub expect_stderr: Option<String>,
    pub steps: Vec<Step>,
}

/// How a run of `layer plan` ended.
pub(crate) struct Run {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub hung: bool,
    pub took: Duration,
    pub stderr: String,
}

impl Run {
    /// Whether it ended as `recipe` expects.
    pub(crate) fn matches(&self, recipe: &Recipe) -> bool {
        self.code == Some(recipe.expect_code)
            && recipe
                .expect_stderr
                .as_ref()
                .is_none_or(|t| self.stderr.contains(t.as_str()))
    }

    /// A crash, a hang, or an exit code `layer` never gives (SPEC §5.2: 0, 1 or 2).
    pub(crate) fn is_failure(&self) -> bool {
        self.hung || self.signal.is_some() || !matches!(self.code, Some(0..=2))
    }

    pub(crate) fn describe(&self) -> String {
        match (self.hung, self.signal, self.code) {
            (true, _, _) => format!("no end after {:?}", self.took),
            (_, Some(s), _) => format!("killed by signal {s} after {:?}", self.took),
            (_, _, c) => format!("exit {c:?} after {:?}", self.took),
        }
    }
}

fn expand(template: &str, i: usize) -> String {
    template
        .replace("{i}", &i.to_string())
        .replace("{p}", &i.wrapping_sub(1).to_string())
}

impl Recipe {
    pub(crate) fn parse(text: &str) -> Result<Recipe, String> {
        let mut r = Recipe {
            comment: Vec::new(),
            expect_code: 0,
            expect_stderr: None,
            steps: Vec::new(),
        };
        let mut lines = text.lines().enumerate();
        let body = |lines: &mut std::iter::Enumerate<std::str::Lines>| -> String {
            let mut content = String::new();
            for (_, l) in lines.by_ref() {
                if l == "." {
                    break;
                }
                content.push_str(l);
                content.push('\n');
            }
            content
        };
        while let Some((n, line)) = lines.next() {
            let err = |m: &str| format!("line {}: {m}: {line}", n + 1);
            if let Some(c) = line.strip_prefix('#') {
                r.comment.push(c.trim().to_string());
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            match word {
                "expect" => {
                    let (code, text) = rest.split_once(' ').unwrap_or((rest, ""));
                    r.expect_code = code.parse().map_err(|_| err("bad exit code"))?;
                    r.expect_stderr = (!text.is_empty()).then(|| text.to_string());
                }
                "file" => r.steps.push(Step::File(rest.to_string(), body(&mut lines))),
                "repeat" => {
                    let (count, path) = rest.split_once(' ').ok_or_else(|| err("want N PATH"))?;
                    let count = count.parse().map_err(|_| err("bad count"))?;
                    r.steps
                        .push(Step::Repeat(count, path.to_string(), body(&mut lines)));
                }
                "fifo" => r.steps.push(Step::Fifo(rest.to_string())),
                "link" => {
                    let (to, path) = rest
                        .split_once(' ')
                        .ok_or_else(|| err("want TARGET PATH"))?;
                    r.steps.push(Step::Link(to.to_string(), path.to_string()));
                }
                "sparse" => {
                    let (path, size) =
                        rest.split_once(' ').ok_or_else(|| err("want PATH BYTES"))?;
                    let size = size.parse().map_err(|_| err("bad size"))?;
                    r.steps.push(Step::Sparse(path.to_string(), size));
                }
                _ => return Err(err("unknown step")),
            }
        }
        Ok(r)
    }

    /// The recipe as text, as [`Recipe::parse`] reads it.
    pub(crate) fn to_text(&self) -> String {
        let mut s = String::new();
        for c in &self.comment {
            s.push_str(&format!("# {c}\n"));
        }
        s.push_str(&format!("expect {}", self.expect_code));
        if let Some(t) = &self.expect_stderr {
            s.push_str(&format!(" {t}"));
        }
        s.push('\n');
        for step in &self.steps {
            match step {
                Step::File(p, c) => s.push_str(&format!("file {p}\n{c}.\n")),
                Step::Repeat(n, p, c) => s.push_str(&format!("repeat {n} {p}\n{c}.\n")),
                Step::Fifo(p) => s.push_str(&format!("fifo {p}\n")),
                Step::Link(t, p) => s.push_str(&format!("link {t} {p}\n")),
                Step::Sparse(p, n) => s.push_str(&format!("sparse {p} {n}\n")),
            }
        }
        s
    }

    /// Writes the project into `dir`.
    pub(crate) fn write(&self, dir: &Path) {
        let at = |rel: &str| {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let _ = std::fs::remove_file(&p);
            p
        };
        for step in &self.steps {
            match step {
                Step::File(p, c) => std::fs::write(at(p), c).unwrap(),
                Step::Repeat(n, p, c) => {
                    for i in 0..*n {
                        let content: String = c
                            .lines()
                            .filter(|l| i > 0 || !l.contains("{p}"))
                            .filter_map(|l| match l.strip_prefix("?0 ") {
                                Some(l) => (i == 0).then_some(l),
                                None => Some(l),
                            })
                            .map(|l| expand(l, i) + "\n")
                            .collect();
                        std::fs::write(at(&expand(p, i)), content).unwrap();
                    }
                }
                Step::Fifo(p) => {
                    let path = at(p);
                    rustix::fs::mknodat(
                        rustix::fs::CWD,
                        &path,
                        rustix::fs::FileType::Fifo,
                        rustix::fs::Mode::from_raw_mode(0o644),
                        0,
                    )
                    .unwrap();
                }
                Step::Link(t, p) => std::os::unix::fs::symlink(t, at(p)).unwrap(),
                Step::Sparse(p, n) => std::fs::File::create(at(p)).unwrap().set_len(*n).unwrap(),
            }
        }
    }

    /// Runs `BIN plan` in `dir` (cache in `dir/cache`), killed after `limit`.
    pub(crate) fn run(&self, bin: &Path, dir: &Path, limit: Duration) -> Run {
        let start = Instant::now();
        let mut child = Command::new(bin)
            .arg("plan")
            .current_dir(dir)
            .env_remove("LAYER_CACHE")
            .env_remove("LAYER_REMOTE")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("layer runs");
        let mut stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = stderr.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        });
        let mut hung = false;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > limit {
                hung = true;
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        use std::os::unix::process::ExitStatusExt;
        Run {
            code: status.code(),
            signal: if hung { None } else { status.signal() },
            hung,
            took: start.elapsed(),
            stderr: reader.join().unwrap(),
        }
    }
}
