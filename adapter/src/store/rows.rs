//! What the rows look like in both engines: row shapes (decoded by `sqlx::FromRow` from either)
//! and their conversion into the store's records, and [`Ts`], the one timestamp type both
//! encode.
//!
//! Timestamps are stored in UTC with microsecond precision (PostgreSQL's `TIMESTAMPTZ`
//! resolution). SQLite keeps them as fixed-width RFC 3339 text (see [`sqlite_ts`]) so that
//! comparing the text in SQL compares the instants. Records read back therefore carry UTC
//! instants truncated to the microsecond.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo};
use sqlx::{Encode, Postgres, Sqlite, Type};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use tmp_protocol::enums::{ChangeInitiator, ReasonCode, TokenStatus};
use tmp_protocol::trace_context::TraceParent;

use crate::outbox::{Destination, OutboxMessage, OutboxStatus};

use super::{
    ApiKeyRecord, DeliveryResult, OutboxEntry, OutboxRecord, StoreError, StoreResult, StoredTokenEvent,
    TokenEventRecord,
};

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`: fixed width, so lexical order is chronological order.
const SQLITE_TS: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// The instant as stored: in UTC, truncated to the microsecond.
pub(super) fn normalize_ts(t: OffsetDateTime) -> OffsetDateTime {
    let utc = t.to_offset(UtcOffset::UTC);
    let micros_as_nanos = utc.nanosecond() / 1_000 * 1_000;
    utc.replace_nanosecond(micros_as_nanos).expect("a truncated nanosecond is in range")
}

/// The SQLite text form of an instant (see the module docs).
pub(super) fn sqlite_ts(t: OffsetDateTime) -> String {
    normalize_ts(t).format(SQLITE_TS).expect("a UTC instant with a 4-digit year formats")
}

/// An instant as a statement parameter, in the form its engine stores: `TIMESTAMPTZ` on
/// PostgreSQL, the fixed-width text of [`sqlite_ts`] on SQLite; both in UTC, truncated to the
/// microsecond. Read back, either decodes as an `OffsetDateTime`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ts(pub(super) OffsetDateTime);

impl Type<Sqlite> for Ts {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for Ts {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(sqlite_ts(self.0), buf)
    }
}

impl Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Ts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <OffsetDateTime as Encode<Postgres>>::encode_by_ref(&normalize_ts(self.0), buf)
    }
}

/// `now - window`: a window that started at or before this instant has passed.
pub(super) fn window_cutoff(now: OffsetDateTime, window: time::Duration) -> OffsetDateTime {
    // Saturates instead of panicking on an absurd window (config bounds it anyway).
    now.checked_sub(window).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(super) fn token_status(s: &str) -> StoreResult<TokenStatus> {
    TokenStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown token status {s:?}")))
}

/// A count read from the database as a `u32`.
pub(super) fn count_u32(n: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("{what} out of range: {n}")))
}

/// Maps a failed card write: the only unique constraint an upsert by `card_id` can break is
/// the PAN fingerprint's (a concurrent writer registered the same PAN under another id).
pub(super) fn card_write_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::DuplicatePan,
        _ => StoreError::Database(error),
    }
}

// Column lists of the row shapes below, for `concat!` into the (static) SQL of both backends.

macro_rules! card_columns {
    () => {
        "card_id, pan_fingerprint, pan_ciphertext, pan_key_id, pan_last4, expiry_yymm, status, \
         cardholder_phone, cardholder_email, product_category, updated_at"
    };
}
macro_rules! idempotency_columns {
    () => {
        "scope, idempotency_key, request_hash, response_status, response_body, created_at"
    };
}
macro_rules! decision_columns {
    () => {
        "id, decided_at, correlation_id, operation, tokenization_id, card_id, pan_last4, \
         token_requestor_id, wallet, tsp, decision, reason, card_status, cvc_result, stand_in, \
         latency_ms, device_id, device_type, token_type, recommendation_reasons, pan_source, network_score, \
         hook_outcome, hook_decision, hook_reason"
    };
}
macro_rules! token_columns {
    () => {
        "token_id, card_id, tsp, token_requestor_id, wallet, status, token_last4, status_at, \
         updated_at"
    };
}
macro_rules! token_event_columns {
    () => {
        "event_id, token_id, card_id, tsp, token_requestor_id, wallet, status, previous_status, \
         reason, reason_code, initiator, tokenization_id, token_last4, occurred_at, received_at, applied"
    };
}
macro_rules! notification_columns {
    () => {
        "notification_id, notification_type, card_id, token_id, token_requestor_id, channel, \
         otp_ciphertext, otp_key_id, expires_at, occurred_at, received_at"
    };
}
macro_rules! outbox_columns {
    () => {
        "id, destination, ordering_key, event_type, payload, created_at, not_after, correlation_id, traceparent"
    };
}
macro_rules! outbox_entry_columns {
    () => {
        "seq, id, destination, ordering_key, event_type, payload, created_at, not_after, correlation_id, \
         traceparent, status, held_at, attempts, next_attempt_at, lease_owner, lease_until, last_error, delivered_at"
    };
}
macro_rules! api_key_columns {
    () => {
        "id, name, secret_digest, scopes, rate_limit_per_minute, created_at, revoked_at"
    };
}
macro_rules! ops_audit_columns {
    () => {
        "id, at, actor, action, target, card_id, reason, outcome, status, correlation_id"
    };
}
pub(super) use {
    api_key_columns, card_columns, decision_columns, idempotency_columns, notification_columns, ops_audit_columns,
    outbox_columns, outbox_entry_columns, token_columns, token_event_columns,
};

#[derive(sqlx::FromRow)]
pub(super) struct ApiKeyRow {
    id: String,
    name: String,
    secret_digest: Vec<u8>,
    scopes: String,
    rate_limit_per_minute: Option<i32>,
    created_at: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
}

impl TryFrom<ApiKeyRow> for ApiKeyRecord {
    type Error = StoreError;

    fn try_from(row: ApiKeyRow) -> StoreResult<Self> {
        let rate_limit_per_minute = row
            .rate_limit_per_minute
            .map(|n| u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("rate limit out of range: {n}"))))
            .transpose()?;
        Ok(ApiKeyRecord {
            id: row.id,
            name: row.name,
            secret_digest: row.secret_digest,
            scopes: row.scopes.split_whitespace().map(str::to_owned).collect(),
            rate_limit_per_minute,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        })
    }
}

/// The stored form of a key's scopes.
pub(super) fn scopes_text(scopes: &[String]) -> String {
    scopes.join(" ")
}

#[derive(sqlx::FromRow)]
pub(super) struct TokenEventRow {
    event_id: String,
    token_id: String,
    card_id: String,
    tsp: String,
    token_requestor_id: String,
    wallet: String,
    status: String,
    previous_status: Option<String>,
    reason: Option<String>,
    reason_code: Option<String>,
    initiator: Option<String>,
    tokenization_id: Option<String>,
    token_last4: Option<String>,
    occurred_at: OffsetDateTime,
    received_at: OffsetDateTime,
    applied: bool,
}

impl TryFrom<TokenEventRow> for StoredTokenEvent {
    type Error = StoreError;

    fn try_from(row: TokenEventRow) -> StoreResult<Self> {
        let unknown = |what: &str, s: &str| StoreError::Corrupt(format!("unknown {what} {s:?}"));
        let event = TokenEventRecord {
            status: token_status(&row.status)?,
            reason_code: row
                .reason_code
                .as_deref()
                .map(|s| ReasonCode::parse(s).ok_or_else(|| unknown("reason code", s)))
                .transpose()?,
            initiator: row
                .initiator
                .as_deref()
                .map(|s| ChangeInitiator::parse(s).ok_or_else(|| unknown("initiator", s)))
                .transpose()?,
            previous_status: row.previous_status.as_deref().map(token_status).transpose()?,
            event_id: row.event_id,
            token_id: row.token_id,
            card_id: row.card_id,
            tsp: row.tsp,
            token_requestor_id: row.token_requestor_id,
            wallet: row.wallet,
            reason: row.reason,
            tokenization_id: row.tokenization_id,
            token_last4: row.token_last4,
            occurred_at: row.occurred_at,
            received_at: row.received_at,
        };
        Ok(StoredTokenEvent { event, applied: row.applied })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct OutboxRow {
    id: uuid::Uuid,
    destination: String,
    ordering_key: String,
    event_type: String,
    /// The JSON text as stored, parsed once into its message type.
    payload: sqlx::types::Json<Box<serde_json::value::RawValue>>,
    created_at: OffsetDateTime,
    not_after: Option<OffsetDateTime>,
    correlation_id: Option<String>,
    traceparent: Option<String>,
}

impl TryFrom<OutboxRow> for OutboxRecord {
    type Error = StoreError;

    fn try_from(row: OutboxRow) -> StoreResult<Self> {
        Ok(OutboxRecord {
            destination: Destination::parse(&row.destination)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown outbox destination {:?}", row.destination)))?,
            message: OutboxMessage::from_stored(&row.event_type, row.payload.0.get()).map_err(StoreError::Corrupt)?,
            id: row.id,
            ordering_key: row.ordering_key,
            created_at: row.created_at,
            not_after: row.not_after,
            correlation_id: row.correlation_id,
            // Written by the kit from a parsed value. Should one not parse, the delivery starts a
            // trace of its own: a trace is never worth holding a message back.
            traceparent: row.traceparent.and_then(|t| TraceParent::parse(&t).ok()),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct OutboxEntryRow {
    seq: i64,
    #[sqlx(flatten)]
    record: OutboxRow,
    status: String,
    held_at: Option<OffsetDateTime>,
    attempts: i32,
    next_attempt_at: OffsetDateTime,
    lease_owner: Option<String>,
    lease_until: Option<OffsetDateTime>,
    last_error: Option<String>,
    delivered_at: Option<OffsetDateTime>,
}

impl TryFrom<OutboxEntryRow> for OutboxEntry {
    type Error = StoreError;

    fn try_from(row: OutboxEntryRow) -> StoreResult<Self> {
        Ok(OutboxEntry {
            seq: row.seq,
            record: row.record.try_into()?,
            status: match (OutboxStatus::parse(&row.status), row.held_at) {
                // A held row is stored pending: it stays its card's head (see `DeliveryResult::Held`).
                (Some(OutboxStatus::Pending), Some(_)) => OutboxStatus::Held,
                (Some(status), _) => status,
                (None, _) => return Err(StoreError::Corrupt(format!("unknown outbox status {:?}", row.status))),
            },
            held_at: row.held_at,
            attempts: count_u32(row.attempts.into(), "attempts")?,
            next_attempt_at: row.next_attempt_at,
            lease_owner: row.lease_owner,
            lease_until: row.lease_until,
            last_error: row.last_error,
            delivered_at: row.delivered_at,
        })
    }
}

/// The columns a [`DeliveryResult`] writes.
pub(super) struct ResultColumns {
    /// As stored: a held row stays `pending`.
    pub status: &'static str,
    pub next_attempt_at: Option<Ts>,
    pub last_error: Option<String>,
    pub delivered_at: Option<Ts>,
    pub held_at: Option<Ts>,
}

pub(super) fn result_columns(result: &DeliveryResult, now: OffsetDateTime) -> ResultColumns {
    let (status, next_attempt_at, last_error, delivered_at, held_at) = match result {
        DeliveryResult::Delivered => (OutboxStatus::Delivered, None, None, Some(Ts(now)), None),
        DeliveryResult::Retry { at, error } => (OutboxStatus::Pending, Some(Ts(*at)), Some(error.clone()), None, None),
        DeliveryResult::Held { error } => (OutboxStatus::Pending, None, Some(error.clone()), None, Some(Ts(now))),
        DeliveryResult::Dead { error } => (OutboxStatus::Dead, None, Some(error.clone()), None, None),
    };
    ResultColumns { status: status.as_str(), next_attempt_at, last_error, delivered_at, held_at }
}

/// Converts fallible rows into records.
pub(super) fn convert_all<R, T>(rows: Vec<R>) -> StoreResult<Vec<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn sqlite_timestamps_are_fixed_width_utc_and_sort_chronologically() {
        let a = datetime!(2025-01-31 12:00:00 +00:00);
        let b = datetime!(2025-01-31 14:00:00.5 +02:00); // 12:00:00.5 UTC
        let c = datetime!(2025-01-31 12:00:00.000000999 UTC); // truncated to 12:00:00
        assert_eq!(sqlite_ts(a), "2025-01-31T12:00:00.000000Z");
        assert_eq!(sqlite_ts(b), "2025-01-31T12:00:00.500000Z");
        assert_eq!(sqlite_ts(c), sqlite_ts(a));
        assert!(sqlite_ts(a) < sqlite_ts(b));
        let parsed = OffsetDateTime::parse(&sqlite_ts(b), &time::format_description::well_known::Rfc3339).unwrap();
        assert_eq!(parsed, b);
        assert_eq!(parsed.offset(), UtcOffset::UTC);
    }

    #[test]
    fn unknown_statuses_are_corrupt() {
        assert!(matches!(token_status("GONE"), Err(StoreError::Corrupt(_))));
        assert_eq!(token_status("ACTIVE").unwrap(), TokenStatus::Active);
    }
}
