//! `POST /issuer-api/v1/cards/verify` and `POST /issuer-api/v1/cards/verify-cvc`.

use actix_web::http::StatusCode;
use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use tmp_protocol::issuer_api::{
    CardData, MAX_RECOMMENDATION_REASONS, VerifyCardRequest, VerifyCardResponse, VerifyCvcRequest, VerifyCvcResponse,
};

use super::decrypt;
use super::doc::{IssuerApiErrors, SignedRequestHeaders};
use crate::http::AppState;
use crate::http::body::SignedBody;
use crate::http::idempotency::{self, Begin};
use tmp_edge::correlation;
use tmp_edge::error::ApiError;
use tmp_edge::json::parse_body;

/// Card verification during tokenization.
#[utoipa::path(
    post,
    path = "/issuer-api/v1/cards/verify",
    tag = "Issuer API",
    request_body = VerifyCardRequest,
    params(SignedRequestHeaders),
    responses(
        (status = 200, description = "The decision", body = VerifyCardResponse),
        IssuerApiErrors,
    )
)]
#[tracing::instrument(skip_all)]
pub async fn verify_card(state: Data<AppState>, req: HttpRequest, body: SignedBody) -> Result<HttpResponse, ApiError> {
    let pending = match idempotency::begin(&state.store, "verify_card", &req, &body.bytes).await? {
        Begin::Replay(response) => return Ok(response),
        Begin::Fresh(pending) => pending,
    };
    let request: VerifyCardRequest = parse_body(&body.bytes)?;
    let network_score = request.risk.as_ref().and_then(|r| r.network_score);
    for (field, score) in [
        ("walletScore", request.wallet_score),
        ("deviceScore", request.device_score),
        ("risk.networkScore", network_score),
    ] {
        if score.is_some_and(|s| !(1..=5).contains(&s)) {
            return Err(ApiError::validation(format!("`{field}` must be between 1 and 5")));
        }
    }
    if request.risk.as_ref().is_some_and(|r| r.recommendation_reasons.len() > MAX_RECOMMENDATION_REASONS) {
        return Err(ApiError::validation(format!(
            "`risk.recommendationReasons` holds at most {MAX_RECOMMENDATION_REASONS} codes"
        )));
    }
    let card: CardData = decrypt(&state, &request.encrypted_payload).await?;

    let verified = state.verifier.verify_card(&request, &card, &correlation::current()).await;
    let response_body = serde_json::to_vec(&verified.response).map_err(|e| ApiError::Internal(e.into()))?;
    let record = pending.record(StatusCode::OK, response_body);
    // Durable before the answer, and so are the verifier's relaxed writes committed before it
    // (the CVC attempt, the tokenization count): the same flush covers them.
    let write = state.store.record_decision(&verified.audit, Some(&record)).await?;
    pending.settle(write, &record)
}

/// CVC check (Apple Pay requires one).
#[utoipa::path(
    post,
    path = "/issuer-api/v1/cards/verify-cvc",
    tag = "Issuer API",
    request_body = VerifyCvcRequest,
    params(SignedRequestHeaders),
    responses(
        (status = 200, description = "The CVC result", body = VerifyCvcResponse),
        IssuerApiErrors,
    )
)]
#[tracing::instrument(skip_all)]
pub async fn verify_cvc(state: Data<AppState>, req: HttpRequest, body: SignedBody) -> Result<HttpResponse, ApiError> {
    let pending = match idempotency::begin(&state.store, "verify_cvc", &req, &body.bytes).await? {
        Begin::Replay(response) => return Ok(response),
        Begin::Fresh(pending) => pending,
    };
    let request: VerifyCvcRequest = parse_body(&body.bytes)?;
    let card: CardData = decrypt(&state, &request.encrypted_payload).await?;
    let cvc =
        card.cvc.clone().ok_or_else(|| ApiError::validation("`encryptedPayload.cvc` is required for a CVC check"))?;

    let verified = state.verifier.verify_cvc(&request, &card, &cvc, &correlation::current()).await?;
    let response_body = serde_json::to_vec(&verified.response).map_err(|e| ApiError::Internal(e.into()))?;
    let record = pending.record(StatusCode::OK, response_body);
    // As for a verification: this flush covers the CVC attempt's relaxed writes.
    let write = state.store.record_decision(&verified.audit, Some(&record)).await?;
    pending.settle(write, &record)
}
