//! What versions mean to people, as pure functions: a build's version is
//! `MAJOR.MINOR.BUILD-YYYYMMDD_HHMM`, named in full (`1.0.4-20200229_0420`) or by its numbers
//! (`1.0.4`); a pin of a parent (`base-linux@2`, `@2.1`, `@2.1.3`) names the builds under it;
//! versions order numerically, field by field.

use std::cmp::Ordering;

/// The numbers of `MAJOR.MINOR.BUILD-YYYYMMDD_HHMM`, for ordering.
pub fn version_fields(version: &str) -> Vec<u64> {
    version
        .split('-')
        .next()
        .unwrap_or_default()
        .split('.')
        .map(|f| f.parse().unwrap_or(0))
        .collect()
}

/// The BUILD of `MAJOR.MINOR.BUILD-YYYYMMDD_HHMM`.
pub fn build_number(version: &str) -> Option<u64> {
    version.split('-').next()?.rsplit_once('.')?.1.parse().ok()
}

/// `MAJOR.MINOR.BUILD` of `MAJOR.MINOR.BUILD-YYYYMMDD_HHMM`: how people name a build.
pub fn short(version: &str) -> &str {
    version.split('-').next().unwrap_or(version)
}

/// Versions compared numerically, field by field: `2` < `2.0.1` < `10`; the build date breaks
/// ties.
pub fn compare(a: &str, b: &str) -> Ordering {
    version_fields(a)
        .cmp(&version_fields(b))
        .then_with(|| a.cmp(b))
}

/// Whether `s` is one to `max` dot-separated numbers.
fn numeric_fields(s: &str, max: usize) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() <= max
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `s` names a build: `MAJOR.MINOR.BUILD` or `MAJOR.MINOR.BUILD-YYYYMMDD_HHMM`.
pub fn valid_version(s: &str) -> bool {
    let (nums, date) = match s.split_once('-') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    numeric_fields(nums, 3)
        && nums.split('.').count() == 3
        && date.is_none_or(|d| {
            d.len() == 13
                && d.bytes().enumerate().all(|(i, b)| {
                    if i == 8 {
                        b == b'_'
                    } else {
                        b.is_ascii_digit()
                    }
                })
        })
}

/// Whether `s` is a pin: `MAJOR`, `MAJOR.MINOR` or `MAJOR.MINOR.BUILD`.
pub fn valid_pin(s: &str) -> bool {
    numeric_fields(s, 3)
}

/// Whether record version `version` is the build `spec` names (in full, or by its numbers).
pub fn names(version: &str, spec: &str) -> bool {
    version == spec || (!spec.contains('-') && short(version) == spec)
}

/// Whether `version` falls under pin `pin`: its leading numbers are the pin's.
pub fn under_pin(version: &str, pin: &str) -> bool {
    let v = version_fields(version);
    let p = version_fields(pin);
    v.len() >= p.len() && v[..p.len()] == p[..]
}

/// Splits `IMAGE@VERSION`.
pub fn split_target(s: &str) -> (&str, Option<&str>) {
    match s.split_once('@') {
        Some((i, v)) => (i, Some(v)),
        None => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_pins_and_order() {
        assert!(valid_version("1.0.4"));
        assert!(valid_version("1.0.4-20200229_0420"));
        assert!(!valid_version("1.0"));
        assert!(!valid_version("1.0.4-2020"));
        assert!(!valid_version("1.x.4"));
        assert!(valid_pin("2") && valid_pin("2.1") && valid_pin("2.1.3"));
        assert!(!valid_pin("2.1.3.4") && !valid_pin("") && !valid_pin("2.") && !valid_pin("v2"));
        assert!(names("1.0.4-20200229_0420", "1.0.4"));
        assert!(names("1.0.4-20200229_0420", "1.0.4-20200229_0420"));
        assert!(!names("1.0.4-20200229_0420", "1.0.4-20200229_0421"));
        assert!(!names("1.0.40-20200229_0420", "1.0.4"));
        assert!(under_pin("2.1.3-20200229_0420", "2"));
        assert!(under_pin("2.1.3-20200229_0420", "2.1"));
        assert!(!under_pin("2.10.3-20200229_0420", "2.1"));
        assert!(!under_pin("12.1.3-20200229_0420", "2"));
        assert_eq!(compare("2", "2.0.1"), Ordering::Less);
        assert_eq!(compare("2.0.1", "10"), Ordering::Less);
        assert_eq!(compare("1.0.10-x", "1.0.9-x"), Ordering::Greater);
    }
}
