//! The simulator: what wallets, TSPs and cardholders do, driving the issuer as TMP does.
//!
//! A tokenization decides green / yellow / red:
//! - approach `external`: the issuer decides through verify-card (and verify-CVC first where
//!   the wallet requires a CVC check — Apple Pay), within `issuer.verify_card_deadline_ms`;
//!   when the issuer misses the deadline or fails, the mock stands in with
//!   `issuer.stand_in_decision` and records it;
//! - approach `datacore`: the mock decides from DataCore (PAN present, card not blocked or
//!   closed, expiry matches and not past) and the wallet's scores; Apple Pay's CVC is then
//!   checked at the issuer (verify-CVC), DataCore holding no CVC.
//!
//! Green creates an active token; yellow an inactive one plus an `ACTIVATION_CODE_DELIVERY`
//! carrying a fresh OTP (the cardholder then types it: [`enter_otp`]); red creates none.

pub mod push;

use std::time::Duration;
use tmp_protocol::fields::{Code, FreeText, Id};

use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tmp_protocol::enums::{
    ChangeInitiator, CvcResult, Decision, DeviceType, IssuerCardStatus, NotificationChannel, NotificationType,
    PanSource, ProvisioningMethod, StepUpMethodType, TokenStatus, TokenType, Tsp, Wallet,
};
use tmp_protocol::issuer_api::{
    CardData, CardholderContact, DeviceInfo, RiskContext, StepUpMethod, TokenRequestor, VERIFY_CARD_PATH,
    VERIFY_CVC_PATH, VerifyCardRequest, VerifyCardResponse, VerifyCvcRequest, VerifyCvcResponse,
};
use tmp_protocol::sensitive::{Cvc, Expiry, Otp, Pan};
use tmp_protocol::tmp_api::TokenInfo;

use crate::config::Approach;
use crate::context::Mock;
use crate::journal::{Direction, JournalEntry, Outcome};
use crate::sender::issuer::Failure;
use crate::state::{Cause, Effect, MockState, OtpChallenge, Token, Tokenization};
use tmp_edge::error::ApiError;

/// Card data as the cardholder typed it into the wallet.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CardInput {
    pub pan: Pan,
    pub expiry: Expiry,
    #[serde(default)]
    pub cvc: Option<Cvc>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestorInput {
    pub id: Id,
    pub name: FreeText,
}

/// `POST /_mock/v1/simulate/tokenizations`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenizeRequest {
    #[serde(default)]
    pub approach: Option<Approach>,
    /// The card typed in; or, without it, the card TMP already holds under `cardId`.
    #[serde(default)]
    pub card: Option<CardInput>,
    #[serde(default)]
    pub card_id: Option<Id>,
    pub wallet: Wallet,
    #[serde(default)]
    pub tsp: Option<Tsp>,
    #[serde(default)]
    pub token_requestor: Option<RequestorInput>,
    #[serde(default)]
    pub wallet_score: Option<u8>,
    #[serde(default)]
    pub device_score: Option<u8>,
    /// Defaults to one derived from the scores.
    #[serde(default)]
    pub wallet_recommendation: Option<Decision>,
    #[serde(default)]
    pub device_name: Option<FreeText>,
    /// The device's id at the TSP; tokenizations on one phone share it. A new one by default.
    #[serde(default)]
    pub device_id: Option<Id>,
    /// The risk context verify-card carries; by default derived from the scores and the method.
    #[serde(default)]
    pub risk: Option<RiskContext>,
    /// On a step-up, the method the cardholder picks in the wallet; by default the first code
    /// the issuer offered (else its first method).
    #[serde(default)]
    pub step_up_method: Option<StepUpPick>,
}

/// The cardholder's step-up choice in the wallet: one of the methods the issuer offered, or
/// `LATER` — the token waits, `INACTIVE`, for
/// `POST /_mock/v1/simulate/tokens/{tokenId}/step-up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepUpPick {
    OtpSms,
    OtpEmail,
    AppToApp,
    CustomerService,
    OutboundCall,
    Later,
}

impl StepUpPick {
    fn method(self) -> Option<StepUpMethodType> {
        match self {
            StepUpPick::OtpSms => Some(StepUpMethodType::OtpSms),
            StepUpPick::OtpEmail => Some(StepUpMethodType::OtpEmail),
            StepUpPick::AppToApp => Some(StepUpMethodType::AppToApp),
            StepUpPick::CustomerService => Some(StepUpMethodType::CustomerService),
            StepUpPick::OutboundCall => Some(StepUpMethodType::OutboundCall),
            StepUpPick::Later => None,
        }
    }
}

/// `POST /_mock/v1/simulate/wallet/push`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushRequest {
    /// `encryptedPassData` (Apple Pay) or `opaquePaymentCard` (Google Pay) from `sign`.
    pub payload: String,
    #[serde(default)]
    pub approach: Option<Approach>,
    #[serde(default)]
    pub tsp: Option<Tsp>,
    #[serde(default)]
    pub wallet_score: Option<u8>,
    #[serde(default)]
    pub device_score: Option<u8>,
    #[serde(default)]
    pub wallet_recommendation: Option<Decision>,
    #[serde(default)]
    pub device_name: Option<FreeText>,
    /// The device's id at the TSP; tokenizations on one phone share it. A new one by default.
    #[serde(default)]
    pub device_id: Option<Id>,
    /// Apple Pay: the `activationData` the issuer's app received from `sign`. It must be the
    /// one issued with the payload; it stands for the cardholder's authentication in the
    /// issuer's app, so a step-up (yellow) decision activates the token at once.
    #[serde(default)]
    pub activation_data: Option<String>,
    /// On a step-up without activation data, the method the cardholder picks (as for a
    /// tokenization).
    #[serde(default)]
    pub step_up_method: Option<StepUpPick>,
}

/// The well-known token requestor of a wallet (TSP requestor ids as published for MDES).
pub fn default_requestor(wallet: Wallet) -> TokenRequestor {
    let (id, name) = match wallet {
        Wallet::ApplePay => ("50110030273", "Apple Pay"),
        Wallet::GooglePay => ("50120834693", "Google Pay"),
        Wallet::SamsungPay => ("50139059239", "Samsung Pay"),
        Wallet::Merchant => ("50182743648", "Merchant"),
        Wallet::Other => ("50100000000", "Other"),
    };
    TokenRequestor {
        id: Id::parse(id).expect("a well-known requestor id"),
        name: FreeText::parse(name).expect("a plain name"),
        wallet,
    }
}

/// The wallet's recommendation from its scores: both ≥ 3 → approve, a 2 → step up, a 1 → decline.
pub fn recommendation(wallet_score: u8, device_score: u8) -> Decision {
    match wallet_score.min(device_score) {
        0 | 1 => Decision::Declined,
        2 => Decision::RequireAdditionalAuthentication,
        _ => Decision::Approved,
    }
}

struct Attempt {
    approach: Approach,
    method: ProvisioningMethod,
    wallet: Wallet,
    tsp: Tsp,
    requestor: TokenRequestor,
    wallet_score: u8,
    device_score: u8,
    recommendation: Decision,
    device_name: Option<String>,
    device_id: String,
    card_id: Option<String>,
    pan: Pan,
    expiry: Expiry,
    cvc: Option<Cvc>,
    /// The issuer's app authenticated the cardholder (Apple Pay activation data presented).
    issuer_authenticated: bool,
    risk: RiskContext,
    step_up: Option<StepUpPick>,
}

/// What decided, and on which card.
struct Verdict {
    decision: Decision,
    reason: String,
    card_id: Option<String>,
    cardholder: Option<CardholderContact>,
    /// The step-up methods the issuer offered (external approach only).
    step_up_methods: Vec<StepUpMethod>,
    stand_in_cause: Option<String>,
    cvc_result: Option<CvcResult>,
}

fn score(field: &str, value: Option<u8>) -> Result<u8, ApiError> {
    let value = value.unwrap_or(5);
    if !(1..=5).contains(&value) {
        return Err(ApiError::validation(format!("`{field}` must be 1 to 5")));
    }
    Ok(value)
}

#[tracing::instrument(skip_all)]
pub async fn tokenize(mock: &Mock, request: TokenizeRequest) -> Result<Value, ApiError> {
    let wallet_score = score("walletScore", request.wallet_score)?;
    let device_score = score("deviceScore", request.device_score)?;
    let (pan, expiry, cvc, card_id) = match (request.card, &request.card_id) {
        (Some(card), card_id) => (card.pan, card.expiry, card.cvc, card_id.clone()),
        (None, Some(card_id)) => {
            let state = mock.state.lock().await;
            let card = state
                .cards
                .get(card_id.as_str())
                .ok_or_else(|| ApiError::UnknownResource(format!("no card `{card_id}`")))?;
            match (&card.pan, &card.expiry) {
                (Some(pan), Some(expiry)) => (pan.clone(), expiry.clone(), None, Some(card_id.clone())),
                _ => return Err(ApiError::Conflict("TMP holds no card data for this card: send `card`".into())),
            }
        }
        (None, None) => return Err(ApiError::validation("send `card` (what the cardholder typed) or `cardId`")),
    };
    let mut requestor = default_requestor(request.wallet);
    if let Some(custom) = request.token_requestor {
        requestor.id = custom.id;
        requestor.name = custom.name;
    }
    let attempt = Attempt {
        approach: request.approach.unwrap_or(mock.config.simulator.default_approach),
        method: ProvisioningMethod::Manual,
        wallet: request.wallet,
        tsp: request.tsp.unwrap_or(Tsp::Mdes),
        requestor,
        wallet_score,
        device_score,
        recommendation: request.wallet_recommendation.unwrap_or(recommendation(wallet_score, device_score)),
        device_name: request.device_name.map(String::from),
        device_id: device_id(request.device_id),
        card_id: card_id.map(String::from),
        pan,
        expiry,
        cvc,
        issuer_authenticated: false,
        risk: request.risk.unwrap_or_else(|| risk_of(ProvisioningMethod::Manual, wallet_score, device_score)),
        step_up: request.step_up_method,
    };
    run(mock, attempt).await
}

#[tracing::instrument(skip_all)]
pub async fn push(mock: &Mock, request: PushRequest) -> Result<Value, ApiError> {
    let payload: push::PushPayload =
        mock.keys().wallet.decrypt_json(&request.payload).map_err(|e| ApiError::bad_jwe("payload", e))?;
    push_payload(mock, payload, request).await
}

/// A push whose payload the wallet holds: decrypted from an app's push, or built by the web
/// flow from its receipt (`request.payload` is then unused).
pub async fn push_payload(mock: &Mock, payload: push::PushPayload, request: PushRequest) -> Result<Value, ApiError> {
    let wallet_score = score("walletScore", request.wallet_score)?;
    let device_score = score("deviceScore", request.device_score)?;
    {
        let mut state = mock.state.lock().await;
        if state.used_push_nonces.contains(&payload.nonce) {
            return Err(ApiError::Conflict("this push payload was already used".into()));
        }
        if let Some(given) = &request.activation_data {
            let issued = state.push_grants.get(&payload.nonce).and_then(|g| g.activation_data.as_deref());
            if issued != Some(given.as_str()) {
                return Err(ApiError::Conflict("`activationData` is not the one issued with this payload".into()));
            }
        }
        state.used_push_nonces.insert(payload.nonce.clone());
        if let Some(grant) = state.push_grants.get_mut(&payload.nonce) {
            grant.used = true;
        }
    }
    let attempt = Attempt {
        approach: request.approach.unwrap_or(mock.config.simulator.default_approach),
        method: ProvisioningMethod::Push,
        wallet: payload.wallet,
        tsp: request.tsp.unwrap_or(Tsp::Mdes),
        requestor: default_requestor(payload.wallet),
        wallet_score,
        device_score,
        recommendation: request.wallet_recommendation.unwrap_or(recommendation(wallet_score, device_score)),
        device_name: request.device_name.map(String::from),
        device_id: device_id(request.device_id),
        card_id: Some(payload.card_id.clone()),
        pan: payload.pan,
        expiry: payload.expiry,
        cvc: None,
        issuer_authenticated: request.activation_data.is_some(),
        risk: risk_of(ProvisioningMethod::Push, wallet_score, device_score),
        step_up: request.step_up_method,
    };
    run(mock, attempt).await
}

async fn run(mock: &Mock, attempt: Attempt) -> Result<Value, ApiError> {
    let tokenization_id = format!("tkn-{}", uuid::Uuid::new_v4().simple());
    let verdict = match attempt.approach {
        Approach::External => external(mock, &tokenization_id, &attempt).await,
        Approach::Datacore => datacore(mock, &tokenization_id, &attempt).await,
    };
    let now = OffsetDateTime::now_utc();
    let path = match verdict.decision {
        Decision::Approved => "GREEN",
        Decision::RequireAdditionalAuthentication => "YELLOW",
        Decision::Declined => "RED",
    };
    let mut state = mock.state.lock().await;
    let mut effects = Vec::new();
    let mut token_view = None;
    let mut otp_expires_at = None;
    // A stand-in without a known card still needs a card reference for the token.
    let card_id = verdict.card_id.clone().or_else(|| state.find_card_by_pan(&attempt.pan).map(|c| c.card_id.clone()));
    let card_id = match (verdict.decision, card_id) {
        (Decision::Declined, card_id) => card_id,
        (_, Some(card_id)) => Some(card_id),
        (_, None) => Some(format!("tmp-card-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])),
    };
    if verdict.decision != Decision::Declined
        && let Some(card_id) = &card_id
    {
        let card = state.card_mut_or_create(card_id);
        if card.pan.is_none() {
            card.set_pan(attempt.pan.clone());
        }
        card.expiry.get_or_insert_with(|| attempt.expiry.clone());
        if card.cardholder.is_none() {
            card.cardholder = verdict.cardholder.clone();
        }
        // The wallet offers what the issuer listed; an issuer that lists nothing gets what its
        // contact allows: a code by SMS, else by e-mail.
        let offered = match verdict.step_up_methods.is_empty() {
            true => contact_codes(card.cardholder.as_ref()),
            false => verdict.step_up_methods.clone(),
        };
        let prefix = if attempt.tsp == Tsp::Mdes { "DWSPMC" } else { "DNITHE" };
        let token_id = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
        // Activation data from the issuer's app completes a step-up: the cardholder already
        // authenticated there.
        let green = verdict.decision == Decision::Approved
            || (verdict.decision == Decision::RequireAdditionalAuthentication && attempt.issuer_authenticated);
        let mut token = Token {
            token_id: token_id.clone(),
            card_id: card_id.clone(),
            tsp: attempt.tsp,
            token_requestor: attempt.requestor.clone(),
            status: if green { TokenStatus::Active } else { TokenStatus::Inactive },
            suspenders: Default::default(),
            token_last4: format!("{:04}", rand::random_range(0..10_000u32)),
            device_name: attempt.device_name.clone(),
            device_id: Some(attempt.device_id.clone()),
            tokenization_id: tokenization_id.clone(),
            provisioning_method: attempt.method,
            otp: None,
            step_up_offered: Vec::new(),
            step_up_chosen: None,
            product: card.metadata.clone(),
            updated_at: now,
        };
        effects.push(Effect::TokenEvent {
            token: token.info(),
            tokenization_id: Some(token.tokenization_id.clone()),
            previous: None,
            // The wallet asked for the token.
            cause: Cause::new(
                ChangeInitiator::TokenRequestor,
                match (green, verdict.decision) {
                    (true, Decision::Approved) => "TOKENIZATION_APPROVED",
                    (true, _) => "ACTIVATED_WITH_ISSUER_ACTIVATION_DATA",
                    (false, _) => "TOKENIZATION_REQUIRES_ACTIVATION",
                },
            ),
            at: now,
        });
        if green {
            effects.push(Effect::token_notification(NotificationType::TokenActivated, &token, now));
        } else {
            token.step_up_offered = offered;
            // The wallet preselects the first code offered (else the first method).
            let offered = &token.step_up_offered;
            let preselected = offered.iter().find(|m| m.method_type.code_channel().is_some()).or(offered.first());
            let pick = match attempt.step_up {
                None => preselected.map(|m| m.method_type),
                Some(pick) => pick.method().filter(|m| offered.iter().any(|o| o.method_type == *m)),
            };
            match pick {
                Some(method) => effects.push(step_up(mock, &mut token, method, now)),
                // No contact, nothing offered, no choice made: the code goes to the issuer all the
                // same, which may know how to reach its cardholder.
                None if attempt.step_up.is_none() && token.step_up_offered.is_empty() => {
                    effects.push(activation_code(mock, &mut token, NotificationChannel::Email, now));
                }
                // `LATER`, or a method the issuer did not offer: nothing is sent; the token
                // waits for `…/step-up` (or the issuer's activation).
                None => {}
            }
            otp_expires_at = token.pending_code().map(|c| c.expires_at);
        }
        token_view = Some(token.view());
        state.tokens.insert(token_id, token);
    }
    let record = Tokenization {
        tokenization_id: tokenization_id.clone(),
        at: now,
        approach: attempt.approach,
        provisioning_method: attempt.method,
        wallet: attempt.wallet,
        tsp: attempt.tsp,
        card_id: card_id.clone(),
        pan_last4: Some(attempt.pan.last4().to_owned()),
        decision: verdict.decision,
        path: path.into(),
        reason: verdict.reason.clone(),
        stand_in: verdict.stand_in_cause.is_some(),
        stand_in_cause: verdict.stand_in_cause.clone(),
        cvc_result: verdict.cvc_result.map(|r| r.as_str().to_owned()),
        token_id: token_view.as_ref().and_then(|t| t["tokenId"].as_str().map(str::to_owned)),
    };
    state.tokenizations.push(record.clone());
    mock.save(&mut state).await?;
    let mut notification_id = None;
    for effect in effects {
        let is_code = matches!(
            &effect,
            Effect::Notification {
                kind: NotificationType::ActivationCodeDelivery | NotificationType::StepUpRequested,
                ..
            }
        );
        let id = mock.outbox.push(effect);
        if is_code {
            notification_id = id;
        }
    }
    let mut answer = json!(record);
    answer["token"] = token_view.unwrap_or(Value::Null);
    answer["activationNotificationId"] = json!(notification_id);
    answer["otpExpiresAt"] = json!(otp_expires_at.map(crate::state::rfc3339));
    Ok(answer)
}

/// `TOKEN_ACTIVATED` for a token that became usable, however it did: approved at once (green),
/// activated in the issuer's app (Apple Pay activation data), by the code, or by the issuer.
/// The device a tokenization comes from: the one named, or a new device.
/// The device the wallet provisions to, as the networks describe it (a merchant's card on file
/// has none).
fn device_of(attempt: &Attempt) -> Option<DeviceInfo> {
    if attempt.requestor.wallet == Wallet::Merchant {
        return None;
    }
    let id = Id::parse(attempt.device_id.as_str()).ok()?;
    let device_type = if attempt.device_name.as_deref().is_some_and(|n| n.to_lowercase().contains("watch")) {
        DeviceType::Watch
    } else {
        DeviceType::Phone
    };
    Some(DeviceInfo { id, device_type: Some(device_type) })
}

/// The token each wallet asks for: Apple Pay keeps it in the secure element, a merchant on file,
/// the other wallets in the cloud (HCE).
fn token_type(wallet: Wallet) -> TokenType {
    match wallet {
        Wallet::ApplePay => TokenType::SecureElement,
        Wallet::Merchant => TokenType::CardOnFile,
        Wallet::GooglePay | Wallet::SamsungPay | Wallet::Other => TokenType::Hce,
    }
}

/// The risk context a wallet would send along: a reason per low score, where the card number
/// came from. No network score: the mock is not a network's risk engine.
fn risk_of(method: ProvisioningMethod, wallet_score: u8, device_score: u8) -> RiskContext {
    let low = |score: u8, code: &str| (score <= 2).then(|| Code::parse(code).expect("a plain code"));
    RiskContext {
        recommendation_reasons: [low(wallet_score, "LOW_ACCOUNT_SCORE"), low(device_score, "LOW_DEVICE_SCORE")]
            .into_iter()
            .flatten()
            .collect(),
        pan_source: Some(match method {
            ProvisioningMethod::Manual => PanSource::KeyEntered,
            ProvisioningMethod::Push => PanSource::MobileBankingApp,
        }),
        network_score: None,
    }
}

fn device_id(named: Option<Id>) -> String {
    named.map(String::from).unwrap_or_else(|| format!("dev-{}", uuid::Uuid::new_v4().simple()))
}

fn new_otp(length: usize) -> Otp {
    let digits: String = (0..length).map(|_| char::from(b'0' + rand::random_range(0..10u8))).collect();
    // `length` is validated to 6..=8, so this always parses.
    Otp::parse(&digits).unwrap_or_else(|_| Otp::parse("000000").expect("six digits"))
}

/// A new activation code for `token` sent by `channel`, expiring by the mock's clock; a code
/// sent before stops working, and its wrong attempts still count. The notification that
/// carries it to the issuer.
fn activation_code(mock: &Mock, token: &mut Token, channel: NotificationChannel, at: OffsetDateTime) -> Effect {
    let otp = new_otp(mock.config.simulator.otp_length);
    let expires_at = mock.now() + Duration::from_secs(mock.config.simulator.otp_ttl_secs);
    let mut challenge =
        OtpChallenge::new(&token.token_id, &otp, expires_at, channel, mock.config.simulator.otp_max_attempts);
    if let Some(before) = &token.otp {
        challenge.wrong_attempts = before.wrong_attempts;
        challenge.max_attempts = before.max_attempts;
    }
    token.otp = Some(challenge);
    Effect::Notification {
        kind: NotificationType::ActivationCodeDelivery,
        card_id: token.card_id.clone(),
        token_id: Some(token.token_id.clone()),
        token_requestor: Some(token.token_requestor.clone()),
        otp: Some((otp, expires_at)),
        channel: Some(channel),
        step_up_method: StepUpMethodType::for_code_channel(channel),
        at,
    }
}

/// The codes a contact allows, as the wallet offers them when the issuer lists no methods.
fn contact_codes(contact: Option<&CardholderContact>) -> Vec<StepUpMethod> {
    let Some(contact) = contact else { return Vec::new() };
    let sms = contact.phone.as_ref().map(|p| StepUpMethod::masked_phone(StepUpMethodType::OtpSms, p));
    let email = contact.email.as_ref().map(StepUpMethod::masked_email);
    sms.into_iter().chain(email).collect()
}

/// The cardholder chose `method` for `token`: a code (the last one stops working) or, for a
/// method without one, `STEP_UP_REQUESTED` — the issuer's systems then authenticate the
/// cardholder (in the app, on the phone) and activate the token through the TMP API.
fn step_up(mock: &Mock, token: &mut Token, method: StepUpMethodType, at: OffsetDateTime) -> Effect {
    token.step_up_chosen = Some(method);
    if let Some(channel) = method.code_channel() {
        return activation_code(mock, token, channel, at);
    }
    // A code sent before stops working (`pending_code`), its wrong attempts kept.
    Effect::Notification {
        kind: NotificationType::StepUpRequested,
        card_id: token.card_id.clone(),
        token_id: Some(token.token_id.clone()),
        token_requestor: Some(token.token_requestor.clone()),
        otp: None,
        channel: None,
        step_up_method: Some(method),
        at,
    }
}

/// `POST /_mock/v1/simulate/tokens/{tokenId}/step-up`: the cardholder picks one of the methods
/// the issuer offered for a token waiting for its step-up (again, to switch).
#[tracing::instrument(skip_all)]
pub async fn choose_step_up(mock: &Mock, token_id: &str, method: StepUpMethodType) -> Result<Value, ApiError> {
    let now = OffsetDateTime::now_utc();
    let mut state = mock.state.lock().await;
    card_allows_activation(&state, token_id)?;
    let token =
        state.tokens.get_mut(token_id).ok_or_else(|| ApiError::UnknownResource(format!("no token `{token_id}`")))?;
    if token.status != TokenStatus::Inactive {
        return Err(ApiError::Conflict("the token is not waiting for a step-up".into()));
    }
    if !token.step_up_offered.iter().any(|m| m.method_type == method) {
        let offered: Vec<&str> = token.step_up_offered.iter().map(|m| m.method_type.as_str()).collect();
        return Err(ApiError::Conflict(format!(
            "the issuer did not offer {} for this token (offered: {})",
            method.as_str(),
            if offered.is_empty() { "none".to_owned() } else { offered.join(", ") }
        )));
    }
    token.updated_at = now;
    let effect = step_up(mock, token, method, now);
    let mut answer = json!({"token": token.view()});
    answer["otpExpiresAt"] = json!(token.pending_code().map(|c| crate::state::rfc3339(c.expires_at)));
    mock.save(&mut state).await?;
    answer["notificationId"] = json!(mock.outbox.push(effect));
    Ok(answer)
}

/// A token's card allows its activation: not blocked, not closed (as MDES: a code waits,
/// unspent, until the card is unblocked).
fn card_allows_activation(state: &MockState, token_id: &str) -> Result<(), ApiError> {
    let card_id = state.tokens.get(token_id).map(|token| token.card_id.clone());
    if let Some(card) = card_id.and_then(|card_id| state.cards.get(&card_id))
        && card.status != IssuerCardStatus::Active
    {
        return Err(ApiError::Conflict(format!(
            "the card is {}: its tokens cannot be activated",
            card.status.as_str().to_ascii_lowercase()
        )));
    }
    Ok(())
}

/// `POST /tmp-api/v1/tokens/{tokenId}/activation-code/resend`: a new code for a token waiting
/// for one, by `channel` or the last code's; the token as TMP shows it after.
pub fn resend_activation_code(
    mock: &Mock,
    state: &mut MockState,
    token_id: &str,
    channel: Option<NotificationChannel>,
) -> Result<(TokenInfo, Vec<Effect>), ApiError> {
    card_allows_activation(state, token_id)?;
    let token =
        state.tokens.get_mut(token_id).ok_or_else(|| ApiError::UnknownResource(format!("no token `{token_id}`")))?;
    let Some(last) = token.pending_code().map(|c| c.channel) else {
        return Err(ApiError::Conflict("the token is not waiting for an activation code".into()));
    };
    let channel = channel.unwrap_or(last);
    if channel == NotificationChannel::Push {
        return Err(ApiError::validation("`channel` must be SMS or EMAIL"));
    }
    let now = OffsetDateTime::now_utc();
    token.updated_at = now;
    token.step_up_chosen = StepUpMethodType::for_code_channel(channel);
    let delivery = activation_code(mock, token, channel, now);
    Ok((token.info(), vec![delivery]))
}

/// Approach `datacore`: TMP's own checks against the cards the issuer loaded, then — DataCore
/// holds no CVC — Apple Pay's CVC check at the issuer.
async fn datacore(mock: &Mock, tokenization_id: &str, attempt: &Attempt) -> Verdict {
    let verdict = datacore_checks(mock, attempt).await;
    if verdict.decision == Decision::Declined {
        return verdict;
    }
    match apple_pay_cvc(mock, tokenization_id, attempt).await {
        Ok(cvc_result) => Verdict { cvc_result, ..verdict },
        Err(ended) => ended,
    }
}

async fn datacore_checks(mock: &Mock, attempt: &Attempt) -> Verdict {
    let state = mock.state.lock().await;
    let card = match &attempt.card_id {
        Some(id) => state.cards.get(id).filter(|c| c.in_datacore && c.pan.as_ref() == Some(&attempt.pan)),
        None => state.cards.values().find(|c| c.in_datacore && c.pan.as_ref() == Some(&attempt.pan)),
    };
    let verdict = |decision, reason: &str, card_id: Option<String>| Verdict {
        decision,
        reason: reason.into(),
        card_id,
        cardholder: None,
        step_up_methods: Vec::new(),
        stand_in_cause: None,
        cvc_result: None,
    };
    let Some(card) = card else {
        return verdict(Decision::Declined, "CARD_NOT_FOUND", None);
    };
    let id = Some(card.card_id.clone());
    use tmp_protocol::enums::IssuerCardStatus;
    if card.replaced_by.is_some() || card.status == IssuerCardStatus::Closed {
        return verdict(Decision::Declined, "CARD_CLOSED", id);
    }
    if card.status == IssuerCardStatus::Blocked {
        return verdict(Decision::Declined, "CARD_BLOCKED", id);
    }
    if card.expiry.as_ref() != Some(&attempt.expiry) {
        return verdict(Decision::Declined, "EXPIRY_MISMATCH", id);
    }
    if attempt.expiry.is_expired_at(OffsetDateTime::now_utc()) {
        return verdict(Decision::Declined, "CARD_EXPIRED", id);
    }
    let reason = match attempt.recommendation {
        Decision::Approved => "CARD_VERIFIED",
        _ => "WALLET_RECOMMENDATION",
    };
    let mut v = verdict(attempt.recommendation, reason, id);
    v.cardholder = card.cardholder.clone();
    v
}

/// The mock's own decision when the issuer did not answer: `issuer.stand_in_decision`, never
/// more permissive than the wallet.
fn stand_in(mock: &Mock, attempt: &Attempt, cause: String) -> Verdict {
    let reason = if cause.contains("deadline") { "STAND_IN_TIMEOUT" } else { "STAND_IN_UNAVAILABLE" };
    Verdict {
        decision: mock.config.issuer.stand_in_decision.at_least_as_strict_as(attempt.recommendation),
        reason: reason.into(),
        card_id: attempt.card_id.clone(),
        cardholder: None,
        step_up_methods: Vec::new(),
        stand_in_cause: Some(cause),
        cvc_result: None,
    }
}

fn card_data(attempt: &Attempt) -> CardData {
    CardData { pan: attempt.pan.clone(), expiry: attempt.expiry.clone(), cvc: attempt.cvc.clone() }
}

/// Apple Pay checks a typed CVC with the issuer (verify-cvc) in both approaches — DataCore holds
/// no CVC. `Ok(None)`: no check is due; `Ok(Some(MATCH))`: it matched; `Err`: the tokenization
/// ends here, red on any other result, a stand-in when the issuer did not answer.
async fn apple_pay_cvc(mock: &Mock, tokenization_id: &str, attempt: &Attempt) -> Result<Option<CvcResult>, Verdict> {
    if attempt.wallet != Wallet::ApplePay || attempt.cvc.is_none() {
        return Ok(None);
    }
    let deadline = Duration::from_millis(mock.config.issuer.verify_card_deadline_ms);
    let request = |payload: String| VerifyCvcRequest {
        token_requestor: Some(attempt.requestor.clone()),
        encrypted_payload: payload,
    };
    let key = format!("{tokenization_id}-cvc");
    let card = card_data(attempt);
    match call::<_, VerifyCvcResponse>(mock, VERIFY_CVC_PATH, &key, tokenization_id, &card, request, deadline).await {
        Ok(answer) if answer.cvc_result == CvcResult::Match => Ok(Some(answer.cvc_result)),
        Ok(answer) => Err(Verdict {
            decision: Decision::Declined,
            reason: format!("CVC_{}", answer.cvc_result.as_str()),
            card_id: answer.card_id,
            cardholder: None,
            step_up_methods: Vec::new(),
            stand_in_cause: None,
            cvc_result: Some(answer.cvc_result),
        }),
        Err(cause) => {
            record_stand_in(mock, VERIFY_CVC_PATH, tokenization_id, &cause);
            Err(stand_in(mock, attempt, cause))
        }
    }
}

/// Approach `external`: the issuer decides; the mock stands in when it cannot.
async fn external(mock: &Mock, tokenization_id: &str, attempt: &Attempt) -> Verdict {
    let deadline = Duration::from_millis(mock.config.issuer.verify_card_deadline_ms);
    let card = card_data(attempt);
    // Apple Pay checks the CVC on its own before the card verification.
    let cvc_result = match apple_pay_cvc(mock, tokenization_id, attempt).await {
        Ok(result) => result,
        Err(ended) => return ended,
    };

    let request = |payload: String| VerifyCardRequest {
        tokenization_id: Id::parse(tokenization_id).expect("the mock's tokenization ids follow the id rules"),
        tsp: attempt.tsp,
        token_requestor: attempt.requestor.clone(),
        provisioning_method: attempt.method,
        wallet_recommendation: Some(attempt.recommendation),
        wallet_score: Some(attempt.wallet_score),
        device_score: Some(attempt.device_score),
        device: device_of(attempt),
        token_type: Some(token_type(attempt.requestor.wallet)),
        risk: Some(attempt.risk.clone()),
        encrypted_payload: payload,
    };
    match call::<_, VerifyCardResponse>(
        mock,
        VERIFY_CARD_PATH,
        tokenization_id,
        tokenization_id,
        &card,
        request,
        deadline,
    )
    .await
    {
        Ok(answer) => Verdict {
            decision: answer.decision,
            reason: answer.reason.as_str().to_owned(),
            card_id: answer.card_id,
            cardholder: answer.cardholder,
            step_up_methods: answer.step_up_methods,
            stand_in_cause: answer.stand_in.then(|| "the issuer answered with its own stand-in".to_owned()),
            cvc_result: cvc_result.or(Some(answer.cvc_result)),
        },
        Err(cause) => {
            record_stand_in(mock, VERIFY_CARD_PATH, tokenization_id, &cause);
            stand_in(mock, attempt, cause)
        }
    }
}

fn record_stand_in(mock: &Mock, path: &str, tokenization_id: &str, cause: &str) {
    let mut entry = JournalEntry::new(Direction::Sent, "POST", path, Outcome::StandIn);
    entry.route = Some(path.to_owned());
    entry.idempotency_key = Some(tokenization_id.to_owned());
    entry.note = Some(format!("stand-in: {cause}"));
    mock.journal.record(entry);
    tracing::warn!(path, cause, "the issuer did not decide; standing in");
}

/// One verification call under the deadline: encrypts the card to the issuer's key (refetched
/// once if the issuer refuses it), signs, posts, parses. Any failure is the stand-in's cause.
async fn call<B: serde::Serialize, R: serde::de::DeserializeOwned>(
    mock: &Mock,
    path: &str,
    key: &str,
    correlation_id: &str,
    card: &CardData,
    build: impl Fn(String) -> B,
    deadline: Duration,
) -> Result<R, String> {
    let work = async {
        let mut refresh = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let jwk = mock.issuer.encryption_key(refresh).await.map_err(|f| f.to_string())?;
            let payload = tmp_protocol::jwe::encrypt_json(card, &jwk).map_err(|e| e.to_string())?;
            let body = serde_json::to_vec(&build(payload)).map_err(|e| e.to_string())?;
            match mock.issuer.post(path, key, correlation_id, &body, attempt).await {
                Ok(answer) if answer.is_success() => {
                    return serde_json::from_slice::<R>(&answer.body)
                        .map_err(|_| "the issuer's answer does not follow the contract".to_owned());
                }
                Ok(answer) if !refresh && answer.error_code().as_deref() == Some("INVALID_ENCRYPTED_PAYLOAD") => {
                    refresh = true;
                }
                Ok(answer) => return Err(format!("the issuer answered {}", answer.status)),
                Err(Failure::Dropped) => return Err("the issuer dropped the connection".into()),
                Err(failure) => return Err(failure.to_string()),
            }
        }
    };
    match tokio::time::timeout(deadline, work).await {
        Ok(result) => result,
        Err(_) => Err(format!("the issuer missed the {} ms deadline", deadline.as_millis())),
    }
}

/// `POST /_mock/v1/simulate/tokens/{tokenId}/otp`: the cardholder types the activation code.
#[tracing::instrument(skip_all)]
pub async fn enter_otp(mock: &Mock, token_id: &str, otp: &Otp) -> Result<Value, ApiError> {
    let now = OffsetDateTime::now_utc();
    let mut state = mock.state.lock().await;
    card_allows_activation(&state, token_id)?;
    let token =
        state.tokens.get_mut(token_id).ok_or_else(|| ApiError::UnknownResource(format!("no token `{token_id}`")))?;
    let pending = token.pending_code().is_some();
    let Some(challenge) = token.otp.as_mut().filter(|_| pending) else {
        return Err(ApiError::Conflict("the token is not waiting for an activation code".into()));
    };
    if challenge.expires_at < mock.now() {
        return Err(ApiError::Conflict("the activation code has expired: ask for a new one (resend)".into()));
    }
    let max = challenge.max_attempts;
    let mut effects = Vec::new();
    let result = if challenge.matches(token_id, otp) {
        token.otp = None;
        token.status = TokenStatus::Active;
        token.updated_at = now;
        effects.push(Effect::TokenEvent {
            token: token.info(),
            tokenization_id: Some(token.tokenization_id.clone()),
            previous: Some(TokenStatus::Inactive),
            // The cardholder typed the code.
            cause: Cause::new(ChangeInitiator::Cardholder, "ACTIVATION_CODE_VERIFIED"),
            at: now,
        });
        effects.push(Effect::token_notification(NotificationType::TokenActivated, token, now));
        json!({"result": "ACCEPTED", "attemptsLeft": max})
    } else {
        challenge.wrong_attempts += 1;
        let left = max.saturating_sub(challenge.wrong_attempts);
        if left == 0 {
            token.otp = None;
            token.status = TokenStatus::Deactivated;
            token.updated_at = now;
            effects.push(Effect::TokenEvent {
                token: token.info(),
                tokenization_id: Some(token.tokenization_id.clone()),
                previous: Some(TokenStatus::Inactive),
                cause: Cause::new(ChangeInitiator::Cardholder, "ACTIVATION_CODE_ATTEMPTS_EXCEEDED"),
                at: now,
            });
            json!({"result": "ATTEMPTS_EXCEEDED", "attemptsLeft": 0})
        } else {
            json!({"result": "WRONG_CODE", "attemptsLeft": left})
        }
    };
    let mut answer = result;
    answer["token"] = token.view();
    mock.commit(&mut state, effects).await?;
    Ok(answer)
}
