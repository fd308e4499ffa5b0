//! Property tests (issue 16): records and stat caches mutated at random — bits flipped, bytes
//! set, cut short, spliced — never panic, never take long, and a mutated record is never used;
//! a mutated stat cache is an empty one and changes no key.

use crate::common::Project;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use layer::cache::Cache;
use layer::record::Lookup;
use layer::workspace::Workspace;
use proptest::prelude::*;

/// One change to a file's bytes; positions are taken modulo the length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Cut(usize),
    Remove(usize, usize),
    Insert(usize, Vec<u8>),
    /// A span copied over another place of the file (a plausible but wrong value).
    Splice(usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(a, b)| Mutation::Flip(a, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Mutation::Set(a, b)),
        any::<usize>().prop_map(Mutation::Cut),
        (any::<usize>(), 1usize..64).prop_map(|(a, n)| Mutation::Remove(a, n)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(a, b)| Mutation::Insert(a, b)),
        (any::<usize>(), any::<usize>(), 1usize..40)
            .prop_map(|(a, b, n)| Mutation::Splice(a, b, n)),
    ]
}

fn apply(bytes: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for m in muts {
        let len = b.len().max(1);
        match m {
            Mutation::Flip(at, bit) => {
                if let Some(x) = b.get_mut(at % len) {
                    *x ^= 1 << bit;
                }
            }
            Mutation::Set(at, v) => {
                if let Some(x) = b.get_mut(at % len) {
                    *x = *v;
                }
            }
            Mutation::Cut(at) => b.truncate(at % len),
            Mutation::Remove(at, n) => {
                let at = at % len;
                let end = (at + n).min(b.len());
                if at < end {
                    b.drain(at..end);
                }
            }
            Mutation::Insert(at, v) => {
                let at = (at % len).min(b.len());
                b.splice(at..at, v.iter().copied());
            }
            Mutation::Splice(from, to, n) => {
                let (from, to) = (from % len, to % len);
                let n = (*n)
                    .min(b.len().saturating_sub(from))
                    .min(b.len().saturating_sub(to));
                let span: Vec<u8> = b[from..from + n].to_vec();
                b[to..to + n].copy_from_slice(&span);
            }
        }
    }
    b
}

/// A recorded estate, once per test: its cache, and each record's file, name and key.
struct Fixture {
    project: Project,
    records: Vec<(PathBuf, String, String, Vec<u8>)>,
}

fn fixture() -> Fixture {
    let project = Project::estate();
    project.record(&[]);
    let cache = Cache::new(project.path("cache"));
    let records = cache
        .all_records()
        .into_values()
        .flatten()
        .map(|r| {
            let file = project.path(&format!("cache/records/{}/{}.json", r.name, r.key));
            let bytes = fs::read(&file).unwrap();
            (file, r.name, r.key, bytes)
        })
        .collect();
    Fixture { project, records }
}

/// Keeps each case short, and the whole run within a few seconds of work.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A generous bound on one look: a hang guard, not a timing target.
const BOUND: Duration = Duration::from_secs(5);

#[test]
fn a_mutated_record_is_never_used() {
    let f = fixture();
    let cache = Cache::new(f.project.path("cache"));
    proptest!(config(), |(which in any::<usize>(), muts in prop::collection::vec(mutation(), 1..4))| {
        let (file, name, key, good) = &f.records[which % f.records.len()];
        let bad = apply(good, &muts);
        fs::write(file, &bad).unwrap();
        let started = Instant::now();
        let found = cache.lookup(name, key);
        let listed = cache.records(name);
        prop_assert!(started.elapsed() < BOUND);
        fs::write(file, good).unwrap();
        if bad != *good {
            prop_assert!(!matches!(found, Lookup::Found(_)), "{muts:?} was used");
            prop_assert!(listed.iter().all(|r| r.key != *key), "{muts:?} was listed");
        } else {
            prop_assert!(matches!(found, Lookup::Found(_)));
        }
    });
}

#[test]
fn a_mutated_stat_cache_is_an_empty_one_and_changes_no_key() {
    let p = Project::estate();
    let keys = |p: &Project| -> Vec<String> {
        Workspace::open(p.root(), None, None)
            .unwrap()
            .keys
            .into_iter()
            .map(|k| k.key)
            .collect()
    };
    let want = keys(&p);
    // Past the racy window, so the stat cache holds every file.
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(keys(&p), want);
    let stat = p.path("cache/stat-cache");
    let good = fs::read(&stat).unwrap();
    let cache = Cache::new(p.path("cache"));
    let loaded = cache.load_stat_cache();
    assert!(!loaded.is_empty());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..config()
    });
    runner
        .run(&prop::collection::vec(mutation(), 1..4), |muts| {
            let bad = apply(&good, &muts);
            fs::write(&stat, &bad).unwrap();
            let started = Instant::now();
            let again = cache.load_stat_cache();
            prop_assert!(again == loaded || again.is_empty());
            if bad != good {
                prop_assert!(again.is_empty(), "{muts:?} was used");
            }
            prop_assert_eq!(keys(&p), want.clone());
            prop_assert!(started.elapsed() < BOUND);
            Ok(())
        })
        .unwrap();
}
