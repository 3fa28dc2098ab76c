//! What can go wrong in the domain, in the domain's words. `http::error` maps each kind onto the
//! contract's HTTP error in one place; the domain never names a status code.

use crate::card_source::CardSourceError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The request breaks a rule of the contract; `field` names the JSON field to blame, when
    /// one is.
    #[error("{}", invalid_message(field.as_deref(), reason))]
    Invalid { field: Option<String>, reason: String },
    /// The card source failed or timed out.
    #[error(transparent)]
    CardSource(#[from] CardSourceError),
    /// The card source did not answer within the decision deadline.
    #[error("card source missed the {deadline_ms} ms deadline")]
    DeadlineMissed { deadline_ms: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A fault of ours (a value that does not serialize, a key that does not work).
    #[error("internal error: {0}")]
    Internal(String),
}

fn invalid_message(field: Option<&str>, reason: &str) -> String {
    match field {
        Some(field) => format!("`{field}` {reason}"),
        None => reason.to_owned(),
    }
}

impl DomainError {
    /// `field` breaks a rule: "`field` reason".
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> DomainError {
        DomainError::Invalid { field: Some(field.into()), reason: reason.into() }
    }

    /// The request as a whole breaks a rule.
    pub fn rule(reason: impl Into<String>) -> DomainError {
        DomainError::Invalid { field: None, reason: reason.into() }
    }

    /// The same error, its field found under `prefix` (an event of a batch, a nested object).
    pub fn within(self, prefix: &str) -> DomainError {
        match self {
            DomainError::Invalid { field: Some(field), reason } => {
                DomainError::Invalid { field: Some(format!("{prefix}.{field}")), reason }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_field() {
        assert_eq!(DomainError::invalid("tokenLast4", "must be 4 digits").to_string(), "`tokenLast4` must be 4 digits");
        assert_eq!(DomainError::rule("the batch holds no event").to_string(), "the batch holds no event");
        assert_eq!(
            DomainError::invalid("phone", "must not be empty").within("data").to_string(),
            "`data.phone` must not be empty"
        );
    }
}
