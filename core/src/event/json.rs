//! Decoding and encoding of the payload structs from and to `serde_json` values.
//!
//! Written by hand on purpose: every payload struct decodes through the same few small
//! helpers (one per field type), instead of one serde `Deserialize` impl per struct and
//! per deserializer. That keeps the browser package small, and it is the one definition
//! of the wire form: the structs' serde impls go through it too.
//!
//! The rules are those the serde derive (`rename_all = "camelCase"`, a flattened `extra`
//! map) had: a missing `Option` field is `None` (so is `null`), a missing field of any
//! other type is an error, integers must be integers in range, and every field the
//! struct does not know is kept in `extra`. Encoding leaves out `None` fields unless
//! the field is declared to keep `null`. Only the error messages differ.

use serde_json::{Map, Number, Value};

/// The first reason a value did not fit its type, once there is one; the message names
/// the field (and the fields around it, outermost first).
///
/// Decoding does not stop at the first mismatch: it records it here and goes on with
/// a placeholder value, so each struct has one exit and one drop of its fields.
pub(crate) type Errors = Option<String>;

/// One field of a payload struct: its wire name and its type, as a table. The table is
/// what [`check`] reads, and what [`normalize`] reads; decoding and encoding go through
/// the [`Json`] impls, and tests hold the two to the same answers.
pub(crate) struct Field {
    /// The wire name.
    pub(crate) wire: &'static str,
    /// An option that is written as `null` when it is `None`.
    pub(crate) keep_null: bool,
    /// An option (left out when `None`, unless `keep_null`).
    pub(crate) optional: bool,
    /// A vector (of `base`).
    pub(crate) list: bool,
    /// The type, or the type of the items of a vector.
    pub(crate) base: Base,
}

/// The type of a field, under its option and vector.
pub(crate) enum Base {
    /// A string, or an open string enum.
    Str,
    /// An unsigned integer of at most 64 bits.
    U64,
    /// An unsigned integer of at most 32 bits.
    U32,
    /// A boolean.
    Bool,
    /// Any JSON number.
    Number,
    /// Any JSON value.
    Any,
    /// Any JSON object.
    Object,
    /// A payload struct with these fields.
    Struct(&'static [Field]),
}

/// A type a payload field can have.
pub(crate) trait Json: Sized {
    /// The type, as the schema table describes it.
    const BASE: Base;

    /// Whether the type is an option.
    const OPTIONAL: bool = false;

    /// Whether the type is a vector.
    const LIST: bool = false;

    /// Decodes the value; on a mismatch, records it in `errors` and returns a
    /// placeholder.
    fn decode(value: &Value, errors: &mut Errors) -> Self;

    /// Encodes the value.
    fn to_json(&self) -> Value;

    /// The value of a missing field `key`: an error (with a placeholder) unless the type
    /// is an option.
    fn if_missing(key: &str, errors: &mut Errors) -> Self {
        fail(errors, || format!("missing field `{key}`"));
        Self::placeholder()
    }

    /// What a value that did not decode is replaced with.
    fn placeholder() -> Self;

    /// Whether encoding leaves the field out (an empty option).
    fn is_absent(&self) -> bool {
        false
    }

    /// Decodes a whole value: the type, or the first reason it does not fit.
    fn from_json(value: &Value) -> Result<Self, String> {
        let mut errors = None;
        let decoded = Self::decode(value, &mut errors);
        match errors {
            None => Ok(decoded),
            Some(e) => Err(e),
        }
    }
}

/// Checks `value` against a payload struct's `fields` from the table alone, without
/// decoding it: `Err` with the message decoding would give, or `Ok`.
pub(crate) fn check(value: &Value, fields: &[Field]) -> Result<(), String> {
    let mut errors = None;
    check_struct(value, fields, &mut errors);
    errors.map_or(Ok(()), Err)
}

fn check_struct(value: &Value, fields: &[Field], errors: &mut Errors) {
    let map = object(value, "an object", errors);
    for f in fields {
        match map.and_then(|m| m.get(f.wire)) {
            Some(v) => {
                let clean = errors.is_none();
                check_field(v, f, errors);
                within(clean, errors, f.wire);
            }
            None if f.optional => {}
            None => fail(errors, || format!("missing field `{}`", f.wire)),
        }
    }
}

fn check_field(value: &Value, f: &Field, errors: &mut Errors) {
    if f.optional && value.is_null() {
        return;
    }
    if !f.list {
        return check_base(value, &f.base, errors);
    }
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let clean = errors.is_none();
                check_base(item, &f.base, errors);
                within_index(clean, errors, i);
            }
        }
        other => invalid(errors, other, "an array"),
    }
}

fn check_base(value: &Value, base: &Base, errors: &mut Errors) {
    match (base, value) {
        (Base::Str, Value::String(_))
        | (Base::Bool, Value::Bool(_))
        | (Base::Number, Value::Number(_))
        | (Base::Object, Value::Object(_))
        | (Base::Any, _) => {}
        (Base::U64, _) => {
            unsigned(value, u64::MAX, "u64", errors);
        }
        (Base::U32, _) => {
            unsigned(value, u32::MAX.into(), "u32", errors);
        }
        (Base::Struct(fields), _) => check_struct(value, fields, errors),
        (Base::Str, other) => invalid(errors, other, "a string"),
        (Base::Bool, other) => invalid(errors, other, "a boolean"),
        (Base::Number, other) => invalid(errors, other, "a number"),
        (Base::Object, other) => invalid(errors, other, "an object"),
    }
}

/// Records a mismatch, unless an earlier one is already recorded.
fn fail(errors: &mut Errors, message: impl FnOnce() -> String) {
    if errors.is_none() {
        *errors = Some(message());
    }
}

/// What a JSON value is, for error messages (its kind, not its text: writing numbers
/// would bring float formatting into the browser package).
pub(crate) fn unexpected(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a floating point number",
        Value::Number(n) if n.is_i64() && !n.is_u64() => "a negative integer",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Records that `value` is not the `expected` kind.
pub(crate) fn invalid(errors: &mut Errors, value: &Value, expected: &str) {
    fail(errors, || {
        format!("invalid type: {}, expected {expected}", unexpected(value))
    });
}

/// The object a struct decodes from (`None`, with the error, for anything else).
pub(crate) fn object<'a>(
    value: &'a Value,
    name: &str,
    errors: &mut Errors,
) -> Option<&'a Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        other => {
            invalid(errors, other, name);
            None
        }
    }
}

/// Decodes field `key` of `map`.
pub(crate) fn field<T: Json>(
    map: Option<&Map<String, Value>>,
    key: &str,
    errors: &mut Errors,
) -> T {
    match map.and_then(|m| m.get(key)) {
        Some(value) => {
            let clean = errors.is_none();
            let decoded = T::decode(value, errors);
            within(clean, errors, key);
            decoded
        }
        None => T::if_missing(key, errors),
    }
}

/// The fields of `map` that are not in `known`, for a struct's `extra`.
pub(crate) fn extra(map: Option<&Map<String, Value>>, known: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in map.into_iter().flatten() {
        if !known.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// Prefixes a mismatch found inside field `key` with the field's name.
fn within(clean: bool, errors: &mut Errors, key: &str) {
    if clean {
        if let Some(e) = errors {
            *e = format!("`{key}`: {e}");
        }
    }
}

/// Encodes field `key` into `map` (left out when absent, unless `keep_null`).
pub(crate) fn put<T: Json>(map: &mut Map<String, Value>, key: &str, value: &T, keep_null: bool) {
    if keep_null || !value.is_absent() {
        map.insert(key.to_owned(), value.to_json());
    }
}

/// A struct's encoding: its fields, then the fields it did not know.
pub(crate) fn with_extra(mut map: Map<String, Value>, extra: &Map<String, Value>) -> Value {
    for (k, v) in extra {
        map.insert(k.clone(), v.clone());
    }
    Value::Object(map)
}

/// An unsigned integer no larger than `max`.
fn unsigned(value: &Value, max: u64, expected: &str, errors: &mut Errors) -> u64 {
    match value {
        Value::Number(n) => match n.as_u64() {
            Some(u) if u <= max => u,
            _ if n.is_f64() => {
                invalid(errors, value, expected);
                0
            }
            _ => {
                // An integer here (floats are handled above), written without `Number`'s
                // `Display`, which brings float formatting into the browser package.
                let n = match (n.as_i64(), n.as_u64()) {
                    (Some(i), _) => i.to_string(),
                    (_, u) => u.unwrap_or_default().to_string(),
                };
                fail(errors, || {
                    format!("invalid value: integer `{n}`, expected {expected}")
                });
                0
            }
        },
        other => {
            invalid(errors, other, expected);
            0
        }
    }
}

impl Json for u64 {
    const BASE: Base = Base::U64;

    fn decode(value: &Value, errors: &mut Errors) -> Self {
        unsigned(value, u64::MAX, "u64", errors)
    }
    fn to_json(&self) -> Value {
        Value::from(*self)
    }
    fn placeholder() -> Self {
        0
    }
}

impl Json for u32 {
    const BASE: Base = Base::U32;

    fn decode(value: &Value, errors: &mut Errors) -> Self {
        unsigned(value, u32::MAX.into(), "u32", errors) as u32
    }
    fn to_json(&self) -> Value {
        Value::from(*self)
    }
    fn placeholder() -> Self {
        0
    }
}

impl Json for bool {
    const BASE: Base = Base::Bool;

    fn decode(value: &Value, errors: &mut Errors) -> Self {
        match value {
            Value::Bool(b) => *b,
            other => {
                invalid(errors, other, "a boolean");
                false
            }
        }
    }
    fn to_json(&self) -> Value {
        Value::Bool(*self)
    }
    fn placeholder() -> Self {
        false
    }
}

impl Json for String {
    const BASE: Base = Base::Str;

    fn decode(value: &Value, errors: &mut Errors) -> Self {
        string(value, "a string", errors).to_owned()
    }
    fn to_json(&self) -> Value {
        Value::String(self.clone())
    }
    fn placeholder() -> Self {
        String::new()
    }
}

impl Json for Number {
    const BASE: Base = Base::Number;

    fn decode(value: &Value, errors: &mut Errors) -> Self {
        match value {
            Value::Number(n) => n.clone(),
            other => {
                invalid(errors, other, "a number");
                Self::placeholder()
            }
        }
    }
    fn to_json(&self) -> Value {
        Value::Number(self.clone())
    }
    fn placeholder() -> Self {
        Number::from(0u8)
    }
}

impl Json for Value {
    const BASE: Base = Base::Any;

    fn decode(value: &Value, _: &mut Errors) -> Self {
        value.clone()
    }
    fn to_json(&self) -> Value {
        self.clone()
    }
    fn placeholder() -> Self {
        Value::Null
    }
}

impl Json for Map<String, Value> {
    const BASE: Base = Base::Object;

    fn decode(value: &Value, errors: &mut Errors) -> Self {
        object(value, "an object", errors)
            .cloned()
            .unwrap_or_default()
    }
    fn to_json(&self) -> Value {
        Value::Object(self.clone())
    }
    fn placeholder() -> Self {
        Map::new()
    }
}

impl<T: Json> Json for Option<T> {
    const BASE: Base = T::BASE;
    const OPTIONAL: bool = true;
    const LIST: bool = T::LIST;

    fn decode(value: &Value, errors: &mut Errors) -> Self {
        match value {
            Value::Null => None,
            other => Some(T::decode(other, errors)),
        }
    }
    fn to_json(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::to_json)
    }
    fn if_missing(_: &str, _: &mut Errors) -> Self {
        None
    }
    fn placeholder() -> Self {
        None
    }
    fn is_absent(&self) -> bool {
        self.is_none()
    }
}

impl<T: Json> Json for Vec<T> {
    const BASE: Base = T::BASE;
    const LIST: bool = true;

    fn decode(value: &Value, errors: &mut Errors) -> Self {
        let items = match value {
            Value::Array(items) => &items[..],
            other => {
                invalid(errors, other, "an array");
                &[]
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let clean = errors.is_none();
            out.push(T::decode(item, errors));
            within_index(clean, errors, i);
        }
        out
    }
    fn to_json(&self) -> Value {
        let mut out = Vec::with_capacity(self.len());
        for item in self {
            out.push(item.to_json());
        }
        Value::Array(out)
    }
    fn placeholder() -> Self {
        Vec::new()
    }
}

/// Prefixes a mismatch found inside item `i` of an array with its index.
fn within_index(clean: bool, errors: &mut Errors, i: usize) {
    if clean {
        if let Some(e) = errors {
            *e = format!("[{i}]: {e}");
        }
    }
}

/// The string a string (or string enum) decodes from; `""` with the error for anything
/// else.
pub(crate) fn string<'a>(value: &'a Value, name: &str, errors: &mut Errors) -> &'a str {
    match value {
        Value::String(s) => s,
        other => {
            invalid(errors, other, name);
            ""
        }
    }
}

/// The encoding of a struct with `fields`, computed from the JSON `value` it decoded from
/// (which must have decoded): the same value, except that options that are `null` are
/// left out (or written as `null` when missing, for `keep_null` fields), in nested
/// structs too.
pub(crate) fn normalize(mut value: Value, fields: &[Field]) -> Value {
    normalize_in(&mut value, fields);
    value
}

fn normalize_in(value: &mut Value, fields: &[Field]) {
    match value {
        Value::Object(map) => {
            let omitted = |k: &str, v: &Value| {
                v.is_null()
                    && fields
                        .iter()
                        .any(|f| f.wire == k && f.optional && !f.keep_null)
            };
            if map.iter().any(|(k, v)| omitted(k, v)) {
                // Rebuilt rather than removed from: see `Envelope::from_value`.
                for (k, v) in std::mem::take(map) {
                    if !omitted(&k, &v) {
                        map.insert(k, v);
                    }
                }
            }
            for f in fields {
                match map.get_mut(f.wire) {
                    None if f.keep_null => {
                        map.insert(f.wire.to_owned(), Value::Null);
                    }
                    Some(inner) => {
                        if let Base::Struct(nested) = f.base {
                            normalize_in(inner, nested);
                        }
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                normalize_in(item, fields);
            }
        }
        _ => {}
    }
}
