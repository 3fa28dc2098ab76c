//! Durable state of the adapter: the records it keeps, and the store that keeps them, one
//! implementation ([`SqlStore`]) on SQLite (the embedded default) or PostgreSQL (production,
//! several replicas). Its statements are written once, grouped by aggregate (`cards`, `cvc`,
//! `decisions`, `tokens`, `notifications`, `outbox`, `ops`, `idempotency`), each with the trait
//! its callers use; `engine` runs them on either database, and `sqlite`/`postgres` hold what
//! truly differs. The migrations live in `adapter/migrations/{sqlite,postgres}` and are kept in
//! lockstep.
//!
//! Every method that changes state and answers an idempotent request takes the
//! [`IdempotencyRecord`] to write *in the same transaction*, so a stored response always
//! corresponds to an effect that happened, and an effect never happens without its response.

mod cards;
mod cvc;
mod decisions;
mod engine;
mod group_commit;
mod idempotency;
mod notifications;
mod ops;
mod outbox;
mod postgres;
mod rows;
mod sealed;
mod sqlite;
mod tokens;

pub use cards::CardStore;
pub use cvc::CvcAttempts;
pub use decisions::{DecisionStore, VelocityKey};
pub use engine::SqlStore;
pub use group_commit::{GroupCommitSettings, GroupCommitStats};
pub use idempotency::IdempotencyStore;
pub use notifications::NotificationStore;
pub use ops::OpsStore;
pub use outbox::{OutboxStore, claim_window};
pub use sealed::{SealedKind, SealedPage, SealedStore, SealedValue};
pub use tokens::{TokenScope, TokenStore};

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use tmp_protocol::enums::{ChangeInitiator, IssuerCardStatus, ReasonCode, TokenStatus};
use tmp_protocol::trace_context::TraceParent;

use crate::outbox::{Destination, OutboxMessage, OutboxStatus};

/// A card of the local registry. The PAN itself is only ever held encrypted
/// (`pan_ciphertext` under data key `pan_key_id`) and found by its keyed fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CardRecord {
    pub card_id: String,
    /// HMAC-SHA256 of the PAN under the fingerprint key (32 bytes). Unique.
    pub pan_fingerprint: Vec<u8>,
    /// AES-256-GCM `nonce || ciphertext || tag` of the PAN.
    pub pan_ciphertext: Vec<u8>,
    pub pan_key_id: String,
    pub pan_last4: String,
    /// Expiry as `YYMM`.
    pub expiry_yymm: String,
    #[sqlx(try_from = "String")]
    pub status: IssuerCardStatus,
    pub cardholder_phone: Option<String>,
    pub cardholder_email: Option<String>,
    pub product_category: Option<String>,
    pub updated_at: OffsetDateTime,
}

/// What the previous stored answer to an idempotent request was.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IdempotencyRecord {
    /// The route the key was used on (keys are scoped per route).
    pub scope: String,
    #[sqlx(rename = "idempotency_key")]
    pub key: String,
    /// SHA-256 of the raw request body: same key + other body → 422.
    pub request_hash: Vec<u8>,
    #[sqlx(try_from = "i32")]
    pub response_status: u16,
    pub response_body: Vec<u8>,
    pub created_at: OffsetDateTime,
}

/// Result of writing an effect together with its idempotency record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotentWrite {
    /// The effect and the response were committed.
    Committed,
    /// Another request with the same scope+key committed first; nothing was written.
    /// The caller replays the stored record (or answers 422 if the body differs).
    AlreadyExists(IdempotencyRecord),
}

/// One audited decision. Never contains PAN, CVC, expiry or OTP.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DecisionRecord {
    pub id: uuid::Uuid,
    pub decided_at: OffsetDateTime,
    pub correlation_id: String,
    /// `verify_card` or `verify_cvc`.
    pub operation: String,
    pub tokenization_id: Option<String>,
    pub card_id: Option<String>,
    pub pan_last4: Option<String>,
    pub token_requestor_id: Option<String>,
    pub wallet: Option<String>,
    pub tsp: Option<String>,
    /// `APPROVED`, … (or the CVC result for `verify_cvc`).
    pub decision: String,
    /// `CARD_VERIFIED`, `STAND_IN_TIMEOUT`, …
    pub reason: String,
    pub card_status: String,
    pub cvc_result: String,
    pub stand_in: bool,
    pub latency_ms: i64,
    /// The tokenization's device (TMP's `device.id`), when it named one.
    pub device_id: Option<String>,
    /// `PHONE`, `WATCH`, …
    pub device_type: Option<String>,
    /// `SECURE_ELEMENT`, `HCE`, `CARD_ON_FILE`.
    pub token_type: Option<String>,
    /// The wallet's recommendation reason codes in TMP's order, as a JSON array (a code may hold
    /// any printable character).
    pub recommendation_reasons: Option<String>,
    /// `KEY_ENTERED`, `ON_FILE`, `MOBILE_BANKING_APP`, `OTHER`.
    pub pan_source: Option<String>,
    /// The network's score, 1–5.
    pub network_score: Option<i32>,
    /// What came of asking the issuer's fraud engine (`ANSWERED`, `TIMEOUT`, `INVALID`,
    /// `FAILED`); none when it was not asked.
    pub hook_outcome: Option<String>,
    /// The engine's decision and its own reason code, when it answered.
    pub hook_decision: Option<String>,
    pub hook_reason: Option<String>,
}

/// One token-status event received from TMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEventRecord {
    pub event_id: String,
    pub token_id: String,
    pub card_id: String,
    pub tsp: String,
    pub token_requestor_id: String,
    pub wallet: String,
    pub status: TokenStatus,
    pub previous_status: Option<TokenStatus>,
    pub reason: Option<String>,
    pub reason_code: Option<ReasonCode>,
    pub initiator: Option<ChangeInitiator>,
    pub tokenization_id: Option<String>,
    pub token_last4: Option<String>,
    pub occurred_at: OffsetDateTime,
    pub received_at: OffsetDateTime,
}

/// A token event as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTokenEvent {
    pub event: TokenEventRecord,
    /// Whether it changed the mirror's status when it arrived (an event older than the
    /// mirror's state is history only), as decided in the transaction that stored it.
    pub applied: bool,
}

/// The adapter's mirror of a token.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRecord {
    pub token_id: String,
    pub card_id: String,
    pub tsp: String,
    pub token_requestor_id: String,
    pub wallet: String,
    #[sqlx(try_from = "String")]
    pub status: TokenStatus,
    pub token_last4: Option<String>,
    /// `occurred_at` of the event that set `status`; older events do not overwrite it.
    pub status_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Outcome of applying a token event to the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEventOutcome {
    /// Mirror state after the event.
    pub token: TokenRecord,
    /// False when the event was older than the mirror's state (history only).
    pub applied: bool,
}

/// A user notification received from TMP. The OTP, when there is one, is stored only
/// encrypted and erased once delivered or expired.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NotificationRecord {
    pub notification_id: String,
    pub notification_type: String,
    pub card_id: String,
    pub token_id: Option<String>,
    pub token_requestor_id: Option<String>,
    pub channel: Option<String>,
    /// AES-256-GCM `nonce || ciphertext || tag` of the OTP, under `otp_key_id`.
    pub otp_ciphertext: Option<Vec<u8>>,
    pub otp_key_id: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
    pub occurred_at: OffsetDateTime,
    pub received_at: OffsetDateTime,
}

/// A message waiting for delivery (to the issuer's webhook sinks, TMP or DataCore).
/// Written in the same transaction as the state change that caused it; delivered in
/// `ordering_key` FIFO order by the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    pub id: uuid::Uuid,
    pub destination: Destination,
    /// Usually the card id: messages with the same key are delivered in insertion order.
    pub ordering_key: String,
    /// What to deliver; no sensitive data in clear (card data sealed, an OTP referenced by its
    /// notification's id).
    pub message: OutboxMessage,
    pub created_at: OffsetDateTime,
    /// Never deliver after this instant (OTP expiry).
    pub not_after: Option<OffsetDateTime>,
    /// Correlation id of the request that queued it, sent on as `X-Correlation-Id`.
    pub correlation_id: Option<String>,
    /// This adapter's place in the trace of the request that queued it: the relay's delivery
    /// continues that trace (`traceparent`).
    pub traceparent: Option<TraceParent>,
}

impl OutboxRecord {
    /// `token.status_changed`, `notification.ACTIVATION_CODE_DELIVERY`, `card.replaced`, …
    pub fn event_type(&self) -> String {
        self.message.event_type()
    }
}

/// An outbox row with its delivery state, as the relay and the operator see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Insertion order: FIFO order within an ordering key.
    pub seq: i64,
    pub record: OutboxRecord,
    pub status: OutboxStatus,
    /// Since when the row is held for an operator ([`OutboxStatus::Held`]).
    pub held_at: Option<OffsetDateTime>,
    /// Delivery attempts made so far.
    pub attempts: u32,
    pub next_attempt_at: OffsetDateTime,
    pub lease_owner: Option<String>,
    pub lease_until: Option<OffsetDateTime>,
    /// Why the last attempt failed (status and error code only, never a body).
    pub last_error: Option<String>,
    pub delivered_at: Option<OffsetDateTime>,
}

/// A delivery attempt on a leased outbox row, to be recorded: the row, when the attempt ended
/// and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedAttempt {
    pub id: uuid::Uuid,
    pub at: OffsetDateTime,
    pub result: DeliveryResult,
}

/// What recording a [`FinishedAttempt`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Nothing written: the lease was lost (taken over, or the operator changed the row).
    LeaseLost,
    /// Written. `next_in_line`: the row left its card's queue (delivered or dead) and the card
    /// has another pending row at the same destination, which a claim can take now.
    Written { next_in_line: bool },
}

impl Recorded {
    pub fn written(self) -> bool {
        matches!(self, Recorded::Written { .. })
    }
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    Delivered,
    /// Transient failure: try again at `at`.
    Retry {
        at: OffsetDateTime,
        error: String,
    },
    /// Permanent failure or schedule exhausted: the row stays its card's head, so the card's
    /// later messages wait, and is not attempted again until an operator retries it (or skips
    /// it, which makes it dead). Never skipping a failed head is what keeps a card's events in
    /// order.
    Held {
        error: String,
    },
    /// Can never be delivered and need not be: past its `not_after` (an expired activation
    /// code). Blocks nothing.
    Dead {
        error: String,
    },
}

/// Which outbox rows an operator lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxFilter {
    pub status: Option<OutboxStatus>,
    pub ordering_key: Option<String>,
    pub limit: u32,
}

/// Which rows `outbox replay` re-drives (dead ones; delivered ones too when asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySelector {
    Id(uuid::Uuid),
    OrderingKey(String),
    /// `created_at` in `[from, until)`.
    CreatedBetween(OffsetDateTime, OffsetDateTime),
}

/// Outbox gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxStats {
    /// Not delivered yet, held rows included.
    pub pending: u64,
    /// Held for an operator, each blocking its card.
    pub held: u64,
    /// Dead letters: expired or skipped. Rows no sink took (`outbox::NO_SINK`) are not counted.
    pub dead: u64,
    pub oldest_pending_created_at: Option<OffsetDateTime>,
}

/// How a processor event changes the local card registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardChange {
    /// `card.issued`: insert (or overwrite) the card.
    Register(CardRecord),
    /// `card.status_changed`, `card.closed`.
    Status(IssuerCardStatus),
    /// `card.replaced`: the new card is registered (inheriting the old card's contact and
    /// product when it has none) and the old one is closed.
    Replace(CardRecord),
    /// `card.renewed`.
    Expiry { expiry_yymm: String },
    /// `cardholder.updated`: fields given replace the stored ones, absent ones are kept.
    Contact { phone: Option<String>, email: Option<String> },
    /// `card.metadata_updated`: a category given replaces the stored one.
    Product { product_category: Option<String> },
}

/// One processor event, ready to commit: dedup record, registry change, outbox message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorEventRecord {
    pub event_id: String,
    /// SHA-256 of the event's canonical JSON.
    pub body_hash: Vec<u8>,
    pub card_id: String,
    pub event_type: String,
    pub occurred_at: OffsetDateTime,
    pub received_at: OffsetDateTime,
    pub change: CardChange,
    /// None when the configured approach forwards nothing for this type.
    pub outbox: Option<OutboxRecord>,
}

/// Result of committing a batch of processor events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Committed: `accepted` new events, `duplicates` already known with the same body.
    Committed { accepted: u32, duplicates: u32 },
    /// This event id is known with another body: nothing was written.
    Conflict { event_id: String },
}

/// An ops API key. The key itself (`tmpk_<id>_<secret>`) is never stored: only the SHA-256
/// digest of the whole key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The public part of the key, also its name in the audit (`apikey:<id>`).
    pub id: String,
    /// What the key is for, in the operator's words.
    pub name: String,
    /// SHA-256 of the whole key.
    pub secret_digest: Vec<u8>,
    /// `tokens:read`, `tokens:write`, `provisioning`, `audit:read`, `outbox:admin`,
    /// `config:admin`.
    pub scopes: Vec<String>,
    /// Overrides `ops.rate_limit.requests_per_minute` for this key.
    pub rate_limit_per_minute: Option<u32>,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

/// One audited operator write: who, what, on what, why, when and how it ended. Never card
/// data: a card is named by its card id.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OpsAuditRecord {
    pub id: uuid::Uuid,
    pub at: OffsetDateTime,
    /// `apikey:<id> (<name>)`, `token:<digest prefix>`, `mtls:<subject CN>` or `cli:<user>`.
    pub actor: String,
    /// `token.suspend`, `provisioning.apple_pay`, `outbox.retry`, `apikey.create`, …
    pub action: String,
    /// The token id, outbox row id, key id, … acted on.
    pub target: Option<String>,
    pub card_id: Option<String>,
    /// Why, as the operator gave it.
    pub reason: Option<String>,
    /// `ok`, or the error code the request was answered with.
    pub outcome: String,
    /// The HTTP status of the answer (0 for the CLI).
    #[sqlx(try_from = "i32")]
    pub status: u16,
    pub correlation_id: String,
}

/// Which audit rows to read, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpsAuditFilter {
    pub card_id: Option<String>,
    pub limit: u32,
}

/// Errors of the storage layer. `sqlx` details stay in the source chain for the logs.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a card with this PAN is already registered under another card id")]
    DuplicatePan,
    #[error("this event id was already used for a different event")]
    EventConflict,
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("database migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database cannot be used as configured; the message says what to do.
    #[error("{0}")]
    Setup(String),
    /// The write committed but could not be made durable (see `group_commit`): not acknowledged.
    #[error("the write could not be made durable: {0}")]
    NotDurable(&'static str),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> StoreError {
        match error {
            // A stored value its type does not take (an unknown status, an out-of-range number).
            sqlx::Error::ColumnDecode { index, source } => StoreError::Corrupt(format!("column {index}: {source}")),
            other => StoreError::Database(other),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The adapter's storage.
///
/// **Durability.** Every write that stands behind an answer (an acknowledgement, a decision, an
/// idempotency record, a CVC attempt, an audit entry) is durable before the answer leaves — as a
/// rule when its method returns; the writes of concurrent requests are made durable together, by
/// one flush (see `group_commit`), and a stored answer
/// ([`IdempotencyStore::find_idempotency`], an idempotent write that finds its key taken) is
/// returned only after a flush that began once it was read. Some writes are *relaxed* —
/// committed without waiting for a flush, and made durable by the next one:
/// [`IdempotencyStore::remember_request_id`], [`OutboxStore::claim_outbox`] and
/// [`OutboxStore::finish_outbox_many`]. Losing one to a power cut only makes something happen again that
/// is safe to repeat: a replayed request would be checked again (its effects, if any, were
/// committed durably with their idempotency record, and commit in order after its id), a lease
/// would be taken again, a delivery would be made again under the same idempotency key
/// (delivery is at least once anyway). Each of these writes is one per request or per delivery,
/// so relaxing them spares those paths a wait for the disk. A verification's own writes —
/// [`CvcAttempts`]' two and [`DecisionStore::count_and_record_tokenization`] — are relaxed
/// for another reason: its answer waits for its decision record
/// ([`DecisionStore::record_decision`], durable), committed after them, and a flush makes
/// every commit before it durable too (one WAL, written in order; see `group_commit`). So a
/// verification waits for one flush, not one per write (before: one per write, two to four).
#[async_trait]
pub trait Store:
    CardStore
    + CvcAttempts
    + DecisionStore
    + TokenStore
    + NotificationStore
    + OutboxStore
    + OpsStore
    + IdempotencyStore
    + SealedStore
    + 'static
{
    /// Applies pending embedded migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// Cheap round trip for `/readyz`; fails once durability is lost (see `group_commit`).
    async fn ping(&self) -> StoreResult<()>;
    /// The group commit's counters.
    fn group_commit_stats(&self) -> GroupCommitStats;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store named by a database URL: `sqlite://…` or `postgres://…`, with the default
/// group commit. SQLite files are created (with their directory) on first use and run in WAL
/// mode. Does not run the migrations: see [`Store::migrate`].
pub async fn connect(url: &str, max_connections: u32) -> StoreResult<DynStore> {
    connect_with(url, max_connections, GroupCommitSettings::default()).await
}

/// [`connect`] with the group commit's settings (`database.group_commit`). Starts the group
/// commit's flusher on the current runtime.
/// Whether `database.url` names a PostgreSQL server (anything else is a SQLite file).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

pub async fn connect_with(url: &str, max_connections: u32, group_commit: GroupCommitSettings) -> StoreResult<DynStore> {
    let (engine, flush) = if is_postgres_url(url) {
        let (pool, flush) = postgres::connect(url, max_connections).await?;
        (engine::Engine::Postgres(pool), flush)
    } else {
        let (sqlite, flush) = sqlite::SqliteEngine::connect(url, max_connections).await?;
        (engine::Engine::Sqlite(sqlite), flush)
    };
    let group = group_commit::GroupCommit::start(flush, group_commit);
    let velocity_turns = Arc::new(std::array::from_fn(|_| tokio::sync::Mutex::new(())));
    Ok(Arc::new(SqlStore { engine, group, velocity_turns }))
}

#[async_trait]
impl Store for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn migrate(&self) -> StoreResult<()> {
        match &self.engine {
            engine::Engine::Sqlite(sqlite) => sqlite.migrate().await,
            engine::Engine::Postgres(pool) => postgres::migrate(pool).await,
        }
    }

    #[tracing::instrument(skip_all)]
    async fn ping(&self) -> StoreResult<()> {
        if self.group.poisoned() {
            return Err(StoreError::NotDurable("a WAL fsync failed; restart the adapter"));
        }
        engine::dispatch!(self.read(), |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    fn group_commit_stats(&self) -> GroupCommitStats {
        self.group.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_value_its_type_refuses_is_corrupt_data_not_a_database_failure() {
        let decode = sqlx::Error::ColumnDecode {
            index: "\"status\"".into(),
            source: Box::new(tmp_protocol::enums::UnknownStatus("LOST".into())),
        };
        match StoreError::from(decode) {
            StoreError::Corrupt(what) => assert_eq!(what, r#"column "status": unknown status "LOST""#),
            other => panic!("{other:?}"),
        }
        assert!(matches!(StoreError::from(sqlx::Error::PoolTimedOut), StoreError::Database(_)));
    }
}
