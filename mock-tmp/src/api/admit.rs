//! Admission of the TMP and Lifecycle API calls the issuer makes, in the contract's order:
//! transport authentication — client certificate (mTLS) and/or Standard-Webhooks signature
//! over the raw body (401) — replayed `webhook-id` (401), content type (415). The size limit
//! (413) was applied by the middleware. Then [`idempotent`] runs the effect at most once per
//! `X-Idempotency-Key`.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::web::{Bytes, Data};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tmp_protocol::headers::{
    IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED, MAX_IDEMPOTENCY_KEY_LEN, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP,
};
use tmp_protocol::webhook::SignatureError;

use super::middleware::RawBody;
use crate::context::Mock;
use crate::error::MockError;
use crate::state::{Effect, IdempotencyRecord, MockState};

/// Marker stored per connection when the TLS client presented a verified certificate.
#[derive(Debug, Clone)]
pub struct ClientCertificate;

/// An authenticated request body.
pub struct Signed(pub Bytes);

impl FromRequest for Signed {
    type Error = MockError;
    type Future = LocalBoxFuture<'static, Result<Self, MockError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let mock = req
                .app_data::<Data<Mock>>()
                .cloned()
                .ok_or_else(|| MockError::Internal(anyhow::anyhow!("application state is not registered")))?;
            let body = req.extensions().get::<RawBody>().map(|b| b.0.clone()).unwrap_or_default();
            admit(&req, &mock, &body).await?;
            Ok(Signed(body))
        })
    }
}

async fn admit(req: &HttpRequest, mock: &Mock, body: &[u8]) -> Result<(), MockError> {
    if mock.config.auth.mode.requires_mtls() && req.conn_data::<ClientCertificate>().is_none() {
        return Err(MockError::Unauthenticated);
    }
    if let Some(verifier) = &mock.verifier {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let now = OffsetDateTime::now_utc().unix_timestamp();
        verifier.verify(header(WEBHOOK_ID), header(WEBHOOK_TIMESTAMP), header(WEBHOOK_SIGNATURE), body, now).map_err(
            |e| match e {
                SignatureError::Missing(_) => MockError::MissingSignature,
                SignatureError::Stale => MockError::StaleTimestamp,
                SignatureError::Malformed(header) => MockError::InvalidHeader(format!("malformed {header} header")),
                _ => MockError::InvalidSignature,
            },
        )?;
        let id = header(WEBHOOK_ID).unwrap_or_default();
        let horizon = 2 * mock.config.auth.timestamp_tolerance_secs as i64;
        if !mock.state.lock().await.remember_webhook_id(id, now, horizon) {
            return Err(MockError::ReplayedRequest);
        }
    }
    // Bodiless calls (DELETE, GET) carry no content type.
    if !body.is_empty() {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(MockError::UnsupportedMediaType);
        }
    }
    Ok(())
}

/// The request's idempotency key: required on every mutating call.
pub fn idempotency_key(req: &HttpRequest) -> Result<String, MockError> {
    let value = req
        .headers()
        .get(IDEMPOTENCY_KEY)
        .ok_or_else(|| MockError::InvalidHeader(format!("{IDEMPOTENCY_KEY} is required")))?;
    value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .ok_or_else(|| {
            MockError::InvalidHeader(format!(
                "{IDEMPOTENCY_KEY} must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters"
            ))
        })
}

/// What an effectful handler produces: status, JSON body (None → empty), effects.
pub type Outcome = (StatusCode, Option<Value>, Vec<Effect>);

/// Runs `effect` at most once per (route, key): the same key with the same body answers the
/// stored response without running it again; with another body it is 422. Errors are not
/// stored (the request had no effect and may be retried as is).
pub async fn idempotent(
    mock: &Mock,
    req: &HttpRequest,
    key: &str,
    body: &[u8],
    effect: impl FnOnce(&mut MockState) -> Result<Outcome, MockError>,
) -> Result<HttpResponse, MockError> {
    let scope = format!("{} {} {key}", req.method(), req.match_pattern().unwrap_or_else(|| req.path().to_owned()));
    let hash = hex::encode(Sha256::digest(body));
    let mut state = mock.state.lock().await;
    if let Some(record) = state.idempotency.get(&scope) {
        if record.request_hash != hash {
            return Err(MockError::IdempotencyKeyReused);
        }
        return Ok(respond(record.status, &record.body, true));
    }
    let (status, value, effects) = effect(&mut state)?;
    let text = value.map(|v| v.to_string()).unwrap_or_default();
    state.idempotency.insert(
        scope,
        IdempotencyRecord {
            request_hash: hash,
            status: status.as_u16(),
            body: text.clone(),
            created_at: OffsetDateTime::now_utc(),
        },
    );
    mock.commit(&mut state, effects).await?;
    Ok(respond(status.as_u16(), &text, false))
}

fn respond(status: u16, body: &str, replayed: bool) -> HttpResponse {
    let mut response = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    if replayed {
        response.insert_header((IDEMPOTENT_REPLAYED, "true"));
    }
    if body.is_empty() { response.finish() } else { response.content_type("application/json").body(body.to_owned()) }
}
