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
    /// Same key + same body → the stored response; same key + other body → 422. 1 to 128 printable ASCII characters, never a card number.
    #[param(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    String,
    /// Standard-Webhooks message id, unique per request (a retry carries a new one), never a card number. Required with HMAC auth.
    #[param(min_length = 1, max_length = 256, pattern = "^[!-~]+$")]
    String,
    /// Unix seconds, decimal without leading zeros; outside the configured tolerance → 401 STALE_TIMESTAMP. Required with HMAC auth.
    #[param(minimum = 0)]
    i64,
    /// `v1,<base64 HMAC-SHA256 of id.timestamp.body>` entries, space-separated (entries of other versions are ignored; one `v1` must match). Required with HMAC auth.
    #[param(min_length = 47, pattern = "(^| )v1,[A-Za-z0-9+/]{43}=( |$)")]
    String,
);

/// Headers of a processor event request (`POST /processor/v1/events`), signed with one of
/// `processor.hmac_secrets`.
#[derive(IntoParams)]
#[into_params(names("webhook-id", "webhook-timestamp", "webhook-signature"), parameter_in = Header)]
#[allow(dead_code)] // Only describes the headers; never constructed.
pub struct ProcessorRequestHeaders(
    /// Standard-Webhooks message id, unique per request, never a card number.
    #[param(min_length = 1, max_length = 256, pattern = "^[!-~]+$")]
    String,
    /// Unix seconds; outside `auth.timestamp_tolerance_secs` → 401 STALE_TIMESTAMP.
    #[param(minimum = 0)]
    i64,
    /// `v1,<base64 HMAC-SHA256 of id.timestamp.body>` entries, space-separated (one `v1` must match).
    #[param(min_length = 47, pattern = "(^| )v1,[A-Za-z0-9+/]{43}=( |$)")]
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
