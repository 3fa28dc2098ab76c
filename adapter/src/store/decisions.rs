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
    /// The velocity limits' count, taken and added to atomically: for each key, how many other
    /// tokenizations it had within `window` before `now` (the instant `now - window` itself
    /// outside, as for the CVC window), in `keys`' order; and this tokenization recorded for
    /// each (once per tokenization id, whatever its outcome: TMP asking again counts once).
    /// Under a lock per key for the transaction (PostgreSQL; SQLite has one writer), so
    /// tokenizations of one card or device arriving together are counted one after another —
    /// none is counted against a total that misses one committing beside it. *Relaxed*, as
    /// the CVC attempts are (see [`super::CvcAttempts`]): the decision record's flush covers it.
    async fn count_and_record_tokenization(
        &self,
        keys: &[VelocityKey<'_>],
        tokenization_id: &str,
        now: OffsetDateTime,
        window: time::Duration,
    ) -> StoreResult<Vec<u32>>;
    /// Records, from the decision audit, the card verifications since `since` that the velocity
    /// count lacks (`ON CONFLICT DO NOTHING`: idempotent); returns how many. Run at every start:
    /// during a rolling upgrade to `0011` the replicas still on the previous version audit their
    /// tokenizations without recording them, and the last replica to restart catches them up.
    async fn backfill_tokenization_attempts(&self, since: OffsetDateTime) -> StoreResult<u64>;
    /// Forgets tokenizations recorded before `before` (housekeeping, past the velocity window).
    async fn purge_tokenization_attempts(&self, before: OffsetDateTime) -> StoreResult<u64>;
}

/// What a velocity limit counts the tokenizations of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VelocityKey<'a> {
    Card(&'a str),
    Device(&'a str),
}

/// The stripe of this process's velocity turns a lock name falls on.
fn velocity_stripe(lock: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    lock.hash(&mut hasher);
    (hasher.finish() % super::engine::VELOCITY_STRIPES as u64) as usize
}

impl VelocityKey<'_> {
    /// `tokenization_attempts.kind`.
    fn kind(&self) -> &'static str {
        match self {
            VelocityKey::Card(_) => "card",
            VelocityKey::Device(_) => "device",
        }
    }

    fn subject(&self) -> &str {
        match self {
            VelocityKey::Card(id) | VelocityKey::Device(id) => id,
        }
    }
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
                  stand_in, latency_ms, device_id, device_type, token_type, recommendation_reasons, \
                  pan_source, network_score, hook_outcome, hook_decision, hook_reason) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
                         $20, $21, $22, $23, $24, $25)",
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
            .bind(&decision.recommendation_reasons)
            .bind(&decision.pan_source)
            .bind(decision.network_score)
            .bind(&decision.hook_outcome)
            .bind(&decision.hook_decision)
            .bind(&decision.hook_reason)
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
    async fn count_and_record_tokenization(
        &self,
        keys: &[VelocityKey<'_>],
        tokenization_id: &str,
        now: OffsetDateTime,
        window: time::Duration,
    ) -> StoreResult<Vec<u32>> {
        let cutoff = rows::window_cutoff(now, window);
        // One lock order for every writer (sorted), so two tokenizations naming the same card
        // and device cannot wait on each other: first this process's stripes, then (PostgreSQL,
        // for the other replicas) the database's locks.
        let mut locks: Vec<String> = keys.iter().map(|k| format!("velocity:{}:{}", k.kind(), k.subject())).collect();
        locks.sort();
        locks.dedup();
        let mut stripes: Vec<usize> = locks.iter().map(|l| velocity_stripe(l)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut turns = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            turns.push(self.velocity_turns[stripe].lock().await);
        }
        // Relaxed (see `DecisionStore`): the decision record's flush covers it.
        let mut tx = self.begin_write_relaxed().await?;
        tx.lock_ordering_keys(&locks.iter().map(String::as_str).collect::<Vec<_>>()).await?;
        let mut counts = Vec::with_capacity(keys.len());
        for key in keys {
            let count: i64 = dispatch!(tx.conn(), |c| {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM tokenization_attempts \
                     WHERE kind = $1 AND subject = $2 AND at > $3 AND tokenization_id <> $4",
                )
                .bind(key.kind())
                .bind(key.subject())
                .bind(Ts(cutoff))
                .bind(tokenization_id)
                .fetch_one(c)
                .await?
            });
            counts.push(rows::count_u32(count, "tokenization count")?);
            dispatch!(tx.conn(), |c| {
                sqlx::query(
                    "INSERT INTO tokenization_attempts (kind, subject, tokenization_id, at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (kind, subject, tokenization_id) DO NOTHING",
                )
                .bind(key.kind())
                .bind(key.subject())
                .bind(tokenization_id)
                .bind(Ts(now))
                .execute(c)
                .await?;
            });
        }
        // The next tokenization of this card or device reads the committed count at once.
        tx.commit_releasing(move || drop(turns)).await?;
        Ok(counts)
    }

    #[tracing::instrument(skip_all)]
    async fn backfill_tokenization_attempts(&self, since: OffsetDateTime) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let mut added = 0;
        // One statement per kind (static text, as sqlx wants), each reading the window through
        // `decisions_decided_at_idx`.
        macro_rules! backfill {
            ($kind:literal, $column:literal) => {
                concat!(
                    "INSERT INTO tokenization_attempts (kind, subject, tokenization_id, at) \
                     SELECT '",
                    $kind,
                    "', ",
                    $column,
                    ", tokenization_id, MIN(decided_at) FROM decisions \
                      WHERE decided_at > $1 AND operation = 'verify_card' AND ",
                    $column,
                    " IS NOT NULL \
                        AND tokenization_id IS NOT NULL \
                      GROUP BY ",
                    $column,
                    ", tokenization_id \
                     ON CONFLICT (kind, subject, tokenization_id) DO NOTHING"
                )
            };
        }
        for sql in [backfill!("card", "card_id"), backfill!("device", "device_id")] {
            added += dispatch!(tx.conn(), |c| sqlx::query(sql).bind(Ts(since)).execute(c).await?.rows_affected());
        }
        tx.commit().await?;
        Ok(added)
    }

    #[tracing::instrument(skip_all)]
    async fn purge_tokenization_attempts(&self, before: OffsetDateTime) -> StoreResult<u64> {
        // Housekeeping: a purge lost to a power cut is simply done again.
        let writer = self.write_relaxed().await;
        Ok(dispatch!(writer.pool, |pool| {
            sqlx::query("DELETE FROM tokenization_attempts WHERE at < $1")
                .bind(Ts(before))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}
