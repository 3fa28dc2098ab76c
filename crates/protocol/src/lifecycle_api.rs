//! Lifecycle API (Verestro DataCore): served by DataCore (and `mock-tmp`), called by the adapter
//! in approach `datacore`. Only `GET /lifecycle/v1/public-key` is a path Verestro documents; the
//! rest is contract v1's default.
//!
//! | Method | Path | Body → Response |
//! |---|---|---|
//! | GET | `/lifecycle/v1/public-key` | → [`crate::jwk::JwkSet`] |
//! | POST | `/lifecycle/v1/cards` | [`LifecycleCard`] → [`LifecycleCardView`] |
//! | PATCH | `/lifecycle/v1/cards/{cardId}` | [`LifecycleCardUpdate`] → [`LifecycleCardView`] |
//! | POST | `/lifecycle/v1/cards/{cardId}/replace` | [`LifecycleCardReplace`] → [`LifecycleCardView`] |
//! | DELETE | `/lifecycle/v1/cards/{cardId}` | → 204 |
//! | POST | `/lifecycle/v1/import` | [`LifecycleImport`] → [`LifecycleImportResult`] |

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::enums::{IssuerCardStatus, ReplacementTokens};
use crate::issuer_api::CardholderContact;
use crate::tmp_api::CardMetadata;

pub const PUBLIC_KEY_PATH: &str = "/lifecycle/v1/public-key";

/// A card to load into DataCore. PAN and expiry are the plaintext of `encryptedPayload`
/// (compact JWE of [`crate::tmp_api::ReplacementCardData`]: `{"pan", "expiry"}`), encrypted
/// to DataCore's key from `GET /lifecycle/v1/public-key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleCard {
    pub card_id: String,
    pub status: IssuerCardStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cardholder: Option<CardholderContact>,
    #[schema(
        min_length = 9,
        max_length = 16384,
        pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"
    )]
    pub encrypted_payload: String,
}

/// A partial update: status (block / unblock), expiry (renewal, as JWE of `{"expiry"}`),
/// cardholder contact, product and card art.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleCardUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<IssuerCardStatus>,
    /// With `status`: `false` when the card's tokens do not follow. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate_to_tokens: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 9,
        max_length = 16384,
        pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"
    )]
    pub encrypted_payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cardholder: Option<CardholderContact>,
    /// The members given replace DataCore's ([`CardMetadata`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<CardMetadata>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleCardReplace {
    pub new_card_id: String,
    /// The old card's tokens: `MOVE` to the new card (default) or `DEACTIVATE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<ReplacementTokens>,
    /// Compact JWE of `{"pan", "expiry"}` of the new card.
    #[schema(
        min_length = 9,
        max_length = 16384,
        pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"
    )]
    pub encrypted_payload: String,
}

/// What DataCore returns about a card: never the PAN, only its last four digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleCardView {
    pub card_id: String,
    pub status: IssuerCardStatus,
    pub pan_last4: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleImport {
    pub cards: Vec<LifecycleCard>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleImportFailure {
    /// Zero-based index into `cards`.
    pub index: u32,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleImportResult {
    pub imported: u32,
    pub failed: Vec<LifecycleImportFailure>,
}
