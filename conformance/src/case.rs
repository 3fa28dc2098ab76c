//! A case: an id, the requirement it checks, where it applies, and an async check that either
//! passes or fails with what was expected, what came back and the exchanges that show it.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;

use crate::client::{Answer, Exchange};
use crate::harness::Capability;
use crate::session::Session;

/// The integration approach a case applies to (`external` or `datacore`: docs/contract.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Approach {
    /// Cards at the issuer's processor: TMP verifies them through the Issuer API.
    External,
    /// Cards in Verestro DataCore: the Issuer API serves CVC checks, token events, notifications.
    Datacore,
}

impl Approach {
    pub fn as_str(self) -> &'static str {
        match self {
            Approach::External => "external",
            Approach::Datacore => "datacore",
        }
    }
}

pub const BOTH: &[Approach] = &[Approach::External, Approach::Datacore];
pub const EXTERNAL: &[Approach] = &[Approach::External];

/// The API area a case belongs to; the summary scores each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Area {
    #[serde(rename = "verify-card")]
    VerifyCard,
    #[serde(rename = "verify-cvc")]
    VerifyCvc,
    #[serde(rename = "token-events")]
    TokenEvents,
    #[serde(rename = "notifications")]
    Notifications,
    #[serde(rename = "idempotency")]
    Idempotency,
    #[serde(rename = "signatures")]
    Signatures,
    #[serde(rename = "input")]
    Input,
    #[serde(rename = "encryption")]
    Encryption,
    #[serde(rename = "latency")]
    Latency,
    #[serde(rename = "forwarding")]
    Forwarding,
    #[serde(rename = "journeys")]
    Journeys,
    #[serde(rename = "ops-api")]
    Ops,
}

impl Area {
    pub fn as_str(self) -> &'static str {
        match self {
            Area::VerifyCard => "verify-card",
            Area::VerifyCvc => "verify-cvc",
            Area::TokenEvents => "token-events",
            Area::Notifications => "notifications",
            Area::Idempotency => "idempotency",
            Area::Signatures => "signatures",
            Area::Input => "input",
            Area::Encryption => "encryption",
            Area::Latency => "latency",
            Area::Forwarding => "forwarding",
            Area::Journeys => "journeys",
            Area::Ops => "ops-api",
        }
    }
}

/// What a case needs besides the target's Issuer API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Needs {
    /// The Issuer API alone: any implementation.
    IssuerApi,
    /// The target forwards processor events to a mock-tmp the suite can drive (`--mock URL`
    /// and the processor secret).
    Mock,
    /// The mock, and a harness that can restart the target.
    Restart,
    /// A harness that reads activation codes where the issuer's SMS gateway receives them.
    ActivationCodes,
    /// The mock (a wallet's journey), and a harness that reads activation codes.
    MockActivationCodes,
    /// The mock (the ops API calls TMP), and a harness that gives ops API credentials.
    OpsApi,
    /// A harness that holds deliveries to the issuer's system and reads what arrives.
    HeldDeliveries,
    /// A harness that tells the issuer's decision engine how to answer.
    DecisionEngine,
}

impl Needs {
    pub fn as_str(self) -> &'static str {
        match self {
            Needs::IssuerApi => "issuer-api",
            Needs::Mock => "mock",
            Needs::Restart => "mock+restart",
            Needs::ActivationCodes => "activation-codes",
            Needs::MockActivationCodes => "mock+activation-codes",
            Needs::OpsApi => "mock+ops-api",
            Needs::HeldDeliveries => "hold-deliveries",
            Needs::DecisionEngine => "decision-engine",
        }
    }

    /// Whether the case drives a mock-tmp.
    pub fn mock(self) -> bool {
        !matches!(self, Needs::IssuerApi | Needs::ActivationCodes | Needs::HeldDeliveries | Needs::DecisionEngine)
    }

    /// The harness capability the case needs, if any.
    pub fn capability(self) -> Option<Capability> {
        match self {
            Needs::IssuerApi | Needs::Mock => None,
            Needs::Restart => Some(Capability::Restart),
            Needs::ActivationCodes | Needs::MockActivationCodes => Some(Capability::ActivationCodes),
            Needs::OpsApi => Some(Capability::OpsApi),
            Needs::HeldDeliveries => Some(Capability::HoldDeliveries),
            Needs::DecisionEngine => Some(Capability::DecisionEngine),
        }
    }
}

pub type CaseFn = fn(Arc<Session>) -> BoxFuture<'static, Result<(), Failure>>;

pub struct Case {
    pub id: &'static str,
    pub area: Area,
    pub title: &'static str,
    pub requirement: &'static str,
    /// The rules of the contract the case checks (`[R-…]` markers in docs/contract.md and
    /// docs/ops-api.md; [`crate::rules`]).
    pub rules: &'static [&'static str],
    pub approaches: &'static [Approach],
    pub needs: Needs,
    pub run: CaseFn,
}

/// Registers an `async fn(Arc<Session>) -> Result<(), Failure>` as a case.
#[macro_export]
macro_rules! case {
    ($id:literal, $area:ident, $approaches:expr, $needs:ident, $title:literal, $requirement:literal, $rules:expr, $f:path) => {
        $crate::case::Case {
            id: $id,
            area: $crate::case::Area::$area,
            title: $title,
            requirement: $requirement,
            rules: $rules,
            approaches: $approaches,
            needs: $crate::case::Needs::$needs,
            run: |session| Box::pin($f(session)),
        }
    };
}

/// Why a case failed — or, from [`Failure::skip`], why it could not judge the target.
#[derive(Debug, Clone)]
pub struct Failure {
    pub expected: String,
    pub actual: String,
    /// The requests of the case up to the failure, oldest first.
    pub exchanges: Vec<Arc<Exchange>>,
    /// Set when the case stopped because its expectation depends on something the run does
    /// not know (a choice the profile does not declare, a secret that is not set): the case
    /// is reported skipped with this reason, not failed.
    pub skipped: Option<String>,
}

impl Failure {
    pub fn new(expected: impl Into<String>, actual: impl Into<String>) -> Failure {
        Failure { expected: expected.into(), actual: actual.into(), exchanges: Vec::new(), skipped: None }
    }

    /// The case cannot judge the target: `reason` names what the run lacks (a profile key, an
    /// environment variable).
    pub fn skip(reason: impl Into<String>) -> Failure {
        let reason = reason.into();
        Failure { expected: String::new(), actual: reason.clone(), exchanges: Vec::new(), skipped: Some(reason) }
    }

    pub fn with(mut self, answer: &Answer) -> Failure {
        self.exchanges.push(answer.exchange.clone());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}, got {}", self.expected, self.actual)
    }
}

/// A problem of the suite's own (a fixture it could not build, the target unreachable) is
/// reported as the case's failure too: the case did not show the requirement holds.
impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        Failure::new("the case to run to its end", format!("{error:#}"))
    }
}

pub type Outcome = Result<(), Failure>;

/// Checks on an answer. Each failure carries the answer's exchange.
pub trait Expect {
    fn status(&self, expected: u16) -> Outcome;
    /// The contract's error body with this status and code.
    fn error(&self, status: u16, code: &str) -> Outcome;
    /// A JSON field (a JSON pointer such as `/decision`) equals `expected`.
    fn field(&self, pointer: &str, expected: impl Into<Value>) -> Outcome;
    /// A 200 with these fields.
    fn ok_with(&self, fields: &[(&str, Value)]) -> Outcome;
}

impl Expect for Answer {
    fn status(&self, expected: u16) -> Outcome {
        if self.status == expected {
            Ok(())
        } else {
            Err(Failure::new(format!("HTTP {expected}"), format!("HTTP {}: {}", self.status, self.exchange.response))
                .with(self))
        }
    }

    fn error(&self, status: u16, code: &str) -> Outcome {
        let body = self.json();
        let actual_code = body.as_ref().and_then(|b| b["error"]["code"].as_str().map(str::to_owned));
        let has_message = body.as_ref().is_some_and(|b| b["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        let has_correlation =
            body.as_ref().is_some_and(|b| b["error"]["correlationId"].as_str().is_some_and(|m| !m.is_empty()));
        if self.status == status && actual_code.as_deref() == Some(code) && has_message && has_correlation {
            return Ok(());
        }
        Err(Failure::new(
            format!("HTTP {status} with the contract's error body, code {code}, a message and a correlationId"),
            format!("HTTP {}: {}", self.status, self.exchange.response),
        )
        .with(self))
    }

    fn field(&self, pointer: &str, expected: impl Into<Value>) -> Outcome {
        let expected = expected.into();
        let Some(body) = self.json() else {
            return Err(
                Failure::new(format!("a JSON body with {pointer} = {expected}"), "a body that is not JSON").with(self)
            );
        };
        match body.pointer(pointer) {
            Some(actual) if *actual == expected => Ok(()),
            actual => Err(Failure::new(
                format!("{pointer} = {expected}"),
                format!("{pointer} = {} in {}", actual.map_or("(absent)".to_owned(), Value::to_string), body),
            )
            .with(self)),
        }
    }

    fn ok_with(&self, fields: &[(&str, Value)]) -> Outcome {
        self.status(200)?;
        for (pointer, expected) in fields {
            self.field(pointer, expected.clone())?;
        }
        Ok(())
    }
}

/// The value a profile declares, or the case skipped naming the key that would declare it.
pub fn declared<T>(value: crate::profile::Declared<T>) -> Result<T, Failure> {
    value.map_err(Failure::skip)
}

/// Fails with `expected`/`actual` unless `condition` holds.
pub fn ensure(condition: bool, expected: impl Into<String>, actual: impl Into<String>) -> Outcome {
    if condition { Ok(()) } else { Err(Failure::new(expected, actual)) }
}
