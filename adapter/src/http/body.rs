//! The request body of every mutating Issuer API call, admitted in this order: size limit
//! (413), transport authentication — client certificate (mTLS) and/or Standard-Webhooks
//! signature over the raw bytes (401) — replayed request id (401), content type (415).
//! Only then does a handler parse it.

use actix_web::dev::Payload;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::web::{Bytes, BytesMut, Data};
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use time::OffsetDateTime;
use tmp_protocol::headers::{WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};
use tmp_protocol::webhook::SignatureError;

use super::AppState;
use super::error::ApiError;

/// Marker stored per connection when the TLS client presented a verified certificate.
#[derive(Debug, Clone)]
pub struct ClientCertificate;

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
            let admission = Admission {
                limit: state.settings.server.body_limit_bytes,
                require_mtls: state.settings.auth.mode.requires_mtls(),
                verifier: state.signature_verifier.as_ref(),
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
            let Some(verifier) = state.processor_verifier.as_ref() else {
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
    let limit = admission.limit;
    let declared =
        req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    // Bounded in time as well as size: a sender trickling bytes must not hold a connection
    // (and this is before authentication, so anyone could).
    let secs = state.settings.server.body_read_timeout_secs;
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
    let body = tokio::time::timeout(std::time::Duration::from_secs(secs), read)
        .await
        .map_err(|_| ApiError::RequestTimeout { secs })??;

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
                &body,
                now.unix_timestamp(),
            )
            .map_err(|e| match e {
                SignatureError::Missing(_) => ApiError::MissingSignature,
                SignatureError::Stale => ApiError::StaleTimestamp,
                SignatureError::Malformed(header) => ApiError::InvalidHeader(format!("malformed {header} header")),
                _ => ApiError::InvalidSignature,
            })?;
        // Verified above, so the id is present. Remembered durably: replicas share the set.
        let id = header(WEBHOOK_ID).unwrap_or_default();
        if !state.store.remember_request_id(id, now).await? {
            return Err(ApiError::ReplayedRequest);
        }
    }

    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    Ok(SignedBody { bytes: body })
}
