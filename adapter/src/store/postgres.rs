//! The production store: PostgreSQL, shared by several adapter replicas.
//!
//! Transactions run at READ COMMITTED. Concurrency is handled by the statements themselves:
//! `INSERT … ON CONFLICT` waits for a concurrent inserter of the same key and then sees its
//! committed row, and the conditional upserts re-check their condition on the newest row.
//!
//! Every write commits with the server's `synchronous_commit` (on by default), also the ones the
//! [`Store`] allows to be relaxed: a second pool of `synchronous_commit=off` sessions was tried
//! and made the relay's bookkeeping queue for its few connections under load (leases ran out),
//! and PostgreSQL already flushes concurrent commits together.

use sqlx::PgConnection;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::StoreResult;
use super::rows::outbox_entry_columns;

/// The first step of a claim (see `claim_window`): heads of their card among the destination's
/// oldest pending rows. Parameters: $1 owner, $2 lease until, $3 now, $4 limit, $5 destination, $6 the
/// window's last offset.
pub(super) const CLAIM_OLDEST: &str = concat!(
    "UPDATE outbox SET lease_owner = $1, lease_until = $2 WHERE seq = ANY (ARRAY( \
       SELECT o.seq FROM outbox o \
       WHERE o.status = 'pending' AND o.destination = $5 AND o.next_attempt_at <= $3 \
         AND (o.lease_until IS NULL OR o.lease_until < $3) \
         AND o.seq <= COALESCE((SELECT w.seq FROM outbox w \
                                WHERE w.status = 'pending' AND w.destination = $5 \
                                ORDER BY w.seq OFFSET $6 LIMIT 1), 9223372036854775807) \
         AND o.seq = (SELECT p.seq FROM outbox p WHERE p.status = 'pending' \
                      AND p.destination = $5 AND p.ordering_key = o.ordering_key \
                      ORDER BY p.seq LIMIT 1) \
       ORDER BY o.seq LIMIT $4 FOR UPDATE SKIP LOCKED)) \
     RETURNING ",
    outbox_entry_columns!()
);

/// The second step of a claim: the head of every card with pending rows (parameters as the
/// first's but the window).
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
       SELECT o.seq FROM heads h JOIN outbox o ON o.seq = h.seq \
       WHERE o.status = 'pending' AND o.next_attempt_at <= $3 \
         AND (o.lease_until IS NULL OR o.lease_until < $3) \
       ORDER BY o.seq LIMIT $4 FOR UPDATE OF o SKIP LOCKED)) \
     RETURNING ",
    outbox_entry_columns!()
);

/// Connects to the database named by `url` (`postgres://user@host:5432/db`).
pub(super) async fn connect(url: &str, max_connections: u32) -> StoreResult<PgPool> {
    Ok(PgPoolOptions::new().max_connections(max_connections.max(1)).connect(url).await?)
}

pub(super) async fn migrate(pool: &PgPool) -> StoreResult<()> {
    sqlx::migrate!("migrations/postgres").run(pool).await?;
    Ok(())
}

/// Serialises the writers of one ordering key until the transaction ends. `seq` comes from a
/// sequence, so without this two concurrent transactions for one card could commit in the
/// opposite order of their seqs, and the relay could deliver the later message first.
pub(super) async fn lock_ordering_key(conn: &mut PgConnection, key: &str) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(key).execute(conn).await?;
    Ok(())
}
