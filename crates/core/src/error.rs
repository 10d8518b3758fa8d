//! Errors a step can return. Each says whose fault it is, so the engine knows what to do.

use thiserror::Error;

/// Why a step could not transform a message.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum StepError {
    /// The message's data is not acceptable to this step (the user's data, not our bug).
    /// The message goes to the dead-letter output with this reason; the pipeline goes on.
    /// Retrying the same message cannot help.
    #[error("{step}: {reason}")]
    BadInput {
        /// The step that refused the message.
        step: &'static str,
        /// What is wrong and what the user can do about it.
        reason: String,
    },
    /// A bug in streamprep (an Arrow kernel refused what we built). Reported, message dead-lettered.
    #[error("{step}: internal error: {reason}")]
    Internal {
        /// The step where it happened.
        step: &'static str,
        /// The underlying error.
        reason: String,
    },
}

impl StepError {
    /// The step that failed.
    pub fn step(&self) -> &'static str {
        match self {
            StepError::BadInput { step, .. } | StepError::Internal { step, .. } => step,
        }
    }

    /// Wrap an Arrow error raised inside `step` (our bug, not the user's data).
    pub fn arrow(step: &'static str, e: arrow_schema::ArrowError) -> Self {
        StepError::Internal {
            step,
            reason: e.to_string(),
        }
    }
}
