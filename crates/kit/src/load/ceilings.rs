//! The ceilings the scenarios are measured against, on the same cores in the same run:
//! - crypto: RSA-OAEP-256 JWE decrypts per second with the adapter's own key ring;
//! - HTTP: a bare actix-web JSON echo server (actix's default worker count, as the adapter's
//!   Issuer API listener: one per core), driven by the same
//!   open-loop generator and HTTP client as the scenarios;
//! - database: single-row `INSERT` transactions per second, with the adapter's durability
//!   settings (SQLite: WAL, `synchronous=FULL`; PostgreSQL: the server's defaults, so
//!   `synchronous_commit=on`), at the adapter's pool size.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tmp_protocol::jwe::KeyRing;

/// Decrypts `jwe` with `keys` on `threads` threads for `duration`: decrypts per second.
pub fn rsa_decrypts_per_sec(keys: Arc<KeyRing>, jwe: String, threads: usize, duration: Duration) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (keys, jwe, count, stop) = (keys.clone(), jwe.clone(), count.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let plain = keys.decrypt(&jwe).expect("the ceiling's JWE decrypts");
                    std::hint::black_box(plain);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// A bare JSON echo server: parses the body as JSON and answers it.
pub struct EchoServer {
    pub url: String,
    handle: ServerHandle,
}

impl EchoServer {
    pub async fn start(workers: usize) -> anyhow::Result<EchoServer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/echo", listener.local_addr()?);
        let server = HttpServer::new(|| App::new().route("/echo", web::post().to(echo)))
            .workers(workers)
            .listen(listener)?
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(EchoServer { url, handle })
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

async fn echo(body: Bytes) -> HttpResponse {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(value) => HttpResponse::Ok().json(value),
        Err(_) => HttpResponse::BadRequest().finish(),
    }
}

const CEILING_TABLE: &str = "CREATE TABLE IF NOT EXISTS commit_ceiling (id TEXT PRIMARY KEY, payload TEXT NOT NULL)";

/// Single-row insert transactions per second on a SQLite file in `dir`, opened exactly as the
/// adapter opens its store (WAL, `synchronous=FULL`, busy timeout), with `connections` writers.
pub async fn sqlite_commits_per_sec(
    dir: &std::path::Path,
    connections: u32,
    duration: Duration,
) -> anyhow::Result<f64> {
    let url = format!("sqlite://{}", dir.join("commit-ceiling.db").display());
    let options = SqliteConnectOptions::from_str(&url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new().max_connections(connections).connect_with(options).await?;
    sqlx::query(CEILING_TABLE).execute(&pool).await?;
    let rate = commit_loop(connections, duration, move || {
        let pool = pool.clone();
        async move {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            insert_row(&mut tx).await?;
            tx.commit().await?;
            Ok(())
        }
    })
    .await?;
    Ok(rate)
}

/// The same on a fresh database of the PostgreSQL server `admin_url` (dropped afterwards).
pub async fn postgres_commits_per_sec(admin_url: &str, connections: u32, duration: Duration) -> anyhow::Result<f64> {
    let name = format!("tmp_ceiling_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut admin).await?;
    let url = crate::test_kit::with_database(admin_url, &name);
    let result = async {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(connections).connect(&url).await?;
        sqlx::query(CEILING_TABLE).execute(&pool).await?;
        let rate = commit_loop(connections, duration, {
            let pool = pool.clone();
            move || {
                let pool = pool.clone();
                async move {
                    let mut tx = pool.begin().await?;
                    sqlx::query("INSERT INTO commit_ceiling (id, payload) VALUES ($1, $2)")
                        .bind(uuid::Uuid::new_v4().to_string())
                        .bind(PAYLOAD)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }
            }
        })
        .await;
        pool.close().await;
        rate
    }
    .await;
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
    let _ = admin.close().await;
    result
}

/// About the size of an outbox row's JSON.
const PAYLOAD: &str = r#"{"id":"evt-0000000000","cardId":"card-0000000000","type":"card.status_changed","occurredAt":"2026-01-01T00:00:00Z","data":{"status":"BLOCKED","reason":"LOST"}}"#;

async fn insert_row(conn: &mut sqlx::SqliteConnection) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO commit_ceiling (id, payload) VALUES (?, ?)")
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(PAYLOAD)
        .execute(conn)
        .await?;
    Ok(())
}

/// Runs `commit` on `writers` concurrent tasks for `duration`: commits per second.
async fn commit_loop<F, Fut>(writers: u32, duration: Duration, commit: F) -> anyhow::Result<f64>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers {
        let (commit, count) = (commit.clone(), count.clone());
        tasks.spawn(async move {
            while Instant::now() < deadline {
                commit().await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}
