//! The envelope `{type, data, timestamp, offset}` every session event travels in.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Channel, Event};
use crate::Offset;

/// The largest timestamp given as a fraction that is taken (2^53 - 1: the largest
/// integer a double holds exactly, and JavaScript's `Number.MAX_SAFE_INTEGER`).
const MAX_SAFE_MS: f64 = 9_007_199_254_740_991.0;

/// An envelope is not the JSON object `{type, data, ...}` it must be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The text is not JSON, or not an object with a string `type`.
    #[error("not an event envelope: {0}")]
    Malformed(String),
}

/// A session event with its envelope fields.
///
/// ```
/// use gapless_core::event::{Envelope, Event};
///
/// let json = r#"{"type":"container-agent:token","data":{"taskId":"t","sessionId":"s","delta":"Hi","extra":1},"timestamp":1700000000000}"#;
/// let envelope = Envelope::from_json(json).unwrap();
/// assert!(matches!(envelope.event, Event::AgentToken(ref t) if t.delta == "Hi"));
/// // Re-encoding keeps the field the typed struct does not know.
/// let again: serde_json::Value = serde_json::from_str(&envelope.to_json()).unwrap();
/// assert_eq!(again["data"]["extra"], 1);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// The event.
    pub event: Event,
    /// When it was produced, in milliseconds since the epoch.
    pub timestamp: Option<u64>,
    /// Its position in the stream, when known.
    pub offset: Option<Offset>,
    /// Envelope fields this version does not know.
    pub extra: Map<String, Value>,
}

impl Envelope {
    /// An envelope around `event`, without timestamp or offset.
    pub fn new(event: Event) -> Self {
        Envelope {
            event,
            timestamp: None,
            offset: None,
            extra: Map::new(),
        }
    }

    /// Sets the timestamp.
    pub fn with_timestamp(mut self, ms: u64) -> Self {
        self.timestamp = Some(ms);
        self
    }

    /// Decodes an envelope from JSON text.
    pub fn from_json(text: &str) -> Result<Self, EnvelopeError> {
        let value =
            crate::json::parse(text).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        Self::from_value(value)
    }

    /// Decodes an envelope from a JSON value.
    pub fn from_value(value: Value) -> Result<Self, EnvelopeError> {
        Self::from_value_with(value, Event::from_parts)
    }

    /// Decodes an envelope from a JSON value, its event with `decode` (such as
    /// [`Event::from_parts`], or a reader's leaner decoder like
    /// [`SessionView::decode_event`](crate::session::SessionView::decode_event)).
    pub fn from_value_with(
        value: Value,
        decode: fn(&str, Value) -> Event,
    ) -> Result<Self, EnvelopeError> {
        let Value::Object(map) = value else {
            return Err(EnvelopeError::Malformed("expected a JSON object".into()));
        };
        // One pass that moves the fields out (rather than removing them one by one,
        // whose rebalancing code is large in the browser package).
        let (mut kind, mut data, mut timestamp, mut offset) = (None, None, None, None);
        let mut extra = Map::new();
        for (k, v) in map {
            match k.as_str() {
                "type" => kind = Some(v),
                "data" => data = Some(v),
                "timestamp" => timestamp = Some(v),
                "offset" => offset = Some(v),
                _ => {
                    extra.insert(k, v);
                }
            }
        }
        let kind = match kind {
            Some(Value::String(kind)) if !kind.is_empty() => kind,
            Some(_) => {
                return Err(EnvelopeError::Malformed(
                    "`type` must be a non-empty string".into(),
                ))
            }
            None => return Err(EnvelopeError::Malformed("missing `type`".into())),
        };
        let data = data.unwrap_or_else(|| Value::Object(Map::new()));
        // A `timestamp` or `offset` that is not what it must be is kept as it came
        // (among the extra fields), and the event is read all the same: a terminal
        // event with a broken timestamp must still end its session.
        let timestamp = match timestamp {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
            // A fractional one (JavaScript's clocks give them) up to the largest
            // integer a double holds exactly: beyond, it is no time but a mistake.
            Some(Value::Number(n))
                if n.as_f64().is_some_and(|f| (0.0..=MAX_SAFE_MS).contains(&f)) =>
            {
                n.as_f64().map(|f| f as u64)
            }
            Some(other) => {
                extra.insert("timestamp".into(), other);
                None
            }
        };
        let offset = match offset {
            None | Some(Value::Null) => None,
            Some(value) => match offset_of(&value) {
                Some(offset) => Some(offset),
                None => {
                    extra.insert("offset".into(), value);
                    None
                }
            },
        };
        Ok(Envelope {
            event: decode(&kind, data),
            timestamp,
            offset,
            extra,
        })
    }

    /// The event's kind.
    pub fn kind(&self) -> &str {
        self.event.kind()
    }

    /// The event's storage channel.
    pub fn channel(&self) -> Channel {
        Channel::of(self.kind())
    }

    /// Encodes the envelope as JSON text.
    pub fn to_json(&self) -> String {
        // Serializing a map of strings and JSON values cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// An envelope's `offset` read as an offset: a string, or a whole number (as some
/// producers write positions); `None` for anything else.
fn offset_of(value: &Value) -> Option<Offset> {
    match value {
        Value::String(s) => Offset::parse(s).ok(),
        Value::Number(n) => Offset::parse(&n.as_i64()?.to_string()).ok(),
        _ => None,
    }
}

impl Serialize for Envelope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("type", self.kind())?;
        map.serialize_entry("data", &self.event.data())?;
        if let Some(ts) = self.timestamp {
            map.serialize_entry("timestamp", &ts)?;
        }
        if let Some(offset) = &self.offset {
            map.serialize_entry("offset", offset.as_str())?;
        }
        for (k, v) in &self.extra {
            // (A field of the envelope's own, kept because it was not what it must
            // be, is written only where the envelope has none of its own now.)
            let own = match k.as_str() {
                "type" | "data" => true,
                "timestamp" => self.timestamp.is_some(),
                "offset" => self.offset.is_some(),
                _ => false,
            };
            if !own {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Envelope::from_value(value).map_err(serde::de::Error::custom)
    }
}
