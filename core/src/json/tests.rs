//! The reader against `serde_json`: the same texts accepted and refused, the same values
//! built, the same array elements split out.

use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::Value;

use super::*;

/// JSON texts, valid and broken: generated values written with random whitespace, then
/// some of them cut, spliced or with characters swapped.
fn texts() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        "-?(0|[1-9][0-9]{0,25})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,4})?",
        "\"([a-zé😀 /]|\\\\[\"\\\\/bfnrt]|\\\\u[0-9a-fA-F]{4}|\\\\u[dD][89abAB][0-9a-f]{2}\\\\u[dD][c-fC-F][0-9a-f]{2})*\"",
    ];
    let value = leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("\"[a-c]{0,2}\"", inner), 0..6).prop_map(|v| {
                let members: Vec<String> = v.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    });
    let spaced =
        (value, "[ \t\r\n]{0,2}", "[ \t\r\n]{0,2}").prop_map(|(v, a, b)| format!("{a}{v}{b}"));
    let broken = (
        spaced.clone(),
        any::<prop::sample::Index>(),
        "[\\[\\]{}:,\"\\\\ 0-9eE.+a\u{1}-]{0,2}",
        0usize..3,
    )
        .prop_map(|(text, at, insert, remove)| {
            let mut chars: Vec<char> = text.chars().collect();
            let at = at.index(chars.len() + 1);
            let end = (at + remove).min(chars.len());
            chars.splice(at..end, insert.chars());
            chars.into_iter().collect()
        });
    prop_oneof![spaced, broken]
}

/// Whether `text` holds a `\u` escape of a surrogate half.
fn has_surrogate_escape(text: &str) -> bool {
    text.as_bytes().windows(4).any(|w| {
        w[0] == b'\\'
            && w[1] == b'u'
            && matches!(w[2], b'd' | b'D')
            && matches!(w[3], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
    })
}

/// Floats compared by value, as `serde_json`'s `==` does.
fn same(a: &Value, b: &Value) -> bool {
    a == b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn parse_agrees_with_serde_json(text in texts()) {
        let ours = parse(&text);
        let theirs = serde_json::from_str::<Value>(&text);
        // But for lone surrogate escapes, which the reader takes as U+FFFD where
        // serde_json refuses them (see `a_lone_surrogate_escape_is_...`).
        prop_assume!(!(ours.is_ok() && theirs.is_err() && has_surrogate_escape(&text)));
        prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{:?}: {:?} / {:?}", text, ours, theirs);
        if let (Ok(a), Ok(b)) = (&ours, &theirs) {
            prop_assert!(same(a, b), "{:?}: {:?} / {:?}", text, a, b);
        }
    }

    #[test]
    fn checking_agrees_with_raw_values(text in texts()) {
        let ours = RawJson::new(&text);
        let theirs = serde_json::from_str::<Box<RawValue>>(&text);
        prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{:?}: {:?} / {:?}", text, ours, theirs);
        if let (Ok(a), Ok(b)) = (&ours, &theirs) {
            prop_assert_eq!(a.get(), b.get().trim_matches([' ', '\t', '\r', '\n']));
        }
    }

    #[test]
    fn splitting_agrees_with_raw_values(items in prop::collection::vec(texts(), 0..5), space in "[ \n]{0,2}") {
        let text = format!("{space}[{}]{space}", items.join(","));
        let ours = split_array(&text);
        let theirs = serde_json::from_str::<Vec<Box<RawValue>>>(&text);
        prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{:?}: {:?} / {:?}", text, ours, theirs);
        if let (Ok(a), Ok(b)) = (&ours, &theirs) {
            let b: Vec<&str> = b.iter().map(|r| r.get()).collect();
            prop_assert_eq!(a, &b);
        }
    }

    #[test]
    fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse(&text);
        let _ = split_array(&text);
        let _ = RawJson::new(&text);
    }
}

#[test]
fn corner_cases_agree_with_serde_json() {
    // serde_json builds values nested 127 deep, not 128, and checks raw ones at any depth.
    let deep_ok = format!("{}{}", "[".repeat(127), "]".repeat(127));
    let deep_bad = format!("{}{}", "[".repeat(128), "]".repeat(128));
    let deepest = format!("{}{}", "[{\"a\":".repeat(5000), "}]".repeat(5000));
    for text in [
        "",
        " ",
        "0",
        "-0",
        "-",
        "01",
        "1.",
        ".5",
        "1e",
        "1e+",
        "1E-2",
        "-1.5e3",
        "1e999",
        "-1e999",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "\"\\ud800\\udc00\"",
        "\"\\u00e9\"",
        "\"\\x\"",
        "\"a\u{1}\"",
        "\"a\u{7f}\"",
        "[1 2]",
        "{\"a\" 1}",
        "{1:2}",
        "{\"a\":1,}",
        "[,]",
        "nul",
        "truex",
        "[true]x",
        "{\"a\":1}{",
        "\u{feff}1",
        &deep_ok,
        &deep_bad,
        &deepest,
    ] {
        let ours = parse(text);
        let theirs = serde_json::from_str::<Value>(text);
        assert_eq!(
            ours.is_ok(),
            theirs.is_ok(),
            "{text:?}: {ours:?} / {theirs:?}"
        );
        if let (Ok(a), Ok(b)) = (&ours, &theirs) {
            assert!(same(a, b), "{text:?}: {a:?} / {b:?}");
        }
        let raw = RawJson::new(text);
        let theirs = serde_json::from_str::<Box<RawValue>>(text);
        assert_eq!(
            raw.is_ok(),
            theirs.is_ok(),
            "raw {text:?}: {raw:?} / {theirs:?}"
        );
    }
}

#[test]
fn a_lone_surrogate_escape_is_the_replacement_character_where_serde_json_refuses_it() {
    for (text, want) in [
        ("\"\\ud800\"", "\u{fffd}"),
        ("\"\\udc00\"", "\u{fffd}"),
        ("\"\\ud800x\"", "\u{fffd}x"),
        ("\"a\\ud83d\"", "a\u{fffd}"),
        // A high half before another escape: that escape is read as itself.
        ("\"\\ud800\\u00e9\"", "\u{fffd}\u{e9}"),
        ("\"\\ud800\\ud83d\\ude00\"", "\u{fffd}\u{1f600}"),
        ("\"\\ud800\\n\"", "\u{fffd}\n"),
    ] {
        assert!(serde_json::from_str::<Value>(text).is_err(), "{text}");
        assert_eq!(parse(text), Ok(Value::String(want.into())), "{text}");
        assert!(RawJson::new(text).is_ok(), "{text}");
    }
    // A broken escape after the half is still an error.
    assert!(parse("\"\\ud800\\uZZZZ\"").is_err());
}

#[test]
fn floats_come_from_the_parser_given() {
    let halves = parse_with("[1.5, 2, 1e2]", |_| Some(0.5)).unwrap();
    assert_eq!(halves, serde_json::json!([0.5, 2, 0.5]));
    assert_eq!(
        parse_with("[1.5]", |_| None).unwrap_err(),
        JsonError {
            what: "number out of range",
            at: 1
        }
    );
}

proptest! {
    #[test]
    fn plain_runs_end_where_a_byte_by_byte_scan_ends(
        bytes in proptest::collection::vec(
            prop_oneof![1 => Just(b'"'), 1 => Just(b'\\'), 1 => 0u8..0x20, 20 => 0x20u8..=0xff],
            0..64,
        ),
        start in 0usize..64,
    ) {
        let start = start.min(bytes.len());
        let naive = bytes[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .map_or(bytes.len(), |i| start + i);
        prop_assert_eq!(read::plain_run(&bytes, start), naive);
    }
}
