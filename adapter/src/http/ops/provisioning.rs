//! Push provisioning: the issuer's app asks for the card to be added to Apple Pay or Google
//! Pay; the adapter has TMP sign the card (`POST /tmp-api/v1/cards/{cardId}/sign`) and hands the
//! wallet's payload back for the app to pass to PassKit or the Google Pay push API.

use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use tmp_protocol::enums::Wallet;
use tmp_protocol::tmp_api::{ApplePaySignInput, GooglePaySignInput, SignCardRequest, SignCardResponse};
use utoipa::ToSchema;

use super::{Answer, AuditDraft, OpsErrors, OpsState, Principal, TmpCall, path_id};
use crate::domain::scopes::Scope;
use crate::http::AppState;
use crate::http::error::invalid_field;
use tmp_edge::correlation;
use tmp_edge::error::ApiError;
use tmp_edge::json::parse_body;
use tmp_protocol::fields::{FreeText, Id};

/// Most certificates accepted in Apple's chain.
const MAX_CERTIFICATES: usize = 5;
/// Longest accepted base64 certificate.
const MAX_CERTIFICATE_LEN: usize = 4096;
/// Longest accepted hex nonce or nonce signature.
const MAX_HEX_LEN: usize = 1024;

/// What PassKit hands the issuer's app (`PKAddPaymentPassViewControllerDelegate`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplePayPushRequest {
    /// Apple's leaf and sub-CA certificates, base64 DER, leaf first (1 to 5).
    pub certificates: Vec<String>,
    /// Hex.
    pub nonce: String,
    /// Hex.
    pub nonce_signature: String,
    /// Optional, for the audit.
    pub reason: Option<String>,
}

/// What PassKit needs back (`PKAddPaymentPassRequest`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplePayPushResponse {
    pub card_id: String,
    pub wallet: Wallet,
    pub encrypted_pass_data: String,
    pub activation_data: String,
    pub ephemeral_public_key: String,
}

/// What the Google Pay push provisioning API gives the issuer's app (all optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GooglePayPushRequest {
    pub client_device_id: Option<String>,
    pub client_wallet_account_id: Option<String>,
    pub cardholder_name: Option<String>,
    /// Optional, for the audit.
    pub reason: Option<String>,
}

/// What `pushTokenize` needs back.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GooglePayPushResponse {
    pub card_id: String,
    pub wallet: Wallet,
    /// Mastercard OPC or Visa encrypted payload, opaque to the issuer.
    pub opaque_payment_card: String,
}

fn hex_field(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty()
        || value.len() > MAX_HEX_LEN
        || !value.len().is_multiple_of(2)
        || !value.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(ApiError::validation(format!("`{field}` must be 2 to {MAX_HEX_LEN} hex characters")));
    }
    Ok(())
}

fn apple_input(request: &ApplePayPushRequest) -> Result<ApplePaySignInput, ApiError> {
    let base64ish = |c: &str| {
        !c.is_empty()
            && c.len() <= MAX_CERTIFICATE_LEN
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
    };
    if request.certificates.is_empty()
        || request.certificates.len() > MAX_CERTIFICATES
        || !request.certificates.iter().all(|c| base64ish(c))
    {
        return Err(ApiError::validation(format!(
            "`certificates` must hold 1 to {MAX_CERTIFICATES} base64 certificates of at most {MAX_CERTIFICATE_LEN} characters"
        )));
    }
    hex_field("nonce", &request.nonce)?;
    hex_field("nonceSignature", &request.nonce_signature)?;
    Ok(ApplePaySignInput {
        certificates: request.certificates.clone(),
        nonce: request.nonce.clone(),
        nonce_signature: request.nonce_signature.clone(),
    })
}

fn google_input(request: &GooglePayPushRequest) -> Result<GooglePaySignInput, ApiError> {
    if let Some(id) = &request.client_device_id {
        Id::parse(id.as_str()).map_err(|e| invalid_field("clientDeviceId", e))?;
    }
    if let Some(id) = &request.client_wallet_account_id {
        Id::parse(id.as_str()).map_err(|e| invalid_field("clientWalletAccountId", e))?;
    }
    if let Some(name) = &request.cardholder_name {
        FreeText::parse(name.as_str()).map_err(|e| invalid_field("cardholderName", e))?;
    }
    Ok(GooglePaySignInput {
        client_device_id: request.client_device_id.clone(),
        client_wallet_account_id: request.client_wallet_account_id.clone(),
        cardholder_name: request.cardholder_name.clone(),
    })
}

/// Apple Pay push provisioning: TMP signs the card for PassKit.
#[utoipa::path(
    post,
    path = "/ops/v1/cards/{cardId}/push-provisioning/apple-pay",
    operation_id = "push_provision_apple_pay",
    tag = "Push provisioning",
    params(
        ("cardId" = String, Path, description = "The card id TMP knows the card by"),
        ("X-Idempotency-Key" = Option<String>, Header, description = "Same key and body: the stored answer"),
    ),
    request_body = ApplePayPushRequest,
    responses((status = 200, description = "PassKit's add-payment-pass request", body = ApplePayPushResponse), OpsErrors),
    security(("bearer" = ["provisioning"]), ("mtls" = ["provisioning"]))
)]
#[tracing::instrument(skip_all)]
pub async fn apple_pay(
    principal: Principal,
    state: Data<AppState>,
    ops: Data<OpsState>,
    req: HttpRequest,
    card_id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    push(principal, state, ops, req, card_id.into_inner(), body, Wallet::ApplePay).await
}

/// Google Pay push provisioning: TMP signs the card into an opaque payment card.
#[utoipa::path(
    post,
    path = "/ops/v1/cards/{cardId}/push-provisioning/google-pay",
    operation_id = "push_provision_google_pay",
    tag = "Push provisioning",
    params(
        ("cardId" = String, Path, description = "The card id TMP knows the card by"),
        ("X-Idempotency-Key" = Option<String>, Header, description = "Same key and body: the stored answer"),
    ),
    request_body = GooglePayPushRequest,
    responses((status = 200, description = "The opaque payment card for pushTokenize", body = GooglePayPushResponse), OpsErrors),
    security(("bearer" = ["provisioning"]), ("mtls" = ["provisioning"]))
)]
#[tracing::instrument(skip_all)]
pub async fn google_pay(
    principal: Principal,
    state: Data<AppState>,
    ops: Data<OpsState>,
    req: HttpRequest,
    card_id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    push(principal, state, ops, req, card_id.into_inner(), body, Wallet::GooglePay).await
}

async fn push(
    principal: Principal,
    state: Data<AppState>,
    ops: Data<OpsState>,
    req: HttpRequest,
    card_id: String,
    body: web::Payload,
    wallet: Wallet,
) -> Result<HttpResponse, ApiError> {
    let action = if wallet == Wallet::ApplePay { "provisioning.apple_pay" } else { "provisioning.google_pay" };
    let draft = AuditDraft::new(action, Some(card_id.clone()), Some(card_id.clone()));
    super::write(&state, &principal, &req, body, Scope::Provisioning, draft, async |audit, write, bytes| {
        path_id("cardId", &card_id)?;
        let request = match wallet {
            Wallet::ApplePay => {
                let body: ApplePayPushRequest = parse_body(bytes)?;
                audit.reason = super::optional_reason(body.reason.clone())?;
                SignCardRequest { wallet, apple_pay: Some(apple_input(&body)?), google_pay: None }
            }
            _ => {
                let body: GooglePayPushRequest = super::optional_json(bytes)?;
                audit.reason = super::optional_reason(body.reason.clone())?;
                SignCardRequest { wallet, apple_pay: None, google_pay: Some(google_input(&body)?) }
            }
        };
        let signed: SignCardResponse = ops
            .tmp()
            .sign_card(&card_id, &request, &write.downstream_key, &correlation::current())
            .await
            .map_err(|e| super::tmp_error(TmpCall::Sign { card_id: &card_id }, e))?;
        let broken = || ApiError::Internal(anyhow::anyhow!("TMP's sign answer lacks the {wallet:?} payload"));
        match wallet {
            Wallet::ApplePay => {
                let out = signed.apple_pay.ok_or_else(broken)?;
                Answer::ok(&ApplePayPushResponse {
                    card_id: card_id.clone(),
                    wallet,
                    encrypted_pass_data: out.encrypted_pass_data,
                    activation_data: out.activation_data,
                    ephemeral_public_key: out.ephemeral_public_key,
                })
            }
            _ => {
                let out = signed.google_pay.ok_or_else(broken)?;
                Answer::ok(&GooglePayPushResponse {
                    card_id: card_id.clone(),
                    wallet,
                    opaque_payment_card: out.opaque_payment_card,
                })
            }
        }
    })
    .await
}
