//! The typed session event model: every kind agent task boards publish, the envelope
//! around them, their channels, and a lossless raw fallback.
//!
//! Decoding never fails on a well-formed envelope: an unknown kind, or a known kind
//! whose `data` does not fit, becomes [`Event::Raw`] with the reason. Every payload
//! struct keeps fields it does not know in `extra`, so re-encoding gives back what
//! arrived.
//!
//! ```
//! use gapless_core::event::{Channel, Event};
//! use serde_json::json;
//!
//! let event = Event::from_parts(
//!     "container-agent:turn",
//!     json!({"taskId": "t1", "sessionId": "s1", "turn": 2, "maxTurns": 10, "remaining": 8}),
//! );
//! assert!(matches!(event, Event::AgentTurn(ref t) if t.turn == 2));
//! assert_eq!(event.channel(), Channel::ContainerAgent);
//!
//! let unknown = Event::from_parts("robot:dance", json!({"moves": 3}));
//! assert!(matches!(unknown, Event::Raw(_)));
//! assert_eq!(unknown.data(), json!({"moves": 3}));
//! ```

#[macro_use]
mod macros;

mod channel;
mod container_agent;
mod envelope;
mod json;
mod plan;
mod raw;
mod sandbox;
mod task_creation;
mod terraform;
mod topology;

pub use channel::Channel;
pub use container_agent::*;
pub use envelope::{Envelope, EnvelopeError};

pub use plan::*;
pub use raw::{RawEvent, RawReason};
pub use sandbox::*;
use serde_json::Value;
pub use task_creation::*;
pub use terraform::*;
pub use topology::*;

events! {
    /// `container-agent:status`.
    AgentStatus(AgentStatus) = "container-agent:status",
    /// `container-agent:started`.
    AgentStarted(AgentStarted) = "container-agent:started",
    /// `container-agent:token` (a text delta).
    AgentToken(AgentToken) = "container-agent:token",
    /// `container-agent:turn`.
    AgentTurn(AgentTurn) = "container-agent:turn",
    /// `container-agent:tool:start`.
    ToolStart(ToolStart) = "container-agent:tool:start",
    /// `container-agent:tool:result`.
    ToolResult(ToolResult) = "container-agent:tool:result",
    /// `container-agent:message`.
    AgentMessage(AgentMessage) = "container-agent:message",
    /// `container-agent:complete` (terminal).
    AgentComplete(AgentComplete) = "container-agent:complete",
    /// `container-agent:error` (terminal).
    AgentError(AgentError) = "container-agent:error",
    /// `container-agent:cancelled` (terminal).
    AgentCancelled(AgentCancelled) = "container-agent:cancelled",
    /// `container-agent:plan_ready`.
    PlanReady(PlanReady) = "container-agent:plan_ready",
    /// `container-agent:task-update-failed`.
    TaskUpdateFailed(TaskUpdateFailed) = "container-agent:task-update-failed",
    /// `container-agent:worktree`.
    Worktree(Worktree) = "container-agent:worktree",
    /// `container-agent:file_changed`.
    FileChanged(FileChanged) = "container-agent:file_changed",
    /// `plan:started`.
    PlanStarted(PlanStarted) = "plan:started",
    /// `plan:turn`.
    PlanTurn(PlanTurn) = "plan:turn",
    /// `plan:token` (a text delta).
    PlanToken(PlanToken) = "plan:token",
    /// `plan:interaction`.
    PlanInteraction(PlanInteraction) = "plan:interaction",
    /// `plan:completed`.
    PlanCompleted(PlanCompleted) = "plan:completed",
    /// `plan:error`.
    PlanError(PlanError) = "plan:error",
    /// `plan:cancelled`.
    PlanCancelled(PlanCancelled) = "plan:cancelled",
    /// `sandbox:creating`.
    SandboxCreating(SandboxCreating) = "sandbox:creating",
    /// `sandbox:ready`.
    SandboxReady(SandboxReady) = "sandbox:ready",
    /// `sandbox:idle`.
    SandboxIdle(SandboxIdle) = "sandbox:idle",
    /// `sandbox:stopping`.
    SandboxStopping(SandboxStopping) = "sandbox:stopping",
    /// `sandbox:stopped`.
    SandboxStopped(SandboxStopped) = "sandbox:stopped",
    /// `sandbox:error`.
    SandboxError(SandboxError) = "sandbox:error",
    /// `sandbox:tmux:created`.
    TmuxCreated(TmuxCreated) = "sandbox:tmux:created",
    /// `sandbox:tmux:destroyed`.
    TmuxDestroyed(TmuxDestroyed) = "sandbox:tmux:destroyed",
    /// `task-creation:started`.
    TaskCreationStarted(TaskCreationStarted) = "task-creation:started",
    /// `task-creation:message`.
    TaskCreationMessage(TaskCreationMessage) = "task-creation:message",
    /// `task-creation:token` (a text delta).
    TaskCreationToken(TaskCreationToken) = "task-creation:token",
    /// `task-creation:suggestion`.
    TaskCreationSuggestion(TaskCreationSuggestion) = "task-creation:suggestion",
    /// `task-creation:questions`.
    TaskCreationQuestions(TaskCreationQuestions) = "task-creation:questions",
    /// `task-creation:processing`.
    TaskCreationProcessing(TaskCreationProcessing) = "task-creation:processing",
    /// `task-creation:completed`.
    TaskCreationCompleted(TaskCreationCompleted) = "task-creation:completed",
    /// `task-creation:cancelled`.
    TaskCreationCancelled(TaskCreationCancelled) = "task-creation:cancelled",
    /// `task-creation:error`.
    TaskCreationError(TaskCreationError) = "task-creation:error",
    /// `topology:agent_spawned`.
    AgentSpawned(AgentSpawned) = "topology:agent_spawned",
    /// `topology:agent_progress`.
    AgentProgress(AgentProgress) = "topology:agent_progress",
    /// `topology:agent_completed`.
    AgentCompleted(AgentCompleted) = "topology:agent_completed",
    /// `terraform:status`.
    TerraformStatus(TerraformStatus) = "terraform:status",
    /// `terraform:text` (a text delta).
    TerraformText(TerraformText) = "terraform:text",
    /// `terraform:modules`.
    TerraformModules(TerraformModules) = "terraform:modules",
    /// `terraform:questions`.
    TerraformQuestions(TerraformQuestions) = "terraform:questions",
    /// `terraform:code`.
    TerraformCode(TerraformCode) = "terraform:code",
    /// `terraform:done`.
    TerraformDone(TerraformDone) = "terraform:done",
    /// `terraform:error`.
    TerraformError(TerraformError) = "terraform:error",
}

/// A payload struct of one event kind.
pub trait Payload: Sized + Into<Event> {
    /// The kind's wire name.
    const KIND: &'static str;

    /// Decodes the kind's `data`: the struct, or the first reason it does not fit.
    fn decode_data(data: &Value) -> Result<Self, String>;
}

/// The fields of `kind`'s payload, for a kind this version types.
fn schema(kind: &str) -> Option<&'static [json::Field]> {
    KINDS.iter().position(|k| *k == kind).map(|i| SCHEMAS[i])
}

/// A strict check refused an event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The kind is not one this version knows.
    #[error("unknown event type {0:?}")]
    UnknownKind(String),
    /// The kind is known but its data does not fit.
    #[error("invalid data for {kind}: {reason}")]
    InvalidData {
        /// The kind.
        kind: String,
        /// What does not fit (the field and the expectation).
        reason: String,
    },
}

impl Event {
    /// Decodes `data` as the one kind `T`, falling back to [`Event::Raw`] with the
    /// reason: what [`Event::from_parts`] gives for `T::KIND`, for a reader that decodes
    /// only some kinds.
    ///
    /// ```
    /// use gapless_core::event::{AgentToken, Event};
    /// use serde_json::json;
    ///
    /// let data = json!({"taskId": "t", "sessionId": "s", "delta": "Hi"});
    /// let event = Event::decode_as::<AgentToken>(data.clone());
    /// assert_eq!(event, Event::from_parts("container-agent:token", data));
    /// ```
    pub fn decode_as<T: Payload>(data: Value) -> Event {
        match T::decode_data(&data) {
            Ok(payload) => payload.into(),
            Err(why) => Event::Raw(RawEvent::invalid(T::KIND, data, why)),
        }
    }

    /// Checks `data` against `kind`'s schema without decoding it into its struct: a
    /// known kind whose data fits is [`RawReason::NotDecoded`], one whose data does not
    /// fit is [`RawReason::Invalid`] with the message [`Event::from_parts`] would give,
    /// and an unknown kind is [`RawReason::UnknownKind`]. [`Event::data`] is the same as
    /// for the decoded event. For readers that need the struct of only some kinds: the
    /// others' decoders stay out of their build (the browser package).
    ///
    /// ```
    /// use gapless_core::event::{Event, RawReason};
    /// use serde_json::json;
    ///
    /// let data = json!({"taskId": "t", "sessionId": "s", "delta": "Hi", "x": null});
    /// let Event::Raw(raw) = Event::checked("container-agent:token", data.clone()) else {
    ///     panic!("kept as JSON")
    /// };
    /// assert_eq!(raw.reason, RawReason::NotDecoded);
    /// let Event::Raw(bad) = Event::checked("container-agent:token", json!({})) else {
    ///     panic!("invalid")
    /// };
    /// assert!(matches!(bad.reason, RawReason::Invalid(_)));
    /// ```
    pub fn checked(kind: &str, data: Value) -> Event {
        Event::Raw(
            match schema(kind).map(|fields| json::check(&data, fields)) {
                Some(Ok(())) => RawEvent::not_decoded(kind, data),
                Some(Err(why)) => RawEvent::invalid(kind, data, why),
                None => RawEvent::unknown(kind, data),
            },
        )
    }

    /// The kind's storage channel.
    pub fn channel(&self) -> Channel {
        Channel::of(self.kind())
    }

    /// Fails unless the event is typed (or checked against its schema): `allow_unknown`
    /// lets unknown kinds through, but a known kind with data that does not fit is always
    /// an error.
    ///
    /// ```
    /// use gapless_core::event::{Event, EventError};
    /// use serde_json::json;
    ///
    /// let bad = Event::from_parts("container-agent:turn", json!({"turn": "two"}));
    /// assert!(matches!(bad.check(true), Err(EventError::InvalidData { .. })));
    /// let unknown = Event::from_parts("robot:dance", json!({}));
    /// assert!(unknown.check(true).is_ok());
    /// let turn = json!({"taskId": "t", "sessionId": "s", "turn": 1, "maxTurns": 2, "remaining": 1});
    /// assert!(Event::checked("container-agent:turn", turn).check(false).is_ok());
    /// assert!(matches!(unknown.check(false), Err(EventError::UnknownKind(_))));
    /// ```
    pub fn check(&self, allow_unknown: bool) -> Result<(), EventError> {
        match self {
            Event::Raw(RawEvent {
                reason: RawReason::Invalid(reason),
                kind,
                ..
            }) => Err(EventError::InvalidData {
                kind: kind.clone(),
                reason: reason.clone(),
            }),
            Event::Raw(RawEvent {
                reason: RawReason::UnknownKind,
                kind,
                ..
            }) if !allow_unknown => Err(EventError::UnknownKind(kind.clone())),
            _ => Ok(()),
        }
    }

    /// The text delta of a token kind (`*:token`, `terraform:text`), if this is one.
    pub fn token_delta(&self) -> Option<&str> {
        match self {
            Event::AgentToken(t) => Some(&t.delta),
            Event::PlanToken(t) => Some(&t.delta),
            Event::TaskCreationToken(t) => Some(&t.delta),
            Event::TerraformText(t) => Some(&t.delta),
            _ => None,
        }
    }

    /// Whether this kind ends a container-agent session (`complete`, `error`,
    /// `cancelled`).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Event::AgentComplete(_) | Event::AgentError(_) | Event::AgentCancelled(_)
        )
    }
}

#[cfg(test)]
pub(crate) mod tests;
