//! Macros that declare event payload structs and open string enums with one shape.

/// Declares a payload struct: camelCase on the wire, with a flattened `extra` map that
/// keeps fields this version does not know, so re-serializing is lossless.
macro_rules! data_struct {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// Fields this version does not know, kept for a lossless round trip.
            #[serde(flatten)]
            pub extra: serde_json::Map<String, serde_json::Value>,
        }
    };
}

/// Declares an open string enum: known values as variants, anything else kept
/// verbatim in `Other`, so a producer that is newer than this crate never breaks it.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this version does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )*
                    $name::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $( $wire => $name::$variant, )*
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Ok($name::from(&*s))
            }
        }
    };
}

/// Declares the [`Event`](super::Event) enum from the list of kinds: the variants, the
/// wire names, decoding with a raw fallback, and re-encoding.
macro_rules! events {
    ( $( $(#[$vmeta:meta])* $variant:ident($ty:ty) = $wire:literal, )* ) => {
        /// A session event, typed by its kind.
        ///
        /// Every kind of the agent task board has a variant; an unknown kind, or a
        /// known kind whose data does not fit, is [`Event::Raw`] (never an error,
        /// never lost).
        #[derive(Clone, Debug, PartialEq)]
        #[non_exhaustive]
        pub enum Event {
            $( $(#[$vmeta])* $variant($ty), )*
            /// An unknown kind, or a known kind whose data does not fit its type.
            Raw(RawEvent),
        }

        /// The wire name of every kind this version types.
        pub const KINDS: &[&str] = &[ $( $wire, )* ];

        impl Event {
            /// Decodes `data` by `kind`; falls back to [`Event::Raw`] with the reason.
            pub fn from_parts(kind: &str, data: serde_json::Value) -> Event {
                use serde::Deserialize as _;
                match kind {
                    $( $wire => match <$ty>::deserialize(&data) {
                        Ok(d) => Event::$variant(d),
                        Err(e) => Event::Raw(RawEvent::invalid(kind, data, e.to_string())),
                    }, )*
                    _ => Event::Raw(RawEvent::unknown(kind, data)),
                }
            }

            /// The kind's wire name, such as `container-agent:token`.
            pub fn kind(&self) -> &str {
                match self {
                    $( Event::$variant(_) => $wire, )*
                    Event::Raw(raw) => &raw.kind,
                }
            }

            /// The `data` object as JSON, with every field the event arrived with.
            pub fn data(&self) -> serde_json::Value {
                let encoded = match self {
                    $( Event::$variant(d) => serde_json::to_value(d), )*
                    Event::Raw(raw) => return raw.data.clone(),
                };
                // Payload structs hold only strings, numbers, maps and vectors with
                // string keys, which always serialize; Null is unreachable.
                encoded.unwrap_or(serde_json::Value::Null)
            }
        }
    };
}
