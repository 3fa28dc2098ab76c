//! A database that stalls: every request is still answered within `server.request_timeout_ms`
//! (503, nothing acknowledged), `/readyz` says so within `server.readiness_timeout_ms`, and the
//! adapter serves again once the database does. PostgreSQL is stalled for real — its TCP
//! connections run through a proxy that stops passing bytes — and SQLite by another process's
//! write lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::app::*;
use crate::helpers::db::test_databases;

const EVENTS: &str = "/issuer-api/v1/tokens/events";

/// A TCP proxy to `upstream` that can stop passing bytes (both ways, every connection) and
/// start again: a database that stalls without closing anything.
struct StallingProxy {
    port: u16,
    stalled: Arc<AtomicBool>,
}

impl StallingProxy {
    async fn start(upstream: String) -> StallingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let flag = stalled.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, flag.clone()));
                tokio::spawn(pump(server_read, client_write, flag.clone()));
            }
        });
        StallingProxy { port, stalled }
    }

    fn stall(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        // While stalled nothing is read, so nothing is passed on.
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let Ok(n) = from.read(&mut buffer).await else { return };
        if n == 0 {
            return;
        }
        // Bytes read just before a stall began are held back until it ends, too.
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
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
            Some(StallingProxy::start(upstream).await)
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
            Some(proxy) => proxy.stall(true),
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
            Some(proxy) => proxy.stall(false),
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
