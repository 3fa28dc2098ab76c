//! CVC attempt counting: failures per card inside a lockout window, an attempt reserved before
//! the CVC is checked, the counter cleared by a match.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;
use super::engine::{SqlStore, dispatch};
use super::rows::{self, Ts};

/// **Durability**: both writes are *relaxed* (see [`super::Store`]): committed — so the next
/// attempt counts them at once — without waiting for a flush. The CVC's result is answered only
/// after a flush that began after them: the request's decision record's, or, for a replayed
/// answer, the one [`super::IdempotencyStore::find_idempotency`] waits for (one WAL, in order).
/// A request that fails before its decision record answers no result, and then a reservation
/// lost to a power cut has revealed nothing.
#[async_trait]
pub trait CvcAttempts: Send + Sync {
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
}

#[async_trait]
impl CvcAttempts for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn cvc_failures(&self, card_id: &str, now: OffsetDateTime, window: time::Duration) -> StoreResult<u32> {
        let failures: Option<i32> = dispatch!(self.read(), |pool| {
            sqlx::query_scalar("SELECT failures FROM cvc_attempts WHERE card_id = $1 AND window_started_at > $2")
                .bind(card_id)
                .bind(Ts(rows::window_cutoff(now, window)))
                .fetch_optional(pool)
                .await?
        });
        rows::count_u32(failures.unwrap_or(0).into(), "CVC failures")
    }

    #[tracing::instrument(skip_all)]
    async fn reserve_cvc_attempt(
        &self,
        card_id: &str,
        now: OffsetDateTime,
        window: time::Duration,
        max_attempts: u32,
    ) -> StoreResult<Option<u32>> {
        // One statement: SQLite runs it under its single write lock, PostgreSQL's upsert locks
        // the row, so concurrent attempts serialise and at most `max_attempts` of them get a
        // reservation inside one window. Relaxed (see `CvcAttempts`): the check's result is
        // answered only after the decision record's flush, which covers this commit.
        let writer = self.write_relaxed().await;
        let failures: Option<i32> = dispatch!(writer.pool, |pool| {
            sqlx::query_scalar(
                "INSERT INTO cvc_attempts (card_id, failures, window_started_at) VALUES ($1, 1, $2) \
                 ON CONFLICT (card_id) DO UPDATE SET \
                  failures = CASE WHEN cvc_attempts.window_started_at <= $3 THEN 1 \
                                  ELSE cvc_attempts.failures + 1 END, \
                  window_started_at = CASE WHEN cvc_attempts.window_started_at <= $3 \
                                           THEN excluded.window_started_at \
                                           ELSE cvc_attempts.window_started_at END \
                 WHERE cvc_attempts.window_started_at <= $3 OR cvc_attempts.failures < $4 \
                 RETURNING failures",
            )
            .bind(card_id)
            .bind(Ts(now))
            .bind(Ts(rows::window_cutoff(now, window)))
            .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
            .fetch_optional(pool)
            .await?
        });
        drop(writer);
        failures.map(|f| rows::count_u32(f.into(), "CVC failures")).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn clear_cvc_failures(&self, card_id: &str) -> StoreResult<()> {
        // Relaxed (see `CvcAttempts`): lost to a power cut, the failures stay counted.
        let writer = self.write_relaxed().await;
        dispatch!(writer.pool, |pool| {
            sqlx::query("DELETE FROM cvc_attempts WHERE card_id = $1").bind(card_id).execute(pool).await?;
        });
        Ok(())
    }
}
