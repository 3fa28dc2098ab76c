//! The mutation matrix: the suite's Issuer API cases against Issuer APIs with one plausible
//! implementer mistake each (every one must fail at least one case — exactly the cases listed)
//! and against legitimate variants of the contract's open choices (every case must pass).
//! `docs/conformance.md` shows the matrix; `UPDATE_CONFORMANCE_DOC=1` rewrites it after a
//! variant is added or its catching cases change.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tmp_adapter::config::Settings;
use tmp_conformance::case::{Approach, Needs};
use tmp_conformance::runner::{Capabilities, Run, Verdict};
use tmp_kit::{KitOptions, TestKit};
use tmp_protocol::jwk::RsaKeyPair;

use crate::proxy::{Proxy, Target, Variant};

/// One row of the matrix.
pub struct Row {
    pub variant: Variant,
    /// The contract section the mistake breaks (or the choice it makes).
    pub section: &'static str,
    pub what: &'static str,
    /// The cases that must fail: empty for a legitimate variant.
    pub caught_by: &'static [&'static str],
    /// Whether exactly these fail. A broad mistake (one that breaks every error body, say)
    /// lists the cases that must fail; others may fail too.
    pub exact: bool,
    /// A change to the target's own configuration (legitimate variants of its settings).
    pub configure: Option<fn(&mut Settings)>,
}

const fn broken(
    variant: Variant,
    section: &'static str,
    what: &'static str,
    caught_by: &'static [&'static str],
) -> Row {
    Row { variant, section, what, caught_by, exact: true, configure: None }
}

/// A mistake that fails many cases: `caught_by` must fail, others may.
const fn broad(variant: Variant, section: &'static str, what: &'static str, caught_by: &'static [&'static str]) -> Row {
    Row { variant, section, what, caught_by, exact: false, configure: None }
}

const fn legitimate(variant: Variant, section: &'static str, what: &'static str) -> Row {
    Row { variant, section, what, caught_by: &[], exact: true, configure: None }
}

/// Every variant, in the order of the contract.
pub fn matrix() -> Vec<Row> {
    use Variant::*;
    vec![
        // §5.1-5.2 admission order, signatures, replay
        broken(
            AcceptsBadSignatures,
            "§5.2 signatures",
            "accepts any signature, or none",
            &[
                "ISS-INPUT-012",
                "ISS-SIG-001",
                "ISS-SIG-002",
                "ISS-SIG-003",
                "ISS-SIG-004",
                "ISS-SIG-005",
                "ISS-SIG-006",
                "ISS-SIG-007",
                "ISS-SIG-008",
                "ISS-SIG-009",
                "ISS-SIG-010",
            ],
        ),
        broken(AcceptsStaleTimestamps, "§5.2 signatures", "no timestamp tolerance", &["ISS-SIG-004", "ISS-SIG-005"]),
        broken(NoReplayCheck, "§5.1 replay", "does not remember webhook-ids", &["ISS-SIG-006", "ISS-SIG-010"]),
        broken(
            ParsesBeforeAuthenticating,
            "§5.1 admission order",
            "parses JSON before checking the signature",
            &["ISS-SIG-009"],
        ),
        broken(IgnoresContentType, "§2 headers", "reads any content type as JSON", &["ISS-INPUT-005", "ISS-SIG-009"]),
        broken(
            ParsesBeforeTheKey,
            "§5.1 admission order",
            "parses JSON before looking at the idempotency key",
            &["ISS-SIG-009"],
        ),
        // §6 idempotency
        broad(
            IgnoresIdempotencyKeys,
            "§6 idempotency",
            "ignores X-Idempotency-Key",
            &[
                "ISS-IDEM-001",
                "ISS-IDEM-002",
                "ISS-IDEM-003",
                "ISS-IDEM-004",
                "ISS-IDEM-006",
                "ISS-IDEM-007",
                "ISS-IDEM-008",
                "ISS-SIG-009",
            ],
        ),
        broken(KeysSharedAcrossRoutes, "§6 idempotency", "one key store for every route", &["ISS-IDEM-008"]),
        broken(
            ReusedKeyReplaysAnyBody,
            "§6 idempotency",
            "replays a reused key without comparing the body",
            &["ISS-IDEM-002", "ISS-SIG-009"],
        ),
        broken(
            StoresRejections,
            "§6 idempotency",
            "stores a rejection under its key",
            &["ISS-IDEM-005", "ISS-SIG-008"],
        ),
        broken(
            ReplaysUnmarked,
            "§6 idempotency",
            "replays without Idempotent-Replayed: true",
            &["ISS-IDEM-001", "ISS-IDEM-004", "ISS-IDEM-007"],
        ),
        broken(
            KeyOptional,
            "§2 headers",
            "makes up a key when none is sent",
            &["ISS-IDEM-003", "ISS-INPUT-013", "ISS-SIG-009", "ISS-SIG-010"],
        ),
        // §5.3 JWE
        broken(TriesEveryKey, "§5.3 JWE", "tries every key when the kid is unknown", &["ISS-JWE-002"]),
        broken(
            RefusesOtherHeaderMembers,
            "§5.3 JWE",
            "refuses header members other than alg, enc and kid",
            &["ISS-JWE-008"],
        ),
        broken(OtpLengthUnchecked, "§5.3 JWE plaintext", "takes an OTP of any length", &["ISS-NOTIFY-007"]),
        // §1, §2 field rules
        broken(TokenLast4Unchecked, "§1.3 fields", "takes any tokenLast4", &["ISS-TOKEN-012"]),
        broken(ClampsScores, "§1.1 fields", "clamps scores outside 1-5", &["ISS-INPUT-011"]),
        broken(
            CoercesUnknownEnums,
            "§3 enums",
            "maps an unknown enum value to a known one",
            &["ISS-IDEM-005", "ISS-INPUT-006", "ISS-SIG-009"],
        ),
        broken(StripsPansFromFreeText, "§1 free text", "strips a card number from free text", &["ISS-INPUT-007"]),
        broken(PanAsIdAccepted, "§1 ids", "takes a card number as an id", &["ISS-INPUT-008"]),
        broken(NaiveTimestampsAsUtc, "§1.3 fields", "reads a timestamp without an offset as UTC", &["ISS-TOKEN-013"]),
        broken(FillsMissingFields, "§1.3 fields", "fills a missing tokenId", &["ISS-INPUT-003"]),
        broken(CoercesTypes, "§1.3 fields", "takes a number where an id string is due", &["ISS-INPUT-002"]),
        // §7 decision policy
        broken(ApprovesBlockedCards, "§7.2 card state", "approves a blocked card", &["ISS-VERIFY-003"]),
        broken(NoTokenCap, "§7.2 token cap", "no token cap", &["ISS-VERIFY-016"]),
        broken(StepsUpAtTheThreshold, "§7.2 step-up", "steps up at the threshold (<= for <)", &["ISS-VERIFY-009"]),
        broken(IgnoresScores, "§7.2 step-up", "ignores the scores", &["ISS-INPUT-011", "ISS-VERIFY-009"]),
        broken(
            NoWalletGuardrail,
            "§7.2 guardrail",
            "ignores the wallet's recommendation",
            &["ISS-VERIFY-010", "ISS-VERIFY-011", "ISS-VERIFY-014", "ISS-VERIFY-019"],
        ),
        broken(PushTreatedAsManual, "§7.1 require_cvc", "asks push provisioning for a CVC", &["ISS-VERIFY-013"]),
        broken(IgnoresRequireCvc, "§7.1 require_cvc", "ignores require_cvc", &["ISS-VERIFY-012"]),
        broken(
            NoContactOnStepUp,
            "§7.2 contact",
            "sends no contact with a step-up",
            &["ISS-VERIFY-009", "ISS-VERIFY-011", "ISS-VERIFY-019"],
        ),
        broken(
            UnmaskedStepUpMethods,
            "§7.6 step-up methods",
            "shows the contact in clear beside the step-up methods",
            &["ISS-VERIFY-019"],
        ),
        broken(CardIdForUnknownCards, "§7.2 card state", "gives an unknown card a card id", &["ISS-VERIFY-006"]),
        broken(ExpiryNotCompared, "§7.2 card state", "does not compare the presented expiry", &["ISS-VERIFY-007"]),
        broken(EchoesCardData, "§5.5 sensitive data", "echoes the card's expiry", &["ISS-VERIFY-015"]),
        // §7.3 CVC counting
        broken(
            LocksOneEarly,
            "§7.3 CVC counting",
            "locks one wrong CVC early",
            &["ISS-CVC-004", "ISS-CVC-008", "ISS-IDEM-006"],
        ),
        broken(NeverLocks, "§7.3 CVC counting", "never locks", &["ISS-CVC-004"]),
        broken(
            LockoutSkippedWithoutCvc,
            "§7.3 CVC counting",
            "skips the lockout when no CVC is sent",
            &["ISS-CVC-004"],
        ),
        broken(ExpiredCardActiveInCvcCheck, "§1.2 verify-cvc", "says ACTIVE for an expired card", &["ISS-CVC-007"]),
        // §1.2, §7.4 card source failures
        broken(StandInForCvcCheck, "§1.2 verify-cvc", "answers NO_MATCH when the card source fails", &["ISS-CVC-010"]),
        broken(NoRetryAfterOn503, "§2 headers", "no Retry-After on a 503", &["ISS-CVC-010"]),
        broken(StoresUnavailable, "§6 idempotency", "stores 503 answers under their key", &["ISS-CVC-010"]),
        broken(StandInNamesTheCard, "§7.4 stand-in", "a stand-in names a card and its contact", &["ISS-VERIFY-017"]),
        broken(StandInApproves, "§7.4 stand-in", "a stand-in approves whatever the wallet says", &["ISS-VERIFY-017"]),
        // §9 notifications
        broken(
            ActivationCodeWithoutPayload,
            "§9 notifications",
            "takes an activation code without its payload",
            &["ISS-NOTIFY-005"],
        ),
        broken(
            DropsPayloadOfOtherTypes,
            "§9 notifications",
            "drops a payload other types must not carry",
            &["ISS-NOTIFY-006"],
        ),
        // §8 token events
        broken(
            NoEventConflict,
            "§8 token events",
            "takes a reused eventId with other content as new",
            &["ISS-TOKEN-010"],
        ),
        broad(
            RefusesUnknownCards,
            "§1.3 token events",
            "refuses token events of unknown cards",
            &["ISS-TOKEN-001", "ISS-TOKEN-002", "ISS-TOKEN-008", "ISS-TOKEN-014"],
        ),
        broken(
            MalformedTokenAcks,
            "§1.3 token events",
            "acknowledges with a body cut short",
            &[
                "ISS-IDEM-005",
                "ISS-IDEM-008",
                "ISS-INPUT-005",
                "ISS-INPUT-012",
                "ISS-SIG-008",
                "ISS-SIG-011",
                "ISS-TOKEN-001",
                "ISS-TOKEN-002",
                "ISS-TOKEN-003",
                "ISS-TOKEN-004",
                "ISS-TOKEN-005",
                "ISS-TOKEN-006",
                "ISS-TOKEN-007",
                "ISS-TOKEN-008",
                "ISS-TOKEN-009",
                "ISS-TOKEN-010",
                "ISS-TOKEN-011",
                "ISS-TOKEN-014",
                "ISS-TOKEN-015",
                "ISS-VERIFY-016",
            ],
        ),
        // §2, §4 correlation id and errors; §1.5 keys; §7.4 deadline
        broken(NoCorrelationEcho, "§2 headers", "does not echo X-Correlation-Id", &["ISS-IDEM-001", "ISS-INPUT-013"]),
        broad(
            ErrorsWithoutCorrelationId,
            "§4 errors",
            "error bodies without correlationId",
            &["ISS-CVC-003", "ISS-INPUT-001", "ISS-INPUT-013", "ISS-SIG-001", "ISS-TOKEN-010"],
        ),
        broken(HtmlNotFound, "§4 errors", "an HTML 404", &["ISS-INPUT-009"]),
        broad(
            BadRequestForValidation,
            "§4 errors",
            "400 where 422 VALIDATION_FAILED is due",
            &["ISS-CVC-003", "ISS-INPUT-002", "ISS-INPUT-003", "ISS-NOTIFY-005", "ISS-TOKEN-012"],
        ),
        broken(PublishesPrivateMembers, "§1.5 public key", "publishes the private exponent", &["ISS-KEYS-001"]),
        broken(
            AnswersLate(Duration::from_millis(400)),
            "§7.4 deadline",
            "answers after the deadline",
            &["ISS-LATENCY-001"],
        ),
        // legitimate choices
        legitimate(Honest, "—", "the adapter as it is"),
        legitimate(CharsetInContentType, "§2 headers", "application/json; charset=utf-8"),
        legitimate(EarlyPayloadTooLarge, "§5.1 admission order", "413 from Content-Length before reading the body"),
        legitimate(ExtraResponseHeaders, "—", "more response headers (Server, HSTS, nosniff, a request id)"),
        legitimate(ReformattedJson, "—", "pretty-printed JSON answers"),
        Row { configure: Some(other_key_ids), ..legitimate(Honest, "§5.3 JWE", "other key ids") },
        Row {
            configure: Some(strict_policy),
            ..legitimate(Honest, "§7.1 policy", "a CVC everywhere, no step-up, two tokens, contact with approvals")
        },
        Row {
            configure: Some(cautious_policy),
            ..legitimate(Honest, "§7.1 policy", "no CVC, step-up below 5, a requestor entry with one token")
        },
    ]
}

fn other_key_ids(settings: &mut Settings) {
    settings.keys.jwe[0].kid = "2026-12-issuer-a".into();
    settings.keys.jwe[1].kid = "k".into();
}

fn strict_policy(settings: &mut Settings) {
    crate::policies::strict(settings);
}

fn cautious_policy(settings: &mut Settings) {
    crate::policies::cautious(settings);
}

/// A spawned kit behind a proxy with `variant`, and the Issuer API cases run against the proxy.
pub struct Checked {
    pub kit: Arc<TestKit>,
    pub proxy: Proxy,
    pub run: Run,
}

pub async fn run_against(variant: Variant, configure: Option<fn(&mut Settings)>) -> Checked {
    let options = KitOptions::new(tmp_adapter::config::Approach::External);
    let kit = Arc::new(
        TestKit::start_with(&options, |s| configure.into_iter().for_each(|c| c(s)), |_| {})
            .await
            .expect("the kit starts"),
    );
    let settings = kit.settings();
    let keys = settings
        .keys
        .jwe
        .iter()
        .map(|k| {
            let pem = std::fs::read_to_string(&k.private_key_file).expect("the kit's JWE key");
            RsaKeyPair::from_pkcs8_pem(k.kid.clone(), &pem).expect("a key")
        })
        .collect();
    let profile = &kit.profile;
    let target = Target {
        upstream: kit.adapter_url.clone(),
        secret: kit.secrets.tmp.clone().expect("the kit's TMP secret"),
        keys,
        known_cards: profile.cards.values().filter_map(|c| c.card_id.clone()).collect(),
        step_up_below_score: profile.policy.step_up_below_score("50120834693", "GOOGLE_PAY").unwrap_or(0),
        cvc_max_attempts: profile.cvc_max_attempts,
        body_limit: profile.body_limit_bytes,
    };
    let proxy = Proxy::start(target, variant).await;
    let mut session =
        tmp_kit::harness::spawned_session(&kit, &proxy.url, Approach::External, 0).await.expect("session");
    // A short deadline and few requests keep the late answers of `AnswersLate` quick to see.
    session.client.profile.deadline_ms = 250;
    session.client.profile.latency_requests = 5;
    // The window case waits out the lockout window twice: not for each of the variants.
    session.client.profile.cvc_lockout_window_secs = None;
    let session = Arc::new(session);
    // The Issuer API cases only: forwarding and journeys do not pass through the proxy.
    let caps = Capabilities { mock: false, harness: Vec::new() };
    let cases = tmp_conformance::catalogue::select(Approach::External, None);
    let run = tmp_conformance::runner::run(session, cases, &caps, &mut std::io::sink()).await;
    Checked { kit, proxy, run }
}

impl Checked {
    pub async fn stop(&self) {
        self.proxy.stop().await;
        self.kit.stop().await;
    }
}

pub fn failed(run: &Run) -> BTreeSet<&'static str> {
    run.results.iter().filter(|r| r.verdict == Verdict::Failed).map(|r| r.id).collect()
}

/// Runs the rows of `section`s and checks each fails exactly its listed cases.
async fn check(rows: impl Fn(&Row) -> bool) {
    let issuer_api = tmp_conformance::catalogue::select(Approach::External, None)
        .iter()
        .filter(|c| c.needs == Needs::IssuerApi)
        .count();
    let mut wrong = Vec::new();
    for row in matrix().into_iter().filter(|r| rows(r)) {
        let checked = run_against(row.variant, row.configure).await;
        checked.stop().await;
        let failed = failed(&checked.run);
        let expected: BTreeSet<&str> = row.caught_by.iter().copied().collect();
        let ran = checked.run.count(Verdict::Passed) + failed.len();
        let as_listed = if row.exact { failed == expected } else { failed.is_superset(&expected) };
        // Every Issuer API case ran but the window case (its profile key is taken out above).
        if !as_listed || ran + 1 != issuer_api {
            let details: Vec<String> = checked
                .run
                .results
                .iter()
                .filter_map(|r| {
                    r.failure.as_ref().map(|f| format!("    {}: expected {}, got {}", r.id, f.expected, f.actual))
                })
                .collect();
            wrong.push(format!(
                "{:?} ({}): failed {failed:?}, listed {expected:?}, {ran} of {issuer_api} ran\n{}",
                row.variant,
                row.what,
                details.join("\n")
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn in_sections(row: &Row, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| row.section.starts_with(p))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_signatures_and_idempotency_mistakes_are_caught() {
    check(|r| !r.caught_by.is_empty() && in_sections(r, &["§5.1", "§5.2", "§6", "§2"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_field_and_message_mistakes_are_caught() {
    check(|r| !r.caught_by.is_empty() && in_sections(r, &["§5.3", "§1", "§3", "§8", "§9", "§4"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_policy_and_cvc_mistakes_are_caught() {
    check(|r| !r.caught_by.is_empty() && in_sections(r, &["§7", "§5.5"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legitimate_choices_pass_every_case() {
    check(|r| r.caught_by.is_empty()).await;
}

#[test]
fn every_broken_variant_is_caught_and_the_matrix_is_documented() {
    let rows = matrix();
    let broken: Vec<&Row> = rows.iter().filter(|r| !r.caught_by.is_empty()).collect();
    assert!(broken.len() >= 30, "{} broken variants", broken.len());
    assert!(rows.len() - broken.len() >= 5, "legitimate variants");
    let sections: BTreeSet<&str> = broken.iter().map(|r| r.section.split(' ').next().unwrap_or_default()).collect();
    for section in [
        "§1.1", "§1.2", "§1.3", "§1.5", "§2", "§3", "§4", "§5.1", "§5.2", "§5.3", "§6", "§7.1", "§7.2", "§7.3", "§7.4",
        "§8", "§9",
    ] {
        assert!(sections.contains(section), "no broken variant in {section}");
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/conformance.md");
    let doc = std::fs::read_to_string(&path).expect("docs/conformance.md");
    let (start, end) = ("<!-- mutation-matrix:start -->\n", "<!-- mutation-matrix:end -->");
    let from = doc.find(start).expect("the matrix start marker") + start.len();
    let to = doc.find(end).expect("the matrix end marker");
    let table = markdown(&rows);
    if std::env::var_os("UPDATE_CONFORMANCE_DOC").is_some() {
        std::fs::write(&path, format!("{}{table}{}", &doc[..from], &doc[to..])).expect("rewrite");
        return;
    }
    assert_eq!(&doc[from..to], table, "docs/conformance.md's matrix is stale: run with UPDATE_CONFORMANCE_DOC=1");
}

fn markdown(rows: &[Row]) -> String {
    let broken = rows.iter().filter(|r| !r.caught_by.is_empty()).count();
    let mut out = format!(
        "{broken} broken variants, {broken} caught; {} legitimate variants, all passing.\n\n\
         | Variant | Contract | Caught by |\n|---|---|---|\n",
        rows.len() - broken
    );
    for row in rows {
        let mut caught = if row.caught_by.is_empty() {
            "— (legitimate: every case passes)".to_owned()
        } else {
            row.caught_by.iter().map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", ")
        };
        if !row.exact {
            caught.push_str(", and more");
        }
        out.push_str(&format!("| {} | {} | {caught} |\n", row.what, row.section));
    }
    out
}
