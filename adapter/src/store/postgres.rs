//! The production store: PostgreSQL, shared by several adapter replicas.
//!
//! Transactions run at READ COMMITTED. Concurrency is handled by the statements themselves:
//! `INSERT … ON CONFLICT` waits for a concurrent inserter of the same key and then sees its
//! committed row, and the conditional upserts re-check their condition on the newest row.
//!
//! The sessions run `synchronous_commit=off`: a commit returns once its record is in the WAL
//! buffers, and durable writes wait for the group commit's flush, a synchronous commit on the
//! flusher's own connection (`group_commit.rs`). A connection is therefore held for a statement's
//! work only, never for a disk flush, so the pool's few connections serve many more writers.

use std::str::FromStr;

use sqlx::PgConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::group_commit::Flush;

use super::rows::outbox_entry_columns;
use super::{StoreError, StoreResult};

/// The first step of a claim (see `claim_window`): heads of their card among the destination's
/// oldest pending rows. Parameters: $1 owner, $2 lease until, $3 now, $4 limit, $5 destination, $6 the
/// window's last offset. Each row claimed also says whether pending rows lie past the window
/// (`past_window`: see `claim_outbox`).
pub(super) const CLAIM_OLDEST: &str = concat!(
    "UPDATE outbox SET lease_owner = $1, lease_until = $2 WHERE seq = ANY (ARRAY( \
       SELECT o.seq FROM outbox o \
       WHERE o.status = 'pending' AND o.destination = $5 AND o.next_attempt_at <= $3 AND o.held_at IS NULL \
         AND (o.lease_until IS NULL OR o.lease_until < $3) \
         AND o.seq <= COALESCE((SELECT w.seq FROM outbox w \
                                WHERE w.status = 'pending' AND w.destination = $5 \
                                ORDER BY w.seq OFFSET $6 LIMIT 1), 9223372036854775807) \
         AND o.seq = (SELECT p.seq FROM outbox p WHERE p.status = 'pending' \
                      AND p.destination = $5 AND p.ordering_key = o.ordering_key \
                      ORDER BY p.seq LIMIT 1) \
       ORDER BY o.seq LIMIT $4 FOR UPDATE SKIP LOCKED)) \
     RETURNING ",
    outbox_entry_columns!(),
    ", (SELECT w.seq FROM outbox w WHERE w.status = 'pending' AND w.destination = $5 \
        ORDER BY w.seq OFFSET $6 + 1 LIMIT 1) IS NOT NULL AS past_window"
);

/// The second step of a claim: the head of every card with pending rows (parameters as the
/// first's but the window). The heads are looked up by primary key (`= ANY (ARRAY(…))`), not
/// joined: planned without statistics (a young outbox), the join read every pending row into a
/// hash table and sorted it — 10 300 rows per claim when one card's backlog was deep.
pub(super) const CLAIM_HEADS: &str = concat!(
    "UPDATE outbox SET lease_owner = $1, lease_until = $2 WHERE seq = ANY (ARRAY( \
       WITH RECURSIVE heads(ordering_key, seq) AS ( \
         (SELECT ordering_key, seq FROM outbox \
          WHERE status = 'pending' AND destination = $5 ORDER BY ordering_key, seq LIMIT 1) \
         UNION ALL \
         SELECT n.ordering_key, n.seq FROM heads h CROSS JOIN LATERAL ( \
           SELECT ordering_key, seq FROM outbox \
           WHERE status = 'pending' AND destination = $5 AND ordering_key > h.ordering_key \
           ORDER BY ordering_key, seq LIMIT 1) n) \
       SELECT o.seq FROM outbox o WHERE o.seq = ANY (ARRAY(SELECT seq FROM heads)) \
         AND o.status = 'pending' AND o.next_attempt_at <= $3 AND o.held_at IS NULL \
         AND (o.lease_until IS NULL OR o.lease_until < $3) \
       ORDER BY o.seq LIMIT $4 FOR UPDATE OF o SKIP LOCKED)) \
     RETURNING ",
    outbox_entry_columns!(),
    ", FALSE AS past_window"
);

/// Connects to the database named by `url` (`postgres://user@host:5432/db`); also returns the
/// group commit's flush, which opens a connection of its own to the same database.
pub(super) async fn connect(url: &str, max_connections: u32) -> StoreResult<(PgPool, Flush)> {
    let options = PgConnectOptions::from_str(url)?.options([("synchronous_commit", "off")]);
    let (database, user) = (options.get_database().unwrap_or("postgres").to_owned(), options.get_username().to_owned());
    let pool = match PgPoolOptions::new().max_connections(max_connections.max(1)).connect_with(options).await {
        Ok(pool) => pool,
        // invalid_catalog_name: the server is there, the database is not (a first install).
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {
            return Err(StoreError::Setup(format!(
                "database `{database}` does not exist on the server: create it (`CREATE DATABASE \"{database}\" \
                 OWNER \"{user}\";` as a superuser) or correct database.url; the adapter creates its tables itself"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    Ok((pool, Flush::Postgres { url: url.to_owned(), conn: None }))
}

pub(super) async fn migrate(pool: &PgPool) -> StoreResult<()> {
    sqlx::migrate!("migrations/postgres").run(pool).await?;
    Ok(())
}

/// Serialises the writers of these ordering keys (sorted) until the transaction ends. `seq`
/// comes from a sequence, so without this two concurrent transactions for one card could commit
/// in the opposite order of their seqs, and the relay could deliver the later message first.
/// `unnest` yields the keys in the array's order, and a volatile function in the select list is
/// evaluated after the `ORDER BY` sort, so the locks are taken in sorted order.
pub(super) async fn lock_ordering_keys(conn: &mut PgConnection, sorted_keys: &[&str]) -> StoreResult<()> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) \
         FROM unnest(CAST($1 AS TEXT[])) WITH ORDINALITY AS keys(k, n) ORDER BY n",
    )
    .bind(sorted_keys)
    .execute(conn)
    .await?;
    Ok(())
}
