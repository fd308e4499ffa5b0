//! `layer report --inventory FILE` (SPEC §7): which image versions the running instances run,
//! which of them run a version older than a fix, and which run a version built too long ago.
//!
//! The inventory is a CSV file with a header row or a JSON array of objects, with the fields
//! `instance`, `image`, `version` and optionally `launched` (RFC 3339); other columns are
//! ignored. A row may name an `artifact` id (an AMI id, say) instead of image and version: it
//! is mapped through the records. Versions are shown as `MAJOR.MINOR.BUILD`, however the
//! inventory writes them.
//!
//! An instance needs a rebuild after a fix in `IMAGE` at `VERSION` (`--fixed-in`) when it runs
//! `IMAGE` older than `VERSION`, or an image whose recorded build was made (deep, at any depth)
//! on `IMAGE` older than `VERSION`: an app server built on the unfixed base is not fixed either.
//! Versions compare numerically field by field (`2` < `2.0.1` < `10`). An instance running a
//! revoked build, or a build made on one, needs a rebuild too, with or without `--fixed-in`.
//!
//! Making the report is pure: records come in as values. Reading the file is the one I/O.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};
use crate::record::Record;
use crate::version::{self, short, version_fields};

/// One running instance, as the inventory gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub instance: String,
    pub image: Option<String>,
    pub version: Option<String>,
    pub artifact: Option<String>,
    pub launched: Option<String>,
    /// Where it is in the file: `line 4` (CSV) or `entry 3` (JSON), for messages.
    pub at: String,
}

/// Reads an inventory: a JSON array when the file starts with `[`, CSV with a header otherwise.
pub fn read_inventory(path: &Path) -> Result<Vec<Instance>> {
    let bytes = std::fs::read(path).map_err(|e| Error::Input {
        kind: ErrorKind::InventoryUnreadable,
        path: path.display().to_string(),
        message: format!("cannot read the inventory: {}", crate::error::io_words(&e)),
        hint: Some("give the path of a CSV or JSON inventory with `--inventory FILE`".into()),
    })?;
    let text = String::from_utf8(bytes).map_err(|_| bad(path, "is not UTF-8 text".into()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let instances = if text.trim_start().starts_with('[') {
        parse_json(text)
    } else {
        parse_csv_inventory(text)
    }
    .map_err(|m| bad(path, m))?;
    for i in &instances {
        if let Some(l) = &i.launched {
            if humantime::parse_rfc3339_weak(l).is_err() {
                return Err(bad(
                    path,
                    format!("{}: `launched` is not an RFC 3339 time: `{l}`", i.at),
                ));
            }
        }
    }
    Ok(instances)
}

fn bad(path: &Path, message: String) -> Error {
    Error::Input { kind: ErrorKind::Inventory,
        path: path.display().to_string(),
        message,
        hint: Some("an inventory is CSV with a header row, or a JSON array of objects, with the fields `instance`, `image`, `version` (or `artifact`) and optionally `launched`".into()),
    }
}

/// Splits CSV text (RFC 4180: quoted fields with `""` for a quote; CRLF, LF or CR) into
/// records, each with the line it starts on. Blank lines are skipped.
///
/// The `csv` crate reads the records. It reads leniently — a quote inside an unquoted field
/// stays as text, and an unclosed quote runs to the end of the file — so `check_quotes`
/// refuses both first, naming the line.
pub fn parse_csv(text: &str) -> std::result::Result<Vec<(usize, Vec<String>)>, String> {
    check_quotes(text)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let pos = record.position().expect("a record read has a position");
        // The position is where the reader was when the record began: before the line ends
        // (and blank lines) it skips to reach the record's first field.
        let rest = &text[pos.byte() as usize..];
        let fields = rest.trim_start_matches(['\r', '\n']);
        let skipped = &rest[..rest.len() - fields.len()];
        let line = pos.line() as usize + skipped.matches('\n').count();
        // A line of spaces is blank too, but `" "` is a field.
        if record.len() == 1 && record[0].trim().is_empty() && !fields.starts_with('"') {
            continue;
        }
        out.push((line, record.iter().map(str::to_string).collect()));
    }
    Ok(out)
}

/// Refuses what the `csv` crate would read as text: a quote inside an unquoted field (one that
/// does not start with the quote), and a quoted field not closed before the end of the file.
/// Walks the text as the `csv` crate does: a quote opens a quoted field only at its start, `""`
/// inside one is a quote, and `\r`, `\n` or `\r\n` end a record outside one.
fn check_quotes(text: &str) -> std::result::Result<(), String> {
    /// Where in a field the walk is.
    #[derive(Clone, Copy, PartialEq)]
    enum At {
        Start,
        Unquoted,
        Quoted,
        /// A quote inside a quoted field: its end, or the first of `""`.
        QuoteInQuoted,
    }
    let mut at = At::Start;
    // The line the walk is on, and the one the current record started on.
    let (mut line, mut start) = (1, 1);
    for c in text.chars() {
        at = match (at, c) {
            (At::Quoted, '"') => At::QuoteInQuoted,
            (At::Quoted, c) => {
                line += usize::from(c == '\n');
                At::Quoted
            }
            (At::QuoteInQuoted, '"') => At::Quoted,
            (_, ',' | '\r') => At::Start,
            (_, '\n') => {
                line += 1;
                start = line;
                At::Start
            }
            (At::Start, '"') => At::Quoted,
            (_, '"') => return Err(format!("line {line}: a quote inside an unquoted field")),
            _ => At::Unquoted,
        };
    }
    if at == At::Quoted {
        return Err(format!("line {start}: a quoted field is not closed"));
    }
    Ok(())
}

fn parse_csv_inventory(text: &str) -> std::result::Result<Vec<Instance>, String> {
    let mut records = parse_csv(text)?.into_iter();
    let Some((_, header)) = records.next() else {
        return Ok(vec![]);
    };
    let header: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let instance = col("instance").ok_or_else(|| {
        format!(
            "line 1: the header has no `instance` column (it has: {})",
            header.join(", ")
        )
    })?;
    let (image, version, artifact) = (col("image"), col("version"), col("artifact"));
    if artifact.is_none() && (image.is_none() || version.is_none()) {
        return Err("line 1: the header needs `image` and `version` columns, or `artifact`".into());
    }
    let launched = col("launched");
    let get = |row: &[String], c: Option<usize>| {
        c.and_then(|c| row.get(c))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    records
        .map(|(line, row)| {
            let id =
                get(&row, Some(instance)).ok_or_else(|| format!("line {line}: no `instance`"))?;
            Ok(Instance {
                instance: id,
                image: get(&row, image),
                version: get(&row, version),
                artifact: get(&row, artifact),
                launched: get(&row, launched),
                at: format!("line {line}"),
            })
        })
        .collect()
}

fn parse_json(text: &str) -> std::result::Result<Vec<Instance>, String> {
    let rows: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON array of objects: {e}"))?;
    rows.iter()
        .enumerate()
        .map(|(n, row)| {
            let at = format!("entry {}", n + 1);
            let get = |k: &str| -> std::result::Result<Option<String>, String> {
                match row.get(k) {
                    None | Some(serde_json::Value::Null) => Ok(None),
                    Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
                    Some(serde_json::Value::String(s)) => Ok(Some(s.trim().to_string())),
                    Some(v) => Err(format!("{at}: `{k}` must be a string, not `{v}`")),
                }
            };
            Ok(Instance {
                instance: get("instance")?.ok_or_else(|| format!("{at}: no `instance`"))?,
                image: get("image")?,
                version: get("version")?,
                artifact: get("artifact")?,
                launched: get("launched")?,
                at,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The report.

/// What the report is asked for besides the counts.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--fixed-in IMAGE=VERSION`.
    pub fixed_in: Vec<(String, String)>,
    /// `--max-age`: the limit and its text.
    pub max_age: Option<(Duration, String)>,
    pub now: Option<SystemTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub image: String,
    pub version: String,
    pub instances: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Group {
    pub count: usize,
    pub instances: Vec<String>,
}

/// An instance listed under `rebuild` or `expired`, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub instance: String,
    pub image: String,
    pub version: String,
    pub why: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub rows: Vec<Row>,
    pub total: usize,
    pub rebuild: Vec<Listed>,
    pub expired: Vec<Listed>,
    /// Instances on a version with no record: their build date is unknown.
    pub undated: Vec<Listed>,
    /// Rows that match nothing: `(where, what)`.
    pub unmatched: Vec<(String, String)>,
    pub fixed_in: Vec<(String, String)>,
    pub max_age: Option<String>,
}

/// Makes the report of `instances` against the records of every image (newest first).
pub fn make(
    instances: &[Instance],
    records: &BTreeMap<String, Vec<Record>>,
    opts: &Options,
) -> Report {
    let find = |image: &str, version: &str| {
        records
            .get(image)
            .and_then(|rs| rs.iter().find(|r| version::names(&r.version, version)))
    };
    let by_artifact: BTreeMap<&str, &Record> = records
        .values()
        .flatten()
        .map(|r| (r.artifact.id.as_str(), r))
        .collect();
    let mut report = Report {
        fixed_in: opts.fixed_in.clone(),
        max_age: opts.max_age.as_ref().map(|(_, t)| t.clone()),
        ..Default::default()
    };
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for inst in instances {
        let at = || format!("{} (`{}`)", inst.at, inst.instance);
        let (image, version, record) = match identify(inst, &by_artifact, &find) {
            Ok(found) => found,
            Err(why) => {
                report.unmatched.push((at(), why));
                continue;
            }
        };
        if record.is_none() && inst.artifact.is_none() {
            let what = if records.contains_key(&image) {
                format!("`{image}` has no recorded build {version}")
            } else {
                format!("the cache has no record of `{image}`")
            };
            report.unmatched.push((at(), what));
        }
        report.total += 1;
        *counts.entry((image.clone(), version.clone())).or_default() += 1;
        let listed = |why: String| Listed {
            instance: inst.instance.clone(),
            image: image.clone(),
            version: version.clone(),
            why,
        };
        if let Some(why) = needs_rebuild(&image, &version, record, &opts.fixed_in, &find)
            .or_else(|| revoked(&image, &version, record, &find))
        {
            report.rebuild.push(listed(why));
        }
        match too_old(record, opts) {
            Some(Age::Expired(why)) => report.expired.push(listed(why)),
            Some(Age::Undated) => report
                .undated
                .push(listed("no record: build date unknown".into())),
            None => {}
        }
    }
    let mut rows: Vec<Row> = counts
        .into_iter()
        .map(|((image, version), instances)| Row {
            image,
            version,
            instances,
        })
        .collect();
    // By image, newest version first.
    rows.sort_by(|a, b| {
        a.image
            .cmp(&b.image)
            .then_with(|| version::compare(&b.version, &a.version))
    });
    report.rows = rows;
    for l in [
        &mut report.rebuild,
        &mut report.expired,
        &mut report.undated,
    ] {
        l.sort_by(|a, b| a.instance.cmp(&b.instance));
    }
    report
}

/// The build an instance runs, as (image, short version, record if known): named by image and
/// version, or by artifact id. `Err` says why it names none.
pub fn identify<'a>(
    inst: &Instance,
    by_artifact: &BTreeMap<&str, &'a Record>,
    find: &dyn Fn(&str, &str) -> Option<&'a Record>,
) -> std::result::Result<(String, String, Option<&'a Record>), String> {
    match (&inst.image, &inst.version, &inst.artifact) {
        (Some(i), Some(v), _) => Ok((i.clone(), short(v).to_string(), find(i, v))),
        (_, _, Some(a)) => match by_artifact.get(a.as_str()) {
            Some(r) => Ok((r.name.clone(), short(&r.version).to_string(), Some(*r))),
            None => Err(format!("artifact `{a}` is in no record")),
        },
        _ => Err("names neither an image and a version nor an artifact".into()),
    }
}

/// How an instance's build fares against `--max-age`.
enum Age {
    /// Older than the limit: when it was built.
    Expired(String),
    /// No record, so no build date.
    Undated,
}

/// The age verdict of a build under `--max-age`; `None` without a limit or when young enough.
fn too_old(record: Option<&Record>, opts: &Options) -> Option<Age> {
    let (Some((limit, text)), Some(now)) = (&opts.max_age, opts.now) else {
        return None;
    };
    match record.and_then(|r| r.built_at_time().map(|t| (r, t))) {
        Some((r, built)) => (now.duration_since(built).unwrap_or_default() > *limit)
            .then(|| Age::Expired(format!("built {}, more than {text} ago", r.built_at))),
        None => Some(Age::Undated),
    }
}

/// Why an instance of `image` `version` needs a rebuild after the fixes, if it does: it runs
/// a fixed image older than the fix, or its build was made on one.
fn needs_rebuild<'a>(
    image: &str,
    version: &str,
    record: Option<&'a Record>,
    fixed_in: &[(String, String)],
    find: &dyn Fn(&str, &str) -> Option<&'a Record>,
) -> Option<String> {
    let older = |img: &str, v: &str| {
        fixed_in
            .iter()
            .find(|(i, fix)| i == img && version_fields(v) < version_fields(fix))
            .map(|(_, fix)| fix.clone())
    };
    if let Some(fix) = older(image, version) {
        return Some(format!("{version} < {fix}"));
    }
    // Up the recorded parents; a chain is short, but a broken cache must not loop. A reheat
    // stands on an older build of its own image, which it replaces: only other images count.
    let mut cur = record;
    for _ in 0..64 {
        let p = cur?.parent.as_ref()?;
        let pv = short(&p.version);
        if let Some(fix) = older(&p.name, pv).filter(|_| p.name != image) {
            return Some(format!("built on {} {pv} < {fix}", p.name));
        }
        cur = find(&p.name, &p.version);
    }
    None
}

/// Why an instance of `image` `version` runs a revoked build, if it does: the build itself was
/// revoked, or a build it was made on (deep, at any depth).
fn revoked<'a>(
    image: &str,
    version: &str,
    record: Option<&'a Record>,
    find: &dyn Fn(&str, &str) -> Option<&'a Record>,
) -> Option<String> {
    let is_revoked = |r: &Record| crate::release::Status::of(r) == crate::release::Status::Revoked;
    if record.is_some_and(is_revoked) {
        return Some(format!("{image} {version} is revoked"));
    }
    let mut cur = record;
    for _ in 0..64 {
        let p = cur?.parent.as_ref()?;
        let parent = find(&p.name, &p.version);
        if parent.is_some_and(is_revoked) {
            return Some(format!("built on revoked {} {}", p.name, short(&p.version)));
        }
        cur = parent;
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Output.

#[derive(Serialize)]
struct Json<'a> {
    rows: &'a [Row],
    rebuild: Group,
    expired: Group,
}

fn group(l: &[Listed]) -> Group {
    Group {
        count: l.len(),
        instances: l.iter().map(|i| i.instance.clone()).collect(),
    }
}

/// `{"rows": [...], "rebuild": {"count", "instances"}, "expired": {"count", "instances"}}`.
pub fn json(r: &Report) -> String {
    crate::render::json(&Json {
        rows: &r.rows,
        rebuild: group(&r.rebuild),
        expired: group(&r.expired),
    })
}

/// `1 instance`, `2 instances`.
pub fn instances(n: usize) -> String {
    if n == 1 {
        "1 instance".into()
    } else {
        format!("{n} instances")
    }
}

fn fixes(r: &Report) -> String {
    r.fixed_in
        .iter()
        .map(|(i, v)| format!("{i} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `template` with the fixes for `{}`, or nothing without `--fixed-in` (revoked builds only).
fn fixed_in_note(r: &Report, template: &str) -> String {
    if r.fixed_in.is_empty() {
        String::new()
    } else {
        template.replace("{}", &fixes(r))
    }
}

fn table(out: &mut String, header: [&str; 3], rows: &[[String; 3]]) {
    let mut w = header.map(str::len);
    for r in rows {
        for (w, c) in w.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let _ = writeln!(
        out,
        "{:w0$}  {:w1$}  {}",
        header[0],
        header[1],
        header[2],
        w0 = w[0],
        w1 = w[1]
    );
    for r in rows {
        let line = format!("{:w0$}  {:w1$}  {}", r[0], r[1], r[2], w0 = w[0], w1 = w[1]);
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let rows: Vec<[String; 3]> = r
        .rows
        .iter()
        .map(|x| [x.image.clone(), x.version.clone(), x.instances.to_string()])
        .collect();
    table(&mut out, ["IMAGE", "VERSION", "INSTANCES"], &rows);
    let images = r
        .rows
        .iter()
        .map(|x| &x.image)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let _ = writeln!(
        out,
        "{}, {} image versions, {images} images",
        instances(r.total),
        r.rows.len()
    );
    let listed = |out: &mut String, l: &[Listed]| {
        let rows: Vec<[String; 3]> = l
            .iter()
            .map(|i| {
                [
                    i.instance.clone(),
                    format!("{} {}", i.image, i.version),
                    i.why.clone(),
                ]
            })
            .collect();
        let mut t = String::new();
        table(&mut t, ["INSTANCE", "RUNS", "WHY"], &rows);
        for line in t.lines() {
            let _ = writeln!(out, "  {line}");
        }
    };
    if !r.fixed_in.is_empty() || !r.rebuild.is_empty() {
        let _ = writeln!(
            out,
            "\nrebuild{}: {}",
            fixed_in_note(r, " (fixed in {})"),
            instances(r.rebuild.len())
        );
        if !r.rebuild.is_empty() {
            listed(&mut out, &r.rebuild);
        }
    }
    if let Some(age) = &r.max_age {
        let _ = writeln!(
            out,
            "\nexpired (built more than {age} ago): {}",
            instances(r.expired.len())
        );
        if !r.expired.is_empty() {
            listed(&mut out, &r.expired);
        }
        if !r.undated.is_empty() {
            let _ = writeln!(
                out,
                "build date unknown (no record): {}",
                instances(r.undated.len())
            );
            listed(&mut out, &r.undated);
        }
    }
    if !r.unmatched.is_empty() {
        let _ = writeln!(out, "\nrows matching no record: {}", r.unmatched.len());
        for (at, what) in &r.unmatched {
            let _ = writeln!(out, "  {at}: {what}");
        }
    }
    out
}

fn md(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn markdown(r: &Report) -> String {
    let mut out = String::from("### Instance report\n\n");
    let _ = writeln!(
        out,
        "**{}** on {} image versions.\n",
        instances(r.total),
        r.rows.len()
    );
    out.push_str("| image | version | instances |\n|---|---|---:|\n");
    for x in &r.rows {
        let _ = writeln!(out, "| `{}` | {} | {} |", x.image, x.version, x.instances);
    }
    let listed = |out: &mut String, l: &[Listed]| {
        out.push_str("\n| instance | runs | why |\n|---|---|---|\n");
        for i in l {
            let _ = writeln!(
                out,
                "| `{}` | `{}` {} | {} |",
                md(&i.instance),
                i.image,
                i.version,
                md(&i.why)
            );
        }
    };
    if !r.fixed_in.is_empty() || !r.rebuild.is_empty() {
        let _ = writeln!(
            out,
            "\n#### Rebuild: {}{}",
            instances(r.rebuild.len()),
            fixed_in_note(r, " (fixed in {})")
        );
        if !r.rebuild.is_empty() {
            listed(&mut out, &r.rebuild);
        }
    }
    if let Some(age) = &r.max_age {
        let _ = writeln!(
            out,
            "\n#### Expired: {} (built more than {age} ago)",
            instances(r.expired.len())
        );
        if !r.expired.is_empty() {
            listed(&mut out, &r.expired);
        }
        if !r.undated.is_empty() {
            let _ = writeln!(
                out,
                "\n{} on versions with no record: build date unknown.",
                instances(r.undated.len())
            );
        }
    }
    if !r.unmatched.is_empty() {
        let _ = writeln!(out, "\n#### Rows matching no record\n");
        for (at, what) in &r.unmatched {
            let _ = writeln!(out, "- {}: {}", md(at), md(what));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_crlf_and_blank_lines() {
        let rows =
            parse_csv("a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",z\r\n\r\n1,,3\n\"multi\nline\",2,3")
                .unwrap();
        assert_eq!(
            rows,
            vec![
                (1, vec!["a".into(), "b".into(), "c".into()]),
                (2, vec!["x, y".into(), "say \"hi\"".into(), "z".into()]),
                (4, vec!["1".into(), String::new(), "3".into()]),
                (5, vec!["multi\nline".into(), "2".into(), "3".into()]),
            ]
        );
        assert!(parse_csv("a,\"b").is_err());
        assert!(parse_csv("a,b\"c\n").is_err());
    }

    #[test]
    fn quote_errors_name_their_line() {
        assert_eq!(
            parse_csv("a,b\r\n\r\n\"x\ny\",c\"d\n"),
            Err("line 4: a quote inside an unquoted field".into())
        );
        assert_eq!(
            parse_csv("a,b\n\n\"x\ny,z\n"),
            Err("line 3: a quoted field is not closed".into())
        );
        assert_eq!(
            parse_csv("\"a\"\"b\"c,\"\"\n"),
            Ok(vec![(1, vec!["a\"bc".into(), String::new()])])
        );
    }

    #[test]
    fn inventory_columns() {
        let i =
            parse_csv_inventory("Instance,Region,Image,Version\ni-1,eu,app,2.0.1-20261120_1000\n")
                .unwrap();
        assert_eq!(i[0].image.as_deref(), Some("app"));
        assert_eq!(i[0].at, "line 2");
        assert!(parse_csv_inventory("image,version\napp,1\n").is_err());
        assert!(parse_csv_inventory("instance,image\ni,app\n").is_err());
        let j = parse_json(r#"[{"instance": "i-1", "artifact": "ami-1", "extra": 3}]"#).unwrap();
        assert_eq!(j[0].artifact.as_deref(), Some("ami-1"));
        assert!(parse_json(r#"[{"instance": 1}]"#).is_err());
    }
}
