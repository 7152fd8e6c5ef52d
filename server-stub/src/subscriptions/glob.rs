//! Stream-path globs of subscriptions: `*` matches one path segment, `**` any number.

/// Whether `path` matches `pattern` (segments split on `/`, empty segments ignored).
pub(super) fn matches(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let s: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match_from(&p, &s)
}

/// Matches by dynamic programming over (pattern, path) positions: time and memory
/// proportional to their product, whatever the pattern (a backtracking match of
/// `**/**/…/z` against a deep path took exponential time, under the registry's lock).
fn match_from(p: &[&str], s: &[&str]) -> bool {
    // `reach[j]`: the first `i` pattern segments can match the first `j` path ones.
    let mut reach = vec![false; s.len() + 1];
    reach[0] = true;
    for seg in p {
        let mut next = vec![false; s.len() + 1];
        if *seg == "**" {
            // Any number of segments: reachable from any reachable position before.
            let mut any = false;
            for (j, slot) in next.iter_mut().enumerate() {
                any |= reach[j];
                *slot = any;
            }
        } else {
            for j in 1..=s.len() {
                next[j] = reach[j - 1] && (*seg == "*" || *seg == s[j - 1]);
            }
        }
        reach = next;
    }
    reach[s.len()]
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn one_and_many_segments() {
        assert!(matches("events/*", "events/a"));
        assert!(!matches("events/*", "events/a/b"));
        assert!(!matches("events/*", "other/a"));
        assert!(matches("events/**", "events/a/b"));
        assert!(matches("**", "x"));
        assert!(matches("/events/*/", "events/x"));
        assert!(matches("a/**/z", "a/z"));
        assert!(matches("a/**/z", "a/b/c/z"));
        assert!(!matches("a/**/z", "a/b/c"));
        assert!(matches("**/**", ""));
        assert!(!matches("*", ""));
    }

    /// The plain backtracking definition, for small inputs.
    fn reference(p: &[&str], s: &[&str]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((&"**", rest)) => (0..=s.len()).any(|i| reference(rest, &s[i..])),
            Some((seg, rest)) => match s.split_first() {
                Some((first, tail)) => (*seg == "*" || seg == first) && reference(rest, tail),
                None => false,
            },
        }
    }

    /// Every sequence of up to `max` items of `of`.
    fn all(of: &[&'static str], max: usize) -> Vec<Vec<&'static str>> {
        let mut out = vec![Vec::new()];
        let mut last = vec![Vec::new()];
        for _ in 0..max {
            last = last
                .iter()
                .flat_map(|v: &Vec<&str>| of.iter().map(move |x| [v.clone(), vec![*x]].concat()))
                .collect();
            out.extend(last.clone());
        }
        out
    }

    #[test]
    fn agrees_with_the_backtracking_definition() {
        for p in all(&["a", "b", "*", "**"], 4) {
            for s in all(&["a", "b"], 4) {
                assert_eq!(
                    matches(&p.join("/"), &s.join("/")),
                    reference(&p, &s),
                    "{p:?} {s:?}"
                );
            }
        }
    }

    #[test]
    fn many_double_stars_against_a_deep_path_take_no_time() {
        let pattern = format!("{}z", "**/".repeat(40));
        let path = "a/".repeat(60);
        assert!(!matches(&pattern, &path));
        assert!(matches(&pattern, &format!("{path}z")));
    }
}
