//! Macros that declare event payload structs and open string enums with one shape.

/// Declares a payload struct from its fields and their wire names (camelCase), with an
/// `extra` map that keeps fields this version does not know, so re-encoding is lossless.
/// A field marked `keep_null` is written as `null` when it is `None`; other `None`
/// fields are left out. Decoding and encoding go through the `json` module, and so do the
/// struct's serde impls.
macro_rules! data_struct {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $wire:literal $($keep_null:ident)? ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// Fields this version does not know, kept for a lossless round trip.
            pub extra: serde_json::Map<String, serde_json::Value>,
        }

        impl $name {
            /// The wire form of the fields, for `json::normalize`.
            pub(crate) const FIELD_LIST: &'static [super::json::Field] = &[ $( super::json::Field {
                wire: $wire,
                keep_null: keep_null!($($keep_null)?),
                optional: <$ty as super::json::Json>::OPTIONAL,
                list: <$ty as super::json::Json>::LIST,
                base: <$ty as super::json::Json>::BASE,
            }, )* ];
        }

        impl super::json::Json for $name {
            const BASE: super::json::Base = super::json::Base::Struct($name::FIELD_LIST);

            fn decode(value: &serde_json::Value, errors: &mut super::json::Errors) -> Self {
                let map = super::json::object(value, "an object", errors);
                $name {
                    $( $field: super::json::field(map, $wire, errors), )*
                    extra: super::json::extra(map, &[ $( $wire ),* ]),
                }
            }

            fn placeholder() -> Self {
                $name {
                    $( $field: super::json::Json::placeholder(), )*
                    extra: serde_json::Map::new(),
                }
            }

            fn to_json(&self) -> serde_json::Value {
                #[allow(unused_mut)]
                let mut map = serde_json::Map::new();
                $( super::json::put(&mut map, $wire, &self.$field, keep_null!($($keep_null)?)); )*
                super::json::with_extra(map, &self.extra)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serde::Serialize::serialize(&super::json::Json::to_json(self), s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let value = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
                super::json::Json::from_json(&value).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// `true` for a field marked `keep_null`.
macro_rules! keep_null {
    () => {
        false
    };
    (keep_null) => {
        true
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

        impl super::json::Json for $name {
            const BASE: super::json::Base = super::json::Base::Str;

            fn decode(value: &serde_json::Value, errors: &mut super::json::Errors) -> Self {
                $name::from(super::json::string(value, "a string", errors))
            }

            fn placeholder() -> Self {
                $name::Other(String::new())
            }

            fn to_json(&self) -> serde_json::Value {
                serde_json::Value::String(self.as_str().to_owned())
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

        /// The fields of each kind's payload, in the order of [`KINDS`].
        const SCHEMAS: &[&[json::Field]] = &[ $( <$ty>::FIELD_LIST, )* ];

        $(
            impl Payload for $ty {
                const KIND: &'static str = $wire;

                fn decode_data(data: &serde_json::Value) -> Result<Self, String> {
                    <$ty as json::Json>::from_json(data)
                }
            }

            impl From<$ty> for Event {
                fn from(payload: $ty) -> Event {
                    Event::$variant(payload)
                }
            }
        )*

        impl Event {
            /// Decodes `data` by `kind`; falls back to [`Event::Raw`] with the reason.
            pub fn from_parts(kind: &str, data: serde_json::Value) -> Event {
                let mut errors = None;
                match (Event::decode(kind, &data, &mut errors), errors) {
                    (Some(event), None) => event,
                    (Some(_), Some(why)) => Event::Raw(RawEvent::invalid(kind, data, why)),
                    (None, _) => Event::Raw(RawEvent::unknown(kind, data)),
                }
            }

            /// Decodes `data` as a `kind` event (`None` for an unknown kind), recording
            /// the first mismatch in `errors`.
            fn decode(
                kind: &str,
                data: &serde_json::Value,
                errors: &mut json::Errors,
            ) -> Option<Event> {
                use json::Json as _;
                Some(match kind {
                    $( $wire => Event::$variant(<$ty>::decode(data, errors)), )*
                    _ => return None,
                })
            }

            /// The kind's wire name, such as `container-agent:token`.
            pub fn kind(&self) -> &str {
                match self {
                    Event::Raw(raw) => &raw.kind,
                    typed => KINDS[typed.position()],
                }
            }

            /// A typed event's position in [`KINDS`] (and `SCHEMAS`), so that what
            /// depends on the kind is one table lookup rather than a branch per kind;
            /// `KINDS.len()` for a raw event.
            fn position(&self) -> usize {
                /// The kinds' positions, in declaration order.
                #[allow(clippy::enum_variant_names)]
                enum Position { $( $variant, )* }
                match self {
                    $( Event::$variant(_) => Position::$variant as usize, )*
                    Event::Raw(_) => KINDS.len(),
                }
            }

            /// The `data` object as JSON, with every field the event arrived with.
            pub fn data(&self) -> serde_json::Value {
                use json::Json as _;
                match self {
                    $( Event::$variant(d) => d.to_json(), )*
                    Event::Raw(raw) => match (&raw.reason, schema(&raw.kind)) {
                        (RawReason::NotDecoded, Some(fields)) => {
                            json::normalize(raw.data.clone(), fields)
                        }
                        _ => raw.data.clone(),
                    },
                }
            }

            /// [`Event::data`] computed from `source`, the `data` this event was
            /// decoded from, instead of by encoding the typed struct: the same value,
            /// for callers that kept the source (the browser package, where encoding
            /// every kind would cost more code than this one walk).
            ///
            /// ```
            /// use gapless_core::event::Event;
            /// use serde_json::json;
            ///
            /// let data = json!({"taskId": "t", "sessionId": "s", "model": "m",
            ///     "maxTurns": 3, "sandboxProvider": null, "new": 1});
            /// let event = Event::from_parts("container-agent:started", data.clone());
            /// assert_eq!(event.data_from_source(data), event.data());
            /// ```
            pub fn data_from_source(&self, source: serde_json::Value) -> serde_json::Value {
                let fields = match self {
                    Event::Raw(raw) => match (&raw.reason, schema(&raw.kind)) {
                        (RawReason::NotDecoded, Some(fields)) => fields,
                        _ => return raw.data.clone(),
                    },
                    typed => SCHEMAS[typed.position()],
                };
                json::normalize(source, fields)
            }
        }
    };
}
