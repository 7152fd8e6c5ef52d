//! The strict JSON reader (RFC 8259) behind [`super`]: one pass over the text that
//! either checks and skips a value or builds it as a `serde_json` value.

use serde_json::{Map, Number, Value};

use super::{FloatParser, JsonError};

/// How deeply arrays and objects may nest in a value that is built, as in `serde_json`.
const MAX_DEPTH: u32 = 127;

/// A position in JSON text.
pub(super) struct Reader<'a> {
    text: &'a str,
    pos: usize,
    floats: FloatParser,
}

/// A value that is neither a string nor a container.
enum Scalar<'a> {
    Null,
    Bool(bool),
    /// A number without fraction or exponent, as written.
    Integer(&'a str),
    /// Any other number, as written.
    Float(&'a str),
}

impl<'a> Reader<'a> {
    /// A reader at the start of `text`; `floats` turns number texts with a fraction or an
    /// exponent into values when values are built.
    pub(super) fn new(text: &'a str, floats: FloatParser) -> Self {
        Reader {
            text,
            pos: 0,
            floats,
        }
    }

    /// The byte position.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    /// An error at the current position.
    pub(super) fn error(&self, what: &'static str) -> JsonError {
        JsonError { what, at: self.pos }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Takes `b` if it is next.
    pub(super) fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Skips whitespace (space, tab, line feed, carriage return).
    pub(super) fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Fails unless only whitespace is left.
    pub(super) fn end(&mut self) -> Result<(), JsonError> {
        self.whitespace();
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error("trailing characters")),
        }
    }

    /// Checks one value (after whitespace) and moves past it. Without a limit on
    /// nesting, as `serde_json` checks raw values: it keeps one bit per open container
    /// instead of recursing.
    pub(super) fn skip(&mut self) -> Result<(), JsonError> {
        // The open containers, innermost last: `true` for an object.
        let mut open: Vec<bool> = Vec::new();
        loop {
            // A value starts here.
            self.whitespace();
            match self.peek() {
                Some(b'{') => {
                    self.pos += 1;
                    self.whitespace();
                    if !self.eat(b'}') {
                        open.push(true);
                        self.key()?;
                        continue;
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    self.whitespace();
                    if !self.eat(b']') {
                        open.push(false);
                        continue;
                    }
                }
                Some(b'"') => self.string(None)?,
                _ => {
                    self.scalar()?;
                }
            }
            // A value ended here: close containers until one has a next item.
            loop {
                let Some(&object) = open.last() else {
                    return Ok(());
                };
                self.whitespace();
                if self.eat(b',') {
                    if object {
                        self.key()?;
                    }
                    break;
                }
                if self.eat(if object { b'}' } else { b']' }) {
                    open.pop();
                    continue;
                }
                return Err(self.error(if object {
                    "expected `,` or `}`"
                } else {
                    "expected `,` or `]`"
                }));
            }
        }
    }

    /// Checks an object's key and the colon after it.
    fn key(&mut self) -> Result<(), JsonError> {
        self.key_start()?;
        self.string(None)?;
        self.colon()
    }

    /// Reads one value (after whitespace).
    pub(super) fn value(&mut self, depth: u32) -> Result<Value, JsonError> {
        self.whitespace();
        Ok(match self.peek() {
            Some(b'{') => {
                let mut map = Map::new();
                self.object(depth, |r| {
                    let mut key = String::new();
                    r.string(Some(&mut key))?;
                    r.colon()?;
                    let value = r.value(depth + 1)?;
                    map.insert(key, value);
                    Ok(())
                })?;
                Value::Object(map)
            }
            Some(b'[') => {
                let mut items = Vec::new();
                self.array(depth, |r| {
                    items.push(r.value(depth + 1)?);
                    Ok(())
                })?;
                Value::Array(items)
            }
            Some(b'"') => {
                let mut s = String::new();
                self.string(Some(&mut s))?;
                Value::String(s)
            }
            _ => {
                let at = self.pos;
                match self.scalar()? {
                    Scalar::Null => Value::Null,
                    Scalar::Bool(b) => Value::Bool(b),
                    Scalar::Integer(text) => Value::Number(self.integer(text, at)?),
                    Scalar::Float(text) => Value::Number(self.float(text, at)?),
                }
            }
        })
    }

    /// Reads an array at its `[`, calling `item` at each element.
    pub(super) fn array(
        &mut self,
        depth: u32,
        item: impl FnMut(&mut Self) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        self.container(depth, b']', "expected `,` or `]`", item)
    }

    /// Reads an object at its `{`, calling `member` at each key.
    fn object(
        &mut self,
        depth: u32,
        mut member: impl FnMut(&mut Self) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        self.container(depth, b'}', "expected `,` or `}`", |r| {
            r.key_start()?;
            member(r)
        })
    }

    /// Reads a container at its opening byte: `item` at each item, separated by commas,
    /// up to `close`; `after_item` is the error when neither follows an item.
    fn container(
        &mut self,
        depth: u32,
        close: u8,
        after_item: &'static str,
        mut item: impl FnMut(&mut Self) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        if depth >= MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.pos += 1;
        self.whitespace();
        if self.eat(close) {
            return Ok(());
        }
        loop {
            item(self)?;
            self.whitespace();
            if self.eat(close) {
                return Ok(());
            }
            if !self.eat(b',') {
                return Err(self.error(after_item));
            }
        }
    }

    /// Skips whitespace up to an object's key, which must follow.
    fn key_start(&mut self) -> Result<(), JsonError> {
        self.whitespace();
        if self.peek() == Some(b'"') {
            Ok(())
        } else {
            Err(self.error("expected a string key"))
        }
    }

    fn colon(&mut self) -> Result<(), JsonError> {
        self.whitespace();
        if self.eat(b':') {
            Ok(())
        } else {
            Err(self.error("expected `:`"))
        }
    }

    /// Reads a string at its `"`, decoding it into `out` when given (a lone surrogate
    /// escape as U+FFFD). Without `out`, any `\u` escape is accepted as it is (a
    /// message's text is kept as written).
    fn string(&mut self, mut out: Option<&mut String>) -> Result<(), JsonError> {
        self.pos += 1;
        let bytes = self.text.as_bytes();
        loop {
            let start = self.pos;
            self.pos = plain_run(bytes, self.pos);
            if let Some(out) = &mut out {
                out.push_str(&self.text[start..self.pos]);
            }
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(out.as_deref_mut())?;
                }
                Some(_) => return Err(self.error("control character in a string")),
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    /// Reads the escape after a `\`.
    fn escape(&mut self, out: Option<&mut String>) -> Result<(), JsonError> {
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let unit = self.hex4()?;
                let Some(out) = out else {
                    return Ok(());
                };
                // Half a surrogate pair on its own (a JavaScript string cut between
                // the halves of an emoji, which `JSON.stringify` writes so) is valid
                // JSON (RFC 8259, 8.2) that a Rust string cannot hold: it becomes
                // U+FFFD, rather than costing the whole value (serde_json refuses it).
                let code = match unit {
                    0xD800..=0xDBFF => {
                        let back = self.pos;
                        let low = if self.eat(b'\\') && self.eat(b'u') {
                            self.hex4().ok()
                        } else {
                            None
                        };
                        match low {
                            Some(low @ 0xDC00..=0xDFFF) => {
                                0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                            }
                            _ => {
                                self.pos = back;
                                0xFFFD
                            }
                        }
                    }
                    0xDC00..=0xDFFF => 0xFFFD,
                    unit => unit,
                };
                out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                return Ok(());
            }
            _ => return Err(self.error("invalid escape")),
        };
        self.pos += 1;
        if let Some(out) = out {
            out.push(c);
        }
        Ok(())
    }

    /// Four hex digits.
    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut n = 0;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| (b as char).to_digit(16))
                .ok_or_else(|| self.error("invalid \\u escape"))?;
            n = n << 4 | digit;
            self.pos += 1;
        }
        Ok(n)
    }

    /// Reads `null`, `true`, `false` or a number.
    fn scalar(&mut self) -> Result<Scalar<'a>, JsonError> {
        let rest = &self.text.as_bytes()[self.pos..];
        for (word, scalar) in [
            (&b"null"[..], Scalar::Null),
            (b"true", Scalar::Bool(true)),
            (b"false", Scalar::Bool(false)),
        ] {
            if rest.starts_with(word) {
                self.pos += word.len();
                return Ok(scalar);
            }
        }
        let start = self.pos;
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            None => return Err(self.error("unexpected end")),
            Some(_) => return Err(self.error("expected a value")),
        }
        let mut integer = true;
        if self.eat(b'.') {
            integer = false;
            self.some_digits()?;
        }
        if self.eat(b'e') || self.eat(b'E') {
            integer = false;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            self.some_digits()?;
        }
        let text = &self.text[start..self.pos];
        Ok(if integer {
            Scalar::Integer(text)
        } else {
            Scalar::Float(text)
        })
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn some_digits(&mut self) -> Result<(), JsonError> {
        let start = self.pos;
        self.digits();
        if self.pos == start {
            Err(self.error("invalid number"))
        } else {
            Ok(())
        }
    }

    /// An integer's value: `u64` if it is one, `i64` if negative and in range, else a
    /// float (as `serde_json` does, `-0` included).
    fn integer(&self, text: &str, at: usize) -> Result<Number, JsonError> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(digits) => (true, digits),
            None => (false, text),
        };
        let mut n: u64 = 0;
        for d in digits.bytes() {
            match n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d - b'0')))
            {
                Some(m) => n = m,
                None => return self.float(text, at),
            }
        }
        if !negative {
            Ok(n.into())
        } else if n == 0 || n > 1 << 63 {
            self.float(text, at)
        } else {
            Ok((n as i64).wrapping_neg().into())
        }
    }

    /// A float's value, which must be finite.
    fn float(&self, text: &str, at: usize) -> Result<Number, JsonError> {
        (self.floats)(text)
            .and_then(Number::from_f64)
            .ok_or(JsonError {
                what: "number out of range",
                at,
            })
    }
}

/// The end of the run of plain string bytes (not `"`, `\\` or a control character)
/// starting at `at`: eight bytes at a time while none of them is special, then byte by
/// byte. Strings are most of what a message holds, and most of their bytes are plain.
pub(super) fn plain_run(bytes: &[u8], mut at: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `v` is zero: its high bit is set in `zero(v)` (exact as to whether any
    // byte is).
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    while let Some(word) = bytes.get(at..at + 8) {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let v = u64::from_le_bytes(eight);
        let quote = zero(v ^ (ONES * u64::from(b'"')));
        let backslash = zero(v ^ (ONES * u64::from(b'\\')));
        let control = v.wrapping_sub(ONES * 0x20) & !v & HIGH;
        if quote | backslash | control != 0 {
            break;
        }
        at += 8;
    }
    while let Some(&b) = bytes.get(at) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        at += 1;
    }
    at
}
