//! `container-agent:*` payloads: what the agent runner inside a sandbox reports.

use serde_json::{Number, Value};

string_enum! {
    /// The runner's start-up stage, in `container-agent:status`.
    AgentStage {
        /// The runner is starting.
        Initializing = "initializing",
        /// Inputs are being validated.
        Validating = "validating",
        /// Credentials are being fetched.
        Credentials = "credentials",
        /// Skills are being injected into the sandbox.
        InjectingSkills = "injecting_skills",
        /// The sandbox is being created.
        CreatingSandbox = "creating_sandbox",
        /// The agent is executing.
        Executing = "executing",
        /// The agent is running.
        Running = "running",
    }
}

string_enum! {
    /// Who wrote a message.
    Role {
        /// The user.
        User = "user",
        /// The assistant (the agent).
        Assistant = "assistant",
        /// The system prompt or the runner.
        System = "system",
    }
}

string_enum! {
    /// How a session ended, in `container-agent:complete`.
    CompletionStatus {
        /// The agent finished its work.
        Completed = "completed",
        /// The agent used every turn it had.
        TurnLimit = "turn_limit",
        /// The session was cancelled.
        Cancelled = "cancelled",
    }
}

string_enum! {
    /// What happened to a file, in `container-agent:file_changed`.
    FileAction {
        /// The file was created.
        Create = "create",
        /// The file was modified.
        Modify = "modify",
        /// The file was deleted.
        Delete = "delete",
    }
}

data_struct! {
    /// `container-agent:status`: the runner reached a stage.
    AgentStatus {
        /// The task the session works on.
        task_id: String,
        /// The session.
        session_id: String,
        /// The stage reached.
        stage: AgentStage,
        /// A human-readable description.
        message: String,
    }
}

data_struct! {
    /// `container-agent:started`: the agent started with a model and a turn budget.
    AgentStarted {
        /// The task the session works on.
        task_id: String,
        /// The session.
        session_id: String,
        /// The model in use.
        model: String,
        /// The turn budget.
        max_turns: u32,
        /// The sandbox provider, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sandbox_provider: Option<String>,
        /// The sandbox container, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sandbox_container_id: Option<String>,
    }
}

data_struct! {
    /// `container-agent:token`: one streamed chunk of assistant text.
    AgentToken {
        /// The task the session works on.
        task_id: String,
        /// The session.
        session_id: String,
        /// The text chunk.
        delta: String,
    }
}

data_struct! {
    /// `container-agent:turn`: a new turn began.
    AgentTurn {
        /// The task the session works on.
        task_id: String,
        /// The session.
        session_id: String,
        /// The turn number (1-based).
        turn: u32,
        /// The turn budget.
        max_turns: u32,
        /// Turns left.
        remaining: u32,
    }
}

data_struct! {
    /// `container-agent:tool:start`: the agent called a tool.
    ToolStart {
        /// The task the session works on.
        task_id: String,
        /// The session.
        session_id: String,
        /// The tool's name.
        tool_name: String,
        /// The call's identifier, shared with its result.
        tool_id: String,
        /// The call's input object.
        input: Value,
    }
}

data_struct! {
    /// `container-agent:tool:result`: a tool call finished.
    ToolResult {
        /// The task the session works on.
        task_id: String,
        /// The session.
        session_id: String,
        /// The tool's name.
        tool_name: String,
        /// The call's identifier, shared with its start.
        tool_id: String,
        /// The tool's output.
        result: String,
        /// Whether the output is an error.
        is_error: bool,
        /// How long the call took, in milliseconds.
        duration_ms: Number,
    }
}

data_struct! {
    /// `container-agent:message`: a whole message of the conversation.
    AgentMessage {
        /// The task the session works on.
        task_id: String,
        /// The session.
        session_id: String,
        /// Who wrote it.
        role: Role,
        /// Its text.
        content: String,
    }
}

data_struct! {
    /// `container-agent:complete`: the session ended normally (terminal).
    AgentComplete {
        /// The task the session works on.
        task_id: String,
        /// The session.
        session_id: String,
        /// How it ended.
        status: CompletionStatus,
        /// Turns used.
        turn_count: u32,
        /// The agent's final result, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<String>,
    }
}

data_struct! {
    /// `container-agent:error`: the session failed (terminal).
    AgentError {
        /// The task the session works on.
        task_id: String,
        /// The session.
        session_id: String,
        /// What went wrong.
        error: String,
        /// A machine-readable code: `STREAM_ERROR`, `UNCAUGHT_ERROR`, `EPIPE`, ...
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        /// Turns used before the failure.
        turn_count: u32,
    }
}

data_struct! {
    /// `container-agent:cancelled`: the session was cancelled (terminal).
    AgentCancelled {
        /// The task the session works on.
        task_id: String,
        /// The session.
        session_id: String,
        /// Turns used before the cancellation.
        turn_count: u32,
    }
}

data_struct! {
    /// A prompt the plan allows without asking, in `container-agent:plan_ready`.
    AllowedPrompt {
        /// The tool (`Bash`).
        tool: String,
        /// The allowed prompt.
        prompt: String,
    }
}

data_struct! {
    /// `container-agent:plan_ready`: the agent produced a plan.
    PlanReady {
        /// The task the session works on.
        task_id: String,
        /// The session.
        session_id: String,
        /// The plan's text.
        plan: String,
        /// Turns used.
        turn_count: u32,
        /// The agent SDK's session identifier.
        sdk_session_id: String,
        /// Prompts the plan allows without asking.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allowed_prompts: Option<Vec<AllowedPrompt>>,
    }
}

data_struct! {
    /// `container-agent:task-update-failed`: the runner could not update the task.
    TaskUpdateFailed {
        /// The task the session works on.
        task_id: String,
        /// The session.
        session_id: String,
        /// What went wrong.
        error: String,
        /// The status it tried to set.
        attempted_status: String,
    }
}

data_struct! {
    /// `container-agent:worktree`: the git worktree the agent works in.
    Worktree {
        /// The task the session works on.
        task_id: String,
        /// The session.
        session_id: String,
        /// The worktree's identifier.
        worktree_id: String,
        /// The branch checked out.
        branch: String,
        /// Its path inside the container.
        container_path: String,
    }
}

data_struct! {
    /// `container-agent:file_changed`: the agent changed a file.
    FileChanged {
        /// The task the session works on.
        task_id: String,
        /// The session.
        session_id: String,
        /// The file's path.
        path: String,
        /// What happened to it.
        action: FileAction,
        /// The tool that changed it.
        tool_name: String,
        /// Lines added, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        additions: Option<u64>,
        /// Lines deleted, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deletions: Option<u64>,
    }
}
