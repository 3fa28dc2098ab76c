//! Admission of the TMP and Lifecycle API calls the issuer makes, in the contract's order
//! (`tmp_edge::admit`): transport authentication — client certificate (mTLS) and/or
//! Standard-Webhooks signature over the raw body (401) — replayed `webhook-id` (401), content
//! type (415). The size limit (413) was applied by the
//! middleware. Then [`idempotent`] runs the effect at most once per `X-Idempotency-Key`.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::web::{Bytes, Data};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tmp_edge::admit::{Admission, ReplayGuard};
use tmp_edge::error::ApiError;
use tmp_protocol::headers::IDEMPOTENT_REPLAYED;

use super::middleware::RawBody;
use crate::context::Mock;
use crate::state::{Effect, IdempotencyRecord, MockState};

/// An authenticated request body.
pub struct Signed(pub Bytes);

impl FromRequest for Signed {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let mock = req
                .app_data::<Data<Mock>>()
                .cloned()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state is not registered")))?;
            let body = req.extensions().get::<RawBody>().map(|b| b.0.clone()).unwrap_or_default();
            let admission = Admission {
                require_mtls: mock.config.auth.mode.requires_mtls(),
                verifier: mock.verifier.as_ref(),
                replay_guard: &StateReplayGuard(&mock),
                empty_body_needs_no_content_type: true,
            };
            tmp_edge::admit::admit(&req, &body, admission).await?;
            Ok(Signed(body))
        })
    }
}

/// The mock remembers accepted `webhook-id`s in its state, for twice the timestamp tolerance
/// (a signature older than that is refused as stale anyway).
struct StateReplayGuard<'a>(&'a Mock);

impl ReplayGuard for StateReplayGuard<'_> {
    async fn first_use(&self, id: &str, now: OffsetDateTime) -> Result<bool, ApiError> {
        let horizon = 2 * self.0.config.auth.timestamp_tolerance_secs as i64;
        Ok(self.0.state.lock().await.remember_webhook_id(id, now.unix_timestamp(), horizon))
    }
}

/// The request's idempotency key: required on every mutating call.
pub fn idempotency_key(req: &HttpRequest) -> Result<String, ApiError> {
    tmp_edge::admit::required_idempotency_key(req)
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
    effect: impl FnOnce(&mut MockState) -> Result<Outcome, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let scope = format!("{} {} {key}", req.method(), req.match_pattern().unwrap_or_else(|| req.path().to_owned()));
    let hash = hex::encode(Sha256::digest(body));
    let mut state = mock.state.lock().await;
    if let Some(record) = state.idempotency.get(&scope) {
        if record.request_hash != hash {
            return Err(ApiError::IdempotencyKeyReused);
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
