//! Card verification (every decision path), the CVC check, and verify-card latency.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{card_id, requestor, verify, verify_call, verify_cvc, verify_cvc_call};
use crate::case;
use crate::case::{BOTH, Case, EXTERNAL, Expect, Failure, Outcome, ensure};
use crate::payload::{CvcChoice, PayloadSpec};
use crate::session::Session;

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "ISS-VERIFY-001",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Active card with the right CVC is approved",
            "An active card whose CVC matches is APPROVED with reason CARD_VERIFIED, cardStatus ACTIVE, cvcResult MATCH, standIn false and the issuer's cardId.",
            verify_active
        ),
        case!(
            "ISS-VERIFY-002",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Active card without a CVC is approved with NOT_PROVIDED",
            "Without a CVC (and no requestor policy demanding one) an active card is APPROVED with cvcResult NOT_PROVIDED.",
            verify_without_cvc
        ),
        case!(
            "ISS-VERIFY-003",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Blocked card is declined",
            "A blocked card is DECLINED with reason CARD_BLOCKED and cardStatus BLOCKED.",
            verify_blocked
        ),
        case!(
            "ISS-VERIFY-004",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Closed card is declined",
            "A closed card is DECLINED with reason CARD_CLOSED and cardStatus CLOSED.",
            verify_closed
        ),
        case!(
            "ISS-VERIFY-005",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Expired card is declined",
            "A card past its expiry month is DECLINED with reason CARD_EXPIRED and cardStatus EXPIRED.",
            verify_expired
        ),
        case!(
            "ISS-VERIFY-006",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Unknown card is declined without a card id",
            "A PAN the issuer does not know is DECLINED with reason CARD_NOT_FOUND, cardStatus NOT_FOUND and no cardId.",
            verify_unknown
        ),
        case!(
            "ISS-VERIFY-007",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Expiry mismatch is declined",
            "An active card presented with another expiry is DECLINED with reason EXPIRY_MISMATCH.",
            verify_expiry_mismatch
        ),
        case!(
            "ISS-VERIFY-008",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Wrong CVC is declined",
            "An active card with a wrong CVC is DECLINED with reason CVC_NO_MATCH and cvcResult NO_MATCH.",
            verify_wrong_cvc
        ),
        case!(
            "ISS-VERIFY-009",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Low score steps up with the cardholder's contact",
            "A wallet score below the step-up threshold answers REQUIRE_ADDITIONAL_AUTHENTICATION (LOW_SCORE_STEP_UP) with the cardholder's contact for the activation code.",
            verify_low_score
        ),
        case!(
            "ISS-VERIFY-010",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Never more permissive than a DECLINED wallet recommendation",
            "When the wallet recommends DECLINED, an otherwise approvable card is DECLINED with reason WALLET_RECOMMENDATION.",
            verify_wallet_declined
        ),
        case!(
            "ISS-VERIFY-011",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Never more permissive than a step-up recommendation",
            "When the wallet recommends REQUIRE_ADDITIONAL_AUTHENTICATION, the answer is not APPROVED and carries the cardholder's contact.",
            verify_wallet_step_up
        ),
        case!(
            "ISS-VERIFY-012",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Apple Pay manual provisioning requires a CVC",
            "Under the default policy, Apple Pay MANUAL provisioning without a CVC is DECLINED with reason CVC_REQUIRED.",
            verify_apple_requires_cvc
        ),
        case!(
            "ISS-VERIFY-013",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Push provisioning is exempt from the CVC requirement",
            "Apple Pay PUSH provisioning carries no CVC and is APPROVED for an active card.",
            verify_push_exempt
        ),
        case!(
            "ISS-VERIFY-014",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "An approval carries no cardholder contact",
            "The cardholder's contact is sent only with REQUIRE_ADDITIONAL_AUTHENTICATION, never with an approval.",
            verify_approval_has_no_contact
        ),
        case!(
            "ISS-VERIFY-015",
            VerifyCard,
            EXTERNAL,
            IssuerApi,
            "Answers never carry card data",
            "No verification answer contains the PAN, the expiry or the CVC that was sent.",
            verify_no_card_data
        ),
        case!(
            "ISS-CVC-001",
            VerifyCvc,
            BOTH,
            IssuerApi,
            "Right CVC matches",
            "verify-cvc of an active card with its CVC answers cvcResult MATCH and cardStatus ACTIVE.",
            cvc_match
        ),
        case!(
            "ISS-CVC-002",
            VerifyCvc,
            BOTH,
            IssuerApi,
            "Wrong CVC does not match",
            "verify-cvc with a wrong CVC answers cvcResult NO_MATCH.",
            cvc_no_match
        ),
        case!(
            "ISS-CVC-003",
            VerifyCvc,
            BOTH,
            IssuerApi,
            "A CVC check needs a CVC",
            "verify-cvc without a CVC in the payload is 422 VALIDATION_FAILED.",
            cvc_missing
        ),
        case!(
            "ISS-CVC-004",
            VerifyCvc,
            BOTH,
            IssuerApi,
            "Attempts exceeded locks the card, even for the right CVC",
            "After the configured number of wrong CVCs the card answers ATTEMPTS_EXCEEDED, and keeps doing so for the right CVC.",
            cvc_attempts_exceeded
        ),
        case!(
            "ISS-CVC-005",
            VerifyCvc,
            BOTH,
            IssuerApi,
            "Unknown card does not match",
            "verify-cvc of an unknown PAN answers NO_MATCH with cardStatus NOT_FOUND.",
            cvc_unknown
        ),
        case!(
            "ISS-CVC-006",
            VerifyCvc,
            BOTH,
            IssuerApi,
            "Blocked card does not match",
            "verify-cvc of a blocked card answers NO_MATCH with cardStatus BLOCKED, its CVC unchecked.",
            cvc_blocked
        ),
        case!(
            "ISS-CVC-007",
            VerifyCvc,
            BOTH,
            IssuerApi,
            "Expired card does not match",
            "verify-cvc of an expired card answers NO_MATCH with cardStatus EXPIRED.",
            cvc_expired
        ),
        case!(
            "ISS-LATENCY-001",
            Latency,
            EXTERNAL,
            IssuerApi,
            "verify-card answers within the deadline, every time",
            "N card verifications in a row (profile latency_requests) each answer 200 within the deadline (profile deadline_ms).",
            latency_verify_card
        ),
        case!(
            "ISS-LATENCY-002",
            Latency,
            BOTH,
            IssuerApi,
            "verify-cvc answers within the deadline, every time",
            "N CVC checks in a row each answer 200 within the deadline.",
            latency_verify_cvc
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
    let answer = verify(&s, PayloadSpec::card("active").cvc(CvcChoice::Omitted), |_| {}).await?;
    decision(&answer, "APPROVED", "CARD_VERIFIED", "ACTIVE")?;
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
    let answer = verify(&s, PayloadSpec::card("active"), |b| {
        b["walletScore"] = json!(1);
        b["walletRecommendation"] = Value::Null;
        b.as_object_mut().map(|o| o.remove("walletRecommendation"));
    })
    .await?;
    decision(&answer, "REQUIRE_ADDITIONAL_AUTHENTICATION", "LOW_SCORE_STEP_UP", "ACTIVE")?;
    has_contact(&answer)
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
    let answer = verify(&s, PayloadSpec::card("active").cvc(CvcChoice::Omitted), |b| {
        b["tokenRequestor"] = requestor("APPLE_PAY");
    })
    .await?;
    decision(&answer, "DECLINED", "CVC_REQUIRED", "ACTIVE")
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
    let answer = verify(&s, PayloadSpec::card("active"), |_| {}).await?;
    answer.field("/decision", "APPROVED")?;
    let body = answer.json().unwrap_or_default();
    ensure(body.get("cardholder").is_none(), "no cardholder member in an approval", format!("{body}"))
        .map_err(|f| f.with(&answer))
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
    let attempts = s.client.profile.cvc_max_attempts;
    for _ in 0..attempts {
        let answer = verify_cvc(&s, PayloadSpec::card("lockout").cvc(CvcChoice::Wrong)).await?;
        answer.status(200)?;
        let result = answer.json().unwrap_or_default()["cvcResult"].clone();
        // A card already locked by an earlier run answers ATTEMPTS_EXCEEDED from the start.
        ensure(
            result == "NO_MATCH" || result == "ATTEMPTS_EXCEEDED",
            "NO_MATCH while attempts remain",
            format!("{result}"),
        )
        .map_err(|f| f.with(&answer))?;
    }
    let answer = verify_cvc(&s, PayloadSpec::card("lockout")).await?;
    answer.ok_with(&[("/cvcResult", json!("ATTEMPTS_EXCEEDED"))])?;
    let answer = verify_call(&s, PayloadSpec::card("lockout"), |_| {});
    if s.approach == crate::case::Approach::External {
        let answer = s.send(answer).await?;
        answer.ok_with(&[("/decision", json!("DECLINED")), ("/cvcResult", json!("ATTEMPTS_EXCEEDED"))])?;
    }
    Ok(())
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
