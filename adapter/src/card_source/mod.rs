//! Where card facts come from, behind one trait: the local registry in the adapter's database,
//! or the issuer's processor through the bridge contract (`docs/bridge.md`).

mod local_registry;
mod processor_bridge;

pub use local_registry::LocalRegistry;
pub use processor_bridge::ProcessorBridge;

use async_trait::async_trait;
use tmp_protocol::enums::{Decision, IssuerCardStatus};
use tmp_protocol::fields::Code;
use tmp_protocol::issuer_api::{CardholderContact, DecisionReason, VerifyCardRequest};
use tmp_protocol::sensitive::{Cvc, Expiry, Pan};

/// What the issuer knows about a card. No PAN: only its last four digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardFacts {
    pub card_id: String,
    pub status: IssuerCardStatus,
    pub expiry: Expiry,
    pub pan_last4: String,
    pub cardholder: CardholderContact,
    pub product_category: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CardSourceError {
    /// The source did not answer in time.
    #[error("card source timed out")]
    Timeout,
    /// The source could not answer (down, 5xx, bad answer); the cause is in the chain.
    #[error("card source unavailable")]
    Unavailable(#[source] anyhow::Error),
}

#[async_trait]
pub trait CardSource: Send + Sync + 'static {
    /// Short name for metrics and logs (`local_registry`, `processor_bridge`).
    fn name(&self) -> &'static str;
    /// The card with this PAN, if the issuer has it. `tokenization`: the card verification the
    /// lookup is for (none for a CVC check alone), for a source that weighs TMP's context.
    async fn lookup(
        &self,
        pan: &Pan,
        tokenization: Option<&VerifyCardRequest>,
    ) -> Result<Option<CardFacts>, CardSourceError>;
    /// Whether `cvc` is the card's CVC2. Attempt counting is the caller's job.
    async fn check_cvc(&self, card: &CardFacts, pan: &Pan, cvc: &Cvc) -> Result<bool, CardSourceError>;
}

/// A tokenization the card checks passed, put to the issuer's fraud engine: the policy's
/// decision (never a decline) and the request's context.
pub struct HookQuestion<'a> {
    pub card_id: &'a str,
    pub request: &'a VerifyCardRequest,
    pub decision: Decision,
    pub reason: DecisionReason,
}

/// The fraud engine's decision and its own reason code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookAnswer {
    pub decision: Decision,
    pub reason: Option<Code>,
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("decision hook timed out")]
    Timeout,
    /// It answered, but not a decision (a status other than 200, a body that does not parse).
    #[error("decision hook answered invalidly: {0}")]
    Invalid(String),
    /// No answer at all (connection refused, reset).
    #[error("decision hook failed")]
    Failed(#[source] anyhow::Error),
}

/// The issuer's own fraud engine, asked within the verification deadline once the card checks
/// passed (`card_source.processor_bridge.decide`; docs/bridge.md).
#[async_trait]
pub trait DecisionHook: Send + Sync + 'static {
    async fn decide(&self, question: &HookQuestion<'_>) -> Result<HookAnswer, HookError>;
}
