//! Issuer API: served by the issuer (the adapter), called by TMP.
//!
//! | Method | Path | Body → Response |
//! |---|---|---|
//! | POST | `/issuer-api/v1/cards/verify` | [`VerifyCardRequest`] → [`VerifyCardResponse`] |
//! | POST | `/issuer-api/v1/cards/verify-cvc` | [`VerifyCvcRequest`] → [`VerifyCvcResponse`] |
//! | POST | `/issuer-api/v1/tokens/events` | [`TokenEventRequest`] → [`TokenEventAck`] |
//! | POST | `/issuer-api/v1/notifications` | [`NotificationRequest`] → [`NotificationAck`] |
//! | GET | `/issuer-api/v1/public-key` | → [`crate::jwk::JwkSet`] |
//!
//! PAN, CVC, expiry and OTP never travel in clear: they are the plaintext of a compact JWE in
//! `encryptedPayload` ([`CardData`], [`ActivationCode`]), encrypted to the adapter's public key.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::enums::{
    CardStatus, ChangeInitiator, CvcResult, Decision, DeviceType, NotificationChannel, NotificationType, PanSource,
    ProvisioningMethod, ReasonCode, StepUpMethodType, TokenStatus, TokenType, Tsp, Wallet,
};
use crate::fields::{Code, DisplayText, FreeText, Id, Phone};
use crate::sensitive::{Cvc, Expiry, Otp, Pan};

pub const VERIFY_CARD_PATH: &str = "/issuer-api/v1/cards/verify";
pub const VERIFY_CVC_PATH: &str = "/issuer-api/v1/cards/verify-cvc";
pub const TOKEN_EVENTS_PATH: &str = "/issuer-api/v1/tokens/events";
pub const NOTIFICATIONS_PATH: &str = "/issuer-api/v1/notifications";
pub const PUBLIC_KEY_PATH: &str = "/issuer-api/v1/public-key";

/// The wallet, merchant or other party asking for a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenRequestor {
    /// The TSP's token requestor id (11 digits for MDES/VTS, e.g. `50110030273` for Apple Pay).
    #[schema(example = "50110030273")]
    pub id: Id,
    #[schema(example = "Apple Pay")]
    pub name: FreeText,
    pub wallet: Wallet,
}

/// Where TMP (or the issuer's own systems) can reach the cardholder with an activation code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardholderContact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Phone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<FreeText>,
}

/// One way the cardholder can complete a step-up, as the wallet shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepUpMethod {
    #[serde(rename = "type")]
    pub method_type: StepUpMethodType,
    /// What the wallet shows beside the method: the phone or e-mail masked (`+48•••200`,
    /// `j•••@example.com`), the issuer app's id, the number to call.
    #[schema(example = "+48•••200")]
    pub value: DisplayText,
}

/// What a masked value keeps of a phone number longer than [`SHORT_PHONE_DIGITS`]: its first
/// two digits after a `+`, and the last three.
const PHONE_DIGITS_SHOWN: usize = 3;
/// A phone number of at most this many digits shows only its last two.
const SHORT_PHONE_DIGITS: usize = 8;

impl StepUpMethod {
    /// A method whose value is the cardholder's phone (`OTP_SMS`, `OUTBOUND_CALL`), masked: the
    /// `+` and first two digits of an international number, then the last three digits
    /// (`+48•••200`); a number of eight digits or fewer shows only its last two.
    pub fn masked_phone(method_type: StepUpMethodType, phone: &Phone) -> StepUpMethod {
        let digits: Vec<char> = phone.as_str().chars().filter(char::is_ascii_digit).collect();
        let long = digits.len() > SHORT_PHONE_DIGITS;
        let shown = if long { PHONE_DIGITS_SHOWN } else { 2.min(digits.len()) };
        let tail: String = digits[digits.len() - shown..].iter().collect();
        let head: String = match phone.as_str().trim_start().starts_with('+') && long {
            true => format!("+{}", digits[..2].iter().collect::<String>()),
            false => String::new(),
        };
        StepUpMethod::shown(method_type, format!("{head}•••{tail}"))
    }

    /// `OTP_EMAIL`: the first character of the local part and the domain (`j•••@example.com`).
    pub fn masked_email(email: &FreeText) -> StepUpMethod {
        let value = match email.rsplit_once('@') {
            Some((local, domain)) => format!("{}•••@{domain}", local.chars().next().unwrap_or('•')),
            None => "•••".to_owned(),
        };
        StepUpMethod::shown(StepUpMethodType::OtpEmail, value)
    }

    /// A method whose value is the issuer's own (an app id, a call-centre number), shown as is.
    pub fn public(method_type: StepUpMethodType, value: impl Into<DisplayText>) -> StepUpMethod {
        StepUpMethod { method_type, value: value.into() }
    }

    fn shown(method_type: StepUpMethodType, value: String) -> StepUpMethod {
        // A mask of a valid phone or e-mail is shorter than it and holds at most five digits.
        let value = DisplayText::parse(value).unwrap_or_else(|_| DisplayText::parse("•••").expect("a constant"));
        StepUpMethod { method_type, value }
    }
}

/// Plaintext of `encryptedPayload` in card verification and CVC verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CardData {
    pub pan: Pan,
    /// `MM/YY`.
    pub expiry: Expiry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvc: Option<Cvc>,
}

/// Plaintext of `encryptedPayload` of an `ACTIVATION_CODE_DELIVERY` notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActivationCode {
    pub otp: Otp,
}

/// Card verification during tokenization (TMP's pre-digitization check).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyCardRequest {
    /// TMP's id of this tokenization attempt; echoed in the audit trail.
    #[schema(example = "tkn-req-8f14e45f")]
    pub tokenization_id: Id,
    pub tsp: Tsp,
    pub token_requestor: TokenRequestor,
    pub provisioning_method: ProvisioningMethod,
    /// The wallet's own recommendation; the issuer's decision is never more permissive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_recommendation: Option<Decision>,
    /// Wallet account score, 1 (risky) to 5 (trusted).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::json::optional_integer")]
    #[schema(minimum = 1, maximum = 5)]
    pub wallet_score: Option<u8>,
    /// Device score, 1 (risky) to 5 (trusted).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::json::optional_integer")]
    #[schema(minimum = 1, maximum = 5)]
    pub device_score: Option<u8>,
    /// The device the token is for (the kit's member, after the networks' device information):
    /// audited, and counted by the per-device velocity limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceInfo>,
    /// The kind of token asked for (the kit's member); audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<TokenType>,
    /// The wallet's and the network's risk context (the kit's member): audited and passed to the
    /// card source; the decision policy does not read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskContext>,
    /// Compact JWE (`RSA-OAEP-256`/`A256GCM`, `kid` in the header) of
    /// `{"pan": "…", "expiry": "MM/YY", "cvc": "…"?}`.
    #[schema(
        min_length = 9,
        max_length = 16384,
        pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"
    )]
    pub encrypted_payload: String,
}

/// Most recommendation reasons one request may carry.
pub const MAX_RECOMMENDATION_REASONS: usize = 16;

/// The risk context of a tokenization, after MDES's decisioning data and VTS's risk information
/// (the kit's member; Verestro publishes none). Every member is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RiskContext {
    /// The codes behind the wallet's recommendation, as the wallet gives them (e.g.
    /// `ACCOUNT_TOO_NEW`, `DEVICE_RECENTLY_LOST`): at most 16; `null` is none.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "crate::json::null_as_empty")]
    #[schema(max_items = 16, example = json!(["ACCOUNT_TOO_NEW"]))]
    pub recommendation_reasons: Vec<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pan_source: Option<PanSource>,
    /// The network's own score of the tokenization, 1 (risky) to 5 (trusted).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::json::optional_integer")]
    #[schema(minimum = 1, maximum = 5)]
    pub network_score: Option<u8>,
}

/// The device a token is provisioned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInfo {
    /// The wallet's id of the device (stable across tokenizations on it).
    #[schema(example = "dev-4f2a9c1e")]
    pub id: Id,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub device_type: Option<DeviceType>,
}

/// Why a decision was taken. Recorded in the audit trail; never contains card data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DecisionReason {
    /// All checks passed.
    CardVerified,
    CardNotFound,
    CardBlocked,
    CardClosed,
    CardExpired,
    ExpiryMismatch,
    CvcNoMatch,
    CvcAttemptsExceeded,
    /// The token requestor's policy requires a CVC and none was sent.
    CvcRequired,
    /// The card already has the maximum number of tokens for this requestor policy.
    TooManyTokens,
    /// The card, or the device, had as many tokenizations within the velocity window as the
    /// policy allows.
    VelocityExceeded,
    /// A wallet or device score is below the policy's step-up threshold.
    LowScoreStepUp,
    /// The issuer's fraud engine (the decision hook) decided otherwise than the policy.
    RiskEngine,
    /// The wallet's own recommendation was stricter than the issuer's decision.
    WalletRecommendation,
    /// The card source did not answer within the deadline; the stand-in decision was used.
    StandInTimeout,
    /// The card source failed; the stand-in decision was used.
    StandInUnavailable,
}

impl DecisionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionReason::CardVerified => "CARD_VERIFIED",
            DecisionReason::CardNotFound => "CARD_NOT_FOUND",
            DecisionReason::CardBlocked => "CARD_BLOCKED",
            DecisionReason::CardClosed => "CARD_CLOSED",
            DecisionReason::CardExpired => "CARD_EXPIRED",
            DecisionReason::ExpiryMismatch => "EXPIRY_MISMATCH",
            DecisionReason::CvcNoMatch => "CVC_NO_MATCH",
            DecisionReason::CvcAttemptsExceeded => "CVC_ATTEMPTS_EXCEEDED",
            DecisionReason::CvcRequired => "CVC_REQUIRED",
            DecisionReason::TooManyTokens => "TOO_MANY_TOKENS",
            DecisionReason::VelocityExceeded => "VELOCITY_EXCEEDED",
            DecisionReason::LowScoreStepUp => "LOW_SCORE_STEP_UP",
            DecisionReason::RiskEngine => "RISK_ENGINE",
            DecisionReason::WalletRecommendation => "WALLET_RECOMMENDATION",
            DecisionReason::StandInTimeout => "STAND_IN_TIMEOUT",
            DecisionReason::StandInUnavailable => "STAND_IN_UNAVAILABLE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyCardResponse {
    pub decision: Decision,
    pub reason: DecisionReason,
    pub card_status: CardStatus,
    /// The issuer's card id; absent when the card is not found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_id: Option<String>,
    pub cvc_result: CvcResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "CONSUMER_DEBIT")]
    pub product_category: Option<String>,
    /// Where to send an activation code: with `REQUIRE_ADDITIONAL_AUTHENTICATION`, and with
    /// `APPROVED` when the issuer's policy discloses it there too; never with `DECLINED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cardholder: Option<CardholderContact>,
    /// How the cardholder can complete a step-up, in the issuer's order of preference; disclosed
    /// where the contact is, each type at most once. Absent, the wallet offers a code by SMS to
    /// `cardholder.phone`, else by e-mail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_up_methods: Vec<StepUpMethod>,
    /// True when the answer is the configured stand-in decision (card source too slow or down).
    pub stand_in: bool,
}

/// CVC check outside card verification (Apple Pay requires one).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyCvcRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_requestor: Option<TokenRequestor>,
    /// Compact JWE of `{"pan": "…", "expiry": "MM/YY", "cvc": "…"}`; `cvc` is required here.
    #[schema(
        min_length = 9,
        max_length = 16384,
        pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"
    )]
    pub encrypted_payload: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyCvcResponse {
    pub cvc_result: CvcResult,
    pub card_status: CardStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_id: Option<String>,
    /// Why, as in the audit: `CARD_VERIFIED`, `CVC_NO_MATCH`, `CVC_ATTEMPTS_EXCEEDED`, or the
    /// card's problem — so that an expiry typed wrong (`EXPIRY_MISMATCH`, with `cvcResult`
    /// `NO_MATCH` and `cardStatus` `ACTIVE`) is not mistaken for a wrong CVC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<DecisionReason>,
}

/// A token changed status at the TSP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenEventRequest {
    /// Unique per event; the same event retried carries the same id.
    #[schema(example = "evt-0001")]
    pub event_id: Id,
    /// Token unique reference at the TSP.
    #[schema(example = "DWSPMC000000000132d72d4fcb2f4136a0532d3093ff1a45")]
    pub token_id: Id,
    pub card_id: Id,
    pub tsp: Tsp,
    pub token_requestor: TokenRequestor,
    pub status: TokenStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<TokenStatus>,
    /// Free-text reason from TMP (e.g. `CARD_BLOCKED`, `CUSTOMER_REQUEST`); no card data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FreeText>,
    /// The coded reason, when the change was asked for with one (a token action's `reasonCode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<ReasonCode>,
    /// Who caused the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator: Option<ChangeInitiator>,
    /// The tokenization that created the token (the `tokenizationId` of its card verification):
    /// links the token's history to the issuer's decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenization_id: Option<Id>,
    /// Last four digits of the token (device account number), for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9]{4}$")]
    pub token_last4: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenEventAck {
    pub event_id: String,
    pub token_id: String,
    /// Always true in a 2xx: the event is durably stored. An event older than the mirror's
    /// state is kept in the token's history without changing its status.
    pub accepted: bool,
}

/// A user notification for the cardholder (server-to-server delivery).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRequest {
    #[schema(example = "ntf-0001")]
    pub notification_id: Id,
    #[serde(rename = "type")]
    pub notification_type: NotificationType,
    pub card_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_requestor: Option<TokenRequestor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<NotificationChannel>,
    /// The step-up method the cardholder chose: required with `STEP_UP_REQUESTED` (a method
    /// without a code); with `ACTIVATION_CODE_DELIVERY` optional (`OTP_SMS` or `OTP_EMAIL`,
    /// agreeing with `channel`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up_method: Option<StepUpMethodType>,
    /// Required for `ACTIVATION_CODE_DELIVERY` (compact JWE of `{"otp": "123456"}`), absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 9,
        max_length = 16384,
        pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"
    )]
    pub encrypted_payload: Option<String>,
    /// Required for `ACTIVATION_CODE_DELIVERY`: the code is never delivered after this instant.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationAck {
    pub notification_id: String,
    /// Always true in a 2xx: the notification is durably stored for delivery.
    pub accepted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(value: &str) -> Phone {
        Phone::parse(value).unwrap()
    }

    #[test]
    fn a_masked_phone_shows_the_country_code_and_the_last_three_digits() {
        let sms = |p: &str| StepUpMethod::masked_phone(StepUpMethodType::OtpSms, &phone(p)).value.to_string();
        assert_eq!(sms("+48 601 234 200"), "+48•••200");
        assert_eq!(sms("+1 (415) 555-0123"), "+14•••123");
        assert_eq!(sms("0601 234 200"), "•••200");
        assert_eq!(sms("12345"), "•••45");
        assert_eq!(sms("+356 2123 4567"), "+35•••567", "11 digits");
        assert_eq!(sms("+356 2123"), "•••23", "eight digits or fewer show two");
        assert_eq!(sms("+1"), "•••1");
        assert_eq!(sms("call me"), "•••");
        let call = StepUpMethod::masked_phone(StepUpMethodType::OutboundCall, &phone("+48601234200"));
        assert_eq!(call.method_type, StepUpMethodType::OutboundCall);
    }

    #[test]
    fn a_masked_email_shows_the_first_letter_and_the_domain() {
        let email = |e: &str| StepUpMethod::masked_email(&FreeText::parse(e).unwrap()).value.to_string();
        assert_eq!(email("jan.kowalski@example.com"), "j•••@example.com");
        assert_eq!(email("not-an-address"), "•••");
        assert_eq!(email("żaneta@example.pl"), "ż•••@example.pl");
        assert_eq!(email("@example.com"), "••••@example.com");
    }

    #[test]
    fn step_up_methods_are_left_out_of_an_answer_without_them() {
        let answer = VerifyCardResponse {
            decision: Decision::Approved,
            reason: DecisionReason::CardVerified,
            card_status: CardStatus::Active,
            card_id: None,
            cvc_result: CvcResult::NotProvided,
            product_category: None,
            cardholder: None,
            step_up_methods: vec![],
            stand_in: false,
        };
        let json = serde_json::to_value(&answer).unwrap();
        assert!(json.get("stepUpMethods").is_none(), "{json}");
        let back: VerifyCardResponse = serde_json::from_value(json).unwrap();
        assert_eq!(back, answer);
        let with = serde_json::json!({"type": "APP_TO_APP", "value": "com.example.bank"});
        let method: StepUpMethod = serde_json::from_value(with).unwrap();
        assert_eq!(method.method_type, StepUpMethodType::AppToApp);
    }
}
