//! `topology:*` payloads: sub-agents an agent spawns.

use serde_json::Number;

string_enum! {
    /// How a sub-agent ended.
    AgentOutcome {
        /// It finished.
        Completed = "completed",
        /// It failed.
        Failed = "failed",
        /// It was stopped.
        Stopped = "stopped",
    }
}

data_struct! {
    /// `topology:agent_spawned`: a sub-agent started.
    AgentSpawned {
        /// The sub-agent.
        agent_id: String,
        /// The task it works on, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task_id: Option<String>,
        /// Its name.
        name: String,
        /// Its role.
        role: String,
        /// Its type, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent_type: Option<String>,
        /// The agent that spawned it (`null` for a root agent).
        parent_id: Option<String>,
        /// The agent SDK's task identifier, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdk_task_id: Option<String>,
    }
}

data_struct! {
    /// `topology:agent_progress`: a sub-agent's running totals.
    AgentProgress {
        /// The sub-agent.
        agent_id: String,
        /// The agent SDK's task identifier.
        sdk_task_id: String,
        /// Tokens used.
        tokens: u64,
        /// Tool calls made.
        tool_uses: u64,
        /// Time spent, in milliseconds.
        duration_ms: Number,
        /// A summary so far.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
        /// The last tool it used.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_tool_name: Option<String>,
    }
}

data_struct! {
    /// `topology:agent_completed`: a sub-agent ended.
    AgentCompleted {
        /// The sub-agent.
        agent_id: String,
        /// The agent SDK's task identifier, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdk_task_id: Option<String>,
        /// How it ended.
        status: AgentOutcome,
        /// A summary.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
        /// Tokens used.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens: Option<u64>,
        /// Tool calls made.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_uses: Option<u64>,
        /// Time spent, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<Number>,
    }
}
