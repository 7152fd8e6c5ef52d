//! Reading the JavaScript options objects: `{offset, headers, live, ...}`.

use gapless_core::resume::LiveMode;
use gapless_core::Offset;
use wasm_bindgen::JsValue;

use crate::error::{js_error, Code};

fn get(options: &JsValue, key: &str) -> Option<JsValue> {
    if options.is_undefined() || options.is_null() {
        return None;
    }
    js_sys::Reflect::get(options, &key.into())
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

/// `options.offset` (default `-1`, the start); anything but a string is refused (a
/// number read as "absent" would replay the whole history).
pub fn offset(options: &JsValue) -> Result<Offset, JsValue> {
    let Some(value) = get(options, "offset") else {
        return Ok(Offset::START);
    };
    let text = value
        .as_string()
        .ok_or_else(|| js_error(Code::InvalidArgument, "offset must be a string", None))?;
    Offset::parse(&text).map_err(|e| js_error(Code::InvalidArgument, &e.to_string(), None))
}

/// `options.live`: `"sse"` (default), `"long-poll"`, or `false` (history only).
pub fn live(options: &JsValue) -> Result<LiveMode, JsValue> {
    match get(options, "live") {
        None => Ok(LiveMode::Sse),
        Some(v) if v.as_bool() == Some(false) => Ok(LiveMode::Off),
        Some(v) => match v.as_string().as_deref() {
            Some("sse") => Ok(LiveMode::Sse),
            Some("long-poll") => Ok(LiveMode::LongPoll),
            _ => Err(js_error(
                Code::InvalidArgument,
                "live must be \"sse\", \"long-poll\" or false",
                None,
            )),
        },
    }
}

/// Checks that fetch can send `name: value` (a header name; a value without line
/// breaks or characters past Latin-1), as an `INVALID_ARGUMENT` error: one it cannot
/// would throw in the middle of a read or an append.
pub fn check_header(name: &str, value: &str) -> Result<(), JsValue> {
    web_sys::Headers::new()
        .and_then(|headers| headers.set(name, value))
        .map_err(|_| {
            js_error(
                Code::InvalidArgument,
                &format!("\"{name}: {value}\" is not a header fetch can send"),
                None,
            )
        })
}

/// Checks that `url` names a stream (resolved against the page's location where
/// there is one), as an `INVALID_ARGUMENT` error: no URL, or one with a fragment
/// (`#…`), which would swallow each read's query.
pub fn check_url(url: &str) -> Result<(), JsValue> {
    let base = js_sys::Reflect::get(&js_sys::global(), &"location".into())
        .ok()
        .and_then(|location| js_sys::Reflect::get(&location, &"href".into()).ok())
        .and_then(|href| href.as_string());
    let parsed = match &base {
        Some(base) => web_sys::Url::new_with_base(url, base),
        None => web_sys::Url::new(url),
    };
    match parsed {
        // (The text, not the parsed hash: a bare `#` leaves that empty.)
        Ok(_) if !url.contains('#') => Ok(()),
        Ok(_) => Err(js_error(
            Code::InvalidArgument,
            &format!("\"{url}\": a fragment (#...) would swallow each read's query"),
            None,
        )),
        Err(_) => Err(js_error(
            Code::InvalidArgument,
            &format!("\"{url}\" is not a URL"),
            None,
        )),
    }
}

/// `options.headers`: an object of header names to values.
pub fn headers(options: &JsValue) -> Result<Vec<(String, String)>, JsValue> {
    let Some(h) = get(options, "headers") else {
        return Ok(Vec::new());
    };
    let entries = js_sys::Object::entries(&h.into());
    let mut out = Vec::new();
    for entry in entries.iter() {
        let pair = js_sys::Array::from(&entry);
        match (pair.get(0).as_string(), pair.get(1).as_string()) {
            (Some(k), Some(v)) => {
                check_header(&k, &v)?;
                out.push((k, v));
            }
            _ => {
                return Err(js_error(
                    Code::InvalidArgument,
                    "header values must be strings",
                    None,
                ))
            }
        }
    }
    Ok(out)
}

/// A string option.
pub fn string(options: &JsValue, key: &str) -> Option<String> {
    get(options, key).and_then(|v| v.as_string())
}

/// A number option.
pub fn number(options: &JsValue, key: &str) -> Option<f64> {
    get(options, key).and_then(|v| v.as_f64())
}
