//! The one error type of the mock and the one place it becomes an HTTP response: the contract's
//! JSON error body (`tmp_protocol::error::ErrorBody`), internals only in the log.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use tmp_protocol::error::{ErrorBody, ErrorCode};
use tmp_protocol::jwe::JweError;

use crate::api::correlation;

#[derive(Debug, thiserror::Error)]
pub enum MockError {
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
    #[error("{0}")]
    NotFound(String),
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
    /// An injected fault answering with this status.
    #[error("injected fault")]
    Injected(u16),
    #[error("temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl MockError {
    pub fn validation(message: impl Into<String>) -> MockError {
        MockError::Validation(message.into())
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            MockError::MalformedJson(_) => ErrorCode::MalformedJson,
            MockError::InvalidHeader(_) => ErrorCode::InvalidHeader,
            MockError::MissingSignature => ErrorCode::MissingSignature,
            MockError::InvalidSignature => ErrorCode::InvalidSignature,
            MockError::StaleTimestamp => ErrorCode::StaleTimestamp,
            MockError::ReplayedRequest => ErrorCode::ReplayedRequest,
            MockError::Unauthenticated => ErrorCode::Unauthenticated,
            MockError::NotFound(_) => ErrorCode::NotFound,
            MockError::Conflict(_) => ErrorCode::Conflict,
            MockError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            MockError::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            MockError::Validation(_) => ErrorCode::ValidationFailed,
            MockError::InvalidEncryptedPayload(_) => ErrorCode::InvalidEncryptedPayload,
            MockError::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            MockError::Injected(status) => match status {
                400 => ErrorCode::MalformedJson,
                401 => ErrorCode::Unauthenticated,
                403 => ErrorCode::Forbidden,
                404 => ErrorCode::NotFound,
                405 => ErrorCode::MethodNotAllowed,
                409 => ErrorCode::Conflict,
                413 => ErrorCode::PayloadTooLarge,
                415 => ErrorCode::UnsupportedMediaType,
                422 => ErrorCode::ValidationFailed,
                429 => ErrorCode::RateLimited,
                503 => ErrorCode::Unavailable,
                _ => ErrorCode::Internal,
            },
            MockError::Unavailable(_) => ErrorCode::Unavailable,
            MockError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// A JWE that cannot be opened: 422, saying which field without saying why in detail.
    pub fn bad_jwe(field: &str, e: JweError) -> MockError {
        match e {
            JweError::InvalidPayload => MockError::Validation(format!("`{field}` does not hold the expected fields")),
            other => MockError::InvalidEncryptedPayload(format!("`{field}`: {other}")),
        }
    }
}

impl ResponseError for MockError {
    fn status_code(&self) -> StatusCode {
        match self {
            MockError::MalformedJson(_) | MockError::InvalidHeader(_) => StatusCode::BAD_REQUEST,
            MockError::MissingSignature
            | MockError::InvalidSignature
            | MockError::StaleTimestamp
            | MockError::ReplayedRequest
            | MockError::Unauthenticated => StatusCode::UNAUTHORIZED,
            MockError::NotFound(_) => StatusCode::NOT_FOUND,
            MockError::Conflict(_) => StatusCode::CONFLICT,
            MockError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            MockError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            MockError::Validation(_) | MockError::InvalidEncryptedPayload(_) | MockError::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            MockError::Injected(status) => StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            MockError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            MockError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let correlation_id = correlation::current();
        match self {
            // The cause chain goes to the log under the correlation id, never into the body.
            MockError::Unavailable(source) | MockError::Internal(source) => {
                tracing::error!(%correlation_id, error = ?source, "request failed");
            }
            other => tracing::info!(%correlation_id, code = ?other.code(), "request rejected"),
        }
        let body = ErrorBody::new(self.code(), self.to_string(), correlation_id);
        let mut response = HttpResponse::build(self.status_code());
        if self.status_code() == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        response.json(body)
    }
}
