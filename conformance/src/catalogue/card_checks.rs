//! Card verification (every decision path), the CVC check, and verify-card latency.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{
    card_id, requestor, requestor_id, token_event_body, token_event_call, verify, verify_call, verify_cvc,
    verify_cvc_call,
};
use crate::case;
use crate::case::{BOTH, Case, EXTERNAL, Expect, Failure, Outcome, declared, ensure};
use crate::payload::{CvcChoice, PayloadSpec};
use crate::profile::ContactDisclosure;
use crate::session::Session;
use tmp_protocol::enums::{Decision, StepUpMethodType};

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "ISS-VERIFY-001",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Active card with the right CVC is approved",
            "An active card whose CVC matches is APPROVED with reason CARD_VERIFIED, cardStatus ACTIVE, cvcResult MATCH, standIn false and the issuer's cardId.",
            &["R-HTTP-1", "R-VERIFY-1", "R-POLICY-9"],
            verify_active
        ),
        case!(
            "ISS-VERIFY-002",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Manual provisioning without a CVC follows the policy's require_cvc",
            "Google Pay MANUAL provisioning of an active card without a CVC answers cvcResult NOT_PROVIDED: DECLINED with CVC_REQUIRED where the declared policy requires a CVC, else APPROVED.",
            &["R-POLICY-1", "R-POLICY-2", "R-POLICY-6"],
            verify_without_cvc
        ),
        case!(
            "ISS-VERIFY-003",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Blocked card is declined",
            "A blocked card is DECLINED with reason CARD_BLOCKED and cardStatus BLOCKED.",
            &["R-POLICY-5"],
            verify_blocked
        ),
        case!(
            "ISS-VERIFY-004",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Closed card is declined",
            "A closed card is DECLINED with reason CARD_CLOSED and cardStatus CLOSED.",
            &["R-POLICY-5"],
            verify_closed
        ),
        case!(
            "ISS-VERIFY-005",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Expired card is declined",
            "A card past its expiry month is DECLINED with reason CARD_EXPIRED and cardStatus EXPIRED.",
            &["R-POLICY-5"],
            verify_expired
        ),
        case!(
            "ISS-VERIFY-006",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Unknown card is declined without a card id",
            "A PAN the issuer does not know is DECLINED with reason CARD_NOT_FOUND, cardStatus NOT_FOUND and no cardId.",
            &["R-VERIFY-1", "R-POLICY-5"],
            verify_unknown
        ),
        case!(
            "ISS-VERIFY-007",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Expiry mismatch is declined",
            "An active card presented with another expiry is DECLINED with reason EXPIRY_MISMATCH.",
            &["R-POLICY-5"],
            verify_expiry_mismatch
        ),
        case!(
            "ISS-VERIFY-008",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Wrong CVC is declined",
            "An active card with a wrong CVC is DECLINED with reason CVC_NO_MATCH and cvcResult NO_MATCH.",
            &["R-POLICY-6", "R-COUNT-3"],
            verify_wrong_cvc
        ),
        case!(
            "ISS-VERIFY-009",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "A score below the declared threshold steps up, one at it does not",
            "With the lower of walletScore and deviceScore one below the declared step_up_below_score the answer is REQUIRE_ADDITIONAL_AUTHENTICATION (LOW_SCORE_STEP_UP) with the cardholder's contact; at the threshold (or with the threshold 0) it is APPROVED. Checked for each score.",
            &["R-VERIFY-2", "R-POLICY-3", "R-POLICY-8", "R-POLICY-11"],
            verify_low_score
        ),
        case!(
            "ISS-VERIFY-010",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Never more permissive than a DECLINED wallet recommendation",
            "When the wallet recommends DECLINED, an otherwise approvable card is DECLINED with reason WALLET_RECOMMENDATION.",
            &["R-POLICY-10"],
            verify_wallet_declined
        ),
        case!(
            "ISS-VERIFY-011",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Never more permissive than a step-up recommendation",
            "When the wallet recommends REQUIRE_ADDITIONAL_AUTHENTICATION, the answer is not APPROVED and carries the cardholder's contact.",
            &["R-VERIFY-2", "R-POLICY-10", "R-POLICY-11"],
            verify_wallet_step_up
        ),
        case!(
            "ISS-VERIFY-012",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Apple Pay manual provisioning without a CVC follows require_cvc",
            "Apple Pay MANUAL provisioning without a CVC is DECLINED with CVC_REQUIRED where the declared policy requires a CVC, else APPROVED with NOT_PROVIDED.",
            &["R-POLICY-1", "R-POLICY-2"],
            verify_apple_requires_cvc
        ),
        case!(
            "ISS-VERIFY-013",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Push provisioning is exempt from the CVC requirement",
            "Apple Pay PUSH provisioning carries no CVC and is APPROVED for an active card.",
            &["R-POLICY-2"],
            verify_push_exempt
        ),
        case!(
            "ISS-VERIFY-014",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "An approval carries the contact only where the policy discloses it",
            "An approval carries no cardholder contact (nor step-up methods) under contact_disclosure step_up_only, and carries the phone or email under approved_and_step_up; a decline never does.",
            &["R-VERIFY-2", "R-POLICY-11"],
            verify_approval_has_no_contact
        ),
        case!(
            "ISS-VERIFY-015",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Answers never carry card data",
            "No verification answer contains the PAN, the expiry or the CVC that was sent.",
            &["R-SENS-1"],
            verify_no_card_data
        ),
        case!(
            "ISS-VERIFY-016",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "A card at its token cap is declined, in that scope only",
            "With max_live_tokens_per_card live tokens of the requestor (token events), card verification answers DECLINED, TOO_MANY_TOKENS; the same card in another wallet is APPROVED; once one token is DEACTIVATED the first requestor is APPROVED again, and a late event for that token (older than its deactivation) does not change that.",
            &["R-POLICY-4", "R-POLICY-7", "R-TOKEN-5", "R-TOKEN-6"],
            verify_token_cap
        ),
        case!(
            "ISS-VERIFY-017",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "A card source failure answers the stand-in",
            "Card verification of a card the target's card source fails on (profile cards.failing) answers 200 with standIn true, reason STAND_IN_UNAVAILABLE or STAND_IN_TIMEOUT, cardStatus UNKNOWN, cvcResult NOT_PROVIDED, no cardId and no cardholder; the decision is DECLINED when the wallet recommends it, the stricter of REQUIRE_ADDITIONAL_AUTHENTICATION and the declared policy.stand_in_decision when the wallet steps up, and the declared stand_in_decision when it approves.",
            &["R-STANDIN-1", "R-VERIFY-1", "R-VERIFY-2"],
            verify_stand_in
        ),
        case!(
            "ISS-VERIFY-018",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "A device at its velocity limit is declined, other devices are not",
            "With the declared max_tokenizations_per_device (Google Pay's entry), that many card verifications naming one new device are APPROVED, the next is DECLINED, VELOCITY_EXCEEDED with cardStatus ACTIVE, the same card on another device is APPROVED, and an unknown device.type is 422.",
            &["R-POLICY-12", "R-ENUM-1"],
            verify_device_velocity
        ),
        case!(
            "ISS-VERIFY-019",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "A step-up lists the declared step-up methods, each once, contacts masked",
            "A step-up answer for the active card lists in stepUpMethods the declared methods (Google Pay's entry) in their order — those needing a phone or an e-mail exactly when the answer's cardholder has one — each type at most once; an OTP_SMS or OUTBOUND_CALL value shows at most five digits and an OTP_EMAIL value hides the address's local part; a decline lists none.",
            &["R-STEPUP-1", "R-POLICY-11"],
            verify_step_up_methods
        ),
        case!(
            "ISS-VERIFY-020",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "The decision context is taken, and checked, without changing the decision",
            "verify-card for the active card with device {id, type WATCH}, tokenType HCE and risk {recommendationReasons, panSource KEY_ENTERED, networkScore 2} answers the decision and reason it answers without them; an unknown tokenType, an unknown panSource, networkScore 6, 17 recommendation reasons or a reason holding a card number are each 422 VALIDATION_FAILED.",
            &["R-FIELD-10", "R-FIELD-11"],
            verify_decision_context
        ),
        case!(
            "ISS-CVC-001",
            VerifyCvc,
            BOTH,
            IssuerApi,
            "Right CVC matches",
            "verify-cvc of an active card with its CVC answers cvcResult MATCH and cardStatus ACTIVE.",
            &["R-HTTP-1", "R-CVC-2", "R-CVC-3"],
            cvc_match
        ),
        case!(
            "ISS-CVC-002",
            VerifyCvc,
            BOTH,
            IssuerApi,
            "Wrong CVC does not match",
            "verify-cvc with a wrong CVC answers cvcResult NO_MATCH.",
            &["R-CVC-2", "R-CVC-3", "R-COUNT-3"],
            cvc_no_match
        ),
        case!(
            "ISS-CVC-003",
            VerifyCvc,
            BOTH,
            IssuerApi,
            "A CVC check needs a CVC",
            "verify-cvc without a CVC in the payload is 422 VALIDATION_FAILED.",
            &["R-CVC-1", "R-ERR-1"],
            cvc_missing
        ),
        case!(
            "ISS-CVC-004",
            VerifyCvc,
            BOTH,
            IssuerApi,
            "Exactly cvc_max_attempts wrong CVCs lock the card, even for the right CVC",
            "On a cleared counter (a right CVC answered MATCH), exactly cvc_max_attempts wrong CVCs answer NO_MATCH; the next check answers ATTEMPTS_EXCEEDED even for the right CVC, and card verification without a CVC is DECLINED with CVC_ATTEMPTS_EXCEEDED.",
            &["R-CVC-3", "R-POLICY-6", "R-COUNT-1", "R-COUNT-2", "R-COUNT-3", "R-COUNT-4", "R-COUNT-6"],
            cvc_attempts_exceeded
        ),
        case!(
            "ISS-CVC-005",
            VerifyCvc,
            BOTH,
            IssuerApi,
            "Unknown card does not match",
            "verify-cvc of an unknown PAN answers NO_MATCH with cardStatus NOT_FOUND.",
            &["R-CVC-4"],
            cvc_unknown
        ),
        case!(
            "ISS-CVC-006",
            VerifyCvc,
            BOTH,
            IssuerApi,
            "Blocked card does not match",
            "verify-cvc of a blocked card answers NO_MATCH with cardStatus BLOCKED, its CVC unchecked.",
            &["R-CVC-4"],
            cvc_blocked
        ),
        case!(
            "ISS-CVC-007",
            VerifyCvc,
            BOTH,
            IssuerApi,
            "Expired card does not match",
            "verify-cvc of an expired card answers NO_MATCH with cardStatus EXPIRED.",
            &["R-CVC-4"],
            cvc_expired
        ),
        case!(
            "ISS-CVC-008",
            VerifyCvc,
            BOTH,
            IssuerApi,
            "An expiry mismatch is not a wrong CVC, and is not counted",
            "verify-cvc of an active card presented with another expiry answers NO_MATCH with cardStatus ACTIVE (and reason EXPIRY_MISMATCH when a reason is sent); more such checks than cvc_max_attempts leave the card unlocked: the right card data then answers MATCH.",
            &["R-CVC-5", "R-COUNT-5"],
            cvc_expiry_mismatch
        ),
        case!(
            "ISS-CVC-009",
            VerifyCvc,
            BOTH,
            IssuerApi,
            "The lockout window runs from the first wrong CVC and is not extended",
            "On a cleared counter: a wrong CVC, another half a window later, then after the window (from the first) the counter is zero again — exactly cvc_max_attempts wrong CVCs answer NO_MATCH before ATTEMPTS_EXCEEDED. Needs a declared cvc_lockout_window_secs of 3 to 30 s.",
            &["R-COUNT-7"],
            cvc_lockout_window
        ),
        case!(
            "ISS-CVC-010",
            VerifyCvc,
            BOTH,
            IssuerApi,
            "A card source failure answers 503, with nothing stored",
            "verify-cvc of a card the target's card source fails on (profile cards.failing) answers 503 UNAVAILABLE with Retry-After: 1 — no stand-in for a CVC check; the idempotency key is not stored: the same key and body retried is tried again (503, not a replay), and the same key with the active card's body is answered as new (MATCH).",
            &["R-CVC-6", "R-HDR-6", "R-IDEM-5"],
            cvc_source_failure
        ),
        case!(
            "ISS-LATENCY-001",
            Latency,
            EXTERNAL,
            IssuerApi,
            "verify-card answers within the deadline, every time",
            "N card verifications in a row (profile latency_requests) each answer 200 within the deadline (profile deadline_ms).",
            &["R-DEADLINE-1"],
            latency_verify_card
        ),
        case!(
            "ISS-LATENCY-002",
            Latency,
            BOTH,
            IssuerApi,
            "verify-cvc answers within the deadline, every time",
            "N CVC checks in a row each answer 200 within the deadline.",
            &["R-DEADLINE-1"],
            latency_verify_cvc
        ),
        case!(
            "ISS-HOOK-001",
            VerifyCard,
            EXTERNAL,
            DecisionEngine,
            "The issuer's decision engine decides, asked without card data",
            "With the decision engine set to decline an approvable tokenization, verify-card answers DECLINED with reason RISK_ENGINE (cardStatus ACTIVE, standIn false); the engine was asked with the card id, the tokenization and the proposed APPROVED, and no card number, expiry or CVC.",
            &["R-HOOK-1"],
            hook_decides
        ),
        case!(
            "ISS-HOOK-002",
            VerifyCard,
            EXTERNAL,
            DecisionEngine,
            "The decision engine never answers above the wallet",
            "The engine approves a tokenization the wallet recommends stepping up: verify-card answers REQUIRE_ADDITIONAL_AUTHENTICATION with reason WALLET_RECOMMENDATION.",
            &["R-HOOK-1"],
            hook_below_the_wallet
        ),
        case!(
            "ISS-HOOK-003",
            VerifyCard,
            EXTERNAL,
            DecisionEngine,
            "A late decision engine does not hold the answer",
            "The engine answers only after the deadline: verify-card answers within the deadline (profile deadline_ms) with the policy's decision (APPROVED, CARD_VERIFIED), standIn false.",
            &["R-HOOK-2", "R-DEADLINE-1"],
            hook_late
        ),
        case!(
            "ISS-HOOK-004",
            VerifyCard,
            EXTERNAL,
            DecisionEngine,
            "A decision engine answering nonsense or an error is not followed",
            "The engine answers 200 with a body that is no decision, then 503: each time verify-card answers the policy's decision (APPROVED, CARD_VERIFIED), standIn false.",
            &["R-HOOK-2"],
            hook_invalid
        ),
    ]
}

fn decision(answer: &crate::client::Answer, decision: &str, reason: &str, status: &str) -> Outcome {
    answer.ok_with(&[("/decision", json!(decision)), ("/reason", json!(reason)), ("/cardStatus", json!(status))])
}

async fn verify_active(s: Arc<Session>) -> Outcome {
    let answer = verify(&s, PayloadSpec::card("active"), |_| {}).await?;
    decision(&answer, "APPROVED", "CARD_VERIFIED", "ACTIVE")?;
    answer.field("/cvcResult", "MATCH")?;
    answer.field("/standIn", false)?;
    answer.field("/cardId", card_id(&s, "active"))
}

async fn verify_without_cvc(s: Arc<Session>) -> Outcome {
    manual_without_cvc(&s, "GOOGLE_PAY").await
}

/// Manual provisioning in `wallet` without a CVC, judged by the wallet's declared require_cvc.
async fn manual_without_cvc(s: &Session, wallet: &str) -> Outcome {
    let required = declared(s.client.profile.policy.require_cvc(requestor_id(wallet), wallet))?;
    let answer = verify(s, PayloadSpec::card("active").cvc(CvcChoice::Omitted), |b| {
        b["tokenRequestor"] = requestor(wallet);
    })
    .await?;
    if required {
        decision(&answer, "DECLINED", "CVC_REQUIRED", "ACTIVE")?;
    } else {
        decision(&answer, "APPROVED", "CARD_VERIFIED", "ACTIVE")?;
    }
    answer.field("/cvcResult", "NOT_PROVIDED")
}

async fn verify_blocked(s: Arc<Session>) -> Outcome {
    let answer = verify(&s, PayloadSpec::card("blocked").cvc(CvcChoice::Omitted), |_| {}).await?;
    decision(&answer, "DECLINED", "CARD_BLOCKED", "BLOCKED")
}

async fn verify_closed(s: Arc<Session>) -> Outcome {
    let answer = verify(&s, PayloadSpec::card("closed").cvc(CvcChoice::Omitted), |_| {}).await?;
    decision(&answer, "DECLINED", "CARD_CLOSED", "CLOSED")
}

async fn verify_expired(s: Arc<Session>) -> Outcome {
    let answer = verify(&s, PayloadSpec::card("expired").cvc(CvcChoice::Omitted), |_| {}).await?;
    decision(&answer, "DECLINED", "CARD_EXPIRED", "EXPIRED")
}

async fn verify_unknown(s: Arc<Session>) -> Outcome {
    let answer = verify(&s, PayloadSpec::card("unknown").cvc(CvcChoice::Omitted), |_| {}).await?;
    decision(&answer, "DECLINED", "CARD_NOT_FOUND", "NOT_FOUND")?;
    let body = answer.json().unwrap_or_default();
    ensure(body.get("cardId").is_none(), "no cardId", format!("{body}")).map_err(|f| f.with(&answer))
}

async fn verify_expiry_mismatch(s: Arc<Session>) -> Outcome {
    let actual = s.client.profile.card("active")?.expiry.clone();
    let other = format!("{:02}/{:02}", actual.month() % 12 + 1, (actual.year() + 1) % 100);
    let answer = verify(&s, PayloadSpec::card("active").cvc(CvcChoice::Omitted).expiry(&other), |_| {}).await?;
    decision(&answer, "DECLINED", "EXPIRY_MISMATCH", "ACTIVE")
}

async fn verify_wrong_cvc(s: Arc<Session>) -> Outcome {
    let answer = verify(&s, PayloadSpec::card("active").cvc(CvcChoice::Wrong), |_| {}).await?;
    decision(&answer, "DECLINED", "CVC_NO_MATCH", "ACTIVE")?;
    answer.field("/cvcResult", "NO_MATCH")?;
    // A right CVC clears the failure, so the next cases find the card as it was.
    verify(&s, PayloadSpec::card("active"), |_| {}).await?.field("/cvcResult", "MATCH")
}

fn has_contact(answer: &crate::client::Answer) -> Outcome {
    let body = answer.json().unwrap_or_default();
    let contact = &body["cardholder"];
    ensure(
        contact["phone"].is_string() || contact["email"].is_string(),
        "the cardholder's phone or email for the activation code",
        format!("{body}"),
    )
    .map_err(|f| f.with(answer))
}

async fn verify_low_score(s: Arc<Session>) -> Outcome {
    let threshold = declared(s.client.profile.policy.step_up_below_score(requestor_id("GOOGLE_PAY"), "GOOGLE_PAY"))?;
    // Each score on its own is the lower one; the other stays 5. One below the threshold must
    // step up; at the threshold (`below` is strict) it must not. Threshold 0: nothing steps up.
    let mut probes: Vec<(&str, u8, bool)> = Vec::new();
    for field in ["walletScore", "deviceScore"] {
        if threshold == 0 {
            probes.push((field, 1, false));
            continue;
        }
        if threshold >= 2 {
            probes.push((field, threshold - 1, true));
        }
        probes.push((field, threshold, false));
    }
    for (field, score, steps_up) in probes {
        let answer = verify(&s, PayloadSpec::card("active"), |b| {
            b[field] = json!(score);
            b.as_object_mut().map(|o| o.remove("walletRecommendation"));
        })
        .await?;
        if steps_up {
            decision(&answer, "REQUIRE_ADDITIONAL_AUTHENTICATION", "LOW_SCORE_STEP_UP", "ACTIVE")?;
            has_contact(&answer)?;
        } else {
            decision(&answer, "APPROVED", "CARD_VERIFIED", "ACTIVE")?;
        }
    }
    Ok(())
}

async fn verify_wallet_declined(s: Arc<Session>) -> Outcome {
    let answer = verify(&s, PayloadSpec::card("active"), |b| b["walletRecommendation"] = json!("DECLINED")).await?;
    decision(&answer, "DECLINED", "WALLET_RECOMMENDATION", "ACTIVE")
}

async fn verify_wallet_step_up(s: Arc<Session>) -> Outcome {
    let answer = verify(&s, PayloadSpec::card("active"), |b| {
        b["walletRecommendation"] = json!("REQUIRE_ADDITIONAL_AUTHENTICATION")
    })
    .await?;
    decision(&answer, "REQUIRE_ADDITIONAL_AUTHENTICATION", "WALLET_RECOMMENDATION", "ACTIVE")?;
    has_contact(&answer)
}

async fn verify_apple_requires_cvc(s: Arc<Session>) -> Outcome {
    manual_without_cvc(&s, "APPLE_PAY").await
}

async fn verify_push_exempt(s: Arc<Session>) -> Outcome {
    let answer = verify(&s, PayloadSpec::card("active").cvc(CvcChoice::Omitted), |b| {
        b["tokenRequestor"] = requestor("APPLE_PAY");
        b["provisioningMethod"] = json!("PUSH");
    })
    .await?;
    decision(&answer, "APPROVED", "CARD_VERIFIED", "ACTIVE")
}

async fn verify_approval_has_no_contact(s: Arc<Session>) -> Outcome {
    let disclosure = declared(s.client.profile.policy.contact_disclosure())?;
    let answer = verify(&s, PayloadSpec::card("active"), |_| {}).await?;
    answer.field("/decision", "APPROVED")?;
    match disclosure {
        ContactDisclosure::ApprovedAndStepUp => has_contact(&answer)?,
        ContactDisclosure::StepUpOnly => {
            let body = answer.json().unwrap_or_default();
            ensure(
                body.get("cardholder").is_none() && body.get("stepUpMethods").is_none(),
                "no cardholder and no stepUpMethods member in an approval",
                format!("{body}"),
            )
            .map_err(|f| f.with(&answer))?;
        }
    }
    // A decline never carries it, whatever the disclosure.
    let declined = verify(&s, PayloadSpec::card("active"), |b| b["walletRecommendation"] = json!("DECLINED")).await?;
    declined.field("/decision", "DECLINED")?;
    let body = declined.json().unwrap_or_default();
    ensure(body.get("cardholder").is_none(), "no cardholder member in a decline", format!("{body}"))
        .map_err(|f| f.with(&declined))
}

async fn verify_decision_context(s: Arc<Session>) -> Outcome {
    let plain = verify(&s, PayloadSpec::card("active"), |_| {}).await?;
    let plain = plain.json().unwrap_or_default();
    let device = s.id("dev-context");
    let context = |b: &mut Value| {
        b["device"] = json!({"id": device, "type": "WATCH"});
        b["tokenType"] = json!("HCE");
        b["risk"] = json!({
            "recommendationReasons": ["ACCOUNT_TOO_NEW", "LOW_DEVICE_SCORE"],
            "panSource": "KEY_ENTERED",
            "networkScore": 2
        });
    };
    let answer = verify(&s, PayloadSpec::card("active"), context).await?;
    answer.field("/decision", plain["decision"].clone())?;
    answer.field("/reason", plain["reason"].clone())?;
    // A well-known test card number inside a code: refused, never echoed.
    let hidden = "X4111111111111111".to_owned();
    type Spoil = fn(&mut Value, &str);
    let wrong: [(&str, Spoil); 5] = [
        ("tokenType PLASTIC", |b, _| b["tokenType"] = json!("PLASTIC")),
        ("panSource FAX", |b, _| b["risk"]["panSource"] = json!("FAX")),
        ("networkScore 6", |b, _| b["risk"]["networkScore"] = json!(6)),
        ("17 recommendation reasons", |b, _| {
            b["risk"]["recommendationReasons"] = json!((0..17).map(|n| format!("R{n}")).collect::<Vec<_>>())
        }),
        ("a reason holding a card number", |b, hidden| b["risk"]["recommendationReasons"] = json!([hidden])),
    ];
    for (what, change) in wrong {
        let answer = verify(&s, PayloadSpec::card("active"), |b| {
            context(b);
            change(b, &hidden);
        })
        .await?;
        answer
            .error(422, "VALIDATION_FAILED")
            .map_err(|f| Failure { expected: format!("{what}: {}", f.expected), ..f })?;
        ensure(!answer.text().contains(&hidden[1..]), "an answer without the card number", answer.text())
            .map_err(|f| f.with(&answer))?;
    }
    Ok(())
}

async fn verify_step_up_methods(s: Arc<Session>) -> Outcome {
    let wallet = "GOOGLE_PAY";
    let declared_methods = declared(s.client.profile.policy.step_up_methods(requestor_id(wallet), wallet))?;
    let answer = verify(&s, PayloadSpec::card("active"), |b| {
        b["walletRecommendation"] = json!("REQUIRE_ADDITIONAL_AUTHENTICATION")
    })
    .await?;
    answer.field("/decision", "REQUIRE_ADDITIONAL_AUTHENTICATION")?;
    let body = answer.json().unwrap_or_default();
    let listed = body.get("stepUpMethods").and_then(|m| m.as_array()).cloned().unwrap_or_default();
    let phone = body["cardholder"]["phone"].as_str();
    let email = body["cardholder"]["email"].as_str();
    let expected: Vec<&str> = declared_methods
        .iter()
        .filter(|m| match m {
            StepUpMethodType::OtpSms | StepUpMethodType::OutboundCall => phone.is_some(),
            StepUpMethodType::OtpEmail => email.is_some(),
            _ => true,
        })
        .map(|m| m.as_str())
        .collect();
    let types: Vec<&str> = listed.iter().filter_map(|m| m["type"].as_str()).collect();
    ensure(types == expected, format!("stepUpMethods of types {expected:?}"), format!("{body}"))
        .map_err(|f| f.with(&answer))?;
    for method in &listed {
        let value = method["value"].as_str().unwrap_or_default();
        let masked = match method["type"].as_str() {
            Some("OTP_SMS" | "OUTBOUND_CALL") => {
                value.chars().filter(char::is_ascii_digit).count() <= 5 && Some(value) != phone
            }
            Some("OTP_EMAIL") => match (email.and_then(|e| e.split_once('@')), value.split_once('@')) {
                (Some((local, _)), Some((shown, _))) => local.chars().count() <= 1 || !shown.contains(local),
                (_, None) => Some(value) != email,
                (None, Some(_)) => true,
            },
            _ => !value.trim().is_empty(),
        };
        ensure(
            masked,
            "each method's value masked (a phone: at most five digits; an e-mail: no local part)",
            format!("{method}"),
        )
        .map_err(|f| f.with(&answer))?;
    }
    let declined = verify(&s, PayloadSpec::card("active"), |b| b["walletRecommendation"] = json!("DECLINED")).await?;
    declined.field("/decision", "DECLINED")?;
    let body = declined.json().unwrap_or_default();
    ensure(body.get("stepUpMethods").is_none(), "no stepUpMethods member in a decline", format!("{body}"))
        .map_err(|f| f.with(&declined))
}

/// Tokenizations the velocity case makes at most: a larger declared limit is not checked.
const MOST_TOKENIZATIONS_MADE: u32 = 20;

async fn verify_device_velocity(s: Arc<Session>) -> Outcome {
    let wallet = "GOOGLE_PAY";
    let policy = &s.client.profile.policy;
    let limit = declared(policy.max_tokenizations_per_device(requestor_id(wallet), wallet))?;
    if limit == 0 {
        return Err(Failure::skip("the target's per-device velocity limit is off (max_tokenizations_per_device: 0)"));
    }
    if limit > MOST_TOKENIZATIONS_MADE {
        return Err(Failure::skip(format!(
            "the declared max_tokenizations_per_device {limit} is more than the {MOST_TOKENIZATIONS_MADE} tokenizations \
             the case makes"
        )));
    }
    // Every case verifies the active card: a per-card limit would decline this one for theirs.
    let per_card = declared(policy.max_tokenizations_per_card(requestor_id(wallet), wallet))?;
    if per_card != 0 {
        return Err(Failure::skip("the target limits tokenizations per card too: the case needs that limit off"));
    }
    let on = |device: String, kind: &'static str| {
        let s = s.clone();
        async move {
            verify(&s, PayloadSpec::card("active"), |b| {
                b["tokenRequestor"] = requestor(wallet);
                b["device"] = json!({"id": device, "type": kind});
            })
            .await
        }
    };
    let device = s.id("velocity-device");
    for _ in 0..limit {
        decision(&on(device.clone(), "PHONE").await?, "APPROVED", "CARD_VERIFIED", "ACTIVE")?;
    }
    let over = on(device.clone(), "PHONE").await?;
    decision(&over, "DECLINED", "VELOCITY_EXCEEDED", "ACTIVE")?;
    decision(&on(s.id("velocity-other"), "WATCH").await?, "APPROVED", "CARD_VERIFIED", "ACTIVE")?;
    on(s.id("velocity-odd"), "TOASTER").await?.error(422, "VALIDATION_FAILED")
}

/// Tokens the cap case adds at most: a larger declared cap is not checked.
const MOST_TOKENS_ADDED: u32 = 50;

async fn verify_token_cap(s: Arc<Session>) -> Outcome {
    let wallet = "GOOGLE_PAY";
    let cap = declared(s.client.profile.policy.max_live_tokens_per_card(requestor_id(wallet), wallet))?;
    let Some(card) = s.client.profile.cards.get("cap") else {
        return Err(Failure::skip("the profile has no `cards.cap` (an ACTIVE card with its CVC and card_id)"));
    };
    let card_id = card.card_id.clone().unwrap_or_default();
    if cap > MOST_TOKENS_ADDED {
        return Err(Failure::skip(format!(
            "the declared max_live_tokens_per_card {cap} is more than the {MOST_TOKENS_ADDED} tokens the case adds"
        )));
    }
    let verify_cap = |wallet: &'static str| {
        let s = s.clone();
        async move { verify(&s, PayloadSpec::card("cap"), |b| b["tokenRequestor"] = requestor(wallet)).await }
    };
    let before = verify_cap(wallet).await?;
    if before.json().unwrap_or_default()["reason"] == "TOO_MANY_TOKENS" {
        return Err(Failure::skip(
            "`cards.cap` is at its token cap before the case adds any (tokens left by an earlier run, or a target \
             that does not free them): deactivate its tokens to run this case",
        ));
    }
    decision(&before, "APPROVED", "CARD_VERIFIED", "ACTIVE")?;
    let mut tokens = Vec::new();
    let outcome = async {
        for _ in 0..cap {
            let mut body = token_event_body(&s, "ACTIVE", None);
            body["cardId"] = json!(card_id);
            tokens.push(body["tokenId"].as_str().unwrap_or_default().to_owned());
            s.send(token_event_call(&s, body)).await?.ok_with(&[("/accepted", json!(true))])?;
        }
        let at_cap = verify_cap(wallet).await?;
        decision(&at_cap, "DECLINED", "TOO_MANY_TOKENS", "ACTIVE")?;
        at_cap.field("/cvcResult", "MATCH")?;
        // The cap counts the requestor's (or the wallet's) tokens: another wallet is not at it.
        decision(&verify_cap("APPLE_PAY").await?, "APPROVED", "CARD_VERIFIED", "ACTIVE")?;
        deactivate(&s, &card_id, &tokens[..1]).await?;
        decision(&verify_cap(wallet).await?, "APPROVED", "CARD_VERIFIED", "ACTIVE")?;
        // A late event (older than the deactivation) does not bring the token back.
        let mut late = token_event_body(&s, "ACTIVE", Some("INACTIVE"));
        late["cardId"] = json!(card_id);
        late["tokenId"] = json!(tokens[0]);
        late["occurredAt"] = json!("2020-01-01T00:00:00Z");
        s.send(token_event_call(&s, late)).await?.ok_with(&[("/accepted", json!(true))])?;
        decision(&verify_cap(wallet).await?, "APPROVED", "CARD_VERIFIED", "ACTIVE")
    }
    .await;
    // Leave the card without live tokens for the next run, whatever happened: every token
    // added is deactivated (again, for the first); the case's own failure is the one reported.
    let cleanup = deactivate(&s, &card_id, &tokens).await;
    outcome.and(cleanup)
}

/// Token events that deactivate `tokens` of `card_id`.
async fn deactivate(s: &Session, card_id: &str, tokens: &[String]) -> Outcome {
    for token in tokens {
        let mut body = token_event_body(s, "DEACTIVATED", Some("ACTIVE"));
        body["cardId"] = json!(card_id);
        body["tokenId"] = json!(token);
        s.send(token_event_call(s, body)).await?.ok_with(&[("/accepted", json!(true))])?;
    }
    Ok(())
}

async fn verify_no_card_data(s: Arc<Session>) -> Outcome {
    let card = s.client.profile.card("active")?.clone();
    for spec in [PayloadSpec::card("active"), PayloadSpec::card("active").cvc(CvcChoice::Wrong)] {
        let answer = verify(&s, spec, |b| b["walletScore"] = json!(1)).await?;
        answer.status(200)?;
        let text = answer.text();
        let cvc = card.cvc.as_ref().map(|c| c.expose().to_owned()).unwrap_or_default();
        // The CVC is 3-4 digits: look for it as a JSON string, not as any substring.
        let leaked = text.contains(card.pan.expose())
            || text.contains(&card.expiry.mm_yy())
            || (!cvc.is_empty() && text.contains(&format!("\"{cvc}\"")));
        ensure(!leaked, "an answer without the PAN, expiry or CVC", "an answer that repeats card data")
            .map_err(|f| f.with(&answer))?;
    }
    // Leave the card's CVC counter as it was.
    verify(&s, PayloadSpec::card("active"), |_| {}).await?.status(200)
}

/// The profile's card the target's card source fails on, or the skip that names the key.
fn failing_card(s: &Session) -> Result<(), Failure> {
    match s.client.profile.cards.contains_key("failing") {
        true => Ok(()),
        false => Err(Failure::skip(
            "the profile has no `cards.failing` (a card the target's card source fails on, with a CVC)",
        )),
    }
}

async fn verify_stand_in(s: Arc<Session>) -> Outcome {
    failing_card(&s)?;
    let stand_in = |answer: &crate::client::Answer| -> Outcome {
        answer.ok_with(&[
            ("/standIn", json!(true)),
            ("/cardStatus", json!("UNKNOWN")),
            ("/cvcResult", json!("NOT_PROVIDED")),
        ])?;
        let body = answer.json().unwrap_or_default();
        let reason = body["reason"].as_str().unwrap_or_default();
        ensure(
            matches!(reason, "STAND_IN_UNAVAILABLE" | "STAND_IN_TIMEOUT"),
            "reason STAND_IN_UNAVAILABLE or STAND_IN_TIMEOUT",
            format!("reason {reason:?}"),
        )
        .map_err(|f| f.with(answer))?;
        // Nothing is known of the card: no id, and no contact to send a code to — even when
        // the stand-in steps up.
        ensure(
            body.get("cardId").is_none() && body.get("cardholder").is_none(),
            "no cardId and no cardholder",
            format!("{body}"),
        )
        .map_err(|f| f.with(answer))
    };
    // The wallet's DECLINED is the strictest: whatever the stand-in policy, the answer declines.
    let declined = verify(&s, PayloadSpec::card("failing"), |b| b["walletRecommendation"] = json!("DECLINED")).await?;
    stand_in(&declined)?;
    declined.field("/decision", "DECLINED")?;
    let expected = declared(s.client.profile.policy.stand_in_decision())?;
    for recommendation in [Decision::RequireAdditionalAuthentication, Decision::Approved] {
        let answer =
            verify(&s, PayloadSpec::card("failing"), |b| b["walletRecommendation"] = json!(recommendation.as_str()))
                .await?;
        stand_in(&answer)?;
        answer.field("/decision", expected.at_least_as_strict_as(recommendation).as_str())?;
    }
    Ok(())
}

async fn cvc_source_failure(s: Arc<Session>) -> Outcome {
    failing_card(&s)?;
    let key = uuid::Uuid::new_v4().to_string();
    // Prepared once: the retry below sends the very same body.
    let prepared = s.prepare(verify_cvc_call(&s, PayloadSpec::card("failing")).idempotency_key(Some(&key))).await?;
    let failed = s.send_prepared(&prepared).await?;
    failed.error(503, "UNAVAILABLE")?;
    let retry_after = failed.header("retry-after");
    ensure(retry_after.as_deref() == Some("1"), "Retry-After: 1", format!("Retry-After: {retry_after:?}"))
        .map_err(|f| f.with(&failed))?;
    // TMP retries with the same key and body: tried again, not a replay of a stored 503.
    let again = s.send_prepared(&prepared).await?;
    again.error(503, "UNAVAILABLE")?;
    ensure(again.header("idempotent-replayed").is_none(), "a fresh 503", "a replayed one")
        .map_err(|f| f.with(&again))?;
    // A stored 503 would answer this other body 422 IDEMPOTENCY_KEY_REUSED.
    let fresh = s.send(verify_cvc_call(&s, PayloadSpec::card("active")).idempotency_key(Some(&key))).await?;
    fresh.ok_with(&[("/cvcResult", json!("MATCH")), ("/cardStatus", json!("ACTIVE"))])
}

async fn cvc_match(s: Arc<Session>) -> Outcome {
    let answer = verify_cvc(&s, PayloadSpec::card("active")).await?;
    answer.ok_with(&[("/cvcResult", json!("MATCH")), ("/cardStatus", json!("ACTIVE"))])
}

async fn cvc_no_match(s: Arc<Session>) -> Outcome {
    let answer = verify_cvc(&s, PayloadSpec::card("active").cvc(CvcChoice::Wrong)).await?;
    answer.ok_with(&[("/cvcResult", json!("NO_MATCH")), ("/cardStatus", json!("ACTIVE"))])?;
    verify_cvc(&s, PayloadSpec::card("active")).await?.field("/cvcResult", "MATCH")
}

async fn cvc_missing(s: Arc<Session>) -> Outcome {
    verify_cvc(&s, PayloadSpec::card("active").cvc(CvcChoice::Omitted)).await?.error(422, "VALIDATION_FAILED")
}

async fn cvc_attempts_exceeded(s: Arc<Session>) -> Outcome {
    // A right CVC clears the counter (contract §7.3): from here exactly cvc_max_attempts wrong ones
    // are due before the lock. A card still locked by an earlier run cannot show the count.
    let fresh = verify_cvc(&s, PayloadSpec::card("lockout")).await?;
    fresh.status(200)?;
    if fresh.json().unwrap_or_default()["cvcResult"] == "ATTEMPTS_EXCEEDED" {
        return Err(Failure::skip(
            "`cards.lockout` is locked before the case starts (by an earlier run, or by a target that does not \
             unlock it): the count can only be checked on a card whose lockout window has passed (or was reset)",
        ));
    }
    fresh.ok_with(&[("/cvcResult", json!("MATCH")), ("/cardStatus", json!("ACTIVE"))])?;
    spend_attempts(&s, "(cvc_max_attempts)").await?;
    if s.approach == crate::case::Approach::External {
        // The lock holds for card verification too, with a CVC or without one.
        let answer = s.send(verify_call(&s, PayloadSpec::card("lockout"), |_| {})).await?;
        answer.ok_with(&[("/decision", json!("DECLINED")), ("/cvcResult", json!("ATTEMPTS_EXCEEDED"))])?;
        let answer = verify(&s, PayloadSpec::card("lockout").cvc(CvcChoice::Omitted), |_| {}).await?;
        decision(&answer, "DECLINED", "CVC_ATTEMPTS_EXCEEDED", "ACTIVE")?;
        answer.field("/cvcResult", "ATTEMPTS_EXCEEDED")?;
    }
    Ok(())
}

async fn cvc_expiry_mismatch(s: Arc<Session>) -> Outcome {
    let actual = s.client.profile.card("active")?.expiry.clone();
    let other = format!("{:02}/{:02}", actual.month() % 12 + 1, (actual.year() + 1) % 100);
    for _ in 0..=s.client.profile.cvc_max_attempts {
        let answer = verify_cvc(&s, PayloadSpec::card("active").expiry(&other)).await?;
        answer.ok_with(&[("/cvcResult", json!("NO_MATCH")), ("/cardStatus", json!("ACTIVE"))])?;
        let reason = answer.json().unwrap_or_default()["reason"].clone();
        ensure(reason.is_null() || reason == "EXPIRY_MISMATCH", "no reason, or EXPIRY_MISMATCH", reason.to_string())
            .map_err(|f| f.with(&answer))?;
    }
    verify_cvc(&s, PayloadSpec::card("active")).await?.ok_with(&[("/cvcResult", json!("MATCH"))])
}

/// The longest lockout window the window case waits out (twice).
const LONGEST_WINDOW_WAITED: u64 = 30;

async fn cvc_lockout_window(s: Arc<Session>) -> Outcome {
    let attempts = s.client.profile.cvc_max_attempts;
    let window = match s.client.profile.cvc_lockout_window_secs {
        None => return Err(Failure::skip("the profile does not declare `cvc_lockout_window_secs`")),
        // Under 3 s, the new window (from the first attempt, plus 1 s) would not end before an
        // extended one (from the second, half a window later): the two could not be told apart.
        Some(w) if !(3..=LONGEST_WINDOW_WAITED).contains(&w) => {
            return Err(Failure::skip(format!(
                "the declared lockout window ({w} s) is not one the case can wait out (3 to {LONGEST_WINDOW_WAITED} s)"
            )));
        }
        Some(w) => Duration::from_secs(w),
    };
    if attempts < 2 {
        return Err(Failure::skip("with cvc_max_attempts 1 no second attempt is counted to extend the window"));
    }
    // A card still locked (ISS-CVC-004 ran before) is free again after one window.
    let mut first = verify_cvc(&s, PayloadSpec::card("lockout")).await?;
    if first.json().unwrap_or_default()["cvcResult"] == "ATTEMPTS_EXCEEDED" {
        tokio::time::sleep(window + Duration::from_secs(1)).await;
        first = verify_cvc(&s, PayloadSpec::card("lockout")).await?;
    }
    first.ok_with(&[("/cvcResult", json!("MATCH"))])?;
    let wrong = || verify_cvc(&s, PayloadSpec::card("lockout").cvc(CvcChoice::Wrong));
    let started = std::time::Instant::now();
    wrong().await?.ok_with(&[("/cvcResult", json!("NO_MATCH"))])?;
    tokio::time::sleep(window / 2).await;
    wrong().await?.ok_with(&[("/cvcResult", json!("NO_MATCH"))])?;
    // A quarter of a window after the first attempt's window ended, and a quarter before one
    // extended by the second (half a window later) would: the two are told apart either way.
    tokio::time::sleep((window + window / 4).saturating_sub(started.elapsed())).await;
    spend_attempts(&s, "in a new window (an extended window, or one that did not end, locks earlier)").await
}

/// On a counter the caller cleared: exactly `cvc_max_attempts` wrong CVCs to `cards.lockout`
/// answer NO_MATCH, then the right CVC answers ATTEMPTS_EXCEEDED. `context` goes into a failure.
async fn spend_attempts(s: &Session, context: &str) -> Outcome {
    let attempts = s.client.profile.cvc_max_attempts;
    for attempt in 1..=attempts {
        let answer = verify_cvc(s, PayloadSpec::card("lockout").cvc(CvcChoice::Wrong)).await?;
        answer.status(200)?;
        let result = answer.json().unwrap_or_default()["cvcResult"].clone();
        ensure(
            result == "NO_MATCH",
            format!("NO_MATCH for wrong CVC {attempt} of {attempts} {context}"),
            result.to_string(),
        )
        .map_err(|f| f.with(&answer))?;
    }
    verify_cvc(s, PayloadSpec::card("lockout")).await?.ok_with(&[("/cvcResult", json!("ATTEMPTS_EXCEEDED"))])
}

async fn cvc_unknown(s: Arc<Session>) -> Outcome {
    let answer = verify_cvc(&s, PayloadSpec::card("unknown").cvc(CvcChoice::Wrong)).await?;
    answer.ok_with(&[("/cvcResult", json!("NO_MATCH")), ("/cardStatus", json!("NOT_FOUND"))])
}

async fn cvc_blocked(s: Arc<Session>) -> Outcome {
    let answer = verify_cvc(&s, PayloadSpec::card("blocked").cvc(CvcChoice::Wrong)).await?;
    answer.ok_with(&[("/cvcResult", json!("NO_MATCH")), ("/cardStatus", json!("BLOCKED"))])
}

async fn cvc_expired(s: Arc<Session>) -> Outcome {
    let answer = verify_cvc(&s, PayloadSpec::card("expired").cvc(CvcChoice::Wrong)).await?;
    answer.ok_with(&[("/cvcResult", json!("NO_MATCH")), ("/cardStatus", json!("EXPIRED"))])
}

/// Sends `n` calls one after another; each must answer 200 within the deadline.
async fn within_deadline(s: &Session, n: u32, make: impl Fn() -> crate::client::Call) -> Outcome {
    let deadline = Duration::from_millis(s.client.profile.deadline_ms);
    let mut times = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let answer = s.send(make()).await?;
        answer.status(200)?;
        if answer.elapsed > deadline {
            return Err(Failure::new(
                format!("every answer within {} ms", deadline.as_millis()),
                format!("an answer after {} ms", answer.elapsed.as_millis()),
            )
            .with(&answer));
        }
        times.push(answer.elapsed);
    }
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1].as_secs_f64() * 1e3;
    s.note(format!(
        "{n} requests: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (deadline {} ms)",
        at(0.5),
        at(0.99),
        at(1.0),
        deadline.as_millis()
    ));
    Ok(())
}

async fn latency_verify_card(s: Arc<Session>) -> Outcome {
    let n = s.client.profile.latency_requests;
    within_deadline(&s, n, || verify_call(&s, PayloadSpec::card("active"), |_| {})).await
}

async fn latency_verify_cvc(s: Arc<Session>) -> Outcome {
    let n = s.client.profile.latency_requests;
    within_deadline(&s, n, || verify_cvc_call(&s, PayloadSpec::card("active"))).await
}

/// A verification of the profile's active card whose engine answer is `answer`: its answer and
/// the tokenization's id.
async fn engine_verify(
    s: &Session,
    answer: crate::harness::EngineAnswer,
    tweak: impl FnOnce(&mut serde_json::Value),
) -> Result<(crate::client::Answer, String), Failure> {
    let harness = s.harness(crate::harness::Capability::DecisionEngine)?.clone();
    let tokenization_id = s.id("tkz-hook");
    harness.engine_answer(&tokenization_id, answer);
    let id = tokenization_id.clone();
    let answer = verify(s, PayloadSpec::card("active"), move |b| {
        b["tokenizationId"] = json!(id);
        tweak(b);
    })
    .await?;
    Ok((answer, tokenization_id))
}

async fn hook_decides(s: Arc<Session>) -> Outcome {
    let (answer, tokenization_id) =
        engine_verify(&s, crate::harness::EngineAnswer::Decide(Decision::Declined), |_| {}).await?;
    decision(&answer, "DECLINED", "RISK_ENGINE", "ACTIVE")?;
    answer.field("/standIn", false)?;
    let harness = s.harness(crate::harness::Capability::DecisionEngine)?;
    let question = harness.engine_question(&tokenization_id).unwrap_or_default();
    let asked = question["cardId"] == card_id(&s, "active").as_str()
        && question["decision"] == "APPROVED"
        && question["tokenization"]["tokenizationId"] == tokenization_id.as_str();
    ensure(asked, "the engine asked with the card id, the tokenization and APPROVED", question.to_string())?;
    let card = s.client.card("active").ok_or_else(|| Failure::new("the profile's active card", "none"))?;
    let text = question.to_string();
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    // By value, whatever the members are called: the card number in any spelling, the expiry
    // as MM/YY or YYMM, the CVC as a string.
    let expiry = [card.expiry.mm_yy(), format!("\"{}\"", card.expiry.yymm())];
    let cvc = card.cvc.as_ref().map(|c| format!("\"{}\"", c.expose()));
    let leaked = digits.contains(card.pan.expose())
        || expiry.iter().any(|e| text.contains(e.as_str()))
        || cvc.is_some_and(|c| text.contains(&c));
    ensure(!leaked, "no card number, expiry or CVC in the engine's question", "card data in the question")
}

/// The engine was asked about `tokenization_id`: the target consulted it, so the answer that
/// follows is its handling of what the engine said.
fn engine_asked(s: &Session, tokenization_id: &str) -> Outcome {
    let harness = s.harness(crate::harness::Capability::DecisionEngine)?;
    let asked = harness.engine_question(tokenization_id).is_some();
    ensure(asked, "the decision engine asked about the tokenization", "no question reached the engine")
}

async fn hook_below_the_wallet(s: Arc<Session>) -> Outcome {
    let (answer, tokenization_id) = engine_verify(&s, crate::harness::EngineAnswer::Decide(Decision::Approved), |b| {
        b["walletRecommendation"] = json!("REQUIRE_ADDITIONAL_AUTHENTICATION");
    })
    .await?;
    decision(&answer, "REQUIRE_ADDITIONAL_AUTHENTICATION", "WALLET_RECOMMENDATION", "ACTIVE")?;
    engine_asked(&s, &tokenization_id)
}

async fn hook_late(s: Arc<Session>) -> Outcome {
    let (answer, tokenization_id) = engine_verify(&s, crate::harness::EngineAnswer::Late, |_| {}).await?;
    decision(&answer, "APPROVED", "CARD_VERIFIED", "ACTIVE")?;
    answer.field("/standIn", false)?;
    engine_asked(&s, &tokenization_id)?;
    let deadline = Duration::from_millis(s.client.profile.deadline_ms);
    ensure(
        answer.elapsed <= deadline,
        format!("an answer within the deadline ({} ms)", deadline.as_millis()),
        format!("{} ms", answer.elapsed.as_millis()),
    )
}

async fn hook_invalid(s: Arc<Session>) -> Outcome {
    for engine in [crate::harness::EngineAnswer::Malformed, crate::harness::EngineAnswer::Unavailable] {
        let (answer, tokenization_id) = engine_verify(&s, engine, |_| {}).await?;
        decision(&answer, "APPROVED", "CARD_VERIFIED", "ACTIVE")?;
        answer.field("/standIn", false)?;
        engine_asked(&s, &tokenization_id)?;
    }
    Ok(())
}
