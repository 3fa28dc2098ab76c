//! The outbox: rows written with the state change that caused them, claimed by the relay under
//! a lease in per-card FIFO order, their attempts recorded, and re-driven by the operator.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::outbox::{Destination, OutboxStatus};

use super::engine::{Engine, Pool, SqlStore, WriteTx, dispatch};
use super::rows::{self, OutboxEntryRow, OutboxRow, Ts, outbox_columns, outbox_entry_columns};
use super::{
    DeliveryResult, FinishedAttempt, OutboxEntry, OutboxFilter, OutboxRecord, OutboxStats, Recorded, ReplaySelector,
    StoreResult, postgres, sqlite,
};

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Pending rows, oldest first (for inspection and tests).
    async fn pending_outbox(&self, limit: u32) -> StoreResult<Vec<OutboxRecord>>;
    /// Leases up to `limit` deliverable rows of `destination` to `owner` until `lease_until`:
    /// pending, due, not leased (or the lease expired), and the oldest pending row of their
    /// ordering key at that destination (FIFO per destination and card: one receiver's backlog
    /// never holds up another receiver's messages). Relaxed durability (see [`super::Store`]).
    async fn claim_outbox(
        &self,
        owner: &str,
        destination: Destination,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OutboxEntry>>;
    /// Records attempts on rows `owner` still leases, in one statement; per attempt, whether it
    /// was written — not when the lease was lost (taken over, or the operator changed the row):
    /// nothing written for that row, the others are — and whether its card's next row became
    /// claimable. Relaxed durability (see [`super::Store`]): a result lost to a power cut means
    /// one more delivery under the same key.
    async fn finish_outbox_many(&self, owner: &str, attempts: &[FinishedAttempt]) -> StoreResult<Vec<Recorded>>;
    /// [`OutboxStore::finish_outbox_many`] for one attempt: whether it was written.
    async fn finish_outbox(
        &self,
        id: uuid::Uuid,
        owner: &str,
        at: OffsetDateTime,
        result: &DeliveryResult,
    ) -> StoreResult<bool> {
        let recorded = self.finish_outbox_many(owner, &[FinishedAttempt { id, at, result: result.clone() }]).await?;
        Ok(recorded.first().is_some_and(|r| r.written()))
    }
    /// Newest first.
    async fn list_outbox(&self, filter: &OutboxFilter) -> StoreResult<Vec<OutboxEntry>>;
    async fn find_outbox(&self, id: uuid::Uuid) -> StoreResult<Option<OutboxEntry>>;
    /// A pending, held or dead row becomes due now (a held or dead one starts a fresh schedule).
    async fn retry_outbox(&self, id: uuid::Uuid, now: OffsetDateTime) -> StoreResult<bool>;
    /// Held and dead rows (and delivered ones when `include_delivered`) matching `selector`
    /// become pending again with a fresh schedule. Returns how many.
    async fn replay_outbox(
        &self,
        selector: &ReplaySelector,
        include_delivered: bool,
        now: OffsetDateTime,
    ) -> StoreResult<u64>;
    /// A pending or held row becomes dead without delivery (unblocks its ordering key).
    async fn skip_outbox(&self, id: uuid::Uuid, reason: &str) -> StoreResult<bool>;
    async fn outbox_stats(&self) -> StoreResult<OutboxStats>;
}

/// How many of a destination's oldest pending rows the first step of a claim looks through.
///
/// A claim takes the oldest pending row of each card. Scanning pending rows in order and
/// skipping those behind an older one costs one index probe per row skipped: when the backlog
/// is a few cards with deep queues whose heads are all in flight, that is every pending row on
/// every claim (30 ms at 10 000 rows, and the relay claims after every delivery). So the first
/// step looks only this far; when it comes back short, a second step visits the head of each
/// card with pending rows — one probe per card, cheap exactly when the first step is not.
/// Both steps are costly only for a backlog that is deep *and* spread over very many cards.
pub fn claim_window(limit: u32) -> i64 {
    i64::from(limit) * 4 + 256
}

/// How many results one statement records: 6 parameters each, far below either engine's
/// limit on a statement's parameters (SQLite 32 766, PostgreSQL 65 535).
const RESULTS_PER_STATEMENT: usize = 500;

/// Batches of up to this many results keep their statement prepared on SQLite.
const KEPT_RESULT_STATEMENTS: usize = 8;

/// The statement that records `n` results: `$1` the lease owner, then per result its row's id,
/// status, next attempt (NULL: unchanged), last error, delivered at and held at. A row is
/// written only while `$1` still leases it and it is pending. Each row written comes back with
/// its id and whether it left its card's queue with another of the card's rows pending behind
/// it at its destination (`next_in_line`: RETURNING sees the row as written; the next row is
/// never in the same statement, a card having one row in flight). Both engines name a `VALUES`
/// list's columns `column1`, `column2`, ….
fn record_results_sql(n: usize) -> String {
    let values: Vec<String> = (0..n)
        .map(|i| {
            let p = 2 + i * 6;
            format!("(${}, ${}, ${}, ${}, ${}, ${})", p, p + 1, p + 2, p + 3, p + 4, p + 5)
        })
        .collect();
    format!(
        "UPDATE outbox SET status = v.column2, attempts = attempts + 1, \
          next_attempt_at = COALESCE(v.column3, next_attempt_at), last_error = v.column4, \
          delivered_at = v.column5, held_at = v.column6, lease_owner = NULL, lease_until = NULL \
         FROM (VALUES {}) AS v \
         WHERE outbox.id = v.column1 AND outbox.lease_owner = $1 AND outbox.status = 'pending' \
         RETURNING outbox.id, outbox.status <> 'pending' AND EXISTS (SELECT 1 FROM outbox n \
           WHERE n.status = 'pending' AND n.destination = outbox.destination \
             AND n.ordering_key = outbox.ordering_key AND n.seq > outbox.seq) AS next_in_line",
        values.join(", ")
    )
}

/// Queues `outbox` in the caller's transaction, after the card's earlier rows.
pub(super) async fn insert(tx: &mut WriteTx, outbox: &OutboxRecord) -> StoreResult<()> {
    tx.lock_ordering_keys(&[&outbox.ordering_key]).await?;
    dispatch!(tx.conn(), |c| {
        sqlx::query(
            "INSERT INTO outbox \
             (id, destination, ordering_key, event_type, payload, created_at, not_after, \
              next_attempt_at, correlation_id, sealed_key_id, traceparent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(outbox.id)
        .bind(outbox.destination.as_str())
        .bind(&outbox.ordering_key)
        .bind(outbox.event_type())
        .bind(sqlx::types::Json(&outbox.message))
        .bind(Ts(outbox.created_at))
        .bind(outbox.not_after.map(Ts))
        .bind(Ts(outbox.created_at))
        .bind(&outbox.correlation_id)
        .bind(outbox.message.sealed_key_id())
        .bind(outbox.traceparent.map(|t| t.to_string()))
        .execute(c)
        .await?;
    });
    Ok(())
}

/// A row a claim leased, and whether the destination has pending rows past the first step's
/// window (the first step's statement answers both; the second's says false).
#[derive(sqlx::FromRow)]
struct ClaimedRow {
    #[sqlx(flatten)]
    entry: OutboxEntryRow,
    past_window: bool,
}

/// Runs one step of a claim: with `window_offset` (the window's last offset) the first,
/// `CLAIM_OLDEST`; without, the second, `CLAIM_HEADS`. Each engine has its own statements.
async fn lease_rows(
    pool: &Pool<'_>,
    owner: &str,
    destination: Destination,
    (now, lease_until): (OffsetDateTime, OffsetDateTime),
    limit: i64,
    window_offset: Option<i64>,
) -> StoreResult<Vec<ClaimedRow>> {
    let sql = match (pool, window_offset.is_some()) {
        (Engine::Sqlite(_), true) => sqlite::CLAIM_OLDEST,
        (Engine::Sqlite(_), false) => sqlite::CLAIM_HEADS,
        (Engine::Postgres(_), true) => postgres::CLAIM_OLDEST,
        (Engine::Postgres(_), false) => postgres::CLAIM_HEADS,
    };
    let keep_plan = pool.keeps_plans();
    Ok(dispatch!(pool, |pool| {
        let mut query = sqlx::query_as::<_, ClaimedRow>(sql)
            .persistent(keep_plan)
            .bind(owner)
            .bind(Ts(lease_until))
            .bind(Ts(now))
            .bind(limit)
            .bind(destination.as_str());
        if let Some(offset) = window_offset {
            query = query.bind(offset);
        }
        query.fetch_all(*pool).await?
    }))
}

/// Whether `destination` has a pending row past the first step's window (of `window` rows):
/// when it has none, that step saw every pending row, so the second could only find what the
/// first just passed over — and is not run. (Measured: the second step was run after nearly
/// every claim at moderate load, where the first comes back short, and was the costliest
/// statement of ingest → delivery on PostgreSQL: 1.8 ms against 0.26 ms for the first.) Asked
/// only when the first step claimed nothing: a row it claimed carries the answer.
async fn window_was_full(pool: &Pool<'_>, destination: Destination, window: i64) -> StoreResult<bool> {
    let keep_plan = pool.keeps_plans();
    let past = dispatch!(pool, |pool| {
        sqlx::query_scalar::<_, i64>(
            "SELECT seq FROM outbox WHERE status = 'pending' AND destination = $1 ORDER BY seq LIMIT 1 OFFSET $2",
        )
        .persistent(keep_plan)
        .bind(destination.as_str())
        .bind(window)
        .fetch_optional(*pool)
        .await?
    });
    Ok(past.is_some())
}

/// Re-drives the rows a [`ReplaySelector`] picks: `$1` now, `$2` include delivered, then the
/// selector's own parameters.
macro_rules! replay {
    ($selector:literal) => {
        concat!(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $1, last_error = NULL, \
              delivered_at = NULL, held_at = NULL, lease_owner = NULL, lease_until = NULL \
             WHERE (status = 'dead' OR held_at IS NOT NULL OR ($2 AND status = 'delivered')) AND ",
            $selector
        )
    };
}

#[async_trait]
impl OutboxStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn pending_outbox(&self, limit: u32) -> StoreResult<Vec<OutboxRecord>> {
        let rows = dispatch!(self.read(), |pool| {
            sqlx::query_as::<_, OutboxRow>(concat!(
                "SELECT ",
                outbox_columns!(),
                " FROM outbox WHERE status = 'pending' ORDER BY seq LIMIT $1"
            ))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        rows::convert_all(rows)
    }

    #[tracing::instrument(skip_all)]
    async fn claim_outbox(
        &self,
        owner: &str,
        destination: Destination,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OutboxEntry>> {
        // SQLite: under its single write lock, atomic; meant for one relay process per database
        // file, the lease letting a restarted process take over the rows of the one that
        // crashed. PostgreSQL: SKIP LOCKED, so replicas claiming at the same moment take
        // different rows instead of queueing on each other's locks; the lease keeps a row theirs
        // after the commit (and out of the second step's reach). The PostgreSQL statements'
        // shapes leave the planner one sane plan even before the table has statistics: "is the
        // head of its card" as a correlated `LIMIT 1` subquery is one index probe per row (as
        // `NOT EXISTS` it became an anti-join that read every pending row per row: 220 ms at
        // 5 000 rows); `= ANY (ARRAY(…))`, not `IN (…)`, finds the claimed rows by primary key.
        //
        // Two steps (see `claim_window`): the oldest rows first, then — only when they did not
        // fill the claim and pending rows lie past the window — the head of every card, one index
        // probe per card (a loose index scan): cheap when the backlog is a few deep queues, which
        // is when the first step comes back short with rows past its window.
        let writer = self.write_relaxed().await;
        let times = (now, lease_until);
        let window = Some(claim_window(limit) - 1);
        let mut rows = lease_rows(&writer.pool, owner, destination, times, i64::from(limit), window).await?;
        let wanted = i64::from(limit) - rows.len() as i64;
        // A row the first step leased says whether rows lie past its window; when it leased
        // none, a probe asks (nothing is leased yet, so a probe that fails fails the claim).
        let past_window = wanted > 0
            && match rows.first() {
                Some(row) => row.past_window,
                None => window_was_full(&writer.pool, destination, claim_window(limit)).await?,
            };
        if past_window {
            rows.extend(lease_rows(&writer.pool, owner, destination, times, wanted, None).await?);
        }
        let mut entries = rows::convert_all::<_, OutboxEntry>(rows.into_iter().map(|r| r.entry).collect())?;
        entries.sort_by_key(|e| e.seq);
        Ok(entries)
    }

    #[tracing::instrument(skip_all, fields(attempts = attempts.len()))]
    async fn finish_outbox_many(&self, owner: &str, attempts: &[FinishedAttempt]) -> StoreResult<Vec<Recorded>> {
        // The relay records the results of every delivery that ended while it recorded the
        // previous ones together (see `relay::ResultWriter`): one statement for the lot (up to
        // `RESULTS_PER_STATEMENT`), which commits on its own — on SQLite one WAL append, on
        // PostgreSQL one commit. (A statement per row inside a transaction was 2 + n round
        // trips; the BEGIN and COMMIT alone were 2 of an event's 18 statements on PostgreSQL,
        // measured with `pg_stat_statements`.)
        // A row twice in one batch (its lease ran out and this process claimed it again while
        // the first attempt's result waited): the last attempt is recorded, the earlier one is
        // answered as a lost lease, as if recorded first and overtaken.
        let mut last_of: std::collections::HashMap<uuid::Uuid, usize> = std::collections::HashMap::new();
        for (i, attempt) in attempts.iter().enumerate() {
            last_of.insert(attempt.id, i);
        }
        let unique: Vec<&FinishedAttempt> =
            attempts.iter().enumerate().filter(|(i, a)| last_of[&a.id] == *i).map(|(_, a)| a).collect();
        let writer = self.write_relaxed().await;
        let mut written: std::collections::HashMap<uuid::Uuid, bool> = std::collections::HashMap::new();
        // Each chunk commits on its own: when a later one fails, the earlier ones stay written
        // (their rows, recorded again one by one, answer as lost leases: nothing is lost).
        for chunk in unique.chunks(RESULTS_PER_STATEMENT) {
            // Built from the chunk's length alone: every value is a bound parameter.
            let sql = sqlx::AssertSqlSafe(record_results_sql(chunk.len()));
            // SQLite keeps the statements it prepares in a cache of 100 per connection: only the
            // common small batches are kept, so the larger ones cannot push out the hot
            // statements (PostgreSQL keeps none of the relay's, see `keeps_plans`).
            let keep_plan = writer.pool.keeps_plans() && chunk.len() <= KEPT_RESULT_STATEMENTS;
            let rows = dispatch!(writer.pool, |pool| {
                let mut query = sqlx::query_as::<_, (uuid::Uuid, bool)>(sql).persistent(keep_plan).bind(owner);
                for attempt in chunk {
                    let columns = rows::result_columns(&attempt.result, attempt.at);
                    query = query
                        .bind(attempt.id)
                        .bind(columns.status)
                        .bind(columns.next_attempt_at)
                        .bind(columns.last_error)
                        .bind(columns.delivered_at)
                        .bind(columns.held_at);
                }
                query.fetch_all(pool).await?
            });
            written.extend(rows);
        }
        Ok(attempts
            .iter()
            .enumerate()
            .map(|(i, a)| match written.get(&a.id) {
                Some(&next_in_line) if last_of[&a.id] == i => Recorded::Written { next_in_line },
                _ => Recorded::LeaseLost,
            })
            .collect())
    }

    #[tracing::instrument(skip_all)]
    async fn list_outbox(&self, filter: &OutboxFilter) -> StoreResult<Vec<OutboxEntry>> {
        let rows = dispatch!(self.read(), |pool| {
            sqlx::query_as::<_, OutboxEntryRow>(concat!(
                "SELECT ",
                outbox_entry_columns!(),
                " FROM outbox WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) \
                  AND (CAST($4 AS TEXT) IS NULL OR (held_at IS NOT NULL) = ($4 = 'held')) \
                  AND (CAST($2 AS TEXT) IS NULL OR ordering_key = $2) ORDER BY seq DESC LIMIT $3"
            ))
            // A held row is stored pending: `held` and `pending` differ by `held_at`.
            .bind(filter.status.map(|s| if s == OutboxStatus::Held { OutboxStatus::Pending } else { s }.as_str()))
            .bind(&filter.ordering_key)
            .bind(i64::from(filter.limit))
            .bind(match filter.status {
                Some(OutboxStatus::Held) => Some("held"),
                Some(OutboxStatus::Pending) => Some("pending"),
                _ => None,
            })
            .fetch_all(pool)
            .await?
        });
        rows::convert_all(rows)
    }

    #[tracing::instrument(skip_all)]
    async fn find_outbox(&self, id: uuid::Uuid) -> StoreResult<Option<OutboxEntry>> {
        let row = dispatch!(self.read(), |pool| {
            sqlx::query_as::<_, OutboxEntryRow>(concat!(
                "SELECT ",
                outbox_entry_columns!(),
                " FROM outbox WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        row.map(OutboxEntry::try_from).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn retry_outbox(&self, id: uuid::Uuid, now: OffsetDateTime) -> StoreResult<bool> {
        let writer = self.write().await;
        let updated = dispatch!(writer.pool, |pool| {
            sqlx::query(
                "UPDATE outbox SET \
                  attempts = CASE WHEN status = 'dead' OR held_at IS NOT NULL THEN 0 ELSE attempts END, \
                  status = 'pending', next_attempt_at = $2, held_at = NULL \
                 WHERE id = $1 AND status IN ('pending', 'dead')",
            )
            .bind(id)
            .bind(Ts(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        writer.durable().await?;
        Ok(updated == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn replay_outbox(
        &self,
        selector: &ReplaySelector,
        include_delivered: bool,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        let writer = self.write().await;
        let updated = dispatch!(writer.pool, |pool| {
            let query = match selector {
                ReplaySelector::Id(id) => {
                    sqlx::query(replay!("id = $3")).bind(Ts(now)).bind(include_delivered).bind(id)
                }
                ReplaySelector::OrderingKey(key) => {
                    sqlx::query(replay!("ordering_key = $3")).bind(Ts(now)).bind(include_delivered).bind(key)
                }
                ReplaySelector::CreatedBetween(from, until) => {
                    sqlx::query(replay!("created_at >= $3 AND created_at < $4"))
                        .bind(Ts(now))
                        .bind(include_delivered)
                        .bind(Ts(*from))
                        .bind(Ts(*until))
                }
            };
            query.execute(pool).await?.rows_affected()
        });
        writer.durable().await?;
        Ok(updated)
    }

    #[tracing::instrument(skip_all)]
    async fn skip_outbox(&self, id: uuid::Uuid, reason: &str) -> StoreResult<bool> {
        let writer = self.write().await;
        let updated = dispatch!(writer.pool, |pool| {
            sqlx::query(
                "UPDATE outbox SET status = 'dead', last_error = $2, held_at = NULL, \
                  lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(reason)
            .execute(pool)
            .await?
            .rows_affected()
        });
        writer.durable().await?;
        Ok(updated == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn outbox_stats(&self) -> StoreResult<OutboxStats> {
        let (pending, held, dead, oldest): (i64, i64, i64, Option<OffsetDateTime>) = dispatch!(self.read(), |pool| {
            let count = |status: &'static str| {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM outbox WHERE status = $1")
                    .bind(status)
                    .fetch_one(pool)
            };
            let oldest =
                sqlx::query_scalar("SELECT created_at FROM outbox WHERE status = 'pending' ORDER BY seq LIMIT 1")
                    .fetch_optional(pool);
            let held = sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND held_at IS NOT NULL",
            )
            .fetch_one(pool);
            // A row no sink took is not a dead letter (see `NO_SINK`): it is not counted.
            let dead = sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM outbox WHERE status = 'dead' AND (last_error IS NULL OR last_error <> $1)",
            )
            .bind(crate::outbox::NO_SINK)
            .fetch_one(pool);
            (count("pending").await?, held.await?, dead.await?, oldest.await?)
        });
        Ok(OutboxStats {
            pending: pending.max(0).unsigned_abs(),
            held: held.max(0).unsigned_abs(),
            dead: dead.max(0).unsigned_abs(),
            oldest_pending_created_at: oldest,
        })
    }
}
