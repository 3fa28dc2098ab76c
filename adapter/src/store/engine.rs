//! The one implementation of the store, [`SqlStore`], and the seam between its two engines.
//!
//! Every statement of the store is written once, in the SQL both engines accept (`$N`
//! placeholders, `ON CONFLICT … DO UPDATE`, `RETURNING`, `CAST`), and the aggregate modules
//! (`cards`, `tokens`, `outbox`, …) run it through [`dispatch!`], which expands one body into a
//! `match` arm per engine: each arm is compiled against that engine's concrete sqlx types, so
//! there are no generic sqlx bounds to carry and no runtime translation of SQL. What truly
//! differs between the engines lives in `sqlite.rs` and `postgres.rs` and is reached from here:
//! connecting and migrating, SQLite's write gate and its writer connection, the claim
//! statements, PostgreSQL's per-card ordering lock, and each engine's flush for the group
//! commit (`group_commit.rs`).
//!
//! Durability is decided here, once for both engines: every write commits without waiting for
//! the disk, and a durable one ([`SqlStore::write`], [`SqlStore::begin_write`]) is not done until
//! [`Writer::durable`] or [`WriteTx::commit`] has seen a group-commit flush cover it.

use std::sync::Arc;

use sqlx::{PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::OwnedMutexGuard;

use super::group_commit::{GroupCommit, InFlight};
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

impl<S, P> Engine<S, P> {
    /// Whether a statement whose best plan depends on the size of the tables it reads may be
    /// kept prepared with its plan. From its sixth run PostgreSQL may plan a kept statement once
    /// for all parameters (a generic plan, taken when it looks no costlier than the plans made so
    /// far), with the table sizes of that moment, and keeps that plan until the table is next
    /// analysed: the outbox is nearly empty when a process starts, so the plan kept for a claim
    /// was a sequential scan and the one for recording a result walked every pending row —
    /// measured under `tmp-kit load` (ingest at 700/s): 1 ms per claim at 14 000 rows, half of
    /// the database's time. On PostgreSQL such statements are
    /// therefore not kept (`persistent(false)`: planned on every run, with the table as it is);
    /// SQLite plans from the schema alone and keeps them.
    pub(super) fn keeps_plans(&self) -> bool {
        matches!(self, Engine::Sqlite(_))
    }
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
    pub(super) group: Arc<GroupCommit>,
    /// Velocity keys' turns within this process (striped by hash), taken before a connection:
    /// a burst on one card or device waits here, holding no pooled connection, instead of in
    /// the database's lock, holding one each (which could empty the pool for everyone).
    pub(super) velocity_turns: Arc<[tokio::sync::Mutex<()>; VELOCITY_STRIPES]>,
}

/// How many velocity-key stripes a process serialises on.
pub(super) const VELOCITY_STRIPES: usize = 64;

/// A single-statement write: where it runs, (SQLite) the write gate, held until it is dropped
/// or made durable, and for a durable write its place in the group commit.
pub(super) struct Writer<'a> {
    pub(super) pool: Pool<'a>,
    gate: Option<OwnedMutexGuard<()>>,
    durable: Option<(&'a GroupCommit, InFlight)>,
}

impl Writer<'_> {
    /// After the statement of a durable write: opens the gate and waits for the flush that
    /// makes the statement durable. (A relaxed write has nothing to wait for.)
    pub(super) async fn durable(self) -> StoreResult<()> {
        let Writer { gate, durable, .. } = self;
        drop(gate);
        match durable {
            Some((group, in_flight)) => group.committed(in_flight).await,
            None => Ok(()),
        }
    }
}

/// A write transaction, durable or relaxed (on SQLite holding the write gate until it ends).
pub(super) struct WriteTx {
    // Declared first: rolled back (when dropped unfinished) before the gate opens.
    tx: Engine<Transaction<'static, Sqlite>, Transaction<'static, Postgres>>,
    gate: Option<OwnedMutexGuard<()>>,
    /// A durable transaction's place in the group commit; `None` for a relaxed one.
    durable: Option<(Arc<GroupCommit>, InFlight)>,
    /// The ordering keys this transaction holds (PostgreSQL): a key is locked once, however
    /// many of its rows the transaction writes.
    locked: Vec<String>,
}

impl WriteTx {
    /// The transaction's connection, for [`dispatch!`].
    pub(super) fn conn(&mut self) -> Engine<&mut SqliteConnection, &mut PgConnection> {
        match &mut self.tx {
            Engine::Sqlite(tx) => Engine::Sqlite(&mut **tx),
            Engine::Postgres(tx) => Engine::Postgres(&mut **tx),
        }
    }

    /// Commits, opens the gate, and returns once a group-commit flush has made the
    /// transaction durable (a relaxed transaction: once it has committed).
    pub(super) async fn commit(self) -> StoreResult<()> {
        self.commit_releasing(|| {}).await
    }

    /// As [`WriteTx::commit`], running `release` once the transaction is committed and before
    /// waiting for its flush: what the caller holds for the transaction's sake alone (its
    /// locks) is let go at commit, as the database lets go of its own, not after the disk.
    pub(super) async fn commit_releasing(self, release: impl FnOnce()) -> StoreResult<()> {
        let WriteTx { tx, gate, durable, .. } = self;
        dispatch!(tx, |tx| tx.commit().await?);
        drop(gate);
        release();
        match durable {
            Some((group, in_flight)) => group.committed(in_flight).await,
            None => Ok(()),
        }
    }

    pub(super) async fn rollback(self) -> StoreResult<()> {
        dispatch!(self.tx, |tx| tx.rollback().await?);
        Ok(())
    }

    /// Serialises the writers of these ordering keys until the transaction ends, so that outbox
    /// rows of one card commit in the order of their `seq`. SQLite needs nothing: it has one
    /// writer at a time. On PostgreSQL the keys not yet held are locked in one statement, in
    /// one (sorted) order for every writer, so that transactions sharing keys cannot deadlock —
    /// a transaction locks all its keys up front, or one key at a time while it holds no other.
    /// (One statement per key was a round trip each, and the outbox row's insert locked its key
    /// again after the ingest had: measured with `pg_stat_statements`, 2 of an event's 18
    /// statements.)
    pub(super) async fn lock_ordering_keys(&mut self, keys: &[&str]) -> StoreResult<()> {
        let mut wanted: Vec<&str> = keys.iter().copied().filter(|k| !self.locked.iter().any(|l| l == k)).collect();
        if wanted.is_empty() {
            return Ok(());
        }
        wanted.sort_unstable();
        wanted.dedup();
        // The deadlock-free order: keys are taken in sorted order across the whole transaction.
        debug_assert!(
            self.locked.iter().all(|held| wanted.iter().all(|w| held.as_str() < *w)),
            "ordering keys locked out of order: lock all of a transaction's keys up front"
        );
        if let Engine::Postgres(conn) = self.conn() {
            postgres::lock_ordering_keys(conn, &wanted).await?;
        }
        self.locked.extend(wanted.into_iter().map(str::to_owned));
        Ok(())
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

    /// A durable single-statement write (on SQLite: behind the write gate). Finish it with
    /// [`Writer::durable`].
    pub(super) async fn write(&self) -> Writer<'_> {
        let in_flight = self.group.begin();
        Writer { durable: Some((&*self.group, in_flight)), ..self.write_relaxed().await }
    }

    /// A single-statement write of relaxed durability (see [`super::Store`]): it commits like
    /// every write, and becomes durable with the next flush, without waiting for one.
    pub(super) async fn write_relaxed(&self) -> Writer<'_> {
        match &self.engine {
            Engine::Sqlite(sqlite) => {
                Writer { pool: Engine::Sqlite(&sqlite.writer), gate: Some(sqlite.gate().await), durable: None }
            }
            Engine::Postgres(pool) => Writer { pool: Engine::Postgres(pool), gate: None, durable: None },
        }
    }

    /// Begins a durable write transaction (on SQLite: takes the gate, then `BEGIN IMMEDIATE`).
    pub(super) async fn begin_write(&self) -> StoreResult<WriteTx> {
        let in_flight = self.group.begin();
        let tx = self.begin_write_relaxed().await?;
        Ok(WriteTx { durable: Some((self.group.clone(), in_flight)), ..tx })
    }

    /// Begins a write transaction of relaxed durability (see [`super::Store`]): its commit
    /// returns without waiting for a flush, and the next flush covers it.
    pub(super) async fn begin_write_relaxed(&self) -> StoreResult<WriteTx> {
        let (tx, gate) = match &self.engine {
            Engine::Sqlite(sqlite) => {
                let gate = sqlite.gate().await;
                (Engine::Sqlite(sqlite.writer.begin_with("BEGIN IMMEDIATE").await?), Some(gate))
            }
            Engine::Postgres(pool) => (Engine::Postgres(pool.begin().await?), None),
        };
        Ok(WriteTx { tx, gate, durable: None, locked: Vec::new() })
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
        // The stored answer may belong to a write not yet durable: answer it only once it is.
        self.group.settle().await?;
        Ok(Err(existing))
    }
}
