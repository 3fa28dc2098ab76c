//! The ceilings the scenarios are measured against, on the same cores in the same run:
//! - crypto: RSA-OAEP-256 JWE decrypts per second with the adapter's own key ring (the shipped
//!   RSA implementation), and beside it OpenSSL's RSA private-key operations per second for
//!   the same key size on the same cores (`openssl speed`, where installed): the physical
//!   ceiling the shipped implementation is judged against;
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

/// OpenSSL's RSA private-key operations (`sign/s`) per second for a `bits`-bit key, on
/// `processes` processes for `seconds`, from `openssl speed`; `None` when `openssl` is not
/// installed or prints something else.
pub fn openssl_rsa_private_ops_per_sec(bits: usize, processes: usize, seconds: u64) -> Option<f64> {
    let output = std::process::Command::new("openssl")
        .args(["speed", "-seconds", &seconds.to_string(), "-multi", &processes.to_string(), &format!("rsa{bits}")])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    parse_openssl_rsa_speed(&String::from_utf8_lossy(&output.stdout), bits)
}

/// The `sign/s` column of `openssl speed`'s summary line
/// `rsa 2048 bits 0.000230s 0.000013s   4344.0  76479.5`.
fn parse_openssl_rsa_speed(stdout: &str, bits: usize) -> Option<f64> {
    let prefix = format!("rsa {bits} bits");
    let line = stdout.lines().rev().find(|l| l.starts_with(&prefix))?;
    line[prefix.len()..].split_whitespace().nth(2)?.parse().ok()
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

/// [`postgres_commits_per_sec`] measured for `seconds` and printed as a run's ceiling line.
pub async fn print_postgres_commits(admin_url: &str, connections: u32, seconds: u64) -> anyhow::Result<f64> {
    let rate = postgres_commits_per_sec(admin_url, connections, Duration::from_secs(seconds)).await?;
    println!("ceiling  PostgreSQL single-row insert commits ({connections} connections): {rate:.0}/s");
    Ok(rate)
}

/// The same on a fresh database of the PostgreSQL server `admin_url` (dropped afterwards).
pub async fn postgres_commits_per_sec(admin_url: &str, connections: u32, duration: Duration) -> anyhow::Result<f64> {
    let database = crate::test_kit::ScratchDatabase::create(admin_url, "tmp_ceiling").await?;
    let url = database.url.clone();
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
    database.drop_now().await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_speed_summary_is_read() {
        let out = "Got: +F2:2:2048:0.000229:0.000013 from 0\n                  sign    verify    sign/s verify/s\n\
                   rsa 2048 bits 0.000230s 0.000013s   4344.0  76479.5\n";
        assert_eq!(parse_openssl_rsa_speed(out, 2048), Some(4344.0));
        assert_eq!(parse_openssl_rsa_speed(out, 4096), None);
        assert_eq!(parse_openssl_rsa_speed("rsa 2048 bits x", 2048), None);
    }
}
