//! The databases a test runs against: every store test (and any HTTP test that wants to) runs
//! once per backend returned by [`test_databases`].
//!
//! - SQLite: a fresh file in a temporary directory (removed when the [`TestDb`] is dropped).
//!   The file sits in a not-yet-existing subdirectory, so opening it also checks that the
//!   store creates its directory.
//! - PostgreSQL: a fresh database `test_<uuid>` on the server named by `TEST_DATABASE_URL`
//!   (e.g. `postgres://postgres@127.0.0.1:5432/postgres`), dropped best-effort with the
//!   [`TestDb`]. When the variable is unset the PostgreSQL half is skipped with a notice, unless
//!   `CI` is set, in which case it fails: CI must test both backends.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// One database to run a test against. Keep it alive for as long as the test uses `url`.
pub struct TestDb {
    /// Database URL, as given to `tmp_adapter::store::connect`.
    pub url: String,
    /// `"sqlite"` or `"postgres"`, for assertion messages.
    pub backend: &'static str,
    _guard: Guard,
}

enum Guard {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { admin_url: String, database: String },
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Guard::Postgres { admin_url, database } = self else {
            return;
        };
        // Best-effort cleanup. Drop can't await, and may run inside the test's runtime: use a
        // thread with its own small runtime. `WITH (FORCE)` ends connections still open.
        let admin_url = admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)");
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// The databases to run a test against: SQLite always, PostgreSQL when configured (see the
/// module docs). Each is fresh and empty (no migrations applied).
pub async fn test_databases() -> Vec<TestDb> {
    let mut databases = vec![sqlite().await];
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.trim().is_empty() => databases.push(postgres(admin_url.trim()).await),
        _ if running_in_ci() => panic!(
            "TEST_DATABASE_URL is not set but CI is: the store tests must run against PostgreSQL \
             in CI. Set TEST_DATABASE_URL to a server where the user may CREATE DATABASE, e.g. \
             postgres://postgres@127.0.0.1:5432/postgres"
        ),
        _ => eprintln!(
            "notice: TEST_DATABASE_URL is not set: skipping the PostgreSQL half of this test \
             (e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres)"
        ),
    }
    databases
}

fn running_in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

async fn sqlite() -> TestDb {
    let dir = tempfile::Builder::new().prefix("tmp-adapter-store-").tempdir().expect("create a temporary directory");
    let path = dir.path().join("data").join("adapter.db");
    TestDb { url: format!("sqlite://{}", path.display()), backend: "sqlite", _guard: Guard::Sqlite { _dir: dir } }
}

async fn postgres(admin_url: &str) -> TestDb {
    let database = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to TEST_DATABASE_URL ({}): {e}", redact(admin_url)));
    // The name is generated above (hex digits only): safe to splice.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{database}\"")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {database}: {e}"));
    let _ = admin.close().await;
    TestDb {
        url: with_database(admin_url, &database),
        backend: "postgres",
        _guard: Guard::Postgres { admin_url: admin_url.to_owned(), database },
    }
}

/// `admin_url` with its database path replaced by `database` (query string kept).
fn with_database(admin_url: &str, database: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _password)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

#[test]
fn database_is_replaced_in_the_url() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "test_x"),
        "postgres://postgres@127.0.0.1:5432/test_x"
    );
    assert_eq!(
        with_database("postgres://u:p@db:5432?sslmode=disable", "test_x"),
        "postgres://u:p@db:5432/test_x?sslmode=disable"
    );
    assert_eq!(redact("postgres://u:secret@db/x"), "postgres://u:***@db/x");
    assert_eq!(redact("postgres://u@db/x"), "postgres://u@db/x");
}
