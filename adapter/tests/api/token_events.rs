//! `POST /issuer-api/v1/tokens/events`: mirror, history, ordering, outbox, idempotency.

use serde_json::{Value, json};
use tmp_protocol::enums::TokenStatus;

use crate::helpers::app::*;
use crate::helpers::db::test_databases;

const EVENTS: &str = "/issuer-api/v1/tokens/events";

pub fn event_body(token_id: &str, card_id: &str, status: &str, occurred_at: &str) -> Value {
    json!({
        "eventId": uuid::Uuid::new_v4().to_string(),
        "tokenId": token_id,
        "cardId": card_id,
        "tsp": "VTS",
        "tokenRequestor": {"id": "40010030273", "name": "Google Pay", "wallet": "GOOGLE_PAY"},
        "status": status,
        "tokenLast4": "4321",
        "occurredAt": occurred_at,
    })
}

#[tokio::test]
async fn every_status_transition_updates_the_mirror_and_history() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        let transitions = [
            ("INACTIVE", TokenStatus::Inactive),
            ("ACTIVE", TokenStatus::Active),
            ("SUSPENDED", TokenStatus::Suspended),
            ("ACTIVE", TokenStatus::Active),
            ("DEACTIVATED", TokenStatus::Deactivated),
        ];
        for (minute, (status, expected)) in transitions.into_iter().enumerate() {
            let body = event_body("tok-1", "card-1", status, &format!("2026-03-01T10:0{minute}:00Z"));
            let ack = expect_json(app.request(EVENTS).json(&body).send().await, 200).await;
            assert_eq!(ack["accepted"], true);
            assert_eq!(ack["eventId"], body["eventId"]);
            let token = app.store.find_token("tok-1").await.unwrap().expect("mirrored");
            assert_eq!(token.status, expected, "{} after {status}", db.backend);
            assert_eq!(token.card_id, "card-1");
            assert_eq!(token.wallet, "GOOGLE_PAY");
        }
        let history = app.store.token_history("tok-1").await.unwrap();
        assert_eq!(history.len(), 5, "{}", db.backend);
        assert_eq!(history.last().unwrap().event.status, TokenStatus::Deactivated);
        // Each event is queued once for the issuer's systems, in order.
        let outbox = app.store.pending_outbox(100).await.unwrap();
        let statuses: Vec<_> =
            outbox.iter().map(|o| o.message.to_json()["status"].as_str().unwrap().to_owned()).collect();
        assert_eq!(statuses, ["INACTIVE", "ACTIVE", "SUSPENDED", "ACTIVE", "DEACTIVATED"], "{}", db.backend);
        assert!(outbox.iter().all(|o| o.event_type() == "token.status_changed" && o.ordering_key == "card-1"));
        app.stop().await;
    }
}

#[tokio::test]
async fn an_older_event_is_kept_in_history_without_overwriting_the_mirror() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        let newer = event_body("tok-2", "card-1", "SUSPENDED", "2026-03-01T12:00:00Z");
        let older = event_body("tok-2", "card-1", "ACTIVE", "2026-03-01T11:00:00Z");
        expect_json(app.request(EVENTS).json(&newer).send().await, 200).await;
        expect_json(app.request(EVENTS).json(&older).send().await, 200).await;
        let token = app.store.find_token("tok-2").await.unwrap().unwrap();
        assert_eq!(token.status, TokenStatus::Suspended, "{}", db.backend);
        assert_eq!(app.store.token_history("tok-2").await.unwrap().len(), 2);
        app.stop().await;
    }
}

#[tokio::test]
async fn a_retried_event_has_one_effect() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        let body = event_body("tok-3", "card-1", "ACTIVE", "2026-03-01T10:00:00Z");
        let first = expect_json(app.request(EVENTS).idempotency_key(Some("k-3")).json(&body).send().await, 200).await;
        let again = app.request(EVENTS).idempotency_key(Some("k-3")).json(&body).send().await;
        assert!(again.headers().contains_key("idempotent-replayed"));
        assert_eq!(expect_json(again, 200).await, first);
        // Same event id under a new key (a sender that lost its key): still one history row.
        let other_key = app.request(EVENTS).idempotency_key(Some("k-3b")).json(&body).send().await;
        expect_json(other_key, 200).await;
        assert_eq!(app.store.token_history("tok-3").await.unwrap().len(), 1, "{}", db.backend);
        assert_eq!(app.store.pending_outbox(10).await.unwrap().len(), 1, "{}", db.backend);
        let mut changed = body.clone();
        changed["status"] = json!("SUSPENDED");
        let reused = app.request(EVENTS).idempotency_key(Some("k-3")).json(&changed).send().await;
        expect_error(reused, 422, "IDEMPOTENCY_KEY_REUSED").await;
        assert_eq!(app.store.find_token("tok-3").await.unwrap().unwrap().status, TokenStatus::Active);
        app.stop().await;
    }
}

#[tokio::test]
async fn an_event_id_reused_for_another_event_is_a_conflict() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        let first = event_body("tok-a", "card-1", "ACTIVE", "2026-03-01T10:00:00Z");
        expect_json(app.request(EVENTS).json(&first).send().await, 200).await;
        let mut other = event_body("tok-b", "card-1", "ACTIVE", "2026-03-01T10:00:00Z");
        other["eventId"] = first["eventId"].clone();
        expect_error(app.request(EVENTS).json(&other).send().await, 409, "CONFLICT").await;
        assert!(app.store.find_token("tok-b").await.unwrap().is_none(), "{}", db.backend);
        // Not remembered under its idempotency key either: a corrected retry can go through.
        let mut fixed = other.clone();
        fixed["eventId"] = json!("evt-fixed");
        expect_json(app.request(EVENTS).json(&fixed).send().await, 200).await;
        assert!(app.store.find_token("tok-b").await.unwrap().is_some(), "{}", db.backend);
        // A PAN pasted into free text is refused before anything is stored.
        // So is one with more digits around it, or written with dots, in a reason or a name.
        let leaks = [
            ("reason", "replaced card 4111111111111111"),
            ("reason", "ref 4111111111111111 0000"),
            ("reason", "card 4111.1111.1111.1111"),
            ("name", "x 4111111111111111-9"),
            // Disguised: tabs, slashes, double spaces, no-break and zero-width spaces,
            // full-width digits.
            ("reason", "card 4111\t1111\t1111\t1111"),
            ("reason", "4111/1111/1111/1111"),
            ("name", "4111  1111  1111  1111"),
            ("reason", "4111\u{a0}1111\u{200b}1111\u{a0}1111"),
            ("reason", "\u{ff14}\u{ff11}\u{ff11}\u{ff11}111111111111"),
        ];
        for (field, text) in leaks {
            let mut leaky = event_body("tok-c", "card-1", "ACTIVE", "2026-03-01T10:00:00Z");
            match field {
                "reason" => leaky["reason"] = json!(text),
                _ => leaky["tokenRequestor"]["name"] = json!(text),
            }
            let mut body = expect_error(app.request(EVENTS).json(&leaky).send().await, 422, "VALIDATION_FAILED").await;
            // The correlation id is a random UUID, which may hold `4111` by chance.
            body["error"]["correlationId"] = json!(null);
            assert!(!body.to_string().contains("4111"), "{body}");
            assert!(app.store.find_token("tok-c").await.unwrap().is_none(), "{}: {text}", db.backend);
        }
        assert!(
            app.store.pending_outbox(100).await.unwrap().iter().all(|o| !o
                .message
                .to_json()
                .to_string()
                .contains("4111"))
        );
        app.stop().await;
    }
}
