//! Processor events forwarded by a real tmp-adapter to mock-tmp, end to end, for both
//! approaches (docs/forwarding.md): each event goes in through the adapter's signed
//! `POST /processor/v1/events` (PAN / expiry as JWE to the adapter's key), out through its
//! outbox relay to the mock's TMP API or Lifecycle API with the documented mapping, and the
//! tokens follow at the mock and, through the mock's token events, in the adapter's mirror.
//!
//! Every wait polls state (the adapter's outbox, the mock's inspection endpoints, the adapter's
//! mirror) under a generous bound and fails naming what it waited for.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mock_tmp::MockConfig;
use serde_json::{Value, json};
use tmp_adapter::config::{Approach, Settings};
use tmp_adapter::outbox::{Destination, OutboxStatus};
use tmp_adapter::store::{OutboxEntry, OutboxFilter};
use tmp_protocol::enums::TokenStatus;
use tmp_protocol::jwk::{JwkSet, PublicJwk};
use tmp_protocol::trace_context::{TRACEPARENT, TraceParent};
use tmp_protocol::webhook::{SignatureHeaders, WebhookSecret};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{EXPIRY, Kit, PAN_ACTIVE, PAN_DATACORE};

/// What the processor signs its events with (a test secret, not the development one).
const PROCESSOR_SECRET: &str = "whsec_bW9jay10bXAtZm9yd2FyZGluZy10ZXN0LXByb2Nlc3Nvcg==";
/// A replacement card's PAN, unknown to the fixtures.
const PAN_NEW: &str = "4000056655665556";
const WAIT: Duration = Duration::from_secs(30);

/// Polls `check` until it yields a value; fails naming `what` after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < WAIT, "timed out after {WAIT:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A TCP pass-through bound before the adapter starts: the adapter's forwarding URL must be
/// known when it is built, the mock's port only once the mock (which needs the adapter's
/// URL) is up. Connections wait until the mock's address is set.
pub(crate) struct PassThrough {
    pub(crate) url: String,
    pub(crate) target: watch::Sender<Option<SocketAddr>>,
}

impl PassThrough {
    pub(crate) async fn start() -> PassThrough {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the pass-through");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (target, rx) = watch::channel(None::<SocketAddr>);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let Ok(addr) = rx.wait_for(Option::is_some).await.map(|a| a.expect("set")) else { return };
                    if let Ok(mut outbound) = TcpStream::connect(addr).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        PassThrough { url, target }
    }
}

/// Relay on with a short schedule, the processor's secret, and forwarding (`approach`) to
/// `url` signed with the secret the mock accepts inbound.
fn forwarding_settings(settings: &mut Settings, approach: Approach, url: &str) {
    settings.relay.enabled = true;
    settings.relay.poll_interval_ms = 20;
    settings.relay.request_timeout_ms = 5000;
    settings.relay.lease_secs = 15;
    settings.relay.retry_schedule_ms = vec![50, 100, 200, 400, 800, 1600];
    settings.relay.jitter_percent = 0;
    settings.relay.retry_after_max_secs = 1;
    settings.processor.hmac_secrets = vec![PROCESSOR_SECRET.parse().expect("a whsec_ secret")];
    settings.forwarding.approach = approach;
    // The kit signs toward the mock with the secret it generated; only the address changes (a
    // pass-through in front of the mock).
    for d in [&mut settings.forwarding.tmp_api, &mut settings.forwarding.lifecycle_api] {
        d.base_url = url.to_owned();
    }
}

struct Forwarding {
    kit: Kit,
    adapter_key: PublicJwk,
    next_event: u32,
}

impl Forwarding {
    async fn spawn(approach: Approach) -> Forwarding {
        Self::spawn_with(approach, |_| {}).await
    }

    async fn spawn_with(approach: Approach, customize: impl FnOnce(&mut Settings)) -> Forwarding {
        Self::spawn_full(approach, customize, |_| {}).await
    }

    /// With the adapter's settings and the mock's configuration customised.
    async fn spawn_full(
        approach: Approach,
        customize: impl FnOnce(&mut Settings),
        customize_mock: impl FnOnce(&mut MockConfig),
    ) -> Forwarding {
        let pass = PassThrough::start().await;
        let url = pass.url.clone();
        let kit = Kit::spawn_with(
            |s| {
                forwarding_settings(s, approach, &url);
                customize(s);
            },
            customize_mock,
        )
        .await;
        pass.target.send_replace(kit.inner.mock_addr().await);
        let set: JwkSet = kit
            .client
            .get(format!("{}/issuer-api/v1/public-key", kit.adapter_url))
            .send()
            .await
            .expect("adapter public key")
            .json()
            .await
            .expect("a JWK set");
        let adapter_key = set.encryption_key().expect("an encryption key").clone();
        Forwarding { kit, adapter_key, next_event: 0 }
    }

    fn encrypt(&self, value: &Value) -> String {
        tmp_protocol::jwe::encrypt_json(value, &self.adapter_key).expect("jwe")
    }

    fn card(&self, pan: &str, expiry: &str) -> String {
        self.encrypt(&json!({"pan": pan, "expiry": expiry}))
    }

    /// Posts one processor event (signed, as the processor does); asserts 202 and waits until
    /// its forwarded message is delivered. Returns the outbox row.
    async fn event(&mut self, card_id: &str, kind: &str, data: Value) -> OutboxEntry {
        self.next_event += 1;
        let id = format!("evt-{}", self.next_event);
        let body = json!({"id": id, "cardId": card_id, "type": kind, "occurredAt": "2026-03-01T10:00:00Z",
                          "data": data});
        let bytes = serde_json::to_vec(&body).expect("json");
        // The processor's trace: the outbox keeps it and the call to TMP continues it.
        let trace = TraceParent::start();
        let secret = WebhookSecret::parse(PROCESSOR_SECRET).expect("secret");
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let headers =
            SignatureHeaders::sign(&[secret], &tmp_protocol::webhook::new_message_id(), now, &bytes).expect("sign");
        let mut request = self
            .kit
            .client
            .post(format!("{}/processor/v1/events", self.kit.adapter_url))
            .header("content-type", "application/json")
            .header(TRACEPARENT, trace.to_string());
        for (name, value) in headers.to_header_pairs() {
            request = request.header(name, value);
        }
        let response = request.body(bytes).send().await.expect("the adapter answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 202, "{kind} on {card_id}: {text}");
        assert_eq!(serde_json::from_str::<Value>(&text).expect("json"), json!({"accepted": 1, "duplicates": 0}));

        let store = &self.kit.store;
        let row = eventually(&format!("the outbox row of {kind} ({id}) to be delivered"), || async {
            let filter = OutboxFilter { status: None, ordering_key: Some(card_id.to_owned()), limit: 1000 };
            let rows = store.list_outbox(&filter).await.expect("outbox");
            let row = rows.into_iter().find(|r| r.record.message.to_json()["event"]["id"] == id)?;
            assert!(
                !matches!(row.status, OutboxStatus::Dead | OutboxStatus::Held),
                "{kind} failed: {:?}",
                row.last_error
            );
            (row.status == OutboxStatus::Delivered).then_some(row)
        })
        .await;
        // The mock queued its token events before answering: let them reach the adapter.
        self.kit.inner.mock_idle().await;
        assert_eq!(
            row.record.traceparent.map(|t| t.trace_id()),
            Some(trace.trace_id()),
            "{kind}: the outbox row's trace"
        );
        row
    }

    /// The request the mock received for an outbox row (its idempotency key is the row id).
    async fn received(&self, row: &OutboxEntry) -> Value {
        let key = row.record.id.to_string();
        let journal = self.kit.get("/_mock/v1/requests").await;
        let hits: Vec<Value> = journal["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .filter(|e| e["direction"] == "received" && e["idempotencyKey"] == key.as_str())
            .cloned()
            .collect();
        assert!(!hits.is_empty(), "the mock never received row {key} ({})", row.record.event_type());
        hits.last().cloned().expect("an entry")
    }

    /// Asserts the mapping of a delivered row: method, path, answer status.
    async fn assert_call(&self, row: &OutboxEntry, method: &str, path: &str, status: u16) -> Value {
        let entry = self.received(row).await;
        let trace_id = row.record.traceparent.expect("the row keeps its trace").trace_id();
        assert_eq!(entry["traceId"], trace_id.as_str(), "the delivery continues the processor's trace: {entry}");
        assert_eq!(
            (entry["method"].as_str(), entry["path"].as_str(), entry["status"].as_u64()),
            (Some(method), Some(path), Some(u64::from(status))),
            "{} → {entry}",
            row.record.event_type()
        );
        assert!(entry["webhookId"].as_str().is_some_and(|w| !w.is_empty()), "signed: {entry}");
        entry
    }

    async fn mock_card(&self, card_id: &str) -> Value {
        let cards = self.kit.get("/_mock/v1/cards").await;
        cards["cards"]
            .as_array()
            .expect("cards")
            .iter()
            .find(|c| c["cardId"] == card_id)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Waits until every token in `tokens` has `status` and `card_id` at the mock and in the
    /// adapter's mirror.
    async fn tokens_follow(&self, tokens: &[String], card_id: &str, status: TokenStatus) {
        let word = serde_json::to_value(status).expect("status");
        for token in tokens {
            let what = format!("token {token} to be {word} on {card_id} at the mock and in the adapter");
            eventually(&what, || async {
                let at_mock = self.kit.mock_token(token).await;
                let mirror = self.kit.store.find_token(token).await.expect("store")?;
                (at_mock["status"] == word
                    && at_mock["cardId"] == card_id
                    && mirror.status == status
                    && mirror.card_id == card_id)
                    .then_some(())
            })
            .await;
        }
    }

    /// Waits until the adapter holds a `CARD_REMOVED_BY_ISSUER` notification for each token.
    async fn removed_by_issuer(&self, tokens: &[String]) {
        for token in tokens {
            eventually(&format!("CARD_REMOVED_BY_ISSUER for {token} stored by the adapter"), || async {
                let sent = self.kit.sent("/issuer-api/v1/notifications").await;
                let entry = sent.iter().find(|e| {
                    e["body"]["type"] == "CARD_REMOVED_BY_ISSUER"
                        && e["body"]["tokenId"] == token.as_str()
                        && e["status"].as_u64().is_some_and(|s| (200..300).contains(&s))
                })?;
                let id = entry["body"]["notificationId"].as_str()?;
                let stored = self.kit.store.find_notification(id).await.expect("store")?;
                (stored.notification_type == "CARD_REMOVED_BY_ISSUER"
                    && stored.token_id.as_deref() == Some(token.as_str()))
                .then_some(())
            })
            .await;
        }
    }

    /// Waits until nothing is left in the adapter's outbox, and asserts nothing went dead.
    async fn drained(&self) {
        let store = &self.kit.store;
        let failed = || async {
            let mut failed = Vec::new();
            for status in [OutboxStatus::Held, OutboxStatus::Dead] {
                let filter = OutboxFilter { status: Some(status), ordering_key: None, limit: 100 };
                failed.extend(store.list_outbox(&filter).await.expect("outbox").into_iter().map(|r| r.last_error));
            }
            failed
        };
        eventually("the adapter's outbox to drain", || async {
            // A held row never drains: say why at once rather than at the deadline.
            let failed = failed().await;
            assert!(failed.is_empty(), "failed rows: {failed:?}");
            store.pending_outbox(1).await.expect("outbox").is_empty().then_some(())
        })
        .await;
        let failed = failed().await;
        assert!(failed.is_empty(), "failed rows: {failed:?}");
    }

    async fn tokenize(&self, body: Value) -> String {
        let answer = self.kit.simulate(body).await;
        assert_eq!(answer["path"], "GREEN", "{answer}");
        self.kit.inner.mock_idle().await;
        let token = answer["tokenId"].as_str().expect("token id").to_owned();
        eventually(&format!("the adapter to mirror token {token}"), || async {
            self.kit.store.find_token(&token).await.expect("store").map(|_| ())
        })
        .await;
        token
    }
}

#[tokio::test]
async fn external_block_unblock_renew_replace_close_reach_tmp_and_the_tokens_follow() {
    let mut f = Forwarding::spawn(Approach::External).await;
    // The card as the simulator needs it: known to TMP through green tokenizations, decided by
    // the adapter (verify-card against its registry).
    let google = f.tokenize(json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY"})).await;
    let tablet = f
        .tokenize(
            json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY", "deviceName": "Tablet"}),
        )
        .await;
    let tokens = vec![google.clone(), tablet.clone()];
    f.tokens_follow(&tokens, "card-active", TokenStatus::Active).await;

    // Block → POST …/status {status, reason}; tokens suspended by the block.
    let row = f.event("card-active", "card.status_changed", json!({"status": "BLOCKED", "reason": "lost"})).await;
    assert_eq!(row.record.destination, Destination::TmpApi);
    let call = f.assert_call(&row, "POST", "/tmp-api/v1/cards/card-active/status", 200).await;
    assert_eq!(call["body"], json!({"status": "BLOCKED", "reason": "lost"}));
    f.tokens_follow(&tokens, "card-active", TokenStatus::Suspended).await;
    assert_eq!(f.kit.mock_token(&google).await["suspendedBy"], json!(["CARD_BLOCK"]));
    assert_eq!(f.mock_card("card-active").await["status"], "BLOCKED");

    // Unblock → resumed.
    let row = f.event("card-active", "card.status_changed", json!({"status": "ACTIVE"})).await;
    let call = f.assert_call(&row, "POST", "/tmp-api/v1/cards/card-active/status", 200).await;
    assert_eq!(call["body"], json!({"status": "ACTIVE"}));
    f.tokens_follow(&tokens, "card-active", TokenStatus::Active).await;
    assert_eq!(f.mock_card("card-active").await["status"], "ACTIVE");

    // A new design → POST …/metadata as sent; the wallets show it on every token.
    let gold = json!({"productName": "Example Gold", "cardArtId": "art-gold-2026"});
    let row = f.event("card-active", "card.metadata_updated", gold.clone()).await;
    let call = f.assert_call(&row, "POST", "/tmp-api/v1/cards/card-active/metadata", 200).await;
    assert_eq!(call["body"], gold);
    for token in &tokens {
        assert_eq!(f.kit.mock_token(token).await["product"], gold, "{token}");
    }

    // Renew → POST …/expiry {encryptedPayload: JWE{expiry}} to TMP's key.
    let row = f
        .event("card-active", "card.renewed", json!({"encryptedPayload": f.encrypt(&json!({"expiry": "11/31"}))}))
        .await;
    let call = f.assert_call(&row, "POST", "/tmp-api/v1/cards/card-active/expiry", 200).await;
    assert!(call["body"]["encryptedPayload"].is_string(), "{call}");
    let renewed = f.kit.sent("/issuer-api/v1/tokens/events").await;
    for token in &tokens {
        assert!(
            renewed.iter().any(|e| e["body"]["tokenId"] == token.as_str() && e["body"]["reason"] == "CARD_RENEWED"),
            "a CARD_RENEWED token event for {token}"
        );
    }
    // TMP now holds the new expiry: a tokenization from the card TMP holds (its PAN and
    // expiry) passes the adapter's verify-card, whose registry was renewed too.
    let third = f.tokenize(json!({"cardId": "card-active", "wallet": "GOOGLE_PAY"})).await;
    let tokens = vec![google.clone(), tablet.clone(), third];

    // Replace → POST …/replace {newCardId, encryptedPayload}; the tokens move to the new card.
    let row = f
        .event(
            "card-active",
            "card.replaced",
            json!({"newCardId": "card-new", "encryptedPayload": f.card(PAN_NEW, "12/32")}),
        )
        .await;
    let call = f.assert_call(&row, "POST", "/tmp-api/v1/cards/card-active/replace", 200).await;
    assert_eq!(call["body"]["newCardId"], "card-new");
    f.tokens_follow(&tokens, "card-new", TokenStatus::Active).await;
    // The token made after the update was made with the card's design; the moved ones keep it.
    for token in &tokens {
        assert_eq!(f.kit.mock_token(token).await["product"], gold, "{token}");
    }
    assert_eq!(f.mock_card("card-active").await["replacedBy"], "card-new");
    assert_eq!(f.mock_card("card-new").await["panLast4"], &PAN_NEW[12..]);

    // Close (the new card) → POST …/status {status: CLOSED, reason}; tokens deactivated and
    // CARD_REMOVED_BY_ISSUER reached the adapter.
    let row = f.event("card-new", "card.closed", json!({"reason": "customer request"})).await;
    let call = f.assert_call(&row, "POST", "/tmp-api/v1/cards/card-new/status", 200).await;
    assert_eq!(call["body"], json!({"status": "CLOSED", "reason": "customer request"}));
    f.tokens_follow(&tokens, "card-new", TokenStatus::Deactivated).await;
    f.removed_by_issuer(&tokens).await;
    assert_eq!(f.mock_card("card-new").await["status"], "CLOSED");
    f.drained().await;
}

#[tokio::test]
async fn datacore_issue_block_unblock_renew_replace_close_reach_the_lifecycle_api_and_the_tokens_follow() {
    let mut f = Forwarding::spawn(Approach::Datacore).await;
    let tokenize = |pan: &str, expiry: &str| json!({"card": {"pan": pan, "expiry": expiry}, "wallet": "GOOGLE_PAY", "approach": "datacore"});

    // Issue → POST /lifecycle/v1/cards; the card is in DataCore and a datacore tokenization works.
    let row = f
        .event(
            "card-dc",
            "card.issued",
            json!({"encryptedPayload": f.card(PAN_DATACORE, EXPIRY), "productCategory": "CONSUMER_DEBIT",
                   "cardholder": {"phone": "+48500100400"}}),
        )
        .await;
    assert_eq!(row.record.destination, Destination::LifecycleApi);
    let call = f.assert_call(&row, "POST", "/lifecycle/v1/cards", 201).await;
    assert_eq!(call["body"]["cardId"], "card-dc");
    assert_eq!(call["body"]["status"], "ACTIVE");
    assert!(call["body"]["encryptedPayload"].is_string(), "{call}");
    let card = f.mock_card("card-dc").await;
    assert_eq!(
        (&card["inDatacore"], &card["panLast4"], &card["status"], &card["productCategory"]),
        (&json!(true), &json!(&PAN_DATACORE[12..]), &json!("ACTIVE"), &json!("CONSUMER_DEBIT")),
        "{card}"
    );
    let first = f.tokenize(tokenize(PAN_DATACORE, EXPIRY)).await;
    let second = f.tokenize(tokenize(PAN_DATACORE, EXPIRY)).await;
    let tokens = vec![first, second];
    f.tokens_follow(&tokens, "card-dc", TokenStatus::Active).await;

    // Block → PATCH {status}.
    let row = f.event("card-dc", "card.status_changed", json!({"status": "BLOCKED", "reason": "fraud"})).await;
    let call = f.assert_call(&row, "PATCH", "/lifecycle/v1/cards/card-dc", 200).await;
    assert_eq!(call["body"], json!({"status": "BLOCKED"}));
    f.tokens_follow(&tokens, "card-dc", TokenStatus::Suspended).await;
    assert_eq!(f.mock_card("card-dc").await["status"], "BLOCKED");

    // Unblock → PATCH {status: ACTIVE}.
    let row = f.event("card-dc", "card.status_changed", json!({"status": "ACTIVE"})).await;
    let call = f.assert_call(&row, "PATCH", "/lifecycle/v1/cards/card-dc", 200).await;
    assert_eq!(call["body"], json!({"status": "ACTIVE"}));
    f.tokens_follow(&tokens, "card-dc", TokenStatus::Active).await;

    // Contact change → PATCH {cardholder}.
    let row = f.event("card-dc", "cardholder.updated", json!({"email": "holder@example.com"})).await;
    let call = f.assert_call(&row, "PATCH", "/lifecycle/v1/cards/card-dc", 200).await;
    assert_eq!(call["body"], json!({"cardholder": {"email": "holder@example.com"}}));

    // An upgrade → PATCH {metadata}: DataCore answers the new category, the tokens show it.
    let upgrade = json!({"productId": "gold-2026", "productCategory": "CONSUMER_CREDIT"});
    let row = f.event("card-dc", "card.metadata_updated", upgrade.clone()).await;
    let call = f.assert_call(&row, "PATCH", "/lifecycle/v1/cards/card-dc", 200).await;
    assert_eq!(call["body"], json!({"metadata": upgrade}));
    assert_eq!(f.mock_card("card-dc").await["productCategory"], "CONSUMER_CREDIT");
    for token in &tokens {
        assert_eq!(f.kit.mock_token(token).await["product"], upgrade, "{token}");
    }

    // Renew → PATCH {encryptedPayload: JWE{expiry}} to the Lifecycle API's key: DataCore
    // decides the next tokenization on the new expiry.
    let row =
        f.event("card-dc", "card.renewed", json!({"encryptedPayload": f.encrypt(&json!({"expiry": "01/33"}))})).await;
    let call = f.assert_call(&row, "PATCH", "/lifecycle/v1/cards/card-dc", 200).await;
    assert!(call["body"]["encryptedPayload"].is_string() && call["body"].get("status").is_none(), "{call}");
    let renewed = f.tokenize(tokenize(PAN_DATACORE, "01/33")).await;
    let tokens = vec![tokens[0].clone(), tokens[1].clone(), renewed];

    // Replace → POST …/replace {newCardId, encryptedPayload}; tokens move to the new card.
    let row = f
        .event(
            "card-dc",
            "card.replaced",
            json!({"newCardId": "card-dc2", "encryptedPayload": f.card(PAN_NEW, "02/34")}),
        )
        .await;
    let call = f.assert_call(&row, "POST", "/lifecycle/v1/cards/card-dc/replace", 200).await;
    assert_eq!(call["body"]["newCardId"], "card-dc2");
    f.tokens_follow(&tokens, "card-dc2", TokenStatus::Active).await;
    assert_eq!(f.mock_card("card-dc").await["replacedBy"], "card-dc2");
    let new = f.mock_card("card-dc2").await;
    assert_eq!((&new["inDatacore"], &new["panLast4"]), (&json!(true), &json!(&PAN_NEW[12..])), "{new}");

    // Close → DELETE; tokens deactivated and CARD_REMOVED_BY_ISSUER reached the adapter.
    let row = f.event("card-dc2", "card.closed", json!({"reason": "customer request"})).await;
    f.assert_call(&row, "DELETE", "/lifecycle/v1/cards/card-dc2", 204).await;
    f.tokens_follow(&tokens, "card-dc2", TokenStatus::Deactivated).await;
    f.removed_by_issuer(&tokens).await;
    assert_eq!(f.mock_card("card-dc2").await["status"], "CLOSED");
    f.drained().await;
}

#[tokio::test]
async fn a_tmp_outage_of_dropped_connections_errors_and_timeouts_delays_but_loses_nothing() {
    // Short relay timeout so a latency fault turns into a client-side timeout quickly.
    let mut f = Forwarding::spawn_with(Approach::External, |s| s.relay.request_timeout_ms = 300).await;
    let token = f.tokenize(json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY"})).await;
    let route = "POST /tmp-api/v1/cards/{cardId}/status";
    for fault in [
        json!({"route": route, "drop_connection": true, "times": 1}),
        json!({"route": route, "error_status": 503, "times": 1}),
        json!({"route": route, "latency_ms": 1000, "times": 1}),
    ] {
        f.kit.control("/_mock/v1/faults", fault).await;
    }

    let row = f.event("card-active", "card.status_changed", json!({"status": "BLOCKED"})).await;
    assert!(row.attempts >= 4, "three failed attempts before the delivery: {}", row.attempts);
    f.tokens_follow(std::slice::from_ref(&token), "card-active", TokenStatus::Suspended).await;
    assert_eq!(f.kit.mock_token(&token).await["suspendedBy"], json!(["CARD_BLOCK"]));

    // At TMP: every attempt carried the row's idempotency key and a fresh webhook id; the
    // dropped one and the 503 are journalled as such; the effect happened once.
    let key = row.record.id.to_string();
    let journal = f.kit.get("/_mock/v1/requests").await;
    let attempts: Vec<&Value> = journal["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter(|e| e["direction"] == "received" && e["idempotencyKey"] == key.as_str())
        .collect();
    // The timed-out attempt reached TMP and was answered after the adapter had given up; its
    // retry was then answered from TMP's idempotency store: the journal holds at least the
    // dropped, the 503 and the answered attempts.
    assert!(attempts.len() >= 3, "{attempts:?}");
    assert!(attempts.iter().any(|e| e["outcome"] == "dropped"), "{attempts:?}");
    assert!(attempts.iter().any(|e| e["status"] == 503), "{attempts:?}");
    assert_eq!(attempts.last().expect("an attempt")["status"], 200, "{attempts:?}");
    let ids: std::collections::HashSet<&str> = attempts.iter().filter_map(|e| e["webhookId"].as_str()).collect();
    assert_eq!(ids.len(), attempts.len(), "a new webhook-id per attempt");
    let suspensions = f.kit.store.token_history(&token).await.expect("history");
    let suspended = suspensions.iter().filter(|e| e.event.status == TokenStatus::Suspended).count();
    assert_eq!(suspended, 1, "the block took effect once: {suspensions:?}");
    f.drained().await;
}

#[tokio::test]
async fn forwarding_presents_the_adapters_client_certificate_to_an_mtls_tmp() {
    let pki = crate::mtls::Pki::new("Test TMP CA");
    let server_tls = pki.mock_server_tls(&pki.ca_file());
    let adapter_identity = pki.leaf("adapter-client", &[]);
    let (ca, (cert, key)) = (pki.ca_file(), adapter_identity.clone());
    let mut f = Forwarding::spawn_full(
        Approach::External,
        move |s| {
            // TMP over HTTPS, trusting only its CA, with the adapter's client certificate.
            s.forwarding.tmp_api.base_url = s.forwarding.tmp_api.base_url.replace("http://", "https://");
            s.forwarding.tmp_api.tls = tmp_adapter::config::OutboundTlsSettings {
                ca_file: Some(ca),
                client_cert_file: Some(cert),
                client_key_file: Some(key),
            };
        },
        move |config| {
            config.server.tls = Some(server_tls);
            config.auth.mode = mock_tmp::config::AuthMode::HmacAndMtls;
        },
    )
    .await;
    assert!(f.kit.mock_url.starts_with("https://"), "{}", f.kit.mock_url);
    // The test's own client reaches the mock the same way.
    f.kit.client = crate::mtls::client(&pki.ca_file(), Some(&adapter_identity));
    let token = f.tokenize(json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY"})).await;

    let row = f.event("card-active", "card.status_changed", json!({"status": "BLOCKED"})).await;
    f.assert_call(&row, "POST", "/tmp-api/v1/cards/card-active/status", 200).await;
    f.tokens_follow(std::slice::from_ref(&token), "card-active", TokenStatus::Suspended).await;
    f.drained().await;
}

#[tokio::test]
async fn a_rotated_datacore_key_is_fetched_again_when_the_old_one_is_rejected() {
    // The old key stops decrypting at once after a rotation.
    let mut f = Forwarding::spawn_full(Approach::Datacore, |_| {}, |c| c.keys.retired_key_ttl_secs = 0).await;
    // Issue: the adapter fetches and caches DataCore's current key.
    let issued = f.event("card-dc", "card.issued", json!({"encryptedPayload": f.card(PAN_DATACORE, EXPIRY)})).await;
    f.assert_call(&issued, "POST", "/lifecycle/v1/cards", 201).await;

    f.kit.control("/_mock/v1/keys/rotate?set=lifecycle_api", json!({})).await;
    let row =
        f.event("card-dc", "card.renewed", json!({"encryptedPayload": f.encrypt(&json!({"expiry": "01/33"}))})).await;
    // First under the cached key (refused), then under the key fetched again.
    let key = row.record.id.to_string();
    let journal = f.kit.get("/_mock/v1/requests").await;
    let statuses: Vec<u64> = journal["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter(|e| e["direction"] == "received" && e["idempotencyKey"] == key.as_str())
        .filter_map(|e| e["status"].as_u64())
        .collect();
    assert_eq!(statuses, [422, 200], "refused under the old key, accepted under the new one");
    assert_eq!(f.mock_card("card-dc").await["status"], "ACTIVE");
    f.drained().await;
}
