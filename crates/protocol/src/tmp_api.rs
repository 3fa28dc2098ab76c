//! TMP API: served by TMP (and `mock-tmp`), called by the issuer (the adapter).
//!
//! | Method | Path | Body → Response |
//! |---|---|---|
//! | GET | `/tmp-api/v1/cards/{cardId}/tokens` | → [`TokenList`] |
//! | POST | `/tmp-api/v1/cards/{cardId}/sign` | [`SignCardRequest`] → [`SignCardResponse`] |
//! | POST | `/tmp-api/v1/tokens/{tokenId}/{activate,suspend,resume,deactivate}` | [`TokenActionRequest`] → [`TokenInfo`] |
//! | POST | `/tmp-api/v1/cards/{cardId}/status` | [`CardStatusUpdate`] → [`CardUpdateAck`] |
//! | POST | `/tmp-api/v1/cards/{cardId}/replace` | [`CardReplace`] → [`CardUpdateAck`] |
//! | POST | `/tmp-api/v1/cards/{cardId}/expiry` | [`CardExpiryUpdate`] → [`CardUpdateAck`] |
//! | GET | `/tmp-api/v1/public-key` | → [`crate::jwk::JwkSet`] |

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::enums::{IssuerCardStatus, NotificationChannel, ReasonCode, ReplacementTokens, TokenStatus, Tsp, Wallet};
use crate::fields::FreeText;
use crate::issuer_api::TokenRequestor;
use crate::sensitive::{Expiry, Pan};

pub const PUBLIC_KEY_PATH: &str = "/tmp-api/v1/public-key";

/// A token as TMP knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub token_id: String,
    pub card_id: String,
    pub status: TokenStatus,
    pub tsp: Tsp,
    pub token_requestor: TokenRequestor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_last4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// The TSP's id of the device the token lives on (MDES `deviceId`, VTS `deviceID`): one
    /// phone's tokens share it, whatever the wallet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// An `INACTIVE` token waiting for its activation code: when the code expires and how many
    /// wrong codes are left (never the code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_code: Option<ActivationCodeState>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// A pending activation code, as TMP shows it (the code itself goes to the cardholder only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivationCodeState {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// Wrong codes the cardholder may still type; at 0 the token is deactivated.
    pub attempts_left: u32,
    /// How the code reached the cardholder.
    pub channel: NotificationChannel,
}

/// `POST /tmp-api/v1/tokens/{tokenId}/activation-code/resend`: a new code for a token waiting
/// for one (the old one stops working; wrong attempts so far still count).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResendActivationCodeRequest {
    /// `SMS` or `EMAIL`; by default the channel of the last code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<NotificationChannel>,
    /// Why, in words an auditor understands (no card data).
    pub reason: FreeText,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenList {
    pub card_id: String,
    pub tokens: Vec<TokenInfo>,
}

/// Apple Pay push-provisioning input, as PassKit hands it to the issuer app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplePaySignInput {
    /// Apple's leaf and sub-CA certificates, base64 DER, leaf first.
    pub certificates: Vec<String>,
    /// Hex.
    pub nonce: String,
    /// Hex.
    pub nonce_signature: String,
}

/// Google Pay push-provisioning input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GooglePaySignInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_wallet_account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cardholder_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignCardRequest {
    pub wallet: Wallet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apple_pay: Option<ApplePaySignInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_pay: Option<GooglePaySignInput>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplePaySignOutput {
    pub encrypted_pass_data: String,
    pub activation_data: String,
    pub ephemeral_public_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GooglePaySignOutput {
    /// Mastercard OPC or Visa encrypted payload, opaque to the issuer.
    pub opaque_payment_card: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignCardResponse {
    pub wallet: Wallet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apple_pay: Option<ApplePaySignOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_pay: Option<GooglePaySignOutput>,
}

/// Token actions the issuer may ask TMP for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenAction {
    Activate,
    Suspend,
    Resume,
    Deactivate,
}

impl TokenAction {
    /// The path segment of the action.
    pub fn path_segment(self) -> &'static str {
        match self {
            TokenAction::Activate => "activate",
            TokenAction::Suspend => "suspend",
            TokenAction::Resume => "resume",
            TokenAction::Deactivate => "deactivate",
        }
    }
}

/// Who asks for a token action; a token suspended by several parties resumes only when
/// every one of them has resumed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionInitiator {
    Issuer,
    Cardholder,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenActionRequest {
    pub initiator: ActionInitiator,
    /// Why, as a code (TMP's token event for the change carries it back).
    pub reason_code: ReasonCode,
    /// Why, in words an auditor understands (no card data).
    pub reason: FreeText,
}

/// Approach `external`: the card's status changed at the processor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardStatusUpdate {
    pub status: IssuerCardStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FreeText>,
    /// `false`: the card's tokens do not follow the change. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate_to_tokens: Option<bool>,
}

/// Plaintext of `encryptedPayload` of a replacement: the new card's PAN and expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplacementCardData {
    pub pan: Pan,
    pub expiry: Expiry,
}

/// Approach `external`: the card was replaced by a new one; its tokens move to the new card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardReplace {
    pub new_card_id: String,
    /// The old card's tokens: `MOVE` to the new card (default) or `DEACTIVATE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<ReplacementTokens>,
    /// Compact JWE of `{"pan": "…", "expiry": "MM/YY"}` of the new card.
    #[schema(
        min_length = 9,
        max_length = 16384,
        pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"
    )]
    pub encrypted_payload: String,
}

/// Plaintext of `encryptedPayload` of an expiry update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpiryData {
    pub expiry: Expiry,
}

/// Approach `external`: the card was renewed with a new expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardExpiryUpdate {
    /// Compact JWE of `{"expiry": "MM/YY"}`.
    #[schema(
        min_length = 9,
        max_length = 16384,
        pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"
    )]
    pub encrypted_payload: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardUpdateAck {
    pub card_id: String,
    /// Tokens whose state changed as a consequence.
    pub tokens_affected: u32,
}
