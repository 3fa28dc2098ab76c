//! How a store failure answers: the contract's error type itself is `tmp_edge::error::ApiError`,
//! shared with mock-tmp. A known event id carrying another event is the caller's conflict (409);
//! any other store failure is ours and passing (503 with `Retry-After`).

use tmp_edge::error::ApiError;

use crate::store::StoreError;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EventConflict => ApiError::Conflict(e.to_string()),
            e => ApiError::Unavailable(e.into()),
        }
    }
}
