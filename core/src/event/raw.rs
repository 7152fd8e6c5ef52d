//! The raw fallback: an event this version cannot type, kept whole with the reason.

use serde_json::Value;

/// Why an event stayed raw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawReason {
    /// The kind is not one this version knows.
    UnknownKind,
    /// The kind is known but its data does not fit; the decoder's message says why.
    Invalid(String),
    /// The kind is known and its data fits, but it was checked against the kind's schema
    /// and kept as JSON rather than decoded into its struct: a reader asked for a lean
    /// decode ([`Event::checked`](super::Event::checked)).
    NotDecoded,
}

/// An event kept as JSON: an unknown kind, or a known kind with data that does not
/// fit. Nothing of it is lost; [`Event::data`](super::Event::data) gives it back.
#[derive(Clone, Debug, PartialEq)]
pub struct RawEvent {
    /// The kind's wire name.
    pub kind: String,
    /// The `data` object, exactly as received.
    pub data: Value,
    /// Why it is raw.
    pub reason: RawReason,
}

impl RawEvent {
    pub(crate) fn unknown(kind: &str, data: Value) -> Self {
        RawEvent {
            kind: kind.to_owned(),
            data,
            reason: RawReason::UnknownKind,
        }
    }

    pub(crate) fn not_decoded(kind: &str, data: Value) -> Self {
        RawEvent {
            kind: kind.to_owned(),
            data,
            reason: RawReason::NotDecoded,
        }
    }

    pub(crate) fn invalid(kind: &str, data: Value, why: String) -> Self {
        RawEvent {
            kind: kind.to_owned(),
            data,
            reason: RawReason::Invalid(why),
        }
    }
}
