//! `task-creation:*` payloads: a conversation that turns a request into a task.

use super::container_agent::Role;

string_enum! {
    /// A suggested task's priority.
    Priority {
        /// High.
        High = "high",
        /// Medium.
        Medium = "medium",
        /// Low.
        Low = "low",
    }
}

data_struct! {
    /// A suggested task.
    Suggestion {
        /// Its title.
        title: String,
        /// Its description.
        description: String,
        /// Its labels.
        labels: Vec<String>,
        /// Its priority.
        priority: Priority,
    }
}

data_struct! {
    /// One option of a clarifying question.
    QuestionOption {
        /// The option's label.
        label: String,
        /// What choosing it means.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    }
}

data_struct! {
    /// One clarifying question.
    ClarifyingQuestion {
        /// A short header.
        header: String,
        /// The question.
        question: String,
        /// The options offered.
        options: Vec<QuestionOption>,
    }
}

data_struct! {
    /// A round of clarifying questions.
    QuestionRound {
        /// The round's identifier.
        id: String,
        /// The questions.
        questions: Vec<ClarifyingQuestion>,
        /// The round number.
        round: u32,
        /// Questions asked so far.
        total_asked: u32,
        /// The most questions that will be asked.
        max_questions: u32,
    }
}

data_struct! {
    /// `task-creation:started`.
    TaskCreationStarted {
        /// The session.
        session_id: String,
        /// The codespace.
        codespace_id: String,
    }
}

data_struct! {
    /// `task-creation:message`: a whole message of the conversation.
    TaskCreationMessage {
        /// The session.
        session_id: String,
        /// The message's identifier.
        message_id: String,
        /// Who wrote it (`user` or `assistant`).
        role: Role,
        /// Its text.
        content: String,
    }
}

data_struct! {
    /// `task-creation:token`: one streamed chunk of assistant text.
    TaskCreationToken {
        /// The session.
        session_id: String,
        /// The text chunk.
        delta: String,
    }
}

data_struct! {
    /// `task-creation:suggestion`: the assistant suggests a task.
    TaskCreationSuggestion {
        /// The session.
        session_id: String,
        /// The suggested task.
        suggestion: Suggestion,
    }
}

data_struct! {
    /// `task-creation:questions`: the assistant asks clarifying questions.
    TaskCreationQuestions {
        /// The session.
        session_id: String,
        /// The round of questions.
        questions: QuestionRound,
    }
}

data_struct! {
    /// `task-creation:processing`: the assistant is working.
    TaskCreationProcessing {
        /// The session.
        session_id: String,
        /// What it is doing, if said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    }
}

data_struct! {
    /// `task-creation:completed`: a task was created.
    TaskCreationCompleted {
        /// The session.
        session_id: String,
        /// The created task.
        task_id: String,
        /// The suggestion it was created from.
        suggestion: Suggestion,
    }
}

data_struct! {
    /// `task-creation:cancelled`.
    TaskCreationCancelled {
        /// The session.
        session_id: String,
    }
}

data_struct! {
    /// `task-creation:error`.
    TaskCreationError {
        /// The session.
        session_id: String,
        /// What went wrong.
        error: String,
        /// A machine-readable code.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    }
}
