//! The session view: a reducer that folds session events into what a UI shows.
//!
//! Feed every [`Envelope`] of a session, in offset order, to [`SessionView::apply`];
//! read status, stage history, assistant text per turn, messages, tool calls, changed
//! files and errors at any time. [`SessionView::status`] takes the current time, so a
//! session whose producer died without a terminal event shows [`Status::Stalled`]
//! once nothing has arrived for [`SessionView::stall_after`], instead of "running"
//! forever.
//!
//! Times are milliseconds since the Unix epoch ([`Time`]); an event's own `timestamp`
//! counts as its activity time (capped at `now`), so a session replayed from history
//! an hour after its producer died is stalled at once.
//!
//! ```
//! use std::time::Duration;
//! use gapless_core::event::{Envelope, Event};
//! use gapless_core::session::{SessionView, Status};
//! use gapless_core::Time;
//! use serde_json::json;
//!
//! let ids = json!({"taskId": "t", "sessionId": "s"});
//! let event = |kind: &str, extra: serde_json::Value| {
//!     let mut data = ids.clone();
//!     data.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
//!     Envelope::new(Event::from_parts(kind, data)).with_timestamp(1_000)
//! };
//! let mut view = SessionView::new(Duration::from_secs(60));
//! let now = Time::from_millis(1_000);
//! view.apply(&event("container-agent:turn", json!({"turn": 1, "maxTurns": 5, "remaining": 4})), now);
//! view.apply(&event("container-agent:token", json!({"delta": "Hel"})), now);
//! view.apply(&event("container-agent:token", json!({"delta": "lo"})), now);
//! assert_eq!(view.text(), "Hello");
//! assert_eq!(view.status(now), Status::Running);
//! // The producer went silent: a minute later the view says so.
//! assert!(matches!(view.status(Time::from_millis(61_000)), Status::Stalled { .. }));
//! ```

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::event::{
    AgentCancelled, AgentComplete, AgentError, AgentMessage, AgentStage, AgentStarted, AgentStatus,
    AgentToken, AgentTurn, CompletionStatus, Envelope, Event, FileChanged, Payload, PlanError,
    PlanToken, RawReason, Role, SandboxError, TaskCreationError, TaskCreationToken,
    TaskUpdateFailed, TerraformError, TerraformText, ToolResult, ToolStart,
};
use crate::{Offset, Time};

/// How long a running session may stay silent before it counts as stalled, unless
/// configured otherwise: 60 s.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(60);

/// Where a session stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Nothing has happened yet.
    Pending,
    /// The runner is starting; `stage` says how far it got.
    Initializing {
        /// The last stage reported.
        stage: String,
        /// Its message.
        message: String,
    },
    /// The agent is working.
    Running,
    /// The agent finished.
    Completed {
        /// Its final result, if any.
        result: Option<String>,
    },
    /// The agent used all its turns.
    TurnLimit,
    /// The session was cancelled.
    Cancelled,
    /// The session failed.
    Failed {
        /// What went wrong.
        error: String,
        /// A machine-readable code (`EPIPE`, `STREAM_ERROR`, ...).
        code: Option<String>,
    },
    /// The session was initializing or running, but nothing has arrived for too long:
    /// its producer has probably died.
    Stalled {
        /// Milliseconds since the last event.
        silent_ms: u64,
    },
}

impl Status {
    /// Whether the session has ended (completed, turn limit, cancelled or failed).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Status::Completed { .. }
                | Status::TurnLimit
                | Status::Cancelled
                | Status::Failed { .. }
        )
    }
}

/// One stage the runner reported.
#[derive(Clone, Debug, PartialEq)]
pub struct StageEntry {
    /// The stage.
    pub stage: String,
    /// Its message.
    pub message: String,
    /// When it was reported.
    pub at: u64,
}

/// One turn: its number and the assistant text streamed in it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Turn {
    /// The turn number (0 for text before the first `turn` event).
    pub number: u32,
    /// The assistant text assembled from token deltas.
    pub text: String,
}

/// A whole message of the conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageEntry {
    /// Who wrote it.
    pub role: String,
    /// Its text.
    pub content: String,
}

/// A tool call and, once it finished, its result.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    /// The call's identifier.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The call's input.
    pub input: Value,
    /// The turn it was made in.
    pub turn: u32,
    /// The output, once finished.
    pub result: Option<String>,
    /// Whether the output is an error.
    pub is_error: bool,
    /// How long it took, once finished.
    pub duration_ms: Option<f64>,
}

impl ToolCall {
    /// Whether the call has finished.
    pub fn is_finished(&self) -> bool {
        self.result.is_some()
    }
}

/// The latest change to one file.
#[derive(Clone, Debug, PartialEq)]
pub struct FileChange {
    /// The file's path.
    pub path: String,
    /// What happened to it last.
    pub action: String,
    /// Lines added (summed over its changes).
    pub additions: u64,
    /// Lines deleted (summed over its changes).
    pub deletions: u64,
}

/// An error reported during the session (terminal or not).
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorEntry {
    /// The kind that reported it.
    pub kind: String,
    /// What went wrong.
    pub error: String,
    /// A machine-readable code.
    pub code: Option<String>,
}

/// What one applied event changed, so a UI can redraw only that part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Nothing visible (a duplicate, or a kind the view does not show).
    Nothing,
    /// The status (or stage).
    Status,
    /// The assistant text of the current turn.
    Text,
    /// The turn counter.
    Turn,
    /// A tool call started or finished.
    Tool,
    /// A message was added.
    Message,
    /// A file changed.
    File,
    /// An error was recorded (the status may have changed too).
    Error,
}

/// The folded state of one session.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionView {
    status: Status,
    stages: Vec<StageEntry>,
    model: Option<String>,
    max_turns: Option<u32>,
    turns: Vec<Turn>,
    messages: Vec<MessageEntry>,
    tools: Vec<ToolCall>,
    files: Vec<FileChange>,
    errors: Vec<ErrorEntry>,
    events: u64,
    last_offset: Option<Offset>,
    last_activity: Option<u64>,
    stall_after: Duration,
    /// The reader has caught up (see [`SessionView::caught_up`]): events arrive as
    /// they happen, and their arrival is the activity the stall check counts.
    live: bool,
    /// The events applied from now on arrived no earlier than this (see
    /// [`SessionView::arrived_since`]), milliseconds.
    arrived_since: Option<u64>,
}

impl Default for SessionView {
    fn default() -> Self {
        Self::new(DEFAULT_STALL_AFTER)
    }
}

impl SessionView {
    /// An empty view that calls a silent running session stalled after `stall_after`.
    pub fn new(stall_after: Duration) -> Self {
        SessionView {
            status: Status::Pending,
            stages: Vec::new(),
            model: None,
            max_turns: None,
            turns: Vec::new(),
            messages: Vec::new(),
            tools: Vec::new(),
            files: Vec::new(),
            errors: Vec::new(),
            events: 0,
            last_offset: None,
            last_activity: None,
            stall_after,
            live: false,
            arrived_since: None,
        }
    }

    /// Decodes an event as far as the view needs it: the kinds it folds into their
    /// structs, every other kind checked against its schema and kept as JSON
    /// ([`Event::checked`]). Folding such events gives the same view as folding fully
    /// decoded ones, and their [`Event::data`] is the same; a reader that shows events
    /// and the view only (the browser package) decodes with this, and the decoders of
    /// the kinds the view never reads stay out of its build.
    ///
    /// ```
    /// use gapless_core::event::{Envelope, Event, RawReason};
    /// use gapless_core::session::SessionView;
    /// use serde_json::json;
    ///
    /// let text = r#"{"type":"plan:started","data":{"taskId":"t","sessionId":"s","codespaceId":"c"}}"#;
    /// let value = gapless_core::json::parse(text).unwrap();
    /// let envelope = Envelope::from_value_with(value, SessionView::decode_event).unwrap();
    /// assert!(matches!(&envelope.event, Event::Raw(raw) if raw.reason == RawReason::NotDecoded));
    /// assert_eq!(envelope.event.data(), Envelope::from_json(text).unwrap().event.data());
    /// ```
    pub fn decode_event(kind: &str, data: Value) -> Event {
        /// One kind the view folds, decoded into its struct.
        fn typed<T: Payload>(data: Value) -> Event {
            Event::decode_as::<T>(data)
        }
        match kind {
            AgentStatus::KIND => typed::<AgentStatus>(data),
            AgentStarted::KIND => typed::<AgentStarted>(data),
            AgentTurn::KIND => typed::<AgentTurn>(data),
            AgentToken::KIND => typed::<AgentToken>(data),
            AgentMessage::KIND => typed::<AgentMessage>(data),
            ToolStart::KIND => typed::<ToolStart>(data),
            ToolResult::KIND => typed::<ToolResult>(data),
            FileChanged::KIND => typed::<FileChanged>(data),
            AgentComplete::KIND => typed::<AgentComplete>(data),
            AgentCancelled::KIND => typed::<AgentCancelled>(data),
            AgentError::KIND => typed::<AgentError>(data),
            TaskUpdateFailed::KIND => typed::<TaskUpdateFailed>(data),
            SandboxError::KIND => typed::<SandboxError>(data),
            PlanError::KIND => typed::<PlanError>(data),
            PlanToken::KIND => typed::<PlanToken>(data),
            TaskCreationError::KIND => typed::<TaskCreationError>(data),
            TaskCreationToken::KIND => typed::<TaskCreationToken>(data),
            TerraformError::KIND => typed::<TerraformError>(data),
            TerraformText::KIND => typed::<TerraformText>(data),
            _ => Event::checked(kind, data),
        }
    }

    /// Folds one event in. An event at or before the last applied offset is a
    /// duplicate and changes nothing.
    pub fn apply(&mut self, envelope: &Envelope, now: Time) -> Change {
        if let (Some(offset), Some(last)) = (&envelope.offset, &self.last_offset) {
            if at_or_before(offset, last) {
                return Change::Nothing;
            }
        }
        if let Some(offset) = &envelope.offset {
            self.last_offset = Some(offset.clone());
        }
        self.events += 1;
        let at = envelope
            .timestamp
            .map_or(now.as_millis(), |ts| ts.min(now.as_millis()));
        // History counts from when its events happened (a dead session's replay is
        // stalled at once); live events from when they arrive (a producer whose clock
        // runs behind the reader's does not look silent while it writes).
        let active = if self.live {
            now.as_millis()
        } else {
            at.max(self.arrived_since.unwrap_or(0).min(now.as_millis()))
        };
        self.last_activity = Some(self.last_activity.map_or(active, |prev| prev.max(active)));
        self.fold(&envelope.event, at)
    }

    /// About how many bytes the view holds (its texts and JSON), for a cache of views
    /// to weigh it by.
    pub fn held_bytes(&self) -> usize {
        /// A string's bytes and its header.
        fn text(s: &str) -> usize {
            s.len() + 24
        }
        fn json(v: &Value) -> usize {
            32 + match v {
                Value::String(s) => s.len(),
                Value::Array(items) => items.iter().map(json).sum(),
                Value::Object(map) => map.iter().map(|(k, v)| text(k) + json(v)).sum(),
                _ => 0,
            }
        }
        let stages: usize = self
            .stages
            .iter()
            .map(|e| text(&e.stage) + text(&e.message))
            .sum();
        let turns: usize = self.turns.iter().map(|t| text(&t.text)).sum();
        let messages: usize = self
            .messages
            .iter()
            .map(|m| text(&m.role) + text(&m.content))
            .sum();
        let tools: usize = self
            .tools
            .iter()
            .map(|t| {
                text(&t.id) + text(&t.name) + json(&t.input) + t.result.as_deref().map_or(0, text)
            })
            .sum();
        let files: usize = self
            .files
            .iter()
            .map(|f| text(&f.path) + text(&f.action))
            .sum();
        let errors: usize = self
            .errors
            .iter()
            .map(|e| text(&e.kind) + text(&e.error) + e.code.as_deref().map_or(0, text))
            .sum();
        std::mem::size_of::<Self>() + stages + turns + messages + tools + files + errors
    }

    /// The events applied from now on arrived no earlier than `at` (a reader that
    /// folds what came since its last look, as the server's view does): each counts
    /// as active at `at` at least, whatever its own timestamp says (a producer whose
    /// clock runs behind does not look silent while it writes).
    pub fn arrived_since(&mut self, at: Time) {
        self.arrived_since = Some(at.as_millis());
    }

    /// The reader lost its connection and reconnects: until it catches up again
    /// ([`SessionView::caught_up`]), what it reads is history, counted from the
    /// events' own timestamps (a producer that died meanwhile is not taken for live).
    pub fn fell_behind(&mut self) {
        self.live = false;
    }

    /// The reader has caught up with the stream (its `UpToDate`): from now on an
    /// event's arrival, not its own timestamp, is the activity the stall check counts.
    pub fn caught_up(&mut self) {
        self.live = true;
    }

    fn fold(&mut self, event: &Event, at: u64) -> Change {
        // The agent's work: its session is running (whatever came before it was
        // seen; a view joined mid-run must not stay pending, which never stalls).
        if matches!(
            event,
            Event::AgentStarted(_)
                | Event::AgentTurn(_)
                | Event::AgentToken(_)
                | Event::AgentMessage(_)
                | Event::ToolStart(_)
                | Event::ToolResult(_)
                | Event::FileChanged(_)
        ) {
            self.set_status(Status::Running);
        }
        match event {
            Event::AgentStatus(s) => {
                self.stages.push(StageEntry {
                    stage: s.stage.as_str().to_owned(),
                    message: s.message.clone(),
                    at,
                });
                let status = match s.stage {
                    AgentStage::Running | AgentStage::Executing => Status::Running,
                    _ => Status::Initializing {
                        stage: s.stage.as_str().to_owned(),
                        message: s.message.clone(),
                    },
                };
                self.set_status(status);
                // (Its stages changed, whether or not its status did.)
                Change::Status
            }
            Event::AgentStarted(s) => {
                self.model = Some(s.model.clone());
                self.max_turns = Some(s.max_turns);
                // (Its model changed, whether or not its status did.)
                Change::Status
            }
            Event::AgentTurn(t) => {
                self.max_turns = Some(t.max_turns);
                if self.turns.last().is_none_or(|last| last.number != t.turn) {
                    self.turns.push(Turn {
                        number: t.turn,
                        text: String::new(),
                    });
                }
                Change::Turn
            }
            Event::AgentToken(t) => {
                self.current_turn().text.push_str(&t.delta);
                Change::Text
            }
            Event::AgentMessage(m) => {
                self.messages.push(MessageEntry {
                    role: m.role.as_str().to_owned(),
                    content: m.content.clone(),
                });
                if m.role == Role::Assistant {
                    let turn = self.current_turn();
                    if turn.text.is_empty() {
                        turn.text.clone_from(&m.content);
                    }
                }
                Change::Message
            }
            Event::ToolStart(t) => {
                let turn = self.turns.last().map_or(0, |t| t.number);
                self.tools.push(ToolCall {
                    id: t.tool_id.clone(),
                    name: t.tool_name.clone(),
                    input: t.input.clone(),
                    turn,
                    result: None,
                    is_error: false,
                    duration_ms: None,
                });
                Change::Tool
            }
            Event::ToolResult(r) => {
                // The latest call with this id still waiting for its result (else the
                // latest with this id): searched from the end, where a result's start
                // almost always is (no index to keep: less code in the browser).
                let latest = |pending: bool| {
                    self.tools
                        .iter()
                        .rposition(|c| c.id == r.tool_id && (!pending || c.result.is_none()))
                };
                let index = match latest(true).or_else(|| latest(false)) {
                    Some(i) => i,
                    None => {
                        // A result whose start was never seen still shows.
                        let turn = self.turns.last().map_or(0, |t| t.number);
                        self.tools.push(ToolCall {
                            id: r.tool_id.clone(),
                            name: r.tool_name.clone(),
                            input: Value::Null,
                            turn,
                            result: None,
                            is_error: false,
                            duration_ms: None,
                        });
                        self.tools.len() - 1
                    }
                };
                let call = &mut self.tools[index];
                call.result = Some(r.result.clone());
                call.is_error = r.is_error;
                call.duration_ms = r.duration_ms.as_f64();
                Change::Tool
            }
            Event::FileChanged(f) => {
                let action = f.action.as_str().to_owned();
                match self.files.iter_mut().find(|c| c.path == f.path) {
                    Some(change) => {
                        change.action = action;
                        // Saturating: the counts are whatever the events said.
                        change.additions =
                            change.additions.saturating_add(f.additions.unwrap_or(0));
                        change.deletions =
                            change.deletions.saturating_add(f.deletions.unwrap_or(0));
                    }
                    None => self.files.push(FileChange {
                        path: f.path.clone(),
                        action,
                        additions: f.additions.unwrap_or(0),
                        deletions: f.deletions.unwrap_or(0),
                    }),
                }
                Change::File
            }
            Event::AgentComplete(c) => {
                let status = match c.status {
                    CompletionStatus::TurnLimit => Status::TurnLimit,
                    CompletionStatus::Cancelled => Status::Cancelled,
                    _ => Status::Completed {
                        result: c.result.clone(),
                    },
                };
                self.set_status(status)
            }
            Event::AgentCancelled(_) => self.set_status(Status::Cancelled),
            Event::AgentError(e) => {
                self.push_error(event.kind(), &e.error, e.code.clone());
                self.set_status(Status::Failed {
                    error: e.error.clone(),
                    code: e.code.clone(),
                });
                Change::Error
            }
            Event::TaskUpdateFailed(e) => {
                self.push_error(event.kind(), &e.error, None);
                Change::Error
            }
            Event::SandboxError(e) => {
                self.push_error(event.kind(), &e.error, e.code.clone());
                Change::Error
            }
            Event::PlanError(e) => {
                self.push_error(event.kind(), &e.error, e.code.clone());
                self.set_status(Status::Failed {
                    error: e.error.clone(),
                    code: e.code.clone(),
                });
                Change::Error
            }
            Event::TaskCreationError(e) => {
                self.push_error(event.kind(), &e.error, e.code.clone());
                self.set_status(Status::Failed {
                    error: e.error.clone(),
                    code: e.code.clone(),
                });
                Change::Error
            }
            Event::TerraformError(e) => {
                self.push_error(event.kind(), &e.error, e.code.clone());
                self.set_status(Status::Failed {
                    error: e.error.clone(),
                    code: e.code.clone(),
                });
                Change::Error
            }
            Event::Raw(raw) => match &raw.reason {
                RawReason::Invalid(why) => {
                    self.push_error(&raw.kind, &format!("undecodable event: {why}"), None);
                    // A terminal event whose fields do not fit its schema still ends
                    // the session, as far as what it says of its end can be read.
                    let text = |field: &str| raw.data.get(field).and_then(Value::as_str);
                    match raw.kind.as_str() {
                        "container-agent:error" => {
                            self.set_status(Status::Failed {
                                error: text("error").unwrap_or("the agent failed").to_owned(),
                                code: text("code").map(str::to_owned),
                            });
                        }
                        "container-agent:cancelled" => {
                            self.set_status(Status::Cancelled);
                        }
                        "container-agent:complete" => {
                            self.set_status(match text("status") {
                                Some("turn_limit") => Status::TurnLimit,
                                Some("cancelled") => Status::Cancelled,
                                _ => Status::Completed {
                                    result: text("result").map(str::to_owned),
                                },
                            });
                        }
                        "plan:error" | "task-creation:error" | "terraform:error" => {
                            self.set_status(Status::Failed {
                                error: text("error").unwrap_or("the session failed").to_owned(),
                                code: text("code").map(str::to_owned),
                            });
                        }
                        kind => {
                            if let Some(end) = other_end(kind) {
                                self.set_status(end);
                            }
                        }
                    }
                    Change::Error
                }
                RawReason::UnknownKind | RawReason::NotDecoded => match other_end(&raw.kind) {
                    Some(end) => self.set_status(end),
                    None => Change::Nothing,
                },
            },
            other => match other.token_delta() {
                Some(delta) => {
                    self.current_turn().text.push_str(delta);
                    Change::Text
                }
                None => match other_end(other.kind()) {
                    Some(end) => self.set_status(end),
                    None => Change::Nothing,
                },
            },
        }
    }

    fn set_status(&mut self, status: Status) -> Change {
        // (See `other_end` for the other sessions' ends.)
        // A terminal status is final: later events (sandbox teardown, late tokens)
        // do not bring a finished session back to life.
        if self.status.is_terminal() || self.status == status {
            return Change::Nothing;
        }
        self.status = status;
        Change::Status
    }

    fn push_error(&mut self, kind: &str, error: &str, code: Option<String>) {
        self.errors.push(ErrorEntry {
            kind: kind.to_owned(),
            error: error.to_owned(),
            code,
        });
    }

    fn current_turn(&mut self) -> &mut Turn {
        if self.turns.is_empty() {
            self.turns.push(Turn::default());
        }
        let last = self.turns.len() - 1;
        &mut self.turns[last]
    }

    /// The status at `now`: [`Status::Stalled`] when the session is initializing or
    /// running and nothing has arrived for [`SessionView::stall_after`].
    pub fn status(&self, now: Time) -> Status {
        if matches!(self.status, Status::Running | Status::Initializing { .. }) {
            if let Some(last) = self.last_activity {
                let silent = now.as_millis().saturating_sub(last);
                let stall_after = u64::try_from(self.stall_after.as_millis()).unwrap_or(u64::MAX);
                if silent >= stall_after {
                    return Status::Stalled { silent_ms: silent };
                }
            }
        }
        self.status.clone()
    }

    /// The status as the events left it, without the stall check.
    pub fn reported_status(&self) -> &Status {
        &self.status
    }

    /// When the view considers a silent session stalled.
    pub fn stall_after(&self) -> Duration {
        self.stall_after
    }

    /// Changes when the view considers a silent session stalled: only the status it
    /// reports from now on changes, not what it folded.
    ///
    /// ```
    /// use std::time::Duration;
    /// use gapless_core::session::SessionView;
    ///
    /// let mut view = SessionView::new(Duration::from_secs(60));
    /// view.set_stall_after(Duration::from_secs(5));
    /// assert_eq!(view.stall_after(), Duration::from_secs(5));
    /// ```
    pub fn set_stall_after(&mut self, stall_after: Duration) {
        self.stall_after = stall_after;
    }

    /// Every stage the runner reported, in order.
    pub fn stages(&self) -> &[StageEntry] {
        &self.stages
    }

    /// The model, once `started` arrived.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The turn budget, once known.
    pub fn max_turns(&self) -> Option<u32> {
        self.max_turns
    }

    /// The turns, each with its assistant text.
    pub fn turns(&self) -> &[Turn] {
        &self.turns
    }

    /// The highest turn number seen.
    pub fn turn_count(&self) -> u32 {
        self.turns.iter().map(|t| t.number).max().unwrap_or(0)
    }

    /// All assistant text, turns separated by a blank line.
    pub fn text(&self) -> String {
        let parts: Vec<&str> = self
            .turns
            .iter()
            .map(|t| t.text.as_str())
            .filter(|t| !t.is_empty())
            .collect();
        parts.join("\n\n")
    }

    /// The whole messages, in order.
    pub fn messages(&self) -> &[MessageEntry] {
        &self.messages
    }

    /// The tool calls, in the order they started.
    pub fn tools(&self) -> &[ToolCall] {
        &self.tools
    }

    /// The changed files, in the order they were first changed.
    pub fn files(&self) -> &[FileChange] {
        &self.files
    }

    /// Every error reported, in order.
    pub fn errors(&self) -> &[ErrorEntry] {
        &self.errors
    }

    /// How many events were applied (duplicates excluded).
    pub fn event_count(&self) -> u64 {
        self.events
    }

    /// The offset of the last applied event, when events carry offsets.
    pub fn last_offset(&self) -> Option<&Offset> {
        self.last_offset.as_ref()
    }

    /// A serializable snapshot at `now` (the stall check applied), for UIs.
    pub fn snapshot(&self, now: Time) -> Snapshot {
        Snapshot {
            status: self.status(now),
            view: self.clone(),
        }
    }
}

/// A [`SessionView`] with its status evaluated at one moment; serializes to the JSON
/// object a UI renders (`status` plus the view's fields, camelCase).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The status at the snapshot's moment (possibly stalled).
    pub status: Status,
    /// The view.
    pub view: SessionView,
}

impl Snapshot {
    /// The snapshot as a JSON value: what its `Serialize` impl writes (the one
    /// definition of the form), and what the browser package hands to JavaScript.
    pub fn to_json(&self) -> Value {
        snapshot_json(&self.status, &self.view)
    }
}

impl SessionView {
    /// [`Snapshot::to_json`] of [`SessionView::snapshot`] at `now`, without copying the
    /// view first.
    ///
    /// ```
    /// use gapless_core::session::SessionView;
    /// use gapless_core::Time;
    ///
    /// let view = SessionView::default();
    /// let now = Time::from_millis(5);
    /// assert_eq!(view.snapshot_json(now), view.snapshot(now).to_json());
    /// assert_eq!(view.snapshot_json(now)["status"]["state"], "pending");
    /// ```
    pub fn snapshot_json(&self, now: Time) -> Value {
        snapshot_json(&self.status(now), self)
    }
}

fn snapshot_json(status: &Status, view: &SessionView) -> Value {
    let mut out = Map::new();
    out.insert("status".into(), status.to_json());
    out.insert("view".into(), view_json(view));
    Value::Object(out)
}

/// A view's own fields as JSON (camelCase; its stored status, not evaluated).
fn view_json(view: &SessionView) -> Value {
    let mut map = Map::new();
    map.insert("status".into(), view.status.to_json());
    map.insert("stages".into(), list(&view.stages, StageEntry::to_json));
    map.insert("model".into(), view.model.clone().into());
    map.insert("maxTurns".into(), view.max_turns.into());
    map.insert("turns".into(), list(&view.turns, Turn::to_json));
    map.insert(
        "messages".into(),
        list(&view.messages, MessageEntry::to_json),
    );
    map.insert("tools".into(), list(&view.tools, ToolCall::to_json));
    map.insert("files".into(), list(&view.files, FileChange::to_json));
    map.insert("errors".into(), list(&view.errors, ErrorEntry::to_json));
    map.insert("events".into(), view.events.into());
    map.insert(
        "lastOffset".into(),
        view.last_offset.as_ref().map(Offset::as_str).into(),
    );
    map.insert("lastActivity".into(), view.last_activity.into());
    Value::Object(map)
}

fn list<T>(items: &[T], to_json: fn(&T) -> Value) -> Value {
    Value::Array(items.iter().map(to_json).collect())
}

/// `Serialize` through each type's `to_json`: the one definition of its JSON form.
macro_rules! serialize_as_json {
    ($($ty:ty => $to_json:expr),* $(,)?) => {$(
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let to_json: fn(&$ty) -> Value = $to_json;
                to_json(self).serialize(s)
            }
        }
    )*};
}

serialize_as_json! {
    Status => Status::to_json,
    StageEntry => StageEntry::to_json,
    Turn => Turn::to_json,
    MessageEntry => MessageEntry::to_json,
    ToolCall => ToolCall::to_json,
    FileChange => FileChange::to_json,
    ErrorEntry => ErrorEntry::to_json,
    SessionView => view_json,
    Snapshot => Snapshot::to_json,
}

/// An object of `fields` (taken out of the slice: one function for every size).
fn object(fields: &mut [(&str, Value)]) -> Value {
    let mut map = Map::new();
    for (k, v) in fields {
        map.insert((*k).to_owned(), std::mem::take(v));
    }
    Value::Object(map)
}

impl Status {
    fn to_json(&self) -> Value {
        let state = |s: &str| ("state", Value::from(s));
        match self {
            Status::Pending => object(&mut [state("pending")]),
            Status::Initializing { stage, message } => object(&mut [
                state("initializing"),
                ("stage", stage.as_str().into()),
                ("message", message.as_str().into()),
            ]),
            Status::Running => object(&mut [state("running")]),
            Status::Completed { result } => {
                object(&mut [state("completed"), ("result", result.clone().into())])
            }
            Status::TurnLimit => object(&mut [state("turn_limit")]),
            Status::Cancelled => object(&mut [state("cancelled")]),
            Status::Failed { error, code } => object(&mut [
                state("failed"),
                ("error", error.as_str().into()),
                ("code", code.clone().into()),
            ]),
            Status::Stalled { silent_ms } => {
                object(&mut [state("stalled"), ("silent_ms", (*silent_ms).into())])
            }
        }
    }
}

impl StageEntry {
    fn to_json(&self) -> Value {
        object(&mut [
            ("stage", self.stage.as_str().into()),
            ("message", self.message.as_str().into()),
            ("at", self.at.into()),
        ])
    }
}

impl Turn {
    fn to_json(&self) -> Value {
        object(&mut [
            ("number", self.number.into()),
            ("text", self.text.as_str().into()),
        ])
    }
}

impl MessageEntry {
    fn to_json(&self) -> Value {
        object(&mut [
            ("role", self.role.as_str().into()),
            ("content", self.content.as_str().into()),
        ])
    }
}

impl ToolCall {
    fn to_json(&self) -> Value {
        object(&mut [
            ("id", self.id.as_str().into()),
            ("name", self.name.as_str().into()),
            ("input", self.input.clone()),
            ("turn", self.turn.into()),
            ("result", self.result.clone().into()),
            ("isError", self.is_error.into()),
            ("durationMs", self.duration_ms.into()),
        ])
    }
}

impl FileChange {
    fn to_json(&self) -> Value {
        object(&mut [
            ("path", self.path.as_str().into()),
            ("action", self.action.as_str().into()),
            ("additions", self.additions.into()),
            ("deletions", self.deletions.into()),
        ])
    }
}

impl ErrorEntry {
    fn to_json(&self) -> Value {
        object(&mut [
            ("kind", self.kind.as_str().into()),
            ("error", self.error.as_str().into()),
            ("code", self.code.clone().into()),
        ])
    }
}

/// How a plan, task-creation or terraform session ended, told by the kind of its
/// last event alone (its data is not needed, so the browser's view decodes none of
/// it); their errors end them as failed (see `fold`). They are not marked running on
/// their way: they wait for a person's answers (`plan:interaction`,
/// `task-creation:questions`), which the stall check would take for a dead producer.
fn other_end(kind: &str) -> Option<Status> {
    match kind {
        "plan:completed" | "task-creation:completed" | "terraform:done" => {
            Some(Status::Completed { result: None })
        }
        "plan:cancelled" | "task-creation:cancelled" => Some(Status::Cancelled),
        _ => None,
    }
}

/// Whether offset `a` is at or before `b`. Offsets sort as strings (the protocol's
/// are written so), but an envelope may carry its position as a plain number
/// (`"offset": 10`): two plain numbers compare as numbers ("10" after "9").
fn at_or_before(a: &Offset, b: &Offset) -> bool {
    fn number(o: &Offset) -> Option<&str> {
        let s = o.as_str();
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.trim_start_matches('0'))
    }
    match (number(a), number(b)) {
        (Some(x), Some(y)) => (x.len(), x) <= (y.len(), y),
        _ => a <= b,
    }
}

#[cfg(test)]
mod tests;
