//! The `Store` contract, run against every backend of `helpers::db::test_databases`.

use std::sync::Arc;

use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tmp_adapter::outbox::{Destination, OutboxMessage, OutboxStatus};
use tmp_adapter::store::{
    self, CardRecord, DecisionRecord, DynStore, IdempotencyRecord, IdempotentWrite, NotificationRecord, OutboxRecord,
    StoreError, TokenEventRecord,
};
use tmp_protocol::enums::{ChangeInitiator, IssuerCardStatus, ReasonCode, TokenStatus};
use uuid::Uuid;

use crate::helpers::db::{TestDb, test_databases};

/// A fixed, microsecond-aligned instant (the stores keep microseconds).
const T0: OffsetDateTime = datetime!(2030-01-01 12:00:00.123456 UTC);

/// Every backend, connected and migrated. Keep the `TestDb` alive while using the store.
async fn stores() -> Vec<(TestDb, DynStore)> {
    let mut stores = Vec::new();
    for db in test_databases().await {
        let store = store::connect(&db.url, 8).await.unwrap_or_else(|e| panic!("{}: connect: {e:?}", db.backend));
        store.migrate().await.unwrap_or_else(|e| panic!("{}: migrate: {e:?}", db.backend));
        stores.push((db, store));
    }
    stores
}

fn card(card_id: &str, fingerprint: u8) -> CardRecord {
    CardRecord {
        card_id: card_id.to_owned(),
        pan_fingerprint: vec![fingerprint; 32],
        pan_ciphertext: vec![0xC0, 0xFF, 0xEE, fingerprint],
        pan_key_id: "pan-key-1".to_owned(),
        pan_last4: "4242".to_owned(),
        expiry_yymm: "3012".to_owned(),
        status: IssuerCardStatus::Active,
        cardholder_phone: Some("+48500100200".to_owned()),
        cardholder_email: None,
        product_category: Some("CREDIT".to_owned()),
        updated_at: T0,
    }
}

fn idempotency(scope: &str, key: &str) -> IdempotencyRecord {
    IdempotencyRecord {
        scope: scope.to_owned(),
        key: key.to_owned(),
        request_hash: vec![7; 32],
        response_status: 200,
        response_body: br#"{"decision":"APPROVED"}"#.to_vec(),
        created_at: T0,
    }
}

fn decision(card_id: &str, decided_at: OffsetDateTime) -> DecisionRecord {
    DecisionRecord {
        id: Uuid::new_v4(),
        decided_at,
        correlation_id: "corr-1".to_owned(),
        operation: "verify_card".to_owned(),
        tokenization_id: Some("tok-req-1".to_owned()),
        card_id: Some(card_id.to_owned()),
        pan_last4: Some("4242".to_owned()),
        token_requestor_id: Some("50110030273".to_owned()),
        wallet: Some("APPLE_PAY".to_owned()),
        tsp: Some("MDES".to_owned()),
        decision: "APPROVED".to_owned(),
        reason: "CARD_VERIFIED".to_owned(),
        card_status: "ACTIVE".to_owned(),
        cvc_result: "MATCH".to_owned(),
        stand_in: false,
        latency_ms: 42,
        device_id: Some("dev-phone-1".to_owned()),
        device_type: Some("PHONE".to_owned()),
        token_type: Some("HCE".to_owned()),
        recommendation_reasons: Some(r#"["ACCOUNT_TOO_NEW","LOW_DEVICE_SCORE"]"#.to_owned()),
        pan_source: Some("KEY_ENTERED".to_owned()),
        network_score: Some(4),
        hook_outcome: Some("ANSWERED".to_owned()),
        hook_decision: Some("REQUIRE_ADDITIONAL_AUTHENTICATION".to_owned()),
        hook_reason: Some("NEW_DEVICE".to_owned()),
    }
}

fn token_event(event_id: &str, token_id: &str, status: TokenStatus, occurred_at: OffsetDateTime) -> TokenEventRecord {
    TokenEventRecord {
        event_id: event_id.to_owned(),
        token_id: token_id.to_owned(),
        card_id: "card-1".to_owned(),
        tsp: "MDES".to_owned(),
        token_requestor_id: "50110030273".to_owned(),
        wallet: "APPLE_PAY".to_owned(),
        status,
        previous_status: None,
        reason: Some("reason".to_owned()),
        reason_code: Some(ReasonCode::Lost),
        initiator: Some(ChangeInitiator::TokenRequestor),
        tokenization_id: Some("tkn-1".to_owned()),
        token_last4: Some("9876".to_owned()),
        occurred_at,
        received_at: T0 + Duration::minutes(5),
    }
}

/// A message of `event_type` (a card event's type, `token.status_changed` or
/// `notification.<type>`), told apart by `n`.
fn message(event_type: &str, n: u32) -> OutboxMessage {
    let at = "2030-01-01T12:00:00.123456Z";
    let payload = match event_type.strip_prefix("notification.") {
        _ if event_type == "token.status_changed" => json!({
            "eventId": format!("ev-{n}"), "tokenId": "token-1", "cardId": "card-1", "tsp": "MDES",
            "tokenRequestor": {"id": "50110030273", "name": "Apple Pay é", "wallet": "APPLE_PAY"},
            "status": "ACTIVE", "occurredAt": at,
        }),
        Some(kind) => json!({"notificationId": format!("ntf-{n}"), "type": kind, "cardId": "card-1", "occurredAt": at}),
        None => json!({"event": {"id": format!("ev-{n}"), "cardId": "card-1", "occurredAt": at, "type": event_type,
                                 "data": {"reason": format!("n={n} é")}}}),
    };
    OutboxMessage::from_stored(event_type, &payload.to_string()).expect("a valid message")
}

fn outbox(ordering_key: &str, event_type: &str, n: u32) -> OutboxRecord {
    OutboxRecord {
        id: Uuid::new_v4(),
        destination: Destination::IssuerWebhook,
        ordering_key: ordering_key.to_owned(),
        message: message(event_type, n),
        created_at: T0 + Duration::seconds(n.into()),
        not_after: None,
        correlation_id: Some(format!("corr-{n}")),
        // Every other row without one: rows queued before the column existed have none.
        traceparent: n.is_multiple_of(2).then(tmp_protocol::trace_context::TraceParent::start),
    }
}

fn notification(notification_id: &str, expires_at: Option<OffsetDateTime>) -> NotificationRecord {
    NotificationRecord {
        notification_id: notification_id.to_owned(),
        notification_type: "ACTIVATION_CODE_DELIVERY".to_owned(),
        card_id: "card-1".to_owned(),
        token_id: Some("token-1".to_owned()),
        token_requestor_id: Some("50110030273".to_owned()),
        channel: Some("SMS".to_owned()),
        otp_ciphertext: Some(vec![1, 2, 3, 4, 5]),
        otp_key_id: Some("otp-key-1".to_owned()),
        expires_at,
        occurred_at: T0,
        received_at: T0 + Duration::seconds(1),
    }
}

#[tokio::test]
async fn migrations_are_idempotent() {
    for (db, store) in stores().await {
        let b = db.backend;
        store.migrate().await.unwrap_or_else(|e| panic!("{b}: second migrate: {e:?}"));
        store.ping().await.unwrap_or_else(|e| panic!("{b}: ping: {e:?}"));
        // A second process opening the same database also finds nothing to do.
        let again = store::connect(&db.url, 2).await.unwrap();
        again.migrate().await.unwrap_or_else(|e| panic!("{b}: migrate from a new pool: {e:?}"));
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_sqlite_database_and_its_wal_are_readable_by_the_owner_alone() {
    use std::os::unix::fs::PermissionsExt;
    for (db, store) in stores().await {
        if db.backend != "sqlite" {
            continue;
        }
        // A durable write makes sure the WAL and its index exist.
        store.upsert_cards(&[card("card-perm", 1)]).await.unwrap();
        let file = std::path::PathBuf::from(db.url.trim_start_matches("sqlite://"));
        let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(file.parent().unwrap()), 0o700, "the directory it created");
        for suffix in ["", "-wal", "-shm"] {
            let path = std::path::PathBuf::from(format!("{}{suffix}", file.display()));
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

#[tokio::test]
async fn cards_are_upserted_and_found() {
    for (db, store) in stores().await {
        let b = db.backend;
        let a = card("card-a", 1);
        let mut c = card("card-c", 3);
        c.cardholder_email = Some("jan@example.com".to_owned());
        c.cardholder_phone = None;
        // Another offset: stored and read back as the same instant.
        c.updated_at = datetime!(2030-01-01 14:00:00.5 +02:00);
        assert_eq!(store.upsert_cards(&[a.clone(), c.clone()]).await.unwrap(), 2, "{b}");

        assert_eq!(store.find_card("card-a").await.unwrap(), Some(a.clone()), "{b}");
        assert_eq!(store.find_card("card-c").await.unwrap(), Some(c.clone()), "{b}");
        assert_eq!(store.find_card_by_fingerprint(&[3; 32]).await.unwrap(), Some(c), "{b}");
        assert_eq!(store.find_card("card-x").await.unwrap(), None, "{b}");
        assert_eq!(store.find_card_by_fingerprint(&[9; 32]).await.unwrap(), None, "{b}");

        // Update by card id: status, contact and even the PAN (re-issued card).
        let mut updated = a.clone();
        updated.status = IssuerCardStatus::Blocked;
        updated.pan_fingerprint = vec![2; 32];
        updated.pan_ciphertext = vec![9, 9];
        updated.cardholder_phone = None;
        updated.updated_at = T0 + Duration::hours(1);
        assert_eq!(store.upsert_cards(std::slice::from_ref(&updated)).await.unwrap(), 1, "{b}");
        assert_eq!(store.find_card("card-a").await.unwrap(), Some(updated.clone()), "{b}");
        assert_eq!(store.find_card_by_fingerprint(&[1; 32]).await.unwrap(), None, "{b}");
        assert_eq!(store.find_card_by_fingerprint(&[2; 32]).await.unwrap(), Some(updated), "{b}");

        // Re-importing the same card unchanged is fine, and an empty batch writes nothing.
        let mut same = card("card-c", 3);
        same.status = IssuerCardStatus::Closed;
        assert_eq!(store.upsert_cards(&[same.clone()]).await.unwrap(), 1, "{b}");
        assert_eq!(store.find_card("card-c").await.unwrap().unwrap().status, IssuerCardStatus::Closed, "{b}");
        assert_eq!(store.upsert_cards(&[]).await.unwrap(), 0, "{b}");
    }
}

#[tokio::test]
async fn duplicate_pan_writes_nothing() {
    for (db, store) in stores().await {
        let b = db.backend;
        let a = card("card-a", 1);
        store.upsert_cards(std::slice::from_ref(&a)).await.unwrap();

        // The second card of the batch reuses card-a's PAN: the first is not written either.
        let fresh = card("card-new", 5);
        let thief = card("card-thief", 1);
        let mut a_changed = a.clone();
        a_changed.status = IssuerCardStatus::Closed;
        let err = store.upsert_cards(&[a_changed, fresh, thief]).await.unwrap_err();
        assert!(matches!(err, StoreError::DuplicatePan), "{b}: {err:?}");
        assert_eq!(store.find_card("card-new").await.unwrap(), None, "{b}");
        assert_eq!(store.find_card("card-thief").await.unwrap(), None, "{b}");
        assert_eq!(store.find_card("card-a").await.unwrap(), Some(a.clone()), "{b}");

        // Two new cards with the same PAN inside one batch.
        let err = store.upsert_cards(&[card("card-x", 7), card("card-y", 7)]).await.unwrap_err();
        assert!(matches!(err, StoreError::DuplicatePan), "{b}: {err:?}");
        assert_eq!(store.find_card("card-x").await.unwrap(), None, "{b}");
        assert_eq!(store.find_card_by_fingerprint(&[7; 32]).await.unwrap(), None, "{b}");

        // The store is still usable afterwards (the failed transaction was rolled back).
        assert_eq!(store.upsert_cards(&[card("card-x", 7)]).await.unwrap(), 1, "{b}");
    }
}

#[tokio::test]
async fn cvc_failures_count_within_the_window() {
    let window = Duration::minutes(30);
    for (db, store) in stores().await {
        let b = db.backend;
        assert_eq!(store.cvc_failures("card-1", T0, window).await.unwrap(), 0, "{b}");
        for expected in 1..=3 {
            let now = T0 + Duration::minutes(expected.into());
            assert_eq!(store.reserve_cvc_attempt("card-1", now, window, 100).await.unwrap(), Some(expected), "{b}");
        }
        assert_eq!(store.cvc_failures("card-1", T0 + Duration::minutes(4), window).await.unwrap(), 3, "{b}");
        // Other cards are counted apart.
        assert_eq!(store.reserve_cvc_attempt("card-2", T0, window, 100).await.unwrap(), Some(1), "{b}");

        // The window started at the first failure (T0 + 1 min): just before its end it still
        // counts, at its end it has passed.
        let end = T0 + Duration::minutes(1) + window;
        let just_before = end - Duration::microseconds(1);
        assert_eq!(store.cvc_failures("card-1", just_before, window).await.unwrap(), 3, "{b}");
        assert_eq!(store.cvc_failures("card-1", end, window).await.unwrap(), 0, "{b}");
        // A failure in a passed window restarts the count and the window.
        assert_eq!(store.reserve_cvc_attempt("card-1", end, window, 100).await.unwrap(), Some(1), "{b}");
        assert_eq!(
            store.reserve_cvc_attempt("card-1", end + Duration::minutes(29), window, 100).await.unwrap(),
            Some(2),
            "{b}"
        );
        assert_eq!(store.cvc_failures("card-1", end + Duration::minutes(29), window).await.unwrap(), 2, "{b}");
        assert_eq!(store.cvc_failures("card-1", end + window, window).await.unwrap(), 0, "{b}");

        // A match clears the counter (clearing twice, or an unknown card, is fine).
        store.clear_cvc_failures("card-1").await.unwrap();
        store.clear_cvc_failures("card-1").await.unwrap();
        store.clear_cvc_failures("card-unknown").await.unwrap();
        assert_eq!(store.cvc_failures("card-1", end + Duration::minutes(30), window).await.unwrap(), 0, "{b}");
        assert_eq!(
            store.reserve_cvc_attempt("card-1", end + Duration::minutes(30), window, 100).await.unwrap(),
            Some(1),
            "{b}"
        );
        assert_eq!(store.cvc_failures("card-2", T0, window).await.unwrap(), 1, "{b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cvc_failures_are_all_counted() {
    let window = Duration::hours(1);
    for (db, store) in stores().await {
        let b = db.backend;
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    store.reserve_cvc_attempt("card-race", T0 + Duration::milliseconds(i), window, 100).await
                })
            })
            .collect();
        let mut seen = Vec::new();
        for task in tasks {
            seen.push(task.await.unwrap().unwrap_or_else(|e| panic!("{b}: {e:?}")).expect("under the limit"));
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..=20).collect::<Vec<u32>>(), "{b}: each failure saw a distinct count");
        assert_eq!(store.cvc_failures("card-race", T0 + Duration::seconds(1), window).await.unwrap(), 20, "{b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_durable_writes_are_flushed_together_and_relaxed_ones_wait_for_none() {
    for (db, store) in stores().await {
        let b = db.backend;
        let before = store.group_commit_stats();
        // Relaxed writes commit without a flush of their own: the request id, and a
        // verification's own writes (its decision record's flush covers them).
        assert!(store.remember_request_id("msg_relaxed", T0).await.unwrap(), "{b}");
        assert_eq!(store.reserve_cvc_attempt("card-relaxed", T0, Duration::hours(1), 3).await.unwrap(), Some(1));
        store.clear_cvc_failures("card-relaxed").await.unwrap();
        let keys = [tmp_adapter::store::VelocityKey::Card("card-relaxed")];
        store.count_and_record_tokenization(&keys, "tok-relaxed", T0, Duration::days(1)).await.unwrap();
        assert_eq!(store.group_commit_stats(), before, "{b}: a relaxed write waited for a flush");
        // 100 durable writes at once, each answered only once a flush (a real WAL fsync, a real
        // synchronous commit) covered it.
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.record_decision(&decision(&format!("card-gc-{i}"), T0), None).await })
            })
            .collect();
        for task in tasks {
            let written = task.await.unwrap().unwrap_or_else(|e| panic!("{b}: {e:?}"));
            assert_eq!(written, IdempotentWrite::Committed, "{b}");
        }
        let after = store.group_commit_stats();
        assert_eq!(after.commits - before.commits, 100, "{b}: every durable write is counted once");
        assert!(after.flushes > before.flushes && after.flushes - before.flushes <= 100, "{b}: {after:?}");
        assert_eq!((after.failures, after.poisoned), (0, false), "{b}");
        store.ping().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_attempts_get_at_most_max_reservations() {
    let window = Duration::hours(1);
    for (db, store) in stores().await {
        let b = db.backend;
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    store.reserve_cvc_attempt("card-guess", T0 + Duration::milliseconds(i), window, 3).await
                })
            })
            .collect();
        let mut reserved = 0;
        for task in tasks {
            if task.await.unwrap().unwrap_or_else(|e| panic!("{b}: {e:?}")).is_some() {
                reserved += 1;
            }
        }
        assert_eq!(reserved, 3, "{b}: only max_attempts guesses may be checked");
        assert_eq!(store.cvc_failures("card-guess", T0 + Duration::seconds(1), window).await.unwrap(), 3, "{b}");
        // Once the window has passed, a new attempt is reserved and restarts the count.
        let later = T0 + window + Duration::seconds(1);
        assert_eq!(store.reserve_cvc_attempt("card-guess", later, window, 3).await.unwrap(), Some(1), "{b}");
    }
}

#[tokio::test]
async fn decisions_are_written_with_their_idempotency_record() {
    for (db, store) in stores().await {
        let b = db.backend;
        let first = decision("card-1", T0);
        let key = idempotency("verify_card", "key-1");
        let written = store.record_decision(&first, Some(&key)).await.unwrap();
        assert_eq!(written, IdempotentWrite::Committed, "{b}");
        assert_eq!(store.find_idempotency("verify_card", "key-1").await.unwrap(), Some(key.clone()), "{b}");
        // Keys are scoped per route.
        assert_eq!(store.find_idempotency("verify_cvc", "key-1").await.unwrap(), None, "{b}");

        // Same scope+key again: nothing written, the stored record comes back.
        let mut retry_key = key.clone();
        retry_key.request_hash = vec![8; 32];
        retry_key.response_status = 500;
        let retry = decision("card-1", T0 + Duration::seconds(1));
        let written = store.record_decision(&retry, Some(&retry_key)).await.unwrap();
        assert_eq!(written, IdempotentWrite::AlreadyExists(key.clone()), "{b}");
        assert_eq!(store.decisions_for_card("card-1", 10).await.unwrap(), vec![first.clone()], "{b}");

        // Without a key; newest first; limit.
        let mut second = decision("card-1", T0 + Duration::minutes(1));
        second.stand_in = true;
        second.operation = "verify_cvc".to_owned();
        second.tokenization_id = None;
        second.wallet = None;
        second.latency_ms = i64::from(u32::MAX) + 1;
        assert_eq!(store.record_decision(&second, None).await.unwrap(), IdempotentWrite::Committed, "{b}");
        let other_card = decision("card-2", T0 + Duration::minutes(2));
        store.record_decision(&other_card, None).await.unwrap();
        assert_eq!(store.decisions_for_card("card-1", 10).await.unwrap(), vec![second.clone(), first.clone()], "{b}");
        assert_eq!(store.decisions_for_card("card-1", 1).await.unwrap(), vec![second.clone()], "{b}");
        assert_eq!(store.decisions_for_card("card-none", 10).await.unwrap(), vec![], "{b}");

        // Atomicity: when the audit row can't be written (same decision id), the idempotency
        // record is not kept either.
        let err = store.record_decision(&second, Some(&idempotency("verify_card", "key-2"))).await.unwrap_err();
        assert!(matches!(err, StoreError::Database(_)), "{b}: {err:?}");
        assert_eq!(store.find_idempotency("verify_card", "key-2").await.unwrap(), None, "{b}");
    }
}

/// The velocity limits' count: a card's or a device's other tokenizations within the window,
/// one per tokenization id, counted and recorded in one step; the window's first instant is
/// outside it; old ones are purged.
#[tokio::test]
async fn tokenizations_are_counted_per_card_and_per_device_within_the_window() {
    use tmp_adapter::store::VelocityKey::{Card, Device};
    let window = Duration::minutes(10);
    for (db, store) in stores().await {
        let b = db.backend;
        let count = async |keys: &[tmp_adapter::store::VelocityKey<'_>], tokenization: &str, minutes: i64| {
            store
                .count_and_record_tokenization(keys, tokenization, T0 + Duration::minutes(minutes), window)
                .await
                .unwrap()
        };
        assert_eq!(count(&[Card("card-1"), Device("dev-a")], "t-old", 0).await, [0, 0], "{b}");
        assert_eq!(count(&[Card("card-1"), Device("dev-a")], "t-1", 5).await, [1, 1], "{b}");
        // TMP asks again for one tokenization: it is not counted against itself, nor twice.
        assert_eq!(count(&[Card("card-1"), Device("dev-a")], "t-1", 6).await, [1, 1], "{b}");
        assert_eq!(count(&[Card("card-2"), Device("dev-a")], "t-2", 7).await, [0, 2], "{b}");
        assert_eq!(count(&[Card("card-1")], "t-3", 8).await, [2], "{b}: t-old and t-1");
        // At minute 10 t-old (minute 0) is exactly `window` old: outside.
        assert_eq!(count(&[Card("card-1"), Device("dev-a")], "t-now", 10).await, [2, 2], "{b}: t-1, t-3 / t-1, t-2");
        assert_eq!(count(&[Device("dev-b")], "t-now", 10).await, [0], "{b}");
        assert_eq!(store.purge_tokenization_attempts(T0 + Duration::minutes(3)).await.unwrap(), 2, "{b}: t-old twice");
        assert_eq!(store.purge_tokenization_attempts(T0 + Duration::minutes(3)).await.unwrap(), 0, "{b}");
        assert_eq!(count(&[Card("card-1")], "t-9", 12).await, [3], "{b}: t-1, t-3, t-now");
    }
}

/// Tokenizations an earlier version only audited (a replica not yet upgraded past `0011`) are
/// caught up from the decision audit at start: within the window, once, each tokenization once.
#[tokio::test]
async fn the_velocity_count_catches_up_with_the_decision_audit() {
    use tmp_adapter::store::VelocityKey::{Card, Device};
    for (db, store) in stores().await {
        let b = db.backend;
        let audited = |minutes: i64, tokenization: &str, device: Option<&str>| DecisionRecord {
            tokenization_id: Some(tokenization.to_owned()),
            device_id: device.map(str::to_owned),
            ..decision("card-9", T0 + Duration::minutes(minutes))
        };
        for row in [
            audited(0, "t-before-the-window", Some("dev-9")),
            audited(20, "t-a", Some("dev-9")),
            // TMP asked twice: one tokenization.
            audited(21, "t-a", Some("dev-9")),
            audited(22, "t-b", None),
        ] {
            store.record_decision(&row, None).await.unwrap();
        }
        let mut cvc = audited(23, "t-c", Some("dev-9"));
        cvc.operation = "verify_cvc".into();
        store.record_decision(&cvc, None).await.unwrap();
        let since = T0 + Duration::minutes(10);
        assert_eq!(store.backfill_tokenization_attempts(since).await.unwrap(), 3, "{b}: card t-a, t-b; device t-a");
        assert_eq!(store.backfill_tokenization_attempts(since).await.unwrap(), 0, "{b}: once");
        let counts = store
            .count_and_record_tokenization(
                &[Card("card-9"), Device("dev-9")],
                "t-now",
                T0 + Duration::minutes(30),
                Duration::hours(1),
            )
            .await
            .unwrap();
        assert_eq!(counts, [2, 1], "{b}");
    }
}

/// Tokenizations of one device arriving together are counted one after another: each sees a
/// different count, so a burst cannot all pass a limit together.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_tokenizations_on_one_device_is_counted_one_by_one() {
    use tmp_adapter::store::VelocityKey::{Card, Device};
    for (db, store) in stores().await {
        let b = db.backend;
        let burst = (0..8).map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let card = format!("card-{}", n % 3);
                let keys = [Card(&card), Device("dev-burst")];
                let tokenization = format!("t-burst-{n}");
                store.count_and_record_tokenization(&keys, &tokenization, T0, Duration::days(1)).await.unwrap()[1]
            })
        });
        let mut seen: Vec<u32> = futures_util::future::join_all(burst).await.into_iter().map(|r| r.unwrap()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..8).collect::<Vec<u32>>(), "{b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_key_commit_once() {
    for (db, store) in stores().await {
        let b = db.backend;
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let key = idempotency("verify_card", "raced-key");
                    store.record_decision(&decision("card-r", T0), Some(&key)).await
                })
            })
            .collect();
        let mut committed = 0;
        for task in tasks {
            match task.await.unwrap().unwrap_or_else(|e| panic!("{b}: {e:?}")) {
                IdempotentWrite::Committed => committed += 1,
                IdempotentWrite::AlreadyExists(existing) => {
                    assert_eq!(existing, idempotency("verify_card", "raced-key"), "{b}")
                }
            }
        }
        assert_eq!(committed, 1, "{b}");
        assert_eq!(store.decisions_for_card("card-r", 100).await.unwrap().len(), 1, "{b}");
    }
}

#[tokio::test]
async fn token_events_update_the_mirror_in_order() {
    for (db, store) in stores().await {
        let b = db.backend;
        // Every token below is Apple Pay's (requestor 50110030273) but one.
        let apple = store::TokenScope::Requestor("50110030273".into());
        assert_eq!(store.find_token("token-1").await.unwrap(), None, "{b}");
        assert_eq!(store.count_live_tokens("card-1", &apple).await.unwrap(), 0, "{b}");

        // First event creates the mirror.
        let t1 = T0 + Duration::minutes(10);
        let mut activated = token_event("ev-1", "token-1", TokenStatus::Active, t1);
        activated.previous_status = Some(TokenStatus::Inactive);
        let (written, outcome) = store
            .apply_token_event(
                &activated,
                &outbox("card-1", "token.status_changed", 1),
                &idempotency("token_events", "k1"),
            )
            .await
            .unwrap();
        assert_eq!(written, IdempotentWrite::Committed, "{b}");
        let outcome = outcome.unwrap();
        assert!(outcome.applied, "{b}");
        assert_eq!(outcome.token.status, TokenStatus::Active, "{b}");
        assert_eq!(outcome.token.status_at, t1, "{b}");
        assert_eq!(outcome.token.updated_at, activated.received_at, "{b}");
        assert_eq!(outcome.token.token_last4.as_deref(), Some("9876"), "{b}");
        assert_eq!(store.find_token("token-1").await.unwrap(), Some(outcome.token.clone()), "{b}");
        assert_eq!(store.count_live_tokens("card-1", &apple).await.unwrap(), 1, "{b}");
        assert_eq!(store.pending_outbox(100).await.unwrap().len(), 1, "{b}");

        // An older event arrives late: history only, the mirror keeps the newer state.
        let late = token_event("ev-0", "token-1", TokenStatus::Inactive, T0);
        let (written, outcome) = store
            .apply_token_event(&late, &outbox("card-1", "token.status_changed", 2), &idempotency("token_events", "k0"))
            .await
            .unwrap();
        assert_eq!(written, IdempotentWrite::Committed, "{b}");
        let outcome = outcome.unwrap();
        assert!(!outcome.applied, "{b}");
        assert_eq!(outcome.token.status, TokenStatus::Active, "{b}");
        assert_eq!(outcome.token.status_at, t1, "{b}");
        assert_eq!(store.pending_outbox(100).await.unwrap().len(), 2, "{b}: a new event is queued");

        // The same event again under another key: ignored (no history, outbox or mirror change).
        let (written, outcome) = store
            .apply_token_event(
                &activated,
                &outbox("card-1", "token.status_changed", 3),
                &idempotency("token_events", "k1-bis"),
            )
            .await
            .unwrap();
        assert_eq!(written, IdempotentWrite::Committed, "{b}");
        assert!(!outcome.unwrap().applied, "{b}");
        assert_eq!(store.pending_outbox(100).await.unwrap().len(), 2, "{b}");

        // The same key again: replayed, nothing written.
        let (written, outcome) = store
            .apply_token_event(
                &token_event("ev-9", "token-1", TokenStatus::Deactivated, t1 + Duration::hours(1)),
                &outbox("card-1", "token.status_changed", 4),
                &idempotency("token_events", "k1"),
            )
            .await
            .unwrap();
        assert_eq!(written, IdempotentWrite::AlreadyExists(idempotency("token_events", "k1")), "{b}");
        assert_eq!(outcome, None, "{b}");
        assert_eq!(store.find_token("token-1").await.unwrap().unwrap().status, TokenStatus::Active, "{b}");

        let history = store.token_history("token-1").await.unwrap();
        // Oldest first, each as it was when it arrived: the late one changed nothing; the code
        // and the initiator survive the trip.
        let stored = |event: &TokenEventRecord, applied| store::StoredTokenEvent { event: event.clone(), applied };
        assert_eq!(history, vec![stored(&late, false), stored(&activated, true)], "{b}");

        // An event at the same instant as the mirror's state applies; without last4 the
        // known last4 is kept.
        let mut suspended = token_event("ev-2", "token-1", TokenStatus::Suspended, t1);
        suspended.token_last4 = None;
        let (_, outcome) = store
            .apply_token_event(
                &suspended,
                &outbox("card-1", "token.status_changed", 5),
                &idempotency("token_events", "k2"),
            )
            .await
            .unwrap();
        let outcome = outcome.unwrap();
        assert!(outcome.applied, "{b}");
        assert_eq!(outcome.token.status, TokenStatus::Suspended, "{b}");
        assert_eq!(outcome.token.token_last4.as_deref(), Some("9876"), "{b}");
        assert_eq!(store.count_live_tokens("card-1", &apple).await.unwrap(), 1, "{b}");

        // A second token on the card, then the first is deactivated.
        store
            .apply_token_event(
                &token_event("ev-3", "token-2", TokenStatus::Active, t1),
                &outbox("card-1", "token.status_changed", 6),
                &idempotency("token_events", "k3"),
            )
            .await
            .unwrap();
        assert_eq!(store.count_live_tokens("card-1", &apple).await.unwrap(), 2, "{b}");
        // A Google Pay token on the same card counts for Google Pay, not for Apple Pay.
        let google = TokenEventRecord {
            token_requestor_id: "40010030273".into(),
            wallet: "GOOGLE_PAY".into(),
            ..token_event("ev-g", "token-g", TokenStatus::Active, t1)
        };
        store
            .apply_token_event(
                &google,
                &outbox("card-1", "token.status_changed", 8),
                &idempotency("token_events", "kg"),
            )
            .await
            .unwrap();
        assert_eq!(store.count_live_tokens("card-1", &apple).await.unwrap(), 2, "{b}: per requestor");
        let wallet = |w: &str| store::TokenScope::Wallet(w.into());
        assert_eq!(store.count_live_tokens("card-1", &wallet("APPLE_PAY")).await.unwrap(), 2, "{b}: per wallet");
        assert_eq!(store.count_live_tokens("card-1", &wallet("GOOGLE_PAY")).await.unwrap(), 1, "{b}");
        let google_requestor = store::TokenScope::Requestor("40010030273".into());
        assert_eq!(store.count_live_tokens("card-1", &google_requestor).await.unwrap(), 1, "{b}");
        store
            .apply_token_event(
                &token_event("ev-4", "token-1", TokenStatus::Deactivated, t1 + Duration::minutes(1)),
                &outbox("card-1", "token.status_changed", 7),
                &idempotency("token_events", "k4"),
            )
            .await
            .unwrap();
        assert_eq!(store.count_live_tokens("card-1", &apple).await.unwrap(), 1, "{b}");
        assert_eq!(store.count_live_tokens("card-2", &apple).await.unwrap(), 0, "{b}");
        assert_eq!(store.token_history("token-1").await.unwrap().len(), 4, "{b}");
        assert_eq!(store.token_history("token-none").await.unwrap(), vec![], "{b}");
    }
}

/// A repair (reconciliation's token event) older than the mirror's state leaves nothing behind —
/// no history row, no outbox row, no idempotency record — so a token event TMP delivered
/// meanwhile is never followed by a stale one in the sinks.
#[tokio::test]
async fn a_repair_the_mirror_does_not_take_writes_nothing() {
    for (db, store) in stores().await {
        let b = db.backend;
        let later = T0 + Duration::hours(1);
        store
            .apply_token_event(
                &token_event("ev-1", "token-1", TokenStatus::Active, later),
                &outbox("card-1", "token.status_changed", 1),
                &idempotency("token_events", "k1"),
            )
            .await
            .unwrap();
        let stale = token_event("rep-0", "token-1", TokenStatus::Suspended, T0);
        let written = store
            .apply_repair_event(
                &stale,
                &outbox("card-1", "token.status_changed", 2),
                &idempotency("reconcile", "rep-0"),
            )
            .await
            .unwrap();
        assert!(!written, "{b}");
        assert_eq!(store.token_history("token-1").await.unwrap().len(), 1, "{b}: no history row");
        assert_eq!(store.pending_outbox(10).await.unwrap().len(), 1, "{b}: nothing for the sinks");
        assert_eq!(store.find_idempotency("reconcile", "rep-0").await.unwrap(), None, "{b}");
        assert_eq!(store.find_token("token-1").await.unwrap().unwrap().status, TokenStatus::Active, "{b}");

        // A newer one is written whole, once.
        let fresh = token_event("rep-1", "token-1", TokenStatus::Suspended, later + Duration::minutes(1));
        let queued = outbox("card-1", "token.status_changed", 3);
        assert!(store.apply_repair_event(&fresh, &queued, &idempotency("reconcile", "rep-1")).await.unwrap(), "{b}");
        let history = store.token_history("token-1").await.unwrap();
        assert_eq!((history.len(), history[1].applied), (2, true), "{b}");
        assert_eq!(store.pending_outbox(10).await.unwrap().len(), 2, "{b}");
        assert_eq!(store.find_token("token-1").await.unwrap().unwrap().status, TokenStatus::Suspended, "{b}");
        let again = outbox("card-1", "token.status_changed", 4);
        assert!(!store.apply_repair_event(&fresh, &again, &idempotency("reconcile", "rep-1b")).await.unwrap(), "{b}");
        assert_eq!(store.pending_outbox(10).await.unwrap().len(), 2, "{b}: the same repair is written once");
    }
}

/// Reconciliation against TMP's list: what TMP's list settles is repaired (and written once), a
/// mirror newer than TMP's `updatedAt` is left, a live token TMP does not list is reported and
/// deactivated only when the operator asks, and a read (`Mode::Report`) writes nothing.
#[tokio::test]
async fn reconciliation_repairs_what_tmps_list_settles_and_reports_the_rest() {
    use tmp_adapter::ops::tokens::{DriftKind, LeftBecause, Mode, reconcile};
    use tmp_protocol::enums::{Tsp, Wallet};
    use tmp_protocol::fields::{FreeText, Id};
    use tmp_protocol::issuer_api::TokenRequestor;
    use tmp_protocol::tmp_api::{TokenInfo, TokenList};

    let info = |token_id: &str, status: TokenStatus, updated_at: OffsetDateTime| TokenInfo {
        token_id: token_id.to_owned(),
        card_id: "card-1".to_owned(),
        status,
        tsp: Tsp::Mdes,
        token_requestor: TokenRequestor {
            id: Id::parse("50110030273").unwrap(),
            name: FreeText::parse("Apple Pay").unwrap(),
            wallet: Wallet::ApplePay,
        },
        token_last4: Some("9876".to_owned()),
        device_name: None,
        device_id: None,
        activation_code: None,
        updated_at,
    };
    for (db, store) in stores().await {
        let b = db.backend;
        // The mirror: A active (T0), B active (T0 + 2h), C active (T0) — TMP has A suspended at
        // T0 + 1h, B suspended at T0 + 1h (older than the mirror's), D which the mirror lacks,
        // and does not list C.
        for (n, token) in ["A", "C"].into_iter().enumerate() {
            let event = token_event(&format!("ev-{token}"), token, TokenStatus::Active, T0);
            let key = format!("k{n}");
            let queued = outbox("card-1", "token.status_changed", n as u32);
            store.apply_token_event(&event, &queued, &idempotency("token_events", &key)).await.unwrap();
        }
        let b_event = token_event("ev-B", "B", TokenStatus::Active, T0 + Duration::hours(2));
        let queued = outbox("card-1", "token.status_changed", 9);
        store.apply_token_event(&b_event, &queued, &idempotency("token_events", "kB")).await.unwrap();
        let hour = T0 + Duration::hours(1);
        let list = TokenList {
            card_id: "card-1".into(),
            tokens: vec![
                info("A", TokenStatus::Suspended, hour),
                info("B", TokenStatus::Suspended, hour),
                info("D", TokenStatus::Active, hour),
            ],
        };
        let now = T0 + Duration::hours(3);
        let history_len = async |token: &str| store.token_history(token).await.unwrap().len();
        let outbox_len = async || store.pending_outbox(100).await.unwrap().len();

        // A read: everything found, nothing written.
        let report = reconcile(&*store, &list, Mode::Report, now).await.unwrap();
        assert_eq!(report.checked, 4, "{b}");
        let mut found: Vec<_> = report.drift.iter().map(|d| (d.token_id.as_str(), d.kind, d.repaired)).collect();
        found.sort_by_key(|f| f.0);
        assert_eq!(
            found,
            [
                ("A", DriftKind::Status, false),
                ("B", DriftKind::Status, false),
                ("C", DriftKind::UnknownAtTmp, false),
                ("D", DriftKind::Missing, false)
            ],
            "{b}"
        );
        assert_eq!((outbox_len().await, history_len("A").await, history_len("D").await), (3, 1, 0), "{b}");

        // A run: A and D repaired as of TMP's updatedAt, B and C left, each with its reason.
        let run = reconcile(&*store, &list, Mode::Repair { deactivate_unknown: false }, now).await.unwrap();
        let outcome = |token: &str| {
            let d = run.drift.iter().find(|d| d.token_id == token).unwrap();
            (d.repaired, d.left)
        };
        assert_eq!(outcome("A"), (true, None), "{b}");
        assert_eq!(outcome("D"), (true, None), "{b}");
        assert_eq!(outcome("B"), (false, Some(LeftBecause::MirrorNewer)), "{b}");
        assert_eq!(outcome("C"), (false, Some(LeftBecause::NotListedAtTmp)), "{b}");
        let a = store.token_history("A").await.unwrap();
        assert_eq!(
            (a.len(), a[1].event.status, a[1].event.occurred_at, a[1].event.reason.as_deref()),
            (2, TokenStatus::Suspended, hour, Some("RECONCILED_WITH_TMP")),
            "{b}"
        );
        assert_eq!(store.find_token("D").await.unwrap().unwrap().status, TokenStatus::Active, "{b}");
        assert_eq!((history_len("B").await, history_len("C").await), (1, 1), "{b}: nothing written for what is left");
        assert_eq!(outbox_len().await, 5, "{b}: the sinks hear of the two repairs");
        assert_eq!(store.find_token("C").await.unwrap().unwrap().status, TokenStatus::Active, "{b}");

        // Again: only what was left is found; nothing more is written.
        let again = reconcile(&*store, &list, Mode::Repair { deactivate_unknown: false }, now).await.unwrap();
        let mut left: Vec<_> = again.drift.iter().map(|d| d.token_id.as_str()).collect();
        left.sort();
        assert_eq!(left, ["B", "C"], "{b}");
        assert_eq!(outbox_len().await, 5, "{b}");

        // The operator knows TMP dropped C: deactivated as of now, initiated by the issuer.
        let asked = reconcile(&*store, &list, Mode::Repair { deactivate_unknown: true }, now).await.unwrap();
        let c = asked.drift.iter().find(|d| d.token_id == "C").unwrap();
        assert_eq!((c.repaired, c.tmp_status), (true, None), "{b}");
        let c = store.token_history("C").await.unwrap();
        assert_eq!((c.len(), c[1].event.status, c[1].event.occurred_at), (2, TokenStatus::Deactivated, now), "{b}");
        assert_eq!(c[1].event.initiator, Some(ChangeInitiator::Issuer), "{b}");
    }
}

#[tokio::test]
async fn a_failed_token_event_writes_nothing() {
    for (db, store) in stores().await {
        let b = db.backend;
        let queued = outbox("card-1", "token.status_changed", 1);
        store
            .apply_token_event(
                &token_event("ev-1", "token-1", TokenStatus::Active, T0),
                &queued,
                &idempotency("token_events", "k1"),
            )
            .await
            .unwrap();
        // Reusing the outbox id makes the last write of the transaction fail.
        let err = store
            .apply_token_event(
                &token_event("ev-2", "token-1", TokenStatus::Suspended, T0 + Duration::minutes(1)),
                &queued,
                &idempotency("token_events", "k2"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Database(_)), "{b}: {err:?}");
        assert_eq!(store.find_idempotency("token_events", "k2").await.unwrap(), None, "{b}");
        assert_eq!(store.token_history("token-1").await.unwrap().len(), 1, "{b}");
        assert_eq!(store.find_token("token-1").await.unwrap().unwrap().status, TokenStatus::Active, "{b}");
        assert_eq!(store.pending_outbox(10).await.unwrap(), vec![queued], "{b}");
    }
}

#[tokio::test]
async fn notifications_are_stored_and_otps_erased_at_expiry() {
    for (db, store) in stores().await {
        let b = db.backend;
        let expires_at = T0 + Duration::minutes(10);
        let with_otp = notification("n-1", Some(expires_at));
        let mut without_otp = notification("n-2", None);
        without_otp.notification_type = "TOKEN_ACTIVATED".to_owned();
        without_otp.otp_ciphertext = None;
        without_otp.otp_key_id = None;
        without_otp.token_id = None;
        without_otp.channel = None;
        let mut queued = outbox("card-1", "notification.ACTIVATION_CODE_DELIVERY", 1);
        queued.not_after = Some(expires_at);

        let written = store.store_notification(&with_otp, &queued, &idempotency("notifications", "n-1")).await.unwrap();
        assert_eq!(written, IdempotentWrite::Committed, "{b}");
        store
            .store_notification(
                &without_otp,
                &outbox("card-1", "notification.TOKEN_ACTIVATED", 2),
                &idempotency("notifications", "n-2"),
            )
            .await
            .unwrap();
        assert_eq!(store.find_notification("n-1").await.unwrap(), Some(with_otp.clone()), "{b}");
        assert_eq!(store.find_notification("n-2").await.unwrap(), Some(without_otp.clone()), "{b}");
        assert_eq!(store.find_notification("n-3").await.unwrap(), None, "{b}");
        assert_eq!(store.pending_outbox(10).await.unwrap()[0], queued, "{b}");

        // Replay of the key: nothing written. Same notification under a new key: kept once,
        // not queued twice.
        let written = store
            .store_notification(&with_otp, &outbox("card-1", "card.closed", 3), &idempotency("notifications", "n-1"))
            .await
            .unwrap();
        assert_eq!(written, IdempotentWrite::AlreadyExists(idempotency("notifications", "n-1")), "{b}");
        let written = store
            .store_notification(
                &with_otp,
                &outbox("card-1", "card.closed", 4),
                &idempotency("notifications", "n-1-bis"),
            )
            .await
            .unwrap();
        assert_eq!(written, IdempotentWrite::Committed, "{b}");
        assert_eq!(store.pending_outbox(10).await.unwrap().len(), 2, "{b}");

        // Not yet expired (expiry is exclusive), then expired: erased once.
        assert_eq!(store.erase_expired_otps(expires_at - Duration::seconds(1)).await.unwrap(), 0, "{b}");
        assert_eq!(store.erase_expired_otps(expires_at).await.unwrap(), 0, "{b}");
        assert_eq!(store.erase_expired_otps(expires_at + Duration::microseconds(1)).await.unwrap(), 1, "{b}");
        assert_eq!(store.erase_expired_otps(expires_at + Duration::hours(1)).await.unwrap(), 0, "{b}");
        let erased = store.find_notification("n-1").await.unwrap().unwrap();
        assert_eq!(erased.otp_ciphertext, None, "{b}");
        assert_eq!(erased.otp_key_id, None, "{b}");
        assert_eq!(erased.expires_at, Some(expires_at), "{b}");
        assert_eq!(erased.notification_type, with_otp.notification_type, "{b}");
        assert_eq!(store.find_notification("n-2").await.unwrap(), Some(without_otp), "{b}");
    }
}

#[tokio::test]
async fn outbox_rows_are_kept_in_insertion_order() {
    for (db, store) in stores().await {
        let b = db.backend;
        let mut expected = Vec::new();
        for n in 0..6u32 {
            // Interleave two ordering keys and give later rows earlier created_at: the order
            // is the insertion order, not the timestamps.
            let key = if n % 2 == 0 { "card-1" } else { "card-2" };
            let mut row = outbox(key, "token.status_changed", 100 - n);
            if n == 3 {
                row.not_after = Some(T0 + Duration::days(1));
            }
            store
                .apply_token_event(
                    &token_event(&format!("ev-{n}"), &format!("token-{n}"), TokenStatus::Active, T0),
                    &row,
                    &idempotency("token_events", &format!("k{n}")),
                )
                .await
                .unwrap();
            expected.push(row);
        }
        assert_eq!(store.pending_outbox(100).await.unwrap(), expected, "{b}");
        assert_eq!(store.pending_outbox(4).await.unwrap(), expected[..4].to_vec(), "{b}");
        assert_eq!(store.pending_outbox(0).await.unwrap(), vec![], "{b}");
    }
}

/// Writes one outbox row per `(card, destination)`, in this order and due now (each with the
/// token event that queues it); returns the rows.
async fn queue_due_outbox(store: &DynStore, queue: &[(&str, Destination)]) -> Vec<OutboxRecord> {
    let mut rows = Vec::new();
    for (n, (card, destination)) in queue.iter().enumerate() {
        let row = OutboxRecord {
            destination: *destination,
            // Due now (the helper dates its rows in 2030).
            created_at: OffsetDateTime::now_utc() - Duration::minutes(1),
            ..outbox(card, "card.closed", n as u32)
        };
        store
            .apply_token_event(
                &token_event(&format!("ev-{n}"), &format!("token-{n}"), TokenStatus::Active, T0),
                &row,
                &idempotency("token_events", &format!("k{n}")),
            )
            .await
            .unwrap();
        rows.push(row);
    }
    rows
}

/// The ids of the TMP API's rows that `relay` claims, up to `limit`, oldest first.
async fn claim_tmp_api(store: &DynStore, now: OffsetDateTime, lease: OffsetDateTime, limit: u32) -> Vec<Uuid> {
    let claimed = store.claim_outbox("relay", Destination::TmpApi, now, lease, limit).await.unwrap();
    claimed.into_iter().map(|e| e.record.id).collect()
}

#[tokio::test]
async fn the_relay_claims_per_destination_in_order_per_card() {
    for (db, store) in stores().await {
        let b = db.backend;
        // card-1: webhook A, TMP B, webhook C; card-2: TMP D (in this insertion order).
        let rows = queue_due_outbox(
            &store,
            &[
                ("card-1", Destination::IssuerWebhook),
                ("card-1", Destination::TmpApi),
                ("card-1", Destination::IssuerWebhook),
                ("card-2", Destination::TmpApi),
            ],
        )
        .await;
        let ids = |entries: Vec<store::OutboxEntry>| entries.into_iter().map(|e| e.record.id).collect::<Vec<_>>();
        let now = OffsetDateTime::now_utc();
        let lease = now + Duration::minutes(1);
        let claim = |destination: Destination| {
            let store = store.clone();
            async move { ids(store.claim_outbox("relay", destination, now, lease, 10).await.unwrap()) }
        };

        // TMP's rows do not wait for the webhook row queued before them for the same card.
        assert_eq!(claim(Destination::TmpApi).await, vec![rows[1].id, rows[3].id], "{b}");
        // Per destination, a card's rows still go one at a time, oldest first.
        assert_eq!(claim(Destination::IssuerWebhook).await, vec![rows[0].id], "{b}");
        assert_eq!(claim(Destination::LifecycleApi).await, Vec::<Uuid>::new(), "{b}");
        assert_eq!(claim(Destination::TmpApi).await, Vec::<Uuid>::new(), "{b}: leased rows are not claimed twice");
        assert_eq!(claim(Destination::IssuerWebhook).await, Vec::<Uuid>::new(), "{b}: C waits for A");

        assert!(store.finish_outbox(rows[0].id, "relay", now, &store::DeliveryResult::Delivered).await.unwrap());
        assert_eq!(claim(Destination::IssuerWebhook).await, vec![rows[2].id], "{b}: C once A is delivered");
    }
}

#[tokio::test]
async fn a_card_behind_a_deep_queue_is_claimed_while_that_queue_is_busy() {
    for (db, store) in stores().await {
        let b = db.backend;
        // card-1 queues more rows than a claim of 2 looks through in its first step, then
        // card-2 queues one: only the second step (the head of every card) finds it.
        let deep = usize::try_from(store::claim_window(2)).unwrap() + 20;
        let queue: Vec<(&str, Destination)> =
            (0..=deep).map(|n| (if n < deep { "card-1" } else { "card-2" }, Destination::TmpApi)).collect();
        let rows = queue_due_outbox(&store, &queue).await;
        let now = OffsetDateTime::now_utc();
        let lease = now + Duration::minutes(1);
        let claim = |limit: u32| claim_tmp_api(&store, now, lease, limit);

        assert_eq!(claim(1).await, vec![rows[0].id], "{b}: card-1's head");
        assert_eq!(claim(2).await, vec![rows[deep].id], "{b}: card-2 does not wait for card-1's queue");
        assert_eq!(claim(2).await, Vec::<Uuid>::new(), "{b}: both heads are leased");
        // Recording a row says whether its card's next row became claimable (the relay claims
        // after a delivery only then): card-1 has one; card-2's row, retried, stays the head.
        let finish = |id: Uuid, result: store::DeliveryResult| {
            let store = store.clone();
            async move { store.finish_outbox_many("relay", &[store::FinishedAttempt { id, at: now, result }]).await }
        };
        let retry = store::DeliveryResult::Retry { at: now + Duration::minutes(5), error: "HTTP 503".into() };
        let alone = vec![store::Recorded::Written { next_in_line: false }];
        assert_eq!(finish(rows[deep].id, retry).await.unwrap(), alone, "{b}: retried, card-2's row stays its head");
        let next = vec![store::Recorded::Written { next_in_line: true }];
        assert_eq!(finish(rows[0].id, store::DeliveryResult::Delivered).await.unwrap(), next, "{b}");
        assert_eq!(claim(2).await, vec![rows[1].id], "{b}: card-1's next row, and only that");
    }
}

#[tokio::test]
async fn a_claim_whose_first_step_comes_back_short_also_takes_the_heads_past_its_window() {
    for (db, store) in stores().await {
        let b = db.backend;
        // card-0 queues one row, card-1 the rest of what a claim of 3 looks through, card-2 the
        // first row past that window: the first step leases card-1's head and — the row telling
        // it that a pending row lies past the window — the second step adds card-2's.
        let deep = usize::try_from(store::claim_window(3)).unwrap() - 1;
        let mut queue = vec![("card-0", Destination::TmpApi)];
        queue.extend((0..deep).map(|_| ("card-1", Destination::TmpApi)));
        queue.push(("card-2", Destination::TmpApi));
        let rows = queue_due_outbox(&store, &queue).await;
        let now = OffsetDateTime::now_utc();
        let lease = now + Duration::minutes(1);
        let claim = |limit: u32| claim_tmp_api(&store, now, lease, limit);

        assert_eq!(claim(1).await, vec![rows[0].id], "{b}: card-0's row");
        assert_eq!(claim(3).await, vec![rows[1].id, rows[deep + 1].id], "{b}: card-1's head, then card-2's");
    }
}

#[tokio::test]
async fn recording_a_result_says_whether_the_cards_next_row_became_claimable() {
    for (db, store) in stores().await {
        let b = db.backend;
        // card-1 and card-2 have a row behind their head, card-3 none.
        let queue = [
            ("card-1", Destination::TmpApi),
            ("card-2", Destination::TmpApi),
            ("card-3", Destination::TmpApi),
            ("card-1", Destination::TmpApi),
            ("card-2", Destination::TmpApi),
        ];
        let rows = queue_due_outbox(&store, &queue).await;
        let now = OffsetDateTime::now_utc();
        let claimed = store.claim_outbox("relay", Destination::TmpApi, now, now + Duration::minutes(1), 10).await;
        assert_eq!(claimed.unwrap().len(), 3, "{b}: the three heads");
        let attempt =
            |n: usize, result: store::DeliveryResult| store::FinishedAttempt { id: rows[n].id, at: now, result };
        let recorded = store
            .finish_outbox_many(
                "relay",
                &[
                    // Dead: it leaves card-1's queue, the next row is claimable.
                    attempt(0, store::DeliveryResult::Dead { error: "HTTP 400".into() }),
                    // Held: it stays card-2's head, the row behind it waits.
                    attempt(1, store::DeliveryResult::Held { error: "HTTP 404".into() }),
                    // The same row twice (re-claimed after its lease ran out): the last counts.
                    attempt(2, store::DeliveryResult::Retry { at: now, error: "HTTP 503".into() }),
                    attempt(2, store::DeliveryResult::Delivered),
                ],
            )
            .await
            .unwrap();
        use store::Recorded::{LeaseLost, Written};
        assert_eq!(
            recorded,
            vec![
                Written { next_in_line: true },
                Written { next_in_line: false },
                LeaseLost,
                Written { next_in_line: false }
            ],
            "{b}"
        );
        let third = store.find_outbox(rows[2].id).await.unwrap().unwrap();
        assert_eq!((third.status, third.attempts), (OutboxStatus::Delivered, 1), "{b}: recorded once, the last");
    }
}

#[tokio::test]
async fn results_recorded_together_fail_only_the_row_whose_lease_was_lost() {
    for (db, store) in stores().await {
        let b = db.backend;
        let queue = [("card-1", Destination::TmpApi), ("card-2", Destination::TmpApi), ("card-3", Destination::TmpApi)];
        let rows = queue_due_outbox(&store, &queue).await;
        let now = OffsetDateTime::now_utc();
        let lease = now + Duration::minutes(1);
        let claimed = store.claim_outbox("relay", Destination::TmpApi, now, lease, 10).await.unwrap();
        assert_eq!(claimed.len(), 3, "{b}");
        // An operator skips card-2's row while it is in flight: the relay no longer holds it.
        assert!(store.skip_outbox(rows[1].id, "operator").await.unwrap(), "{b}");
        let retry_at = now + Duration::seconds(30);
        let attempts = [
            store::FinishedAttempt { id: rows[0].id, at: now, result: store::DeliveryResult::Delivered },
            store::FinishedAttempt { id: rows[1].id, at: now, result: store::DeliveryResult::Delivered },
            store::FinishedAttempt {
                id: rows[2].id,
                at: now,
                result: store::DeliveryResult::Retry { at: retry_at, error: "HTTP 503".into() },
            },
        ];
        let written = store.finish_outbox_many("relay", &attempts).await.unwrap();
        let alone = store::Recorded::Written { next_in_line: false };
        assert_eq!(written, vec![alone, store::Recorded::LeaseLost, alone], "{b}");
        let row = |id: Uuid| {
            let store = store.clone();
            async move { store.find_outbox(id).await.unwrap().unwrap() }
        };
        let (first, second, third) = (row(rows[0].id).await, row(rows[1].id).await, row(rows[2].id).await);
        assert_eq!((first.status, first.attempts), (OutboxStatus::Delivered, 1), "{b}");
        assert_eq!((second.status, second.last_error.as_deref()), (OutboxStatus::Dead, Some("operator")), "{b}");
        assert_eq!((third.status, third.attempts, third.lease_owner), (OutboxStatus::Pending, 1, None), "{b}");
        assert_eq!(third.next_attempt_at.unix_timestamp(), retry_at.unix_timestamp(), "{b}");
        assert!(store.finish_outbox_many("relay", &[]).await.unwrap().is_empty(), "{b}: nothing to record");
    }
}

#[tokio::test]
async fn more_results_than_one_statement_records_are_all_written() {
    // The store records at most 500 results per statement (`RESULTS_PER_STATEMENT`): 1 100
    // take three, and each result's columns land on its own row.
    for (db, store) in stores().await {
        let b = db.backend;
        let cards: Vec<String> = (0..1_100).map(|n| format!("card-{n}")).collect();
        let queue: Vec<(&str, Destination)> = cards.iter().map(|c| (c.as_str(), Destination::TmpApi)).collect();
        let rows = queue_due_outbox(&store, &queue).await;
        let now = OffsetDateTime::now_utc();
        let claimed = store.claim_outbox("relay", Destination::TmpApi, now, now + Duration::minutes(1), 2_000).await;
        assert_eq!(claimed.unwrap().len(), 1_100, "{b}");
        let result = |n: usize| match n % 3 {
            0 => store::DeliveryResult::Delivered,
            1 => store::DeliveryResult::Held { error: format!("HTTP 404 for {n}") },
            _ => store::DeliveryResult::Dead { error: format!("HTTP 400 for {n}") },
        };
        let attempts: Vec<store::FinishedAttempt> = rows
            .iter()
            .enumerate()
            .map(|(n, row)| store::FinishedAttempt { id: row.id, at: now, result: result(n) })
            .collect();
        let written = store.finish_outbox_many("relay", &attempts).await.unwrap();
        assert_eq!(written, vec![store::Recorded::Written { next_in_line: false }; 1_100], "{b}");
        let stats = store.outbox_stats().await.unwrap();
        // 367 delivered, 367 held (stored pending), 366 dead.
        assert_eq!((stats.pending, stats.held, stats.dead), (367, 367, 366), "{b}");
        for n in [0, 499, 500, 501, 1_000, 1_099] {
            let row = store.find_outbox(rows[n].id).await.unwrap().unwrap();
            let expected = match n % 3 {
                0 => (OutboxStatus::Delivered, None),
                1 => (OutboxStatus::Held, Some(format!("HTTP 404 for {n}"))),
                _ => (OutboxStatus::Dead, Some(format!("HTTP 400 for {n}"))),
            };
            assert_eq!(
                (row.status, row.last_error, row.attempts, row.lease_owner),
                (expected.0, expected.1, 1, None),
                "{b}: row {n}"
            );
        }
        // Recorded again by the same owner: the leases are gone, nothing is written twice.
        let again = store.finish_outbox_many("relay", &attempts[..3]).await.unwrap();
        assert_eq!(again, vec![store::Recorded::LeaseLost; 3], "{b}");
    }
}

#[tokio::test]
async fn a_held_head_blocks_its_card_until_an_operator_retries_replays_or_skips_it() {
    for (db, store) in stores().await {
        let b = db.backend;
        let queue = [("card-1", Destination::TmpApi), ("card-1", Destination::TmpApi), ("card-2", Destination::TmpApi)];
        let rows = queue_due_outbox(&store, &queue).await;
        let now = OffsetDateTime::now_utc();
        let lease = now + Duration::minutes(1);
        let claim = || claim_tmp_api(&store, now, lease, 10);
        let held = store::DeliveryResult::Held { error: "HTTP 404 NOT_FOUND".into() };
        let status = |id: Uuid| {
            let store = store.clone();
            async move { store.find_outbox(id).await.unwrap().unwrap() }
        };

        assert_eq!(claim().await, vec![rows[0].id, rows[2].id], "{b}");
        assert!(store.finish_outbox(rows[0].id, "relay", now, &held).await.unwrap());
        assert!(store.finish_outbox(rows[2].id, "relay", now, &store::DeliveryResult::Delivered).await.unwrap());
        let row = status(rows[0].id).await;
        assert_eq!((row.status, row.attempts), (OutboxStatus::Held, 1), "{b}");
        assert!(row.held_at.is_some() && row.last_error.as_deref() == Some("HTTP 404 NOT_FOUND"), "{b}");
        let stats = store.outbox_stats().await.unwrap();
        assert_eq!((stats.pending, stats.held, stats.dead), (2, 1, 0), "{b}: a held row is still undelivered");
        // Neither the held head nor the row behind it is claimed, however long one waits.
        let later = now + Duration::days(1);
        let claimed = store.claim_outbox("relay", Destination::TmpApi, later, later + Duration::minutes(1), 10);
        assert!(claimed.await.unwrap().is_empty(), "{b}: card-1 is held");
        // Nor does a relay's late result touch it.
        assert!(!store.finish_outbox(rows[0].id, "relay", now, &store::DeliveryResult::Delivered).await.unwrap());

        // Retry: due now, fresh schedule, head again.
        assert!(store.retry_outbox(rows[0].id, now).await.unwrap(), "{b}");
        let row = status(rows[0].id).await;
        assert_eq!((row.status, row.attempts, row.held_at), (OutboxStatus::Pending, 0, None), "{b}");
        assert_eq!(claim().await, vec![rows[0].id], "{b}");
        // Held again; replay by card frees it the same way.
        assert!(store.finish_outbox(rows[0].id, "relay", now, &held).await.unwrap());
        let card_1 = store::ReplaySelector::OrderingKey("card-1".into());
        assert_eq!(
            store.replay_outbox(&card_1, false, now).await.unwrap(),
            1,
            "{b}: the held row, not the one waiting behind it"
        );
        assert_eq!(claim().await, vec![rows[0].id], "{b}");
        // Held again; skipping it lets the card's next row go.
        assert!(store.finish_outbox(rows[0].id, "relay", now, &held).await.unwrap());
        assert!(store.skip_outbox(rows[0].id, "skipped by an operator").await.unwrap(), "{b}");
        let row = status(rows[0].id).await;
        assert_eq!((row.status, row.held_at), (OutboxStatus::Dead, None), "{b}");
        assert_eq!(claim().await, vec![rows[1].id], "{b}: card-1's next row");
        let stats = store.outbox_stats().await.unwrap();
        assert_eq!((stats.pending, stats.held, stats.dead), (1, 0, 1), "{b}");
    }
}

#[tokio::test]
async fn idempotency_records_are_purged_by_age() {
    for (db, store) in stores().await {
        let b = db.backend;
        let mut old = idempotency("verify_card", "old");
        old.created_at = T0 - Duration::days(2);
        let new = idempotency("verify_card", "new");
        store.record_decision(&decision("card-1", T0), Some(&old)).await.unwrap();
        store.record_decision(&decision("card-1", T0), Some(&new)).await.unwrap();

        assert_eq!(store.purge_idempotency(T0 - Duration::days(3)).await.unwrap(), 0, "{b}");
        assert_eq!(store.purge_idempotency(T0 - Duration::days(1)).await.unwrap(), 1, "{b}");
        assert_eq!(store.find_idempotency("verify_card", "old").await.unwrap(), None, "{b}");
        assert_eq!(store.find_idempotency("verify_card", "new").await.unwrap(), Some(new.clone()), "{b}");
        // Created exactly at the limit: kept (strictly before is purged).
        assert_eq!(store.purge_idempotency(T0).await.unwrap(), 0, "{b}");
        // Once purged, the key can be used again.
        assert_eq!(
            store.record_decision(&decision("card-1", T0), Some(&old)).await.unwrap(),
            IdempotentWrite::Committed,
            "{b}"
        );
    }
}

#[tokio::test]
async fn request_ids_detect_replays_until_purged() {
    for (db, store) in stores().await {
        let b = db.backend;
        assert!(store.remember_request_id("msg_1", T0).await.unwrap(), "{b}");
        assert!(!store.remember_request_id("msg_1", T0 + Duration::seconds(1)).await.unwrap(), "{b}: replay");
        assert!(store.remember_request_id("msg_2", T0 + Duration::minutes(10)).await.unwrap(), "{b}");

        assert_eq!(store.purge_request_ids(T0).await.unwrap(), 0, "{b}");
        assert_eq!(store.purge_request_ids(T0 + Duration::minutes(5)).await.unwrap(), 1, "{b}");
        assert!(!store.remember_request_id("msg_2", T0 + Duration::minutes(11)).await.unwrap(), "{b}");
        assert!(store.remember_request_id("msg_1", T0 + Duration::minutes(11)).await.unwrap(), "{b}");
    }
}

/// Migration 0007 gives the token events stored before it their `applied` flag by the mirror's
/// rule replayed in arrival order: an event is history only if one that happened later had
/// arrived before it — of the same token.
#[tokio::test]
async fn migration_0007_marks_the_events_stored_before_it_as_the_mirror_took_them() {
    const ROWS: &str = "INSERT INTO token_events (event_id, token_id, card_id, tsp, token_requestor_id, wallet, \
         status, occurred_at, received_at) VALUES \
         ('e1', 't1', 'c1', 'MDES', '50110030273', 'APPLE_PAY', 'ACTIVE', '2030-01-01T10:00:00.000000Z', '2030-01-01T10:00:01.000000Z'), \
         ('e3', 't1', 'c1', 'MDES', '50110030273', 'APPLE_PAY', 'DEACTIVATED', '2030-01-01T10:02:00.000000Z', '2030-01-01T10:00:02.000000Z'), \
         ('e2', 't1', 'c1', 'MDES', '50110030273', 'APPLE_PAY', 'SUSPENDED', '2030-01-01T10:01:00.000000Z', '2030-01-01T10:00:03.000000Z'), \
         ('f1', 't2', 'c1', 'MDES', '50110030273', 'APPLE_PAY', 'ACTIVE', '2030-01-01T09:00:00.000000Z', '2030-01-01T11:00:00.000000Z')";
    macro_rules! before_0007 {
        ($pool:expr, $migrator:expr) => {{
            let pool = $pool;
            $migrator.run_to(6, &pool).await.expect("migrations 1 to 6");
            sqlx::query(ROWS).execute(&pool).await.expect("rows as 0006 stored them");
            pool.close().await;
        }};
    }
    for db in test_databases().await {
        if db.backend == "postgres" {
            before_0007!(sqlx::PgPool::connect(&db.url).await.unwrap(), sqlx::migrate!("migrations/postgres"));
        } else {
            let options = db.url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().create_if_missing(true);
            let path = db.url.trim_start_matches("sqlite://");
            std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
            before_0007!(sqlx::SqlitePool::connect_with(options).await.unwrap(), sqlx::migrate!("migrations/sqlite"));
        }
        let store = store::connect(&db.url, 2).await.unwrap();
        store.migrate().await.unwrap();
        let applied = |token: &'static str| {
            let store = store.clone();
            async move {
                let history = store.token_history(token).await.unwrap();
                history.into_iter().map(|e| (e.event.event_id, e.applied, e.event.initiator)).collect::<Vec<_>>()
            }
        };
        assert_eq!(
            applied("t1").await,
            [("e1".into(), true, None), ("e2".into(), false, None), ("e3".into(), true, None)],
            "{}: e2 arrived after e3, which happened later",
            db.backend
        );
        assert_eq!(applied("t2").await, [("f1".into(), true, None)], "{}", db.backend);
    }
}
