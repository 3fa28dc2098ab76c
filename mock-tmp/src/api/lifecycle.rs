//! The Lifecycle API (DataCore) as `tmp_protocol::lifecycle_api` defines it: the issuer loads
//! and maintains its cards here in approach `datacore`; status and expiry changes apply the
//! same automated token lifecycle as the TMP API.

use actix_web::http::StatusCode;
use actix_web::web::{self, Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;
use time::OffsetDateTime;
use tmp_protocol::enums::{IssuerCardStatus, ReplacementTokens};
use tmp_protocol::lifecycle_api::{
    LifecycleCard, LifecycleCardReplace, LifecycleCardUpdate, LifecycleCardView, LifecycleImport,
    LifecycleImportFailure, LifecycleImportResult,
};
use tmp_protocol::tmp_api::{ExpiryData, ReplacementCardData};

use super::admit::{Signed, idempotency_key, idempotent};
use crate::context::Mock;
use crate::keys::MockKeys;
use crate::state::{Card, MockState};
use tmp_edge::error::ApiError;
use tmp_edge::json::parse_body;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/lifecycle/v1/public-key", web::get().to(public_key))
        .route("/lifecycle/v1/cards", web::post().to(create))
        .route("/lifecycle/v1/cards/{cardId}", web::patch().to(update))
        .route("/lifecycle/v1/cards/{cardId}", web::delete().to(delete))
        .route("/lifecycle/v1/cards/{cardId}/replace", web::post().to(replace))
        .route("/lifecycle/v1/import", web::post().to(import));
}

async fn public_key(mock: Data<Mock>) -> HttpResponse {
    HttpResponse::Ok().json(mock.keys().lifecycle_api.jwk_set())
}

fn view(card: &Card) -> LifecycleCardView {
    LifecycleCardView {
        card_id: card.card_id.clone(),
        status: card.status,
        pan_last4: card.pan_last4.clone().unwrap_or_default(),
        replaced_by: card.replaced_by.clone(),
    }
}

/// A card ready to insert: id checked, payload decrypted.
fn open_card(keys: &MockKeys, card: &LifecycleCard) -> Result<Card, ApiError> {
    if card.card_id.is_empty() || card.card_id.len() > 128 || !card.card_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::validation("`cardId` must be 1 to 128 printable ASCII characters"));
    }
    let data: ReplacementCardData = keys
        .lifecycle_api
        .decrypt_json(&card.encrypted_payload)
        .map_err(|e| ApiError::bad_jwe("encryptedPayload", e))?;
    let mut record = Card::new(&card.card_id, card.status);
    record.set_pan(data.pan);
    record.expiry = Some(data.expiry);
    record.cardholder = card.cardholder.clone();
    record.product_category = card.product_category.clone();
    record.in_datacore = true;
    Ok(record)
}

/// Inserts a DataCore card; a card id or PAN already loaded as another card conflicts.
fn insert(state: &mut MockState, card: Card) -> Result<LifecycleCardView, ApiError> {
    if let Some(existing) = state.cards.get(&card.card_id)
        && existing.in_datacore
    {
        return Err(ApiError::Conflict(format!("card `{}` is already loaded", card.card_id)));
    }
    if let Some(pan) = &card.pan
        && state.find_card_by_pan(pan).is_some_and(|c| c.card_id != card.card_id && c.in_datacore)
    {
        return Err(ApiError::Conflict("this PAN is already loaded under another card id".into()));
    }
    let view = view(&card);
    state.cards.insert(card.card_id.clone(), card);
    Ok(view)
}

#[tracing::instrument(skip_all)]
async fn create(mock: Data<Mock>, req: HttpRequest, Signed(body): Signed) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let request: LifecycleCard = parse_body(&body)?;
    let card = open_card(&mock.keys(), &request)?;
    idempotent(&mock, &req, &key, &body, |state| {
        Ok((StatusCode::CREATED, Some(json!(insert(state, card)?)), Vec::new()))
    })
    .await
}

#[tracing::instrument(skip_all)]
async fn update(
    mock: Data<Mock>,
    req: HttpRequest,
    Signed(body): Signed,
    card_id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let request: LifecycleCardUpdate = parse_body(&body)?;
    let expiry = match &request.encrypted_payload {
        Some(jwe) => Some(
            mock.keys()
                .lifecycle_api
                .decrypt_json::<ExpiryData>(jwe)
                .map_err(|e| ApiError::bad_jwe("encryptedPayload", e))?
                .expiry,
        ),
        None => None,
    };
    if request.status.is_none() && expiry.is_none() && request.cardholder.is_none() && request.metadata.is_none() {
        return Err(ApiError::validation(
            "nothing to update: send `status`, `encryptedPayload`, `cardholder` or `metadata`",
        ));
    }
    if let Some(metadata) = &request.metadata {
        metadata.check().map_err(super::tmp::metadata_error)?;
    }
    idempotent(&mock, &req, &key, &body, |state| {
        if !state.cards.get(card_id.as_str()).is_some_and(|c| c.in_datacore) {
            return Err(ApiError::UnknownResource(format!("no card `{card_id}` in DataCore")));
        }
        let mut effects = Vec::new();
        if let Some(status) = request.status {
            let propagate = request.propagate_to_tokens.unwrap_or(true);
            effects.extend(state.set_card_status(&card_id, status, None, propagate)?.1);
        }
        if let Some(expiry) = expiry {
            effects.extend(state.renew_card(&card_id, expiry)?.1);
        }
        if let Some(metadata) = &request.metadata {
            state.update_card_metadata(&card_id, metadata.clone())?;
        }
        let card = state.card_mut_or_create(&card_id);
        if let Some(contact) = &request.cardholder {
            card.cardholder = Some(contact.clone());
            card.updated_at = OffsetDateTime::now_utc();
        }
        Ok((StatusCode::OK, Some(json!(view(card))), effects))
    })
    .await
}

#[tracing::instrument(skip_all)]
async fn delete(
    mock: Data<Mock>,
    req: HttpRequest,
    Signed(body): Signed,
    card_id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    idempotent(&mock, &req, &key, &body, |state| {
        if !state.cards.get(card_id.as_str()).is_some_and(|c| c.in_datacore) {
            return Err(ApiError::UnknownResource(format!("no card `{card_id}` in DataCore")));
        }
        // Deleting a card closes it: its tokens are deactivated and the issuer is told.
        let (_, effects) = state.set_card_status(&card_id, IssuerCardStatus::Closed, Some("CARD_DELETED"), true)?;
        Ok((StatusCode::NO_CONTENT, None, effects))
    })
    .await
}

#[tracing::instrument(skip_all)]
async fn replace(
    mock: Data<Mock>,
    req: HttpRequest,
    Signed(body): Signed,
    card_id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let request: LifecycleCardReplace = parse_body(&body)?;
    let data: ReplacementCardData = mock
        .keys()
        .lifecycle_api
        .decrypt_json(&request.encrypted_payload)
        .map_err(|e| ApiError::bad_jwe("encryptedPayload", e))?;
    idempotent(&mock, &req, &key, &body, |state| {
        if !state.cards.get(card_id.as_str()).is_some_and(|c| c.in_datacore) {
            return Err(ApiError::UnknownResource(format!("no card `{card_id}` in DataCore")));
        }
        let tokens = request.tokens.unwrap_or(ReplacementTokens::Move);
        let (_, effects) = state.replace_card(&card_id, &request.new_card_id, data.pan, data.expiry, tokens)?;
        let old = state.cards.get(card_id.as_str()).map(view);
        Ok((StatusCode::OK, Some(json!(old)), effects))
    })
    .await
}

#[tracing::instrument(skip_all)]
async fn import(mock: Data<Mock>, req: HttpRequest, Signed(body): Signed) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let request: LifecycleImport = parse_body(&body)?;
    let opened: Vec<_> = {
        let keys = mock.keys();
        request.cards.iter().map(|c| open_card(&keys, c)).collect()
    };
    idempotent(&mock, &req, &key, &body, |state| {
        let mut result = LifecycleImportResult { imported: 0, failed: Vec::new() };
        for (index, card) in opened.into_iter().enumerate() {
            match card.and_then(|card| insert(state, card)) {
                Ok(_) => result.imported += 1,
                Err(e) => result.failed.push(LifecycleImportFailure { index: index as u32, message: e.to_string() }),
            }
        }
        Ok((StatusCode::OK, Some(json!(result)), Vec::new()))
    })
    .await
}
