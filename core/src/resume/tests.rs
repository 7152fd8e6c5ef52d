//! Tests of the resume machine: hand-written scenarios and property tests against the
//! simulated server in `sim.rs`.

use std::time::Duration;

use proptest::prelude::*;

use super::sim::{offset_after, run, Fault, Sim, Step};
use super::*;
use crate::wire::ResponseHead;

fn head(status: u16, next: &str) -> ResponseHead {
    ResponseHead::new(status)
        .with_header("Content-Type", "application/json")
        .with_header("Stream-Next-Offset", next)
}

/// Drives one catch-up request to completion with the given head and body.
fn answer(m: &mut Resume, now: Time, head: ResponseHead, body: &[u8]) -> ReqId {
    let req = m.poll_request().expect("a request");
    respond(m, now, req.id, head, body);
    req.id
}

/// Answers request `id` at `now` with `head` and `body`, whole.
fn respond(m: &mut Resume, now: Time, id: ReqId, head: ResponseHead, body: &[u8]) {
    m.handle_response(now, id, head);
    m.handle_body(now, id, body);
    m.handle_end(now, id);
}

/// The head of an SSE answer.
fn event_stream() -> ResponseHead {
    ResponseHead::new(200).with_header("content-type", "text/event-stream")
}

/// Answers the machine's catch-up read with nothing more and "up to date" at `tail`
/// (its outputs dropped), and returns the live read it asks for next.
fn caught_up_at(m: &mut Resume, tail: &str) -> Request {
    answer(
        m,
        Time::ZERO,
        head(200, tail).with_header("Stream-Up-To-Date", "true"),
        b"[]",
    );
    let _ = outputs(m);
    m.poll_request().expect("a live read")
}

fn outputs(m: &mut Resume) -> Vec<Output> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

#[test]
fn catch_up_then_sse_with_sorted_query_and_cursor() {
    let mut m = Resume::new(Config::new("http://h/s"), Offset::START);
    let req = m.poll_request().unwrap();
    assert_eq!(req.url, "http://h/s?offset=-1");
    assert_eq!(req.live, LiveParam::CatchUp);
    m.handle_response(
        Time::ZERO,
        req.id,
        head(200, "2")
            .with_header("Stream-Up-To-Date", "true")
            .with_header("Stream-Cursor", "c1"),
    );
    m.handle_body(Time::ZERO, req.id, b"[1,2]");
    m.handle_end(Time::ZERO, req.id);
    let req = m.poll_request().unwrap();
    assert_eq!(req.url, "http://h/s?cursor=c1&live=sse&offset=2");
    assert_eq!(
        req.headers,
        vec![("Accept", "text/event-stream".to_owned())]
    );
    assert!(m.poll_request().is_none(), "one request at a time");
}

#[test]
fn sse_data_waits_for_its_control_event() {
    let mut m = Resume::new(Config::new("http://h/s"), Offset::parse("5").unwrap());
    answer(
        &mut m,
        Time::ZERO,
        head(200, "5").with_header("Stream-Up-To-Date", "true"),
        b"[]",
    );
    assert_eq!(
        outputs(&mut m),
        vec![Output::UpToDate {
            offset: Offset::parse("5").unwrap()
        }]
    );
    let req = m.poll_request().unwrap();
    m.handle_response(
        Time::ZERO,
        req.id,
        ResponseHead::new(200).with_header("content-type", "text/event-stream"),
    );
    m.handle_body(Time::ZERO, req.id, b"event: data\ndata: [\"a\"]\n\n");
    assert!(
        m.poll_output().is_none(),
        "data without its control event is held back"
    );
    m.handle_failure(Time::ZERO, req.id, TransportError::Io("reset".into()));
    assert!(
        matches!(
            outputs(&mut m)[..],
            [Output::Reconnecting { ref offset, cause: RetryCause::Transport(_), .. }]
                if offset.as_str() == "5"
        ),
        "unconfirmed data is dropped, to be read again from where delivery is"
    );
    assert_eq!(m.offset().as_str(), "5");
}

#[test]
fn not_found_and_rejections_are_fatal_with_reason() {
    let mut m = Resume::new(Config::new("http://h/s"), Offset::START);
    answer(&mut m, Time::ZERO, ResponseHead::new(404), b"");
    assert_eq!(outputs(&mut m), vec![Output::Failed(StreamError::NotFound)]);
    assert!(m.is_finished() && m.poll_request().is_none());

    let mut m = Resume::new(Config::new("http://h/s"), Offset::START);
    answer(
        &mut m,
        Time::ZERO,
        ResponseHead::new(401),
        b"  missing token ",
    );
    assert_eq!(
        outputs(&mut m),
        vec![Output::Failed(StreamError::Rejected {
            status: 401,
            message: "missing token".into()
        })]
    );
}

#[test]
fn gone_is_continuity_lost() {
    let from = Offset::parse("0000000003").unwrap();
    let mut m = Resume::new(Config::new("http://h/s"), from.clone());
    answer(&mut m, Time::ZERO, ResponseHead::new(410), b"");
    assert_eq!(
        outputs(&mut m),
        vec![Output::ContinuityLost {
            offset: from,
            status: Some(410)
        }]
    );
    assert!(m.is_finished());
}

#[test]
fn an_answer_that_ends_before_the_read_began_is_continuity_lost() {
    let from = Offset::parse("0000000005").unwrap();
    // A catch-up page, a long-poll's 204 and an SSE control event alike.
    for live in [LiveMode::Off, LiveMode::LongPoll, LiveMode::Sse] {
        let mut cfg = Config::new("http://h/s");
        cfg.live = live;
        let mut m = Resume::new(cfg, from.clone());
        if live == LiveMode::Off {
            answer(&mut m, Time::ZERO, head(200, "0000000003"), b"[1,2,3]");
        } else {
            let req = caught_up_at(&mut m, "0000000005");
            if live == LiveMode::LongPoll {
                respond(&mut m, Time::ZERO, req.id, head(204, "0000000002"), b"");
            } else {
                respond(
                    &mut m,
                    Time::ZERO,
                    req.id,
                    event_stream(),
                    b"event: data\ndata: [\"new\"]\n\nevent: control\ndata: {\"streamNextOffset\":\"0000000001\"}\n\n",
                );
            }
        }
        assert_eq!(
            outputs(&mut m),
            vec![Output::ContinuityLost {
                offset: from.clone(),
                status: None
            }],
            "{live:?}"
        );
        assert!(m.is_finished() && m.poll_request().is_none(), "{live:?}");
    }
}

#[test]
fn an_answer_that_ends_where_the_read_began_is_a_replay_not_a_loss() {
    let from = Offset::parse("0000000005").unwrap();
    let mut m = Resume::new(Config::new("http://h/s"), from.clone());
    answer(
        &mut m,
        Time::ZERO,
        head(200, "0000000005").with_header("Stream-Up-To-Date", "true"),
        b"[\"again\"]",
    );
    assert_eq!(outputs(&mut m), vec![Output::UpToDate { offset: from }]);
    assert!(!m.is_finished());
}

#[test]
fn missing_next_offset_is_a_protocol_error() {
    let mut m = Resume::new(Config::new("http://h/s"), Offset::START);
    answer(&mut m, Time::ZERO, ResponseHead::new(200), b"[]");
    assert!(matches!(
        outputs(&mut m)[..],
        [Output::Failed(StreamError::Protocol(
            WireError::MissingHeader(_)
        ))]
    ));
}

#[test]
fn retry_after_is_honoured() {
    let mut m = Resume::new(Config::new("http://h/s"), Offset::START);
    answer(
        &mut m,
        Time::ZERO,
        ResponseHead::new(429).with_header("Retry-After", "7"),
        b"",
    );
    assert!(m.poll_request().is_none());
    let until = m.poll_timeout().unwrap();
    assert!(until >= Time::from_millis(7_000), "{until:?}");
    m.handle_timeout(Time::from_millis(6_999));
    assert!(m.poll_request().is_none(), "not before Retry-After");
    m.handle_timeout(until);
    let req = m.poll_request().unwrap();
    assert_eq!(req.live, LiveParam::CatchUp);
    assert_eq!(m.stats().retries, 1);
}

#[test]
fn idle_request_times_out_and_is_retried() {
    let mut cfg = Config::new("http://h/s");
    cfg.catch_up_idle_timeout = Duration::from_secs(2);
    let mut m = Resume::new(cfg, Offset::START);
    let req = m.poll_request().unwrap();
    m.handle_sent(Time::ZERO, req.id);
    assert_eq!(m.poll_timeout(), Some(Time::from_millis(2_000)));
    m.handle_timeout(Time::from_millis(2_000));
    assert!(m.poll_timeout().is_some(), "backing off");
    let Some(Output::Reconnecting { cause, offset }) = m.poll_output() else {
        panic!("the retry is told");
    };
    assert_eq!(cause, RetryCause::Transport(TransportError::TimedOut));
    assert_eq!(offset, Offset::START);
    m.handle_timeout(Time::from_millis(10_000));
    let again = m.poll_request().unwrap();
    assert_ne!(again.id, req.id);
    // The abandoned request's late answer is ignored.
    m.handle_response(Time::from_millis(10_000), req.id, head(200, "9"));
    m.handle_end(Time::from_millis(10_000), req.id);
    assert!(m.poll_output().is_none());
}

/// A machine at the tail of a stream at offset 1, with its live request `live` sent
/// at `at`.
fn at_tail(live: LiveMode, at: Time) -> (Resume, Request) {
    let mut m = Resume::new(Config::new("http://h/s").live(live), Offset::START);
    answer(
        &mut m,
        Time::ZERO,
        head(200, "1").with_header("Stream-Up-To-Date", "true"),
        b"[1]",
    );
    outputs(&mut m);
    let req = m.poll_request().unwrap();
    m.handle_sent(at, req.id);
    (m, req)
}

/// Checks that the request sent at `sent` is asked again no sooner than the quiet-round
/// floor after it (`quiet`: with nothing to tell meanwhile), and returns it.
fn asked_again_after_the_floor(m: &mut Resume, sent: Time, quiet: bool) -> Request {
    assert!(m.poll_request().is_none(), "no request in a loop");
    assert_eq!(m.poll_timeout(), Some(sent + QUIET_ROUND_FLOOR));
    if quiet {
        assert!(outputs(m).is_empty(), "nothing to tell");
    }
    m.handle_timeout(sent + QUIET_ROUND_FLOOR);
    m.poll_request().expect("asked again, after the floor")
}

#[test]
fn a_long_poll_answered_at_once_with_nothing_is_not_repeated_at_once() {
    let start = Time::from_millis(5_000);
    let (mut m, req) = at_tail(LiveMode::LongPoll, start);
    let quick = start + Duration::from_millis(20);
    respond(
        &mut m,
        quick,
        req.id,
        head(204, "1").with_header("Stream-Up-To-Date", "true"),
        b"",
    );
    let next = asked_again_after_the_floor(&mut m, start, true);
    assert_eq!(next.live, LiveParam::LongPoll);

    // Held to the server's time-out, the poll is repeated at once.
    let sent = start + QUIET_ROUND_FLOOR;
    let held = sent + Duration::from_secs(30);
    m.handle_sent(sent, next.id);
    respond(
        &mut m,
        held,
        next.id,
        head(204, "1").with_header("Stream-Up-To-Date", "true"),
        b"",
    );
    assert!(
        m.poll_request().is_some(),
        "a held poll is repeated at once"
    );
}

#[test]
fn a_catch_up_read_that_moves_nothing_and_is_not_up_to_date_is_not_repeated_at_once() {
    let mut m = Resume::new(Config::new("http://h/s").live(LiveMode::Off), Offset::START);
    let req = m.poll_request().unwrap();
    m.handle_sent(Time::ZERO, req.id);
    respond(&mut m, Time::ZERO, req.id, head(200, "1"), b"[1]");
    assert_eq!(outputs(&mut m).len(), 1, "the batch");
    // Asked again at once: the read moved on.
    let start = Time::from_millis(2_000);
    let req = m.poll_request().expect("more to read, at once");
    m.handle_sent(start, req.id);
    let quick = start + Duration::from_millis(3);
    respond(&mut m, quick, req.id, head(200, "1"), b"[]");
    let req = asked_again_after_the_floor(&mut m, start, true);
    assert_eq!(req.live, LiveParam::CatchUp);
    assert!(req.url.ends_with("offset=1"), "{}", req.url);
}

#[test]
fn a_catch_up_read_that_finds_the_tail_goes_live_at_once_though_it_moved_nothing() {
    let from = Offset::parse("1").expect("an offset");
    let mut m = Resume::new(Config::new("http://h/s").live(LiveMode::Sse), from);
    let req = m.poll_request().unwrap();
    assert_eq!(req.live, LiveParam::CatchUp);
    m.handle_sent(Time::ZERO, req.id);
    let up_to_date = head(200, "1").with_header("Stream-Up-To-Date", "true");
    respond(&mut m, Time::from_millis(2), req.id, up_to_date, b"[]");
    let req = m.poll_request().expect("live at once");
    assert_eq!(req.live, LiveParam::Sse);
}

#[test]
fn a_204_to_sse_backs_off_and_counts_towards_the_fallback() {
    let (mut m, req) = at_tail(LiveMode::Sse, Time::ZERO);
    assert_eq!(req.live, LiveParam::Sse);
    m.handle_response(Time::ZERO, req.id, head(204, "1"));
    m.handle_end(Time::ZERO, req.id);
    assert!(m.poll_request().is_none(), "no request in a loop");
    assert!(matches!(
        outputs(&mut m)[..],
        [Output::Reconnecting {
            cause: RetryCause::Empty,
            ..
        }]
    ));
    let mut now = Time::ZERO;
    for _ in 1..Config::new("x").sse_fallback_after {
        now = m.poll_timeout().expect("backing off");
        m.handle_timeout(now);
        let req = m.poll_request().expect("SSE again");
        assert_eq!(req.live, LiveParam::Sse);
        respond(&mut m, now, req.id, head(204, "1"), b"");
    }
    let req = m.poll_request().expect("the fallback asks at once");
    assert_eq!(req.live, LiveParam::LongPoll, "fell back at {now:?}");
}

#[test]
fn sse_a_gateway_answers_with_502_or_504_for_half_a_minute_falls_back_to_long_poll() {
    for status in [502, 504] {
        let (mut m, mut req) = at_tail(LiveMode::Sse, Time::ZERO);
        let mut now = Time::ZERO;
        // A short outage is waited out on SSE, however many answers it takes...
        while now.saturating_since(Time::ZERO) < GATEWAY_PATIENCE {
            assert_eq!(req.live, LiveParam::Sse, "{status} at {now:?}");
            m.handle_response(now, req.id, head(status, "1"));
            now = m.poll_timeout().expect("backing off");
            m.handle_timeout(now);
            req = m.poll_request().expect("asked again");
        }
        // ...then long polls take over.
        m.handle_response(now, req.id, head(status, "1"));
        let req = m.poll_request().expect("the fallback asks at once");
        assert_eq!(
            req.live,
            LiveParam::LongPoll,
            "{status}: fell back at {now:?}"
        );
    }
    // Only 502s and 504s in a row: anything between them starts the count again.
    let (mut m, mut req) = at_tail(LiveMode::Sse, Time::ZERO);
    let mut now = Time::ZERO;
    m.handle_response(now, req.id, head(502, "1"));
    while now.saturating_since(Time::ZERO) < GATEWAY_PATIENCE + Duration::from_secs(5) {
        now = m.poll_timeout().expect("backing off");
        m.handle_timeout(now);
        req = m.poll_request().expect("asked again");
        assert_eq!(req.live, LiveParam::Sse);
        m.handle_sent(now, req.id);
        m.handle_failure(now, req.id, TransportError::Io("connection refused".into()));
    }
    now = m.poll_timeout().expect("backing off");
    m.handle_timeout(now);
    req = m.poll_request().expect("asked again");
    m.handle_response(now, req.id, head(502, "1"));
    now = m.poll_timeout().expect("backing off");
    m.handle_timeout(now);
    let req = m.poll_request().expect("asked again");
    assert_eq!(
        req.live,
        LiveParam::Sse,
        "one 502 after the outage is not a run of them"
    );
    // A gateway's Retry-After is kept.
    let (mut m, req) = at_tail(LiveMode::Sse, Time::ZERO);
    m.handle_response(
        Time::ZERO,
        req.id,
        head(502, "1").with_header("Retry-After", "3"),
    );
    let until = m.poll_timeout().expect("backing off");
    assert!(until.saturating_since(Time::ZERO) >= Duration::from_secs(3));
    // A 503 (busy) is waited out on SSE.
    let (mut m, mut req) = at_tail(LiveMode::Sse, Time::ZERO);
    let mut now = Time::ZERO;
    while now.saturating_since(Time::ZERO) < 2 * GATEWAY_PATIENCE {
        m.handle_response(now, req.id, head(503, "1"));
        now = m.poll_timeout().expect("backing off");
        m.handle_timeout(now);
        req = m.poll_request().expect("asked again");
        assert_eq!(req.live, LiveParam::Sse);
    }
}

#[test]
fn an_sse_connection_that_only_says_up_to_date_and_ends_is_not_reopened_in_a_loop() {
    let start = Time::from_millis(3_000);
    let (mut m, req) = at_tail(LiveMode::Sse, start);
    let up_to_date = "event: control\ndata: {\"streamNextOffset\":\"1\",\"upToDate\":true}\n\n";
    let quick = start + Duration::from_millis(5);
    respond(&mut m, quick, req.id, event_stream(), up_to_date.as_bytes());
    let req = asked_again_after_the_floor(&mut m, start, false);
    assert_eq!(req.live, LiveParam::Sse);
    // One that delivers data is reopened at once.
    let at = start + QUIET_ROUND_FLOOR;
    m.handle_sent(at, req.id);
    let data = "event: data\ndata: [2]\n\nevent: control\ndata: {\"streamNextOffset\":\"2\",\"upToDate\":true}\n\n";
    respond(&mut m, at, req.id, event_stream(), data.as_bytes());
    assert!(
        m.poll_request().is_some(),
        "a connection that moved is reopened at once"
    );
}

#[test]
fn an_sse_connection_that_says_up_to_date_and_breaks_is_reopened_ever_more_slowly() {
    let (mut m, mut req) = at_tail(LiveMode::Sse, Time::ZERO);
    let up_to_date = "event: control\ndata: {\"streamNextOffset\":\"1\",\"upToDate\":true}\n\n";
    let mut now = Time::ZERO;
    let mut waited = Duration::ZERO;
    for _ in 0..20 {
        m.handle_response(now, req.id, event_stream());
        m.handle_body(now, req.id, up_to_date.as_bytes());
        m.handle_failure(now, req.id, TransportError::Io("reset".into()));
        let until = m.poll_timeout().expect("backing off");
        waited += until.saturating_since(now);
        now = until;
        m.handle_timeout(now);
        req = m.poll_request().expect("SSE again");
        assert_eq!(req.live, LiveParam::Sse, "SSE works here: no fallback");
        m.handle_sent(now, req.id);
    }
    // Twenty first retries would wait 0-100 ms each; a growing back-off, far more.
    assert!(waited > Duration::from_secs(5), "waited {waited:?} in all");

    // Data that moves the reader on ends the back-off.
    let data = "event: data\ndata: [2]\n\nevent: control\ndata: {\"streamNextOffset\":\"2\"}\n\n";
    m.handle_response(now, req.id, event_stream());
    m.handle_body(now, req.id, data.as_bytes());
    m.handle_failure(now, req.id, TransportError::Io("reset".into()));
    let until = m.poll_timeout().expect("backing off");
    assert!(until.saturating_since(now) <= Duration::from_millis(100));
}

#[test]
fn sse_held_back_by_a_proxy_falls_back_to_long_poll_within_a_minute() {
    let (mut m, mut req) = at_tail(LiveMode::Sse, Time::ZERO);
    let mut now = Time::ZERO;
    // The head comes through, the events never do.
    while req.live == LiveParam::Sse {
        m.handle_response(now, req.id, event_stream());
        now = m.poll_timeout().expect("an idle deadline");
        assert!(
            now.saturating_since(Time::ZERO) < Duration::from_secs(60),
            "{now:?}"
        );
        m.handle_timeout(now);
        if let Some(until) = m.poll_timeout() {
            now = until;
            m.handle_timeout(now);
        }
        req = m.poll_request().expect("asked again");
        m.handle_sent(now, req.id);
    }
    assert_eq!(req.live, LiveParam::LongPoll, "fell back at {now:?}");
    assert!(m.stats().fell_back_to_long_poll);

    // A connection that delivered its first event waits the live idle time-out.
    let (mut m, req) = at_tail(LiveMode::Sse, Time::ZERO);
    let first = "event: control\ndata: {\"streamNextOffset\":\"1\",\"upToDate\":true}\n\n";
    m.handle_response(Time::ZERO, req.id, event_stream());
    m.handle_body(Time::ZERO, req.id, first.as_bytes());
    assert_eq!(
        m.poll_timeout(),
        Some(Time::ZERO + Config::new("x").live_idle_timeout)
    );
}

#[test]
fn sse_whose_answers_never_begin_falls_back_to_long_poll_too() {
    let (mut m, mut req) = at_tail(LiveMode::Sse, Time::ZERO);
    // No head ever comes (a proxy holding it until the upstream ends): each try
    // times out, and counts as one that delivered nothing.
    let mut tries = 0;
    while req.live == LiveParam::Sse {
        tries += 1;
        assert!(
            tries <= Config::new("x").sse_fallback_after,
            "still SSE after {tries} tries"
        );
        let mut now = m.poll_timeout().expect("an idle deadline");
        m.handle_timeout(now);
        if let Some(until) = m.poll_timeout() {
            now = until;
            m.handle_timeout(now);
        }
        req = m.poll_request().expect("asked again");
        m.handle_sent(now, req.id);
    }
    assert_eq!(req.live, LiveParam::LongPoll);

    // A connection that could not be made says nothing of SSE: it is tried again.
    let (mut m, req) = at_tail(LiveMode::Sse, Time::ZERO);
    let mut req = req;
    for _ in 0..10 {
        m.handle_failure(
            Time::ZERO,
            req.id,
            TransportError::Connect("refused".into()),
        );
        let until = m.poll_timeout().expect("a back-off");
        m.handle_timeout(until);
        req = m.poll_request().expect("asked again");
        assert_eq!(req.live, LiveParam::Sse);
    }
}

#[test]
fn an_answer_with_no_data_that_ends_past_the_reader_moves_it_nowhere() {
    // A long-poll that timed out as an append landed: its 204 names the new tail.
    let start = Time::from_millis(5_000);
    let (mut m, req) = at_tail(LiveMode::LongPoll, start);
    respond(
        &mut m,
        start + Duration::from_secs(30),
        req.id,
        head(204, "3").with_header("Stream-Up-To-Date", "true"),
        b"",
    );
    assert_eq!(m.offset().as_str(), "1", "not moved past data never read");
    assert!(outputs(&mut m).is_empty());
    let again = m.poll_request().expect("read again");
    assert!(again.url.contains("offset=1"), "{}", again.url);
    m.handle_sent(start + Duration::from_secs(30), again.id);
    respond(
        &mut m,
        start + Duration::from_secs(30),
        again.id,
        head(200, "3"),
        b"[2,3]",
    );
    assert!(matches!(&outputs(&mut m)[..], [Output::Batch(b)] if b.next_offset.as_str() == "3"));

    // Over SSE, a control event with no data before it: the connection stands past
    // data it did not send, and a new one reads from the reader's offset.
    let (mut m, req) = at_tail(LiveMode::Sse, start);
    m.handle_response(start, req.id, event_stream());
    let ahead = "event: control\ndata: {\"streamNextOffset\":\"3\",\"upToDate\":true}\n\n";
    m.handle_body(start, req.id, ahead.as_bytes());
    assert_eq!(m.offset().as_str(), "1");
    let again = asked_again_after_the_floor(&mut m, start, true);
    assert_eq!(again.live, LiveParam::Sse);
    assert!(again.url.contains("offset=1"), "{}", again.url);
    // Whatever the old connection still sends is not taken.
    m.handle_body(
        start,
        req.id,
        b"event: data\ndata: [4]\n\nevent: control\ndata: {\"streamNextOffset\":\"4\"}\n\n",
    );
    assert_eq!(m.offset().as_str(), "1");

    // From the start or from `now`, an empty answer names where the reader is.
    let mut m = Resume::new(
        Config::new("http://h/s").live(LiveMode::LongPoll),
        Offset::NOW,
    );
    answer(
        &mut m,
        Time::ZERO,
        head(204, "7").with_header("Stream-Up-To-Date", "true"),
        b"",
    );
    assert_eq!(m.offset().as_str(), "7");
    let mut m = Resume::new(Config::new("http://h/s").live(LiveMode::Off), Offset::START);
    answer(
        &mut m,
        Time::ZERO,
        head(200, "0_0").with_header("Stream-Up-To-Date", "true"),
        b"[]",
    );
    assert_eq!(m.offset().as_str(), "0_0");
}

#[test]
fn up_to_date_is_told_again_once_a_retry_has_caught_up() {
    let (mut m, req) = at_tail(LiveMode::LongPoll, Time::ZERO);
    m.handle_failure(Time::ZERO, req.id, TransportError::Io("reset".into()));
    assert!(matches!(outputs(&mut m)[..], [Output::Reconnecting { .. }]));
    let until = m.poll_timeout().expect("backing off");
    m.handle_timeout(until);
    let req = m.poll_request().expect("again");
    m.handle_sent(until, req.id);
    let later = until + Duration::from_secs(30);
    respond(
        &mut m,
        later,
        req.id,
        head(204, "1").with_header("Stream-Up-To-Date", "true"),
        b"",
    );
    assert_eq!(
        outputs(&mut m),
        vec![Output::UpToDate {
            offset: Offset::parse("1").unwrap()
        }],
        "a reader shown as reconnecting learns it is live again"
    );
}

#[test]
fn retryable_statuses_are_told_with_their_status() {
    let mut m = Resume::new(Config::new("http://h/s"), Offset::START);
    let req = m.poll_request().unwrap();
    m.handle_response(Time::ZERO, req.id, ResponseHead::new(503));
    let out = outputs(&mut m);
    assert!(
        matches!(out[..], [Output::Reconnecting { cause: RetryCause::Status(503), ref offset, .. }] if *offset == Offset::START),
        "{out:?}"
    );
    assert_eq!(
        RetryCause::Status(503).to_string(),
        "the server answered 503"
    );
}

#[test]
fn sse_refused_falls_back_to_long_poll() {
    let mut m = Resume::new(Config::new("http://h/s"), Offset::START);
    answer(
        &mut m,
        Time::ZERO,
        head(200, "1").with_header("Stream-Up-To-Date", "true"),
        b"[1]",
    );
    let req = m.poll_request().unwrap();
    assert_eq!(req.live, LiveParam::Sse);
    m.handle_response(Time::ZERO, req.id, ResponseHead::new(501));
    let req = m.poll_request().unwrap();
    assert_eq!(req.live, LiveParam::LongPoll);
    assert!(req.url.contains("live=long-poll"));
    assert_eq!(m.live_mode(), LiveMode::LongPoll);
    assert!(m.stats().fell_back_to_long_poll);
}

#[test]
fn sse_that_never_delivers_falls_back_after_the_configured_count() {
    let mut cfg = Config::new("http://h/s");
    cfg.sse_fallback_after = 2;
    let mut m = Resume::new(cfg, Offset::START);
    answer(
        &mut m,
        Time::ZERO,
        head(200, "1").with_header("Stream-Up-To-Date", "true"),
        b"[1]",
    );
    let mut now = Time::ZERO;
    for _ in 0..2 {
        let req = loop {
            if let Some(r) = m.poll_request() {
                break r;
            }
            now = m.poll_timeout().unwrap();
            m.handle_timeout(now);
        };
        assert_eq!(req.live, LiveParam::Sse);
        m.handle_response(
            now,
            req.id,
            ResponseHead::new(200).with_header("content-type", "text/event-stream"),
        );
        m.handle_body(now, req.id, b": buffered by a proxy\n\n");
        m.handle_end(now, req.id);
    }
    assert_eq!(m.poll_request().unwrap().live, LiveParam::LongPoll);
}

#[test]
fn base64_sse_for_binary_streams() {
    // Said by the header, and without it (a cross-origin page does not see a
    // header the server does not expose) by the stream's content type.
    for said in [true, false] {
        base64_sse_for_a_binary_stream(said);
    }
}

fn base64_sse_for_a_binary_stream(said: bool) {
    let mut m = Resume::new(Config::new("http://h/s"), Offset::START);
    answer(
        &mut m,
        Time::ZERO,
        ResponseHead::new(200)
            .with_header("Content-Type", "application/octet-stream")
            .with_header("Stream-Next-Offset", "2")
            .with_header("Stream-Up-To-Date", "true"),
        b"\x00\x01",
    );
    let req = m.poll_request().unwrap();
    let mut head = ResponseHead::new(200).with_header("content-type", "text/event-stream");
    if said {
        head = head.with_header("stream-sse-data-encoding", "base64");
    }
    m.handle_response(Time::ZERO, req.id, head);
    m.handle_body(Time::ZERO, req.id, b"event: data\ndata: /w\ndata: ==\n\nevent: control\ndata: {\"streamNextOffset\":\"3\",\"upToDate\":true,\"streamClosed\":true}\n\n");
    let out = outputs(&mut m);
    assert_eq!(
        out[0],
        Output::Batch(Batch {
            payload: Payload::Bytes(vec![0, 1]),
            next_offset: Offset::parse("2").unwrap(),
            up_to_date: true
        })
    );
    assert_eq!(
        out[2],
        Output::Batch(Batch {
            payload: Payload::Bytes(vec![0xff]),
            next_offset: Offset::parse("3").unwrap(),
            up_to_date: true
        })
    );
    assert_eq!(
        out[3],
        Output::Closed {
            offset: Offset::parse("3").unwrap()
        }
    );
    assert!(m.is_finished());
}

#[test]
fn start_at_now_takes_the_first_offset_the_server_names() {
    let mut m = Resume::new(
        Config::new("http://h/s").live(LiveMode::LongPoll),
        Offset::NOW,
    );
    let req = m.poll_request().unwrap();
    assert!(req.url.ends_with("offset=now"));
    m.handle_response(
        Time::ZERO,
        req.id,
        head(200, "0000000042").with_header("Stream-Up-To-Date", "true"),
    );
    m.handle_end(Time::ZERO, req.id);
    assert_eq!(m.offset().as_str(), "0000000042");
    assert!(m.poll_request().unwrap().url.contains("offset=0000000042"));
}

#[test]
fn oversize_body_is_refused() {
    let mut cfg = Config::new("http://h/s");
    cfg.max_body_bytes = 8;
    let mut m = Resume::new(cfg, Offset::START);
    answer(&mut m, Time::ZERO, head(200, "9"), b"[1,2,3,4,5]");
    assert_eq!(
        outputs(&mut m),
        vec![Output::Failed(StreamError::BodyTooLarge { limit: 8 })]
    );
}

#[test]
fn sse_data_awaiting_its_control_event_is_held_to_the_body_limit() {
    let mut cfg = Config::new("http://h/s");
    // Two events of 7 bytes fit (each counted 64 bytes more), three do not.
    cfg.max_body_bytes = 200;
    let mut m = Resume::new(cfg, Offset::parse("5").unwrap());
    let req = caught_up_at(&mut m, "5");
    m.handle_response(Time::ZERO, req.id, event_stream());
    // Confirmed data does not count towards the next batch's limit.
    for _ in 0..3 {
        m.handle_body(
            Time::ZERO,
            req.id,
            b"event: data\ndata: [1,2,3]\n\nevent: data\ndata: [4,5,6]\n\nevent: control\ndata: {\"streamNextOffset\":\"6\"}\n\n",
        );
    }
    assert!(!m.is_finished());
    // Data without a control event, past the limit.
    for _ in 0..3 {
        m.handle_body(Time::ZERO, req.id, b"event: data\ndata: [7,8,9]\n\n");
    }
    assert_eq!(
        outputs(&mut m).last(),
        Some(&Output::Failed(StreamError::BodyTooLarge { limit: 200 }))
    );
    assert!(m.is_finished());
}

#[test]
fn empty_sse_events_without_a_control_event_are_held_to_the_body_limit_too() {
    let mut cfg = Config::new("http://h/s");
    cfg.max_body_bytes = 1000;
    let mut m = Resume::new(cfg, Offset::parse("5").unwrap());
    let req = caught_up_at(&mut m, "5");
    m.handle_response(Time::ZERO, req.id, event_stream());
    for _ in 0..20 {
        m.handle_body(Time::ZERO, req.id, b"event: data\ndata:\n\n");
    }
    assert_eq!(
        outputs(&mut m).last(),
        Some(&Output::Failed(StreamError::BodyTooLarge { limit: 1000 }))
    );
}

#[test]
fn one_sse_event_may_be_as_large_as_a_body() {
    // 20 MiB of data in one event: past the SSE decoder's default limit, within the
    // machine's body limit (64 MiB by default), as an append the server took whole.
    let mut m = Resume::new(Config::new("http://h/s"), Offset::parse("5").unwrap());
    let req = caught_up_at(&mut m, "5");
    m.handle_response(Time::ZERO, req.id, event_stream());
    let big = format!("[\"{}\"]", "x".repeat(20 << 20));
    let mut event = b"event: data\ndata: ".to_vec();
    event.extend_from_slice(big.as_bytes());
    event.extend_from_slice(b"\n\nevent: control\ndata: {\"streamNextOffset\":\"6\"}\n\n");
    m.handle_body(Time::ZERO, req.id, &event);
    assert!(!m.is_finished());
    let batches: Vec<_> = outputs(&mut m)
        .into_iter()
        .filter_map(|o| match o {
            Output::Batch(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].next_offset, Offset::parse("6").unwrap());
}

#[test]
fn simulated_session_with_every_fault_once() {
    let faults = [
        Fault::FailBeforeHead,
        Fault::FailMidBody { per_mille: 500 },
        Fault::Unavailable { retry_after: true },
        Fault::Hang,
        Fault::StaleReplay,
        Fault::Ghost,
        Fault::TailMovedOn,
        Fault::None,
    ];
    for live in [LiveMode::Sse, LiveMode::LongPoll] {
        let steps = faults
            .iter()
            .cycle()
            .take(40)
            .map(|f| Step {
                page: 2,
                chunk: 5,
                append: 1,
                fault: f.clone(),
            })
            .collect();
        let mut sim = Sim::new(30, 10, true, steps);
        let (got, last, _) = run(&mut sim, live, Offset::START, 1);
        assert_eq!(got, sim.messages, "{live:?}");
        assert_eq!(
            last,
            Some(Output::Closed {
                offset: Offset::parse(&offset_after(30)).unwrap()
            })
        );
    }
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        6 => Just(Fault::None),
        1 => Just(Fault::FailBeforeHead),
        2 => (0u16..1000).prop_map(|per_mille| Fault::FailMidBody { per_mille }),
        1 => any::<bool>().prop_map(|retry_after| Fault::Unavailable { retry_after }),
        1 => Just(Fault::Hang),
        2 => Just(Fault::StaleReplay),
        1 => Just(Fault::Ghost),
        2 => Just(Fault::TailMovedOn),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (1usize..6, 1usize..40, 0usize..4, fault()).prop_map(|(page, chunk, append, fault)| Step {
        page,
        chunk,
        append,
        fault,
    })
}

fn live_mode() -> impl Strategy<Value = LiveMode> {
    prop_oneof![Just(LiveMode::Sse), Just(LiveMode::LongPoll)]
}

proptest! {
    /// Any split into catch-up pages and live batches, any duplicated overlap, any
    /// disconnect point, any reconnect mode: every message exactly once, in order.
    #[test]
    fn every_message_exactly_once_in_order(
        total in 0usize..40,
        visible_frac in 0usize..=100,
        start_frac in 0usize..=100,
        live in live_mode(),
        steps in prop::collection::vec(step(), 0..60),
        seed in any::<u64>(),
    ) {
        let visible = total * visible_frac / 100;
        let start = visible * start_frac / 100;
        let from = if start == 0 { Offset::START } else { Offset::parse(&offset_after(start)).unwrap() };
        let mut sim = Sim::new(total, visible, true, steps);
        let (got, last, _) = run(&mut sim, live, from, seed);
        prop_assert_eq!(&got[..], &sim.messages[start..]);
        prop_assert_eq!(last, Some(Output::Closed { offset: Offset::parse(&offset_after(total)).unwrap() }));
    }

    /// Catch-up-only reading stops at the tail it saw, with nothing missing or repeated.
    #[test]
    fn catch_up_only_reads_history_exactly_once(
        total in 0usize..40,
        steps in prop::collection::vec(step(), 0..40),
        seed in any::<u64>(),
    ) {
        let steps: Vec<Step> = steps.into_iter().map(|s| Step { append: 0, ..s }).collect();
        let mut sim = Sim::new(total, total, false, steps);
        let (got, last, at) = run(&mut sim, LiveMode::Off, Offset::START, seed);
        prop_assert_eq!(&got[..], &sim.messages[..]);
        // It ends at the tail, quietly: neither failed nor cut off.
        prop_assert_eq!(last, None);
        if total > 0 {
            prop_assert_eq!(at, Offset::parse(&offset_after(total)).unwrap());
        }
    }
}

/// Sends `req` and fails it at once (after `answer` gave it whatever it says first),
/// again and again from the start, until the back-off has grown past a second; the
/// time then, with `req` the request asked for at that time.
fn grow_the_back_off(
    m: &mut Resume,
    req: &mut Request,
    answer: impl Fn(&mut Resume, ReqId, Time),
) -> Time {
    let mut now = Time::ZERO;
    let mut delay = Duration::ZERO;
    for _ in 0..20 {
        m.handle_sent(now, req.id);
        answer(m, req.id, now);
        m.handle_failure(now, req.id, TransportError::Io("reset".into()));
        let until = m.poll_timeout().expect("backing off");
        delay = delay.max(until.saturating_since(now));
        now = until;
        m.handle_timeout(now);
        *req = m.poll_request().expect("asked again");
    }
    assert!(delay > Duration::from_secs(1), "grew to {delay:?}");
    now
}

#[test]
fn an_sse_connection_that_worked_a_while_before_it_broke_starts_the_back_off_over() {
    let (mut m, mut req) = at_tail(LiveMode::Sse, Time::ZERO);
    let up_to_date = "event: control\ndata: {\"streamNextOffset\":\"1\",\"upToDate\":true}\n\n";
    // Breaks at once, again and again: the back-off grows...
    let now = grow_the_back_off(&mut m, &mut req, |m, req, now| {
        m.handle_response(now, req, event_stream());
        m.handle_body(now, req, up_to_date.as_bytes());
    });
    // ...until a connection lasts, quiet but working, and then breaks.
    m.handle_sent(now, req.id);
    m.handle_response(now, req.id, event_stream());
    m.handle_body(now, req.id, up_to_date.as_bytes());
    let later = now + LONG_LIVED;
    m.handle_failure(later, req.id, TransportError::Io("reset".into()));
    let until = m.poll_timeout().expect("backing off");
    assert!(
        until.saturating_since(later) <= Duration::from_millis(100),
        "waits {:?} after a connection that worked",
        until.saturating_since(later)
    );
}

#[test]
fn a_long_poll_held_long_before_it_broke_starts_the_back_off_over() {
    for broken_by_status in [false, true] {
        let (mut m, mut req) = at_tail(LiveMode::LongPoll, Time::ZERO);
        // Fails at once, again and again: the back-off grows...
        let now = grow_the_back_off(&mut m, &mut req, |_, _, _| {});
        // ...until a long poll is held a long time, then cut by a gateway (a reset,
        // or its 504): a quiet stream behind it, not a failing server.
        m.handle_sent(now, req.id);
        let later = now + LONG_LIVED + Duration::from_secs(20);
        if broken_by_status {
            m.handle_response(later, req.id, head(504, "1"));
        } else {
            m.handle_failure(later, req.id, TransportError::Io("reset".into()));
        }
        let until = m.poll_timeout().expect("backing off");
        assert!(
            until.saturating_since(later) <= Duration::from_millis(100),
            "waits {:?} after a long poll held {:?} (by status: {broken_by_status})",
            until.saturating_since(later),
            later.saturating_since(now)
        );
    }
}

#[test]
fn a_refusal_whose_body_breaks_is_still_a_refusal() {
    for fault in [TransportError::Io("reset".into()), TransportError::TimedOut] {
        let (mut m, req) = at_tail(LiveMode::LongPoll, Time::ZERO);
        m.handle_sent(Time::ZERO, req.id);
        m.handle_response(Time::ZERO, req.id, head(403, "1"));
        m.handle_body(Time::ZERO, req.id, b"not for this tok");
        m.handle_failure(Time::ZERO, req.id, fault);
        assert_eq!(
            outputs(&mut m).last(),
            Some(&Output::Failed(StreamError::Rejected {
                status: 403,
                message: "not for this tok".into()
            }))
        );
        assert!(m.is_finished());
    }
}
