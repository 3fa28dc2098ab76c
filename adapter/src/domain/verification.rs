//! Card and CVC verification: asks the card source within the deadline, counts CVC attempts,
//! applies the policy, and builds the audit record. A card source that misses the deadline or
//! fails yields the configured stand-in decision, recorded with its reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tmp_protocol::enums::{CardStatus, CvcResult, Decision};
use tmp_protocol::issuer_api::{
    CardData, DecisionReason, VerifyCardRequest, VerifyCardResponse, VerifyCvcRequest, VerifyCvcResponse,
};
use tmp_protocol::sensitive::{Cvc, Pan};

use super::error::DomainError;
use crate::card_source::{CardFacts, CardSource, CardSourceError, DecisionHook, HookError, HookQuestion};
use crate::domain::policy::{self, Assessment, CardOutcome, DecisionInput, PolicySettings};
use crate::metrics::Metrics;
use crate::store::{DecisionRecord, DynStore, VelocityKey};

pub struct CardVerifier {
    source: Arc<dyn CardSource>,
    /// The issuer's fraud engine, when the bridge answers one.
    hook: Option<Arc<dyn DecisionHook>>,
    store: DynStore,
    policy: PolicySettings,
    metrics: Metrics,
}

/// A verification's answer and its audit row (written by the caller with the idempotency
/// record, in one transaction).
pub struct Verified<R> {
    pub response: R,
    pub audit: DecisionRecord,
}

/// What the card source found, within the deadline.
struct SourceAnswer {
    card: Option<CardFacts>,
    cvc: CvcResult,
    live_tokens: u32,
    /// The card's and the device's other tokenizations in the velocity window.
    card_tokenizations: u32,
    device_tokenizations: Option<u32>,
}

/// What the velocity limits need counted for one tokenization (the limits some policy entry has
/// on).
struct Velocity<'a> {
    tokenization_id: &'a str,
    device_id: Option<&'a str>,
    per_card: bool,
    per_device: bool,
}

/// What came of asking the decision hook (audited as `hook_outcome`, counted by outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookOutcome {
    Answered,
    Timeout,
    Invalid,
    Failed,
}

impl HookOutcome {
    /// Every outcome, for the metric's series to exist at 0 before the first call.
    pub(crate) const ALL: [HookOutcome; 4] =
        [HookOutcome::Answered, HookOutcome::Timeout, HookOutcome::Invalid, HookOutcome::Failed];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HookOutcome::Answered => "ANSWERED",
            HookOutcome::Timeout => "TIMEOUT",
            HookOutcome::Invalid => "INVALID",
            HookOutcome::Failed => "FAILED",
        }
    }
}

struct HookRecord {
    outcome: HookOutcome,
    decision: Option<Decision>,
    reason: Option<tmp_protocol::fields::Code>,
}

enum StandIn {
    Timeout,
    Unavailable,
}

impl CardVerifier {
    pub fn new(
        source: Arc<dyn CardSource>,
        hook: Option<Arc<dyn DecisionHook>>,
        store: DynStore,
        policy: PolicySettings,
        metrics: Metrics,
    ) -> Self {
        CardVerifier { source, hook, store, policy, metrics }
    }

    /// What the card source and the decision hook may use of the deadline: the rest is kept
    /// for recording the decision and answering.
    fn budget(&self) -> Duration {
        Duration::from_millis(self.policy.deadline_ms.saturating_sub(self.policy.answer_reserve_ms))
    }

    #[tracing::instrument(skip_all, fields(tokenization_id = %request.tokenization_id))]
    pub async fn verify_card(
        &self,
        request: &VerifyCardRequest,
        card: &CardData,
        correlation_id: &str,
    ) -> Verified<VerifyCardResponse> {
        let started = Instant::now();
        let now = OffsetDateTime::now_utc();
        let requestor = &request.token_requestor;
        let requestor_policy = self.policy.for_requestor(&requestor.id, requestor.wallet);

        let scope = self.policy.token_scope(&requestor.id, requestor.wallet);
        let velocity = Velocity {
            tokenization_id: request.tokenization_id.as_str(),
            device_id: request.device.as_ref().map(|d| d.id.as_str()),
            // Recorded whenever any entry limits them — a tokenization through a wallet without a
            // limit still counts toward the limit of one with it — and read by this policy only
            // where it has one (a limit of 0 reads no count).
            per_card: self.policy.entries().any(|p| p.max_tokenizations_per_card > 0),
            per_device: self.policy.entries().any(|p| p.max_tokenizations_per_device > 0),
        };
        let answer = tokio::time::timeout(self.budget(), self.ask_source(request, card, &scope, &velocity, now)).await;
        let mut hook = None;
        let (assessment, facts, cvc_result, stand_in) = match answer {
            Ok(Ok(answer)) => {
                let outcome = outcome_of(answer.card.as_ref(), card, now);
                let input = DecisionInput {
                    card: outcome,
                    cvc: answer.cvc,
                    provisioning: request.provisioning_method,
                    live_tokens: answer.live_tokens,
                    card_tokenizations: answer.card_tokenizations,
                    device_tokenizations: answer.device_tokenizations,
                    wallet_score: request.wallet_score,
                    device_score: request.device_score,
                    wallet_recommendation: request.wallet_recommendation,
                };
                let mut assessment = policy::decide(requestor_policy, &input);
                if let Some(card) = &answer.card {
                    (assessment, hook) = self.ask_hook(request, card, assessment, started).await;
                }
                (assessment, answer.card, answer.cvc, false)
            }
            Ok(Err(error)) => {
                let cause = match error {
                    DomainError::CardSource(CardSourceError::Timeout) => StandIn::Timeout,
                    _ => StandIn::Unavailable,
                };
                tracing::warn!(error = ?error, "card source failed; answering the stand-in decision");
                (self.stand_in(cause, request.wallet_recommendation), None, NOT_CHECKED, true)
            }
            Err(_elapsed) => {
                tracing::warn!(
                    deadline_ms = self.policy.deadline_ms,
                    "card source missed the deadline; answering the stand-in decision"
                );
                (self.stand_in(StandIn::Timeout, request.wallet_recommendation), None, NOT_CHECKED, true)
            }
        };

        let latency = started.elapsed();
        self.metrics.decisions.with_label_values(&[assessment.decision.as_str(), assessment.reason.as_str()]).inc();
        tracing::info!(
            decision = assessment.decision.as_str(),
            reason = assessment.reason.as_str(),
            stand_in,
            latency_ms = latency.as_millis() as u64,
            "card verified"
        );
        let disclosed = facts.as_ref().filter(|_| self.policy.contact_disclosure.discloses(assessment.decision));
        let response = VerifyCardResponse {
            decision: assessment.decision,
            reason: assessment.reason,
            card_status: assessment.card_status,
            card_id: facts.as_ref().map(|f| f.card_id.clone()),
            cvc_result,
            product_category: facts.as_ref().and_then(|f| f.product_category.clone()),
            // Contact data and the step-up methods built on it are disclosed only where a code
            // may be sent (policy.contact_disclosure), and never with a stand-in (the card was
            // not looked at).
            cardholder: disclosed.map(|f| f.cardholder.clone()),
            step_up_methods: disclosed
                .map(|f| policy::step_up_methods(&self.policy, requestor_policy, &f.cardholder))
                .unwrap_or_default(),
            stand_in,
        };
        let audit = DecisionRecord {
            id: uuid::Uuid::new_v4(),
            decided_at: now,
            correlation_id: correlation_id.to_owned(),
            operation: "verify_card".into(),
            tokenization_id: Some(request.tokenization_id.to_string()),
            card_id: response.card_id.clone(),
            pan_last4: Some(card.pan.last4().to_owned()),
            token_requestor_id: Some(requestor.id.to_string()),
            wallet: Some(requestor.wallet.as_str().into()),
            tsp: Some(request.tsp.as_str().into()),
            decision: assessment.decision.as_str().into(),
            reason: assessment.reason.as_str().into(),
            card_status: assessment.card_status.as_str().into(),
            cvc_result: cvc_result.as_str().into(),
            stand_in,
            latency_ms: latency.as_millis() as i64,
            device_id: request.device.as_ref().map(|d| d.id.to_string()),
            device_type: request.device.as_ref().and_then(|d| d.device_type).map(|t| t.as_str().to_owned()),
            token_type: request.token_type.map(|t| t.as_str().to_owned()),
            recommendation_reasons: request
                .risk
                .as_ref()
                .filter(|r| !r.recommendation_reasons.is_empty())
                .and_then(|r| serde_json::to_string(&r.recommendation_reasons).ok()),
            pan_source: request.risk.as_ref().and_then(|r| r.pan_source).map(|s| s.as_str().to_owned()),
            network_score: request.risk.as_ref().and_then(|r| r.network_score).map(i32::from),
            hook_outcome: hook.as_ref().map(|h| h.outcome.as_str().to_owned()),
            hook_decision: hook.as_ref().and_then(|h| h.decision).map(|d| d.as_str().to_owned()),
            hook_reason: hook.and_then(|h| h.reason).map(String::from),
        };
        Verified { response, audit }
    }

    /// The fraud engine's say on a tokenization the card checks passed and the policy did not
    /// decline, in what is left of the deadline. Its decision replaces the policy's (reason
    /// `RISK_ENGINE` where they differ), never more permissive than the wallet; without an answer
    /// the policy's stands.
    async fn ask_hook(
        &self,
        request: &VerifyCardRequest,
        card: &CardFacts,
        policy: Assessment,
        started: Instant,
    ) -> (Assessment, Option<HookRecord>) {
        let Some(hook) = &self.hook else { return (policy, None) };
        if policy.decision == Decision::Declined {
            return (policy, None);
        }
        let question =
            HookQuestion { card_id: &card.card_id, request, decision: policy.decision, reason: policy.reason };
        let left = self.budget().saturating_sub(started.elapsed());
        let answer = match tokio::time::timeout(left, hook.decide(&question)).await {
            Ok(answer) => answer,
            Err(_elapsed) => Err(HookError::Timeout),
        };
        let (outcome, assessment, record) = match answer {
            Ok(answer) => {
                let decided = match answer.decision == policy.decision {
                    true => policy,
                    false => Assessment { decision: answer.decision, reason: DecisionReason::RiskEngine, ..policy },
                };
                let record = HookRecord {
                    outcome: HookOutcome::Answered,
                    decision: Some(answer.decision),
                    reason: answer.reason,
                };
                (HookOutcome::Answered, policy::apply_guardrail(decided, request.wallet_recommendation), record)
            }
            Err(error) => {
                let outcome = match &error {
                    HookError::Timeout => HookOutcome::Timeout,
                    HookError::Invalid(_) => HookOutcome::Invalid,
                    HookError::Failed(_) => HookOutcome::Failed,
                };
                tracing::warn!(error = ?error, outcome = outcome.as_str(), "decision hook gave no decision; the policy's stands");
                (outcome, policy, HookRecord { outcome, decision: None, reason: None })
            }
        };
        self.metrics.decision_hook.with_label_values(&[outcome.as_str()]).inc();
        (assessment, Some(record))
    }

    /// Lookup, CVC check with attempt counting, token and tokenization counts: everything the
    /// deadline bounds.
    async fn ask_source(
        &self,
        request: &VerifyCardRequest,
        card: &CardData,
        scope: &crate::store::TokenScope,
        velocity: &Velocity<'_>,
        now: OffsetDateTime,
    ) -> Result<SourceAnswer, DomainError> {
        let facts = self.timed("lookup", self.source.lookup(&card.pan, Some(request))).await?;
        let Some(facts) = facts else {
            // A device trying card numbers the issuer does not know is counted all the same.
            let (card_tokenizations, device_tokenizations) = self.count_tokenizations(velocity, None, now).await?;
            return Ok(SourceAnswer {
                card: None,
                cvc: NOT_CHECKED,
                live_tokens: 0,
                card_tokenizations,
                device_tokenizations,
            });
        };
        let outcome = outcome_of(Some(&facts), card, now);
        let cvc = match &card.cvc {
            _ if !policy::card_is_usable(outcome) => NOT_CHECKED,
            Some(cvc) => self.check_cvc_counted(&facts, &card.pan, cvc, now).await?,
            None if self.locked_out(&facts.card_id, now).await? => CvcResult::AttemptsExceeded,
            None => NOT_CHECKED,
        };
        let live_tokens = self.store.count_live_tokens(&facts.card_id, scope).await?;
        let (card_tokenizations, device_tokenizations) =
            self.count_tokenizations(velocity, Some(&facts.card_id), now).await?;
        Ok(SourceAnswer { card: Some(facts), cvc, live_tokens, card_tokenizations, device_tokenizations })
    }

    /// The velocity limits' counts (card, device) of the limits that are on, this tokenization
    /// recorded in the same step, so a burst of tokenizations is counted one by one.
    async fn count_tokenizations(
        &self,
        velocity: &Velocity<'_>,
        card_id: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(u32, Option<u32>), DomainError> {
        let mut keys = Vec::new();
        if let Some(card_id) = card_id.filter(|_| velocity.per_card) {
            keys.push(VelocityKey::Card(card_id));
        }
        if let Some(device) = velocity.device_id.filter(|_| velocity.per_device) {
            keys.push(VelocityKey::Device(device));
        }
        if keys.is_empty() {
            return Ok((0, None));
        }
        let counts = self
            .store
            .count_and_record_tokenization(&keys, velocity.tokenization_id, now, self.velocity_window())
            .await?;
        let (mut card, mut device) = (0, None);
        for (key, count) in keys.iter().zip(counts) {
            match key {
                VelocityKey::Card(_) => card = count,
                VelocityKey::Device(_) => device = Some(count),
            }
        }
        Ok((card, device))
    }

    fn velocity_window(&self) -> time::Duration {
        time::Duration::seconds(i64::try_from(self.policy.velocity_window_secs).unwrap_or(i64::MAX))
    }

    /// Checks a CVC, honouring and updating the per-card attempt counter.
    async fn check_cvc_counted(
        &self,
        facts: &CardFacts,
        pan: &Pan,
        cvc: &Cvc,
        now: OffsetDateTime,
    ) -> Result<CvcResult, DomainError> {
        let window = self.lockout_window();
        let reserved =
            self.store.reserve_cvc_attempt(&facts.card_id, now, window, self.policy.cvc.max_attempts).await?;
        if reserved.is_none() {
            return Ok(CvcResult::AttemptsExceeded);
        }
        // The attempt is already counted as a failure: a check that errors or times out keeps
        // counting against the card, which errs on the side of the cardholder's security.
        if self.timed("verify_cvc", self.source.check_cvc(facts, pan, cvc)).await? {
            self.store.clear_cvc_failures(&facts.card_id).await?;
            Ok(CvcResult::Match)
        } else {
            Ok(CvcResult::NoMatch)
        }
    }

    fn lockout_window(&self) -> time::Duration {
        time::Duration::seconds(i64::try_from(self.policy.cvc.lockout_window_secs).unwrap_or(i64::MAX))
    }

    /// Whether the card is locked out by earlier wrong CVCs (checked even when no CVC is sent:
    /// a card under attack must not be tokenized by a requestor that doesn't ask for one).
    async fn locked_out(&self, card_id: &str, now: OffsetDateTime) -> Result<bool, DomainError> {
        let failures = self.store.cvc_failures(card_id, now, self.lockout_window()).await?;
        Ok(failures >= self.policy.cvc.max_attempts)
    }

    async fn timed<T>(
        &self,
        operation: &str,
        call: impl Future<Output = Result<T, CardSourceError>>,
    ) -> Result<T, CardSourceError> {
        let started = Instant::now();
        let result = call.await;
        self.metrics
            .card_source_duration
            .with_label_values(&[self.source.name(), operation])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    fn stand_in(&self, cause: StandIn, wallet_recommendation: Option<Decision>) -> Assessment {
        let (reason, label) = match cause {
            StandIn::Timeout => (DecisionReason::StandInTimeout, "timeout"),
            StandIn::Unavailable => (DecisionReason::StandInUnavailable, "unavailable"),
        };
        self.metrics.stand_ins.with_label_values(&[label]).inc();
        let decision =
            self.policy.stand_in_decision.at_least_as_strict_as(wallet_recommendation.unwrap_or(Decision::Approved));
        // The card could not be looked up: its state is UNKNOWN, not NOT_FOUND (which says the
        // source answered that it has no such card).
        Assessment { decision, reason, card_status: CardStatus::Unknown }
    }

    /// CVC check outside card verification. `Err` only when the card source missed the
    /// deadline or failed (the caller answers 503; nothing is decided).
    #[tracing::instrument(skip_all)]
    pub async fn verify_cvc(
        &self,
        request: &VerifyCvcRequest,
        card: &CardData,
        cvc: &Cvc,
        correlation_id: &str,
    ) -> Result<Verified<VerifyCvcResponse>, DomainError> {
        let started = Instant::now();
        let now = OffsetDateTime::now_utc();
        let work = async {
            let facts = self.timed("lookup", self.source.lookup(&card.pan, None)).await?;
            let outcome = outcome_of(facts.as_ref(), card, now);
            let result = match (&facts, policy::card_problem(outcome)) {
                (Some(facts), None) => self.check_cvc_counted(facts, &card.pan, cvc, now).await?,
                // An unusable card's CVC is not checked, and not counted against it.
                _ => CvcResult::NoMatch,
            };
            Ok::<_, DomainError>((facts, outcome, result))
        };
        let (facts, outcome, cvc_result) = match tokio::time::timeout(self.budget(), work).await {
            Ok(result) => result?,
            Err(_) => return Err(DomainError::DeadlineMissed { deadline_ms: self.policy.deadline_ms }),
        };
        let card_status = policy::card_status(outcome);
        let reason = policy::card_problem(outcome).unwrap_or(match cvc_result {
            CvcResult::AttemptsExceeded => DecisionReason::CvcAttemptsExceeded,
            CvcResult::NoMatch => DecisionReason::CvcNoMatch,
            _ => DecisionReason::CardVerified,
        });
        let latency = started.elapsed();
        tracing::info!(cvc_result = cvc_result.as_str(), latency_ms = latency.as_millis() as u64, "cvc verified");
        let response = VerifyCvcResponse {
            cvc_result,
            card_status,
            card_id: facts.as_ref().map(|f| f.card_id.clone()),
            reason: Some(reason),
        };
        let audit = DecisionRecord {
            id: uuid::Uuid::new_v4(),
            decided_at: now,
            correlation_id: correlation_id.to_owned(),
            operation: "verify_cvc".into(),
            tokenization_id: None,
            card_id: response.card_id.clone(),
            pan_last4: Some(card.pan.last4().to_owned()),
            token_requestor_id: request.token_requestor.as_ref().map(|r| r.id.to_string()),
            wallet: request.token_requestor.as_ref().map(|r| r.wallet.as_str().into()),
            tsp: None,
            decision: cvc_result.as_str().into(),
            reason: reason.as_str().into(),
            card_status: card_status.as_str().into(),
            cvc_result: cvc_result.as_str().into(),
            stand_in: false,
            latency_ms: latency.as_millis() as i64,
            device_id: None,
            device_type: None,
            token_type: None,
            recommendation_reasons: None,
            pan_source: None,
            network_score: None,
            hook_outcome: None,
            hook_decision: None,
            hook_reason: None,
        };
        Ok(Verified { response, audit })
    }
}

/// A CVC that was not checked (none sent, unusable card, stand-in) is reported as
/// `NOT_PROVIDED`: it was neither matched nor counted as a failure.
const NOT_CHECKED: CvcResult = CvcResult::NotProvided;

fn outcome_of(facts: Option<&CardFacts>, card: &CardData, now: OffsetDateTime) -> CardOutcome {
    match facts {
        None => CardOutcome::NotFound,
        Some(facts) => CardOutcome::Found {
            status: facts.status,
            expired: facts.expiry.is_expired_at(now),
            expiry_matches: facts.expiry.yymm() == card.expiry.yymm(),
        },
    }
}
