//! A simulated agent session — status stages, streamed tokens, tool calls, turns, a
//! file change, completion — written through a [`SessionProducer`]. The demo and the
//! examples use it; it is also a worked example of producing session events.

use std::time::Duration;

use gapless_core::event::{
    AgentComplete, AgentStage, AgentStarted, AgentStatus, AgentToken, AgentTurn, CompletionStatus,
    Event, FileAction, FileChanged, ToolResult, ToolStart,
};
use serde_json::{json, Map};

use crate::{CrashGuard, Error, SessionProducer};

/// What the simulated agent does.
#[derive(Clone, Debug)]
pub struct Script {
    /// The task id written into every event.
    pub task_id: String,
    /// The session id written into every event.
    pub session_id: String,
    /// Turns to run.
    pub turns: u32,
    /// Pause between token deltas.
    pub token_delay: Duration,
    /// Stop (without a terminal event) when this turn starts: the caller then
    /// crashes the way it wants to.
    pub stop_at_turn: Option<u32>,
}

impl Script {
    /// A short session of `turns` turns.
    pub fn new(task_id: &str, session_id: &str, turns: u32) -> Self {
        Script {
            task_id: task_id.to_owned(),
            session_id: session_id.to_owned(),
            turns,
            token_delay: Duration::from_millis(40),
            stop_at_turn: None,
        }
    }
}

const SENTENCES: &[&str] = &[
    "Let me look at the repository layout first. ",
    "The failing test reads the history endpoint before the writer commits. ",
    "I will make the write path commit before it acknowledges. ",
    "Running the test suite again to confirm the fix. ",
    "All tests pass; the change is ready for review. ",
];

/// Runs the script; returns `Ok(true)` when it completed (and tells `guard` it is
/// done), `Ok(false)` when it stopped at `stop_at_turn`.
pub async fn run(
    producer: &SessionProducer,
    guard: Option<&CrashGuard>,
    script: &Script,
) -> Result<bool, Error> {
    let (t, s) = (script.task_id.clone(), script.session_id.clone());
    for (stage, message) in [
        (AgentStage::Initializing, "starting the runner"),
        (AgentStage::Credentials, "fetching credentials"),
        (AgentStage::CreatingSandbox, "creating the sandbox"),
        (AgentStage::Running, "agent running"),
    ] {
        producer
            .send(Event::AgentStatus(AgentStatus {
                task_id: t.clone(),
                session_id: s.clone(),
                stage,
                message: message.into(),
                extra: Map::new(),
            }))
            .await?;
        tokio::time::sleep(script.token_delay * 3).await;
    }
    producer
        .send(Event::AgentStarted(AgentStarted {
            task_id: t.clone(),
            session_id: s.clone(),
            model: "simulated-model".into(),
            max_turns: script.turns,
            sandbox_provider: Some("local".into()),
            sandbox_container_id: None,
            extra: Map::new(),
        }))
        .await?;
    for turn in 1..=script.turns {
        if script.stop_at_turn == Some(turn) {
            producer.flush().await?;
            return Ok(false);
        }
        if let Some(g) = guard {
            g.set_turn(turn);
        }
        producer
            .send(Event::AgentTurn(AgentTurn {
                task_id: t.clone(),
                session_id: s.clone(),
                turn,
                max_turns: script.turns,
                remaining: (script.turns - turn).into(),
                extra: Map::new(),
            }))
            .await?;
        let sentence = SENTENCES[(turn as usize - 1) % SENTENCES.len()];
        for word in sentence.split_inclusive(' ') {
            producer
                .push(Event::AgentToken(AgentToken {
                    task_id: t.clone(),
                    session_id: s.clone(),
                    delta: word.into(),
                    extra: Map::new(),
                }))
                .await?;
            tokio::time::sleep(script.token_delay).await;
        }
        let tool_id = format!("tool-{turn}");
        producer
            .push(Event::ToolStart(ToolStart {
                task_id: t.clone(),
                session_id: s.clone(),
                tool_name: "Bash".into(),
                tool_id: tool_id.clone(),
                input: json!({"command": format!("cargo test --step {turn}")}),
                extra: Map::new(),
            }))
            .await?;
        tokio::time::sleep(script.token_delay * 4).await;
        producer
            .push(Event::ToolResult(ToolResult {
                task_id: t.clone(),
                session_id: s.clone(),
                tool_name: "Bash".into(),
                tool_id,
                result: format!("test result: ok. {} passed", 10 * turn),
                is_error: false,
                duration_ms: (150 + 20 * turn).into(),
                extra: Map::new(),
            }))
            .await?;
        if turn == 1 {
            producer
                .push(Event::FileChanged(FileChanged {
                    task_id: t.clone(),
                    session_id: s.clone(),
                    path: "server/src/history.rs".into(),
                    action: FileAction::Modify,
                    tool_name: "Edit".into(),
                    additions: Some(12),
                    deletions: Some(3),
                    extra: Map::new(),
                }))
                .await?;
        }
        producer.flush().await?;
    }
    producer
        .send(Event::AgentComplete(AgentComplete {
            task_id: t,
            session_id: s,
            status: CompletionStatus::Completed,
            turn_count: script.turns,
            result: Some("The fix is committed and all tests pass.".into()),
            extra: Map::new(),
        }))
        .await?;
    // The end is durable: the guard has nothing to report from here.
    if let Some(g) = guard {
        g.done();
    }
    Ok(true)
}
