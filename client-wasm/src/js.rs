//! Plain JavaScript values from Rust: objects, properties, and JSON values without a
//! round trip through JSON text; JSON text read with the browser's float parser.

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

/// Parses JSON text with gapless-core's reader, taking floats from the browser's own
/// `parseFloat` (correctly rounded, like the standard library's parser, whose tables
/// would add kilobytes to the package).
pub(crate) fn parse(text: &str) -> Option<Value> {
    gapless_core::json::parse_with(text, |t| Some(js_sys::parse_float(t))).ok()
}
