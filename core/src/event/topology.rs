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
        agent_id: String = "agentId",
        /// The task it works on, if any.
        task_id: Option<String> = "taskId",
        /// Its name.
        name: String = "name",
        /// Its role.
        role: String = "role",
        /// Its type, if known.
        agent_type: Option<String> = "agentType",
        /// The agent that spawned it (`null` for a root agent).
        parent_id: Option<String> = "parentId" keep_null,
        /// The agent SDK's task identifier, if known.
        sdk_task_id: Option<String> = "sdkTaskId",
    }
}

data_struct! {
    /// `topology:agent_progress`: a sub-agent's running totals.
    AgentProgress {
        /// The sub-agent.
        agent_id: String = "agentId",
        /// The agent SDK's task identifier.
        sdk_task_id: String = "sdkTaskId",
        /// Tokens used.
        tokens: u64 = "tokens",
        /// Tool calls made.
        tool_uses: u64 = "toolUses",
        /// Time spent, in milliseconds.
        duration_ms: Number = "durationMs",
        /// A summary so far.
        summary: Option<String> = "summary",
        /// The last tool it used.
        last_tool_name: Option<String> = "lastToolName",
    }
}

data_struct! {
    /// `topology:agent_completed`: a sub-agent ended.
    AgentCompleted {
        /// The sub-agent.
        agent_id: String = "agentId",
        /// The agent SDK's task identifier, if known.
        sdk_task_id: Option<String> = "sdkTaskId",
        /// How it ended.
        status: AgentOutcome = "status",
        /// A summary.
        summary: Option<String> = "summary",
        /// Tokens used.
        tokens: Option<u64> = "tokens",
        /// Tool calls made.
        tool_uses: Option<u64> = "toolUses",
        /// Time spent, in milliseconds.
        duration_ms: Option<Number> = "durationMs",
    }
}
