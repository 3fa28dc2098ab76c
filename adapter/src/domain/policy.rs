//! The decision policy (docs/contract.md §7): card facts → `APPROVED | REQUIRE_ADDITIONAL_AUTHENTICATION |
//! DECLINED`, per token requestor, never more permissive than the wallet's recommendation.
//! Pure: everything it needs is in [`DecisionInput`], so every path is unit-tested. The policy's
//! settings ([`PolicySettings`], `policy:` in the configuration) are the domain's types; the
//! configuration deserialises into them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::value::StrDeserializer;
use serde::de::{Deserializer, Error as _};
use tmp_protocol::enums::StepUpMethodType;
use tmp_protocol::enums::{CardStatus, CvcResult, Decision, IssuerCardStatus, ProvisioningMethod, Wallet};
use tmp_protocol::fields::{FreeText, Phone};
use tmp_protocol::issuer_api::{CardholderContact, DecisionReason, StepUpMethod};

fn default_answer_reserve_ms() -> u64 {
    100
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// When a verification's answer must leave: the card source (lookup + CVC) and the decision
    /// hook share it, less [`PolicySettings::answer_reserve_ms`].
    pub deadline_ms: u64,
    /// Kept back from `deadline_ms` for recording the decision and answering, so that an
    /// answer after a card source or decision hook that used its whole budget still leaves
    /// within the deadline.
    #[serde(default = "default_answer_reserve_ms")]
    pub answer_reserve_ms: u64,
    /// Answer when the card source misses the deadline or fails.
    pub stand_in_decision: Decision,
    /// Production refuses a stand-in of `APPROVED` unless this says it is meant.
    #[serde(default)]
    pub stand_in_approved_acknowledged: bool,
    /// When the cardholder's contact goes with a verify-card answer.
    #[serde(default)]
    pub contact_disclosure: ContactDisclosure,
    /// The number a cardholder calls for `CUSTOMER_SERVICE` step-up, shown by the wallet.
    #[serde(default)]
    pub customer_service_phone: Option<Phone>,
    pub cvc: CvcPolicySettings,
    /// The window the velocity limits (`max_tokenizations_per_card`, `…_per_device`) count in.
    #[serde(default = "default_velocity_window_secs")]
    pub velocity_window_secs: u64,
    /// Policy for token requestors without an entry below.
    pub default: RequestorPolicy,
    /// Per wallet (`APPLE_PAY`, `GOOGLE_PAY`, `SAMSUNG_PAY`, `MERCHANT`, `OTHER`; any case, as
    /// environment variable names arrive lower-cased).
    #[serde(default, deserialize_with = "wallet_keys")]
    pub wallets: BTreeMap<Wallet, RequestorPolicy>,
    /// Per token requestor id; wins over the wallet entry.
    #[serde(default)]
    pub token_requestors: BTreeMap<String, RequestorPolicy>,
}

/// When verify-card discloses the cardholder's contact (phone, e-mail) of a card it found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactDisclosure {
    /// Only with `REQUIRE_ADDITIONAL_AUTHENTICATION`: the issuer's own step-up.
    #[default]
    StepUpOnly,
    /// Also with `APPROVED`: TMP, the network or the wallet may still step up a request the
    /// issuer approved, and then needs somewhere to send the code.
    ApprovedAndStepUp,
}

impl ContactDisclosure {
    pub fn discloses(self, decision: Decision) -> bool {
        match self {
            ContactDisclosure::StepUpOnly => decision == Decision::RequireAdditionalAuthentication,
            ContactDisclosure::ApprovedAndStepUp => {
                matches!(decision, Decision::RequireAdditionalAuthentication | Decision::Approved)
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CvcPolicySettings {
    /// Wrong CVCs per card within the window before `ATTEMPTS_EXCEEDED`.
    pub max_attempts: u32,
    pub lockout_window_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestorPolicy {
    /// Decline manual provisioning when no CVC is sent (Apple Pay requires one). Push
    /// provisioning starts in the issuer's app and carries no CVC, so it is exempt.
    pub require_cvc: bool,
    /// `REQUIRE_ADDITIONAL_AUTHENTICATION` when the wallet or device score (1–5) is below this;
    /// 0 disables step-up by score.
    pub step_up_below_score: u8,
    /// Decline when the card already has this many tokens that are not deactivated, in this
    /// entry's scope ([`PolicySettings::token_scope`]).
    pub max_live_tokens_per_card: u32,
    /// Decline (`VELOCITY_EXCEEDED`) when the card had this many other tokenizations within
    /// `velocity_window_secs`, by any requestor and whatever their outcome; 0 disables.
    #[serde(default)]
    pub max_tokenizations_per_card: u32,
    /// The same for the device the tokenization names (`device.id`); 0 disables.
    #[serde(default)]
    pub max_tokenizations_per_device: u32,
    /// The step-up methods offered, in order of preference (verify-card's `stepUpMethods`):
    /// `OTP_SMS` and `OUTBOUND_CALL` where the card has a phone, `OTP_EMAIL` where it has an
    /// e-mail, `APP_TO_APP` with `app_id`, `CUSTOMER_SERVICE` with
    /// `policy.customer_service_phone`.
    #[serde(default = "default_step_up_methods")]
    pub step_up_methods: Vec<StepUpMethodType>,
    /// The issuer app the wallet opens for `APP_TO_APP` (an iOS bundle id for Apple Pay, an
    /// Android package for Google Pay — hence per entry).
    #[serde(default)]
    pub app_id: Option<FreeText>,
}

pub fn default_step_up_methods() -> Vec<StepUpMethodType> {
    vec![StepUpMethodType::OtpSms, StepUpMethodType::OtpEmail]
}

fn default_velocity_window_secs() -> u64 {
    86_400
}

impl PolicySettings {
    /// The policy for a token requestor: its own entry, else its wallet's, else the default.
    pub fn for_requestor(&self, requestor_id: &str, wallet: Wallet) -> &RequestorPolicy {
        self.token_requestors.get(requestor_id).or_else(|| self.wallets.get(&wallet)).unwrap_or(&self.default)
    }

    /// Every policy entry: the default, the wallets', the token requestors'.
    pub fn entries(&self) -> impl Iterator<Item = &RequestorPolicy> {
        std::iter::once(&self.default).chain(self.wallets.values()).chain(self.token_requestors.values())
    }

    /// Which tokens `max_live_tokens_per_card` counts for this requestor: those of the entry that
    /// governs it — the requestor's own tokens for a requestor entry and for the default (which
    /// applies to each requestor on its own), every token of the wallet for a wallet entry.
    pub fn token_scope(&self, requestor_id: &str, wallet: Wallet) -> crate::store::TokenScope {
        if !self.token_requestors.contains_key(requestor_id) && self.wallets.contains_key(&wallet) {
            crate::store::TokenScope::Wallet(wallet.as_str().to_owned())
        } else {
            crate::store::TokenScope::Requestor(requestor_id.to_owned())
        }
    }
}

/// The step-up methods a verify-card answer lists for a card with `contact`: those of `policy`
/// the card can use, in its order. A method whose value is missing is left out (the
/// configuration refuses an entry naming `APP_TO_APP` without `app_id`, or `CUSTOMER_SERVICE`
/// without `customer_service_phone`).
pub fn step_up_methods(
    settings: &PolicySettings,
    policy: &RequestorPolicy,
    contact: &CardholderContact,
) -> Vec<StepUpMethod> {
    let mut offered: Vec<StepUpMethod> = Vec::new();
    for &method in &policy.step_up_methods {
        if offered.iter().any(|m| m.method_type == method) {
            continue;
        }
        let shown = match method {
            StepUpMethodType::OtpSms | StepUpMethodType::OutboundCall => {
                contact.phone.as_ref().map(|p| StepUpMethod::masked_phone(method, p))
            }
            StepUpMethodType::OtpEmail => contact.email.as_ref().map(StepUpMethod::masked_email),
            StepUpMethodType::AppToApp => policy.app_id.clone().map(|id| StepUpMethod::public(method, id)),
            StepUpMethodType::CustomerService => {
                settings.customer_service_phone.clone().map(|p| StepUpMethod::public(method, p))
            }
        };
        offered.extend(shown);
    }
    offered
}

/// `policy.wallets`' keys in any case (`apple_pay` from an environment variable name).
fn wallet_keys<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<Wallet, RequestorPolicy>, D::Error> {
    BTreeMap::<String, RequestorPolicy>::deserialize(deserializer)?
        .into_iter()
        .map(|(name, policy)| {
            let upper = name.to_ascii_uppercase();
            let wallet = Wallet::deserialize(StrDeserializer::<D::Error>::new(&upper)).map_err(|_| {
                D::Error::custom(format!(
                    "`{name}` is not a wallet (APPLE_PAY, GOOGLE_PAY, SAMSUNG_PAY, MERCHANT or OTHER)"
                ))
            })?;
            Ok((wallet, policy))
        })
        .collect()
}

/// What the card source said about the presented card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardOutcome {
    NotFound,
    Found {
        status: IssuerCardStatus,
        /// The card's own expiry has passed.
        expired: bool,
        /// The expiry the wallet presented equals the card's.
        expiry_matches: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionInput {
    pub card: CardOutcome,
    pub cvc: CvcResult,
    /// Push provisioning starts in the issuer's own app, where the cardholder is already
    /// authenticated, and carries no CVC: `require_cvc` applies to manual provisioning only.
    pub provisioning: ProvisioningMethod,
    /// Tokens of the card that are not deactivated.
    pub live_tokens: u32,
    /// The card's other tokenizations within the velocity window.
    pub card_tokenizations: u32,
    /// The device's, when the request named a device.
    pub device_tokenizations: Option<u32>,
    pub wallet_score: Option<u8>,
    pub device_score: Option<u8>,
    pub wallet_recommendation: Option<Decision>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    pub decision: Decision,
    pub reason: DecisionReason,
    pub card_status: CardStatus,
}

/// The card status reported for a card outcome.
pub fn card_status(card: CardOutcome) -> CardStatus {
    match card {
        CardOutcome::NotFound => CardStatus::NotFound,
        CardOutcome::Found { status: IssuerCardStatus::Closed, .. } => CardStatus::Closed,
        CardOutcome::Found { status: IssuerCardStatus::Blocked, .. } => CardStatus::Blocked,
        CardOutcome::Found { expired: true, .. } => CardStatus::Expired,
        CardOutcome::Found { .. } => CardStatus::Active,
    }
}

pub fn decide(policy: &RequestorPolicy, input: &DecisionInput) -> Assessment {
    let card_status = card_status(input.card);
    let (decision, reason) = issuer_decision(policy, input);
    apply_guardrail(Assessment { decision, reason, card_status }, input.wallet_recommendation)
}

/// Why a card cannot be tokenized, or `None` when it is usable.
pub fn card_problem(card: CardOutcome) -> Option<DecisionReason> {
    use DecisionReason as R;
    match card {
        CardOutcome::NotFound => Some(R::CardNotFound),
        CardOutcome::Found { status: IssuerCardStatus::Closed, .. } => Some(R::CardClosed),
        CardOutcome::Found { status: IssuerCardStatus::Blocked, .. } => Some(R::CardBlocked),
        CardOutcome::Found { expired: true, .. } => Some(R::CardExpired),
        CardOutcome::Found { expiry_matches: false, .. } => Some(R::ExpiryMismatch),
        CardOutcome::Found { .. } => None,
    }
}

/// Whether the CVC is worth checking: only for a usable card (a blocked card's CVC attempts
/// must not lock the cardholder out once it is unblocked).
pub fn card_is_usable(card: CardOutcome) -> bool {
    card_problem(card).is_none()
}

fn issuer_decision(policy: &RequestorPolicy, input: &DecisionInput) -> (Decision, DecisionReason) {
    use DecisionReason as R;
    let declined = |reason| (Decision::Declined, reason);
    if let Some(problem) = card_problem(input.card) {
        return declined(problem);
    }
    match input.cvc {
        CvcResult::AttemptsExceeded => return declined(R::CvcAttemptsExceeded),
        CvcResult::NoMatch => return declined(R::CvcNoMatch),
        CvcResult::NotProvided if policy.require_cvc && input.provisioning == ProvisioningMethod::Manual => {
            return declined(R::CvcRequired);
        }
        CvcResult::NotProvided | CvcResult::Match => {}
    }
    if velocity_exceeded(policy, input) {
        return declined(R::VelocityExceeded);
    }
    if input.live_tokens >= policy.max_live_tokens_per_card {
        return declined(R::TooManyTokens);
    }
    let lowest_score = [input.wallet_score, input.device_score].into_iter().flatten().min();
    if lowest_score.is_some_and(|score| score < policy.step_up_below_score) {
        return (Decision::RequireAdditionalAuthentication, R::LowScoreStepUp);
    }
    (Decision::Approved, R::CardVerified)
}

/// Whether the card or the device had as many tokenizations within the window as the policy
/// allows (a limit of 0 is off).
fn velocity_exceeded(policy: &RequestorPolicy, input: &DecisionInput) -> bool {
    let over = |limit: u32, count: u32| limit > 0 && count >= limit;
    over(policy.max_tokenizations_per_card, input.card_tokenizations)
        || input.device_tokenizations.is_some_and(|n| over(policy.max_tokenizations_per_device, n))
}

/// Never more permissive than the wallet's own recommendation.
pub fn apply_guardrail(assessment: Assessment, wallet_recommendation: Option<Decision>) -> Assessment {
    match wallet_recommendation {
        Some(recommended) if recommended.strictness() > assessment.decision.strictness() => {
            Assessment { decision: recommended, reason: DecisionReason::WalletRecommendation, ..assessment }
        }
        _ => assessment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wallet_keys_are_wallets_in_any_case() {
        let requestor = r#"{"require_cvc": true, "step_up_below_score": 0, "max_live_tokens_per_card": 5}"#;
        let settings = |wallets: &str| {
            format!(
                r#"{{"deadline_ms": 1000, "stand_in_decision": "DECLINED", "cvc": {{"max_attempts": 3, "lockout_window_secs": 60}},
                    "default": {requestor}, "wallets": {wallets}}}"#
            )
        };
        let parsed: PolicySettings =
            serde_json::from_str(&settings(&format!(r#"{{"apple_pay": {requestor}}}"#))).unwrap();
        assert!(parsed.wallets[&Wallet::ApplePay].require_cvc);
        assert_eq!(parsed.for_requestor("50110030273", Wallet::ApplePay), &parsed.wallets[&Wallet::ApplePay]);
        let error = serde_json::from_str::<PolicySettings>(&settings(&format!(r#"{{"apple": {requestor}}}"#)))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("`apple` is not a wallet"), "{error}");
    }

    #[test]
    fn step_up_methods_follow_the_entry_s_order_and_what_the_card_can_use() {
        let mut settings: PolicySettings = serde_json::from_str(
            r#"{"deadline_ms": 1000, "stand_in_decision": "DECLINED", "customer_service_phone": "+48 22 000 00 00",
                "cvc": {"max_attempts": 3, "lockout_window_secs": 60},
                "default": {"require_cvc": false, "step_up_below_score": 0, "max_live_tokens_per_card": 5,
                            "step_up_methods": ["OUTBOUND_CALL", "APP_TO_APP", "OTP_EMAIL", "CUSTOMER_SERVICE", "OTP_SMS"],
                            "app_id": "com.example.bank"}}"#,
        )
        .unwrap();
        let both = CardholderContact {
            phone: Some(Phone::parse("+48 500 100 200").unwrap()),
            email: Some(FreeText::parse("holder@example.com").unwrap()),
        };
        let shown = |settings: &PolicySettings, contact: &CardholderContact| -> Vec<(&'static str, String)> {
            step_up_methods(settings, &settings.default, contact)
                .into_iter()
                .map(|m| (m.method_type.as_str(), m.value.to_string()))
                .collect()
        };
        let expected = [
            ("OUTBOUND_CALL", "+48•••200"),
            ("APP_TO_APP", "com.example.bank"),
            ("OTP_EMAIL", "h•••@example.com"),
            ("CUSTOMER_SERVICE", "+48 22 000 00 00"),
            ("OTP_SMS", "+48•••200"),
        ];
        assert_eq!(shown(&settings, &both), expected.map(|(t, v)| (t, v.to_owned())));
        // No phone: neither the SMS code nor the call back; no contact at all: the issuer's own.
        let email_only = CardholderContact { phone: None, ..both.clone() };
        let types = |list: Vec<(&'static str, String)>| list.into_iter().map(|(t, _)| t).collect::<Vec<_>>();
        assert_eq!(types(shown(&settings, &email_only)), ["APP_TO_APP", "OTP_EMAIL", "CUSTOMER_SERVICE"]);
        assert_eq!(types(shown(&settings, &CardholderContact::default())), ["APP_TO_APP", "CUSTOMER_SERVICE"]);
        // A value the configuration lacks leaves its method out (validation refuses it earlier).
        settings.customer_service_phone = None;
        settings.default.app_id = None;
        assert_eq!(types(shown(&settings, &both)), ["OUTBOUND_CALL", "OTP_EMAIL", "OTP_SMS"]);
    }

    fn policy() -> RequestorPolicy {
        RequestorPolicy {
            require_cvc: false,
            step_up_below_score: 3,
            max_live_tokens_per_card: 2,
            max_tokenizations_per_card: 0,
            max_tokenizations_per_device: 0,
            step_up_methods: default_step_up_methods(),
            app_id: None,
        }
    }

    fn active() -> CardOutcome {
        CardOutcome::Found { status: IssuerCardStatus::Active, expired: false, expiry_matches: true }
    }

    fn input(card: CardOutcome) -> DecisionInput {
        DecisionInput {
            card,
            cvc: CvcResult::Match,
            provisioning: ProvisioningMethod::Manual,
            live_tokens: 0,
            card_tokenizations: 0,
            device_tokenizations: None,
            wallet_score: Some(5),
            device_score: Some(5),
            wallet_recommendation: None,
        }
    }

    fn decide_for(i: DecisionInput) -> (Decision, DecisionReason) {
        let a = decide(&policy(), &i);
        (a.decision, a.reason)
    }

    #[test]
    fn green_path_approves() {
        assert_eq!(decide_for(input(active())), (Decision::Approved, DecisionReason::CardVerified));
    }

    #[test]
    fn card_states_decline_with_their_reason_and_status() {
        let cases = [
            (CardOutcome::NotFound, DecisionReason::CardNotFound, CardStatus::NotFound),
            (
                CardOutcome::Found { status: IssuerCardStatus::Blocked, expired: false, expiry_matches: true },
                DecisionReason::CardBlocked,
                CardStatus::Blocked,
            ),
            (
                CardOutcome::Found { status: IssuerCardStatus::Closed, expired: true, expiry_matches: true },
                DecisionReason::CardClosed,
                CardStatus::Closed,
            ),
            (
                CardOutcome::Found { status: IssuerCardStatus::Active, expired: true, expiry_matches: true },
                DecisionReason::CardExpired,
                CardStatus::Expired,
            ),
            (
                CardOutcome::Found { status: IssuerCardStatus::Active, expired: false, expiry_matches: false },
                DecisionReason::ExpiryMismatch,
                CardStatus::Active,
            ),
        ];
        for (card, reason, status) in cases {
            let a = decide(&policy(), &input(card));
            assert_eq!((a.decision, a.reason, a.card_status), (Decision::Declined, reason, status));
        }
    }

    #[test]
    fn cvc_results_and_requirement() {
        let mut i = input(active());
        i.cvc = CvcResult::NoMatch;
        assert_eq!(decide_for(i), (Decision::Declined, DecisionReason::CvcNoMatch));
        i.cvc = CvcResult::AttemptsExceeded;
        assert_eq!(decide_for(i), (Decision::Declined, DecisionReason::CvcAttemptsExceeded));
        i.cvc = CvcResult::NotProvided;
        assert_eq!(decide_for(i), (Decision::Approved, DecisionReason::CardVerified));
        let strict = RequestorPolicy { require_cvc: true, ..policy() };
        assert_eq!(decide(&strict, &i).reason, DecisionReason::CvcRequired);
        i.provisioning = ProvisioningMethod::Push;
        assert_eq!(decide(&strict, &i).decision, Decision::Approved, "push provisioning carries no CVC");
    }

    #[test]
    fn token_limit_and_step_up() {
        let mut i = input(active());
        i.live_tokens = 2;
        assert_eq!(decide_for(i), (Decision::Declined, DecisionReason::TooManyTokens));
        i.live_tokens = 1;
        i.device_score = Some(2);
        assert_eq!(decide_for(i), (Decision::RequireAdditionalAuthentication, DecisionReason::LowScoreStepUp));
        i.device_score = None;
        i.wallet_score = Some(3);
        assert_eq!(decide_for(i), (Decision::Approved, DecisionReason::CardVerified));
        let no_step_up = RequestorPolicy { step_up_below_score: 0, ..policy() };
        i.wallet_score = Some(1);
        assert_eq!(decide(&no_step_up, &i).decision, Decision::Approved);
    }

    #[test]
    fn velocity_limits_decline_at_the_limit_per_card_and_per_device() {
        let limited = RequestorPolicy { max_tokenizations_per_card: 3, max_tokenizations_per_device: 2, ..policy() };
        let mut i = input(active());
        i.card_tokenizations = 2;
        i.device_tokenizations = Some(1);
        assert_eq!(decide(&limited, &i).reason, DecisionReason::CardVerified, "under both limits");
        i.card_tokenizations = 3;
        assert_eq!(decide(&limited, &i).reason, DecisionReason::VelocityExceeded, "the card's limit");
        i.card_tokenizations = 0;
        i.device_tokenizations = Some(2);
        assert_eq!(decide(&limited, &i).reason, DecisionReason::VelocityExceeded, "the device's limit");
        i.device_tokenizations = None;
        assert_eq!(decide(&limited, &i).reason, DecisionReason::CardVerified, "no device named: not counted");
        // Off at 0, and a card problem or a wrong CVC still says what it is.
        i.card_tokenizations = 100;
        assert_eq!(decide_for(i).1, DecisionReason::CardVerified);
        i.cvc = CvcResult::NoMatch;
        assert_eq!(decide(&limited, &i).reason, DecisionReason::CvcNoMatch);
        assert_eq!(decide(&limited, &input(CardOutcome::NotFound)).reason, DecisionReason::CardNotFound);
    }

    #[test]
    fn never_more_permissive_than_the_wallet() {
        let all = [Decision::Approved, Decision::RequireAdditionalAuthentication, Decision::Declined];
        for recommended in all {
            for card in [active(), CardOutcome::NotFound] {
                for score in [1, 5] {
                    let mut i = input(card);
                    i.wallet_score = Some(score);
                    i.wallet_recommendation = Some(recommended);
                    let a = decide(&policy(), &i);
                    assert!(a.decision.strictness() >= recommended.strictness(), "{a:?} vs {recommended:?}");
                }
            }
        }
        let mut i = input(active());
        i.wallet_recommendation = Some(Decision::RequireAdditionalAuthentication);
        assert_eq!(decide_for(i), (Decision::RequireAdditionalAuthentication, DecisionReason::WalletRecommendation));
    }
}
