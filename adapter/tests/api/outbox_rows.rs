//! Outbox rows written by the version before the outbox had types (`fixtures/outbox-v1.json`:
//! every kind of row it wrote, captured from it, with the sealed card data's plaintext beside
//! the row) are decoded and delivered by this version exactly as that version delivered them,
//! on both databases.

use std::time::Duration;

use serde_json::{Value, json};
use tmp_adapter::config::Approach;
use tmp_adapter::crypto::aad;
use tmp_adapter::keys::KeyMaterial;
use tmp_adapter::outbox::OutboxMessage;
use tmp_adapter::store;

use crate::forwarding::{code_sink, forwarding_settings};
use crate::helpers::app::*;
use crate::helpers::db::test_databases;
use crate::helpers::receiver::Receiver;

const FIXTURE: &str = include_str!("fixtures/outbox-v1.json");
const OTP: &str = "493817";
/// Earlier than any test's "now" (due at once) and fixed width (SQLite compares the text).
const CREATED_AT: &str = "2026-03-01T10:00:00.000000Z";

/// One row as the fixture holds it, and the id it is inserted under.
struct FixtureRow {
    id: uuid::Uuid,
    destination: String,
    ordering_key: String,
    event_type: String,
    payload: Value,
    not_after: Option<String>,
}

/// The fixture's rows, their sealed card data sealed again under this run's data key (the
/// fixture holds the plaintext — well-known test PANs — not the capturing run's key).
fn fixture_rows(keys: &KeyMaterial) -> Vec<FixtureRow> {
    let rows: Vec<Value> = serde_json::from_str(FIXTURE).expect("the fixture is JSON");
    rows.into_iter()
        .map(|row| {
            let id = uuid::Uuid::new_v4();
            let mut payload = row["payload"].clone();
            if payload.get("sealed").is_some() {
                let plaintext = serde_json::to_vec(&row["sealedPlaintext"]).unwrap();
                let sealed = keys.data_keys.current().encrypt(&plaintext, &aad::outbox_row(&id));
                use base64::Engine;
                let data = base64::engine::general_purpose::STANDARD.encode(&sealed.bytes);
                payload["sealed"] = json!({"keyId": sealed.key_id, "data": data});
            }
            FixtureRow {
                id,
                destination: row["destination"].as_str().unwrap().to_owned(),
                ordering_key: row["orderingKey"].as_str().unwrap().to_owned(),
                event_type: row["eventType"].as_str().unwrap().to_owned(),
                payload,
                not_after: row["notAfter"].as_str().map(|t| t.replace('Z', ".000000Z")),
            }
        })
        .collect()
}

/// The fixture's rows inserted the way the earlier version's statements wrote them, and the
/// activation code's notification row beside them.
macro_rules! insert_old_rows {
    ($pool:expr, $rows:expr, $otp:expr) => {{
        for row in $rows {
            // Timestamps as literals: the same text is a TIMESTAMPTZ to PostgreSQL and the
            // store's fixed-width form to SQLite.
            let sql = format!(
                "INSERT INTO outbox (id, destination, ordering_key, event_type, payload, created_at, not_after, \
                 next_attempt_at, correlation_id) VALUES ($1, $2, $3, $4, $5, '{CREATED_AT}', {}, '{CREATED_AT}', NULL)",
                row.not_after.as_deref().map(|t| format!("'{t}'")).unwrap_or("NULL".into())
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(row.id)
                .bind(&row.destination)
                .bind(&row.ordering_key)
                .bind(&row.event_type)
                .bind(sqlx::types::Json(&row.payload))
                .execute(&$pool)
                .await
                .expect("an old row inserts");
        }
        let (key_id, ciphertext) = $otp;
        sqlx::query(
            "INSERT INTO notifications (notification_id, notification_type, card_id, token_id, \
             token_requestor_id, channel, otp_ciphertext, otp_key_id, expires_at, occurred_at, received_at) \
             VALUES ('ntf-fx-0', 'ACTIVATION_CODE_DELIVERY', 'card-active', 'tok-fx-1', '50110030273', 'SMS', \
             $1, $2, '2099-01-01T00:00:00.000000Z', '2026-03-01T10:00:00.000000Z', '2026-03-01T10:00:00.000000Z')",
        )
        .bind(ciphertext)
        .bind(key_id)
        .execute(&$pool)
        .await
        .expect("the notification row inserts");
    }};
}

#[tokio::test]
async fn rows_written_before_the_outbox_had_types_are_delivered_as_before() {
    for db in test_databases().await {
        let b = db.backend;
        // Migrate and fill the database before the relay starts.
        let setup = store::connect(&db.url, 2).await.unwrap();
        setup.migrate().await.unwrap();
        let receiver = Receiver::start().await;
        let sink = Receiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyMaterial::load(&test_settings(&db)).expect("the test keys");
        let rows = fixture_rows(&keys);
        let otp = keys.data_keys.current().encrypt(OTP.as_bytes(), &aad::otp("ntf-fx-0"));
        if b == "sqlite" {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            insert_old_rows!(pool, &rows, (otp.key_id.clone(), otp.bytes.clone()));
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            insert_old_rows!(pool, &rows, (otp.key_id.clone(), otp.bytes.clone()));
            pool.close().await;
        }

        // Every old row decodes into a typed message whose JSON is the stored JSON.
        let stored = setup.list_outbox(&store::OutboxFilter { limit: 100, ..Default::default() }).await.unwrap();
        assert_eq!(stored.len(), rows.len(), "{b}");
        for row in &rows {
            let entry = stored.iter().find(|e| e.record.id == row.id).expect("listed");
            assert_eq!(entry.record.destination.as_str(), row.destination, "{b}");
            assert_eq!(entry.record.event_type(), row.event_type, "{b}");
            assert_eq!(entry.record.message.to_json(), row.payload, "{b}: {} re-encodes as stored", row.event_type);
            let again = OutboxMessage::from_stored(&row.event_type, &row.payload.to_string()).unwrap();
            assert_eq!(again, entry.record.message);
        }

        let app = TestApp::spawn_with(&db, |s| {
            forwarding_settings(s, Approach::External, &receiver);
            s.sinks = vec![code_sink(&sink, dir.path())];
        })
        .await;
        let forwarded = rows.iter().filter(|r| r.destination != "issuer_webhook").count();
        receiver
            .wait_for(Duration::from_secs(30), |r| r.iter().filter(|r| r.answered == 200).count() >= forwarded)
            .await;
        sink.wait_for(Duration::from_secs(30), |r| r.iter().filter(|r| r.answered == 200).count() >= 3).await;

        // Each row reached its destination under its own idempotency key, mapped as before.
        let calls = receiver.accepted();
        let call = |row: &FixtureRow| {
            let key = row.id.to_string();
            calls
                .iter()
                .find(|c| c.idempotency_key == key)
                .unwrap_or_else(|| panic!("{b}: {} not delivered", row.event_type))
        };
        let expected: [(&str, &str, &str, &str); 12] = [
            ("tmp_api", "card.status_changed", "POST", "/tmp-api/v1/cards/card-fx-new/status"),
            ("tmp_api", "card.renewed", "POST", "/tmp-api/v1/cards/card-fx-new/expiry"),
            ("tmp_api", "card.replaced", "POST", "/tmp-api/v1/cards/card-fx-new/replace"),
            ("tmp_api", "card.closed", "POST", "/tmp-api/v1/cards/card-fx-next/status"),
            ("lifecycle_api", "card.issued", "POST", "/lifecycle/v1/cards"),
            ("lifecycle_api", "card.status_changed", "PATCH", "/lifecycle/v1/cards/card-fx-new"),
            ("lifecycle_api", "card.renewed", "PATCH", "/lifecycle/v1/cards/card-fx-new"),
            ("lifecycle_api", "cardholder.updated", "PATCH", "/lifecycle/v1/cards/card-fx-new"),
            ("lifecycle_api", "card.replaced", "POST", "/lifecycle/v1/cards/card-fx-new/replace"),
            ("lifecycle_api", "card.closed", "DELETE", "/lifecycle/v1/cards/card-fx-next"),
            ("issuer_webhook", "token.status_changed", "POST", "/hooks"),
            ("issuer_webhook", "notification.TOKEN_ACTIVATED", "POST", "/hooks"),
        ];
        for (destination, event_type, method, path) in expected {
            let row = rows.iter().find(|r| r.destination == destination && r.event_type == event_type).unwrap();
            if destination == "issuer_webhook" {
                continue;
            }
            let got = call(row);
            assert_eq!((got.method.as_str(), got.path.as_str()), (method, path), "{b}: {destination} {event_type}");
            assert!(got.signature_ok, "{b}");
        }
        // Bodies and card data, for each kind of mapping.
        let by = |destination: &str, event_type: &str, n: usize| {
            let matching: Vec<_> =
                rows.iter().filter(|r| r.destination == destination && r.event_type == event_type).collect();
            call(matching[n])
        };
        assert_eq!(by("tmp_api", "card.status_changed", 0).body, json!({"status": "BLOCKED", "reason": "lost"}));
        assert_eq!(by("tmp_api", "card.status_changed", 1).body, json!({"status": "ACTIVE"}));
        assert_eq!(by("tmp_api", "card.renewed", 0).decrypted, Some(json!({"expiry": "11/33"})));
        let replaced = by("tmp_api", "card.replaced", 0);
        assert_eq!(replaced.body["newCardId"], "card-fx-next");
        assert_eq!(replaced.decrypted, Some(json!({"pan": "5200828282828210", "expiry": "01/34"})));
        assert_eq!(by("tmp_api", "card.closed", 0).body, json!({"status": "CLOSED", "reason": "customer request"}));
        let issued = by("lifecycle_api", "card.issued", 0);
        assert_eq!(issued.body["cardId"], "card-fx-new");
        assert_eq!(issued.body["status"], "ACTIVE");
        assert_eq!(issued.body["productCategory"], "CREDIT");
        assert_eq!(issued.body["cardholder"], json!({"phone": "+48500100200", "email": "jan@example.com"}));
        assert_eq!(issued.decrypted, Some(json!({"pan": PAN_UNKNOWN, "expiry": "12/32"})));
        assert_eq!(
            by("lifecycle_api", "cardholder.updated", 0).body,
            json!({"cardholder": {"email": "new@example.com"}})
        );

        // The issuer's sink: the token event as received, the notifications without their JWE,
        // the activation code re-encrypted to the sink's key.
        let hooks = sink.accepted();
        let hook =
            |event_type: &str| hooks.iter().find(|h| h.body["type"] == event_type).expect("delivered to the sink");
        let token = rows.iter().find(|r| r.event_type == "token.status_changed").unwrap();
        assert_eq!(hook("token.status_changed").body["data"], token.payload, "{b}");
        let code = hook("notification.ACTIVATION_CODE_DELIVERY");
        assert_eq!(code.decrypted, Some(json!({"otp": OTP})), "{b}");
        assert_eq!(code.body["data"]["notificationId"], "ntf-fx-0");
        assert_eq!(hook("notification.TOKEN_ACTIVATED").body["data"]["notificationId"], "ntf-fx-1");
        assert!(
            app.store.find_notification("ntf-fx-0").await.unwrap().unwrap().otp_ciphertext.is_none(),
            "{b}: the code is erased once delivered"
        );

        let delivered = app.store.list_outbox(&store::OutboxFilter { limit: 100, ..Default::default() }).await.unwrap();
        assert!(delivered.iter().all(|e| e.status == tmp_adapter::outbox::OutboxStatus::Delivered), "{b}");
        app.stop().await;
    }
}
