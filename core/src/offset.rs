//! Stream offsets (Durable Streams §8): opaque, case-sensitive, lexicographically ordered
//! positions, plus the `-1` (start) and `now` (tail) sentinels.

use std::cmp::Ordering;
use std::fmt;

/// The longest offset this crate accepts: 4 KiB. The protocol says offsets SHOULD be
/// shorter than 256 characters, so a server's longer ones are read all the same, up
/// to this bound on what one costs; anything longer is refused rather than silently
/// truncated.
pub const MAX_OFFSET_LEN: usize = 4096;

/// Characters an offset MUST NOT contain (§8): they would break query strings and paths.
const FORBIDDEN: &[char] = &[',', '&', '=', '?', '/'];

/// A position in a stream.
///
/// Real offsets are opaque strings issued by the server; they order byte-wise
/// (lexicographically), so a later offset always compares greater. Two sentinels never
/// issued by a server stand for "the beginning" ([`Offset::START`], wire form `-1`) and
/// "the current tail" ([`Offset::NOW`], wire form `now`).
///
/// ```
/// use gapless_core::Offset;
///
/// let a = Offset::parse("0000000000000010").unwrap();
/// let b = Offset::parse("0000000000000020").unwrap();
/// assert!(a < b);
/// assert!(Offset::START < a);
/// assert_eq!(Offset::parse("-1").unwrap(), Offset::START);
/// assert_eq!(Offset::NOW.as_str(), "now");
/// assert!(Offset::parse("a/b").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Offset(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Start,
    Now,
    At(Box<str>),
}

/// Why a string is not a valid offset.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OffsetError {
    /// The offset is the empty string.
    #[error("offset is empty")]
    Empty,
    /// The offset is longer than [`MAX_OFFSET_LEN`] bytes.
    #[error("offset is {len} bytes long; at most {MAX_OFFSET_LEN} are allowed")]
    TooLong {
        /// The offending length in bytes.
        len: usize,
    },
    /// The offset contains a character the protocol forbids (`, & = ? /`), a control
    /// character or white space.
    // The character by its code point rather than `{ch:?}`: a control character stays
    // readable, and Debug's escaping tables stay out of the browser package (in
    // decimal: hexadecimal's formatting costs it 60 bytes gzipped).
    #[error("offset contains the forbidden character '{ch}' (code point {}) at byte {at}", u32::from(*ch))]
    ForbiddenChar {
        /// The offending character.
        ch: char,
        /// Its byte position in the offset.
        at: usize,
    },
}

impl Offset {
    /// The start of the stream (wire form `-1`): read everything from the beginning.
    pub const START: Offset = Offset(Repr::Start);
    /// The current tail (wire form `now`): skip history, read only what comes next.
    pub const NOW: Offset = Offset(Repr::Now);

    /// Parses an offset as it appears in a query string, header or control event.
    ///
    /// `-1` and `now` become the sentinels; anything else must be 1 to
    /// [`MAX_OFFSET_LEN`] bytes without `, & = ? /`, white space or control characters.
    pub fn parse(s: &str) -> Result<Offset, OffsetError> {
        match s {
            "-1" => return Ok(Offset::START),
            "now" => return Ok(Offset::NOW),
            "" => return Err(OffsetError::Empty),
            _ => {}
        }
        if s.len() > MAX_OFFSET_LEN {
            return Err(OffsetError::TooLong { len: s.len() });
        }
        if let Some((at, ch)) = s
            .char_indices()
            .find(|&(_, c)| FORBIDDEN.contains(&c) || c.is_control() || c.is_whitespace())
        {
            return Err(OffsetError::ForbiddenChar { ch, at });
        }
        Ok(Offset(Repr::At(s.into())))
    }

    /// The wire form: `-1`, `now`, or the server's opaque string.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Start => "-1",
            Repr::Now => "now",
            Repr::At(s) => s,
        }
    }

    /// Whether this is the [`Offset::START`] sentinel.
    pub fn is_start(&self) -> bool {
        matches!(self.0, Repr::Start)
    }

    /// Whether this is the [`Offset::NOW`] sentinel.
    pub fn is_now(&self) -> bool {
        matches!(self.0, Repr::Now)
    }

    /// Whether this is a real position issued by a server (not a sentinel).
    pub fn is_concrete(&self) -> bool {
        matches!(self.0, Repr::At(_))
    }
}

/// Offsets order by position: `START` is before every real offset, and real offsets
/// compare byte-wise. `NOW` has no fixed position, so it is comparable only to itself.
impl PartialOrd for Offset {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (&self.0, &other.0) {
            (Repr::Start, Repr::Start) | (Repr::Now, Repr::Now) => Some(Ordering::Equal),
            (Repr::Start, Repr::At(_)) => Some(Ordering::Less),
            (Repr::At(_), Repr::Start) => Some(Ordering::Greater),
            (Repr::At(a), Repr::At(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (Repr::Now, _) | (_, Repr::Now) => None,
        }
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Offset({})", self.as_str())
    }
}

impl std::str::FromStr for Offset {
    type Err = OffsetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Offset::parse(s)
    }
}

impl serde::Serialize for Offset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Offset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Offset::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sentinels_round_trip() {
        assert!(Offset::parse("-1").unwrap().is_start());
        assert!(Offset::parse("now").unwrap().is_now());
        assert_eq!(Offset::START.to_string(), "-1");
        assert_eq!(Offset::NOW.to_string(), "now");
        assert!(Offset::parse("abc").unwrap().is_concrete());
    }

    #[test]
    fn rejects_bad_offsets_with_reason() {
        let cases: &[(&str, OffsetError)] = &[
            ("", OffsetError::Empty),
            ("a,b", OffsetError::ForbiddenChar { ch: ',', at: 1 }),
            ("a&b", OffsetError::ForbiddenChar { ch: '&', at: 1 }),
            ("=", OffsetError::ForbiddenChar { ch: '=', at: 0 }),
            ("x?", OffsetError::ForbiddenChar { ch: '?', at: 1 }),
            ("a/b", OffsetError::ForbiddenChar { ch: '/', at: 1 }),
            ("a b", OffsetError::ForbiddenChar { ch: ' ', at: 1 }),
            ("a\nb", OffsetError::ForbiddenChar { ch: '\n', at: 1 }),
        ];
        for (input, want) in cases {
            assert_eq!(Offset::parse(input).unwrap_err(), *want, "input {input:?}");
        }
        // Past the protocol's advice (under 256 characters), within the bound.
        let advised_against = "9".repeat(300);
        assert_eq!(
            Offset::parse(&advised_against).unwrap().as_str(),
            advised_against
        );
        let long = "9".repeat(MAX_OFFSET_LEN + 1);
        assert_eq!(
            Offset::parse(&long).unwrap_err(),
            OffsetError::TooLong {
                len: MAX_OFFSET_LEN + 1
            }
        );
        assert!(Offset::parse(&"9".repeat(MAX_OFFSET_LEN)).is_ok());
        assert!(OffsetError::ForbiddenChar { ch: '/', at: 3 }
            .to_string()
            .contains("'/' (code point 47) at byte 3"));
    }

    #[test]
    fn ordering_puts_start_first_and_now_apart() {
        let a = Offset::parse("0001").unwrap();
        assert!(Offset::START < a);
        assert_eq!(Offset::NOW.partial_cmp(&a), None);
        assert_eq!(Offset::NOW.partial_cmp(&Offset::NOW), Some(Ordering::Equal));
        assert_eq!(a.partial_cmp(&Offset::NOW), None);
    }

    #[test]
    fn serde_uses_wire_form() {
        let o: Offset = serde_json::from_str("\"0000_12\"").unwrap();
        assert_eq!(serde_json::to_string(&o).unwrap(), "\"0000_12\"");
        assert!(serde_json::from_str::<Offset>("\"a/b\"").is_err());
    }

    proptest! {
        #[test]
        fn parse_display_round_trips(s in "[A-Za-z0-9_.~-]{1,64}") {
            let o = Offset::parse(&s).unwrap();
            prop_assert_eq!(o.as_str(), s.as_str());
            prop_assert_eq!(Offset::parse(o.as_str()).unwrap(), o);
        }

        #[test]
        fn order_matches_bytes(a in "[0-9a-f]{1,20}", b in "[0-9a-f]{1,20}") {
            let (oa, ob) = (Offset::parse(&a).unwrap(), Offset::parse(&b).unwrap());
            prop_assert_eq!(oa.partial_cmp(&ob), Some(a.as_bytes().cmp(b.as_bytes())));
        }

        #[test]
        fn never_panics(s in ".{0,300}") {
            let _ = Offset::parse(&s);
        }
    }
}
