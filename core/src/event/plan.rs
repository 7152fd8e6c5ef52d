//! `plan:*` payloads: an interactive planning session.

use super::container_agent::Role;

data_struct! {
    /// `plan:started`: a planning session began.
    PlanStarted {
        /// The session.
        session_id: String,
        /// The task being planned.
        task_id: String,
        /// The codespace it runs in.
        codespace_id: String,
    }
}

data_struct! {
    /// `plan:turn`: a whole turn of the planning conversation.
    PlanTurn {
        /// The session.
        session_id: String,
        /// The turn's identifier.
        turn_id: String,
        /// Who spoke (`user` or `assistant`).
        role: Role,
        /// What was said.
        content: String,
    }
}

data_struct! {
    /// `plan:token`: one streamed chunk of planner text.
    PlanToken {
        /// The session.
        session_id: String,
        /// The text chunk.
        delta: String,
    }
}

data_struct! {
    /// One option of a planner question.
    PlanOption {
        /// The option's label.
        label: String,
        /// What choosing it means.
        description: String,
    }
}

data_struct! {
    /// One question the planner asks.
    PlanQuestion {
        /// The question.
        question: String,
        /// A short header.
        header: String,
        /// The options offered.
        options: Vec<PlanOption>,
        /// Whether several options may be chosen.
        multi_select: bool,
    }
}

data_struct! {
    /// `plan:interaction`: the planner asks the user questions.
    PlanInteraction {
        /// The session.
        session_id: String,
        /// The interaction's identifier.
        interaction_id: String,
        /// The questions.
        questions: Vec<PlanQuestion>,
    }
}

data_struct! {
    /// `plan:completed`: planning finished, possibly filing an issue.
    PlanCompleted {
        /// The session.
        session_id: String,
        /// The filed issue's URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issue_url: Option<String>,
        /// The filed issue's number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issue_number: Option<u64>,
    }
}

data_struct! {
    /// `plan:error`: planning failed.
    PlanError {
        /// The session.
        session_id: String,
        /// What went wrong.
        error: String,
        /// A machine-readable code.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    }
}

data_struct! {
    /// `plan:cancelled`: planning was cancelled.
    PlanCancelled {
        /// The session.
        session_id: String,
    }
}
