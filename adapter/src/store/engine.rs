//! The one implementation of the store, [`SqlStore`], and the seam between its two engines.
//!
//! Every statement of the store is written once, in the SQL both engines accept (`$N`
//! placeholders, `ON CONFLICT … DO UPDATE`, `RETURNING`, `CAST`), and the aggregate modules
//! (`cards`, `tokens`, `outbox`, …) run it through [`dispatch!`], which expands one body into a
//! `match` arm per engine: each arm is compiled against that engine's concrete sqlx types, so
//! there are no generic sqlx bounds to carry and no runtime translation of SQL. What truly
//! differs between the engines lives in `sqlite.rs` and `postgres.rs` and is reached from here:
//! connecting and migrating, SQLite's write gate and its relaxed-durability connection, the
//! claim statements, and PostgreSQL's per-card ordering lock.

use sqlx::{PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::OwnedMutexGuard;

use super::postgres;
use super::rows::{Ts, idempotency_columns};
use super::sqlite::SqliteEngine;
use super::{IdempotencyRecord, StoreResult};

/// One value per engine: the only place where the engines' types meet.
#[derive(Debug, Clone)]
pub(super) enum Engine<S, P> {
    Sqlite(S),
    Postgres(P),
}

/// Runs `$body` with `$c` bound to the engine's value of `$on` (a pool or a connection):
/// one statement, written once, compiled for each engine.
macro_rules! dispatch {
    ($on:expr, |$c:ident| $body:expr) => {
        match $on {
            $crate::store::engine::Engine::Sqlite($c) => $body,
            $crate::store::engine::Engine::Postgres($c) => $body,
        }
    };
}
pub(super) use dispatch;

/// Where a statement runs: a pool of either engine.
pub(super) type Pool<'a> = Engine<&'a SqlitePool, &'a PgPool>;

/// The adapter's store on SQLite (embedded) or PostgreSQL (production): see the module docs.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(super) engine: Engine<SqliteEngine, PgPool>,
}

/// A single-statement write: where it runs, and (SQLite) the write gate, held until it is
/// dropped.
pub(super) struct Writer<'a> {
    pub(super) pool: Pool<'a>,
    _gate: Option<OwnedMutexGuard<()>>,
}

/// A write transaction (on SQLite holding the write gate until it ends).
pub(super) struct WriteTx {
    // Declared first: rolled back (when dropped unfinished) before the gate opens.
    tx: Engine<Transaction<'static, Sqlite>, Transaction<'static, Postgres>>,
    _gate: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// The transaction's connection, for [`dispatch!`].
    pub(super) fn conn(&mut self) -> Engine<&mut SqliteConnection, &mut PgConnection> {
        match &mut self.tx {
            Engine::Sqlite(tx) => Engine::Sqlite(&mut **tx),
            Engine::Postgres(tx) => Engine::Postgres(&mut **tx),
        }
    }

    pub(super) async fn commit(self) -> StoreResult<()> {
        dispatch!(self.tx, |tx| tx.commit().await?);
        Ok(())
    }

    pub(super) async fn rollback(self) -> StoreResult<()> {
        dispatch!(self.tx, |tx| tx.rollback().await?);
        Ok(())
    }

    /// Serialises the writers of one ordering key until the transaction ends, so that outbox
    /// rows of one card commit in the order of their `seq`. SQLite needs nothing: it has one
    /// writer at a time. Lock several keys in one (sorted) order: see `postgres::lock_ordering_key`.
    pub(super) async fn lock_ordering_key(&mut self, key: &str) -> StoreResult<()> {
        match self.conn() {
            Engine::Sqlite(_) => Ok(()),
            Engine::Postgres(conn) => postgres::lock_ordering_key(conn, key).await,
        }
    }
}

impl SqlStore {
    /// Where reads run (never waiting for a writer).
    pub(super) fn read(&self) -> Pool<'_> {
        match &self.engine {
            Engine::Sqlite(sqlite) => Engine::Sqlite(&sqlite.pool),
            Engine::Postgres(pool) => Engine::Postgres(pool),
        }
    }

    /// A durable single-statement write (on SQLite: behind the write gate).
    pub(super) async fn write(&self) -> Writer<'_> {
        match &self.engine {
            Engine::Sqlite(sqlite) => Writer { pool: Engine::Sqlite(&sqlite.pool), _gate: Some(sqlite.gate().await) },
            Engine::Postgres(pool) => Writer { pool: Engine::Postgres(pool), _gate: None },
        }
    }

    /// A single-statement write of relaxed durability (see [`super::Store`]): on SQLite it
    /// commits on the `synchronous=NORMAL` connection; PostgreSQL commits it as any other.
    pub(super) async fn write_relaxed(&self) -> Writer<'_> {
        match &self.engine {
            Engine::Sqlite(sqlite) => {
                Writer { pool: Engine::Sqlite(&sqlite.relaxed), _gate: Some(sqlite.gate().await) }
            }
            Engine::Postgres(pool) => Writer { pool: Engine::Postgres(pool), _gate: None },
        }
    }

    /// Begins a write transaction (on SQLite: takes the gate, then `BEGIN IMMEDIATE`).
    pub(super) async fn begin_write(&self) -> StoreResult<WriteTx> {
        Ok(match &self.engine {
            Engine::Sqlite(sqlite) => {
                let gate = sqlite.gate().await;
                WriteTx { tx: Engine::Sqlite(sqlite.pool.begin_with("BEGIN IMMEDIATE").await?), _gate: Some(gate) }
            }
            Engine::Postgres(pool) => WriteTx { tx: Engine::Postgres(pool.begin().await?), _gate: None },
        })
    }

    /// Begins a write transaction and, when `idempotency` is given, claims its scope+key in it.
    /// `Ok(Err(existing))` when another request already holds the key: nothing was written.
    pub(super) async fn begin_claiming(
        &self,
        idempotency: Option<&IdempotencyRecord>,
    ) -> StoreResult<Result<WriteTx, IdempotencyRecord>> {
        let mut tx = self.begin_write().await?;
        let Some(record) = idempotency else {
            return Ok(Ok(tx));
        };
        let inserted = dispatch!(tx.conn(), |c| {
            sqlx::query(
                "INSERT INTO idempotency \
                 (scope, idempotency_key, request_hash, response_status, response_body, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (scope, idempotency_key) DO NOTHING",
            )
            .bind(&record.scope)
            .bind(&record.key)
            .bind(&record.request_hash)
            .bind(i32::from(record.response_status))
            .bind(&record.response_body)
            .bind(Ts(record.created_at))
            .execute(c)
            .await?
            .rows_affected()
        });
        if inserted == 1 {
            return Ok(Ok(tx));
        }
        let existing = dispatch!(tx.conn(), |c| {
            sqlx::query_as::<_, IdempotencyRecord>(concat!(
                "SELECT ",
                idempotency_columns!(),
                " FROM idempotency WHERE scope = $1 AND idempotency_key = $2"
            ))
            .bind(&record.scope)
            .bind(&record.key)
            .fetch_one(c)
            .await?
        });
        tx.rollback().await?;
        Ok(Err(existing))
    }
}
