//! What only a local deployment of the target can do for the suite, behind one trait: the suite
//! itself talks to the target over HTTP only, so it can judge any Issuer API. `tmp-kit check`
//! implements [`Harness`] for the kit it starts; an issuer can implement it for its own
//! deployment. Against a bare `--target`, the cases that need a capability the run does not
//! have are reported *skipped*, with the capability named.

use futures_util::future::BoxFuture;
use serde::Serialize;
use tmp_protocol::enums::Decision;
use tmp_protocol::sensitive::Otp;
use zeroize::Zeroizing;

/// A capability a case may need beyond the target's Issuer API and the mock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Stop the target (work in flight finished) and start it again on the same address and
    /// data: durability of what it acknowledged.
    Restart,
    /// Read an activation code where the issuer's SMS gateway or app receives it.
    ActivationCodes,
    /// Credentials for the target's ops API (a tmp-adapter's back-office API).
    OpsApi,
    /// Make the issuer's system that receives activation codes refuse deliveries for a while
    /// (and read them, as [`Capability::ActivationCodes`]).
    HoldDeliveries,
    /// Tell the issuer's decision engine (its fraud engine, which the target consults once the
    /// card checks passed) how to answer a tokenization, and read what it was asked.
    DecisionEngine,
}

impl Capability {
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Restart => "restart",
            Capability::ActivationCodes => "activation-codes",
            Capability::OpsApi => "ops-api",
            Capability::HoldDeliveries => "hold-deliveries",
            Capability::DecisionEngine => "decision-engine",
        }
    }

    /// What the capability lets the suite do, for a skipped case's reason.
    pub fn describe(self) -> &'static str {
        match self {
            Capability::Restart => "stop and start the target",
            Capability::ActivationCodes => "read activation codes where the issuer's SMS gateway receives them",
            Capability::OpsApi => "credentials for the target's ops API",
            Capability::HoldDeliveries => {
                "make the issuer's SMS gateway refuse deliveries for a while, and read what it receives"
            }
            Capability::DecisionEngine => "tell the issuer's decision engine how to answer, and read what it was asked",
        }
    }
}

/// Where and with what a case calls the target's ops API.
pub struct OpsAccess {
    pub url: String,
    /// A key holding every scope.
    pub key: Zeroizing<String>,
    /// A key holding `tokens:read` only.
    pub read_only_key: Zeroizing<String>,
}

/// How the issuer's decision engine answers one tokenization ([`Capability::DecisionEngine`]).
/// A tokenization it was told nothing about gets the decision the target proposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineAnswer {
    /// A decision of its own.
    Decide(Decision),
    /// A decision, but only after the target's verification deadline has passed.
    Late,
    /// 200 with a body that is no decision.
    Malformed,
    /// 503.
    Unavailable,
}

/// A local deployment of the target, driven by the suite.
pub trait Harness: Send + Sync {
    /// The capabilities this harness offers; the other methods are called only for these.
    fn capabilities(&self) -> &[Capability];

    /// Stops the target; work in flight finishes first ([`Capability::Restart`]).
    fn stop_target(&self) -> BoxFuture<'_, anyhow::Result<()>>;

    /// Starts the target again on the same address and data ([`Capability::Restart`]).
    fn start_target(&self) -> BoxFuture<'_, anyhow::Result<()>>;

    /// The activation code the issuer's SMS gateway received for `token_id`, if it has
    /// ([`Capability::ActivationCodes`]).
    fn activation_code(&self, token_id: &str) -> Option<Otp>;

    /// The target's ops API ([`Capability::OpsApi`]).
    fn ops_api(&self) -> Option<&OpsAccess>;

    /// Makes the system that receives activation codes refuse (`true`) or accept (`false`)
    /// deliveries ([`Capability::HoldDeliveries`]).
    fn hold_deliveries(&self, hold: bool);

    /// Tells the decision engine how to answer the tokenization `tokenization_id`
    /// ([`Capability::DecisionEngine`]). A harness without the capability need not implement it.
    fn engine_answer(&self, _tokenization_id: &str, _answer: EngineAnswer) {}

    /// What the decision engine was asked about `tokenization_id`, once it was
    /// ([`Capability::DecisionEngine`]): the request's JSON body, in the processor bridge's
    /// `decide` shape (docs/bridge.md §1.3) — `cardId`, `decision`, `tokenization.tokenizationId`
    /// are what ISS-HOOK-001 reads. A harness without the capability need not implement it.
    fn engine_question(&self, _tokenization_id: &str) -> Option<serde_json::Value> {
        None
    }
}
