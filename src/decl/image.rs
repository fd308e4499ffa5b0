//! `images/NAME.toml` validated into [`Image`]s: the base (`from` a parent, maybe pinned, or an
//! `origin`), the version, references to roles, origins and backends, `max_age`, `[vars]`,
//! `[secrets]` and `[[test]]`. Files are read, parsed and checked in parallel.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rayon::prelude::*;
use toml::Spanned;

use super::check::{
    check_list, check_set, check_sources, check_vars, list_dir, unknown, valid_var_name, NAME_HINT,
};
use super::file::{read_source, Source};
use super::raw::{ImageRaw, SecretRaw, TestRaw};
use crate::error::{Diagnostic, Diagnostics};
use crate::model::{valid_name, Base, Image, ImageTest};
use crate::source::files::{Kind, ProjectFiles};
use crate::version::{split_target, valid_pin};

/// The keys of an image file itself: below `[vars]`, TOML reads them as variables.
const IMAGE_KEYS: &[&str] = &[
    "description",
    "version",
    "from",
    "origin",
    "roles",
    "packages",
    "sources",
    "backend",
    "max_age",
    "secrets",
    "tags",
    "test",
];

/// The names an image may refer to.
struct Refs<'a> {
    image_names: &'a BTreeSet<String>,
    role_names: &'a BTreeSet<String>,
    /// `None` when `layer.toml` did not load: references to origins and backends are not checked.
    origins: Option<&'a BTreeSet<String>>,
    backends: Option<&'a BTreeSet<String>>,
}

/// Every image under `images/` that is valid, in file name order; the problems of all of them
/// go to `diags`. `origins` and `backends` are `None` when `layer.toml` did not load.
pub(super) fn load_images(
    files: &dyn ProjectFiles,
    role_names: &BTreeSet<String>,
    origins: Option<&BTreeSet<String>>,
    backends: Option<&BTreeSet<String>>,
    diags: &mut Diagnostics,
) -> Vec<Image> {
    // Files are read, parsed and checked in parallel; each file's diagnostics are merged in
    // the order of the sequential loop (files by name, and all parse errors before all checks),
    // so the stable sort in `Diagnostics::into_result` gives the same report as before.
    let image_files = list_dir(files, "images", diags, |name, kind| {
        name.ends_with(".toml") && kind == Kind::File
    });
    /// An image file: its name, its diagnostics and, when it parsed, its source and content.
    type Parsed = (String, Diagnostics, Option<(Source, ImageRaw)>);
    let parsed: Vec<Parsed> = image_files
        .into_par_iter()
        .map(|(name, rel)| {
            let mut d = Diagnostics::default();
            let name = name.trim_end_matches(".toml").to_string();
            if !valid_name(&name) {
                d.push(
                    Diagnostic::new(&rel, format!("`{name}` is not a valid image name"))
                        .hint(NAME_HINT),
                );
            }
            let raw = read_source(files, &rel, &mut d)
                .and_then(|src| src.parse::<ImageRaw>(&mut d).map(|raw| (src, raw)));
            (name, d, raw)
        })
        .collect();
    let mut image_names = BTreeSet::new();
    let mut raw_images: Vec<(String, Source, ImageRaw)> = Vec::with_capacity(parsed.len());
    for (name, d, raw) in parsed {
        diags.0.extend(d.0);
        image_names.insert(name.clone());
        if let Some((src, raw)) = raw {
            raw_images.push((name, src, raw));
        }
    }

    let refs = Refs {
        image_names: &image_names,
        role_names,
        origins,
        backends,
    };
    let checked: Vec<(Diagnostics, Option<Image>)> = raw_images
        .into_par_iter()
        .map(|(name, src, raw)| {
            let mut d = Diagnostics::default();
            let img = image(&src, name, raw, &refs, &mut d);
            (d, img)
        })
        .collect();
    let mut images = Vec::with_capacity(checked.len());
    for (d, img) in checked {
        diags.0.extend(d.0);
        images.extend(img);
    }
    images
}

/// The image `name` of `src`, or `None` with its problems pushed to `diags`.
fn image(
    src: &Source,
    name: String,
    raw: ImageRaw,
    refs: &Refs,
    diags: &mut Diagnostics,
) -> Option<Image> {
    let before = diags.len();
    let (base, pin) = base(src, &name, &raw, refs, diags);
    let version = version(src, &raw.version, diags);
    let roles = check_list(src, "role", &raw.roles, diags);
    for r in &raw.roles {
        if !refs.role_names.contains(r.get_ref()) {
            diags.push(unknown(
                src,
                src.line_of(r),
                "role",
                r.get_ref(),
                refs.role_names.iter(),
            ));
        }
    }
    let packages = check_set(src, "package", &raw.packages, diags);
    let sources = check_sources(src, &raw.sources, diags);
    if let (Some(b), Some(backends)) = (&raw.backend, refs.backends) {
        if !backends.contains(b.get_ref()) {
            diags.push(unknown(
                src,
                src.line_of(b),
                "backend",
                b.get_ref(),
                backends.iter(),
            ));
        }
    }
    let max_age = max_age(src, &raw.max_age, diags);
    let vars = check_vars(src, &raw.vars, IMAGE_KEYS, diags);
    let secrets = secrets(src, &raw.secrets, &vars, diags);
    let tests = tests(src, &raw.test, diags);
    if diags.len() > before {
        return None;
    }
    Some(Image {
        name,
        file: src.rel.clone(),
        description: raw.description,
        version,
        base: base?,
        roles,
        packages,
        sources,
        backend: raw.backend.map(Spanned::into_inner),
        max_age,
        max_age_text: raw.max_age.map(Spanned::into_inner),
        pin,
        vars,
        secrets,
        tags: raw.tags,
        tests,
    })
}

/// What the image starts from — exactly one of `from = "PARENT[@PIN]"` (another image, not
/// itself) and `origin = "NAME"` — and the pin of its parent, if any.
fn base(
    src: &Source,
    name: &str,
    raw: &ImageRaw,
    refs: &Refs,
    diags: &mut Diagnostics,
) -> (Option<Base>, Option<String>) {
    match (&raw.from, &raw.origin) {
        (Some(_), Some(o)) => {
            diags.push(src.diag(src.line_of(o), "both `from` and `origin` are set").hint("an image starts either from a parent image (`from`) or from an origin (`origin`): keep one"));
            (None, None)
        }
        (None, None) => {
            diags.push(src.diag(None, "neither `from` nor `origin` is set").hint("add `from = \"PARENT\"` to build on another image, or `origin = \"NAME\"` to start from an origin in `layer.toml`"));
            (None, None)
        }
        (Some(from), None) => {
            // `from = "PARENT@PIN"`: built on the newest released build of PARENT under PIN.
            let (parent, pin) = split_target(from.get_ref());
            if let Some(pin) = pin.filter(|p| !valid_pin(p)) {
                diags.push(
                    src.diag(src.line_of(from), format!("`{pin}` in `from = \"{}\"` is not a version pin", from.get_ref()))
                        .hint(format!("pin a major version (`{parent}@2`), a minor one (`{parent}@2.1`) or one build (`{parent}@2.1.3`)")),
                );
            }
            let line = src.line_of(from);
            if parent == name {
                diags.push(
                    src.diag(line, format!("image `{name}` is built from itself"))
                        .hint("start it from an `origin` or another image"),
                );
            } else if !refs.image_names.contains(parent) {
                diags.push(unknown(src, line, "image", parent, refs.image_names.iter()));
            }
            (
                Some(Base::Parent(parent.to_string())),
                pin.map(str::to_string),
            )
        }
        (None, Some(o)) => {
            if let Some(origins) = refs.origins {
                if !origins.contains(o.get_ref()) {
                    diags.push(unknown(
                        src,
                        src.line_of(o),
                        "origin",
                        o.get_ref(),
                        origins.iter(),
                    ));
                }
            }
            (Some(Base::Origin(o.get_ref().clone())), None)
        }
    }
}

/// `version = "MAJOR.MINOR"` (`0.1` when not set); a malformed one is reported and kept.
fn version(src: &Source, version: &Option<Spanned<String>>, diags: &mut Diagnostics) -> String {
    let Some(v) = version else {
        return "0.1".to_string();
    };
    let parts: Vec<&str> = v.get_ref().split('.').collect();
    let numeric = |s: &str| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit());
    if parts.len() != 2 || !parts.iter().all(|p| numeric(p)) {
        diags.push(
            src.diag(
                src.line_of(v),
                format!("version `{}` is not MAJOR.MINOR", v.get_ref()),
            )
            .hint("write it as `version = \"1.0\"`: layer adds the build number and date itself"),
        );
    }
    v.get_ref().clone()
}

/// `max_age = "90d"`: a duration longer than zero.
fn max_age(
    src: &Source,
    max_age: &Option<Spanned<String>>,
    diags: &mut Diagnostics,
) -> Option<Duration> {
    let m = max_age.as_ref()?;
    match humantime::parse_duration(m.get_ref()) {
        Ok(d) if !d.is_zero() => Some(d),
        _ => {
            diags.push(
                src.diag(
                    src.line_of(m),
                    format!("`max_age = \"{}\"` is not a duration", m.get_ref()),
                )
                .hint("write a number and a unit, such as `90d`, `12h` or `2w`"),
            );
            None
        }
    }
}

/// `[secrets]`: each a valid variable name, not also in `[vars]`, mapped to the environment
/// variable it is read from.
fn secrets(
    src: &Source,
    secrets: &BTreeMap<String, Spanned<SecretRaw>>,
    vars: &BTreeMap<String, String>,
    diags: &mut Diagnostics,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, s) in secrets {
        if !valid_var_name(k) {
            diags.push(src.diag(
                src.line_of(s),
                format!("`{k}` is not a valid environment variable name"),
            ));
        }
        if vars.contains_key(k) {
            diags.push(
                src.diag(
                    src.line_of(s),
                    format!("`{k}` is both a variable and a secret"),
                )
                .hint("keep it in one of `[vars]` and `[secrets]`"),
            );
        }
        out.insert(k.clone(), s.get_ref().env.clone());
    }
    out
}

/// `[[test]]`: each with a name of its own.
fn tests(src: &Source, raw: &[Spanned<TestRaw>], diags: &mut Diagnostics) -> Vec<ImageTest> {
    let mut tests: Vec<ImageTest> = Vec::new();
    for t in raw {
        let t_ref = t.get_ref();
        if tests.iter().any(|x| x.name == t_ref.name) {
            diags.push(
                src.diag(
                    src.line_of(t),
                    format!("two tests are named `{}`", t_ref.name),
                )
                .hint("give each `[[test]]` its own name"),
            );
        }
        tests.push(ImageTest {
            name: t_ref.name.clone(),
            run: t_ref.run.clone(),
            inherit: t_ref.inherit,
        });
    }
    tests
}
