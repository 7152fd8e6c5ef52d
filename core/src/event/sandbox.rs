//! `sandbox:*` payloads: the life of the sandbox a session runs in.

use serde_json::Number;

string_enum! {
    /// Why a sandbox stops, in `sandbox:stopping`.
    StopReason {
        /// It was idle too long.
        IdleTimeout = "idle_timeout",
        /// Someone stopped it.
        Manual = "manual",
        /// It failed.
        Error = "error",
    }
}

data_struct! {
    /// `sandbox:creating`: a sandbox is being created from an image.
    SandboxCreating {
        /// The sandbox.
        sandbox_id: String = "sandboxId",
        /// The codespace, if any.
        codespace_id: Option<String> = "codespaceId",
        /// The image.
        image: String = "image",
    }
}

data_struct! {
    /// `sandbox:ready`: the sandbox runs.
    SandboxReady {
        /// The sandbox.
        sandbox_id: String = "sandboxId",
        /// The codespace, if any.
        codespace_id: Option<String> = "codespaceId",
        /// Its container.
        container_id: String = "containerId",
    }
}

data_struct! {
    /// `sandbox:idle`: the sandbox has been idle since a moment.
    SandboxIdle {
        /// The sandbox.
        sandbox_id: String = "sandboxId",
        /// The codespace, if any.
        codespace_id: Option<String> = "codespaceId",
        /// When it became idle, in milliseconds since the epoch.
        idle_since: u64 = "idleSince",
        /// After how many idle minutes it stops (a number: a fraction of a minute too).
        timeout_minutes: Number = "timeoutMinutes",
    }
}

data_struct! {
    /// `sandbox:stopping`: the sandbox is stopping.
    SandboxStopping {
        /// The sandbox.
        sandbox_id: String = "sandboxId",
        /// The codespace, if any.
        codespace_id: Option<String> = "codespaceId",
        /// Why.
        reason: StopReason = "reason",
    }
}

data_struct! {
    /// `sandbox:stopped`: the sandbox stopped.
    SandboxStopped {
        /// The sandbox.
        sandbox_id: String = "sandboxId",
        /// The codespace, if any.
        codespace_id: Option<String> = "codespaceId",
    }
}

data_struct! {
    /// `sandbox:error`: the sandbox failed.
    SandboxError {
        /// The sandbox.
        sandbox_id: String = "sandboxId",
        /// The codespace, if any.
        codespace_id: Option<String> = "codespaceId",
        /// What went wrong.
        error: String = "error",
        /// A machine-readable code.
        code: Option<String> = "code",
    }
}

data_struct! {
    /// `sandbox:tmux:created`: a tmux session was created in the sandbox.
    TmuxCreated {
        /// The sandbox.
        sandbox_id: String = "sandboxId",
        /// The codespace, if any.
        codespace_id: Option<String> = "codespaceId",
        /// The tmux session's name.
        session_name: String = "sessionName",
        /// The task it serves, if any.
        task_id: Option<String> = "taskId",
    }
}

data_struct! {
    /// `sandbox:tmux:destroyed`: a tmux session ended.
    TmuxDestroyed {
        /// The sandbox.
        sandbox_id: String = "sandboxId",
        /// The codespace, if any.
        codespace_id: Option<String> = "codespaceId",
        /// The tmux session's name.
        session_name: String = "sessionName",
    }
}
