//! Tests of the session view reducer.

use super::*;
use proptest::prelude::*;
use serde_json::json;

use crate::event::tests::{one_value_retyped, samples};

const T0: u64 = 1_700_000_000_000;

fn ev(kind: &str, data: Value, ts: u64) -> Envelope {
    let mut full = json!({"taskId": "t", "sessionId": "s"});
    if let (Some(full), Value::Object(more)) = (full.as_object_mut(), data) {
        full.extend(more);
    }
    Envelope::new(Event::from_parts(kind, full)).with_timestamp(ts)
}

fn at(ms: u64) -> Time {
    Time::from_millis(ms)
}

fn scripted() -> Vec<Envelope> {
    vec![
        ev(
            "container-agent:status",
            json!({"stage": "initializing", "message": "boot"}),
            T0,
        ),
        ev(
            "container-agent:status",
            json!({"stage": "creating_sandbox", "message": "sb"}),
            T0 + 1,
        ),
        ev(
            "container-agent:started",
            json!({"model": "m1", "maxTurns": 3}),
            T0 + 2,
        ),
        ev(
            "container-agent:turn",
            json!({"turn": 1, "maxTurns": 3, "remaining": 2}),
            T0 + 3,
        ),
        ev("container-agent:token", json!({"delta": "Look"}), T0 + 4),
        ev("container-agent:token", json!({"delta": "ing."}), T0 + 5),
        ev(
            "container-agent:tool:start",
            json!({"toolName": "Bash", "toolId": "a", "input": {"cmd": "ls"}}),
            T0 + 6,
        ),
        ev(
            "container-agent:tool:result",
            json!({"toolName": "Bash", "toolId": "a", "result": "x", "isError": false, "durationMs": 7}),
            T0 + 7,
        ),
        ev(
            "container-agent:file_changed",
            json!({"path": "a.rs", "action": "create", "toolName": "Write", "additions": 4}),
            T0 + 8,
        ),
        ev(
            "container-agent:file_changed",
            json!({"path": "a.rs", "action": "modify", "toolName": "Edit", "additions": 1, "deletions": 2}),
            T0 + 9,
        ),
        ev(
            "container-agent:turn",
            json!({"turn": 2, "maxTurns": 3, "remaining": 1}),
            T0 + 10,
        ),
        ev("container-agent:token", json!({"delta": "Done."}), T0 + 11),
    ]
}

#[test]
fn scripted_session_folds_into_the_view() {
    let mut view = SessionView::default();
    let now = at(T0 + 20);
    let first = view.apply(&scripted()[0], now);
    assert_eq!(first, Change::Status);
    assert_eq!(
        view.status(now),
        Status::Initializing {
            stage: "initializing".into(),
            message: "boot".into()
        }
    );
    for e in &scripted()[1..] {
        view.apply(e, now);
    }
    assert_eq!(view.status(now), Status::Running);
    assert_eq!(view.stages().len(), 2);
    assert_eq!(view.model(), Some("m1"));
    assert_eq!(view.turn_count(), 2);
    assert_eq!(view.turns()[0].text, "Looking.");
    assert_eq!(view.text(), "Looking.\n\nDone.");
    assert_eq!(view.tools().len(), 1);
    assert_eq!(view.tools()[0].result.as_deref(), Some("x"));
    assert_eq!(view.tools()[0].duration_ms, Some(7.0));
    assert_eq!(view.tools()[0].turn, 1);
    assert_eq!(
        view.files(),
        &[FileChange {
            path: "a.rs".into(),
            action: "modify".into(),
            additions: 5,
            deletions: 2
        }]
    );
    let done = ev(
        "container-agent:complete",
        json!({"status": "completed", "turnCount": 2, "result": "ok"}),
        T0 + 12,
    );
    assert_eq!(view.apply(&done, now), Change::Status);
    assert_eq!(
        view.status(at(T0 + 10_000_000)),
        Status::Completed {
            result: Some("ok".into())
        }
    );
}

#[test]
fn silent_running_session_becomes_stalled_and_a_terminal_one_never_does() {
    let mut view = SessionView::new(Duration::from_secs(30));
    for e in scripted() {
        view.apply(&e, at(T0 + 11));
    }
    assert_eq!(view.status(at(T0 + 11 + 29_999)), Status::Running);
    assert_eq!(
        view.status(at(T0 + 11 + 30_000)),
        Status::Stalled { silent_ms: 30_000 }
    );
    // A new event brings it back.
    view.apply(
        &ev("container-agent:token", json!({"delta": "!"}), T0 + 40_000),
        at(T0 + 40_000),
    );
    assert_eq!(view.status(at(T0 + 40_001)), Status::Running);
    // A crash guard's error is terminal and final.
    view.apply(
        &ev(
            "container-agent:error",
            json!({"error": "EPIPE", "code": "EPIPE", "turnCount": 2}),
            T0 + 40_001,
        ),
        at(T0 + 40_001),
    );
    let failed = Status::Failed {
        error: "EPIPE".into(),
        code: Some("EPIPE".into()),
    };
    assert_eq!(view.status(at(T0 + 99_999_999)), failed);
    view.apply(
        &ev(
            "container-agent:status",
            json!({"stage": "running", "message": ""}),
            T0 + 50_000,
        ),
        at(T0 + 50_000),
    );
    assert_eq!(view.reported_status(), &failed);
    assert_eq!(view.errors().len(), 1);
}

#[test]
fn a_view_joined_mid_run_is_running_at_the_agents_first_work_and_can_stall() {
    // Read from the tail: the first events it sees are a tool's result, a message,
    // a file changed (no start, no turn, no token before them).
    let joined = [
        ev(
            "container-agent:tool:result",
            json!({"toolId": "t1", "toolName": "bash", "result": "ok", "isError": false, "durationMs": 3}),
            T0,
        ),
        ev(
            "container-agent:message",
            json!({"role": "assistant", "content": "done"}),
            T0,
        ),
        ev(
            "container-agent:file_changed",
            json!({"path": "a.rs", "action": "modified", "toolName": "edit"}),
            T0,
        ),
    ];
    for first in joined {
        let mut view = SessionView::new(Duration::from_secs(30));
        view.apply(&first, at(T0));
        assert_eq!(view.status(at(T0)), Status::Running, "{first:?}");
        // Then its producer dies: the view says so.
        assert!(
            matches!(view.status(at(T0 + 30_000)), Status::Stalled { .. }),
            "{first:?}"
        );
    }
}

#[test]
fn replayed_history_of_a_dead_producer_is_stalled_at_once() {
    let mut view = SessionView::new(Duration::from_secs(60));
    let now = at(T0 + 3_600_000);
    for e in scripted() {
        view.apply(&e, now);
    }
    assert!(matches!(view.status(now), Status::Stalled { .. }));
}

#[test]
fn duplicates_by_offset_change_nothing() {
    let mut view = SessionView::default();
    let mut e = ev("container-agent:token", json!({"delta": "a"}), T0);
    e.offset = Some(Offset::parse("0001").unwrap());
    assert_eq!(view.apply(&e, at(T0)), Change::Text);
    assert_eq!(view.apply(&e, at(T0)), Change::Nothing);
    assert_eq!(view.text(), "a");
    assert_eq!(view.event_count(), 1);
}

#[test]
fn plain_number_offsets_compare_as_numbers() {
    let mut view = SessionView::default();
    for n in 1..=12u32 {
        let mut e = ev("container-agent:token", json!({"delta": "x"}), T0);
        // As an envelope read from `"offset": n` carries it.
        e.offset = Some(Offset::parse(&n.to_string()).unwrap());
        assert_eq!(view.apply(&e, at(T0)), Change::Text, "offset {n}");
    }
    assert_eq!(view.text(), "x".repeat(12));
    let mut again = ev("container-agent:token", json!({"delta": "x"}), T0);
    again.offset = Some(Offset::parse("9").unwrap());
    assert_eq!(
        view.apply(&again, at(T0)),
        Change::Nothing,
        "9 is before 12"
    );
}

#[test]
fn a_terminal_event_that_does_not_fit_its_schema_still_ends_the_session() {
    for (kind, data, ended) in [
        (
            "container-agent:error",
            json!({"error": "boom", "code": 7}),
            Status::Failed {
                error: "boom".into(),
                code: None,
            },
        ),
        (
            "container-agent:complete",
            json!({"status": "success", "result": {"not": "a string"}}),
            Status::Completed { result: None },
        ),
        (
            "container-agent:cancelled",
            json!({"reason": 3}),
            Status::Cancelled,
        ),
    ] {
        let mut view = SessionView::default();
        view.apply(&ev("container-agent:started", json!({}), T0), at(T0));
        view.apply(&ev(kind, data, T0), at(T0));
        assert_eq!(view.status(at(T0 + 3_600_000)), ended, "{kind}");
    }
}

#[test]
fn file_change_counts_saturate() {
    let mut view = SessionView::default();
    for additions in [u64::MAX, 1] {
        let e = ev(
            "container-agent:file_changed",
            json!({"path": "a.rs", "action": "modified", "toolName": "edit", "additions": additions}),
            T0,
        );
        view.apply(&e, at(T0));
    }
    let snapshot = view.snapshot_json(at(T0));
    assert!(
        snapshot.to_string().contains(&u64::MAX.to_string()),
        "{snapshot}"
    );
}

#[test]
fn completion_variants_and_invalid_events() {
    for (status, expect) in [
        ("turn_limit", Status::TurnLimit),
        ("cancelled", Status::Cancelled),
    ] {
        let mut view = SessionView::default();
        view.apply(
            &ev(
                "container-agent:complete",
                json!({"status": status, "turnCount": 1}),
                T0,
            ),
            at(T0),
        );
        assert_eq!(view.status(at(T0)), expect);
    }
    let mut view = SessionView::default();
    view.apply(
        &ev("container-agent:cancelled", json!({"turnCount": 1}), T0),
        at(T0),
    );
    assert_eq!(view.status(at(T0)), Status::Cancelled);
    // A known kind with broken data is recorded as an error, not dropped.
    let mut view = SessionView::default();
    assert_eq!(
        view.apply(
            &ev("container-agent:token", json!({"delta": 5}), T0),
            at(T0)
        ),
        Change::Error
    );
    assert_eq!(view.errors().len(), 1);
}

#[test]
fn snapshot_serializes_for_a_ui() {
    let mut view = SessionView::default();
    for e in scripted() {
        view.apply(&e, at(T0 + 11));
    }
    let json = serde_json::to_value(view.snapshot(at(T0 + 11))).unwrap();
    assert_eq!(json["status"], json!({"state": "running"}));
    assert_eq!(json["view"]["turns"][1]["text"], "Done.");
    assert_eq!(json["view"]["tools"][0]["isError"], false);
}

#[test]
fn a_tool_result_goes_to_the_latest_call_with_its_id_that_has_none() {
    let mut view = SessionView::default();
    let start = |id: &str, cmd: &str| {
        ev(
            "container-agent:tool:start",
            json!({"toolName": "Bash", "toolId": id, "input": {"cmd": cmd}}),
            T0,
        )
    };
    let result = |id: &str, out: &str| {
        ev(
            "container-agent:tool:result",
            json!({"toolName": "Bash", "toolId": id, "result": out, "isError": false, "durationMs": 1}),
            T0,
        )
    };
    for e in [
        start("a", "one"),
        start("b", "two"),
        start("a", "three"),
        result("a", "r3"),
        result("c", "orphan"),
        result("b", "r2"),
        result("c", "again"),
        result("a", "r1"),
    ] {
        view.apply(&e, at(T0));
    }
    let summary: Vec<(&str, Option<&str>)> = view
        .tools()
        .iter()
        .map(|t| (t.id.as_str(), t.result.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            ("a", Some("r1")),
            ("b", Some("r2")),
            ("a", Some("r3")),
            ("c", Some("again"))
        ]
    );
    assert_eq!(view.tools()[3].input, Value::Null);
}

/// Every kind's sample, and each with one value of another type (most then invalid).
fn every_kind_valid_and_not() -> Vec<(&'static str, Value)> {
    let mut all = Vec::new();
    for (kind, data) in samples() {
        for changed in one_value_retyped(&data).into_iter().take(12) {
            all.push((kind, changed));
        }
        all.push((kind, data));
    }
    all
}

proptest! {
    /// Folding events decoded only as far as the view needs gives the same view, and
    /// the same event data, as folding fully decoded ones.
    #[test]
    fn the_views_lean_decoding_folds_the_same(
        picks in prop::collection::vec((any::<prop::sample::Index>(), 0u64..5), 1..60),
    ) {
        let all = every_kind_valid_and_not();
        let mut full = SessionView::new(Duration::from_secs(60));
        let mut lean = SessionView::new(Duration::from_secs(60));
        let now = at(T0 + 1_000);
        for (pick, gap) in picks {
            let (kind, data) = &all[pick.index(all.len())];
            let value = json!({"type": kind, "data": data, "timestamp": T0 + gap});
            let a = Envelope::from_value(value.clone()).unwrap();
            let b = Envelope::from_value_with(value, SessionView::decode_event).unwrap();
            prop_assert_eq!(a.event.data(), b.event.data());
            prop_assert_eq!(full.apply(&a, now), lean.apply(&b, now));
        }
        prop_assert_eq!(full.snapshot_json(now), lean.snapshot_json(now));
    }
}

/// The JSON form a UI renders, spelled out: `Serialize` and `to_json` are one
/// definition, and this is what it gives.
#[test]
fn snapshot_json_is_the_documented_shape() {
    let mut view = SessionView::new(Duration::from_secs(30));
    let mut events = scripted();
    events[3].offset = Some(Offset::parse("0003").unwrap());
    events.push(ev(
        "container-agent:message",
        json!({"role": "assistant", "content": "hi"}),
        T0 + 12,
    ));
    events.push(ev(
        "container-agent:tool:result",
        json!({"toolName": "Read", "toolId": "b", "result": "r", "isError": true, "durationMs": 1.5}),
        T0 + 13,
    ));
    events.push(ev(
        "container-agent:error",
        json!({"error": "boom", "turnCount": 2}),
        T0 + 15,
    ));
    for e in &events {
        view.apply(e, at(T0 + 20));
    }
    let failed = json!({"state": "failed", "error": "boom", "code": null});
    let expected = json!({
        "status": failed,
        "view": {
            "status": failed,
            "stages": [
                {"stage": "initializing", "message": "boot", "at": T0},
                {"stage": "creating_sandbox", "message": "sb", "at": T0 + 1},
            ],
            "model": "m1",
            "maxTurns": 3,
            "turns": [{"number": 1, "text": "Looking."}, {"number": 2, "text": "Done."}],
            "messages": [{"role": "assistant", "content": "hi"}],
            "tools": [
                {"id": "a", "name": "Bash", "input": {"cmd": "ls"}, "turn": 1, "result": "x",
                 "isError": false, "durationMs": 7.0},
                {"id": "b", "name": "Read", "input": null, "turn": 2, "result": "r",
                 "isError": true, "durationMs": 1.5},
            ],
            "files": [{"path": "a.rs", "action": "modify", "additions": 5, "deletions": 2}],
            "errors": [{"kind": "container-agent:error", "error": "boom", "code": null}],
            "events": 15,
            "lastOffset": "0003",
            "lastActivity": T0 + 15,
        }
    });
    let snapshot = view.snapshot(at(T0 + 20));
    assert_eq!(snapshot.to_json(), expected);
    assert_eq!(serde_json::to_value(&snapshot).unwrap(), expected);
    assert_eq!(view.snapshot_json(at(T0 + 20)), expected);
    for (status, json) in [
        (Status::Pending, json!({"state": "pending"})),
        (
            Status::Initializing {
                stage: "s".into(),
                message: "m".into(),
            },
            json!({"state": "initializing", "stage": "s", "message": "m"}),
        ),
        (Status::Running, json!({"state": "running"})),
        (
            Status::Completed { result: None },
            json!({"state": "completed", "result": null}),
        ),
        (Status::TurnLimit, json!({"state": "turn_limit"})),
        (Status::Cancelled, json!({"state": "cancelled"})),
        (
            Status::Failed {
                error: "e".into(),
                code: Some("C".into()),
            },
            json!({"state": "failed", "error": "e", "code": "C"}),
        ),
        (
            Status::Stalled { silent_ms: 5 },
            json!({"state": "stalled", "silent_ms": 5}),
        ),
    ] {
        assert_eq!(serde_json::to_value(&status).unwrap(), json);
    }
}

#[test]
fn a_stall_threshold_past_u64_milliseconds_never_stalls() {
    let mut view = SessionView::new(Duration::from_secs(1 << 62));
    view.apply(
        &ev(
            "container-agent:status",
            json!({"stage": "running", "message": "m"}),
            T0,
        ),
        at(T0),
    );
    assert_eq!(view.status(at(T0 + 3_600_000)), Status::Running);
}

#[test]
fn plan_task_creation_and_terraform_sessions_end_as_their_events_say() {
    let failed = |error: &str| Status::Failed {
        error: error.into(),
        code: Some("E".into()),
    };
    let done = Status::Completed { result: None };
    for (started, last, data, ended) in [
        ("plan:started", "plan:completed", json!({}), done.clone()),
        (
            "plan:started",
            "plan:cancelled",
            json!({}),
            Status::Cancelled,
        ),
        (
            "plan:started",
            "plan:error",
            json!({"error": "no", "code": "E"}),
            failed("no"),
        ),
        (
            "task-creation:started",
            "task-creation:completed",
            json!({"suggestion": {}}),
            done.clone(),
        ),
        (
            "task-creation:started",
            "task-creation:cancelled",
            json!({}),
            Status::Cancelled,
        ),
        (
            "task-creation:started",
            "task-creation:error",
            json!({"error": "nope", "code": "E"}),
            failed("nope"),
        ),
        (
            "terraform:status",
            "terraform:done",
            json!({"jobId": "j"}),
            done.clone(),
        ),
        (
            "terraform:status",
            "terraform:error",
            json!({"jobId": "j", "error": "tf", "code": "E"}),
            failed("tf"),
        ),
        // Its data not what the kind says, an error ends the session all the same.
        (
            "plan:started",
            "plan:error",
            json!({"error": "bad", "code": "E", "sessionId": 5}),
            failed("bad"),
        ),
    ] {
        // As the native client decodes (every kind typed) and as the browser's view
        // does (only the kinds it folds).
        for decode in [Event::from_parts, SessionView::decode_event] {
            let event = |kind: &str, data: &Value| {
                let mut full = json!({"taskId": "t", "sessionId": "s", "stage": "plan"});
                if let (Some(full), Value::Object(more)) = (full.as_object_mut(), data.clone()) {
                    full.extend(more);
                }
                Envelope::new(decode(kind, full)).with_timestamp(T0)
            };
            let mut view = SessionView::default();
            view.apply(&event(started, &json!({})), at(T0));
            assert_eq!(
                view.status(at(T0)),
                Status::Pending,
                "{started}: not marked running"
            );
            view.apply(&event(last, &data), at(T0));
            // Then final: later events change nothing.
            view.apply(&event("plan:token", &json!({"delta": "x"})), at(T0));
            assert_eq!(view.status(at(T0 + 3_600_000)), ended, "{last} {data}");
        }
    }
    // A sandbox's error is no end.
    let mut view = SessionView::default();
    view.apply(
        &ev(
            "container-agent:started",
            json!({"model": "m", "maxTurns": 3}),
            T0,
        ),
        at(T0),
    );
    view.apply(&ev("sandbox:error", json!({"error": "x"}), T0), at(T0));
    assert_eq!(view.reported_status(), &Status::Running);
}

#[test]
fn live_events_from_a_producer_whose_clock_runs_behind_keep_the_session_running() {
    let behind = 90_000;
    let mut view = SessionView::new(Duration::from_secs(60));
    view.apply(
        &ev(
            "container-agent:started",
            json!({"model": "m", "maxTurns": 3}),
            T0 - behind,
        ),
        at(T0),
    );
    // History counts from the events' own times: ninety seconds of silence, stalled.
    assert!(matches!(view.status(at(T0)), Status::Stalled { .. }));
    view.caught_up();
    // Live, each arrival counts, whatever the producer's clock says.
    for s in 1..=5 {
        let now = T0 + s * 1_000;
        let token = ev("container-agent:token", json!({"delta": "x"}), now - behind);
        view.apply(&token, at(now));
        assert_eq!(view.status(at(now)), Status::Running, "{s} s in");
    }
    assert!(matches!(
        view.status(at(T0 + 5_000 + 60_000)),
        Status::Stalled { .. }
    ));
    // Reconnecting, it reads history again: a late event of a producer that died
    // meanwhile counts from its own time.
    view.fell_behind();
    let late = ev("container-agent:token", json!({"delta": "y"}), T0 + 6_000);
    view.apply(&late, at(T0 + 600_000));
    assert!(matches!(
        view.status(at(T0 + 600_000)),
        Status::Stalled { .. }
    ));
}

#[test]
fn a_stage_or_model_that_changes_is_a_change_though_the_status_stays() {
    let mut view = SessionView::default();
    let started = ev(
        "container-agent:started",
        json!({"model": "m", "maxTurns": 3}),
        T0,
    );
    assert_eq!(view.apply(&started, at(T0)), Change::Status);
    let stage = ev(
        "container-agent:status",
        json!({"stage": "running", "message": "go"}),
        T0 + 1,
    );
    assert_eq!(
        view.apply(&stage, at(T0 + 1)),
        Change::Status,
        "a new stage"
    );
    let again = ev(
        "container-agent:started",
        json!({"model": "m2", "maxTurns": 5}),
        T0 + 2,
    );
    assert_eq!(
        view.apply(&again, at(T0 + 2)),
        Change::Status,
        "a new model"
    );
    assert_eq!(view.reported_status(), &Status::Running);
}

#[test]
fn events_folded_since_a_last_look_count_from_it_at_least() {
    let behind = 90_000;
    let mut view = SessionView::new(Duration::from_secs(60));
    let started = ev(
        "container-agent:started",
        json!({"model": "m", "maxTurns": 3}),
        T0 - behind,
    );
    view.apply(&started, at(T0));
    assert!(
        matches!(view.status(at(T0)), Status::Stalled { .. }),
        "history: its own times"
    );
    // Looked at again 5 s later: what came since arrived after the first look.
    view.arrived_since(at(T0));
    let token = ev(
        "container-agent:token",
        json!({"delta": "x"}),
        T0 + 5_000 - behind,
    );
    view.apply(&token, at(T0 + 5_000));
    assert_eq!(view.status(at(T0 + 5_000)), Status::Running);
    assert!(matches!(
        view.status(at(T0 + 60_000)),
        Status::Stalled { .. }
    ));
}
