//! What the mock knows: cards (TMP's view and DataCore's records), tokens and their
//! suspenders, tokenizations (with stand-ins), and the bookkeeping of the inbound contract
//! (idempotency records, seen webhook ids). [`rules`] holds the automated token lifecycle;
//! [`persist`] keeps a snapshot in SQLite when configured.
//!
//! Every mutation returns the [`Effect`]s it causes (token events, notifications); the caller
//! hands them to the sender *after* the state is saved, so a callback never announces a
//! change that a crash could undo.

pub mod persist;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tmp_protocol::enums::{
    ChangeInitiator, Decision, IssuerCardStatus, NotificationChannel, NotificationType, ProvisioningMethod, ReasonCode,
    StepUpMethodType, TokenStatus, Tsp,
};
use tmp_protocol::issuer_api::{CardholderContact, StepUpMethod, TokenRequestor};
use tmp_protocol::sensitive::{Expiry, Otp, Pan};
use tmp_protocol::tmp_api::{ActivationCodeState, CardMetadata, TokenInfo};

use crate::keys::StoredKeys;

/// A card as TMP and DataCore know it. The PAN is held only in [`Pan`] (masked when printed)
/// and never leaves the mock except encrypted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Card {
    pub card_id: String,
    /// Known when the card was loaded into DataCore, seeded, or seen in a tokenization.
    pub pan: Option<Pan>,
    pub pan_last4: Option<String>,
    pub expiry: Option<Expiry>,
    pub status: IssuerCardStatus,
    pub replaced_by: Option<String>,
    pub cardholder: Option<CardholderContact>,
    pub product_category: Option<String>,
    /// Product and card art, as the issuer last sent them (state saved before had none).
    #[serde(default)]
    pub metadata: Option<CardMetadata>,
    /// Loaded through the Lifecycle API (approach `datacore`).
    pub in_datacore: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Card {
    pub fn new(card_id: &str, status: IssuerCardStatus) -> Card {
        Card {
            card_id: card_id.to_owned(),
            pan: None,
            pan_last4: None,
            expiry: None,
            status,
            replaced_by: None,
            cardholder: None,
            product_category: None,
            metadata: None,
            in_datacore: false,
            updated_at: OffsetDateTime::now_utc(),
        }
    }

    pub fn set_pan(&mut self, pan: Pan) {
        self.pan_last4 = Some(pan.last4().to_owned());
        self.pan = Some(pan);
    }

    /// The inspection view: last four digits only, no expiry.
    pub fn view(&self) -> Value {
        json!({
            "cardId": self.card_id,
            "panLast4": self.pan_last4,
            "status": self.status,
            "replacedBy": self.replaced_by,
            "inDatacore": self.in_datacore,
            "hasExpiry": self.expiry.is_some(),
            "productCategory": self.product_category,
            "metadata": self.metadata,
            "updatedAt": rfc3339(self.updated_at),
        })
    }
}

/// Who holds a token suspended. A token resumes only when nobody does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Suspender {
    Issuer,
    Cardholder,
    /// The wallet (e.g. a device reported lost in the wallet's own app), as MDES and VTS record
    /// a token requestor's suspension apart from the issuer's.
    TokenRequestor,
    /// The card is blocked: lifted by the unblock alone.
    CardBlock,
}

impl Suspender {
    /// Who a token event names for a change this party made (a card's block is the issuer's).
    pub fn initiator(self) -> ChangeInitiator {
        match self {
            Suspender::Issuer | Suspender::CardBlock => ChangeInitiator::Issuer,
            Suspender::Cardholder => ChangeInitiator::Cardholder,
            Suspender::TokenRequestor => ChangeInitiator::TokenRequestor,
        }
    }
}

/// A pending activation code (yellow path). Only a salted hash of the code is kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OtpChallenge {
    pub hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub wrong_attempts: u32,
    /// How the code was sent. (State saved before the mock kept it: SMS.)
    #[serde(default = "sms")]
    pub channel: NotificationChannel,
    /// Wrong codes allowed in all (`simulator.otp_max_attempts` when the first code was sent).
    #[serde(default = "three")]
    pub max_attempts: u32,
}

fn sms() -> NotificationChannel {
    NotificationChannel::Sms
}

fn three() -> u32 {
    3
}

impl OtpChallenge {
    pub fn new(
        token_id: &str,
        otp: &Otp,
        expires_at: OffsetDateTime,
        channel: NotificationChannel,
        max_attempts: u32,
    ) -> OtpChallenge {
        OtpChallenge { hash: otp_hash(token_id, otp), expires_at, wrong_attempts: 0, channel, max_attempts }
    }

    /// What TMP shows of it: expiry, attempts left and channel — never the code.
    pub fn state(&self) -> ActivationCodeState {
        ActivationCodeState {
            expires_at: self.expires_at,
            attempts_left: self.max_attempts.saturating_sub(self.wrong_attempts),
            channel: self.channel,
        }
    }

    pub fn matches(&self, token_id: &str, otp: &Otp) -> bool {
        otp_hash(token_id, otp) == self.hash
    }
}

fn otp_hash(token_id: &str, otp: &Otp) -> String {
    let mut digest = Sha256::new();
    digest.update(token_id.as_bytes());
    digest.update(b":");
    digest.update(otp.expose().as_bytes());
    hex::encode(digest.finalize())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    pub token_id: String,
    pub card_id: String,
    pub tsp: Tsp,
    pub token_requestor: TokenRequestor,
    pub status: TokenStatus,
    pub suspenders: BTreeSet<Suspender>,
    pub token_last4: String,
    pub device_name: Option<String>,
    /// The device the token lives on; one phone's tokens share it. (State saved before the
    /// mock kept it has none.)
    #[serde(default)]
    pub device_id: Option<String>,
    pub tokenization_id: String,
    pub provisioning_method: ProvisioningMethod,
    pub otp: Option<OtpChallenge>,
    /// The step-up methods the issuer offered for this token's tokenization (or, where it
    /// offered none, the codes its contact allows), and the one the cardholder chose.
    #[serde(default)]
    pub step_up_offered: Vec<StepUpMethod>,
    #[serde(default)]
    pub step_up_chosen: Option<StepUpMethodType>,
    /// The product and card art the wallet shows for this token: its card's when it was
    /// created, then every update of the card's (TMP pushes them to the wallets).
    #[serde(default)]
    pub product: Option<CardMetadata>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Token {
    pub fn info(&self) -> TokenInfo {
        TokenInfo {
            token_id: self.token_id.clone(),
            card_id: self.card_id.clone(),
            status: self.status,
            tsp: self.tsp,
            token_requestor: self.token_requestor.clone(),
            token_last4: Some(self.token_last4.clone()),
            device_name: self.device_name.clone(),
            device_id: self.device_id.clone(),
            activation_code: self.pending_code().map(OtpChallenge::state),
            updated_at: self.updated_at,
        }
    }

    /// The activation code the token waits for: none once it is not `INACTIVE`, or while the
    /// cardholder's chosen step-up method has no code. (A code set aside by a switch to such a
    /// method is kept, so that its wrong attempts still count when a code is asked for again.)
    pub fn pending_code(&self) -> Option<&OtpChallenge> {
        let by_code = self.step_up_chosen.is_none_or(|m| m.code_channel().is_some());
        self.otp.as_ref().filter(|_| self.status == TokenStatus::Inactive && by_code)
    }

    /// The inspection view: suspenders and OTP bookkeeping, never the code or its hash.
    pub fn view(&self) -> Value {
        let mut view = serde_json::to_value(self.info()).unwrap_or_default();
        if let Some(object) = view.as_object_mut() {
            object.insert("suspendedBy".into(), json!(self.suspenders));
            object.insert("tokenizationId".into(), json!(self.tokenization_id));
            object.insert("provisioningMethod".into(), json!(self.provisioning_method));
            if !self.step_up_offered.is_empty() {
                object.insert("stepUp".into(), json!({"offered": self.step_up_offered, "chosen": self.step_up_chosen}));
            }
            if let Some(product) = &self.product {
                object.insert("product".into(), json!(product));
            }
            if let Some(otp) = self.pending_code() {
                object.insert(
                    "otp".into(),
                    json!({"wrongAttempts": otp.wrong_attempts, "expiresAt": rfc3339(otp.expires_at)}),
                );
            }
        }
        view
    }
}

/// The record of one simulated tokenization, including whether the mock stood in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tokenization {
    pub tokenization_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub approach: crate::config::Approach,
    pub provisioning_method: ProvisioningMethod,
    pub wallet: tmp_protocol::enums::Wallet,
    pub tsp: Tsp,
    pub card_id: Option<String>,
    pub pan_last4: Option<String>,
    pub decision: Decision,
    /// `GREEN`, `YELLOW` or `RED`.
    pub path: String,
    /// The issuer's (or DataCore's) reason, or why the mock stood in.
    pub reason: String,
    pub stand_in: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stand_in_cause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cvc_result: Option<String>,
    pub token_id: Option<String>,
}

/// A push provisioning `sign` issued: the card, the wallet and (Apple Pay) the activation data
/// the issuer's app received with it. The payload itself is not kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushGrant {
    pub card_id: String,
    pub wallet: tmp_protocol::enums::Wallet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_data: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// Whether a wallet has presented the payload.
    #[serde(default)]
    pub used: bool,
    /// A web push: where the wallet's web flow sends the cardholder back, and until when its
    /// receipt (the grant's key) is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebPushGrant>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebPushGrant {
    pub callback_url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A stored answer to an idempotent inbound request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    pub status: u16,
    pub body: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The whole state; serialized as one JSON snapshot when persisted.
#[derive(Default, Serialize, Deserialize)]
pub struct MockState {
    pub cards: BTreeMap<String, Card>,
    pub tokens: BTreeMap<String, Token>,
    pub tokenizations: Vec<Tokenization>,
    /// `"scope key"` → stored answer.
    pub idempotency: BTreeMap<String, IdempotencyRecord>,
    /// `webhook-id` → unix seconds first seen.
    pub seen_webhook_ids: BTreeMap<String, i64>,
    /// Nonces of push payloads a wallet has presented (each is single use).
    #[serde(default)]
    pub used_push_nonces: BTreeSet<String>,
    /// What `sign` issued, by the push payload's nonce.
    #[serde(default)]
    pub push_grants: BTreeMap<String, PushGrant>,
    /// Filled only in the persisted snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<StoredKeys>,
}

/// A consequence of a state change that the issuer must hear about.
#[derive(Debug, Clone)]
pub enum Effect {
    TokenEvent {
        token: TokenInfo,
        /// The tokenization that created the token.
        tokenization_id: Option<String>,
        previous: Option<TokenStatus>,
        cause: Cause,
        at: OffsetDateTime,
    },
    Notification {
        kind: NotificationType,
        card_id: String,
        token_id: Option<String>,
        token_requestor: Option<TokenRequestor>,
        /// Only for `ACTIVATION_CODE_DELIVERY`: the code and its expiry, and how it is sent.
        otp: Option<(Otp, OffsetDateTime)>,
        channel: Option<NotificationChannel>,
        /// The step-up method the cardholder chose (an activation code, `STEP_UP_REQUESTED`).
        step_up_method: Option<StepUpMethodType>,
        at: OffsetDateTime,
    },
}

impl Effect {
    /// A notification about one token (`TOKEN_ACTIVATED`, `CARD_REMOVED_BY_…`); an activation
    /// code has its own, with the code.
    pub fn token_notification(kind: NotificationType, token: &Token, at: OffsetDateTime) -> Effect {
        Effect::Notification {
            kind,
            card_id: token.card_id.clone(),
            token_id: Some(token.token_id.clone()),
            token_requestor: Some(token.token_requestor.clone()),
            otp: None,
            channel: None,
            step_up_method: None,
            at,
        }
    }
}

/// Why a token changed, as its token event tells the issuer: who, a coded reason when the
/// change was asked for with one, and TMP's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub initiator: ChangeInitiator,
    pub reason_code: Option<ReasonCode>,
    pub reason: String,
}

impl Cause {
    pub fn new(initiator: ChangeInitiator, reason: impl Into<String>) -> Cause {
        Cause { initiator, reason_code: None, reason: reason.into() }
    }

    pub fn coded(mut self, code: ReasonCode) -> Cause {
        self.reason_code = Some(code);
        self
    }
}

impl MockState {
    /// Remembers a `webhook-id`; false when it was already seen. Ids older than `horizon`
    /// seconds are forgotten (their signatures are stale anyway).
    pub fn remember_webhook_id(&mut self, id: &str, now: i64, horizon: i64) -> bool {
        self.seen_webhook_ids.retain(|_, seen| now - *seen <= horizon);
        if self.seen_webhook_ids.contains_key(id) {
            return false;
        }
        self.seen_webhook_ids.insert(id.to_owned(), now);
        true
    }

    pub fn card_mut_or_create(&mut self, card_id: &str) -> &mut Card {
        self.cards.entry(card_id.to_owned()).or_insert_with(|| Card::new(card_id, IssuerCardStatus::Active))
    }

    pub fn find_card_by_pan(&self, pan: &Pan) -> Option<&Card> {
        self.cards.values().find(|c| c.pan.as_ref().is_some_and(|p| p == pan))
    }

    pub fn tokens_of(&self, card_id: &str) -> Vec<String> {
        self.tokens.values().filter(|t| t.card_id == card_id).map(|t| t.token_id.clone()).collect()
    }
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
