//! What a build shows while it runs, on stderr: indicatif bars on a terminal (the overall count
//! and a line per running image with its stage and elapsed time), one plain line per event
//! otherwise (CI, pipes, `--no-progress`); with `-v` ([`Streaming`]) also every line the builds
//! print, prefixed with the image (`IMAGE | LINE`, as `docker buildx --progress=plain` does).
//! Transfers to and from the remote cache show their bytes and rate while they run (a bar per
//! image, fed through a [`TransferMeter`]) and end in one line with their size, time and rate.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::remote::Meter;

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
    /// Downloaded and verified from the remote cache: `bytes` of blobs in `elapsed`.
    Pulled {
        image: &'a str,
        version: &'a str,
        elapsed: Duration,
        bytes: u64,
    },
    /// Uploading a new build to the remote cache.
    Pushing {
        image: &'a str,
        version: &'a str,
    },
    /// A transfer of the image's blobs: `done` bytes moved of `total`.
    Bytes {
        image: &'a str,
        done: u64,
        total: u64,
    },
    /// A new build uploaded to the remote cache: `bytes` of blobs in `elapsed`.
    Pushed {
        image: &'a str,
        version: &'a str,
        elapsed: Duration,
        bytes: u64,
    },
    /// A new build that was not uploaded: the remote already has a build of its key (another
    /// runner was first), or the push failed with `error` (a warning: the build is kept).
    NotPushed {
        image: &'a str,
        version: &'a str,
        error: Option<&'a str>,
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

/// `n` bytes as people read them: `512 B`, `34.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// What a finished transfer moved, for its closing line: `34.2 MiB, 61.0 MiB/s`, or `the
/// record only` when no blob moved (an artifact kept elsewhere, a blob already there).
pub fn moved_text(bytes: u64, elapsed: Duration) -> String {
    if bytes == 0 {
        return "the record only".into();
    }
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = (bytes as f64 / secs) as u64;
    format!("{}, {}/s", human_bytes(bytes), human_bytes(rate))
}

/// `pulled IMAGE VERSION in 0.6s: 34.2 MiB, 61.0 MiB/s` (or `pushed ...`).
fn moved_line(verb: &str, image: &str, version: &str, elapsed: Duration, bytes: u64) -> String {
    format!(
        "{verb} {image} {version} in {:.1}s: {}",
        elapsed.as_secs_f64(),
        moved_text(bytes, elapsed)
    )
}

/// A [`Event::NotPushed`] in words.
fn not_pushed_line(e: &Event) -> String {
    match *e {
        Event::NotPushed {
            image,
            version,
            error: None,
        } => format!("already remote {image} {version}: another run pushed a build of its key first"),
        Event::NotPushed {
            image,
            version,
            error: Some(error),
        } => format!(
            "warning: push of `{image}` {version} to the remote cache failed (the build is kept): {error}"
        ),
        _ => unreachable!("only for NotPushed"),
    }
}

/// The [`Meter`] of one image's transfer: its bytes as [`Event::Bytes`], and their count.
pub struct TransferMeter<'a> {
    progress: &'a dyn Progress,
    image: &'a str,
    total: AtomicU64,
    done: AtomicU64,
}

impl<'a> TransferMeter<'a> {
    pub fn new(progress: &'a dyn Progress, image: &'a str) -> Self {
        TransferMeter {
            progress,
            image,
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }

    /// The bytes moved so far.
    pub fn bytes(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    fn tell(&self) {
        self.progress.event(Event::Bytes {
            image: self.image,
            done: self.done.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
        });
    }
}

impl Meter for TransferMeter<'_> {
    fn begin(&self, total: u64) {
        self.total.fetch_add(total, Ordering::Relaxed);
        self.tell();
    }

    fn moved(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        self.tell();
    }
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
                bytes,
            } => moved_line("pulled", image, version, elapsed, bytes) + "\n",
            Event::Pushed {
                image,
                version,
                elapsed,
                bytes,
            } => moved_line("pushed", image, version, elapsed, bytes) + "\n",
            Event::Output { image, line } => output_line(image, line) + "\n",
            Event::NotPushed { .. } => not_pushed_line(&e) + "\n",
            // The closing line says it all.
            Event::Pushing { .. } | Event::Bytes { .. } => return,
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
    /// Whether an image's closing line is printed (`layer push` and `pull` print a table).
    lines: bool,
}

impl Bars {
    /// The bars of `layer build`: the overall count of images, and a line per running image.
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
            lines: true,
        }
    }

    /// The bars of `layer push` and `layer pull`: a line per transfer while it runs, no overall
    /// count and no closing lines (the command's table follows).
    pub fn transfers() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            overall: ProgressBar::hidden(),
            running: Mutex::new(HashMap::new()),
            lines: false,
        }
    }

    /// The line of `image`, made on its first event.
    fn line<'m>(
        &self,
        running: &'m mut HashMap<String, ProgressBar>,
        image: &str,
    ) -> &'m ProgressBar {
        running.entry(image.to_string()).or_insert_with(|| {
            let b = self.multi.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("  {spinner} {prefix:.bold} {wide_msg} {elapsed}")
                    .expect("template is valid"),
            );
            b.set_prefix(image.to_string());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        })
    }

    /// The line of `image` ends: removed, and `text` printed above the bars.
    fn end(&self, running: &mut HashMap<String, ProgressBar>, image: &str, text: String) {
        if let Some(b) = running.remove(image) {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
        if self.lines {
            let _ = self.multi.println(text);
        }
    }
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

/// A transfer's line once its size is known: `pull base-linux  12.0 MiB/34.2 MiB  61 MiB/s`.
fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "  {spinner} {prefix:.bold} {msg} [{bar:20}] {binary_bytes}/{binary_total_bytes}  {binary_bytes_per_sec}  {elapsed}",
    )
    .expect("template is valid")
    .progress_chars("=> ")
}

impl Progress for Bars {
    fn start(&self, total: usize) {
        self.overall.set_length(total as u64);
    }

    fn event(&self, e: Event) {
        let mut running = self.running.lock().expect("no panics while locked");
        match e {
            Event::Warning { message } => {
                let _ = self.multi.println(format!("warning: {message}"));
            }
            Event::Output { image, line } => {
                let _ = self.multi.println(output_line(image, line));
            }
            Event::Waiting { image } => {
                self.line(&mut running, image)
                    .set_message("waiting for another run");
            }
            Event::Started { image, version } => {
                self.line(&mut running, image)
                    .set_message(version.to_string());
            }
            Event::Pulling { image, version } => {
                self.line(&mut running, image)
                    .set_message(format!("pull {version}"));
            }
            Event::Pushing { image, version } => {
                self.line(&mut running, image)
                    .set_message(format!("push {version}"));
            }
            Event::Bytes { image, done, total } => {
                let b = self.line(&mut running, image);
                if b.length() != Some(total) {
                    b.set_style(bytes_style());
                    b.set_length(total);
                    b.reset_eta();
                }
                b.set_position(done);
            }
            Event::Stage { image, stage } => {
                if let Some(b) = running.get(image) {
                    b.set_message(stage.to_string());
                }
            }
            Event::Pushed {
                image,
                version,
                elapsed,
                bytes,
            } => {
                // The build was counted when it was built.
                let line = moved_line("pushed", image, version, elapsed, bytes);
                self.end(&mut running, image, line);
            }
            Event::NotPushed { image, .. } => {
                let line = not_pushed_line(&e);
                self.end(&mut running, image, line);
            }
            Event::Reused { image, .. }
            | Event::Pulled { image, .. }
            | Event::Built { image, .. }
            | Event::Failed { image, .. }
            | Event::Skipped { image, .. } => {
                let line = match e {
                    Event::Reused { version, .. } => format!("reused {image} {version}"),
                    Event::Pulled {
                        version,
                        elapsed,
                        bytes,
                        ..
                    } => moved_line("pulled", image, version, elapsed, bytes),
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
                self.end(&mut running, image, line);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_rates_read_as_people_write_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(35_860_000), "34.2 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(
            moved_text(35_860_000, Duration::from_millis(560)),
            "34.2 MiB, 61.1 MiB/s"
        );
        assert_eq!(moved_text(0, Duration::from_secs(1)), "the record only");
        // A transfer too quick to time still has a rate.
        assert_eq!(moved_text(2048, Duration::ZERO), "2.0 KiB, 2.0 MiB/s");
        assert_eq!(
            moved_line(
                "pulled",
                "base",
                "1.0.3",
                Duration::from_millis(560),
                35_860_000
            ),
            "pulled base 1.0.3 in 0.6s: 34.2 MiB, 61.1 MiB/s"
        );
    }

    /// The bars' templates parse, and a transfer's line takes its events (drawn nowhere).
    #[test]
    fn transfer_bars_take_their_events() {
        let _ = bytes_style();
        let bars = Bars::transfers();
        bars.multi.set_draw_target(ProgressDrawTarget::hidden());
        bars.event(Event::Pulling {
            image: "base",
            version: "1.0.3",
        });
        bars.event(Event::Bytes {
            image: "base",
            done: 10,
            total: 100,
        });
        assert_eq!(bars.running.lock().unwrap()["base"].position(), 10);
        bars.event(Event::Pulled {
            image: "base",
            version: "1.0.3",
            elapsed: Duration::from_secs(1),
            bytes: 100,
        });
        assert!(bars.running.lock().unwrap().is_empty());
        bars.finish();
    }

    /// What a metered transfer tells: its total first, then what moved.
    #[test]
    fn a_transfer_meter_counts_and_reports_bytes() {
        struct Seen(Mutex<Vec<(u64, u64)>>);
        impl Progress for Seen {
            fn start(&self, _: usize) {}
            fn event(&self, e: Event) {
                if let Event::Bytes { image, done, total } = e {
                    assert_eq!(image, "base");
                    self.0.lock().unwrap().push((done, total));
                }
            }
            fn finish(&self) {}
        }
        let seen = Seen(Mutex::new(Vec::new()));
        let m = TransferMeter::new(&seen, "base");
        m.begin(10);
        m.moved(4);
        m.moved(6);
        assert_eq!(m.bytes(), 10);
        assert_eq!(*seen.0.lock().unwrap(), [(0, 10), (4, 10), (10, 10)]);
    }
}
