//! Durable state of the adapter behind one trait, with a SQLite implementation (the embedded
//! default) and a PostgreSQL one (production, several replicas). Both run the same contract;
//! their migrations live in `adapter/migrations/{sqlite,postgres}` and are kept in lockstep.
//!
//! Every method that changes state and answers an idempotent request takes the
//! [`IdempotencyRecord`] to write *in the same transaction*, so a stored response always
//! corresponds to an effect that happened, and an effect never happens without its response.

mod postgres;
mod rows;
mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use tmp_protocol::enums::{IssuerCardStatus, TokenStatus};

/// A card of the local registry. The PAN itself is only ever held encrypted
/// (`pan_ciphertext` under data key `pan_key_id`) and found by its keyed fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub status: IssuerCardStatus,
    pub cardholder_phone: Option<String>,
    pub cardholder_email: Option<String>,
    pub product_category: Option<String>,
    pub updated_at: OffsetDateTime,
}

/// What the previous stored answer to an idempotent request was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The route the key was used on (keys are scoped per route).
    pub scope: String,
    pub key: String,
    /// SHA-256 of the raw request body: same key + other body → 422.
    pub request_hash: Vec<u8>,
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub token_last4: Option<String>,
    pub occurred_at: OffsetDateTime,
    pub received_at: OffsetDateTime,
}

/// The adapter's mirror of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub token_id: String,
    pub card_id: String,
    pub tsp: String,
    pub token_requestor_id: String,
    pub wallet: String,
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// `issuer_webhook`, `tmp_api`, `lifecycle_api`.
    pub destination: String,
    /// Usually the card id: messages with the same key are delivered in insertion order.
    pub ordering_key: String,
    /// `token.status_changed`, `notification.ACTIVATION_CODE_DELIVERY`, …
    pub event_type: String,
    /// JSON document without sensitive data (an OTP is referenced by notification id).
    pub payload: serde_json::Value,
    pub created_at: OffsetDateTime,
    /// Never deliver after this instant (OTP expiry).
    pub not_after: Option<OffsetDateTime>,
    /// Correlation id of the request that queued it, sent on as `X-Correlation-Id`.
    pub correlation_id: Option<String>,
}

/// An outbox row with its delivery state, as the relay and the operator see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Insertion order: FIFO order within an ordering key.
    pub seq: i64,
    pub record: OutboxRecord,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    /// Delivery attempts made so far.
    pub attempts: u32,
    pub next_attempt_at: OffsetDateTime,
    pub lease_owner: Option<String>,
    pub lease_until: Option<OffsetDateTime>,
    /// Why the last attempt failed (status and error code only, never a body).
    pub last_error: Option<String>,
    pub delivered_at: Option<OffsetDateTime>,
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
    /// Permanent failure, schedule exhausted, expired or skipped.
    Dead {
        error: String,
    },
}

/// Which outbox rows an operator lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxFilter {
    pub status: Option<String>,
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
    pub pending: u64,
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
    /// `tokens:read`, `tokens:write`, `provisioning`, `audit:read`, `outbox:admin`.
    pub scopes: Vec<String>,
    /// Overrides `ops.rate_limit.requests_per_minute` for this key.
    pub rate_limit_per_minute: Option<u32>,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

/// One audited operator write: who, what, on what, why, when and how it ended. Never card
/// data: a card is named by its card id.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    Database(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The adapter's storage.
///
/// **Durability.** Every write that stands behind an answer (an acknowledgement, a decision, an
/// idempotency record, a CVC attempt, an audit entry) is durable when the method returns. Three
/// writes are *relaxed* — committed without waiting for the disk, and made durable by the next
/// durable commit or shortly after: [`Store::remember_request_id`], [`Store::claim_outbox`] and
/// [`Store::finish_outbox`] (SQLite relaxes them; PostgreSQL does not, see its module). Losing one to a power cut only makes something happen again that
/// is safe to repeat: a replayed request would be checked again (its effects, if any, were
/// committed durably with their idempotency record, and commit in order after its id), a lease
/// would be taken again, a delivery would be made again under the same idempotency key
/// (delivery is at least once anyway). Each of these writes is one per request or per delivery,
/// so relaxing them halves the disk flushes of the hot paths on SQLite, whose single writer
/// cannot flush two transactions together.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies pending embedded migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    // ---- local card registry ----
    /// Inserts or updates (by `card_id`) all cards in ONE transaction: all or nothing.
    /// A PAN fingerprint already used by another card id → `DuplicatePan`, nothing written.
    async fn upsert_cards(&self, cards: &[CardRecord]) -> StoreResult<u64>;
    async fn find_card_by_fingerprint(&self, fingerprint: &[u8]) -> StoreResult<Option<CardRecord>>;
    async fn find_card(&self, card_id: &str) -> StoreResult<Option<CardRecord>>;

    // ---- CVC attempt counting (per card, with a lockout window) ----
    /// Failures counted in the current window (0 when the window has passed).
    async fn cvc_failures(&self, card_id: &str, now: OffsetDateTime, window: time::Duration) -> StoreResult<u32>;
    /// Atomically reserves one attempt before a CVC is checked: counts it as a failure
    /// (restarting the window when it has passed) unless `max_attempts` are already counted in
    /// the window, in which case nothing changes and `None` (locked out) is returned. Counting
    /// before checking is what stops parallel guesses from all being checked; a match then
    /// clears the counter.
    async fn reserve_cvc_attempt(
        &self,
        card_id: &str,
        now: OffsetDateTime,
        window: time::Duration,
        max_attempts: u32,
    ) -> StoreResult<Option<u32>>;
    /// A match clears the counter (reservations of attempts still in flight included).
    async fn clear_cvc_failures(&self, card_id: &str) -> StoreResult<()>;

    // ---- decisions (audit) ----
    /// Writes the audit row, and the idempotency record when given, in one transaction.
    async fn record_decision(
        &self,
        decision: &DecisionRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> StoreResult<IdempotentWrite>;
    /// Newest first, every card (stand-ins, which found no card, included).
    async fn recent_decisions(&self, limit: u32) -> StoreResult<Vec<DecisionRecord>>;
    /// Newest first.
    async fn decisions_for_card(&self, card_id: &str, limit: u32) -> StoreResult<Vec<DecisionRecord>>;

    // ---- token mirror ----
    /// Tokens of a card that are not `DEACTIVATED`.
    async fn count_live_tokens(&self, card_id: &str) -> StoreResult<u32>;
    /// In one transaction: records the event in the history (ignored if `event_id` is already
    /// there), updates the mirror unless the event is older than the mirror's `status_at`,
    /// writes the outbox record and the idempotency record.
    async fn apply_token_event(
        &self,
        event: &TokenEventRecord,
        outbox: &OutboxRecord,
        idempotency: &IdempotencyRecord,
    ) -> StoreResult<(IdempotentWrite, Option<TokenEventOutcome>)>;
    async fn find_token(&self, token_id: &str) -> StoreResult<Option<TokenRecord>>;
    /// Oldest first.
    async fn token_history(&self, token_id: &str) -> StoreResult<Vec<TokenEventRecord>>;

    // ---- notifications ----
    /// In one transaction: stores the notification (ignored if its id is already there),
    /// the outbox record and the idempotency record.
    async fn store_notification(
        &self,
        notification: &NotificationRecord,
        outbox: &OutboxRecord,
        idempotency: &IdempotencyRecord,
    ) -> StoreResult<IdempotentWrite>;
    async fn find_notification(&self, notification_id: &str) -> StoreResult<Option<NotificationRecord>>;
    /// Erases OTP ciphertexts whose notification expired before `now`. Returns how many.
    async fn erase_expired_otps(&self, now: OffsetDateTime) -> StoreResult<u64>;

    // ---- outbox (delivery is done by the relay) ----
    /// Pending rows, oldest first (for inspection and tests).
    async fn pending_outbox(&self, limit: u32) -> StoreResult<Vec<OutboxRecord>>;

    /// Erases a notification's OTP ciphertext (once delivered).
    async fn erase_otp(&self, notification_id: &str) -> StoreResult<()>;

    // ---- processor events ----
    /// In ONE transaction: deduplicates every event by id, applies its registry change and
    /// writes its outbox row. All or nothing: a conflicting id or a PAN registered under
    /// another card id (`DuplicatePan`) writes nothing.
    async fn ingest_processor_events(&self, events: &[ProcessorEventRecord]) -> StoreResult<IngestOutcome>;

    // ---- outbox relay ----
    /// Leases up to `limit` deliverable rows of `destination` to `owner` until `lease_until`:
    /// pending, due, not leased (or the lease expired), and the oldest pending row of their
    /// ordering key at that destination (FIFO per destination and card: one receiver's backlog
    /// never holds up another receiver's messages). Relaxed durability (see the trait).
    async fn claim_outbox(
        &self,
        owner: &str,
        destination: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OutboxEntry>>;
    /// Records an attempt on a row `owner` still leases. False when the lease was lost (taken
    /// over, or the operator changed the row): nothing written. Relaxed durability (see the
    /// trait): a result lost to a power cut means one more delivery under the same key.
    async fn finish_outbox(
        &self,
        id: uuid::Uuid,
        owner: &str,
        now: OffsetDateTime,
        result: &DeliveryResult,
    ) -> StoreResult<bool>;
    /// Newest first.
    async fn list_outbox(&self, filter: &OutboxFilter) -> StoreResult<Vec<OutboxEntry>>;
    async fn find_outbox(&self, id: uuid::Uuid) -> StoreResult<Option<OutboxEntry>>;
    /// A pending or dead row becomes due now (a dead one starts a fresh schedule).
    async fn retry_outbox(&self, id: uuid::Uuid, now: OffsetDateTime) -> StoreResult<bool>;
    /// Dead rows (and delivered ones when `include_delivered`) matching `selector` become
    /// pending again with a fresh schedule. Returns how many.
    async fn replay_outbox(
        &self,
        selector: &ReplaySelector,
        include_delivered: bool,
        now: OffsetDateTime,
    ) -> StoreResult<u64>;
    /// A pending row becomes dead without delivery (unblocks its ordering key).
    async fn skip_outbox(&self, id: uuid::Uuid, reason: &str) -> StoreResult<bool>;
    async fn outbox_stats(&self) -> StoreResult<OutboxStats>;

    // ---- ops API: keys, audit, token mirror by card ----
    /// Stores a new key and the audit row of its creation in one transaction.
    async fn create_api_key(&self, key: &ApiKeyRecord, audit: &OpsAuditRecord) -> StoreResult<()>;
    async fn find_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// Every key, revoked ones included, oldest first.
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Revokes a live key and audits it, in one transaction. False when no live key has this id
    /// (nothing written).
    async fn revoke_api_key(&self, id: &str, at: OffsetDateTime, audit: &OpsAuditRecord) -> StoreResult<bool>;
    /// Writes the audit row, and the idempotency record when given, in one transaction.
    async fn record_ops_audit(
        &self,
        audit: &OpsAuditRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> StoreResult<IdempotentWrite>;
    /// Newest first.
    async fn list_ops_audit(&self, filter: &OpsAuditFilter) -> StoreResult<Vec<OpsAuditRecord>>;
    /// The mirror's tokens of a card, most recently updated first.
    async fn tokens_for_card(&self, card_id: &str) -> StoreResult<Vec<TokenRecord>>;

    // ---- idempotency ----
    async fn find_idempotency(&self, scope: &str, key: &str) -> StoreResult<Option<IdempotencyRecord>>;
    /// Deletes records created before `before`. Returns how many.
    async fn purge_idempotency(&self, before: OffsetDateTime) -> StoreResult<u64>;

    // ---- replay protection for signed requests ----
    /// Remembers a `webhook-id`. Returns false when it was already seen (a replay). Relaxed
    /// durability (see the trait).
    async fn remember_request_id(&self, request_id: &str, seen_at: OffsetDateTime) -> StoreResult<bool>;
    /// Forgets ids seen before `before` (older than the signature tolerance can't be replayed).
    async fn purge_request_ids(&self, before: OffsetDateTime) -> StoreResult<u64>;
}

pub type DynStore = Arc<dyn Store>;

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

/// Opens the store named by a database URL: `sqlite://…` or `postgres://…`.
/// SQLite files are created (with their directory) on first use and run in WAL mode.
pub async fn connect(url: &str, max_connections: u32) -> StoreResult<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url, max_connections).await?))
    } else {
        Ok(Arc::new(SqliteStore::connect(url, max_connections).await?))
    }
}
