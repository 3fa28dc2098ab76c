//! The one JSON error shape of contract v1:
//! `{"error": {"code": "INVALID_SIGNATURE", "message": "…", "correlationId": "…"}}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Machine-readable error codes. A client switches on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// 400: the body is not valid JSON.
    MalformedJson,
    /// 400: a required header is missing or malformed.
    InvalidHeader,
    /// 401: a signature header is missing.
    MissingSignature,
    /// 401: the signature does not match any live key.
    InvalidSignature,
    /// 401: the signature timestamp is outside the tolerance.
    StaleTimestamp,
    /// 401: this `webhook-id` was already seen.
    ReplayedRequest,
    /// 401: no client certificate / not authenticated.
    Unauthenticated,
    /// 403: authenticated but not allowed.
    Forbidden,
    /// 404: no such resource or route.
    NotFound,
    /// 405: method not allowed on this route.
    MethodNotAllowed,
    /// 408: the request body did not arrive in time.
    RequestTimeout,
    /// 409: the operation conflicts with the resource's state (e.g. an event id reused for
    /// another event).
    Conflict,
    /// 409: the token's state forbids the action (ops API: e.g. resuming a deactivated token).
    InvalidTokenState,
    /// 413: body over the configured limit.
    PayloadTooLarge,
    /// 415: content type is not `application/json`.
    UnsupportedMediaType,
    /// 422: JSON is well formed but a field is missing, of the wrong type or an unknown enum value.
    ValidationFailed,
    /// 422: the encrypted payload could not be decrypted (wrong key, unknown `kid`, tampered).
    InvalidEncryptedPayload,
    /// 422: same idempotency key, different body.
    IdempotencyKeyReused,
    /// 429: too many requests.
    RateLimited,
    /// 503: a dependency is unavailable; retry later.
    Unavailable,
    /// 500: an internal error; details are in the server log under the correlation id.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// Human-readable; never contains card data, secrets or internals.
    pub message: String,
    pub correlation_id: String,
}

/// Every error response body of every surface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>, correlation_id: impl Into<String>) -> Self {
        ErrorBody { error: ErrorDetail { code, message: message.into(), correlation_id: correlation_id.into() } }
    }
}
