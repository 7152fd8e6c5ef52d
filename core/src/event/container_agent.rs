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
        task_id: String = "taskId",
        /// The session.
        session_id: String = "sessionId",
        /// The stage reached.
        stage: AgentStage = "stage",
        /// A human-readable description.
        message: String = "message",
    }
}

data_struct! {
    /// `container-agent:started`: the agent started with a model and a turn budget.
    AgentStarted {
        /// The task the session works on.
        task_id: String = "taskId",
        /// The session.
        session_id: String = "sessionId",
        /// The model in use.
        model: String = "model",
        /// The turn budget.
        max_turns: u32 = "maxTurns",
        /// The sandbox provider, if known.
        sandbox_provider: Option<String> = "sandboxProvider",
        /// The sandbox container, if known.
        sandbox_container_id: Option<String> = "sandboxContainerId",
    }
}

data_struct! {
    /// `container-agent:token`: one streamed chunk of assistant text.
    AgentToken {
        /// The task the session works on.
        task_id: String = "taskId",
        /// The session.
        session_id: String = "sessionId",
        /// The text chunk.
        delta: String = "delta",
    }
}

data_struct! {
    /// `container-agent:turn`: a new turn began.
    AgentTurn {
        /// The task the session works on.
        task_id: String = "taskId",
        /// The session.
        session_id: String = "sessionId",
        /// The turn number (1-based).
        turn: u32 = "turn",
        /// The turn budget.
        max_turns: u32 = "maxTurns",
        /// Turns left (a number: below zero once a session runs past its budget).
        remaining: Number = "remaining",
    }
}

data_struct! {
    /// `container-agent:tool:start`: the agent called a tool.
    ToolStart {
        /// The task the session works on.
        task_id: String = "taskId",
        /// The session.
        session_id: String = "sessionId",
        /// The tool's name.
        tool_name: String = "toolName",
        /// The call's identifier, shared with its result.
        tool_id: String = "toolId",
        /// The call's input object.
        input: Value = "input",
    }
}

data_struct! {
    /// `container-agent:tool:result`: a tool call finished.
    ToolResult {
        /// The task the session works on.
        task_id: String = "taskId",
        /// The session.
        session_id: String = "sessionId",
        /// The tool's name.
        tool_name: String = "toolName",
        /// The call's identifier, shared with its start.
        tool_id: String = "toolId",
        /// The tool's output.
        result: String = "result",
        /// Whether the output is an error.
        is_error: bool = "isError",
        /// How long the call took, in milliseconds.
        duration_ms: Number = "durationMs",
    }
}

data_struct! {
    /// `container-agent:message`: a whole message of the conversation.
    AgentMessage {
        /// The task the session works on.
        task_id: String = "taskId",
        /// The session.
        session_id: String = "sessionId",
        /// Who wrote it.
        role: Role = "role",
        /// Its text.
        content: String = "content",
    }
}

data_struct! {
    /// `container-agent:complete`: the session ended normally (terminal).
    AgentComplete {
        /// The task the session works on.
        task_id: String = "taskId",
        /// The session.
        session_id: String = "sessionId",
        /// How it ended.
        status: CompletionStatus = "status",
        /// Turns used.
        turn_count: u32 = "turnCount",
        /// The agent's final result, if any.
        result: Option<String> = "result",
    }
}

data_struct! {
    /// `container-agent:error`: the session failed (terminal).
    AgentError {
        /// The task the session works on.
        task_id: String = "taskId",
        /// The session.
        session_id: String = "sessionId",
        /// What went wrong.
        error: String = "error",
        /// A machine-readable code: `STREAM_ERROR`, `UNCAUGHT_ERROR`, `EPIPE`, ...
        code: Option<String> = "code",
        /// Turns used before the failure.
        turn_count: u32 = "turnCount",
    }
}

data_struct! {
    /// `container-agent:cancelled`: the session was cancelled (terminal).
    AgentCancelled {
        /// The task the session works on.
        task_id: String = "taskId",
        /// The session.
        session_id: String = "sessionId",
        /// Turns used before the cancellation.
        turn_count: u32 = "turnCount",
    }
}

data_struct! {
    /// A prompt the plan allows without asking, in `container-agent:plan_ready`.
    AllowedPrompt {
        /// The tool (`Bash`).
        tool: String = "tool",
        /// The allowed prompt.
        prompt: String = "prompt",
    }
}

data_struct! {
    /// `container-agent:plan_ready`: the agent produced a plan.
    PlanReady {
        /// The task the session works on.
        task_id: String = "taskId",
        /// The session.
        session_id: String = "sessionId",
        /// The plan's text.
        plan: String = "plan",
        /// Turns used.
        turn_count: u32 = "turnCount",
        /// The agent SDK's session identifier.
        sdk_session_id: String = "sdkSessionId",
        /// Prompts the plan allows without asking.
        allowed_prompts: Option<Vec<AllowedPrompt>> = "allowedPrompts",
    }
}

data_struct! {
    /// `container-agent:task-update-failed`: the runner could not update the task.
    TaskUpdateFailed {
        /// The task the session works on.
        task_id: String = "taskId",
        /// The session.
        session_id: String = "sessionId",
        /// What went wrong.
        error: String = "error",
        /// The status it tried to set.
        attempted_status: String = "attemptedStatus",
    }
}

data_struct! {
    /// `container-agent:worktree`: the git worktree the agent works in.
    Worktree {
        /// The task the session works on.
        task_id: String = "taskId",
        /// The session.
        session_id: String = "sessionId",
        /// The worktree's identifier.
        worktree_id: String = "worktreeId",
        /// The branch checked out.
        branch: String = "branch",
        /// Its path inside the container.
        container_path: String = "containerPath",
    }
}

data_struct! {
    /// `container-agent:file_changed`: the agent changed a file.
    FileChanged {
        /// The task the session works on.
        task_id: String = "taskId",
        /// The session.
        session_id: String = "sessionId",
        /// The file's path.
        path: String = "path",
        /// What happened to it.
        action: FileAction = "action",
        /// The tool that changed it.
        tool_name: String = "toolName",
        /// Lines added, if known.
        additions: Option<u64> = "additions",
        /// Lines deleted, if known.
        deletions: Option<u64> = "deletions",
    }
}
