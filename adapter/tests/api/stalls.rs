//! A database that stalls: every request is still answered within `server.request_timeout_ms`
//! (503, nothing acknowledged), `/readyz` says so within `server.readiness_timeout_ms`, and the
//! adapter serves again once the database does. PostgreSQL is stalled for real — its TCP
//! connections run through a proxy that stops passing bytes — and SQLite by another process's
//! write lock. And a relay whose database connection is cut just as it records a delivery
//! records it once the database is back, not a lease later.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::app::*;
use crate::helpers::db::test_databases;

const EVENTS: &str = "/issuer-api/v1/tokens/events";

/// What the proxy does with the database's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    /// Holds every byte, both ways: a database that stalls without closing anything.
    Stall,
    /// Closes every connection and refuses new ones: a database cut off.
    Cut,
}

/// A TCP proxy to `upstream` that passes, stalls or cuts every connection on demand.
struct DatabaseProxy {
    port: u16,
    mode: tokio::sync::watch::Sender<Mode>,
}

impl DatabaseProxy {
    async fn start(upstream: String) -> DatabaseProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, watching) = tokio::sync::watch::channel(Mode::Pass);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *watching.borrow() == Mode::Cut {
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, watching.clone()));
                tokio::spawn(pump(server_read, client_write, watching.clone()));
            }
        });
        DatabaseProxy { port, mode }
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

/// Waits while stalled; false once cut.
async fn passing(mode: &mut tokio::sync::watch::Receiver<Mode>) -> bool {
    loop {
        match *mode.borrow_and_update() {
            Mode::Pass => return true,
            Mode::Cut => return false,
            Mode::Stall => {}
        }
        if mode.changed().await.is_err() {
            return false;
        }
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: tokio::sync::watch::Receiver<Mode>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if !passing(&mut mode).await {
            return;
        }
        let n = tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            // Look at the mode again (a read is cancel-safe: nothing was consumed).
            _ = mode.changed() => continue,
        };
        // Bytes read just before a stall are held back until it ends, dropped on a cut.
        if !passing(&mut mode).await || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// `url` with its host and port replaced by `127.0.0.1:port`.
fn through(url: &str, port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (format!("{userinfo}@"), host),
        None => (String::new(), authority),
    };
    (format!("{scheme}://{userinfo}127.0.0.1:{port}/{path}"), host.to_owned())
}

#[tokio::test]
async fn a_stalled_database_gets_a_503_within_the_request_budget_and_the_adapter_recovers() {
    for db in test_databases().await {
        let budget_ms = 1000;
        let proxy = if db.backend == "postgres" {
            let (_, upstream) = through(&db.url, 0);
            Some(DatabaseProxy::start(upstream).await)
        } else {
            None
        };
        let app = TestApp::spawn_with(&db, |s| {
            if let Some(proxy) = &proxy {
                s.database.url = through(&db.url, proxy.port).0;
            }
            s.policy.deadline_ms = 200;
            s.server.request_timeout_ms = budget_ms;
            s.server.readiness_timeout_ms = 200;
        })
        .await;
        let event = || crate::token_events::event_body("tok-stall", "card-1", "ACTIVE", "2026-03-01T10:00:00Z");
        expect_json(app.request(EVENTS).json(&event()).send().await, 200).await;

        // Stall: PostgreSQL stops answering; SQLite's write lock is held by someone else (its
        // busy timeout, 5 s, is longer than the budget).
        let mut lock_holder = None;
        match &proxy {
            Some(proxy) => proxy.set(Mode::Stall),
            None => {
                let mut other = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
                sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
                lock_holder = Some(other);
            }
        }
        // (A liveness bound only: without the budget the request would wait out the stall.)
        let late = tokio::time::timeout(Duration::from_secs(30), app.request(EVENTS).json(&event()).send());
        let answer = expect_error(late.await.expect("answered while stalled"), 503, "UNAVAILABLE").await;
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("not answered within {budget_ms} ms")), "{}: {answer}", db.backend);
        if proxy.is_some() {
            // SQLite's readers do not wait for its writer; a stalled PostgreSQL fails the probe.
            let ready = app.get("/readyz").await;
            assert_eq!(ready.status(), 503, "{}", db.backend);
        }

        // The database is back: so is the adapter, and the abandoned request left nothing
        // half-done that a retry with a new signature cannot complete.
        match &proxy {
            Some(proxy) => proxy.set(Mode::Pass),
            None => {
                let mut other = lock_holder.take().unwrap();
                sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
            }
        }
        let ready = app.get("/readyz").await;
        assert_eq!(ready.status(), 200, "{}", db.backend);
        let body = event();
        let key = uuid::Uuid::new_v4().to_string();
        expect_json(app.request(EVENTS).json(&body).idempotency_key(Some(&key)).send().await, 200).await;
        expect_json(app.request(EVENTS).json(&body).idempotency_key(Some(&key)).send().await, 200).await;
        app.stop().await;
    }
}

#[tokio::test]
async fn a_delivery_recorded_while_the_database_is_cut_off_is_recorded_once_it_is_back() {
    use tmp_adapter::config::Approach;
    use tmp_adapter::outbox::OutboxStatus;
    use tmp_adapter::store::OutboxFilter;

    use crate::helpers::receiver::{Receiver, Reply};
    for db in test_databases().await {
        if db.backend != "postgres" {
            // SQLite is a file: there is no connection to cut.
            continue;
        }
        let tmp = Receiver::start().await;
        let (_, upstream) = through(&db.url, 0);
        let proxy = DatabaseProxy::start(upstream).await;
        let app = TestApp::spawn_with(&db, |s| {
            crate::forwarding::forwarding_settings(s, Approach::External, &tmp);
            s.database.url = through(&db.url, proxy.port).0;
            s.relay.request_timeout_ms = 5_000;
            // Long enough that waiting it out would show.
            s.relay.lease_secs = 60;
        })
        .await;
        // The first delivery is answered late: the database is cut off meanwhile.
        let arrived = Arc::new(AtomicBool::new(false));
        let seen = arrived.clone();
        tmp.behave(move |_| {
            if seen.swap(true, Ordering::SeqCst) {
                Reply::Status(200)
            } else {
                Reply::Delay(Duration::from_millis(1500))
            }
        });
        let events = "/processor/v1/events";
        let event = crate::forwarding::event("cut-0", "card-cut", "card.closed", serde_json::json!({}));
        expect_json(app.request(events).json(&serde_json::json!([event])).send().await, 202).await;
        while !arrived.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Stalled while TMP takes its time, so that recording the result waits in the proxy...
        proxy.set(Mode::Stall);
        tmp.wait_for(Duration::from_secs(10), |r| r.iter().any(|r| r.answered == 200)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // ...then cut: the relay's statement fails. Back half a second later.
        proxy.set(Mode::Cut);
        tokio::time::sleep(Duration::from_millis(500)).await;
        proxy.set(Mode::Pass);

        // Read past the proxy. (A liveness bound far below the lease, not a speed target.)
        let store = tmp_adapter::store::connect(&db.url, 1).await.unwrap();
        let filter = OutboxFilter { status: None, ordering_key: Some("card-cut".into()), limit: 10 };
        let started = Instant::now();
        loop {
            let rows = store.list_outbox(&filter).await.unwrap();
            if rows.iter().all(|r| r.status == OutboxStatus::Delivered) && !rows.is_empty() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "still not recorded: {rows:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        app.stop().await;
    }
}
