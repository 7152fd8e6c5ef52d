//! Plain JavaScript values from Rust: objects, properties, and JSON values without a
//! round trip through JSON text.

use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};

/// A new empty object.
pub(crate) fn object() -> JsValue {
    js_sys::Object::new().into()
}

/// Sets `target[key] = value` as an own, enumerable property (as `JSON.parse` does, so
/// a key `__proto__` is a property, not the prototype).
pub(crate) fn set(target: &JsValue, key: &str, value: &JsValue) {
    if key == "__proto__" {
        let descriptor = object();
        set(&descriptor, "value", value);
        for flag in ["writable", "enumerable", "configurable"] {
            set(&descriptor, flag, &JsValue::TRUE);
        }
        js_sys::Object::define_property(
            target.unchecked_ref::<js_sys::Object>(),
            &key.into(),
            descriptor.unchecked_ref(),
        );
    } else {
        let _ = js_sys::Reflect::set(target, &key.into(), value);
    }
}

/// A JSON value as the plain JavaScript value `JSON.parse` would give for its text.
pub(crate) fn from_json(value: &Value) -> JsValue {
    match value {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Number(n) => JsValue::from_f64(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => JsValue::from_str(s),
        Value::Array(items) => {
            let array = js_sys::Array::new();
            for item in items {
                array.push(&from_json(item));
            }
            array.into()
        }
        Value::Object(map) => {
            let target = object();
            for (k, v) in map {
                set(&target, k, &from_json(v));
            }
            target
        }
    }
}

/// `{type, offset}`: an update that carries nothing else.
pub(crate) fn marker(kind: &str, offset: &str) -> JsValue {
    let update = object();
    set(&update, "offset", &offset.into());
    set(&update, "type", &kind.into());
    update
}

/// Parses JSON text as serde_json does with its `float_roundtrip` feature: serde_json
/// (built without it, for size) reads the structure, the strings and the integers, and
/// every floating-point number is then taken from `JSON.parse`, which rounds correctly,
/// so both agree to the last bit.
pub(crate) fn parse_exact(text: &str) -> Option<Value> {
    let mut value: Value = serde_json::from_str(text).ok()?;
    if has_float(&value) {
        if let Ok(parsed) = js_sys::JSON::parse(text) {
            exact_floats(&mut value, &parsed);
        }
    }
    Some(value)
}

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

/// Replaces the floats of `value` by those at the same places in `parsed`, the same text
/// as `JSON.parse` read it (duplicate keys keep the last value in both).
fn exact_floats(value: &mut Value, parsed: &JsValue) {
    match value {
        Value::Number(n) => {
            if let Some(exact) = parsed.as_f64().and_then(serde_json::Number::from_f64) {
                *n = exact;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                if has_float(item) {
                    exact_floats(
                        item,
                        &js_sys::Reflect::get_u32(parsed, i as u32).unwrap_or_default(),
                    );
                }
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if has_float(v) {
                    exact_floats(
                        v,
                        &js_sys::Reflect::get(parsed, &k.into()).unwrap_or_default(),
                    );
                }
            }
        }
        _ => {}
    }
}
