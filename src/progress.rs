//! What a build shows while it runs, on stderr: indicatif bars on a terminal (the overall count
//! and a line per running image with its stage and elapsed time), one plain line per event
//! otherwise (CI, pipes, `--no-progress`); with `-v` ([`Streaming`]) also every line the builds
//! print, prefixed with the image (`IMAGE | LINE`, as `docker buildx --progress=plain` does).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// Another run holds the image's lock.
    Waiting {
        image: &'a str,
    },
    Started {
        image: &'a str,
        version: &'a str,
    },
    /// A stage of a running build (a role, a step of the backend).
    Stage {
        image: &'a str,
        stage: &'a str,
    },
    /// Another run built the same key while this one waited.
    Reused {
        image: &'a str,
        version: &'a str,
    },
    Built {
        image: &'a str,
        version: &'a str,
        elapsed: Duration,
    },
    Failed {
        image: &'a str,
        error: &'a str,
        log: Option<&'a str>,
        tail: &'a [String],
    },
    Skipped {
        image: &'a str,
        cause: &'a str,
    },
    /// Downloading a build from the remote cache.
    Pulling {
        image: &'a str,
        version: &'a str,
    },
    /// Downloaded and verified from the remote cache.
    Pulled {
        image: &'a str,
        version: &'a str,
        elapsed: Duration,
    },
    /// A new build uploaded to the remote cache.
    Pushed {
        image: &'a str,
        version: &'a str,
    },
    /// A line a build printed (only sent when [`Progress::streams_output`]).
    Output {
        image: &'a str,
        line: &'a str,
    },
    /// Something that does not stop the run (a failed push, a pull that falls back to a build).
    Warning {
        message: &'a str,
    },
}

pub trait Progress: Sync {
    /// How many builds the run will start.
    fn start(&self, total: usize);
    fn event(&self, e: Event);
    /// The run is over: clear bars.
    fn finish(&self);
    /// Whether to send it [`Event::Output`] for every line a build prints (`-v`).
    fn streams_output(&self) -> bool {
        false
    }
}

/// `-v`: another progress that also shows every line a build prints.
pub struct Streaming(pub Box<dyn Progress>);

impl Progress for Streaming {
    fn start(&self, total: usize) {
        self.0.start(total);
    }

    fn event(&self, e: Event) {
        self.0.event(e);
    }

    fn finish(&self) {
        self.0.finish();
    }

    fn streams_output(&self) -> bool {
        true
    }
}

/// A line of a build's output as `-v` shows it.
fn output_line(image: &str, line: &str) -> String {
    format!("{image} | {line}")
}

/// One line per event.
pub struct Plain {
    pub quiet: bool,
}

fn failure_text(image: &str, error: &str, log: Option<&str>, tail: &[String]) -> String {
    let mut s = format!("error: `{image}` failed: {error}\n");
    if !tail.is_empty() {
        s.push_str(&format!("  last lines of the log of `{image}`:\n"));
        for l in tail {
            s.push_str(&format!("  | {l}\n"));
        }
    }
    if let Some(log) = log {
        s.push_str(&format!("  log: {log}\n"));
    }
    s
}

impl Progress for Plain {
    fn start(&self, _total: usize) {}

    fn event(&self, e: Event) {
        let line = match e {
            Event::Failed {
                image,
                error,
                log,
                tail,
            } => failure_text(image, error, log, tail),
            _ if self.quiet => return,
            Event::Waiting { image } => {
                format!("waiting: another layer run is building `{image}`\n")
            }
            Event::Started { image, version } => format!("building {image} {version}\n"),
            Event::Stage { image, stage } => format!("{image}: {stage}\n"),
            Event::Reused { image, version } => {
                format!("reused {image} {version}: built meanwhile by another run\n")
            }
            Event::Built {
                image,
                version,
                elapsed,
            } => {
                format!("built {image} {version} in {:.1}s\n", elapsed.as_secs_f64())
            }
            Event::Skipped { image, cause } => format!("skipped {image}: {cause}\n"),
            Event::Pulling { image, version } => format!("pulling {image} {version}\n"),
            Event::Pulled {
                image,
                version,
                elapsed,
            } => format!(
                "pulled {image} {version} in {:.1}s\n",
                elapsed.as_secs_f64()
            ),
            Event::Pushed { image, version } => format!("pushed {image} {version}\n"),
            Event::Output { image, line } => output_line(image, line) + "\n",
            Event::Warning { message } => format!("warning: {message}\n"),
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn finish(&self) {}
}

/// Bars on a terminal.
pub struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    running: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    pub fn new() -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:>8.bold} [{bar:30}] {pos}/{len} images  {elapsed}",
            )
            .expect("template is valid")
            .progress_chars("=> "),
        );
        overall.set_prefix("building");
        Bars {
            multi,
            overall,
            running: Mutex::new(HashMap::new()),
        }
    }
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Bars {
    fn start(&self, total: usize) {
        self.overall.set_length(total as u64);
    }

    fn event(&self, e: Event) {
        let mut running = self.running.lock().expect("no panics while locked");
        match e {
            Event::Pushed { image, version } => {
                let _ = self.multi.println(format!("pushed {image} {version}"));
            }
            Event::Warning { message } => {
                let _ = self.multi.println(format!("warning: {message}"));
            }
            Event::Output { image, line } => {
                let _ = self.multi.println(output_line(image, line));
            }
            Event::Waiting { image }
            | Event::Started { image, .. }
            | Event::Pulling { image, .. } => {
                let bar = running.entry(image.to_string()).or_insert_with(|| {
                    let b = self.multi.add(ProgressBar::new_spinner());
                    b.set_style(
                        ProgressStyle::with_template(
                            "  {spinner} {prefix:.bold} {wide_msg} {elapsed}",
                        )
                        .expect("template is valid"),
                    );
                    b.set_prefix(image.to_string());
                    b.enable_steady_tick(Duration::from_millis(120));
                    b
                });
                match e {
                    Event::Waiting { .. } => bar.set_message("waiting for another run"),
                    Event::Started { version, .. } => bar.set_message(version.to_string()),
                    Event::Pulling { version, .. } => bar.set_message(format!("pulling {version}")),
                    _ => {}
                }
            }
            Event::Stage { image, stage } => {
                if let Some(b) = running.get(image) {
                    b.set_message(stage.to_string());
                }
            }
            Event::Reused { image, .. }
            | Event::Pulled { image, .. }
            | Event::Built { image, .. }
            | Event::Failed { image, .. }
            | Event::Skipped { image, .. } => {
                if let Some(b) = running.remove(image) {
                    b.finish_and_clear();
                    self.multi.remove(&b);
                }
                let line = match e {
                    Event::Reused { version, .. } => format!("reused {image} {version}"),
                    Event::Pulled {
                        version, elapsed, ..
                    } => {
                        format!("pulled {image} {version} in {:.1}s", elapsed.as_secs_f64())
                    }
                    Event::Built {
                        version, elapsed, ..
                    } => {
                        format!("built {image} {version} in {:.1}s", elapsed.as_secs_f64())
                    }
                    Event::Failed {
                        error, log, tail, ..
                    } => failure_text(image, error, log, tail).trim_end().to_string(),
                    Event::Skipped { cause, .. } => format!("skipped {image}: {cause}"),
                    _ => unreachable!(),
                };
                let _ = self.multi.println(line);
                if !matches!(e, Event::Skipped { .. }) {
                    self.overall.inc(1);
                }
            }
        }
    }

    fn finish(&self) {
        for (_, b) in self.running.lock().expect("no panics while locked").drain() {
            b.finish_and_clear();
        }
        self.overall.finish_and_clear();
    }
}
