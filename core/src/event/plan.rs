//! `plan:*` payloads: an interactive planning session.

use super::container_agent::Role;

data_struct! {
    /// `plan:started`: a planning session began.
    PlanStarted {
        /// The session.
        session_id: String = "sessionId",
        /// The task being planned.
        task_id: String = "taskId",
        /// The codespace it runs in.
        codespace_id: String = "codespaceId",
    }
}

data_struct! {
    /// `plan:turn`: a whole turn of the planning conversation.
    PlanTurn {
        /// The session.
        session_id: String = "sessionId",
        /// The turn's identifier.
        turn_id: String = "turnId",
        /// Who spoke (`user` or `assistant`).
        role: Role = "role",
        /// What was said.
        content: String = "content",
    }
}

data_struct! {
    /// `plan:token`: one streamed chunk of planner text.
    PlanToken {
        /// The session.
        session_id: String = "sessionId",
        /// The text chunk.
        delta: String = "delta",
    }
}

data_struct! {
    /// One option of a planner question.
    PlanOption {
        /// The option's label.
        label: String = "label",
        /// What choosing it means.
        description: String = "description",
    }
}

data_struct! {
    /// One question the planner asks.
    PlanQuestion {
        /// The question.
        question: String = "question",
        /// A short header.
        header: String = "header",
        /// The options offered.
        options: Vec<PlanOption> = "options",
        /// Whether several options may be chosen.
        multi_select: bool = "multiSelect",
    }
}

data_struct! {
    /// `plan:interaction`: the planner asks the user questions.
    PlanInteraction {
        /// The session.
        session_id: String = "sessionId",
        /// The interaction's identifier.
        interaction_id: String = "interactionId",
        /// The questions.
        questions: Vec<PlanQuestion> = "questions",
    }
}

data_struct! {
    /// `plan:completed`: planning finished, possibly filing an issue.
    PlanCompleted {
        /// The session.
        session_id: String = "sessionId",
        /// The filed issue's URL.
        issue_url: Option<String> = "issueUrl",
        /// The filed issue's number.
        issue_number: Option<u64> = "issueNumber",
    }
}

data_struct! {
    /// `plan:error`: planning failed.
    PlanError {
        /// The session.
        session_id: String = "sessionId",
        /// What went wrong.
        error: String = "error",
        /// A machine-readable code.
        code: Option<String> = "code",
    }
}

data_struct! {
    /// `plan:cancelled`: planning was cancelled.
    PlanCancelled {
        /// The session.
        session_id: String = "sessionId",
    }
}
