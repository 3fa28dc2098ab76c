//! OpenAPI pieces every signed Issuer API operation shares: its headers and its error answers.

use tmp_protocol::error::ErrorBody;
use utoipa::{IntoParams, IntoResponses};

/// Headers of every mutating Issuer API request.
#[derive(IntoParams)]
#[into_params(
    names("X-Idempotency-Key", "webhook-id", "webhook-timestamp", "webhook-signature"),
    parameter_in = Header
)]
#[allow(dead_code)] // Only describes the headers; never constructed.
pub struct SignedRequestHeaders(
    /// Same key + same body → the stored response; same key + other body → 422. At most 128 printable ASCII characters.
    String,
    /// Standard-Webhooks message id, unique per request (a retry carries a new one). Required with HMAC auth.
    String,
    /// Unix seconds; outside the configured tolerance → 401 STALE_TIMESTAMP. Required with HMAC auth.
    i64,
    /// `v1,<base64 HMAC-SHA256 of id.timestamp.body>` entries, space-separated. Required with HMAC auth.
    String,
);

/// Headers of a processor event request (`POST /processor/v1/events`), signed with one of
/// `processor.hmac_secrets`.
#[derive(IntoParams)]
#[into_params(names("webhook-id", "webhook-timestamp", "webhook-signature"), parameter_in = Header)]
#[allow(dead_code)] // Only describes the headers; never constructed.
pub struct ProcessorRequestHeaders(
    /// Standard-Webhooks message id, unique per request.
    String,
    /// Unix seconds; outside `auth.timestamp_tolerance_secs` → 401 STALE_TIMESTAMP.
    i64,
    /// `v1,<base64 HMAC-SHA256 of id.timestamp.body>` entries, space-separated.
    String,
);

/// Error answers of every mutating Issuer API operation.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only describes the answers; never constructed.
pub enum IssuerApiErrors {
    /// Malformed JSON, or a missing or malformed header.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Missing, invalid or stale signature; replayed request id; missing client certificate.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The body did not arrive within `server.body_read_timeout_secs`.
    #[response(status = 408)]
    RequestTimeout(ErrorBody),
    /// An event id reused for a different event (token events).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// Body over `server.body_limit_bytes`.
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// Content type is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// Missing or invalid field, unknown enum value, undecryptable `encryptedPayload`, idempotency key reused.
    #[response(status = 422)]
    Unprocessable(ErrorBody),
    /// Storage (or, for a CVC check, the card source) unavailable; retry after `Retry-After`.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}
