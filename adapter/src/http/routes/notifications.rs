//! `POST /issuer-api/v1/notifications`.

use actix_web::http::StatusCode;
use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use time::OffsetDateTime;
use tmp_protocol::issuer_api::{ActivationCode, NotificationAck, NotificationRequest};

use super::decrypt;
use super::doc::{IssuerApiErrors, SignedRequestHeaders};
use crate::domain::notifications;
use crate::http::AppState;
use crate::http::body::SignedBody;
use crate::http::idempotency::{self, Begin};
use tmp_edge::error::ApiError;
use tmp_edge::json::parse_body;

/// A user notification (e.g. an activation code): stored durably, the code encrypted at rest,
/// and queued for the issuer's own systems.
#[utoipa::path(
    post,
    path = "/issuer-api/v1/notifications",
    tag = "Issuer API",
    request_body = NotificationRequest,
    params(SignedRequestHeaders),
    responses(
        (status = 200, description = "Stored durably", body = NotificationAck),
        IssuerApiErrors,
    )
)]
#[tracing::instrument(skip_all)]
pub async fn notification(state: Data<AppState>, req: HttpRequest, body: SignedBody) -> Result<HttpResponse, ApiError> {
    let pending = match idempotency::begin(&state.store, "notification", &req, &body.bytes).await? {
        Begin::Replay(response) => return Ok(response),
        Begin::Fresh(pending) => pending,
    };
    let request: NotificationRequest = parse_body(&body.bytes)?;
    notifications::validate(&request)?;
    let code: Option<ActivationCode> = match request.encrypted_payload.as_deref() {
        Some(compact) => Some(decrypt(&state, compact).await?),
        None => None,
    };
    let (record, outbox) =
        notifications::to_records(&request, code.as_ref(), &state.keys.data_keys.current(), OffsetDateTime::now_utc());

    let ack = NotificationAck { notification_id: request.notification_id.to_string(), accepted: true };
    let response_body = serde_json::to_vec(&ack).map_err(|e| ApiError::Internal(e.into()))?;
    let idempotency_record = pending.record(StatusCode::OK, response_body);
    let write = state.store.store_notification(&record, &outbox, &idempotency_record).await?;
    state.metrics.notifications.with_label_values(&[request.notification_type.as_str()]).inc();
    pending.settle(write, &idempotency_record)
}
