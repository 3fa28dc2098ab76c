//! The contract's errors as one type, and the one place it becomes an HTTP response: every
//! error answers with the contract's JSON body (`tmp_protocol::error::ErrorBody`) and the
//! request's correlation id; internal details go to the log, never to the body. The adapter and
//! mock-tmp both answer with it, so a client sees one error shape from every part of the kit.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use tmp_protocol::error::{ErrorBody, ErrorCode};
use tmp_protocol::jwe::JweError;

use crate::correlation;
use crate::log_budget::LogBudget;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    MalformedJson(String),
    #[error("{0}")]
    InvalidHeader(String),
    #[error("the request is not signed")]
    MissingSignature,
    #[error("the signature does not match")]
    InvalidSignature,
    #[error("the signature timestamp is outside the accepted window")]
    StaleTimestamp,
    #[error("this request id was already used")]
    ReplayedRequest,
    #[error("a client certificate is required")]
    Unauthenticated,
    #[error("a valid bearer token is required")]
    InvalidToken,
    /// Ops API: authenticated, but the caller lacks the scope.
    #[error("{0}")]
    Forbidden(String),
    /// Ops API: the caller's rate limit is spent; retry after this many seconds.
    #[error("too many requests: retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Ops API: TMP refused a token action because of the token's state.
    #[error("{0}")]
    InvalidTokenState(String),
    /// Ops API: TMP is unreachable, slow or failing; retry after this many seconds.
    #[error("{message}")]
    UpstreamUnavailable { message: String, retry_after_secs: u64 },
    #[error("no route for this path")]
    NotFound,
    /// A well-formed request for something that does not exist (ops API: an unknown row id).
    #[error("{0}")]
    UnknownResource(String),
    /// A known path with another method; `allow` lists the methods it serves (the `Allow`
    /// header RFC 9110 §15.5.6 requires on a 405).
    #[error("method not allowed: this path serves {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("the request body did not arrive within {secs} s")]
    RequestTimeout { secs: u64 },
    #[error("{0}")]
    Conflict(String),
    #[error("the request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    InvalidEncryptedPayload(String),
    #[error("this idempotency key was used with a different request body")]
    IdempotencyKeyReused,
    #[error("event `{0}` was already received with a different body")]
    EventIdReused(String),
    /// An injected fault (mock-tmp's fault rules) answering with this status and the code
    /// that goes with it.
    #[error("injected fault")]
    Injected(u16),
    #[error("temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// The request was not answered within the listener's time budget (a stalled database, say);
    /// its work was abandoned and nothing was acknowledged.
    #[error("temporarily unavailable: not answered within {ms} ms")]
    NotAnsweredInTime { ms: u64 },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::MalformedJson(_) => ErrorCode::MalformedJson,
            ApiError::InvalidHeader(_) => ErrorCode::InvalidHeader,
            ApiError::MissingSignature => ErrorCode::MissingSignature,
            ApiError::InvalidSignature => ErrorCode::InvalidSignature,
            ApiError::StaleTimestamp => ErrorCode::StaleTimestamp,
            ApiError::ReplayedRequest => ErrorCode::ReplayedRequest,
            ApiError::Unauthenticated | ApiError::InvalidToken => ErrorCode::Unauthenticated,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::InvalidTokenState(_) => ErrorCode::InvalidTokenState,
            ApiError::UpstreamUnavailable { .. } => ErrorCode::Unavailable,
            ApiError::NotFound | ApiError::UnknownResource(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            ApiError::RequestTimeout { .. } => ErrorCode::RequestTimeout,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            ApiError::Validation(_) => ErrorCode::ValidationFailed,
            ApiError::InvalidEncryptedPayload(_) => ErrorCode::InvalidEncryptedPayload,
            ApiError::IdempotencyKeyReused | ApiError::EventIdReused(_) => ErrorCode::IdempotencyKeyReused,
            ApiError::Injected(status) => match status {
                400 => ErrorCode::MalformedJson,
                401 => ErrorCode::Unauthenticated,
                403 => ErrorCode::Forbidden,
                404 => ErrorCode::NotFound,
                405 => ErrorCode::MethodNotAllowed,
                408 => ErrorCode::RequestTimeout,
                409 => ErrorCode::Conflict,
                413 => ErrorCode::PayloadTooLarge,
                415 => ErrorCode::UnsupportedMediaType,
                422 => ErrorCode::ValidationFailed,
                429 => ErrorCode::RateLimited,
                503 => ErrorCode::Unavailable,
                _ => ErrorCode::Internal,
            },
            ApiError::Unavailable(_) | ApiError::NotAnsweredInTime { .. } => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The wire name of the code (`INVALID_SIGNATURE`, …), for logs and metric labels.
    pub fn wire_code(&self) -> String {
        serde_json::to_value(self.code()).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }

    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::Validation(message.into())
    }

    /// A JWE in `field` that cannot be opened: 422, naming the field without detailing why.
    pub fn bad_jwe(field: &str, e: JweError) -> ApiError {
        match e {
            JweError::InvalidPayload => ApiError::Validation(format!("`{field}` does not hold the expected fields")),
            other => ApiError::InvalidEncryptedPayload(format!("`{field}`: {other}")),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::InvalidHeader(_) => StatusCode::BAD_REQUEST,
            ApiError::MissingSignature
            | ApiError::InvalidSignature
            | ApiError::StaleTimestamp
            | ApiError::ReplayedRequest
            | ApiError::Unauthenticated
            | ApiError::InvalidToken => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::InvalidTokenState(_) => StatusCode::CONFLICT,
            ApiError::UpstreamUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound | ApiError::UnknownResource(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_)
            | ApiError::InvalidEncryptedPayload(_)
            | ApiError::IdempotencyKeyReused
            | ApiError::EventIdReused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Injected(status) => StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ApiError::Unavailable(_) | ApiError::NotAnsweredInTime { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let correlation_id = correlation::current();
        let status = self.status_code();
        // Each kind within its log budget: a peer, or an outage under load, can cause these at
        // any rate.
        static FAILED: LogBudget = LogBudget::new();
        static UPSTREAM: LogBudget = LogBudget::new();
        static ABANDONED: LogBudget = LogBudget::new();
        static REJECTED: LogBudget = LogBudget::new();
        match self {
            // The cause chain is logged, under the correlation id, and never sent.
            // The request span carries the correlation id.
            ApiError::Unavailable(source) | ApiError::Internal(source) => {
                if let Some(suppressed) = FAILED.admit() {
                    // `{:#}`: the cause chain on one line, without the backtrace `{:?}` adds under
                    // RUST_BACKTRACE (a log line, not a crash report).
                    tracing::error!(error = %format_args!("{source:#}"), suppressed, "request failed");
                }
            }
            ApiError::UpstreamUnavailable { message, .. } => {
                if let Some(suppressed) = UPSTREAM.admit() {
                    tracing::warn!(%message, suppressed, "upstream unavailable");
                }
            }
            ApiError::NotAnsweredInTime { ms } => {
                // WARN: a peer that has not authenticated yet (a trickled body) can cause it.
                if let Some(suppressed) = ABANDONED.admit() {
                    tracing::warn!(
                        budget_ms = ms,
                        suppressed,
                        "request abandoned: not answered within its time budget"
                    );
                }
            }
            other => {
                if let Some(suppressed) = REJECTED.admit() {
                    tracing::info!(code = %other.wire_code(), suppressed, "request rejected");
                }
            }
        }
        let body = ErrorBody::new(self.code(), self.to_string(), correlation_id);
        let mut response = HttpResponse::build(status);
        match self {
            ApiError::Unavailable(_) | ApiError::NotAnsweredInTime { .. } | ApiError::Injected(503) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            ApiError::RateLimited { retry_after_secs } | ApiError::UpstreamUnavailable { retry_after_secs, .. } => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)));
            }
            _ => {}
        }
        if let ApiError::MethodNotAllowed { allow } = self {
            response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
        }
        if matches!(self, ApiError::InvalidToken) {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.json(body)
    }
}

/// A resource at `path` serving `handler` for `method` (`"GET"`, `"POST"`, …); any other method
/// answers 405 `METHOD_NOT_ALLOWED` with the contract's body and an `Allow` header naming
/// `method` (a known path with the wrong method is not a 404).
pub fn resource<F, Args>(path: &str, method: &'static str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    // The route tables name their methods as literals: a typo is a bug found at start-up.
    let served = actix_web::http::Method::from_bytes(method.as_bytes()).expect("an HTTP method name");
    actix_web::web::resource(path).route(actix_web::web::method(served).to(handler)).default_service(
        actix_web::web::to(move || async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow: method }) }),
    )
}
