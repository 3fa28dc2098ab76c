//! The catalogue: every case of the contract, by area. `docs/conformance.md` lists the same
//! cases (a test keeps the two in step).

mod card_checks;
mod forwarding;
mod journeys;
mod messages;
mod ops;
mod security;

pub use forwarding::ingest_call;

use serde_json::{Value, json};
use tmp_protocol::issuer_api::{NOTIFICATIONS_PATH, TOKEN_EVENTS_PATH, VERIFY_CARD_PATH, VERIFY_CVC_PATH};

use crate::case::{Approach, Case, Failure};
use crate::client::{Answer, Call, payload_slot};
use crate::payload::PayloadSpec;
use crate::session::Session;

/// Every case, in the order a run takes them.
pub fn all() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(card_checks::cases());
    cases.extend(messages::cases());
    cases.extend(security::cases());
    cases.extend(forwarding::cases());
    cases.extend(journeys::cases());
    cases.extend(ops::cases());
    cases
}

/// The cases for `approach` whose id matches `pattern` (`*` matches any run of characters;
/// several patterns separated by commas).
pub fn select(approach: Approach, pattern: Option<&str>) -> Vec<Case> {
    all().into_iter().filter(|c| c.approaches.contains(&approach)).filter(|c| matches(pattern, c.id)).collect()
}

pub fn matches(pattern: Option<&str>, id: &str) -> bool {
    let Some(pattern) = pattern else { return true };
    pattern.split(',').map(str::trim).filter(|p| !p.is_empty()).any(|p| glob(&p.to_ascii_uppercase(), id))
}

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else { return false };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob(rest, &tail[i..]))
        }
    }
}

/// The catalogue as the Markdown table of `docs/conformance.md`.
pub fn markdown() -> String {
    let mut out = String::from("| Id | Area | Approaches | Needs | Requirement |\n|---|---|---|---|---|\n");
    for case in all() {
        let approaches: Vec<_> = case.approaches.iter().map(|a| a.as_str()).collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | **{}.** {} |\n",
            case.id,
            case.area.as_str(),
            approaches.join(", "),
            case.needs.as_str(),
            case.title,
            case.requirement.replace('|', "\\|")
        ));
    }
    out
}

// ---- Request builders shared by the cases ----------------------------------------------

/// The token requestor the cases send for a wallet: `{id, name, wallet}`.
pub fn requestor(wallet: &str) -> Value {
    let name = match wallet {
        "APPLE_PAY" => "Apple Pay",
        "GOOGLE_PAY" => "Google Pay",
        _ => "Merchant wallet",
    };
    json!({"id": requestor_id(wallet), "name": name, "wallet": wallet})
}

/// The token requestor id the cases send for a wallet (the MDES ids of the wallets).
pub fn requestor_id(wallet: &str) -> &'static str {
    match wallet {
        "APPLE_PAY" => "50110030273",
        "GOOGLE_PAY" => "50120834693",
        _ => "50139059239",
    }
}

/// A verify-card request: Google Pay, manual, scores 5 (a trusted wallet and device), so that
/// only what a case changes decides.
pub fn verify_body(session: &Session) -> Value {
    json!({
        "tokenizationId": session.id("tkz"),
        "tsp": "MDES",
        "tokenRequestor": requestor("GOOGLE_PAY"),
        "provisioningMethod": "MANUAL",
        "walletRecommendation": "APPROVED",
        "walletScore": 5,
        "deviceScore": 5,
        "encryptedPayload": payload_slot(0),
    })
}

pub fn verify_call(session: &Session, spec: PayloadSpec, tweak: impl FnOnce(&mut Value)) -> Call {
    let mut body = verify_body(session);
    tweak(&mut body);
    session.post(VERIFY_CARD_PATH, body).payload(spec)
}

pub async fn verify(session: &Session, spec: PayloadSpec, tweak: impl FnOnce(&mut Value)) -> Result<Answer, Failure> {
    session.send(verify_call(session, spec, tweak)).await
}

pub fn verify_cvc_call(session: &Session, spec: PayloadSpec) -> Call {
    session
        .post(VERIFY_CVC_PATH, json!({"tokenRequestor": requestor("APPLE_PAY"), "encryptedPayload": payload_slot(0)}))
        .payload(spec)
}

pub async fn verify_cvc(session: &Session, spec: PayloadSpec) -> Result<Answer, Failure> {
    session.send(verify_cvc_call(session, spec)).await
}

/// A token event for a new token.
pub fn token_event_body(session: &Session, status: &str, previous: Option<&str>) -> Value {
    let mut body = json!({
        "eventId": session.id("evt"),
        "tokenId": session.id("DWSPMC0000"),
        // A card of its own unless the profile names one: tokens pile up on the card they
        // name, and a card that reaches its token limit would decline the verification cases
        // on the next run. The contract requires an Issuer API to accept token events of card
        // ids it does not know.
        "cardId": session.client.profile.token_event_card_id.clone().unwrap_or_else(|| session.id("card-tkn")),
        "tsp": "MDES",
        "tokenRequestor": requestor("GOOGLE_PAY"),
        "status": status,
        "tokenLast4": "4321",
        "occurredAt": now_rfc3339(),
    });
    if let Some(previous) = previous {
        body["previousStatus"] = json!(previous);
    }
    body
}

pub fn token_event_call(session: &Session, body: Value) -> Call {
    session.post(TOKEN_EVENTS_PATH, body)
}

pub fn notification_body(session: &Session, kind: &str) -> Value {
    let mut body = json!({
        "notificationId": session.id("ntf"),
        "type": kind,
        "cardId": card_id(session, "active"),
        "tokenId": session.id("DWSPMC0000"),
        "tokenRequestor": requestor("GOOGLE_PAY"),
        "channel": "SMS",
        "occurredAt": now_rfc3339(),
    });
    if kind == "ACTIVATION_CODE_DELIVERY" {
        body["encryptedPayload"] = payload_slot(0);
        body["expiresAt"] = json!(rfc3339(time::OffsetDateTime::now_utc() + time::Duration::minutes(10)));
    }
    body
}

pub fn notification_call(session: &Session, body: Value) -> Call {
    let activation = body["encryptedPayload"] == payload_slot(0);
    let call = session.post(NOTIFICATIONS_PATH, body);
    if activation { call.payload(PayloadSpec::otp("482913")) } else { call }
}

/// The target's id of a profile card (a made-up one when the profile does not give it).
pub fn card_id(session: &Session, name: &str) -> String {
    session.client.profile.cards.get(name).and_then(|c| c.card_id.clone()).unwrap_or_else(|| format!("card-{name}"))
}

pub fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

pub fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).expect("a UTC time formats")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_patterns_select() {
        let cases = all();
        let mut ids: Vec<_> = cases.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), cases.len(), "duplicate case ids");
        assert!(matches(Some("iss-verify-*"), "ISS-VERIFY-003"));
        assert!(matches(Some("FWD-*,ISS-CVC-001"), "ISS-CVC-001"));
        assert!(!matches(Some("ISS-CVC-00"), "ISS-CVC-001"));
        assert!(matches(Some("*-003"), "JRN-003"));
    }
}
