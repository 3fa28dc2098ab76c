//! Processor bridge: the JSON-over-HTTP contract an issuer's processor (or a thin shim in front
//! of it) implements so the adapter can look cards up and check CVCs without a local registry.
//! Documented in `docs/bridge.md`. The adapter signs each request with Standard Webhooks when a
//! secret is configured, sends `X-Correlation-Id`, and gives each call the verification deadline.
//!
//! | Method | Path | Body → Response |
//! |---|---|---|
//! | POST | `/bridge/v1/cards/lookup` | [`BridgeLookupRequest`] → 200 [`BridgeCard`] or 404 |
//! | POST | `/bridge/v1/cards/verify-cvc` | [`BridgeCvcRequest`] → 200 [`BridgeCvcResponse`] |
//! | POST | `/bridge/v1/tokenizations/decide` | [`BridgeDecideRequest`] → 200 [`BridgeDecideResponse`] (optional: the decision hook) |
//!
//! The link carries PANs and CVCs in clear JSON: it must be TLS (use `ca_file` for a private CA)
//! on a network segment inside the issuer's cardholder-data environment.

use serde::{Deserialize, Serialize};

use crate::enums::{Decision, IssuerCardStatus, ProvisioningMethod, TokenType, Tsp};
use crate::fields::{Code, Id};
use crate::issuer_api::{CardholderContact, DecisionReason, DeviceInfo, RiskContext, TokenRequestor};
use crate::sensitive::{Cvc, Expiry, Pan};

pub const LOOKUP_PATH: &str = "/bridge/v1/cards/lookup";
pub const VERIFY_CVC_PATH: &str = "/bridge/v1/cards/verify-cvc";
pub const DECIDE_PATH: &str = "/bridge/v1/tokenizations/decide";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeLookupRequest {
    pub pan: Pan,
    /// The tokenization the lookup is for (card verification; absent for a CVC check alone):
    /// what TMP said about it, without the card data, for a processor that weighs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenization: Option<BridgeTokenization>,
}

/// TMP's context of a tokenization, as the verify-card request carried it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeTokenization {
    pub tokenization_id: Id,
    pub tsp: Tsp,
    pub token_requestor: TokenRequestor,
    pub provisioning_method: ProvisioningMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_recommendation: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_score: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_score: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<TokenType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskContext>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeCard {
    pub card_id: String,
    pub status: IssuerCardStatus,
    /// `MM/YY`.
    pub expiry: Expiry,
    pub pan_last4: String,
    #[serde(default)]
    pub cardholder: CardholderContact,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_category: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeCvcRequest {
    pub card_id: String,
    pub pan: Pan,
    pub expiry: Expiry,
    pub cvc: Cvc,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeCvcResponse {
    #[serde(rename = "match")]
    pub matches: bool,
}

/// The decision hook: the adapter's decision on a tokenization the card checks passed, for the
/// issuer's fraud engine to confirm or change within the verification deadline. No card data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeDecideRequest {
    pub card_id: String,
    pub tokenization: BridgeTokenization,
    /// The policy's decision (`APPROVED` or `REQUIRE_ADDITIONAL_AUTHENTICATION`: a decline is
    /// final and never asked about) and its reason.
    pub decision: Decision,
    pub reason: DecisionReason,
}

/// The fraud engine's decision. The adapter never answers more permissively than the wallet
/// recommended, whatever this says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeDecideResponse {
    pub decision: Decision,
    /// The engine's own reason, for the audit: 1–64 letters, digits, `_`, `-` or `.`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Code>,
}
