//! A simulated Durable Streams server on a virtual clock, with scripted faults, for
//! testing the resume machine under any interleaving of pages, live data, duplicates,
//! disconnects and time-outs.

use std::time::Duration;

use super::{Config, LiveMode, Output, Payload, ReqId, Request, Resume, TransportError};
use crate::wire::{LiveParam, ResponseHead};
use crate::{Offset, Time};

/// One scripted server behaviour, consumed per request.
#[derive(Clone, Debug)]
pub(super) struct Step {
    /// Messages per page (catch-up, long-poll and each SSE data event).
    pub page: usize,
    /// Bytes per body chunk handed to the machine.
    pub chunk: usize,
    /// Messages the producer appends before this request is answered.
    pub append: usize,
    /// What goes wrong.
    pub fault: Fault,
}

#[derive(Clone, Debug)]
pub(super) enum Fault {
    None,
    /// The connection fails before any response.
    FailBeforeHead,
    /// The connection fails after `per_mille`/1000 of the body.
    FailMidBody {
        per_mille: u16,
    },
    /// 503 with `Retry-After: 1`, or 429 without.
    Unavailable {
        retry_after: bool,
    },
    /// The server never answers: the machine's idle time-out must fire.
    Hang,
    /// An SSE response first replays data the reader already has.
    StaleReplay,
    /// After answering, a late reply for an abandoned request arrives.
    Ghost,
    /// The answer holds no data yet names the tail, past the reader (a long-poll that
    /// timed out as appends landed: a 204; over SSE, a control event alone), when the
    /// reader asked from a real offset with data after it.
    TailMovedOn,
}

pub(super) fn offset_after(i: usize) -> String {
    format!("{i:010}")
}

pub(super) struct Sim {
    pub messages: Vec<String>,
    pub visible: usize,
    pub close_at_end: bool,
    pub closed: bool,
    pub now: Time,
    cursor: u64,
    steps: std::vec::IntoIter<Step>,
    last_id: Option<ReqId>,
}

impl Sim {
    pub(super) fn new(
        total: usize,
        initially_visible: usize,
        close_at_end: bool,
        steps: Vec<Step>,
    ) -> Self {
        Sim {
            messages: (0..total).map(|i| format!("{{\"n\":{i}}}")).collect(),
            visible: initially_visible.min(total),
            close_at_end,
            closed: close_at_end && initially_visible >= total,
            now: Time::ZERO,
            cursor: 1,
            steps: steps.into_iter(),
            last_id: None,
        }
    }

    fn next_step(&mut self) -> Step {
        self.steps.next().unwrap_or(Step {
            page: 4,
            chunk: 64,
            append: 1,
            fault: Fault::None,
        })
    }

    fn append(&mut self, n: usize) {
        self.visible = (self.visible + n).min(self.messages.len());
        if self.close_at_end && self.visible == self.messages.len() {
            self.closed = true;
        }
    }

    fn position(&self, offset: &str) -> usize {
        match offset {
            "-1" => 0,
            "now" => self.visible,
            o => o.parse().unwrap_or_else(|_| panic!("bad offset {o}")),
        }
    }

    fn json(&self, from: usize, to: usize) -> String {
        format!("[{}]", self.messages[from..to].join(","))
    }

    fn head(&mut self, status: u16, next: usize, content_type: &str) -> ResponseHead {
        self.cursor += 1;
        let mut h = ResponseHead::new(status)
            .with_header("Content-Type", content_type)
            .with_header("Stream-Next-Offset", offset_after(next))
            .with_header("Stream-Cursor", self.cursor.to_string());
        if next == self.visible {
            h = h.with_header("Stream-Up-To-Date", "true");
            if self.closed {
                h = h.with_header("Stream-Closed", "true");
            }
        }
        h
    }

    /// Feeds `body` in chunks, failing part-way if the step says so. Returns whether the
    /// body was delivered whole.
    fn feed(&mut self, m: &mut Resume, id: ReqId, body: &[u8], step: &Step) -> bool {
        let cut = match step.fault {
            Fault::FailMidBody { per_mille } => body.len() * usize::from(per_mille) / 1000,
            _ => body.len(),
        };
        for c in body[..cut].chunks(step.chunk.max(1)) {
            self.now = self.now + Duration::from_millis(1);
            m.handle_body(self.now, id, c);
        }
        if cut < body.len() {
            m.handle_failure(self.now, id, TransportError::Io("reset mid-body".into()));
            false
        } else {
            true
        }
    }

    /// Answers one request the machine asked for, according to the next scripted step.
    pub(super) fn serve(&mut self, m: &mut Resume, req: Request) {
        let step = self.next_step();
        self.append(step.append);
        let id = req.id;
        m.handle_sent(self.now, id);
        let query = req.url.split_once('?').map(|(_, q)| q).unwrap_or("");
        let offset = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("offset="))
            .unwrap_or("-1");
        let from = self.position(offset);
        assert!(
            from <= self.visible,
            "reader asked for {from} beyond {}",
            self.visible
        );
        match step.fault {
            Fault::FailBeforeHead => {
                m.handle_failure(self.now, id, TransportError::Connect("refused".into()));
                return;
            }
            Fault::Unavailable { retry_after } => {
                let mut h = ResponseHead::new(if retry_after { 503 } else { 429 });
                if retry_after {
                    h = h.with_header("Retry-After", "1");
                }
                m.handle_response(self.now, id, h);
                m.handle_end(self.now, id);
                return;
            }
            Fault::Hang => {
                let deadline = m
                    .poll_timeout()
                    .expect("an in-flight request has a deadline");
                self.now = deadline;
                m.handle_timeout(self.now);
                return;
            }
            Fault::TailMovedOn if offset != "-1" && offset != "now" && from < self.visible => {
                let tail = self.visible;
                if req.live == LiveParam::Sse {
                    m.handle_response(
                        self.now,
                        id,
                        ResponseHead::new(200).with_header("Content-Type", "text/event-stream"),
                    );
                    let control = format!(
                        "event: control\ndata: {{\"streamNextOffset\":\"{}\",\"upToDate\":true}}\n\n",
                        offset_after(tail)
                    );
                    self.feed(m, id, control.as_bytes(), &step);
                } else {
                    let h = self.head(204, tail, "application/json");
                    m.handle_response(self.now, id, h);
                    m.handle_end(self.now, id);
                }
                self.last_id = Some(id);
                return;
            }
            _ => {}
        }
        match req.live {
            LiveParam::CatchUp | LiveParam::LongPoll => {
                self.serve_read(m, id, req.live, from, &step)
            }
            LiveParam::Sse => self.serve_sse(m, id, from, &step),
        }
        if let (Fault::Ghost, Some(old)) = (&step.fault, self.last_id) {
            // A reply to an abandoned request must change nothing.
            m.handle_response(
                self.now,
                old,
                ResponseHead::new(200).with_header("Stream-Next-Offset", offset_after(0)),
            );
            m.handle_body(self.now, old, b"[\"ghost\"]");
            m.handle_end(self.now, old);
            m.handle_failure(self.now, old, TransportError::TimedOut);
        }
        self.last_id = Some(id);
    }

    fn serve_read(&mut self, m: &mut Resume, id: ReqId, kind: LiveParam, from: usize, step: &Step) {
        if kind == LiveParam::LongPoll && from == self.visible {
            // Nothing new within the poll: 204 after the server's time-out.
            self.now = self.now + Duration::from_millis(500);
            let h = self.head(204, from, "application/json");
            m.handle_response(self.now, id, h);
            m.handle_end(self.now, id);
            return;
        }
        let to = (from + step.page.max(1)).min(self.visible);
        let h = self.head(200, to, "application/json");
        m.handle_response(self.now, id, h);
        let body = self.json(from, to);
        if self.feed(m, id, body.as_bytes(), step) {
            m.handle_end(self.now, id);
        }
    }

    fn serve_sse(&mut self, m: &mut Resume, id: ReqId, from: usize, step: &Step) {
        m.handle_response(
            self.now,
            id,
            ResponseHead::new(200).with_header("Content-Type", "text/event-stream"),
        );
        let mut text = String::new();
        if let (Fault::StaleReplay, true) = (&step.fault, from > 0) {
            let start = from.saturating_sub(step.page.max(1));
            text += &format!("event: data\ndata: {}\n\n", self.json(start, from));
            text += &format!(
                "event: control\ndata: {{\"streamNextOffset\":\"{}\"}}\n\n",
                offset_after(from)
            );
        }
        let mut pos = from;
        loop {
            let to = (pos + step.page.max(1)).min(self.visible);
            if to > pos {
                text += &format!("event: data\ndata: {}\n\n", self.json(pos, to));
            }
            let up_to_date = to == self.visible;
            let closed = up_to_date && self.closed;
            self.cursor += 1;
            text += &format!(
                "event: control\r\ndata: {{\"streamNextOffset\":\"{}\",\"streamCursor\":\"{}\"{}{}}}\r\n\r\n",
                offset_after(to),
                self.cursor,
                if up_to_date { ",\"upToDate\":true" } else { "" },
                if closed { ",\"streamClosed\":true" } else { "" },
            );
            pos = to;
            if up_to_date {
                break;
            }
        }
        if self.feed(m, id, text.as_bytes(), step) {
            // The server ends the connection (its periodic close, or after closure).
            m.handle_end(self.now, id);
        }
    }
}

/// Runs the machine against the simulated server until it finishes. Returns every
/// delivered message, the final output (`None`: it finished without one, as a
/// catch-up-only read does at the tail) and the offset it ended at.
pub(super) fn run(
    sim: &mut Sim,
    live: LiveMode,
    from: Offset,
    seed: u64,
) -> (Vec<String>, Option<Output>, Offset) {
    let mut cfg = Config::new("http://sim/v1/stream/s")
        .live(live)
        .jitter_seed(seed);
    cfg.sse_fallback_after = 1_000;
    let mut m = Resume::new(cfg, from);
    let mut delivered = Vec::new();
    let mut last_next: Option<Offset> = None;
    for _ in 0..100_000 {
        while let Some(out) = m.poll_output() {
            match out {
                Output::Batch(b) => {
                    if let Some(prev) = &last_next {
                        assert!(
                            prev < &b.next_offset,
                            "offsets must increase: {prev:?} then {:?}",
                            b.next_offset
                        );
                    }
                    last_next = Some(b.next_offset.clone());
                    let Payload::Json(msgs) = b.payload else {
                        panic!("JSON stream gave bytes")
                    };
                    delivered.extend(msgs.iter().map(|v| v.get().to_owned()));
                }
                Output::UpToDate { .. } => {}
                Output::Reconnecting { offset, .. } => {
                    assert_eq!(&offset, m.offset(), "the retry resumes where delivery is");
                    assert!(m.poll_timeout().is_some(), "a retry waits out its back-off");
                }
                terminal => {
                    assert!(m.is_finished());
                    assert!(m.poll_request().is_none());
                    return (delivered, Some(terminal), m.offset().clone());
                }
            }
        }
        if m.is_finished() {
            return (delivered, None, m.offset().clone());
        }
        if let Some(req) = m.poll_request() {
            sim.serve(&mut m, req);
        } else if let Some(t) = m.poll_timeout() {
            sim.now = sim.now.max(t);
            m.handle_timeout(sim.now);
        } else {
            panic!("machine waits for nothing");
        }
    }
    panic!(
        "machine did not finish in 100000 steps; delivered {}",
        delivered.len()
    );
}
