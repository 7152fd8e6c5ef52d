//! The incremental SSE decoder: feed it chunks, pull complete events out.

use std::collections::VecDeque;

/// The largest event (its field lines together) a decoder accepts by default: 16 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One dispatched Server-Sent Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type: the last `event` field, or `"message"` when there was none.
    pub event: String,
    /// The `data` lines joined with `\n`.
    pub data: String,
    /// The last event ID in force when the event was dispatched (`id` persists).
    pub id: Option<String>,
}

/// The stream cannot be decoded any further.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// One event (or one line) grew past the decoder's limit.
    #[error("an SSE event exceeds the limit of {limit} bytes")]
    EventTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// An incremental, push/pull SSE decoder.
///
/// ```
/// use gapless_core::sse::SseDecoder;
///
/// let mut decoder = SseDecoder::new();
/// decoder.feed(b"event: data\ndata: [1,");
/// assert!(decoder.next_event().is_none()); // the event is not complete yet
/// decoder.feed(b"2]\n\n");
/// let event = decoder.next_event().unwrap().unwrap();
/// assert_eq!((event.event.as_str(), event.data.as_str()), ("data", "[1,2]"));
/// ```
#[derive(Debug)]
pub struct SseDecoder {
    /// Bytes received but not yet split into lines; `buf[start..]` is live.
    buf: Vec<u8>,
    start: usize,
    /// How far past `start` the search for a line end has already looked.
    scanned: usize,
    /// The previous line ended in a CR: a LF at the very front belongs to it.
    skip_lf: bool,
    /// Still at the beginning of the stream: a BOM may follow.
    at_stream_start: bool,
    /// The event being assembled.
    data: String,
    has_data: bool,
    event_type: String,
    event_bytes: usize,
    last_id: Option<String>,
    retry: Option<u64>,
    max_event_bytes: usize,
    ready: VecDeque<SseEvent>,
    failed: bool,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder with the default event size limit ([`DEFAULT_MAX_EVENT_BYTES`]).
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A decoder that rejects events (or lines) larger than `limit` bytes.
    pub fn with_max_event_bytes(limit: usize) -> Self {
        SseDecoder {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            skip_lf: false,
            at_stream_start: true,
            data: String::new(),
            has_data: false,
            event_type: String::new(),
            event_bytes: 0,
            last_id: None,
            retry: None,
            max_event_bytes: limit,
            ready: VecDeque::new(),
            failed: false,
        }
    }

    /// Appends received bytes. Chunks may split lines, CRLF pairs or UTF-8 sequences
    /// anywhere.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.failed {
            return;
        }
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, `None` when more bytes are needed, or an error once
    /// the stream went past the size limit (after which the decoder yields nothing).
    pub fn next_event(&mut self) -> Option<Result<SseEvent, SseError>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            if self.failed {
                return None;
            }
            match self.next_line() {
                Ok(Some((from, to))) => self.process_line(from, to),
                Ok(None) => return None,
                Err(e) => {
                    self.failed = true;
                    self.buf = Vec::new();
                    self.start = 0;
                    self.scanned = 0;
                    return Some(Err(e));
                }
            }
        }
    }

    /// The last event ID seen (what a reconnect sends as `Last-Event-ID`).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The reconnection time the server asked for with `retry`, in milliseconds.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry
    }

    /// Finds the next complete line; returns its byte range in `buf`.
    fn next_line(&mut self) -> Result<Option<(usize, usize)>, SseError> {
        if self.skip_lf && self.start < self.buf.len() {
            if self.buf[self.start] == b'\n' {
                self.start += 1;
            }
            self.skip_lf = false;
        }
        if self.at_stream_start {
            let rest = &self.buf[self.start..];
            let bom = [0xEF, 0xBB, 0xBF];
            if rest.len() < 3 && bom.starts_with(rest) {
                return Ok(None);
            }
            if rest.starts_with(&bom) {
                self.start += 3;
            }
            self.at_stream_start = false;
        }
        let from = self.start;
        let search_from = from + self.scanned;
        let found = self.buf[search_from..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r');
        match found {
            Some(i) => {
                let end = search_from + i;
                if self.buf[end] == b'\r' {
                    self.skip_lf = true;
                }
                self.start = end + 1;
                self.scanned = 0;
                if self.event_bytes + (end - from) > self.max_event_bytes {
                    return Err(SseError::EventTooLarge {
                        limit: self.max_event_bytes,
                    });
                }
                Ok(Some((from, end)))
            }
            None => {
                self.scanned = self.buf.len() - from;
                if self.event_bytes + self.scanned > self.max_event_bytes {
                    return Err(SseError::EventTooLarge {
                        limit: self.max_event_bytes,
                    });
                }
                Ok(None)
            }
        }
    }

    fn process_line(&mut self, from: usize, to: usize) {
        if from == to {
            self.dispatch();
            return;
        }
        self.event_bytes += to - from;
        let line = &self.buf[from..to];
        if line[0] == b':' {
            return; // comment
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let mut value = &line[colon + 1..];
                if value.first() == Some(&b' ') {
                    value = &value[1..];
                }
                (&line[..colon], value)
            }
            None => (line, &line[line.len()..]),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
            }
            b"event" => self.event_type = String::from_utf8_lossy(value).into_owned(),
            // An id containing NUL is ignored.
            b"id" if !value.contains(&0) => {
                self.last_id = Some(String::from_utf8_lossy(value).into_owned());
            }
            // Digits only; a value too large for u64 saturates.
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let ms = value.iter().fold(0u64, |acc, d| {
                    acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                self.retry = Some(ms);
            }
            _ => {} // unknown fields and invalid values are ignored
        }
    }

    fn dispatch(&mut self) {
        self.event_bytes = 0;
        let event_type = std::mem::take(&mut self.event_type);
        if !self.has_data {
            return;
        }
        self.has_data = false;
        self.ready.push_back(SseEvent {
            event: if event_type.is_empty() {
                "message".to_owned()
            } else {
                event_type
            },
            data: std::mem::take(&mut self.data),
            id: self.last_id.clone(),
        });
    }
}
