//! User notifications from TMP: stored with their outbox row (an OTP only sealed), and the OTP
//! erased once delivered or expired.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::engine::{SqlStore, dispatch};
use super::rows::{Ts, notification_columns};
use super::{IdempotencyRecord, IdempotentWrite, NotificationRecord, OutboxRecord, StoreResult};

#[async_trait]
pub trait NotificationStore: Send + Sync {
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
    /// Erases a notification's OTP ciphertext (once delivered).
    async fn erase_otp(&self, notification_id: &str) -> StoreResult<()>;
}

#[async_trait]
impl NotificationStore for SqlStore {
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
        let new_notification = dispatch!(tx.conn(), |c| {
            sqlx::query(
                "INSERT INTO notifications \
                 (notification_id, notification_type, card_id, token_id, token_requestor_id, \
                  channel, otp_ciphertext, otp_key_id, expires_at, occurred_at, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
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
            .bind(notification.expires_at.map(Ts))
            .bind(Ts(notification.occurred_at))
            .bind(Ts(notification.received_at))
            .execute(c)
            .await?
            .rows_affected()
        }) == 1;
        // A notification already stored was already queued: don't deliver it twice.
        if new_notification {
            super::outbox::insert(&mut tx, outbox).await?;
        }
        tx.commit().await?;
        Ok(IdempotentWrite::Committed)
    }

    #[tracing::instrument(skip_all)]
    async fn find_notification(&self, notification_id: &str) -> StoreResult<Option<NotificationRecord>> {
        let row = dispatch!(self.read(), |pool| {
            sqlx::query_as::<_, NotificationRecord>(concat!(
                "SELECT ",
                notification_columns!(),
                " FROM notifications WHERE notification_id = $1"
            ))
            .bind(notification_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row)
    }

    #[tracing::instrument(skip_all)]
    async fn erase_expired_otps(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let writer = self.write().await;
        let erased = dispatch!(writer.pool, |pool| {
            sqlx::query(
                "UPDATE notifications SET otp_ciphertext = NULL, otp_key_id = NULL \
                 WHERE otp_ciphertext IS NOT NULL AND expires_at < $1",
            )
            .bind(Ts(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        writer.durable().await?;
        Ok(erased)
    }

    #[tracing::instrument(skip_all)]
    async fn erase_otp(&self, notification_id: &str) -> StoreResult<()> {
        let writer = self.write().await;
        dispatch!(writer.pool, |pool| {
            sqlx::query("UPDATE notifications SET otp_ciphertext = NULL, otp_key_id = NULL WHERE notification_id = $1")
                .bind(notification_id)
                .execute(pool)
                .await?;
        });
        writer.durable().await?;
        Ok(())
    }
}
