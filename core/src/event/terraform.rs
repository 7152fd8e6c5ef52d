//! `terraform:*` payloads: infrastructure-code generation jobs.

use serde_json::{Map, Value};

data_struct! {
    /// Token usage of a job.
    Usage {
        /// Input tokens.
        input_tokens: u64,
        /// Output tokens.
        output_tokens: u64,
    }
}

data_struct! {
    /// `terraform:status`: the job reached a stage.
    TerraformStatus {
        /// The job.
        job_id: String,
        /// The stage.
        stage: String,
        /// A description, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    }
}

data_struct! {
    /// `terraform:text`: one streamed chunk of text.
    TerraformText {
        /// The job.
        job_id: String,
        /// The text chunk.
        delta: String,
    }
}

data_struct! {
    /// `terraform:modules`: the modules considered.
    TerraformModules {
        /// The job.
        job_id: String,
        /// The modules.
        modules: Vec<Map<String, Value>>,
    }
}

data_struct! {
    /// `terraform:questions`: the job asks questions.
    TerraformQuestions {
        /// The job.
        job_id: String,
        /// The questions.
        questions: Vec<Map<String, Value>>,
    }
}

data_struct! {
    /// `terraform:code`: generated code.
    TerraformCode {
        /// The job.
        job_id: String,
        /// The code.
        code: String,
        /// The files, if split.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        files: Option<Vec<Map<String, Value>>>,
    }
}

data_struct! {
    /// `terraform:done`: the job finished.
    TerraformDone {
        /// The job.
        job_id: String,
        /// The generated code.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        generated_code: Option<String>,
        /// The modules matched.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matched_modules: Option<Value>,
        /// The validation result.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        validation_result: Option<Value>,
        /// The generated files.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        generated_files: Option<Value>,
        /// Token usage.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
    }
}

data_struct! {
    /// `terraform:error`: the job failed.
    TerraformError {
        /// The job.
        job_id: String,
        /// What went wrong.
        error: String,
        /// A machine-readable code.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    }
}
