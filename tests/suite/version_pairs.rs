//! Versions to check a version order against the package manager's own (`dpkg
//! --compare-versions`, rpm's `rpm.vercmp()`): generated from the pieces that make the order
//! hard, and paired so that each version meets a spread of the others.

/// Every `EPOCH MIDDLE TAIL` of the pieces, in that order: all of those with the first epoch
/// (the empty one) and every `keep`-th of the rest, enough pairs but not all of them.
pub(crate) fn generated(
    epochs: &[&str],
    middles: &[&str],
    tails: &[&str],
    keep: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut n = 0usize;
    for e in epochs {
        for m in middles {
            for t in tails {
                n += 1;
                if e.is_empty() || n.is_multiple_of(keep) {
                    out.push(format!("{e}{m}{t}"));
                }
            }
        }
    }
    out
}

/// Each version against every `step`-th of the list, starting at its own index modulo `shift`:
/// a version meets others on both sides of it, so each pair is compared both ways round.
pub(crate) fn spread_pairs(
    versions: &[String],
    shift: usize,
    step: usize,
) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (i, a) in versions.iter().enumerate() {
        for b in versions.iter().skip(i % shift).step_by(step) {
            pairs.push((a.clone(), b.clone()));
        }
    }
    pairs
}
