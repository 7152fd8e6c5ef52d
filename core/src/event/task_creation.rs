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
        title: String = "title",
        /// Its description.
        description: String = "description",
        /// Its labels.
        labels: Vec<String> = "labels",
        /// Its priority.
        priority: Priority = "priority",
    }
}

data_struct! {
    /// One option of a clarifying question.
    QuestionOption {
        /// The option's label.
        label: String = "label",
        /// What choosing it means.
        description: Option<String> = "description",
    }
}

data_struct! {
    /// One clarifying question.
    ClarifyingQuestion {
        /// A short header.
        header: String = "header",
        /// The question.
        question: String = "question",
        /// The options offered.
        options: Vec<QuestionOption> = "options",
    }
}

data_struct! {
    /// A round of clarifying questions.
    QuestionRound {
        /// The round's identifier.
        id: String = "id",
        /// The questions.
        questions: Vec<ClarifyingQuestion> = "questions",
        /// The round number.
        round: u32 = "round",
        /// Questions asked so far.
        total_asked: u32 = "totalAsked",
        /// The most questions that will be asked.
        max_questions: u32 = "maxQuestions",
    }
}

data_struct! {
    /// `task-creation:started`.
    TaskCreationStarted {
        /// The session.
        session_id: String = "sessionId",
        /// The codespace.
        codespace_id: String = "codespaceId",
    }
}

data_struct! {
    /// `task-creation:message`: a whole message of the conversation.
    TaskCreationMessage {
        /// The session.
        session_id: String = "sessionId",
        /// The message's identifier.
        message_id: String = "messageId",
        /// Who wrote it (`user` or `assistant`).
        role: Role = "role",
        /// Its text.
        content: String = "content",
    }
}

data_struct! {
    /// `task-creation:token`: one streamed chunk of assistant text.
    TaskCreationToken {
        /// The session.
        session_id: String = "sessionId",
        /// The text chunk.
        delta: String = "delta",
    }
}

data_struct! {
    /// `task-creation:suggestion`: the assistant suggests a task.
    TaskCreationSuggestion {
        /// The session.
        session_id: String = "sessionId",
        /// The suggested task.
        suggestion: Suggestion = "suggestion",
    }
}

data_struct! {
    /// `task-creation:questions`: the assistant asks clarifying questions.
    TaskCreationQuestions {
        /// The session.
        session_id: String = "sessionId",
        /// The round of questions.
        questions: QuestionRound = "questions",
    }
}

data_struct! {
    /// `task-creation:processing`: the assistant is working.
    TaskCreationProcessing {
        /// The session.
        session_id: String = "sessionId",
        /// What it is doing, if said.
        message: Option<String> = "message",
    }
}

data_struct! {
    /// `task-creation:completed`: a task was created.
    TaskCreationCompleted {
        /// The session.
        session_id: String = "sessionId",
        /// The created task.
        task_id: String = "taskId",
        /// The suggestion it was created from.
        suggestion: Suggestion = "suggestion",
    }
}

data_struct! {
    /// `task-creation:cancelled`.
    TaskCreationCancelled {
        /// The session.
        session_id: String = "sessionId",
    }
}

data_struct! {
    /// `task-creation:error`.
    TaskCreationError {
        /// The session.
        session_id: String = "sessionId",
        /// What went wrong.
        error: String = "error",
        /// A machine-readable code.
        code: Option<String> = "code",
    }
}
