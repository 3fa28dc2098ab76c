//! The embedded store: one SQLite file in WAL mode, `synchronous=FULL` so that an
//! acknowledged write survives a power cut.
//!
//! Write transactions start with `BEGIN IMMEDIATE`: they take the write lock up front instead of
//! upgrading a read lock later, which two concurrent writers could not both do.
//!
//! SQLite has one writer at a time. Every write of this store first takes the store's
//! **write gate**, an async FIFO mutex, and only then SQLite's lock: writers queue in the
//! runtime, in arrival order, instead of polling in SQLite's busy handler, which sleeps in steps
//! of up to 100 ms and holds a pooled connection while it sleeps (under load that emptied the
//! pool and multiplied latency). The busy timeout stays as the fallback for writers outside
//! this process (the `tmp-adapter` CLI). Readers never wait for the gate (WAL).
//!
//! Durability is per write, see [`Store`]: what is acknowledged commits with
//! `synchronous=FULL` (the WAL is fsynced before the commit returns); the bookkeeping that
//! only ever causes a retry when lost (a replay check's request id, the relay's leases and
//! attempt results) commits on a `synchronous=NORMAL` connection, without an fsync of its own:
//! the next FULL commit's fsync makes it durable too, because the WAL is written in order.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqliteExecutor, Transaction};
use time::OffsetDateTime;
use tmp_protocol::enums::{IssuerCardStatus, TokenStatus};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::rows::{
    self, ApiKeyRow, CardRow, DecisionRow, IdempotencyRow, NotificationRow, OpsAuditRow, OutboxEntryRow, OutboxRow,
    TokenEventRow, TokenRow, api_key_columns, card_columns, decision_columns, idempotency_columns,
    notification_columns, ops_audit_columns, opt_sqlite_ts, outbox_columns, outbox_entry_columns, sqlite_ts,
    token_columns, token_event_columns,
};
use super::{
    ApiKeyRecord, CardChange, CardRecord, DecisionRecord, DeliveryResult, IdempotencyRecord, IdempotentWrite,
    IngestOutcome, NotificationRecord, OpsAuditFilter, OpsAuditRecord, OutboxEntry, OutboxFilter, OutboxRecord,
    OutboxStats, ProcessorEventRecord, ReplaySelector, Store, StoreError, StoreResult, TokenEventOutcome,
    TokenEventRecord, TokenRecord, claim_window,
};

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// [`Store`] on a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One `synchronous=NORMAL` connection for the relaxed writes (see the module's notes).
    relaxed: SqlitePool,
    /// Held for the whole of every write (see the module's notes).
    write_gate: Arc<Mutex<()>>,
}

/// A write transaction that holds the write gate until it ends.
struct WriteTx {
    // Declared first: dropped (rolled back) before the gate opens.
    tx: Transaction<'static, Sqlite>,
    _gate: OwnedMutexGuard<()>,
}

impl WriteTx {
    async fn commit(self) -> StoreResult<()> {
        self.tx.commit().await?;
        Ok(())
    }

    async fn rollback(self) -> StoreResult<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

/// The first step of a claim (see `claim_window`): heads of their card among the destination's
/// oldest pending rows. Parameters: ?1 owner, ?2 lease until, ?3 now, ?4 limit, ?5 destination, ?6 the
/// window's last offset.
const CLAIM_OLDEST: &str = concat!(
    "UPDATE outbox SET lease_owner = ?1, lease_until = ?2 WHERE seq IN ( \
       SELECT o.seq FROM outbox o \
       WHERE o.status = 'pending' AND o.destination = ?5 AND o.next_attempt_at <= ?3 \
         AND (o.lease_until IS NULL OR o.lease_until < ?3) \
         AND o.seq <= COALESCE((SELECT w.seq FROM outbox w \
                                WHERE w.status = 'pending' AND w.destination = ?5 \
                                ORDER BY w.seq LIMIT 1 OFFSET ?6), 9223372036854775807) \
         AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.status = 'pending' \
                         AND p.destination = o.destination \
                         AND p.ordering_key = o.ordering_key AND p.seq < o.seq) \
       ORDER BY o.seq LIMIT ?4) \
     RETURNING ",
    outbox_entry_columns!()
);

/// The second step of a claim: the head of every card with pending rows (parameters as the
/// first's but the window).
const CLAIM_HEADS: &str = concat!(
    "UPDATE outbox SET lease_owner = ?1, lease_until = ?2 WHERE seq IN ( \
       WITH RECURSIVE keys(k) AS ( \
         SELECT MIN(ordering_key) FROM outbox WHERE status = 'pending' AND destination = ?5 \
         UNION ALL \
         SELECT (SELECT MIN(ordering_key) FROM outbox \
                 WHERE status = 'pending' AND destination = ?5 AND ordering_key > keys.k) \
         FROM keys WHERE keys.k IS NOT NULL) \
       SELECT o.seq FROM keys JOIN outbox o ON o.seq = ( \
         SELECT MIN(h.seq) FROM outbox h \
         WHERE h.status = 'pending' AND h.destination = ?5 AND h.ordering_key = keys.k) \
       WHERE o.next_attempt_at <= ?3 AND (o.lease_until IS NULL OR o.lease_until < ?3) \
       ORDER BY o.seq LIMIT ?4) \
     RETURNING ",
    outbox_entry_columns!()
);

impl SqliteStore {
    /// Runs one step of a claim: with `window_offset` (the window's last offset) the first,
    /// [`CLAIM_OLDEST`]; without, the second, [`CLAIM_HEADS`].
    async fn lease_outbox_rows(
        &self,
        owner: &str,
        destination: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: i64,
        window_offset: Option<i64>,
    ) -> StoreResult<Vec<OutboxEntryRow>> {
        let sql = if window_offset.is_some() { CLAIM_OLDEST } else { CLAIM_HEADS };
        let mut query = sqlx::query_as::<_, OutboxEntryRow>(sql)
            .bind(owner)
            .bind(sqlite_ts(lease_until))
            .bind(sqlite_ts(now))
            .bind(limit)
            .bind(destination);
        if let Some(offset) = window_offset {
            query = query.bind(offset);
        }
        Ok(query.fetch_all(&self.relaxed).await?)
    }

    /// Opens (creating the file and its directory if missing) the database named by `url`,
    /// e.g. `sqlite:///var/lib/tmp-adapter/adapter.db` or `sqlite://data/adapter.db`.
    /// Does not run the migrations: see [`Store::migrate`].
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory
            && let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let pool =
            SqlitePoolOptions::new().max_connections(max_connections.max(1)).connect_with(options.clone()).await?;
        // An in-memory database exists once per connection: relaxed writes must use the same.
        let relaxed = if in_memory {
            pool.clone()
        } else {
            let options = options.synchronous(SqliteSynchronous::Normal);
            SqlitePoolOptions::new().max_connections(1).connect_with(options).await?
        };
        Ok(SqliteStore { pool, relaxed, write_gate: Arc::new(Mutex::new(())) })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Waits for the write gate: hold the guard for the whole of a single-statement write.
    async fn gate(&self) -> OwnedMutexGuard<()> {
        self.write_gate.clone().lock_owned().await
    }

    /// Takes the write gate, then begins a write transaction.
    async fn begin_write(&self) -> StoreResult<WriteTx> {
        let gate = self.gate().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx { tx, _gate: gate })
    }

    /// Begins a write transaction and, when `idempotency` is given, claims its scope+key in it.
    /// `Ok(Err(existing))` when another request already holds the key: nothing was written.
    async fn begin_claiming(
        &self,
        idempotency: Option<&IdempotencyRecord>,
    ) -> StoreResult<Result<WriteTx, IdempotencyRecord>> {
        let mut tx = self.begin_write().await?;
        let Some(record) = idempotency else {
            return Ok(Ok(tx));
        };
        let inserted = sqlx::query(
            "INSERT INTO idempotency \
             (scope, idempotency_key, request_hash, response_status, response_body, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (scope, idempotency_key) DO NOTHING",
        )
        .bind(&record.scope)
        .bind(&record.key)
        .bind(&record.request_hash)
        .bind(i32::from(record.response_status))
        .bind(&record.response_body)
        .bind(sqlite_ts(record.created_at))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Ok(tx));
        }
        let existing = fetch_idempotency(&mut *tx, &record.scope, &record.key)
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
        tx.rollback().await?;
        Ok(Err(existing))
    }
}

async fn fetch_idempotency<'c>(
    executor: impl SqliteExecutor<'c>,
    scope: &str,
    key: &str,
) -> StoreResult<Option<IdempotencyRecord>> {
    sqlx::query_as::<_, IdempotencyRow>(concat!(
        "SELECT ",
        idempotency_columns!(),
        " FROM idempotency WHERE scope = ? AND idempotency_key = ?"
    ))
    .bind(scope)
    .bind(key)
    .fetch_optional(executor)
    .await?
    .map(IdempotencyRecord::try_from)
    .transpose()
}

async fn fetch_token<'c>(executor: impl SqliteExecutor<'c>, token_id: &str) -> StoreResult<Option<TokenRecord>> {
    sqlx::query_as::<_, TokenRow>(concat!("SELECT ", token_columns!(), " FROM tokens WHERE token_id = ?"))
        .bind(token_id)
        .fetch_optional(executor)
        .await?
        .map(TokenRecord::try_from)
        .transpose()
}

async fn insert_outbox(conn: &mut SqliteConnection, outbox: &OutboxRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO outbox \
         (id, destination, ordering_key, event_type, payload, created_at, not_after, \
          next_attempt_at, correlation_id) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(outbox.id)
    .bind(&outbox.destination)
    .bind(&outbox.ordering_key)
    .bind(&outbox.event_type)
    .bind(sqlx::types::Json(&outbox.payload))
    .bind(sqlite_ts(outbox.created_at))
    .bind(opt_sqlite_ts(outbox.not_after))
    .bind(sqlite_ts(outbox.created_at))
    .bind(&outbox.correlation_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Upserts the token mirror from `event` unless the mirror holds a newer state.
/// Returns whether the mirror was written.
async fn upsert_mirror(conn: &mut SqliteConnection, event: &TokenEventRecord) -> StoreResult<bool> {
    let written = sqlx::query(
        "INSERT INTO tokens \
         (token_id, card_id, tsp, token_requestor_id, wallet, status, token_last4, \
          status_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (token_id) DO UPDATE SET \
          card_id = excluded.card_id, \
          tsp = excluded.tsp, \
          token_requestor_id = excluded.token_requestor_id, \
          wallet = excluded.wallet, \
          status = excluded.status, \
          token_last4 = COALESCE(excluded.token_last4, tokens.token_last4), \
          status_at = excluded.status_at, \
          updated_at = excluded.updated_at \
         WHERE tokens.status_at <= excluded.status_at",
    )
    .bind(&event.token_id)
    .bind(&event.card_id)
    .bind(&event.tsp)
    .bind(&event.token_requestor_id)
    .bind(&event.wallet)
    .bind(event.status.as_str())
    .bind(&event.token_last4)
    .bind(sqlite_ts(event.occurred_at))
    .bind(sqlite_ts(event.received_at))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(written == 1)
}

/// Inserts or updates one card by id; a PAN fingerprint owned by another id is `DuplicatePan`.
async fn upsert_card(conn: &mut SqliteConnection, card: &CardRecord) -> StoreResult<u64> {
    let owner: Option<String> = sqlx::query_scalar("SELECT card_id FROM cards WHERE pan_fingerprint = ?1")
        .bind(&card.pan_fingerprint)
        .fetch_optional(&mut *conn)
        .await?;
    if owner.is_some_and(|owner| owner != card.card_id) {
        return Err(StoreError::DuplicatePan);
    }
    Ok(sqlx::query(
        "INSERT INTO cards \
         (card_id, pan_fingerprint, pan_ciphertext, pan_key_id, pan_last4, expiry_yymm, \
          status, cardholder_phone, cardholder_email, product_category, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
         ON CONFLICT (card_id) DO UPDATE SET \
          pan_fingerprint = excluded.pan_fingerprint, \
          pan_ciphertext = excluded.pan_ciphertext, \
          pan_key_id = excluded.pan_key_id, \
          pan_last4 = excluded.pan_last4, \
          expiry_yymm = excluded.expiry_yymm, \
          status = excluded.status, \
          cardholder_phone = excluded.cardholder_phone, \
          cardholder_email = excluded.cardholder_email, \
          product_category = excluded.product_category, \
          updated_at = excluded.updated_at",
    )
    .bind(&card.card_id)
    .bind(&card.pan_fingerprint)
    .bind(&card.pan_ciphertext)
    .bind(&card.pan_key_id)
    .bind(&card.pan_last4)
    .bind(&card.expiry_yymm)
    .bind(card.status.as_str())
    .bind(&card.cardholder_phone)
    .bind(&card.cardholder_email)
    .bind(&card.product_category)
    .bind(sqlite_ts(card.updated_at))
    .execute(conn)
    .await
    .map_err(rows::card_write_error)?
    .rows_affected())
}

/// Applies one processor event's change to the registry. Changes to a card the registry does
/// not hold (cards kept at the processor) touch nothing.
async fn apply_card_change(conn: &mut SqliteConnection, event: &ProcessorEventRecord) -> StoreResult<()> {
    let now = sqlite_ts(event.received_at);
    match &event.change {
        CardChange::Register(card) => {
            upsert_card(conn, card).await?;
        }
        CardChange::Replace(new_card) => {
            let old =
                sqlx::query_as::<_, CardRow>(concat!("SELECT ", card_columns!(), " FROM cards WHERE card_id = ?1"))
                    .bind(&event.card_id)
                    .fetch_optional(&mut *conn)
                    .await?
                    .map(CardRecord::try_from)
                    .transpose()?;
            let mut new_card = new_card.clone();
            if let Some(old) = old {
                new_card.cardholder_phone = new_card.cardholder_phone.or(old.cardholder_phone);
                new_card.cardholder_email = new_card.cardholder_email.or(old.cardholder_email);
                new_card.product_category = new_card.product_category.or(old.product_category);
            }
            upsert_card(conn, &new_card).await?;
            sqlx::query("UPDATE cards SET status = ?2, updated_at = ?3 WHERE card_id = ?1")
                .bind(&event.card_id)
                .bind(IssuerCardStatus::Closed.as_str())
                .bind(now)
                .execute(&mut *conn)
                .await?;
        }
        CardChange::Status(status) => {
            sqlx::query("UPDATE cards SET status = ?2, updated_at = ?3 WHERE card_id = ?1")
                .bind(&event.card_id)
                .bind(status.as_str())
                .bind(now)
                .execute(&mut *conn)
                .await?;
        }
        CardChange::Expiry { expiry_yymm } => {
            sqlx::query("UPDATE cards SET expiry_yymm = ?2, updated_at = ?3 WHERE card_id = ?1")
                .bind(&event.card_id)
                .bind(expiry_yymm)
                .bind(now)
                .execute(&mut *conn)
                .await?;
        }
        CardChange::Contact { phone, email } => {
            sqlx::query(
                "UPDATE cards SET cardholder_phone = COALESCE(?2, cardholder_phone), \
                 cardholder_email = COALESCE(?3, cardholder_email), updated_at = ?4 WHERE card_id = ?1",
            )
            .bind(&event.card_id)
            .bind(phone)
            .bind(email)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

async fn fetch_outbox_entry<'c>(executor: impl SqliteExecutor<'c>, id: uuid::Uuid) -> StoreResult<Option<OutboxEntry>> {
    sqlx::query_as::<_, OutboxEntryRow>(concat!("SELECT ", outbox_entry_columns!(), " FROM outbox WHERE id = ?1"))
        .bind(id)
        .fetch_optional(executor)
        .await?
        .map(OutboxEntry::try_from)
        .transpose()
}

async fn insert_ops_audit(conn: &mut SqliteConnection, audit: &OpsAuditRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO ops_audit \
         (id, at, actor, action, target, card_id, reason, outcome, status, correlation_id) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(audit.id)
    .bind(sqlite_ts(audit.at))
    .bind(&audit.actor)
    .bind(&audit.action)
    .bind(&audit.target)
    .bind(&audit.card_id)
    .bind(&audit.reason)
    .bind(&audit.outcome)
    .bind(i32::from(audit.status))
    .bind(&audit.correlation_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    #[tracing::instrument(skip_all)]
    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("migrations/sqlite").run(&self.pool).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn upsert_cards(&self, cards: &[CardRecord]) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let mut written = 0;
        for card in cards {
            written += upsert_card(&mut tx, card).await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    #[tracing::instrument(skip_all)]
    async fn find_card_by_fingerprint(&self, fingerprint: &[u8]) -> StoreResult<Option<CardRecord>> {
        sqlx::query_as::<_, CardRow>(concat!("SELECT ", card_columns!(), " FROM cards WHERE pan_fingerprint = ?"))
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await?
            .map(CardRecord::try_from)
            .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn find_card(&self, card_id: &str) -> StoreResult<Option<CardRecord>> {
        sqlx::query_as::<_, CardRow>(concat!("SELECT ", card_columns!(), " FROM cards WHERE card_id = ?"))
            .bind(card_id)
            .fetch_optional(&self.pool)
            .await?
            .map(CardRecord::try_from)
            .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn cvc_failures(&self, card_id: &str, now: OffsetDateTime, window: time::Duration) -> StoreResult<u32> {
        let failures: Option<i64> =
            sqlx::query_scalar("SELECT failures FROM cvc_attempts WHERE card_id = ? AND window_started_at > ?")
                .bind(card_id)
                .bind(sqlite_ts(rows::window_cutoff(now, window)))
                .fetch_optional(&self.pool)
                .await?;
        rows::count_u32(failures.unwrap_or(0), "CVC failures")
    }

    #[tracing::instrument(skip_all)]
    async fn reserve_cvc_attempt(
        &self,
        card_id: &str,
        now: OffsetDateTime,
        window: time::Duration,
        max_attempts: u32,
    ) -> StoreResult<Option<u32>> {
        let _gate = self.gate().await;
        // One statement: SQLite runs it under the write lock, so concurrent attempts serialise
        // and at most `max_attempts` of them get a reservation inside one window.
        let failures: Option<i64> = sqlx::query_scalar(
            "INSERT INTO cvc_attempts (card_id, failures, window_started_at) VALUES (?1, 1, ?2) \
             ON CONFLICT (card_id) DO UPDATE SET \
              failures = CASE WHEN cvc_attempts.window_started_at <= ?3 THEN 1 \
                              ELSE cvc_attempts.failures + 1 END, \
              window_started_at = CASE WHEN cvc_attempts.window_started_at <= ?3 \
                                       THEN excluded.window_started_at \
                                       ELSE cvc_attempts.window_started_at END \
             WHERE cvc_attempts.window_started_at <= ?3 OR cvc_attempts.failures < ?4 \
             RETURNING failures",
        )
        .bind(card_id)
        .bind(sqlite_ts(now))
        .bind(sqlite_ts(rows::window_cutoff(now, window)))
        .bind(i64::from(max_attempts))
        .fetch_optional(&self.pool)
        .await?;
        failures.map(|f| rows::count_u32(f, "CVC failures")).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn clear_cvc_failures(&self, card_id: &str) -> StoreResult<()> {
        let _gate = self.gate().await;
        sqlx::query("DELETE FROM cvc_attempts WHERE card_id = ?").bind(card_id).execute(&self.pool).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn record_decision(
        &self,
        decision: &DecisionRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> StoreResult<IdempotentWrite> {
        let mut tx = match self.begin_claiming(idempotency).await? {
            Ok(tx) => tx,
            Err(existing) => return Ok(IdempotentWrite::AlreadyExists(existing)),
        };
        sqlx::query(
            "INSERT INTO decisions \
             (id, decided_at, correlation_id, operation, tokenization_id, card_id, pan_last4, \
              token_requestor_id, wallet, tsp, decision, reason, card_status, cvc_result, \
              stand_in, latency_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(decision.id)
        .bind(sqlite_ts(decision.decided_at))
        .bind(&decision.correlation_id)
        .bind(&decision.operation)
        .bind(&decision.tokenization_id)
        .bind(&decision.card_id)
        .bind(&decision.pan_last4)
        .bind(&decision.token_requestor_id)
        .bind(&decision.wallet)
        .bind(&decision.tsp)
        .bind(&decision.decision)
        .bind(&decision.reason)
        .bind(&decision.card_status)
        .bind(&decision.cvc_result)
        .bind(decision.stand_in)
        .bind(decision.latency_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(IdempotentWrite::Committed)
    }

    #[tracing::instrument(skip_all)]
    async fn decisions_for_card(&self, card_id: &str, limit: u32) -> StoreResult<Vec<DecisionRecord>> {
        let rows = sqlx::query_as::<_, DecisionRow>(concat!(
            "SELECT ",
            decision_columns!(),
            " FROM decisions WHERE card_id = ? ORDER BY decided_at DESC, id DESC LIMIT ?"
        ))
        .bind(card_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(DecisionRecord::from).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn recent_decisions(&self, limit: u32) -> StoreResult<Vec<DecisionRecord>> {
        let rows = sqlx::query_as::<_, DecisionRow>(concat!(
            "SELECT ",
            decision_columns!(),
            " FROM decisions ORDER BY decided_at DESC, id DESC LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(DecisionRecord::from).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn count_live_tokens(&self, card_id: &str) -> StoreResult<u32> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE card_id = ? AND status <> ?")
            .bind(card_id)
            .bind(TokenStatus::Deactivated.as_str())
            .fetch_one(&self.pool)
            .await?;
        rows::count_u32(count, "token count")
    }

    #[tracing::instrument(skip_all)]
    async fn apply_token_event(
        &self,
        event: &TokenEventRecord,
        outbox: &OutboxRecord,
        idempotency: &IdempotencyRecord,
    ) -> StoreResult<(IdempotentWrite, Option<TokenEventOutcome>)> {
        let mut tx = match self.begin_claiming(Some(idempotency)).await? {
            Ok(tx) => tx,
            Err(existing) => return Ok((IdempotentWrite::AlreadyExists(existing), None)),
        };
        let new_event = sqlx::query(
            "INSERT INTO token_events \
             (event_id, token_id, card_id, tsp, token_requestor_id, wallet, status, \
              previous_status, reason, token_last4, occurred_at, received_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&event.event_id)
        .bind(&event.token_id)
        .bind(&event.card_id)
        .bind(&event.tsp)
        .bind(&event.token_requestor_id)
        .bind(&event.wallet)
        .bind(event.status.as_str())
        .bind(event.previous_status.map(TokenStatus::as_str))
        .bind(&event.reason)
        .bind(&event.token_last4)
        .bind(sqlite_ts(event.occurred_at))
        .bind(sqlite_ts(event.received_at))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;

        if !new_event {
            // The same event id must mean the same event; anything else is a sender's bug that
            // retrying cannot fix (409, nothing written).
            let (token_id, status, occurred_at): (String, String, String) =
                sqlx::query_as("SELECT token_id, status, occurred_at FROM token_events WHERE event_id = ?")
                    .bind(&event.event_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if token_id != event.token_id
                || status != event.status.as_str()
                || occurred_at != sqlite_ts(event.occurred_at)
            {
                return Err(StoreError::EventConflict);
            }
        }
        // A duplicate event already had its effect on the mirror (or was superseded by then).
        let applied = if new_event { upsert_mirror(&mut tx, event).await? } else { false };
        if new_event {
            insert_outbox(&mut tx, outbox).await?;
        }
        let token = fetch_token(&mut *tx, &event.token_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("token event {} has no mirror row", event.event_id)))?;
        tx.commit().await?;
        Ok((IdempotentWrite::Committed, Some(TokenEventOutcome { token, applied })))
    }

    #[tracing::instrument(skip_all)]
    async fn find_token(&self, token_id: &str) -> StoreResult<Option<TokenRecord>> {
        fetch_token(&self.pool, token_id).await
    }

    #[tracing::instrument(skip_all)]
    async fn token_history(&self, token_id: &str) -> StoreResult<Vec<TokenEventRecord>> {
        let rows = sqlx::query_as::<_, TokenEventRow>(concat!(
            "SELECT ",
            token_event_columns!(),
            " FROM token_events WHERE token_id = ? \
              ORDER BY occurred_at, received_at, event_id"
        ))
        .bind(token_id)
        .fetch_all(&self.pool)
        .await?;
        rows::convert_all(rows)
    }

    #[tracing::instrument(skip_all)]
    async fn store_notification(
        &self,
        notification: &NotificationRecord,
        outbox: &OutboxRecord,
        idempotency: &IdempotencyRecord,
    ) -> StoreResult<IdempotentWrite> {
        let mut tx = match self.begin_claiming(Some(idempotency)).await? {
            Ok(tx) => tx,
            Err(existing) => return Ok(IdempotentWrite::AlreadyExists(existing)),
        };
        let new_notification = sqlx::query(
            "INSERT INTO notifications \
             (notification_id, notification_type, card_id, token_id, token_requestor_id, \
              channel, otp_ciphertext, otp_key_id, expires_at, occurred_at, received_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (notification_id) DO NOTHING",
        )
        .bind(&notification.notification_id)
        .bind(&notification.notification_type)
        .bind(&notification.card_id)
        .bind(&notification.token_id)
        .bind(&notification.token_requestor_id)
        .bind(&notification.channel)
        .bind(&notification.otp_ciphertext)
        .bind(&notification.otp_key_id)
        .bind(opt_sqlite_ts(notification.expires_at))
        .bind(sqlite_ts(notification.occurred_at))
        .bind(sqlite_ts(notification.received_at))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        // A notification already stored was already queued: don't deliver it twice.
        if new_notification {
            insert_outbox(&mut tx, outbox).await?;
        }
        tx.commit().await?;
        Ok(IdempotentWrite::Committed)
    }

    #[tracing::instrument(skip_all)]
    async fn find_notification(&self, notification_id: &str) -> StoreResult<Option<NotificationRecord>> {
        let row = sqlx::query_as::<_, NotificationRow>(concat!(
            "SELECT ",
            notification_columns!(),
            " FROM notifications WHERE notification_id = ?"
        ))
        .bind(notification_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(NotificationRecord::from))
    }

    #[tracing::instrument(skip_all)]
    async fn erase_expired_otps(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let _gate = self.gate().await;
        let erased = sqlx::query(
            "UPDATE notifications SET otp_ciphertext = NULL, otp_key_id = NULL \
             WHERE otp_ciphertext IS NOT NULL AND expires_at < ?",
        )
        .bind(sqlite_ts(now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(erased)
    }

    #[tracing::instrument(skip_all)]
    async fn pending_outbox(&self, limit: u32) -> StoreResult<Vec<OutboxRecord>> {
        let rows = sqlx::query_as::<_, OutboxRow>(concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM outbox WHERE status = 'pending' ORDER BY seq LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(OutboxRecord::from).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn erase_otp(&self, notification_id: &str) -> StoreResult<()> {
        let _gate = self.gate().await;
        sqlx::query("UPDATE notifications SET otp_ciphertext = NULL, otp_key_id = NULL WHERE notification_id = ?1")
            .bind(notification_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn ingest_processor_events(&self, events: &[ProcessorEventRecord]) -> StoreResult<IngestOutcome> {
        // BEGIN IMMEDIATE: the write lock up front; writers are serialised, so seq order is
        // commit order.
        let mut tx = self.begin_write().await?;
        let (mut accepted, mut duplicates) = (0, 0);
        for event in events {
            let inserted = sqlx::query(
                "INSERT INTO processor_events \
                 (event_id, body_hash, card_id, event_type, occurred_at, received_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(&event.event_id)
            .bind(&event.body_hash)
            .bind(&event.card_id)
            .bind(&event.event_type)
            .bind(sqlite_ts(event.occurred_at))
            .bind(sqlite_ts(event.received_at))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !inserted {
                let hash: Vec<u8> = sqlx::query_scalar("SELECT body_hash FROM processor_events WHERE event_id = ?1")
                    .bind(&event.event_id)
                    .fetch_one(&mut *tx)
                    .await?;
                if hash != event.body_hash {
                    tx.rollback().await?;
                    return Ok(IngestOutcome::Conflict { event_id: event.event_id.clone() });
                }
                duplicates += 1;
                continue;
            }
            if let Err(e) = apply_card_change(&mut tx, event).await {
                tx.rollback().await?;
                return Err(e);
            }
            if let Some(outbox) = &event.outbox {
                insert_outbox(&mut tx, outbox).await?;
            }
            accepted += 1;
        }
        tx.commit().await?;
        Ok(IngestOutcome::Committed { accepted, duplicates })
    }

    #[tracing::instrument(skip_all)]
    async fn claim_outbox(
        &self,
        owner: &str,
        destination: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OutboxEntry>> {
        let _gate = self.gate().await;
        // Under SQLite's single write lock: atomic. Meant for one relay process per database file
        // (SQLite is not shared between machines); the lease still lets a restarted process take
        // over the rows of the one that crashed. Two steps (see `claim_window`): the oldest rows
        // first, then — only when they did not fill the claim — the head of every card.
        let mut rows = self
            .lease_outbox_rows(owner, destination, now, lease_until, i64::from(limit), Some(claim_window(limit) - 1))
            .await?;
        let wanted = i64::from(limit) - rows.len() as i64;
        if wanted > 0 {
            // The head of each card with pending rows, one index probe per card (a loose index
            // scan): cheap when the backlog is a few deep queues, which is when the first step
            // comes back short.
            rows.extend(self.lease_outbox_rows(owner, destination, now, lease_until, wanted, None).await?);
        }
        let mut entries = rows::convert_all::<_, OutboxEntry>(rows)?;
        entries.sort_by_key(|e| e.seq);
        Ok(entries)
    }

    #[tracing::instrument(skip_all)]
    async fn finish_outbox(
        &self,
        id: uuid::Uuid,
        owner: &str,
        now: OffsetDateTime,
        result: &DeliveryResult,
    ) -> StoreResult<bool> {
        let _gate = self.gate().await;
        let (status, next, error, delivered_at) = rows::result_columns(result, now);
        let updated = sqlx::query(
            "UPDATE outbox SET status = ?3, attempts = attempts + 1, \
              next_attempt_at = COALESCE(?4, next_attempt_at), last_error = ?5, delivered_at = ?6, \
              lease_owner = NULL, lease_until = NULL \
             WHERE id = ?1 AND lease_owner = ?2 AND status = 'pending'",
        )
        .bind(id)
        .bind(owner)
        .bind(status)
        .bind(next.map(sqlite_ts))
        .bind(error)
        .bind(delivered_at.map(sqlite_ts))
        .execute(&self.relaxed)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn list_outbox(&self, filter: &OutboxFilter) -> StoreResult<Vec<OutboxEntry>> {
        let rows = sqlx::query_as::<_, OutboxEntryRow>(concat!(
            "SELECT ",
            outbox_entry_columns!(),
            " FROM outbox WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR ordering_key = ?2) \
              ORDER BY seq DESC LIMIT ?3"
        ))
        .bind(&filter.status)
        .bind(&filter.ordering_key)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        rows::convert_all(rows)
    }

    #[tracing::instrument(skip_all)]
    async fn find_outbox(&self, id: uuid::Uuid) -> StoreResult<Option<OutboxEntry>> {
        fetch_outbox_entry(&self.pool, id).await
    }

    #[tracing::instrument(skip_all)]
    async fn retry_outbox(&self, id: uuid::Uuid, now: OffsetDateTime) -> StoreResult<bool> {
        let _gate = self.gate().await;
        let updated = sqlx::query(
            "UPDATE outbox SET attempts = CASE WHEN status = 'dead' THEN 0 ELSE attempts END, \
              status = 'pending', next_attempt_at = ?2 \
             WHERE id = ?1 AND status IN ('pending', 'dead')",
        )
        .bind(id)
        .bind(sqlite_ts(now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn replay_outbox(
        &self,
        selector: &ReplaySelector,
        include_delivered: bool,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        let _gate = self.gate().await;
        let (id, key, from, until) = match selector {
            ReplaySelector::Id(id) => (Some(*id), None, None, None),
            ReplaySelector::OrderingKey(key) => (None, Some(key.as_str()), None, None),
            ReplaySelector::CreatedBetween(from, until) => {
                (None, None, Some(sqlite_ts(*from)), Some(sqlite_ts(*until)))
            }
        };
        let updated = sqlx::query(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?6, last_error = NULL, \
              delivered_at = NULL, lease_owner = NULL, lease_until = NULL \
             WHERE (status = 'dead' OR (?5 AND status = 'delivered')) \
               AND (?1 IS NULL OR id = ?1) AND (?2 IS NULL OR ordering_key = ?2) \
               AND (?3 IS NULL OR created_at >= ?3) AND (?4 IS NULL OR created_at < ?4)",
        )
        .bind(id)
        .bind(key)
        .bind(from)
        .bind(until)
        .bind(include_delivered)
        .bind(sqlite_ts(now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated)
    }

    #[tracing::instrument(skip_all)]
    async fn skip_outbox(&self, id: uuid::Uuid, reason: &str) -> StoreResult<bool> {
        let _gate = self.gate().await;
        let updated = sqlx::query(
            "UPDATE outbox SET status = 'dead', last_error = ?2, lease_owner = NULL, lease_until = NULL \
             WHERE id = ?1 AND status = 'pending'",
        )
        .bind(id)
        .bind(reason)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn outbox_stats(&self) -> StoreResult<OutboxStats> {
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").fetch_one(&self.pool).await?;
        let dead: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = 'dead'").fetch_one(&self.pool).await?;
        let oldest: Option<OffsetDateTime> =
            sqlx::query_scalar("SELECT created_at FROM outbox WHERE status = 'pending' ORDER BY seq LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(OutboxStats {
            pending: pending.max(0).unsigned_abs(),
            dead: dead.max(0).unsigned_abs(),
            oldest_pending_created_at: oldest,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn create_api_key(&self, key: &ApiKeyRecord, audit: &OpsAuditRecord) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, name, secret_digest, scopes, rate_limit_per_minute, created_at, revoked_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(&key.secret_digest)
        .bind(rows::scopes_text(&key.scopes))
        .bind(key.rate_limit_per_minute.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
        .bind(sqlite_ts(key.created_at))
        .bind(opt_sqlite_ts(key.revoked_at))
        .execute(&mut *tx)
        .await?;
        insert_ops_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn find_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        sqlx::query_as::<_, ApiKeyRow>(concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(ApiKeyRecord::try_from)
            .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        let rows = sqlx::query_as::<_, ApiKeyRow>(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows::convert_all(rows)
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_api_key(&self, id: &str, at: OffsetDateTime, audit: &OpsAuditRecord) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let revoked = sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(sqlite_ts(at))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if revoked == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_ops_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all)]
    async fn record_ops_audit(
        &self,
        audit: &OpsAuditRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> StoreResult<IdempotentWrite> {
        let mut tx = match self.begin_claiming(idempotency).await? {
            Ok(tx) => tx,
            Err(existing) => return Ok(IdempotentWrite::AlreadyExists(existing)),
        };
        insert_ops_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(IdempotentWrite::Committed)
    }

    #[tracing::instrument(skip_all)]
    async fn list_ops_audit(&self, filter: &OpsAuditFilter) -> StoreResult<Vec<OpsAuditRecord>> {
        let rows = sqlx::query_as::<_, OpsAuditRow>(concat!(
            "SELECT ",
            ops_audit_columns!(),
            " FROM ops_audit WHERE (? IS NULL OR card_id = ?) ORDER BY at DESC, id DESC LIMIT ?"
        ))
        .bind(&filter.card_id)
        .bind(&filter.card_id)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        rows::convert_all(rows)
    }

    #[tracing::instrument(skip_all)]
    async fn tokens_for_card(&self, card_id: &str) -> StoreResult<Vec<TokenRecord>> {
        let rows = sqlx::query_as::<_, TokenRow>(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE card_id = ? ORDER BY updated_at DESC, token_id"
        ))
        .bind(card_id)
        .fetch_all(&self.pool)
        .await?;
        rows::convert_all(rows)
    }

    #[tracing::instrument(skip_all)]
    async fn find_idempotency(&self, scope: &str, key: &str) -> StoreResult<Option<IdempotencyRecord>> {
        fetch_idempotency(&self.pool, scope, key).await
    }

    #[tracing::instrument(skip_all)]
    async fn purge_idempotency(&self, before: OffsetDateTime) -> StoreResult<u64> {
        let _gate = self.gate().await;
        let purged = sqlx::query("DELETE FROM idempotency WHERE created_at < ?")
            .bind(sqlite_ts(before))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(purged)
    }

    #[tracing::instrument(skip_all)]
    async fn remember_request_id(&self, request_id: &str, seen_at: OffsetDateTime) -> StoreResult<bool> {
        let _gate = self.gate().await;
        let inserted = sqlx::query(
            "INSERT INTO seen_request_ids (request_id, seen_at) VALUES (?, ?) \
             ON CONFLICT (request_id) DO NOTHING",
        )
        .bind(request_id)
        .bind(sqlite_ts(seen_at))
        .execute(&self.relaxed)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn purge_request_ids(&self, before: OffsetDateTime) -> StoreResult<u64> {
        let _gate = self.gate().await;
        let purged = sqlx::query("DELETE FROM seen_request_ids WHERE seen_at < ?")
            .bind(sqlite_ts(before))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(purged)
    }
}
