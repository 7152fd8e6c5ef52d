//! Stream-path globs of subscriptions: `*` matches one path segment, `**` any number.

/// Whether `path` matches `pattern` (segments split on `/`, empty segments ignored).
pub(super) fn matches(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let s: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match_from(&p, &s)
}

fn match_from(p: &[&str], s: &[&str]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((&"**", rest)) => (0..=s.len()).any(|i| match_from(rest, &s[i..])),
        Some((seg, rest)) => match s.split_first() {
            Some((first, tail)) => (*seg == "*" || seg == first) && match_from(rest, tail),
            None => false,
        },
    }
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
    }
}
