//! `sandbox:*` payloads: the life of the sandbox a session runs in.

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
        sandbox_id: String,
        /// The codespace, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        codespace_id: Option<String>,
        /// The image.
        image: String,
    }
}

data_struct! {
    /// `sandbox:ready`: the sandbox runs.
    SandboxReady {
        /// The sandbox.
        sandbox_id: String,
        /// The codespace, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        codespace_id: Option<String>,
        /// Its container.
        container_id: String,
    }
}

data_struct! {
    /// `sandbox:idle`: the sandbox has been idle since a moment.
    SandboxIdle {
        /// The sandbox.
        sandbox_id: String,
        /// The codespace, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        codespace_id: Option<String>,
        /// When it became idle, in milliseconds since the epoch.
        idle_since: u64,
        /// After how many idle minutes it stops.
        timeout_minutes: u64,
    }
}

data_struct! {
    /// `sandbox:stopping`: the sandbox is stopping.
    SandboxStopping {
        /// The sandbox.
        sandbox_id: String,
        /// The codespace, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        codespace_id: Option<String>,
        /// Why.
        reason: StopReason,
    }
}

data_struct! {
    /// `sandbox:stopped`: the sandbox stopped.
    SandboxStopped {
        /// The sandbox.
        sandbox_id: String,
        /// The codespace, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        codespace_id: Option<String>,
    }
}

data_struct! {
    /// `sandbox:error`: the sandbox failed.
    SandboxError {
        /// The sandbox.
        sandbox_id: String,
        /// The codespace, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        codespace_id: Option<String>,
        /// What went wrong.
        error: String,
        /// A machine-readable code.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    }
}

data_struct! {
    /// `sandbox:tmux:created`: a tmux session was created in the sandbox.
    TmuxCreated {
        /// The sandbox.
        sandbox_id: String,
        /// The codespace, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        codespace_id: Option<String>,
        /// The tmux session's name.
        session_name: String,
        /// The task it serves, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task_id: Option<String>,
    }
}

data_struct! {
    /// `sandbox:tmux:destroyed`: a tmux session ended.
    TmuxDestroyed {
        /// The sandbox.
        sandbox_id: String,
        /// The codespace, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        codespace_id: Option<String>,
        /// The tmux session's name.
        session_name: String,
    }
}
