//! Forwarding, against a tmp-adapter whose TMP / DataCore is the mock: processor events in,
//! the documented TMP API or Lifecycle API calls out, in order, once, through outages and
//! restarts.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{now_rfc3339, verify_cvc_call};
use crate::case;
use crate::case::{Approach, BOTH, Case, Expect, Failure, Outcome, ensure};
use crate::client::{Answer, Call, Signer, Signing, payload_slot};
use crate::harness::Capability;
use crate::payload::{CvcChoice, PayloadSpec, Plain};
use crate::session::{Session, eventually};

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "FWD-001",
            Forwarding,
            BOTH,
            Mock,
            "card.issued reaches the card's system of record",
            "external: the Issuer API knows the new card at once (verify-cvc finds it); datacore: POST /lifecycle/v1/cards loads it into DataCore.",
            &["R-INGEST-1", "R-FWD-1"],
            fwd_issued
        ),
        case!(
            "FWD-002",
            Forwarding,
            BOTH,
            Mock,
            "A block is forwarded",
            "card.status_changed BLOCKED → external: POST /tmp-api/v1/cards/{id}/status {status: BLOCKED}; datacore: PATCH /lifecycle/v1/cards/{id} {status: BLOCKED}.",
            &["R-FWD-2"],
            fwd_block
        ),
        case!(
            "FWD-003",
            Forwarding,
            BOTH,
            Mock,
            "An unblock is forwarded",
            "card.status_changed ACTIVE after a block → the same call with status ACTIVE.",
            &["R-FWD-2"],
            fwd_unblock
        ),
        case!(
            "FWD-004",
            Forwarding,
            BOTH,
            Mock,
            "A replacement is forwarded",
            "card.replaced → external: POST /tmp-api/v1/cards/{id}/replace {newCardId}; datacore: POST /lifecycle/v1/cards/{id}/replace; the old card is marked replaced by the new one.",
            &["R-FWD-2"],
            fwd_replace
        ),
        case!(
            "FWD-005",
            Forwarding,
            BOTH,
            Mock,
            "A renewal is forwarded",
            "card.renewed → external: POST /tmp-api/v1/cards/{id}/expiry; datacore: PATCH /lifecycle/v1/cards/{id} with the new expiry as JWE.",
            &["R-FWD-2"],
            fwd_renew
        ),
        case!(
            "FWD-006",
            Forwarding,
            BOTH,
            Mock,
            "A closure is forwarded",
            "card.closed → external: POST /tmp-api/v1/cards/{id}/status {status: CLOSED}; datacore: DELETE /lifecycle/v1/cards/{id}.",
            &["R-FWD-2"],
            fwd_close
        ),
        case!(
            "FWD-007",
            Forwarding,
            BOTH,
            Mock,
            "A cardholder update goes where it belongs",
            "cardholder.updated → datacore: PATCH /lifecycle/v1/cards/{id} {cardholder}; external: nothing is sent to TMP (the Issuer API answers with the new contact).",
            &["R-FIELD-3", "R-FWD-3"],
            fwd_cardholder
        ),
        case!(
            "FWD-008",
            Forwarding,
            BOTH,
            Mock,
            "One card's events arrive in order",
            "Twelve alternating block / unblock events of one card arrive in the order they were committed, and the card ends in the last state.",
            &["R-FWD-4"],
            fwd_order
        ),
        case!(
            "FWD-009",
            Forwarding,
            BOTH,
            Mock,
            "A re-sent event is delivered once",
            "The same processor event posted twice is acknowledged as a duplicate and delivered once.",
            &["R-INGEST-2", "R-FWD-5"],
            fwd_duplicate
        ),
        case!(
            "FWD-010",
            Forwarding,
            BOTH,
            Mock,
            "An event id reused with another body is refused",
            "The same event id with another body is 422 IDEMPOTENCY_KEY_REUSED.",
            &["R-INGEST-2"],
            fwd_id_reused
        ),
        case!(
            "FWD-011",
            Forwarding,
            BOTH,
            Mock,
            "Delivery survives a TMP outage",
            "While the destination answers 503, the event is retried under the same idempotency key and delivered once it recovers.",
            &["R-FWD-5"],
            fwd_outage
        ),
        case!(
            "FWD-012",
            Forwarding,
            BOTH,
            Mock,
            "Delivery survives dropped connections",
            "Connections dropped mid-request are retried; the event is delivered once in effect.",
            &["R-FWD-5"],
            fwd_dropped
        ),
        case!(
            "FWD-013",
            Forwarding,
            BOTH,
            Restart,
            "Delivery survives an adapter restart",
            "An event acknowledged (202) while the destination is down is delivered after the adapter is stopped and started again.",
            &["R-FWD-6"],
            fwd_restart
        ),
        case!(
            "FWD-014",
            Forwarding,
            BOTH,
            Mock,
            "Unsigned processor events change nothing",
            "POST /processor/v1/events without a signature is 401 MISSING_SIGNATURE and the card is not registered.",
            &["R-INGEST-3"],
            fwd_unsigned
        ),
        case!(
            "FWD-015",
            Forwarding,
            BOTH,
            Mock,
            "A batch is committed and forwarded whole",
            "A batch of events for two cards answers 202 {accepted: 3} and every event is forwarded.",
            &["R-INGEST-1", "R-FWD-1"],
            fwd_batch
        ),
        case!(
            "FWD-016",
            Forwarding,
            BOTH,
            Mock,
            "A plaintext card number in a processor event is refused",
            "A processor event carrying a PAN outside encryptedPayload — in a reason, a cardholder's phone, or a member of its own — is 422 VALIDATION_FAILED and registers nothing.",
            &["R-INGEST-4"],
            fwd_plaintext_pan
        ),
        case!(
            "FWD-017",
            Forwarding,
            BOTH,
            Mock,
            "A product or card-art change is forwarded as sent",
            "card.metadata_updated → external: POST /tmp-api/v1/cards/{id}/metadata; datacore: PATCH /lifecycle/v1/cards/{id} {metadata}; the members as the processor sent them; one with nothing to change is 422 VALIDATION_FAILED.",
            &["R-FWD-9"],
            fwd_metadata
        ),
    ]
}

// ---- Helpers ----------------------------------------------------------------------------

pub fn ingest_call(s: &Session, body: Value) -> Call {
    s.post(tmp_protocol::processor::EVENTS_PATH, body).signer(Some(Signer::Processor)).idempotency_key(None)
}

pub async fn ingest(s: &Session, body: Value, payloads: Vec<PayloadSpec>) -> Result<Answer, Failure> {
    let mut call = ingest_call(s, body);
    for payload in payloads {
        call = call.payload(payload);
    }
    s.send(call).await
}

pub fn event(s: &Session, card_id: &str, kind: &str, data: Value) -> Value {
    json!({"id": s.id("pev"), "cardId": card_id, "type": kind, "occurredAt": now_rfc3339(), "data": data})
}

/// A made-up card, issued through ingest; in datacore, waits until DataCore holds it.
pub async fn issue_card(s: &Session, prefix: &str) -> Result<String, Failure> {
    let card_id = s.id(prefix);
    s.client.generate_card(&card_id, "12/30")?;
    let data = json!({"encryptedPayload": payload_slot(0), "productCategory": "CONSUMER_DEBIT",
                      "cardholder": {"phone": "+48500100200", "email": "holder@example.com"}});
    let answer = ingest(s, event(s, &card_id, "card.issued", data), vec![PayloadSpec::card_data(&card_id)]).await?;
    answer.status(202)?;
    if s.approach == Approach::Datacore {
        let mock = s.mock()?;
        eventually(s.delivery_within, || async {
            let card = mock.card(&card_id).await?;
            ensure(card.is_some_and(|c| c["inDatacore"] == true), "the card in DataCore", "not there")
        })
        .await?;
    }
    Ok(card_id)
}

/// Waits for the mock to have received, for `card_id`, `method` on a path ending in `suffix`,
/// answered 2xx; returns every such request (oldest first).
pub async fn received(s: &Session, card_id: &str, method: &str, suffix: &str) -> Result<Vec<Value>, Failure> {
    received_within(s, s.delivery_within, card_id, method, suffix).await
}

/// [`received`], waiting up to `within` (a delivery through failed attempts).
async fn received_within(
    s: &Session,
    within: std::time::Duration,
    card_id: &str,
    method: &str,
    suffix: &str,
) -> Result<Vec<Value>, Failure> {
    let mock = s.mock()?;
    eventually(within, || async {
        let found = delivered(mock, card_id, method, suffix).await?;
        ensure(!found.is_empty(), format!("{method} …{suffix} delivered to the mock"), "nothing delivered")
    })
    .await?;
    Ok(delivered(mock, card_id, method, suffix).await?)
}

async fn delivered(
    mock: &crate::mock_api::MockApi,
    card_id: &str,
    method: &str,
    suffix: &str,
) -> anyhow::Result<Vec<Value>> {
    Ok(mock
        .received_for(card_id)
        .await?
        .into_iter()
        .filter(|r| r["method"] == method && r["path"].as_str().is_some_and(|p| p.ends_with(suffix)))
        .filter(|r| r["status"].as_u64().is_some_and(|s| (200..300).contains(&s)))
        .collect())
}

/// The status call each approach makes for a block / unblock / close of `card_id`.
fn status_route(s: &Session, card_id: &str) -> (&'static str, String) {
    match s.approach {
        Approach::External => ("POST", format!("/tmp-api/v1/cards/{card_id}/status")),
        Approach::Datacore => ("PATCH", format!("/lifecycle/v1/cards/{card_id}")),
    }
}

fn fault_route(s: &Session) -> &'static str {
    match s.approach {
        Approach::External => "POST /tmp-api/v1/cards/{cardId}/status",
        Approach::Datacore => "PATCH /lifecycle/v1/cards/{cardId}",
    }
}

async fn change_status(s: &Session, card_id: &str, status: &str) -> Result<String, Failure> {
    let body = event(s, card_id, "card.status_changed", json!({"status": status, "reason": "CONFORMANCE"}));
    let id = body["id"].as_str().unwrap_or_default().to_owned();
    ingest(s, body, vec![]).await?.status(202)?;
    Ok(id)
}

// ---- Cases ------------------------------------------------------------------------------

async fn fwd_issued(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "fwd-issued").await?;
    match s.approach {
        Approach::External => {
            let call = verify_cvc_call(&s, PayloadSpec::card(&card_id).cvc(CvcChoice::Wrong));
            let answer = s.send(call).await?;
            answer.ok_with(&[("/cardStatus", json!("ACTIVE")), ("/cardId", json!(card_id))])
        }
        Approach::Datacore => {
            let posted = received(&s, &card_id, "POST", "/lifecycle/v1/cards").await?;
            ensure(posted.len() == 1, "one POST /lifecycle/v1/cards", format!("{}", posted.len()))
        }
    }
}

async fn fwd_block(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "fwd-block").await?;
    change_status(&s, &card_id, "BLOCKED").await?;
    let (method, path) = status_route(&s, &card_id);
    let calls = received(&s, &card_id, method, &path).await?;
    let body = &calls[0]["body"];
    ensure(body["status"] == "BLOCKED", "status BLOCKED in the forwarded call", body.to_string())?;
    if s.approach == Approach::Datacore {
        let card = s.mock()?.card(&card_id).await?.unwrap_or_default();
        ensure(card["status"] == "BLOCKED", "the card BLOCKED in DataCore", card.to_string())?;
    }
    Ok(())
}

async fn fwd_unblock(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "fwd-unblock").await?;
    change_status(&s, &card_id, "BLOCKED").await?;
    change_status(&s, &card_id, "ACTIVE").await?;
    let (method, path) = status_route(&s, &card_id);
    let mock = s.mock()?;
    eventually(s.delivery_within, || async {
        let calls = delivered(mock, &card_id, method, &path).await?;
        let statuses: Vec<_> = calls.iter().map(|c| c["body"]["status"].clone()).collect();
        ensure(statuses == [json!("BLOCKED"), json!("ACTIVE")], "BLOCKED then ACTIVE", format!("{statuses:?}"))
    })
    .await
}

async fn fwd_replace(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "fwd-replace").await?;
    let new_id = s.id("fwd-replacement");
    s.client.generate_card(&new_id, "12/31")?;
    let body = event(&s, &card_id, "card.replaced", json!({"newCardId": new_id, "encryptedPayload": payload_slot(0)}));
    ingest(&s, body, vec![PayloadSpec::card_data(&new_id)]).await?.status(202)?;
    let path = match s.approach {
        Approach::External => format!("/tmp-api/v1/cards/{card_id}/replace"),
        Approach::Datacore => format!("/lifecycle/v1/cards/{card_id}/replace"),
    };
    let calls = received(&s, &card_id, "POST", &path).await?;
    ensure(calls[0]["body"]["newCardId"] == new_id.as_str(), "newCardId in the call", calls[0]["body"].to_string())?;
    if s.approach == Approach::Datacore {
        let card = s.mock()?.card(&card_id).await?.unwrap_or_default();
        ensure(card["replacedBy"] == new_id.as_str(), "the old card replaced by the new one", card.to_string())?;
    }
    Ok(())
}

async fn fwd_renew(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "fwd-renew").await?;
    let body = event(&s, &card_id, "card.renewed", json!({"encryptedPayload": payload_slot(0)}));
    let renewal = PayloadSpec { plain: Plain::Expiry("12/33".into()), key: crate::payload::KeyChoice::Published };
    ingest(&s, body, vec![renewal]).await?.status(202)?;
    let (method, path) = match s.approach {
        Approach::External => ("POST", format!("/tmp-api/v1/cards/{card_id}/expiry")),
        Approach::Datacore => ("PATCH", format!("/lifecycle/v1/cards/{card_id}")),
    };
    let calls = received(&s, &card_id, method, &path).await?;
    ensure(calls[0]["body"].get("encryptedPayload").is_some(), "the new expiry as JWE", calls[0]["body"].to_string())
}

async fn fwd_close(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "fwd-close").await?;
    ingest(&s, event(&s, &card_id, "card.closed", json!({"reason": "CLOSED_BY_HOLDER"})), vec![]).await?.status(202)?;
    match s.approach {
        Approach::External => {
            let calls = received(&s, &card_id, "POST", &format!("/tmp-api/v1/cards/{card_id}/status")).await?;
            ensure(calls[0]["body"]["status"] == "CLOSED", "status CLOSED", calls[0]["body"].to_string())
        }
        Approach::Datacore => {
            received(&s, &card_id, "DELETE", &format!("/lifecycle/v1/cards/{card_id}")).await.map(drop)
        }
    }
}

async fn fwd_cardholder(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "fwd-holder").await?;
    let contact = json!({"phone": "+48500999888"});
    ingest(&s, event(&s, &card_id, "cardholder.updated", contact), vec![]).await?.status(202)?;
    match s.approach {
        Approach::Datacore => {
            let calls = received(&s, &card_id, "PATCH", &format!("/lifecycle/v1/cards/{card_id}")).await?;
            ensure(
                calls[0]["body"].get("cardholder").is_some(),
                "the cardholder in the PATCH",
                calls[0]["body"].to_string(),
            )
        }
        Approach::External => {
            // A later event of the same card arrives after it (per-card order): once the block is
            // there, anything the update sent would be too.
            change_status(&s, &card_id, "BLOCKED").await?;
            let (method, path) = status_route(&s, &card_id);
            received(&s, &card_id, method, &path).await?;
            let all = s.mock()?.received_for(&card_id).await?;
            ensure(all.len() == 1, "only the block sent to TMP", format!("{} requests: {all:?}", all.len()))
        }
    }
}

async fn fwd_metadata(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "fwd-meta").await?;
    let empty = ingest(&s, event(&s, &card_id, "card.metadata_updated", json!({})), vec![]).await?;
    empty.error(422, "VALIDATION_FAILED")?;
    let metadata = json!({"productId": "gold-2026", "productName": "Gold", "cardArtId": "art-gold"});
    ingest(&s, event(&s, &card_id, "card.metadata_updated", metadata.clone()), vec![]).await?.status(202)?;
    let (method, path, sent) = match s.approach {
        Approach::External => ("POST", format!("/tmp-api/v1/cards/{card_id}/metadata"), metadata),
        Approach::Datacore => ("PATCH", format!("/lifecycle/v1/cards/{card_id}"), json!({"metadata": metadata})),
    };
    let calls = received(&s, &card_id, method, &path).await?;
    let body = &calls.last().map(|c| c["body"].clone()).unwrap_or_default();
    ensure(body == &sent, sent.to_string(), body.to_string())
}

async fn fwd_order(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "fwd-order").await?;
    let mut expected = Vec::new();
    for i in 0..12 {
        let status = if i % 2 == 0 { "BLOCKED" } else { "ACTIVE" };
        change_status(&s, &card_id, status).await?;
        expected.push(json!(status));
    }
    let (method, path) = status_route(&s, &card_id);
    let mock = s.mock()?;
    eventually(s.delivery_within, || async {
        let calls = delivered(mock, &card_id, method, &path).await?;
        let statuses: Vec<_> = calls.iter().map(|c| c["body"]["status"].clone()).collect();
        ensure(statuses == expected, format!("{expected:?}"), format!("{statuses:?}"))
    })
    .await?;
    if s.approach == Approach::Datacore {
        let card = mock.card(&card_id).await?.unwrap_or_default();
        ensure(card["status"] == "ACTIVE", "the card ACTIVE, as last sent", card.to_string())?;
    }
    Ok(())
}

async fn fwd_duplicate(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "fwd-dup").await?;
    let body = event(&s, &card_id, "card.status_changed", json!({"status": "BLOCKED"}));
    let first = ingest(&s, body.clone(), vec![]).await?;
    first.status(202)?;
    first.field("/duplicates", 0)?;
    let again = ingest(&s, body, vec![]).await?;
    again.status(202)?;
    again.field("/duplicates", 1)?;
    // Then a later event: once it is delivered, any second delivery of the first would be too.
    change_status(&s, &card_id, "ACTIVE").await?;
    let (method, path) = status_route(&s, &card_id);
    let mock = s.mock()?;
    eventually(s.delivery_within, || async {
        let calls = delivered(mock, &card_id, method, &path).await?;
        let statuses: Vec<_> = calls.iter().map(|c| c["body"]["status"].clone()).collect();
        ensure(statuses == [json!("BLOCKED"), json!("ACTIVE")], "BLOCKED once, then ACTIVE", format!("{statuses:?}"))
    })
    .await
}

async fn fwd_id_reused(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "fwd-reuse").await?;
    let body = event(&s, &card_id, "card.status_changed", json!({"status": "BLOCKED"}));
    ingest(&s, body.clone(), vec![]).await?.status(202)?;
    let mut other = body;
    other["data"]["status"] = json!("CLOSED");
    ingest(&s, other, vec![]).await?.error(422, "IDEMPOTENCY_KEY_REUSED")
}

/// Injects `rule` on the status route, sends a block, and checks it arrives once after the
/// failed attempts, every attempt under the same idempotency key.
async fn through_faults(s: &Session, rule: Value) -> Outcome {
    let failures = rule["times"].as_u64().unwrap_or(1) as usize;
    let within = s.delivery_through(failures)?;
    let card_id = issue_card(s, "fwd-fault").await?;
    let mock = s.mock()?;
    let mut rule = rule;
    rule["route"] = json!(fault_route(s));
    let fault = mock.add_fault(rule).await?;
    let result = async {
        change_status(s, &card_id, "BLOCKED").await?;
        let (method, path) = status_route(s, &card_id);
        received_within(s, within, &card_id, method, &path).await?;
        let attempts: Vec<Value> = mock
            .received_for(&card_id)
            .await?
            .into_iter()
            .filter(|r| r["method"] == method && r["path"] == path.as_str())
            .collect();
        let failed = attempts.iter().filter(|r| r["faultId"].is_u64()).count();
        let succeeded =
            attempts.iter().filter(|r| r["status"].as_u64().is_some_and(|c| (200..300).contains(&c))).count();
        let keys: std::collections::BTreeSet<_> = attempts.iter().map(|r| r["idempotencyKey"].to_string()).collect();
        s.note(format!("{failed} failed attempt(s), then {succeeded} delivery"));
        ensure(failed >= 2, "at least two failed attempts before the delivery", format!("{failed}"))?;
        ensure(succeeded == 1, "exactly one delivery", format!("{succeeded}"))?;
        ensure(keys.len() == 1, "one idempotency key across attempts", format!("{keys:?}"))
    }
    .await;
    mock.remove_fault(fault).await.ok();
    result
}

async fn fwd_outage(s: Arc<Session>) -> Outcome {
    through_faults(&s, json!({"error_status": 503, "times": 3})).await
}

async fn fwd_dropped(s: Arc<Session>) -> Outcome {
    through_faults(&s, json!({"drop_connection": true, "times": 2})).await
}

async fn fwd_restart(s: Arc<Session>) -> Outcome {
    let harness = s.harness(Capability::Restart)?.clone();
    // The attempts that fail before the stop, and the retry after the start.
    let within = s.delivery_through(2)?;
    let card_id = issue_card(&s, "fwd-restart").await?;
    let mock = s.mock()?;
    let fault = mock.add_fault(json!({"route": fault_route(&s), "error_status": 503})).await?;
    let result = async {
        change_status(&s, &card_id, "BLOCKED").await?;
        // The adapter has tried (and failed) at least once before it goes down.
        eventually(s.delivery_within, || async {
            let n = mock.received_for(&card_id).await?.iter().filter(|r| r["faultId"].is_u64()).count();
            ensure(n >= 1, "a failed attempt", "none yet")
        })
        .await?;
        harness.stop_target().await?;
        mock.remove_fault(fault).await?;
        harness.start_target().await?;
        let (method, path) = status_route(&s, &card_id);
        let calls = received_within(&s, within, &card_id, method, &path).await?;
        ensure(calls.len() == 1, "one delivery after the restart", format!("{}", calls.len()))
    }
    .await;
    mock.remove_fault(fault).await.ok();
    harness.start_target().await?;
    result
}

async fn fwd_unsigned(s: Arc<Session>) -> Outcome {
    let card_id = s.id("fwd-unsigned");
    s.client.generate_card(&card_id, "12/30")?;
    let body = event(&s, &card_id, "card.issued", json!({"encryptedPayload": payload_slot(0)}));
    let call = ingest_call(&s, body).payload(PayloadSpec::card_data(&card_id)).signing(Signing::Missing);
    s.send(call).await?.error(401, "MISSING_SIGNATURE")?;
    let answer = s.send(verify_cvc_call(&s, PayloadSpec::card(&card_id).cvc(CvcChoice::Wrong))).await?;
    answer.ok_with(&[("/cardStatus", json!("NOT_FOUND"))])
}

async fn fwd_plaintext_pan(s: Arc<Session>) -> Outcome {
    let card_id = s.id("fwd-plain");
    let card = s.client.generate_card(&card_id, "12/30")?;
    let pan = card.pan.expose().to_owned();
    let spaced: String =
        pan.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ");
    let issued = json!({"encryptedPayload": payload_slot(0), "pan": pan});
    let probes = [
        ("card.issued", issued),
        ("card.status_changed", json!({"status": "BLOCKED", "reason": format!("lost card {spaced}")})),
        ("cardholder.updated", json!({"phone": spaced})),
    ];
    for (kind, data) in probes {
        let answer = ingest(&s, event(&s, &card_id, kind, data), vec![PayloadSpec::card_data(&card_id)]).await?;
        answer.error(422, "VALIDATION_FAILED")?;
    }
    // Nothing was registered: the card is unknown.
    let answer = s.send(verify_cvc_call(&s, PayloadSpec::card(&card_id).cvc(CvcChoice::Wrong))).await?;
    answer.ok_with(&[("/cardStatus", json!("NOT_FOUND"))])
}

async fn fwd_batch(s: Arc<Session>) -> Outcome {
    let (a, b) = (s.id("fwd-batch-a"), s.id("fwd-batch-b"));
    s.client.generate_card(&a, "12/30")?;
    s.client.generate_card(&b, "12/30")?;
    let issued =
        |card: &str, slot: usize| event(&s, card, "card.issued", json!({"encryptedPayload": payload_slot(slot)}));
    let batch =
        json!([issued(&a, 0), issued(&b, 1), event(&s, &a, "card.status_changed", json!({"status": "BLOCKED"}))]);
    let answer = ingest(&s, batch, vec![PayloadSpec::card_data(&a), PayloadSpec::card_data(&b)]).await?;
    answer.status(202)?;
    answer.field("/accepted", 3)?;
    let (method, path) = status_route(&s, &a);
    received(&s, &a, method, &path).await?;
    for card in [&a, &b] {
        let found = s.send(verify_cvc_call(&s, PayloadSpec::card(card).cvc(CvcChoice::Wrong))).await?;
        found.status(200)?;
        let status = found.json().unwrap_or_default()["cardStatus"].clone();
        ensure(status == "ACTIVE" || status == "BLOCKED", "the card registered", status.to_string())
            .map_err(|f| f.with(&found))?;
    }
    Ok(())
}
