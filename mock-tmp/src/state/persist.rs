//! Optional persistence: the whole state as one JSON snapshot in a SQLite file, rewritten in
//! a transaction after every mutation. Simple and crash-consistent; the mock's state is small.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};
use std::str::FromStr;

use super::MockState;

#[derive(Clone)]
pub struct Persistence {
    pool: SqlitePool,
}

impl Persistence {
    pub async fn open(url: &str) -> anyhow::Result<Persistence> {
        let options = SqliteConnectOptions::from_str(url)?.create_if_missing(true).journal_mode(SqliteJournalMode::Wal);
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS snapshot \
             (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL, saved_at TEXT NOT NULL)",
        )
        .execute(&pool)
        .await?;
        Ok(Persistence { pool })
    }

    pub async fn load(&self) -> anyhow::Result<Option<MockState>> {
        let row = sqlx::query("SELECT state FROM snapshot WHERE id = 1").fetch_optional(&self.pool).await?;
        match row {
            Some(row) => {
                let text: String = row.try_get("state")?;
                Ok(Some(serde_json::from_str(&text)?))
            }
            None => Ok(None),
        }
    }

    pub async fn save(&self, state: &MockState) -> anyhow::Result<()> {
        let text = serde_json::to_string(state)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO snapshot (id, state, saved_at) VALUES (1, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at",
        )
        .bind(text)
        .bind(super::rfc3339(time::OffsetDateTime::now_utc()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
