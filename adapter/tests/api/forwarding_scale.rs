//! Real `tmp-adapter` processes (the binary, configured by environment variables): several
//! sharing one PostgreSQL database (throughput with order; skipped without TEST_DATABASE_URL,
//! required when CI is set), and crashes (SIGKILL) while events stream in, on both databases.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tmp_adapter::config::DEVELOPMENT_HMAC_SECRETS;
use tmp_protocol::webhook::{SignatureHeaders, WebhookSecret};

use crate::forwarding::{EVENTS, event};
use crate::helpers::db::{TestDb, test_databases};
use crate::helpers::receiver::{Received, Receiver};

/// A running adapter process.
struct Adapter {
    child: Child,
    url: String,
}

impl Drop for Adapter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary in `dir` (development keys under ./data are shared by every process
/// started there) against `db`, forwarding to `receiver`; returns once it listens.
/// The relay's lease and request timeout of a spawned adapter.
struct RelayTimes {
    lease_secs: u64,
    request_timeout_ms: u64,
}

/// Short: a killed process's rows are taken over within seconds.
const QUICK_TAKEOVER: RelayTimes = RelayTimes { lease_secs: 3, request_timeout_ms: 1000 };

fn spawn_adapter(dir: &Path, db: &TestDb, receiver: &Receiver, relay: &RelayTimes) -> Adapter {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tmp-adapter"))
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("TMP_ADAPTER_ENV", "local")
        .env("TMP_ADAPTER_CONFIG_DIR", Path::new(env!("CARGO_MANIFEST_DIR")).join("../config"))
        .env("TMP_ADAPTER__DATABASE__URL", &db.url)
        .env("TMP_ADAPTER__SERVER__PORT", "0")
        .env("TMP_ADAPTER__LOG__FORMAT", "json")
        .env("TMP_ADAPTER__LOG__LEVEL", "warn,tmp_adapter::startup=info")
        .env("TMP_ADAPTER__PROCESSOR__HMAC_SECRETS", DEVELOPMENT_HMAC_SECRETS[0])
        .env("TMP_ADAPTER__FORWARDING__APPROACH", "external")
        .env("TMP_ADAPTER__FORWARDING__TMP_API__BASE_URL", &receiver.url)
        .env("TMP_ADAPTER__FORWARDING__TMP_API__HMAC_SECRETS", receiver.secret.to_whsec_string())
        .env("TMP_ADAPTER__RELAY__POLL_INTERVAL_MS", "50")
        .env("TMP_ADAPTER__RELAY__CONCURRENCY", "32")
        .env("TMP_ADAPTER__RELAY__LEASE_SECS", relay.lease_secs.to_string())
        .env("TMP_ADAPTER__RELAY__REQUEST_TIMEOUT_MS", relay.request_timeout_ms.to_string())
        .env("TMP_ADAPTER__RELAY__RETRY_SCHEDULE_MS", "50,100,200,400,800,1600,3200")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tmp-adapter starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Keeps draining stdout after the port is known, so the process never blocks on it.
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("tmp-adapter listening")
                && let Some(port) = line.split("\"port\":").nth(1).and_then(|r| {
                    r.trim_start().split(|c: char| !c.is_ascii_digit()).next().and_then(|p| p.parse::<u16>().ok())
                })
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(port);
            }
        }
    });
    let port = rx.recv_timeout(Duration::from_secs(60)).expect("the adapter reports its port");
    Adapter { child, url: format!("http://127.0.0.1:{port}") }
}

async fn post_events(client: &reqwest::Client, url: &str, events: &[Value]) -> Result<u16, reqwest::Error> {
    let secret = WebhookSecret::parse(DEVELOPMENT_HMAC_SECRETS[0]).unwrap();
    let body = serde_json::to_vec(events).unwrap();
    let headers = SignatureHeaders::sign_now(&[secret], &body).unwrap();
    let mut request = client.post(format!("{url}{EVENTS}")).header("content-type", "application/json");
    for (name, value) in headers.to_header_pairs() {
        request = request.header(name, value);
    }
    Ok(request.body(body).timeout(Duration::from_secs(30)).send().await?.status().as_u16())
}

fn status_event(card: usize, i: usize) -> Value {
    let status = if i.is_multiple_of(2) { "BLOCKED" } else { "ACTIVE" };
    event(
        &format!("ev-{card}-{i}"),
        &format!("card-{card}"),
        "card.status_changed",
        json!({"status": status, "reason": format!("{card}:{i}")}),
    )
}

/// Per card, the event numbers in the order the receiver first accepted each message; and
/// how many acceptances were repeats. Panics if a repeat carried another idempotency key.
fn analyse(received: &[Received]) -> (HashMap<String, Vec<usize>>, usize) {
    let mut key_of_reason: HashMap<String, String> = HashMap::new();
    let mut order: HashMap<String, Vec<usize>> = HashMap::new();
    let mut repeats = 0;
    for r in received.iter().filter(|r| r.answered == 200) {
        assert!(r.signature_ok);
        let reason = r.body["reason"].as_str().expect("reason").to_owned();
        match key_of_reason.get(&reason) {
            Some(key) => {
                assert_eq!(key, &r.idempotency_key, "a repeat of {reason} carried another idempotency key");
                repeats += 1;
            }
            None => {
                key_of_reason.insert(reason.clone(), r.idempotency_key.clone());
                let (card, i) = reason.split_once(':').unwrap();
                order.entry(card.to_owned()).or_default().push(i.parse().unwrap());
            }
        }
    }
    (order, repeats)
}

async fn postgres_only() -> Option<TestDb> {
    tmp_edge::tls::install_crypto_provider();
    test_databases().await.into_iter().find(|db| db.backend == "postgres")
}

#[tokio::test]
async fn three_processes_drain_ten_thousand_events_over_a_hundred_cards_in_order_once() {
    let Some(db) = postgres_only().await else { return };
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Nothing is killed here, and a repeat must mean two processes worked one row: a timeout
    // long enough that a slow machine never times a delivery out (a retry after a timeout is
    // a legitimate repeat, and not what this test is about).
    let relay = RelayTimes { lease_secs: 30, request_timeout_ms: 10_000 };
    let first = spawn_adapter(dir.path(), &db, &receiver, &relay);
    let adapters = vec![
        first,
        spawn_adapter(dir.path(), &db, &receiver, &relay),
        spawn_adapter(dir.path(), &db, &receiver, &relay),
    ];
    let urls: Vec<String> = adapters.iter().map(|a| a.url.clone()).collect();
    const CARDS: usize = 100;
    const PER_CARD: usize = 100;
    // Four senders, each owning 25 cards, each sending its batches one after the other (a
    // card's events are ordered by the processor) to the processes in turn.
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    let mut senders = Vec::new();
    for sender in 0..4 {
        let client = client.clone();
        let urls = urls.clone();
        senders.push(tokio::spawn(async move {
            let cards: Vec<usize> = (sender * 25..(sender + 1) * 25).collect();
            for (n, chunk) in (0..PER_CARD).collect::<Vec<_>>().chunks(8).enumerate() {
                let events: Vec<Value> =
                    chunk.iter().flat_map(|i| cards.iter().map(move |c| status_event(*c, *i))).collect();
                // As a processor does: a request whose answer was lost (a pooled connection the
                // loaded server closed at its keep-alive limit), or answered 503 (on a loaded
                // host a process can wait out its database pool's timeout; nothing was
                // acknowledged), is sent again; the event ids make it harmless.
                let url = &urls[n % urls.len()];
                let mut attempt = 0;
                let status = loop {
                    attempt += 1;
                    match post_events(&client, url, &events).await {
                        Ok(503) if attempt <= 10 => {
                            eprintln!("resending after a 503 (Retry-After: 1)");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        Ok(status) => break status,
                        Err(error) if attempt <= 5 => eprintln!("resending after a transport error: {error}"),
                        Err(error) => panic!("ingest: {error}"),
                    }
                };
                assert_eq!(status, 202);
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let total = CARDS * PER_CARD;
    // On the record, for when this test is slow: how long ingest took, and how far delivery was.
    eprintln!("ingest took {:?}; {} delivered by then", started.elapsed(), receiver.unique_accepted());
    let start = std::time::Instant::now();
    while receiver.unique_accepted() < total {
        assert!(start.elapsed() < Duration::from_secs(300), "only {} of {total} delivered", receiver.unique_accepted());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("all {total} delivered after {:?}", started.elapsed());
    let (order, repeats) = analyse(&receiver.received());
    assert_eq!(order.len(), CARDS);
    for (card, seen) in &order {
        assert_eq!(seen, &(0..PER_CARD).collect::<Vec<_>>(), "card {card} out of order or incomplete");
    }
    // Nothing crashed, so nothing was sent twice: the lease and SKIP LOCKED kept the
    // processes off each other's rows.
    assert_eq!(repeats, 0, "deliveries repeated without a crash");
    drop(adapters);
}

/// What one sender has in flight: the event ids and reasons of the batch sent and not yet
/// answered 202.
type InFlightBatch = Arc<Mutex<Option<Vec<(String, String)>>>>;

/// Reads, straight from the database of a killed adapter, which of `events` (id, reason) are
/// stored, and for each whether its outbox row (found by the event's unique reason) is there.
async fn stored_events(db: &TestDb, events: &[(String, String)]) -> Vec<(String, bool, bool)> {
    macro_rules! read {
        ($pool:expr) => {{
            let pool = $pool;
            let ids: Vec<String> =
                sqlx::query_scalar("SELECT event_id FROM processor_events").fetch_all(&pool).await.unwrap();
            let payloads: Vec<String> =
                sqlx::query_scalar("SELECT CAST(payload AS TEXT) FROM outbox").fetch_all(&pool).await.unwrap();
            pool.close().await;
            (ids, payloads)
        }};
    }
    let (ids, payloads) = if db.backend == "postgres" {
        read!(sqlx::PgPool::connect(&db.url).await.unwrap())
    } else {
        read!(sqlx::SqlitePool::connect(&db.url).await.unwrap())
    };
    let ids: HashSet<String> = ids.into_iter().collect();
    // A reason is `card:i`; quoted, it matches only itself in a payload.
    let reasons: HashSet<String> = payloads
        .iter()
        .flat_map(|p| {
            p.split('"').filter(|part| part.contains(':') && part.chars().all(|c| c.is_ascii_digit() || c == ':'))
        })
        .map(str::to_owned)
        .collect();
    events.iter().map(|(id, reason)| (id.clone(), ids.contains(id), reasons.contains(reason))).collect()
}

/// SIGKILL while batches are open (eight processors sending at once, so the group commit
/// always holds several requests): at each kill, every acknowledged event is in the database,
/// and every batch in flight is there completely (events and outbox rows) or not at all; after
/// the restarts, everything is delivered in order per card. Both databases.
#[tokio::test]
async fn sigkilled_adapters_lose_nothing_acknowledged_and_keep_order() {
    tmp_edge::tls::install_crypto_provider();
    for db in test_databases().await {
        let b = db.backend;
        let receiver = Receiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        let current = Arc::new(Mutex::new(spawn_adapter(dir.path(), &db, &receiver, &QUICK_TAKEOVER)));
        let url = Arc::new(Mutex::new(current.lock().unwrap().url.clone()));
        const SENDERS: usize = 8;
        const CARDS_PER_SENDER: usize = 3;
        const PER_CARD: usize = 240;
        let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
        let in_flight: Vec<InFlightBatch> = (0..SENDERS).map(|_| Arc::new(Mutex::new(None))).collect();
        let mut senders = Vec::new();
        for (sender, slot) in in_flight.iter().enumerate() {
            let (url, acked, slot) = (url.clone(), acked.clone(), slot.clone());
            senders.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let cards: Vec<usize> = (sender * CARDS_PER_SENDER..(sender + 1) * CARDS_PER_SENDER).collect();
                for chunk in (0..PER_CARD).collect::<Vec<_>>().chunks(3) {
                    let events: Vec<Value> =
                        chunk.iter().flat_map(|i| cards.iter().map(move |c| status_event(*c, *i))).collect();
                    let ids: Vec<(String, String)> = events
                        .iter()
                        .map(|e| {
                            (e["id"].as_str().unwrap().to_owned(), e["data"]["reason"].as_str().unwrap().to_owned())
                        })
                        .collect();
                    *slot.lock().unwrap() = Some(ids.clone());
                    // The processor retries until it gets its 202 (a redelivered batch is
                    // deduplicated by event id).
                    loop {
                        let target = url.lock().unwrap().clone();
                        if let Ok(202) = post_events(&client, &target, &events).await {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    // Acknowledged: recorded before the slot is cleared, so a kill never sees
                    // a batch in neither.
                    acked.lock().unwrap().extend(ids);
                    *slot.lock().unwrap() = None;
                }
            }));
        }
        let mut open_at_kills = 0;
        for kill in 0..3 {
            tokio::time::sleep(Duration::from_millis(if kill == 0 { 300 } else { 600 })).await;
            {
                let mut adapter = current.lock().unwrap();
                adapter.child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on Unix
                let _ = adapter.child.wait();
            }
            // The process is gone: what it acknowledged must be stored, what it had in flight
            // stored completely or not at all.
            let acked_now = acked.lock().unwrap().clone();
            let open: Vec<Vec<(String, String)>> = in_flight.iter().filter_map(|s| s.lock().unwrap().clone()).collect();
            open_at_kills += open.len();
            eprintln!("{b}: kill {kill}: {} events acknowledged, {} batches open", acked_now.len(), open.len());
            let found = stored_events(&db, &acked_now).await;
            for (id, stored, queued) in found {
                assert!(
                    stored && queued,
                    "{b}: acknowledged event {id} lost by the SIGKILL (stored {stored}, queued {queued})"
                );
            }
            for batch in open {
                let found = stored_events(&db, &batch).await;
                let stored = found.iter().filter(|(_, s, q)| *s && *q).count();
                let partial = found.iter().filter(|(_, s, q)| s != q).count();
                assert!(partial == 0 && (stored == 0 || stored == batch.len()), "{b}: a batch half stored: {found:?}");
            }
            let restarted = spawn_adapter(dir.path(), &db, &receiver, &QUICK_TAKEOVER);
            *url.lock().unwrap() = restarted.url.clone();
            *current.lock().unwrap() = restarted;
        }
        for sender in senders {
            sender.await.unwrap();
        }
        let total = SENDERS * CARDS_PER_SENDER * PER_CARD;
        assert_eq!(acked.lock().unwrap().len(), total, "{b}");
        let start = std::time::Instant::now();
        while receiver.unique_accepted() < total {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{b}: only {} of {total} delivered",
                receiver.unique_accepted()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let (order, repeats) = analyse(&receiver.received());
        assert_eq!(order.len(), SENDERS * CARDS_PER_SENDER, "{b}");
        for (card, seen) in &order {
            assert_eq!(seen, &(0..PER_CARD).collect::<Vec<_>>(), "{b}: card {card} out of order or incomplete");
        }
        eprintln!("{b}: batches open at the kills: {open_at_kills}; repeats after SIGKILLs: {repeats}");
        drop(current);
    }
}
