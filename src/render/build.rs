//! What `layer build` and `layer test` print on stderr: the closing summary of a build, and
//! each image's test results.

use std::fmt::Write;

use super::style::Style;

/// The closing status of `layer build`, for stderr.
/// Each failure names its log; the first line ends with how long the run took.
pub fn build_summary(report: &crate::exec::Report, elapsed: std::time::Duration) -> String {
    use crate::exec::Done;
    let mut s = String::new();
    if let Some(sig) = report.interrupted {
        let _ = writeln!(s, "interrupted by signal {sig}: running builds were stopped and nothing of them was recorded");
    }
    let _ = writeln!(
        s,
        "built {}, fresh {}, failed {}, skipped {} in {:.1}s",
        report.count(Done::Built),
        report.count(Done::Fresh),
        report.count(Done::Failed),
        report.count(Done::Skipped),
        elapsed.as_secs_f64(),
    );
    for i in &report.images {
        match (i.action, &i.cause, &i.error) {
            (Done::Failed, _, Some(e)) => {
                let log = i.log.as_ref().map(|l| format!(" (log: {l})"));
                let _ = writeln!(s, "  failed   {}: {e}{}", i.name, log.unwrap_or_default());
            }
            (Done::Skipped, Some(c), _) if c != "not selected" => {
                let _ = writeln!(s, "  skipped  {}: {c}", i.name);
            }
            _ => {}
        }
    }
    s
}

/// One image's test results for the terminal: a line per test, the output of failed ones.
pub fn image_tests_text(r: &crate::backend::rootfs::check::ImageTests, style: Style) -> String {
    let mut s = String::new();
    if r.result == "no-tests" {
        let _ = writeln!(
            s,
            "{} {} {} -> {}: an image without tests is not tested",
            r.name,
            r.version,
            style.paint("no tests", "33"),
            r.release_status
        );
        let _ = writeln!(
            s,
            "  hint: add a `[[test]]` to `images/{}.toml`, or a `tests/*.sh` to one of its roles",
            r.name
        );
        return s;
    }
    let head = match r.result.as_str() {
        "passed" => style.paint("passed", "32"),
        other => style.paint(other, "1;31"),
    };
    let _ = writeln!(
        s,
        "{} {} {head} ({} tests, {:.1}s) -> {}",
        r.name,
        r.version,
        r.tests.len(),
        r.duration_ms as f64 / 1000.0,
        r.release_status
    );
    if r.tests_changed {
        let _ = writeln!(
            s,
            "  note: its tests changed since it was last tested: the status is of these tests"
        );
    }
    if let Some(e) = &r.error {
        let _ = writeln!(s, "  error: {e}");
    }
    if r.result != "passed" {
        let _ = writeln!(s, "  log: {}", r.log);
    }
    for t in &r.tests {
        let mark = if t.passed {
            style.paint("ok  ", "32")
        } else {
            style.paint("FAIL", "1;31")
        };
        let _ = writeln!(
            s,
            "  {mark} {} ({:.1}s){}",
            t.name,
            t.duration_ms as f64 / 1000.0,
            if t.passed {
                String::new()
            } else {
                format!(": {}", t.status)
            }
        );
        if !t.passed {
            for line in t
                .output
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                let _ = writeln!(s, "       | {line}");
            }
        }
    }
    s
}
