//! Several real `tmp-adapter` processes (the binary, configured by environment variables)
//! sharing one PostgreSQL database: throughput with order, and crashes (SIGKILL) while events
//! stream in. PostgreSQL only (skipped without TEST_DATABASE_URL, required when CI is set).

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
                // loaded server closed at its keep-alive limit) is sent again; the event ids
                // make the resend harmless.
                let url = &urls[n % urls.len()];
                let mut attempt = 0;
                let status = loop {
                    match post_events(&client, url, &events).await {
                        Ok(status) => break status,
                        Err(error) if attempt < 5 => {
                            attempt += 1;
                            eprintln!("resending after a transport error: {error}");
                        }
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

#[tokio::test]
async fn sigkilled_adapters_lose_nothing_acknowledged_and_keep_order() {
    let Some(db) = postgres_only().await else { return };
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let current = Arc::new(Mutex::new(spawn_adapter(dir.path(), &db, &receiver, &QUICK_TAKEOVER)));
    let url = Arc::new(Mutex::new(current.lock().unwrap().url.clone()));
    const CARDS: usize = 20;
    const PER_CARD: usize = 60;
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let sender = {
        let url = url.clone();
        let acked = acked.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for chunk in (0..PER_CARD).collect::<Vec<_>>().chunks(3) {
                let events: Vec<Value> =
                    chunk.iter().flat_map(|i| (0..CARDS).map(move |c| status_event(c, *i))).collect();
                // The processor retries until it gets its 202 (a redelivered batch is
                // deduplicated by event id).
                loop {
                    let target = url.lock().unwrap().clone();
                    if let Ok(202) = post_events(&client, &target, &events).await {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let mut acked = acked.lock().unwrap();
                for e in &events {
                    acked.insert(e["data"]["reason"].as_str().unwrap().to_owned());
                }
            }
        })
    };
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let mut adapter = current.lock().unwrap();
        adapter.child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on Unix
        let _ = adapter.child.wait();
        let restarted = spawn_adapter(dir.path(), &db, &receiver, &QUICK_TAKEOVER);
        *url.lock().unwrap() = restarted.url.clone();
        *adapter = restarted;
    }
    sender.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), CARDS * PER_CARD);
    let start = std::time::Instant::now();
    while receiver.unique_accepted() < acked.len() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "only {} of {} delivered",
            receiver.unique_accepted(),
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (order, repeats) = analyse(&receiver.received());
    for (card, seen) in &order {
        assert_eq!(seen, &(0..PER_CARD).collect::<Vec<_>>(), "card {card} out of order or incomplete");
    }
    eprintln!("repeats after SIGKILLs (same idempotency key each time): {repeats}");
    drop(current);
}
