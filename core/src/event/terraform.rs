//! `terraform:*` payloads: infrastructure-code generation jobs.

use serde_json::{Map, Value};

data_struct! {
    /// Token usage of a job.
    Usage {
        /// Input tokens.
        input_tokens: u64 = "inputTokens",
        /// Output tokens.
        output_tokens: u64 = "outputTokens",
    }
}

data_struct! {
    /// `terraform:status`: the job reached a stage.
    TerraformStatus {
        /// The job.
        job_id: String = "jobId",
        /// The stage.
        stage: String = "stage",
        /// A description, if any.
        message: Option<String> = "message",
    }
}

data_struct! {
    /// `terraform:text`: one streamed chunk of text.
    TerraformText {
        /// The job.
        job_id: String = "jobId",
        /// The text chunk.
        delta: String = "delta",
    }
}

data_struct! {
    /// `terraform:modules`: the modules considered.
    TerraformModules {
        /// The job.
        job_id: String = "jobId",
        /// The modules.
        modules: Vec<Map<String, Value>> = "modules",
    }
}

data_struct! {
    /// `terraform:questions`: the job asks questions.
    TerraformQuestions {
        /// The job.
        job_id: String = "jobId",
        /// The questions.
        questions: Vec<Map<String, Value>> = "questions",
    }
}

data_struct! {
    /// `terraform:code`: generated code.
    TerraformCode {
        /// The job.
        job_id: String = "jobId",
        /// The code.
        code: String = "code",
        /// The files, if split.
        files: Option<Vec<Map<String, Value>>> = "files",
    }
}

data_struct! {
    /// `terraform:done`: the job finished.
    TerraformDone {
        /// The job.
        job_id: String = "jobId",
        /// The generated code.
        generated_code: Option<String> = "generatedCode",
        /// The modules matched.
        matched_modules: Option<Value> = "matchedModules",
        /// The validation result.
        validation_result: Option<Value> = "validationResult",
        /// The generated files.
        generated_files: Option<Value> = "generatedFiles",
        /// Token usage.
        usage: Option<Usage> = "usage",
    }
}

data_struct! {
    /// `terraform:error`: the job failed.
    TerraformError {
        /// The job.
        job_id: String = "jobId",
        /// What went wrong.
        error: String = "error",
        /// A machine-readable code.
        code: Option<String> = "code",
    }
}
