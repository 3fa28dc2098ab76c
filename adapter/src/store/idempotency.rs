//! What stops a request from taking effect twice: stored answers of idempotent requests (by
//! route and key) and the `webhook-id`s of signed requests seen within the signature tolerance.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::engine::{SqlStore, dispatch};
use super::rows::{Ts, idempotency_columns};
use super::{IdempotencyRecord, StoreResult};

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// The stored answer under this route and key, returned only after a flush that began once
    /// it was read: it may be another request's (or replica's) write, committed but not yet durable.
    async fn find_idempotency(&self, scope: &str, key: &str) -> StoreResult<Option<IdempotencyRecord>>;
    /// Deletes records created before `before`. Returns how many.
    async fn purge_idempotency(&self, before: OffsetDateTime) -> StoreResult<u64>;
    /// Remembers a `webhook-id`. Returns false when it was already seen (a replay). Relaxed
    /// durability (see [`super::Store`]).
    async fn remember_request_id(&self, request_id: &str, seen_at: OffsetDateTime) -> StoreResult<bool>;
    /// Forgets ids seen before `before` (older than the signature tolerance can't be replayed).
    async fn purge_request_ids(&self, before: OffsetDateTime) -> StoreResult<u64>;
}

#[async_trait]
impl IdempotencyStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn find_idempotency(&self, scope: &str, key: &str) -> StoreResult<Option<IdempotencyRecord>> {
        let row = dispatch!(self.read(), |pool| {
            sqlx::query_as::<_, IdempotencyRecord>(concat!(
                "SELECT ",
                idempotency_columns!(),
                " FROM idempotency WHERE scope = $1 AND idempotency_key = $2"
            ))
            .bind(scope)
            .bind(key)
            .fetch_optional(pool)
            .await?
        });
        if row.is_some() {
            // The stored answer may belong to a write not yet durable (this process's or
            // another replica's): answer it only once it is.
            self.group.settle().await?;
        }
        Ok(row)
    }

    #[tracing::instrument(skip_all)]
    async fn purge_idempotency(&self, before: OffsetDateTime) -> StoreResult<u64> {
        // Housekeeping: a purge lost to a power cut is simply done again.
        let writer = self.write_relaxed().await;
        Ok(dispatch!(writer.pool, |pool| {
            sqlx::query("DELETE FROM idempotency WHERE created_at < $1")
                .bind(Ts(before))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn remember_request_id(&self, request_id: &str, seen_at: OffsetDateTime) -> StoreResult<bool> {
        let writer = self.write_relaxed().await;
        let inserted = dispatch!(writer.pool, |pool| {
            sqlx::query(
                "INSERT INTO seen_request_ids (request_id, seen_at) VALUES ($1, $2) \
                 ON CONFLICT (request_id) DO NOTHING",
            )
            .bind(request_id)
            .bind(Ts(seen_at))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(inserted == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn purge_request_ids(&self, before: OffsetDateTime) -> StoreResult<u64> {
        // Housekeeping: a purge lost to a power cut is simply done again.
        let writer = self.write_relaxed().await;
        Ok(dispatch!(writer.pool, |pool| {
            sqlx::query("DELETE FROM seen_request_ids WHERE seen_at < $1")
                .bind(Ts(before))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}
