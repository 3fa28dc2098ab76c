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
//! | POST | `/tmp-api/v1/cards/{cardId}/metadata` | [`CardMetadata`] → [`CardUpdateAck`] |
//! | GET | `/tmp-api/v1/public-key` | → [`crate::jwk::JwkSet`] |

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::enums::{IssuerCardStatus, NotificationChannel, ReasonCode, ReplacementTokens, TokenStatus, Tsp, Wallet};
use crate::fields::{FreeText, Id};
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

/// Samsung Pay push-provisioning input: what Samsung Pay's SDK (`getWalletInfo`) gives the
/// issuer app. *The kit's choice*, after Samsung Pay's partner SDK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SamsungPaySignInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cardholder_name: Option<String>,
}

/// Web push provisioning: the cardholder, signed in to the issuer's website, is sent to the
/// wallet's web flow and comes back to `callbackUrl`. The tokens are bound to the wallet
/// account, not to a device. *The kit's choice*, after MDES's and Google Pay's web push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebPushSignInput {
    /// Where the wallet's web flow sends the cardholder back (`https://`, or `http://` to a
    /// loopback host for development), with `result` and, once added, `tokenId` in its query.
    pub callback_url: String,
}

/// Longest accepted web push callback URL.
pub const MAX_CALLBACK_URL_LEN: usize = 2048;

impl WebPushSignInput {
    /// The callback's host (lower-cased by the caller where it compares), once [`check`] passed.
    ///
    /// [`check`]: WebPushSignInput::check
    pub fn callback_host(&self) -> Option<&str> {
        let url = self.callback_url.as_str();
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
        let authority = rest.split(['/', '?']).next()?;
        Some(authority.split(':').next().unwrap_or(authority))
    }

    /// The callback's rules: `https://` (or `http://` to `localhost` or `127.0.0.1`), a host
    /// name or IPv4 address and an optional port, at most [`MAX_CALLBACK_URL_LEN`] characters
    /// among letters, digits and `-._~:/?&=%+` — no user name or password, no fragment, no
    /// card number anywhere. The narrow alphabet keeps the URL from changing meaning where the
    /// wallet's page puts its origin (a `;` or `,` would add policy directives to a
    /// Content-Security-Policy, a `\` is read by browsers as `/`). The error says which rule,
    /// never the URL.
    pub fn check(&self) -> Result<(), &'static str> {
        let url = self.callback_url.as_str();
        if url.contains('#') {
            return Err("must not hold a fragment");
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~:/?&=%+".contains(&b);
        if url.is_empty() || url.len() > MAX_CALLBACK_URL_LEN || !url.bytes().all(allowed) {
            return Err("must be at most 2048 characters among letters, digits and -._~:/?&=%+");
        }
        let (rest, secure) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(rest), _) => (rest, true),
            (None, Some(rest)) => (rest, false),
            _ => return Err("must be an https:// URL"),
        };
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let (host, port) = authority.split_once(':').unwrap_or((authority, "1"));
        let host_ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !host_ok || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must name a host (a name or an IPv4 address) and at most a port");
        }
        if !secure && !matches!(host, "localhost" | "127.0.0.1") {
            return Err("must be an https:// URL (http:// only to localhost)");
        }
        if crate::sensitive::contains_pan_like(url) {
            return Err("must not hold a card number");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignCardRequest {
    pub wallet: Wallet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apple_pay: Option<ApplePaySignInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_pay: Option<GooglePaySignInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samsung_pay: Option<SamsungPaySignInput>,
    /// Web push provisioning to `wallet` (`GOOGLE_PAY`, `SAMSUNG_PAY` or `MERCHANT`) instead
    /// of an app's push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebPushSignInput>,
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
pub struct SamsungPaySignOutput {
    /// The encrypted payload for Samsung Pay's `addCard` (`EXTRA_PROVISION_PAYLOAD`), opaque to
    /// the issuer.
    pub provisioning_payload: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebPushSignOutput {
    /// Where the issuer's page sends the cardholder's browser: the wallet's web flow, holding a
    /// single-use receipt.
    pub push_url: String,
    /// After this the receipt is refused.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignCardResponse {
    pub wallet: Wallet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apple_pay: Option<ApplePaySignOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_pay: Option<GooglePaySignOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samsung_pay: Option<SamsungPaySignOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebPushSignOutput>,
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

/// What the wallets show of a card's product: a processor's `card.metadata_updated` as the TMP
/// API (`POST /tmp-api/v1/cards/{cardId}/metadata`) and the Lifecycle API (`metadata` of a card
/// update) take it. Members given replace TMP's, absent ones are kept; at least one is given.
/// *The kit's choice, after MDES's product configuration and VTS's card metadata update:
/// Verestro publishes none.* The art itself is loaded into TMP beforehand (Admin Panel); a card
/// names it by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardMetadata {
    /// The issuer's product code (`gold-2026`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<Id>,
    /// The product's name, shown by the wallet under the card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<FreeText>,
    /// As `card.issued`'s (`CREDIT`, `DEBIT`, a product code): what card verification answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_category: Option<FreeText>,
    /// The card art, by its id in TMP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_art_id: Option<Id>,
}

impl CardMetadata {
    /// The rule the members' types do not hold: something to change, and no empty text. The
    /// error names the member at fault (`""`: the whole) and what is wrong.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.product_id.is_none()
            && self.product_name.is_none()
            && self.product_category.is_none()
            && self.card_art_id.is_none()
        {
            return Err(("", "must hold `productId`, `productName`, `productCategory` or `cardArtId`"));
        }
        for (name, text) in [("productName", &self.product_name), ("productCategory", &self.product_category)] {
            if text.as_ref().is_some_and(|t| t.is_empty()) {
                return Err((name, "must not be empty"));
            }
        }
        Ok(())
    }

    /// `self` over `older`: the members given replace.
    pub fn over(self, older: Option<CardMetadata>) -> CardMetadata {
        let older = older.unwrap_or_default();
        CardMetadata {
            product_id: self.product_id.or(older.product_id),
            product_name: self.product_name.or(older.product_name),
            product_category: self.product_category.or(older.product_category),
            card_art_id: self.card_art_id.or(older.card_art_id),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::WebPushSignInput;

    #[test]
    fn a_web_push_callback_is_https_or_loopback_http_and_holds_no_card_number() {
        let check = |url: &str| WebPushSignInput { callback_url: url.into() }.check();
        for good in [
            "https://bank.example/cards/added",
            "https://bank.example:8443/c?session=ab12",
            "http://localhost:3000/back",
            "http://127.0.0.1/back",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "ftp://bank.example/",
            "http://bank.example/back",
            "https:///path",
            "https://user:pw@bank.example/",
            "https://bank.example/back#x",
            "https://bank.example/back?card=4111111111111111",
            "https://bank.example/a b",
            "javascript:alert(1)",
            "https://bank.example;sandbox/back",
            "https://bank.example,evil.example/back",
            "https://evil.example\\@bank.example/",
            "http://[::1]:9000/back",
            "https://bank.example:80x/back",
            "https://bank.example/it's",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert!(check(&format!("https://bank.example/{}", "a".repeat(2048))).is_err());
    }
}
