//! Body admission, in the contract's order: size limit and read time (413, 408), transport
//! authentication — client certificate (mTLS) and/or Standard-Webhooks signature over the raw
//! bytes (401) — replayed `webhook-id` (401), content type (415). Only then does a handler
//! parse a body. Each server decides what a route requires ([`Admission`]) and where the ids it
//! has seen are remembered ([`ReplayGuard`]: the adapter's database, the mock's state).

use std::future::Future;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::dev::Payload;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};
use actix_web::web::{Bytes, BytesMut};
use futures_util::StreamExt;
use time::OffsetDateTime;
use tmp_protocol::headers::{
    IDEMPOTENCY_KEY, MAX_IDEMPOTENCY_KEY_LEN, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP,
};
use tmp_protocol::webhook::{SignatureError, Verifier};

use crate::error::ApiError;

/// Marker a server stores per connection when the TLS client presented a verified certificate.
#[derive(Debug, Clone)]
pub struct ClientCertificate;

/// Where a server remembers the `webhook-id`s it has accepted, so a replay is refused.
pub trait ReplayGuard {
    /// `true` the first time `id` is seen; `false` for a replay. Called only for a request
    /// whose signature verified, so only authenticated senders fill the set.
    fn first_use(&self, id: &str, now: OffsetDateTime) -> impl Future<Output = Result<bool, ApiError>>;
}

/// What a route requires of a request before its body is handed over.
pub struct Admission<'a, G> {
    /// A verified client certificate on the connection (mTLS).
    pub require_mtls: bool,
    /// A Standard-Webhooks signature by one of these secrets; `None`: none required.
    pub verifier: Option<&'a Verifier>,
    /// Where accepted `webhook-id`s are remembered.
    pub replay_guard: &'a G,
    /// Bodiless calls (`GET`, `DELETE`) carry no content type: accept an empty body without one.
    pub empty_body_needs_no_content_type: bool,
}

/// Reads a body of at most `limit` bytes (413 beyond, by the declared length or as it
/// arrives), within `read_timeout` when given (408): a sender trickling bytes must not hold a
/// connection, and this runs before authentication, so anyone could.
pub async fn read_body(
    headers: &HeaderMap,
    payload: &mut Payload,
    limit: usize,
    read_timeout: Option<Duration>,
) -> Result<Bytes, ApiError> {
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let read = async {
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| ApiError::MalformedJson("the request body could not be read".into()))?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    match read_timeout {
        Some(timeout) => tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| ApiError::RequestTimeout { secs: timeout.as_secs() })?,
        None => read.await,
    }
}

/// Authenticates a body already read, then checks its content type.
pub async fn admit<G: ReplayGuard>(
    req: &HttpRequest,
    body: &[u8],
    admission: Admission<'_, G>,
) -> Result<(), ApiError> {
    if admission.require_mtls && req.conn_data::<ClientCertificate>().is_none() {
        return Err(ApiError::Unauthenticated);
    }
    if let Some(verifier) = admission.verifier {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let now = OffsetDateTime::now_utc();
        verifier
            .verify(
                header(WEBHOOK_ID),
                header(WEBHOOK_TIMESTAMP),
                header(WEBHOOK_SIGNATURE),
                body,
                now.unix_timestamp(),
            )
            .map_err(|e| match e {
                SignatureError::Missing(_) => ApiError::MissingSignature,
                SignatureError::Stale => ApiError::StaleTimestamp,
                SignatureError::Malformed(header) => ApiError::InvalidHeader(format!("malformed {header} header")),
                _ => ApiError::InvalidSignature,
            })?;
        // Verified above, so the id is present.
        let id = header(WEBHOOK_ID).unwrap_or_default();
        if !admission.replay_guard.first_use(id, now).await? {
            return Err(ApiError::ReplayedRequest);
        }
    }
    let exempt = body.is_empty() && admission.empty_body_needs_no_content_type;
    if !exempt && !is_json(req.headers()) {
        return Err(ApiError::UnsupportedMediaType);
    }
    Ok(())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The request's `X-Idempotency-Key`: `None` when absent, 400 when not 1 to
/// `MAX_IDEMPOTENCY_KEY_LEN` printable ASCII characters or when it is a card number (it is
/// stored and logged).
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::InvalidHeader(format!(
                "{IDEMPOTENCY_KEY} must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters"
            ))
        })
        .and_then(|k| {
            if tmp_protocol::sensitive::is_pan_like(k) {
                return Err(ApiError::InvalidHeader(format!("{IDEMPOTENCY_KEY} must not be a card number")));
            }
            Ok(Some(k.to_owned()))
        })
}

/// The request's `X-Idempotency-Key`, required (every mutating call of the contract).
pub fn required_idempotency_key(req: &HttpRequest) -> Result<String, ApiError> {
    idempotency_key(req)?.ok_or_else(|| ApiError::InvalidHeader(format!("{IDEMPOTENCY_KEY} is required")))
}
