//! What an operator can do, each action written once and called by both of the operator's
//! surfaces: the CLI (`cli.rs`: `outbox …`, `apikey …`) and the ops API (`http/ops/`). The
//! actions speak the store's and the domain's types; how a surface reads its input and shows an
//! outcome (HTTP status and JSON, or a line and an exit code) stays with the surface.
//!
//! - [`audit`]: the audit row of an operator write, built one way for both surfaces;
//! - [`outbox`]: list, show, retry, skip and replay outbox rows;
//! - [`api_keys`]: create, list and revoke the ops API's keys;
//! - [`reseal`]: move sealed values to the active data key (CLI only: it runs for minutes);
//! - [`tokens`]: reconcile the token mirror with TMP's token list.

pub mod api_keys;
pub mod audit;
pub mod outbox;
pub mod reseal;
pub mod tokens;

use crate::store::StoreError;

/// Why an operator action did not happen. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The row or key does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It exists, in a state that does not allow the action.
    #[error("{0}")]
    Conflict(String),
    /// The operator's input breaks a rule.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An operator's free text (a key's name, a reason): what the audit and the answers can hold —
/// 1 to 100 characters, no control characters, no card number.
pub fn operator_text(field: &str, value: &str) -> Result<(), OpsError> {
    if value.trim().is_empty()
        || value.chars().count() > 100
        || value.chars().any(char::is_control)
        || tmp_protocol::sensitive::contains_pan_like(value)
    {
        return Err(OpsError::Invalid(format!(
            "{field} must be 1 to 100 characters, without control characters or a card number"
        )));
    }
    Ok(())
}
