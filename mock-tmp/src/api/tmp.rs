//! The TMP API as `tmp_protocol::tmp_api` defines it: token listing and actions, push
//! provisioning (`sign`), card status, replacement and renewal, and the public key.

use actix_web::http::StatusCode;
use actix_web::web::{self, Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use tmp_protocol::enums::{IssuerCardStatus, ReplacementTokens, Wallet};
use tmp_protocol::tmp_api::{
    ApplePaySignOutput, CardExpiryUpdate, CardMetadata, CardReplace, CardStatusUpdate, CardUpdateAck, ExpiryData,
    GooglePaySignOutput, ReplacementCardData, ResendActivationCodeRequest, SamsungPaySignOutput, SignCardRequest,
    SignCardResponse, TokenAction, TokenActionRequest, TokenList, WebPushSignOutput,
};

use super::admit::{Signed, idempotency_key, idempotent};
use crate::context::Mock;
use crate::simulator::push::PushPayload;
use crate::state::{PushGrant, WebPushGrant};
use tmp_edge::error::ApiError;
use tmp_edge::json::parse_body;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tmp-api/v1/public-key", web::get().to(public_key))
        .route("/tmp-api/v1/cards/{cardId}/tokens", web::get().to(list_tokens))
        .route("/tmp-api/v1/cards/{cardId}/sign", web::post().to(sign))
        .route("/tmp-api/v1/cards/{cardId}/status", web::post().to(card_status))
        .route("/tmp-api/v1/cards/{cardId}/replace", web::post().to(replace))
        .route("/tmp-api/v1/cards/{cardId}/expiry", web::post().to(expiry))
        .route("/tmp-api/v1/cards/{cardId}/metadata", web::post().to(metadata))
        .route("/tmp-api/v1/tokens/{tokenId}/activation-code/resend", web::post().to(resend_code))
        .route("/tmp-api/v1/tokens/{tokenId}/{action}", web::post().to(token_action));
}

async fn public_key(mock: Data<Mock>) -> HttpResponse {
    HttpResponse::Ok().json(mock.keys().tmp_api.jwk_set())
}

fn check_id(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > 128 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::validation(format!("`{field}` must be 1 to 128 printable ASCII characters")));
    }
    Ok(())
}

#[tracing::instrument(skip_all)]
async fn list_tokens(mock: Data<Mock>, _signed: Signed, card_id: Path<String>) -> Result<HttpResponse, ApiError> {
    let state = mock.state.lock().await;
    let tokens: Vec<_> = state.tokens.values().filter(|t| t.card_id == *card_id).map(|t| t.info()).collect();
    if tokens.is_empty() && !state.cards.contains_key(card_id.as_str()) {
        return Err(ApiError::UnknownResource(format!("no card `{card_id}`")));
    }
    Ok(HttpResponse::Ok().json(TokenList { card_id: card_id.into_inner(), tokens }))
}

/// A new activation code for a token waiting for one.
#[tracing::instrument(skip_all)]
async fn resend_code(
    mock: Data<Mock>,
    req: HttpRequest,
    Signed(body): Signed,
    token_id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let request: ResendActivationCodeRequest = parse_body(&body)?;
    let mock_ref = mock.get_ref();
    idempotent(&mock, &req, &key, &body, |state| {
        let (info, effects) = crate::simulator::resend_activation_code(mock_ref, state, &token_id, request.channel)?;
        Ok((StatusCode::OK, Some(json!(info)), effects))
    })
    .await
}

#[tracing::instrument(skip_all)]
async fn token_action(
    mock: Data<Mock>,
    req: HttpRequest,
    Signed(body): Signed,
    path: Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (token_id, action) = path.into_inner();
    let action = match action.as_str() {
        "activate" => TokenAction::Activate,
        "suspend" => TokenAction::Suspend,
        "resume" => TokenAction::Resume,
        "deactivate" => TokenAction::Deactivate,
        _ => return Err(ApiError::UnknownResource("no such token action".into())),
    };
    let key = idempotency_key(&req)?;
    let request: TokenActionRequest = parse_body(&body)?;
    if request.reason.trim().is_empty() || request.reason.len() > 256 {
        return Err(ApiError::validation("`reason` must be 1 to 256 characters"));
    }
    idempotent(&mock, &req, &key, &body, |state| {
        let (info, effects) =
            state.token_action(&token_id, action, request.initiator, request.reason_code, &request.reason)?;
        Ok((StatusCode::OK, Some(json!(info)), effects))
    })
    .await
}

#[tracing::instrument(skip_all)]
async fn sign(
    mock: Data<Mock>,
    req: HttpRequest,
    Signed(body): Signed,
    card_id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let request: SignCardRequest = parse_body(&body)?;
    match (&request.web, request.wallet) {
        (Some(web), wallet) => {
            if !matches!(wallet, Wallet::GooglePay | Wallet::SamsungPay | Wallet::Merchant) {
                return Err(ApiError::validation("a web push is for GOOGLE_PAY, SAMSUNG_PAY or MERCHANT"));
            }
            web.check().map_err(|problem| ApiError::validation(format!("`web.callbackUrl` {problem}")))?;
        }
        (None, Wallet::ApplePay) => {
            let input =
                request.apple_pay.as_ref().ok_or_else(|| ApiError::validation("APPLE_PAY requires `applePay`"))?;
            let hex_ok =
                |s: &str| !s.is_empty() && s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit());
            if input.certificates.is_empty() || !hex_ok(&input.nonce) || !hex_ok(&input.nonce_signature) {
                return Err(ApiError::validation("`applePay` needs certificates and hex `nonce` and `nonceSignature`"));
            }
        }
        (None, Wallet::GooglePay | Wallet::SamsungPay) => {}
        (None, _) => {
            return Err(ApiError::validation(
                "push provisioning is for APPLE_PAY, GOOGLE_PAY and SAMSUNG_PAY, or a web push (`web`)",
            ));
        }
    }
    let wallet_key = mock.keys().wallet.current().public_jwk();
    // The wallet's web flow is this mock's page, at the address the caller reached it by.
    let web_flow = {
        let info = req.connection_info();
        format!("{}://{}{}", info.scheme(), info.host(), super::web_push::WEB_PUSH_PATH)
    };
    let now = mock.now();
    let web_ttl = std::time::Duration::from_secs(mock.config.simulator.web_push_ttl_secs);
    idempotent(&mock, &req, &key, &body, |state| {
        let card = state
            .cards
            .get(card_id.as_str())
            .ok_or_else(|| ApiError::UnknownResource(format!("no card `{card_id}`")))?;
        if card.status != IssuerCardStatus::Active || card.replaced_by.is_some() {
            return Err(ApiError::Conflict("only an active card can be pushed to a wallet".into()));
        }
        let (Some(pan), Some(expiry)) = (card.pan.clone(), card.expiry.clone()) else {
            return Err(ApiError::Conflict("TMP holds no card data for this card".into()));
        };
        let payload = PushPayload::new(&card.card_id, pan, expiry, request.wallet);
        let activation_data = (request.wallet == Wallet::ApplePay && request.web.is_none())
            .then(|| STANDARD.encode(uuid::Uuid::new_v4().as_bytes()));
        let web = request
            .web
            .as_ref()
            .map(|web| WebPushGrant { callback_url: web.callback_url.clone(), expires_at: now + web_ttl });
        // Remembered so the simulated wallet can check the activation data the app hands it,
        // and the web flow can find its receipt (the payload's nonce).
        state.push_grants.insert(
            payload.nonce.clone(),
            PushGrant {
                card_id: card_id.to_string(),
                wallet: request.wallet,
                activation_data: activation_data.clone(),
                issued_at: payload.issued_at,
                used: false,
                web: web.clone(),
            },
        );
        let mut response = SignCardResponse {
            wallet: request.wallet,
            apple_pay: None,
            google_pay: None,
            samsung_pay: None,
            web: None,
        };
        if let Some(web) = web {
            // The web flow reads the card from TMP's records: nothing to encrypt.
            response.web = Some(WebPushSignOutput {
                push_url: format!("{web_flow}/{}", payload.nonce),
                expires_at: web.expires_at,
            });
            return Ok((StatusCode::OK, Some(json!(response)), Vec::new()));
        }
        let jwe = tmp_protocol::jwe::encrypt_json(&payload, &wallet_key).map_err(|e| ApiError::Internal(e.into()))?;
        match request.wallet {
            Wallet::ApplePay => {
                response.apple_pay = Some(ApplePaySignOutput {
                    encrypted_pass_data: jwe,
                    activation_data: activation_data.unwrap_or_default(),
                    // Stands for the key agreement PassKit would do; the test wallet needs none.
                    ephemeral_public_key: STANDARD.encode(wallet_key.thumbprint()),
                })
            }
            Wallet::SamsungPay => response.samsung_pay = Some(SamsungPaySignOutput { provisioning_payload: jwe }),
            _ => response.google_pay = Some(GooglePaySignOutput { opaque_payment_card: jwe }),
        }
        Ok((StatusCode::OK, Some(json!(response)), Vec::new()))
    })
    .await
}

#[tracing::instrument(skip_all)]
async fn card_status(
    mock: Data<Mock>,
    req: HttpRequest,
    Signed(body): Signed,
    card_id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let update: CardStatusUpdate = parse_body(&body)?;
    idempotent(&mock, &req, &key, &body, |state| {
        // In approach `external` cards live at the processor: TMP takes the lifecycle fact for
        // a card it has never tokenized (nothing to change, 200 with 0 tokens) and remembers
        // it, rather than a 404 that would hold every event of an untokenized card.
        state.card_mut_or_create(&card_id);
        let propagate = update.propagate_to_tokens.unwrap_or(true);
        let (affected, effects) =
            state.set_card_status(&card_id, update.status, update.reason.as_deref(), propagate)?;
        let ack = CardUpdateAck { card_id: card_id.to_string(), tokens_affected: affected };
        Ok((StatusCode::OK, Some(json!(ack)), effects))
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
    let request: CardReplace = parse_body(&body)?;
    check_id("newCardId", &request.new_card_id)?;
    let data: ReplacementCardData = mock
        .keys()
        .tmp_api
        .decrypt_json(&request.encrypted_payload)
        .map_err(|e| ApiError::bad_jwe("encryptedPayload", e))?;
    idempotent(&mock, &req, &key, &body, |state| {
        state.card_mut_or_create(&card_id); // see `card_status`
        let tokens = request.tokens.unwrap_or(ReplacementTokens::Move);
        let (affected, effects) = state.replace_card(&card_id, &request.new_card_id, data.pan, data.expiry, tokens)?;
        let ack = CardUpdateAck { card_id: card_id.to_string(), tokens_affected: affected };
        Ok((StatusCode::OK, Some(json!(ack)), effects))
    })
    .await
}

#[tracing::instrument(skip_all)]
async fn expiry(
    mock: Data<Mock>,
    req: HttpRequest,
    Signed(body): Signed,
    card_id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let request: CardExpiryUpdate = parse_body(&body)?;
    let data: ExpiryData = mock
        .keys()
        .tmp_api
        .decrypt_json(&request.encrypted_payload)
        .map_err(|e| ApiError::bad_jwe("encryptedPayload", e))?;
    idempotent(&mock, &req, &key, &body, |state| {
        state.card_mut_or_create(&card_id); // see `card_status`
        let (affected, effects) = state.renew_card(&card_id, data.expiry)?;
        let ack = CardUpdateAck { card_id: card_id.to_string(), tokens_affected: affected };
        Ok((StatusCode::OK, Some(json!(ack)), effects))
    })
    .await
}

/// The card's product or art changed; every live token shows it.
#[tracing::instrument(skip_all)]
async fn metadata(
    mock: Data<Mock>,
    req: HttpRequest,
    Signed(body): Signed,
    card_id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let update: CardMetadata = parse_body(&body)?;
    update.check().map_err(metadata_error)?;
    idempotent(&mock, &req, &key, &body, |state| {
        state.card_mut_or_create(&card_id); // see `card_status`
        let affected = state.update_card_metadata(&card_id, update.clone())?;
        let ack = CardUpdateAck { card_id: card_id.to_string(), tokens_affected: affected };
        Ok((StatusCode::OK, Some(json!(ack)), Vec::new()))
    })
    .await
}

/// [`CardMetadata::check`]'s finding as a 422.
pub fn metadata_error((member, problem): (&str, &str)) -> ApiError {
    match member {
        "" => ApiError::validation(format!("the card metadata {problem}")),
        member => ApiError::validation(format!("`{member}` {problem}")),
    }
}
