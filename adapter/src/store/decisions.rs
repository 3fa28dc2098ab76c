//! The audit of card and CVC decisions, each written with the idempotency record of the request
//! it answered.

use async_trait::async_trait;

use super::engine::{SqlStore, dispatch};
use super::rows::{Ts, decision_columns};
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
                  stand_in, latency_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
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
}
