//! The request body of every mutating Issuer API call, admitted in this order: size limit
//! (413), transport authentication — client certificate (mTLS) and/or Standard-Webhooks
//! signature over the raw bytes (401) — replayed request id (401), content type (415).
//! Only then does a handler parse it. The steps are `tmp_edge::admit`'s; this module says what
//! each route requires and remembers request ids in the store.

use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::web::{Bytes, Data};
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use time::OffsetDateTime;
use tmp_edge::admit::{Admission as EdgeAdmission, ReplayGuard, read_body};
use tmp_edge::error::ApiError;

use super::AppState;

/// An admitted request body.
pub struct SignedBody {
    pub bytes: Bytes,
}

impl FromRequest for SignedBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let state = req
                .app_data::<Data<AppState>>()
                .cloned()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state is not registered")))?;
            let credentials = state.credentials();
            let admission = Admission {
                limit: state.settings.server.body_limit_bytes,
                require_mtls: state.settings.auth.mode.requires_mtls(),
                verifier: credentials.signature_verifier.as_ref(),
            };
            let result = admit(&req, &state, &mut payload, admission).await;
            if let Err(e) = &result {
                state.metrics.rejected_requests.with_label_values(&[e.wire_code().as_str()]).inc();
            }
            result
        })
    }
}

/// A processor ingest body: the same admission, under the processor's own secrets
/// (`processor.hmac_secrets`) and body limit; no client certificate is asked for.
pub struct ProcessorBody {
    pub bytes: Bytes,
}

impl FromRequest for ProcessorBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let state = req
                .app_data::<Data<AppState>>()
                .cloned()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state is not registered")))?;
            let credentials = state.credentials();
            let Some(verifier) = credentials.processor_verifier.as_ref() else {
                return Err(ApiError::NotFound);
            };
            let admission = Admission {
                limit: state.settings.processor.body_limit_bytes,
                require_mtls: false,
                verifier: Some(verifier),
            };
            let result = admit(&req, &state, &mut payload, admission).await;
            if let Err(e) = &result {
                state.metrics.rejected_requests.with_label_values(&[e.wire_code().as_str()]).inc();
            }
            result.map(|body| ProcessorBody { bytes: body.bytes })
        })
    }
}

/// The adapter remembers accepted `webhook-id`s in the database replicas share (a relaxed write:
/// see `IdempotencyStore::remember_request_id`).
struct StoreReplayGuard<'a>(&'a AppState);

impl ReplayGuard for StoreReplayGuard<'_> {
    async fn first_use(&self, id: &str, now: OffsetDateTime) -> Result<bool, ApiError> {
        Ok(self.0.store.remember_request_id(id, now).await?)
    }
}

/// What a route requires of a body.
struct Admission<'a> {
    limit: usize,
    require_mtls: bool,
    /// None: no signature required.
    verifier: Option<&'a tmp_protocol::webhook::Verifier>,
}

async fn admit(
    req: &HttpRequest,
    state: &AppState,
    payload: &mut Payload,
    admission: Admission<'_>,
) -> Result<SignedBody, ApiError> {
    let read_timeout = Duration::from_secs(state.settings.server.body_read_timeout_secs);
    let bytes = read_body(req.headers(), payload, admission.limit, Some(read_timeout)).await?;
    let edge = EdgeAdmission {
        require_mtls: admission.require_mtls,
        verifier: admission.verifier,
        replay_guard: &StoreReplayGuard(state),
        empty_body_needs_no_content_type: false,
    };
    tmp_edge::admit::admit(req, &bytes, edge).await?;
    Ok(SignedBody { bytes })
}
