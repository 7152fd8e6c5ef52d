//! Tests of the event model: one sample per kind, lossless round trips, raw fallback.

use super::*;
use proptest::prelude::*;
use serde_json::{json, Value};

/// One valid `data` object per kind, each with a field the typed struct does not know.
pub(crate) fn samples() -> Vec<(&'static str, Value)> {
    let ca = |mut v: Value| {
        v["taskId"] = json!("task-1");
        v["sessionId"] = json!("sess-1");
        v
    };
    let sb = |mut v: Value| {
        v["sandboxId"] = json!("sb-1");
        v["codespaceId"] = json!("cs-1");
        v
    };
    let suggestion = json!({"title": "T", "description": "D", "labels": ["a"], "priority": "high"});
    vec![
        (
            "container-agent:status",
            ca(json!({"stage": "injecting_skills", "message": "m"})),
        ),
        (
            "container-agent:started",
            ca(json!({"model": "m", "maxTurns": 30, "sandboxProvider": "docker"})),
        ),
        ("container-agent:token", ca(json!({"delta": "Hel"}))),
        (
            "container-agent:turn",
            ca(json!({"turn": 1, "maxTurns": 30, "remaining": 29})),
        ),
        (
            "container-agent:tool:start",
            ca(json!({"toolName": "Bash", "toolId": "t1", "input": {"cmd": "ls"}})),
        ),
        (
            "container-agent:tool:result",
            ca(
                json!({"toolName": "Bash", "toolId": "t1", "result": "ok", "isError": false, "durationMs": 12.5}),
            ),
        ),
        (
            "container-agent:message",
            ca(json!({"role": "assistant", "content": "hi"})),
        ),
        (
            "container-agent:complete",
            ca(json!({"status": "turn_limit", "turnCount": 30, "result": "r"})),
        ),
        (
            "container-agent:error",
            ca(json!({"error": "boom", "code": "EPIPE", "turnCount": 3})),
        ),
        ("container-agent:cancelled", ca(json!({"turnCount": 2}))),
        (
            "container-agent:plan_ready",
            ca(
                json!({"plan": "p", "turnCount": 1, "sdkSessionId": "x", "allowedPrompts": [{"tool": "Bash", "prompt": "run tests"}]}),
            ),
        ),
        (
            "container-agent:task-update-failed",
            ca(json!({"error": "e", "attemptedStatus": "done"})),
        ),
        (
            "container-agent:worktree",
            ca(json!({"worktreeId": "w", "branch": "b", "containerPath": "/w"})),
        ),
        (
            "container-agent:file_changed",
            ca(
                json!({"path": "a.rs", "action": "modify", "toolName": "Edit", "additions": 3, "deletions": 1}),
            ),
        ),
        (
            "plan:started",
            json!({"sessionId": "s", "taskId": "t", "codespaceId": "c"}),
        ),
        (
            "plan:turn",
            json!({"sessionId": "s", "turnId": "u", "role": "user", "content": "c"}),
        ),
        ("plan:token", json!({"sessionId": "s", "delta": "d"})),
        (
            "plan:interaction",
            json!({"sessionId": "s", "interactionId": "i", "questions": [{"question": "q", "header": "h", "options": [{"label": "l", "description": "d"}], "multiSelect": true}]}),
        ),
        (
            "plan:completed",
            json!({"sessionId": "s", "issueUrl": "u", "issueNumber": 7}),
        ),
        ("plan:error", json!({"sessionId": "s", "error": "e"})),
        ("plan:cancelled", json!({"sessionId": "s"})),
        ("sandbox:creating", sb(json!({"image": "img"}))),
        ("sandbox:ready", sb(json!({"containerId": "c"}))),
        (
            "sandbox:idle",
            sb(json!({"idleSince": 1_700_000_000_000u64, "timeoutMinutes": 30})),
        ),
        ("sandbox:stopping", sb(json!({"reason": "idle_timeout"}))),
        ("sandbox:stopped", sb(json!({}))),
        ("sandbox:error", sb(json!({"error": "e", "code": "X"}))),
        (
            "sandbox:tmux:created",
            sb(json!({"sessionName": "n", "taskId": "t"})),
        ),
        ("sandbox:tmux:destroyed", sb(json!({"sessionName": "n"}))),
        (
            "task-creation:started",
            json!({"sessionId": "s", "codespaceId": "c"}),
        ),
        (
            "task-creation:message",
            json!({"sessionId": "s", "messageId": "m", "role": "assistant", "content": "c"}),
        ),
        (
            "task-creation:token",
            json!({"sessionId": "s", "delta": "d"}),
        ),
        (
            "task-creation:suggestion",
            json!({"sessionId": "s", "suggestion": suggestion}),
        ),
        (
            "task-creation:questions",
            json!({"sessionId": "s", "questions": {"id": "q", "questions": [{"header": "h", "question": "q", "options": [{"label": "l"}]}], "round": 1, "totalAsked": 1, "maxQuestions": 5}}),
        ),
        (
            "task-creation:processing",
            json!({"sessionId": "s", "message": "thinking"}),
        ),
        (
            "task-creation:completed",
            json!({"sessionId": "s", "taskId": "t", "suggestion": suggestion}),
        ),
        ("task-creation:cancelled", json!({"sessionId": "s"})),
        (
            "task-creation:error",
            json!({"sessionId": "s", "error": "e", "code": "C"}),
        ),
        (
            "topology:agent_spawned",
            json!({"agentId": "a", "name": "n", "role": "r", "parentId": null}),
        ),
        (
            "topology:agent_progress",
            json!({"agentId": "a", "sdkTaskId": "k", "tokens": 10, "toolUses": 2, "durationMs": 100, "lastToolName": "Read"}),
        ),
        (
            "topology:agent_completed",
            json!({"agentId": "a", "status": "failed", "tokens": 5}),
        ),
        ("terraform:status", json!({"jobId": "j", "stage": "plan"})),
        ("terraform:text", json!({"jobId": "j", "delta": "d"})),
        (
            "terraform:modules",
            json!({"jobId": "j", "modules": [{"name": "vpc"}]}),
        ),
        (
            "terraform:questions",
            json!({"jobId": "j", "questions": [{"q": 1}]}),
        ),
        (
            "terraform:code",
            json!({"jobId": "j", "code": "c", "files": [{"path": "main.tf"}]}),
        ),
        (
            "terraform:done",
            json!({"jobId": "j", "generatedCode": "c", "usage": {"inputTokens": 1, "outputTokens": 2}}),
        ),
        ("terraform:error", json!({"jobId": "j", "error": "e"})),
    ]
}

#[test]
fn every_kind_has_a_sample_and_decodes_typed() {
    let samples = samples();
    let sampled: Vec<&str> = samples.iter().map(|(k, _)| *k).collect();
    assert_eq!(sampled, KINDS, "one sample per kind, in declaration order");
    for (kind, mut data) in samples {
        data["futureField"] = json!({"nested": [1, 2]});
        let event = Event::from_parts(kind, data.clone());
        assert!(
            !matches!(event, Event::Raw(_)),
            "{kind} stayed raw: {event:?}"
        );
        assert_eq!(event.kind(), kind);
        assert_eq!(event.data(), data, "{kind} round trip is lossless");
        assert!(event.check(false).is_ok());
    }
}

/// Every variant of `value` with one object field (at any depth) set to null or removed.
fn one_field_nulled_or_removed(value: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    if let Value::Object(map) = value {
        for k in map.keys() {
            let mut nulled = map.clone();
            nulled.insert(k.clone(), Value::Null);
            out.push(Value::Object(nulled));
            let mut removed = map.clone();
            removed.remove(k);
            out.push(Value::Object(removed));
        }
    }
    out.extend(with_one_item_changed(value, one_field_nulled_or_removed));
    out
}

/// Every copy of `value` with one of its items (an object's field or an array's
/// element) replaced by one of `variants` of that item.
fn with_one_item_changed(value: &Value, variants: fn(&Value) -> Vec<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                for inner in variants(v) {
                    let mut changed = map.clone();
                    changed.insert(k.clone(), inner);
                    out.push(Value::Object(changed));
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                for inner in variants(item) {
                    let mut changed = items.clone();
                    changed[i] = inner;
                    out.push(Value::Array(changed));
                }
            }
        }
        _ => {}
    }
    out
}

#[test]
fn data_from_source_is_data() {
    let mut typed = 0;
    for (kind, mut data) in samples() {
        data["futureField"] = json!({"nested": [1, null]});
        let mut variants = one_field_nulled_or_removed(&data);
        variants.push(data);
        for data in variants {
            let event = Event::from_parts(kind, data.clone());
            if !matches!(event, Event::Raw(_)) {
                typed += 1;
            }
            assert_eq!(event.data_from_source(data), event.data(), "{kind}");
        }
    }
    assert!(typed > 250, "{typed} typed variants");
    let raw = Event::from_parts("robot:dance", json!({"a": null}));
    assert_eq!(raw.data_from_source(json!({})), raw.data());
}

/// Every variant of `value` with one value (at any depth, the whole included) replaced by
/// a value of another type or range.
pub(crate) fn one_value_retyped(value: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = [
        json!("s"),
        json!(-1),
        json!(1.5),
        json!(4_294_967_296u64),
        json!(true),
        json!(null),
        json!([]),
        json!([1, {}]),
        json!({}),
    ]
    .into_iter()
    .filter(|v| v != value)
    .collect();
    out.extend(with_one_item_changed(value, one_value_retyped));
    out
}

#[test]
fn checking_against_the_schema_agrees_with_decoding() {
    let (mut fits, mut invalid) = (0, 0);
    for (kind, data) in samples() {
        let mut variants = one_field_nulled_or_removed(&data);
        variants.extend(one_value_retyped(&data));
        variants.push(data);
        for data in variants {
            let decoded = Event::from_parts(kind, data.clone());
            let checked = Event::checked(kind, data.clone());
            let Event::Raw(raw) = &checked else {
                panic!("{kind}: checked events stay JSON")
            };
            match (&decoded, &raw.reason) {
                (Event::Raw(d), reason) => {
                    assert_eq!(&d.reason, reason, "{kind} {data}");
                    invalid += 1;
                }
                (_, RawReason::NotDecoded) => fits += 1,
                (_, reason) => panic!("{kind} {data}: decodes, but checked {reason:?}"),
            }
            assert_eq!(checked.data(), decoded.data(), "{kind} {data}");
            assert_eq!(
                checked.data_from_source(data.clone()),
                decoded.data(),
                "{kind} {data}"
            );
        }
    }
    assert!(
        fits > 250 && invalid > 1000,
        "{fits} fit, {invalid} invalid"
    );
    let unknown = Event::checked("robot:dance", json!({"a": 1}));
    assert_eq!(unknown, Event::from_parts("robot:dance", json!({"a": 1})));
}

#[test]
fn decoding_one_kind_is_decoding_by_kind() {
    let data = json!({"taskId": "t", "sessionId": "s", "turn": 1, "maxTurns": 2, "remaining": 1});
    assert_eq!(
        Event::decode_as::<AgentTurn>(data.clone()),
        Event::from_parts("container-agent:turn", data)
    );
    let bad = json!({"turn": "one"});
    assert_eq!(
        Event::decode_as::<AgentTurn>(bad.clone()),
        Event::from_parts("container-agent:turn", bad)
    );
}

#[test]
fn missing_or_mistyped_field_is_raw_with_the_reason() {
    let event = Event::from_parts(
        "container-agent:token",
        json!({"taskId": "t", "sessionId": "s"}),
    );
    let Event::Raw(raw) = &event else {
        panic!("expected raw")
    };
    assert!(
        matches!(&raw.reason, RawReason::Invalid(r) if r.contains("delta")),
        "{raw:?}"
    );
    assert_eq!(event.data(), json!({"taskId": "t", "sessionId": "s"}));
    let event = Event::from_parts("container-agent:turn", json!("not an object"));
    assert!(matches!(
        event.check(true),
        Err(EventError::InvalidData { .. })
    ));
}

#[test]
fn unknown_enum_values_are_kept_verbatim() {
    let data = json!({"taskId": "t", "sessionId": "s", "stage": "warming_up", "message": "m"});
    let event = Event::from_parts("container-agent:status", data.clone());
    assert!(
        matches!(&event, Event::AgentStatus(s) if s.stage == AgentStage::Other("warming_up".into()))
    );
    assert_eq!(event.data(), data);
}

#[test]
fn channels_follow_the_prefix() {
    let cases = [
        ("plan:token", "plan"),
        ("sandbox:tmux:created", "sandbox"),
        ("task-creation:error", "taskCreation"),
        ("container-agent:tool:result", "containerAgent"),
        ("topology:agent_spawned", "topology"),
        ("terraform:done", "terraform"),
        ("status", "default"),
        ("other:thing", "default"),
    ];
    for (kind, channel) in cases {
        assert_eq!(Channel::of(kind).as_str(), channel, "{kind}");
    }
}

#[test]
fn envelope_round_trip_with_offset_and_unknown_fields() {
    let text = r#"{"type":"robot:dance","data":{"moves":[1]},"timestamp":5,"offset":"0000000000000001_0000000000000009","trace":"x"}"#;
    let envelope = Envelope::from_json(text).unwrap();
    assert_eq!(envelope.kind(), "robot:dance");
    assert_eq!(envelope.channel(), Channel::Default);
    assert_eq!(envelope.timestamp, Some(5));
    let back: Value = serde_json::from_str(&envelope.to_json()).unwrap();
    assert_eq!(back, serde_json::from_str::<Value>(text).unwrap());
}

#[test]
fn envelope_errors_are_clear() {
    for (text, needle) in [
        ("[1]", "object"),
        (r#"{"data":{}}"#, "missing `type`"),
        (r#"{"type":7}"#, "non-empty string"),
        ("{", "not an event envelope"),
    ] {
        let err = Envelope::from_json(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{text}: {err}");
    }
    // A timestamp or offset that is not one is kept as it came, and the event read
    // all the same (a terminal event with a broken timestamp still ends a session).
    for (text, field) in [
        (
            r#"{"type":"container-agent:cancelled","data":{"taskId":"t","sessionId":"s","turnCount":1},"timestamp":"yesterday"}"#,
            "timestamp",
        ),
        (
            r#"{"type":"container-agent:cancelled","data":{"taskId":"t","sessionId":"s","turnCount":1},"timestamp":1e30}"#,
            "timestamp",
        ),
        (
            r#"{"type":"container-agent:cancelled","data":{"taskId":"t","sessionId":"s","turnCount":1},"timestamp":-1}"#,
            "timestamp",
        ),
        (
            r#"{"type":"container-agent:cancelled","data":{"taskId":"t","sessionId":"s","turnCount":1},"offset":"a/b"}"#,
            "offset",
        ),
        (
            r#"{"type":"container-agent:cancelled","data":{"taskId":"t","sessionId":"s","turnCount":1},"offset":[1]}"#,
            "offset",
        ),
    ] {
        let envelope = Envelope::from_json(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(matches!(envelope.event, Event::AgentCancelled(_)), "{text}");
        assert!(
            envelope.timestamp.is_none() && envelope.offset.is_none(),
            "{text}"
        );
        let again: Value = serde_json::from_str(&envelope.to_json()).unwrap();
        let first: Value = serde_json::from_str(text).unwrap();
        assert_eq!(again[field], first[field], "{text}: kept as it came");
        // Given one of its own later, the envelope writes that one only.
        let mut envelope = envelope;
        envelope.timestamp = Some(5);
        envelope.offset = Some(crate::Offset::parse("7").unwrap());
        let text = envelope.to_json();
        assert_eq!(text.matches(&format!("\"{field}\"")).count(), 1, "{text}");
    }
    // A JavaScript clock's fraction is taken, whole milliseconds kept.
    let fractional = Envelope::from_json(r#"{"type":"a","timestamp":1700000000000.5}"#);
    assert_eq!(fractional.map(|e| e.timestamp), Ok(Some(1_700_000_000_000)));
}

#[test]
fn token_and_terminal_helpers() {
    for (kind, data) in samples() {
        let event = Event::from_parts(kind, data);
        assert_eq!(
            event.token_delta().is_some(),
            kind.ends_with(":token") || kind == "terraform:text",
            "{kind}"
        );
        assert_eq!(
            event.is_terminal(),
            matches!(
                kind,
                "container-agent:complete" | "container-agent:error" | "container-agent:cancelled"
            ),
            "{kind}"
        );
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("delta".to_owned()),
                    Just("taskId".to_owned()),
                    Just("sessionId".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Any data under any kind decodes without panicking, and nothing is lost.
    #[test]
    fn decoding_never_panics_and_raw_keeps_everything(
        kind in prop_oneof![prop::sample::select(KINDS.to_vec()).prop_map(str::to_owned), "[a-z:-]{0,20}"],
        data in json_value(),
    ) {
        let event = Event::from_parts(&kind, data.clone());
        prop_assert_eq!(event.kind(), kind.as_str());
        if matches!(event, Event::Raw(_)) {
            prop_assert_eq!(event.data(), data);
        }
    }
}

#[test]
fn numbers_the_model_calls_number_may_be_negative_or_fractional() {
    for (kind, data) in [
        (
            "container-agent:turn",
            json!({"taskId": "t", "sessionId": "s", "turn": 11, "maxTurns": 10, "remaining": -1}),
        ),
        (
            "sandbox:idle",
            json!({"sandboxId": "x", "idleSince": 1, "timeoutMinutes": 0.5}),
        ),
    ] {
        let event = Event::from_parts(kind, data.clone());
        assert!(!matches!(event, Event::Raw(_)), "{kind} decodes typed");
        assert_eq!(event.data(), data, "{kind} round-trips");
    }
}
