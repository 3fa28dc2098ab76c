//! Push provisioning: the issuer's app asks for the card to be added to Apple Pay, Google Pay or
//! Samsung Pay, or the issuer's website to a wallet's web flow; the adapter has TMP sign the card
//! (`POST /tmp-api/v1/cards/{cardId}/sign`) and hands the wallet's payload back for the app to
//! pass to PassKit, the Google Pay push API or Samsung Pay's SDK — or, for the web, the URL to
//! send the cardholder's browser to.

use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tmp_protocol::enums::Wallet;
use tmp_protocol::tmp_api::{
    ApplePaySignInput, GooglePaySignInput, SamsungPaySignInput, SignCardRequest, SignCardResponse, WebPushSignInput,
};
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

/// What Samsung Pay's SDK (`getWalletInfo`) gives the issuer's app (all optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SamsungPayPushRequest {
    pub device_id: Option<String>,
    pub wallet_user_id: Option<String>,
    pub cardholder_name: Option<String>,
    /// Optional, for the audit.
    pub reason: Option<String>,
}

/// What Samsung Pay's `addCard` needs back.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SamsungPayPushResponse {
    pub card_id: String,
    pub wallet: Wallet,
    /// The encrypted payload for `AddCardInfo` (`EXTRA_PROVISION_PAYLOAD`), opaque to the issuer.
    pub provisioning_payload: String,
}

/// Web push provisioning from the issuer's website.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebPushRequest {
    /// `GOOGLE_PAY`, `SAMSUNG_PAY` or `MERCHANT` (a merchant's card-on-file, as MDES Token
    /// Connect offers).
    pub wallet: Wallet,
    /// Where the wallet's web flow sends the cardholder back: `https://` (`http://` only to
    /// localhost), a host name or IPv4 address, letters, digits and `-._~:/?&=%+` only, no
    /// fragment, no card number; `result` (`ADDED`, `PENDING`, `DECLINED`, `CANCELLED`) and,
    /// with `ADDED` or `PENDING`, `tokenId` are appended to its query.
    pub callback_url: String,
    /// Optional, for the audit.
    pub reason: Option<String>,
}

/// Where the issuer's page sends the cardholder's browser.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebPushResponse {
    pub card_id: String,
    pub wallet: Wallet,
    /// The wallet's web flow, holding a single-use receipt.
    pub push_url: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

/// The wallets a web push can go to.
const WEB_PUSH_WALLETS: [Wallet; 3] = [Wallet::GooglePay, Wallet::SamsungPay, Wallet::Merchant];

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

fn samsung_input(request: &SamsungPayPushRequest) -> Result<SamsungPaySignInput, ApiError> {
    for (field, id) in [("deviceId", &request.device_id), ("walletUserId", &request.wallet_user_id)] {
        if let Some(id) = id {
            Id::parse(id.as_str()).map_err(|e| invalid_field(field, e))?;
        }
    }
    if let Some(name) = &request.cardholder_name {
        FreeText::parse(name.as_str()).map_err(|e| invalid_field("cardholderName", e))?;
    }
    Ok(SamsungPaySignInput {
        device_id: request.device_id.clone(),
        wallet_user_id: request.wallet_user_id.clone(),
        cardholder_name: request.cardholder_name.clone(),
    })
}

/// `allowed_hosts` (`ops.web_push_callback_hosts`): where the wallet's page may send the
/// cardholder back; without it, a provisioning key could make the wallet's trusted page
/// redirect to any site.
fn web_input(request: &WebPushRequest, allowed_hosts: &[String]) -> Result<WebPushSignInput, ApiError> {
    if !WEB_PUSH_WALLETS.contains(&request.wallet) {
        return Err(ApiError::validation("`wallet` of a web push must be GOOGLE_PAY, SAMSUNG_PAY or MERCHANT"));
    }
    let input = WebPushSignInput { callback_url: request.callback_url.clone() };
    input.check().map_err(|problem| ApiError::validation(format!("`callbackUrl` {problem}")))?;
    let host = input.callback_host().unwrap_or_default();
    if !allowed_hosts.is_empty() && !allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return Err(ApiError::validation("`callbackUrl` must name a host of ops.web_push_callback_hosts"));
    }
    Ok(input)
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
    push(principal, state, ops, req, card_id.into_inner(), body, Push::ApplePay).await
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
    push(principal, state, ops, req, card_id.into_inner(), body, Push::GooglePay).await
}

/// Samsung Pay push provisioning: TMP signs the card for Samsung Pay's `addCard`.
#[utoipa::path(
    post,
    path = "/ops/v1/cards/{cardId}/push-provisioning/samsung-pay",
    operation_id = "push_provision_samsung_pay",
    tag = "Push provisioning",
    params(
        ("cardId" = String, Path, description = "The card id TMP knows the card by"),
        ("X-Idempotency-Key" = Option<String>, Header, description = "Same key and body: the stored answer"),
    ),
    request_body = SamsungPayPushRequest,
    responses((status = 200, description = "The provisioning payload for addCard", body = SamsungPayPushResponse), OpsErrors),
    security(("bearer" = ["provisioning"]), ("mtls" = ["provisioning"]))
)]
#[tracing::instrument(skip_all)]
pub async fn samsung_pay(
    principal: Principal,
    state: Data<AppState>,
    ops: Data<OpsState>,
    req: HttpRequest,
    card_id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    push(principal, state, ops, req, card_id.into_inner(), body, Push::SamsungPay).await
}

/// Web push provisioning: TMP signs the card for a wallet's web flow; the issuer's website sends
/// the cardholder there.
#[utoipa::path(
    post,
    path = "/ops/v1/cards/{cardId}/push-provisioning/web",
    operation_id = "push_provision_web",
    tag = "Push provisioning",
    params(
        ("cardId" = String, Path, description = "The card id TMP knows the card by"),
        ("X-Idempotency-Key" = Option<String>, Header, description = "Same key and body: the stored answer"),
    ),
    request_body = WebPushRequest,
    responses((status = 200, description = "Where to send the cardholder's browser", body = WebPushResponse), OpsErrors),
    security(("bearer" = ["provisioning"]), ("mtls" = ["provisioning"]))
)]
#[tracing::instrument(skip_all)]
pub async fn web_push(
    principal: Principal,
    state: Data<AppState>,
    ops: Data<OpsState>,
    req: HttpRequest,
    card_id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    push(principal, state, ops, req, card_id.into_inner(), body, Push::Web).await
}

/// The ways a card is pushed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Push {
    ApplePay,
    GooglePay,
    SamsungPay,
    Web,
}

impl Push {
    /// The audit action.
    fn action(self) -> &'static str {
        match self {
            Push::ApplePay => "provisioning.apple_pay",
            Push::GooglePay => "provisioning.google_pay",
            Push::SamsungPay => "provisioning.samsung_pay",
            Push::Web => "provisioning.web",
        }
    }
}

async fn push(
    principal: Principal,
    state: Data<AppState>,
    ops: Data<OpsState>,
    req: HttpRequest,
    card_id: String,
    body: web::Payload,
    kind: Push,
) -> Result<HttpResponse, ApiError> {
    let draft = AuditDraft::new(kind.action(), Some(card_id.clone()), Some(card_id.clone()));
    super::write(&state, &principal, &req, body, Scope::Provisioning, draft, async |audit, write, bytes| {
        path_id("cardId", &card_id)?;
        let none =
            SignCardRequest { wallet: Wallet::Other, apple_pay: None, google_pay: None, samsung_pay: None, web: None };
        let request = match kind {
            Push::ApplePay => {
                let body: ApplePayPushRequest = parse_body(bytes)?;
                audit.reason = super::optional_reason(body.reason.clone())?;
                SignCardRequest { wallet: Wallet::ApplePay, apple_pay: Some(apple_input(&body)?), ..none }
            }
            Push::GooglePay => {
                let body: GooglePayPushRequest = super::optional_json(bytes)?;
                audit.reason = super::optional_reason(body.reason.clone())?;
                SignCardRequest { wallet: Wallet::GooglePay, google_pay: Some(google_input(&body)?), ..none }
            }
            Push::SamsungPay => {
                let body: SamsungPayPushRequest = super::optional_json(bytes)?;
                audit.reason = super::optional_reason(body.reason.clone())?;
                SignCardRequest { wallet: Wallet::SamsungPay, samsung_pay: Some(samsung_input(&body)?), ..none }
            }
            Push::Web => {
                let body: WebPushRequest = parse_body(bytes)?;
                audit.reason = super::optional_reason(body.reason.clone())?;
                let hosts = &state.settings.ops.web_push_callback_hosts;
                SignCardRequest { wallet: body.wallet, web: Some(web_input(&body, hosts)?), ..none }
            }
        };
        let wallet = request.wallet;
        let signed: SignCardResponse = ops
            .tmp()
            .sign_card(&card_id, &request, &write.downstream_key, &correlation::current())
            .await
            .map_err(|e| super::tmp_error(TmpCall::Sign { card_id: &card_id }, e))?;
        let broken = || ApiError::Internal(anyhow::anyhow!("TMP's sign answer lacks the {wallet:?} payload"));
        let card_id = card_id.clone();
        match kind {
            Push::ApplePay => {
                let out = signed.apple_pay.ok_or_else(broken)?;
                Answer::ok(&ApplePayPushResponse {
                    card_id,
                    wallet,
                    encrypted_pass_data: out.encrypted_pass_data,
                    activation_data: out.activation_data,
                    ephemeral_public_key: out.ephemeral_public_key,
                })
            }
            Push::GooglePay => {
                let out = signed.google_pay.ok_or_else(broken)?;
                Answer::ok(&GooglePayPushResponse { card_id, wallet, opaque_payment_card: out.opaque_payment_card })
            }
            Push::SamsungPay => {
                let out = signed.samsung_pay.ok_or_else(broken)?;
                Answer::ok(&SamsungPayPushResponse { card_id, wallet, provisioning_payload: out.provisioning_payload })
            }
            Push::Web => {
                let out = signed.web.ok_or_else(broken)?;
                Answer::ok(&WebPushResponse { card_id, wallet, push_url: out.push_url, expires_at: out.expires_at })
            }
        }
    })
    .await
}
