//! Where the domain's and the store's errors become the contract's HTTP errors — in one place.
//! The error type itself is `tmp_edge::error::ApiError`, shared with mock-tmp.

use tmp_edge::error::ApiError;
use tmp_protocol::fields::FieldError;

use crate::domain::error::DomainError;
use crate::ops::OpsError;
use crate::store::StoreError;

/// A known event id carrying another event is the caller's conflict (409); any other store
/// failure is ours and passing (503 with `Retry-After`).
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EventConflict => ApiError::Conflict(e.to_string()),
            e => ApiError::Unavailable(e.into()),
        }
    }
}

/// A broken rule is the caller's (422 `VALIDATION_FAILED`); a card source that failed or missed
/// its deadline is passing (503); a fault of ours is 500.
impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid { .. } => ApiError::validation(e.to_string()),
            DomainError::CardSource(_) | DomainError::DeadlineMissed { .. } => ApiError::Unavailable(e.into()),
            DomainError::Store(store) => store.into(),
            DomainError::Internal(what) => ApiError::Internal(anyhow::anyhow!(what)),
        }
    }
}

/// An operator action's refusal: not found 404, not in a state that allows it 409, bad input 422.
impl From<OpsError> for ApiError {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::NotFound(why) => ApiError::UnknownResource(why),
            OpsError::Conflict(why) => ApiError::Conflict(why),
            OpsError::Invalid(why) => ApiError::validation(why),
            OpsError::Store(store) => store.into(),
        }
    }
}

/// `field` broke a rule of `tmp_protocol::fields` (for values the ops API takes outside JSON
/// bodies, or inside bodies of its own).
pub fn invalid_field(field: &str, e: FieldError) -> ApiError {
    DomainError::invalid(field, e.to_string()).into()
}
