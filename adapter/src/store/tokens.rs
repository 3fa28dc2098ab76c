//! The token mirror and its history: token events from TMP applied in the order they occurred,
//! each with its outbox row and idempotency record.

use async_trait::async_trait;
use time::OffsetDateTime;
use tmp_protocol::enums::{ChangeInitiator, ReasonCode, TokenStatus};

use super::engine::{SqlStore, WriteTx, dispatch};
use super::rows::{self, TokenEventRow, Ts, normalize_ts, token_columns, token_event_columns};
use super::{
    IdempotencyRecord, IdempotentWrite, OutboxRecord, StoreError, StoreResult, StoredTokenEvent, TokenEventOutcome,
    TokenEventRecord, TokenRecord,
};

/// Which of a card's tokens a count covers: the cap of a policy entry counts the tokens its entry
/// governs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    /// Tokens of one token requestor (a `policy.token_requestors` entry, or the default policy,
    /// which applies to each requestor on its own).
    Requestor(String),
    /// Tokens of one wallet (a `policy.wallets` entry), whatever their requestor.
    Wallet(String),
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Tokens of a card that are not `DEACTIVATED`.
    /// The card's tokens in `scope` that are not deactivated.
    async fn count_live_tokens(&self, card_id: &str, scope: &TokenScope) -> StoreResult<u32>;
    /// In one transaction: records the event in the history (ignored if `event_id` is already
    /// there), updates the mirror unless the event is older than the mirror's `status_at`,
    /// writes the outbox record and the idempotency record.
    async fn apply_token_event(
        &self,
        event: &TokenEventRecord,
        outbox: &OutboxRecord,
        idempotency: &IdempotencyRecord,
    ) -> StoreResult<(IdempotentWrite, Option<TokenEventOutcome>)>;
    /// Like [`TokenStore::apply_token_event`], for a repair the adapter writes itself
    /// (reconciliation): all of it, or — when the mirror holds a newer state, or the event id
    /// is already stored — nothing. Decided in the transaction, so a token event TMP delivers
    /// meanwhile cannot leave a stale repair in the history or the sinks' queue. True when
    /// written.
    async fn apply_repair_event(
        &self,
        event: &TokenEventRecord,
        outbox: &OutboxRecord,
        idempotency: &IdempotencyRecord,
    ) -> StoreResult<bool>;
    async fn find_token(&self, token_id: &str) -> StoreResult<Option<TokenRecord>>;
    /// Oldest first.
    async fn token_history(&self, token_id: &str) -> StoreResult<Vec<StoredTokenEvent>>;
    /// The mirror's tokens of a card, most recently updated first.
    async fn tokens_for_card(&self, card_id: &str) -> StoreResult<Vec<TokenRecord>>;
    /// Every card the mirror holds a token of, in id order.
    async fn token_card_ids(&self) -> StoreResult<Vec<String>>;
}

const FIND_TOKEN: &str = concat!("SELECT ", token_columns!(), " FROM tokens WHERE token_id = $1");

/// Upserts the token mirror from `event` unless the mirror holds a newer state.
/// Returns whether the mirror was written.
async fn upsert_mirror(tx: &mut WriteTx, event: &TokenEventRecord) -> StoreResult<bool> {
    let written = dispatch!(tx.conn(), |c| {
        sqlx::query(
            "INSERT INTO tokens \
             (token_id, card_id, tsp, token_requestor_id, wallet, status, token_last4, \
              status_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
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
        .bind(Ts(event.occurred_at))
        .bind(Ts(event.received_at))
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(written == 1)
}

/// What becomes of a token event the mirror does not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unapplied {
    /// TMP's event: in the history (`applied: false`) and forwarded to the sinks all the same.
    Keep,
    /// The adapter's repair: not written at all.
    Discard,
}

impl SqlStore {
    async fn write_token_event(
        &self,
        event: &TokenEventRecord,
        outbox: &OutboxRecord,
        idempotency: &IdempotencyRecord,
        unapplied: Unapplied,
    ) -> StoreResult<(IdempotentWrite, Option<TokenEventOutcome>)> {
        let mut tx = match self.begin_claiming(Some(idempotency)).await? {
            Ok(tx) => tx,
            Err(existing) => return Ok((IdempotentWrite::AlreadyExists(existing), None)),
        };
        let new_event = dispatch!(tx.conn(), |c| {
            sqlx::query(
                "INSERT INTO token_events \
                 (event_id, token_id, card_id, tsp, token_requestor_id, wallet, status, \
                  previous_status, reason, reason_code, initiator, tokenization_id, token_last4, occurred_at, \
                  received_at, applied) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
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
            .bind(event.reason_code.map(ReasonCode::as_str))
            .bind(event.initiator.map(ChangeInitiator::as_str))
            .bind(&event.tokenization_id)
            .bind(&event.token_last4)
            .bind(Ts(event.occurred_at))
            .bind(Ts(event.received_at))
            .bind(false)
            .execute(c)
            .await?
            .rows_affected()
        }) == 1;

        if !new_event {
            // The same event id must mean the same event; anything else is a sender's bug that
            // retrying cannot fix (409, nothing written).
            let (token_id, status, occurred_at): (String, String, OffsetDateTime) = dispatch!(tx.conn(), |c| {
                sqlx::query_as("SELECT token_id, status, occurred_at FROM token_events WHERE event_id = $1")
                    .bind(&event.event_id)
                    .fetch_one(c)
                    .await?
            });
            if token_id != event.token_id
                || status != event.status.as_str()
                || occurred_at != normalize_ts(event.occurred_at)
            {
                return Err(StoreError::EventConflict);
            }
        }
        // A duplicate event already had its effect on the mirror (or was superseded by then).
        let applied = if new_event { upsert_mirror(&mut tx, event).await? } else { false };
        if !applied && unapplied == Unapplied::Discard {
            tx.rollback().await?;
            return Ok((IdempotentWrite::Committed, None));
        }
        if applied {
            // Kept with the event: the history shows what it did, whatever arrives later.
            dispatch!(tx.conn(), |c| {
                sqlx::query("UPDATE token_events SET applied = $1 WHERE event_id = $2")
                    .bind(true)
                    .bind(&event.event_id)
                    .execute(c)
                    .await?;
            });
        }
        if new_event {
            super::outbox::insert(&mut tx, outbox).await?;
        }
        let token: Option<TokenRecord> =
            dispatch!(tx.conn(), |c| sqlx::query_as(FIND_TOKEN).bind(&event.token_id).fetch_optional(c).await?);
        let token =
            token.ok_or_else(|| StoreError::Corrupt(format!("token event {} has no mirror row", event.event_id)))?;
        tx.commit().await?;
        Ok((IdempotentWrite::Committed, Some(TokenEventOutcome { token, applied })))
    }
}

#[async_trait]
impl TokenStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn count_live_tokens(&self, card_id: &str, scope: &TokenScope) -> StoreResult<u32> {
        let (column_is_wallet, value) = match scope {
            TokenScope::Requestor(id) => (false, id.as_str()),
            TokenScope::Wallet(wallet) => (true, wallet.as_str()),
        };
        let count: i64 = dispatch!(self.read(), |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM tokens WHERE card_id = $1 AND status <> $2 \
                  AND (CASE WHEN $3 THEN wallet ELSE token_requestor_id END) = $4",
            )
            .bind(card_id)
            .bind(TokenStatus::Deactivated.as_str())
            .bind(column_is_wallet)
            .bind(value)
            .fetch_one(pool)
            .await?
        });
        rows::count_u32(count, "token count")
    }

    #[tracing::instrument(skip_all)]
    async fn apply_token_event(
        &self,
        event: &TokenEventRecord,
        outbox: &OutboxRecord,
        idempotency: &IdempotencyRecord,
    ) -> StoreResult<(IdempotentWrite, Option<TokenEventOutcome>)> {
        self.write_token_event(event, outbox, idempotency, Unapplied::Keep).await
    }

    #[tracing::instrument(skip_all)]
    async fn apply_repair_event(
        &self,
        event: &TokenEventRecord,
        outbox: &OutboxRecord,
        idempotency: &IdempotencyRecord,
    ) -> StoreResult<bool> {
        let (_, outcome) = self.write_token_event(event, outbox, idempotency, Unapplied::Discard).await?;
        Ok(outcome.is_some_and(|o| o.applied))
    }

    #[tracing::instrument(skip_all)]
    async fn find_token(&self, token_id: &str) -> StoreResult<Option<TokenRecord>> {
        let row: Option<TokenRecord> =
            dispatch!(self.read(), |pool| sqlx::query_as(FIND_TOKEN).bind(token_id).fetch_optional(pool).await?);
        Ok(row)
    }

    #[tracing::instrument(skip_all)]
    async fn token_history(&self, token_id: &str) -> StoreResult<Vec<StoredTokenEvent>> {
        let rows = dispatch!(self.read(), |pool| {
            sqlx::query_as::<_, TokenEventRow>(concat!(
                "SELECT ",
                token_event_columns!(),
                " FROM token_events WHERE token_id = $1 ORDER BY occurred_at, received_at, event_id"
            ))
            .bind(token_id)
            .fetch_all(pool)
            .await?
        });
        rows::convert_all(rows)
    }

    #[tracing::instrument(skip_all)]
    async fn tokens_for_card(&self, card_id: &str) -> StoreResult<Vec<TokenRecord>> {
        let rows = dispatch!(self.read(), |pool| {
            sqlx::query_as::<_, TokenRecord>(concat!(
                "SELECT ",
                token_columns!(),
                " FROM tokens WHERE card_id = $1 ORDER BY updated_at DESC, token_id"
            ))
            .bind(card_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    #[tracing::instrument(skip_all)]
    async fn token_card_ids(&self) -> StoreResult<Vec<String>> {
        let ids = dispatch!(self.read(), |pool| {
            sqlx::query_scalar::<_, String>("SELECT DISTINCT card_id FROM tokens ORDER BY card_id")
                .fetch_all(pool)
                .await?
        });
        Ok(ids)
    }
}
