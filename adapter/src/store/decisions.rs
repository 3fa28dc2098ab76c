//! The audit of card and CVC decisions, each written with the idempotency record of the request
//! it answered.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::engine::{SqlStore, dispatch};
use super::rows::{self, Ts, decision_columns};
use super::{DecisionRecord, IdempotencyRecord, IdempotentWrite, StoreResult};

#[async_trait]
pub trait DecisionStore: Send + Sync {
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
    /// The decisions of one tokenization of a card (a CVC check and a card verification),
    /// oldest first. Through the card's index: a stand-in, which found no card, is not among them.
    async fn decisions_for_tokenization(
        &self,
        card_id: &str,
        tokenization_id: &str,
    ) -> StoreResult<Vec<DecisionRecord>>;
    /// How many other tokenizations (card verifications, one per tokenization id, whatever
    /// their outcome) the card or the device had since `since` — the velocity limits' count.
    async fn count_tokenizations(
        &self,
        of: &VelocityKey<'_>,
        since: OffsetDateTime,
        excluding_tokenization: &str,
    ) -> StoreResult<u32>;
}

/// What a velocity limit counts the tokenizations of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VelocityKey<'a> {
    Card(&'a str),
    Device(&'a str),
}

#[async_trait]
impl DecisionStore for SqlStore {
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
        dispatch!(tx.conn(), |c| {
            sqlx::query(
                "INSERT INTO decisions \
                 (id, decided_at, correlation_id, operation, tokenization_id, card_id, pan_last4, \
                  token_requestor_id, wallet, tsp, decision, reason, card_status, cvc_result, \
                  stand_in, latency_ms, device_id, device_type, token_type) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
            )
            .bind(decision.id)
            .bind(Ts(decision.decided_at))
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
            .bind(&decision.device_id)
            .bind(&decision.device_type)
            .bind(&decision.token_type)
            .execute(c)
            .await?;
        });
        tx.commit().await?;
        Ok(IdempotentWrite::Committed)
    }

    #[tracing::instrument(skip_all)]
    async fn recent_decisions(&self, limit: u32) -> StoreResult<Vec<DecisionRecord>> {
        let rows = dispatch!(self.read(), |pool| {
            sqlx::query_as::<_, DecisionRecord>(concat!(
                "SELECT ",
                decision_columns!(),
                " FROM decisions ORDER BY decided_at DESC, id DESC LIMIT $1"
            ))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    #[tracing::instrument(skip_all)]
    async fn decisions_for_card(&self, card_id: &str, limit: u32) -> StoreResult<Vec<DecisionRecord>> {
        let rows = dispatch!(self.read(), |pool| {
            sqlx::query_as::<_, DecisionRecord>(concat!(
                "SELECT ",
                decision_columns!(),
                " FROM decisions WHERE card_id = $1 ORDER BY decided_at DESC, id DESC LIMIT $2"
            ))
            .bind(card_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    #[tracing::instrument(skip_all)]
    async fn decisions_for_tokenization(
        &self,
        card_id: &str,
        tokenization_id: &str,
    ) -> StoreResult<Vec<DecisionRecord>> {
        let rows = dispatch!(self.read(), |pool| {
            sqlx::query_as::<_, DecisionRecord>(concat!(
                "SELECT ",
                decision_columns!(),
                " FROM decisions WHERE card_id = $1 AND tokenization_id = $2 ORDER BY decided_at, id LIMIT 20"
            ))
            .bind(card_id)
            .bind(tokenization_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    #[tracing::instrument(skip_all)]
    async fn count_tokenizations(
        &self,
        of: &VelocityKey<'_>,
        since: OffsetDateTime,
        excluding_tokenization: &str,
    ) -> StoreResult<u32> {
        // One statement per key, each on its own (key, decided_at) index.
        let (sql, key) = match of {
            VelocityKey::Card(id) => (
                "SELECT COUNT(DISTINCT tokenization_id) FROM decisions WHERE card_id = $1 AND decided_at >= $2 \
                  AND operation = 'verify_card' AND tokenization_id <> $3",
                *id,
            ),
            VelocityKey::Device(id) => (
                "SELECT COUNT(DISTINCT tokenization_id) FROM decisions WHERE device_id = $1 AND decided_at >= $2 \
                  AND operation = 'verify_card' AND tokenization_id <> $3",
                *id,
            ),
        };
        let count: i64 = dispatch!(self.read(), |pool| {
            sqlx::query_scalar(sql).bind(key).bind(Ts(since)).bind(excluding_tokenization).fetch_one(pool).await?
        });
        rows::count_u32(count, "tokenization count")
    }
}
