//! What the operator's surface keeps: ops API keys (only their digests) and the audit of every
//! operator write.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::engine::{SqlStore, WriteTx, dispatch};
use super::rows::{self, ApiKeyRow, Ts, api_key_columns, ops_audit_columns};
use super::{ApiKeyRecord, IdempotencyRecord, IdempotentWrite, OpsAuditFilter, OpsAuditRecord, StoreResult};

#[async_trait]
pub trait OpsStore: Send + Sync {
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
}

async fn insert_audit(tx: &mut WriteTx, audit: &OpsAuditRecord) -> StoreResult<()> {
    dispatch!(tx.conn(), |c| {
        sqlx::query(
            "INSERT INTO ops_audit \
             (id, at, actor, action, target, card_id, reason, outcome, status, correlation_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(audit.id)
        .bind(Ts(audit.at))
        .bind(&audit.actor)
        .bind(&audit.action)
        .bind(&audit.target)
        .bind(&audit.card_id)
        .bind(&audit.reason)
        .bind(&audit.outcome)
        .bind(i32::from(audit.status))
        .bind(&audit.correlation_id)
        .execute(c)
        .await?;
    });
    Ok(())
}

#[async_trait]
impl OpsStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn create_api_key(&self, key: &ApiKeyRecord, audit: &OpsAuditRecord) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        dispatch!(tx.conn(), |c| {
            sqlx::query(
                "INSERT INTO api_keys (id, name, secret_digest, scopes, rate_limit_per_minute, created_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&key.id)
            .bind(&key.name)
            .bind(&key.secret_digest)
            .bind(rows::scopes_text(&key.scopes))
            .bind(key.rate_limit_per_minute.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
            .bind(Ts(key.created_at))
            .bind(key.revoked_at.map(Ts))
            .execute(c)
            .await?;
        });
        insert_audit(&mut tx, audit).await?;
        tx.commit().await
    }

    #[tracing::instrument(skip_all)]
    async fn find_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let row = dispatch!(self.read(), |pool| {
            sqlx::query_as::<_, ApiKeyRow>(concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.map(ApiKeyRecord::try_from).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        let rows = dispatch!(self.read(), |pool| {
            sqlx::query_as::<_, ApiKeyRow>(concat!(
                "SELECT ",
                api_key_columns!(),
                " FROM api_keys ORDER BY created_at, id"
            ))
            .fetch_all(pool)
            .await?
        });
        rows::convert_all(rows)
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_api_key(&self, id: &str, at: OffsetDateTime, audit: &OpsAuditRecord) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let revoked = dispatch!(tx.conn(), |c| {
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(Ts(at))
                .bind(id)
                .execute(c)
                .await?
                .rows_affected()
        });
        if revoked == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all)]
    async fn record_ops_audit(
        &self,
        audit: &OpsAuditRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> StoreResult<IdempotentWrite> {
        let mut tx = match self.begin_claiming(idempotency).await? {
            Ok(tx) => tx,
            Err(existing) => return Ok(IdempotentWrite::AlreadyExists(existing)),
        };
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(IdempotentWrite::Committed)
    }

    #[tracing::instrument(skip_all)]
    async fn list_ops_audit(&self, filter: &OpsAuditFilter) -> StoreResult<Vec<OpsAuditRecord>> {
        let rows = dispatch!(self.read(), |pool| {
            sqlx::query_as::<_, OpsAuditRecord>(concat!(
                "SELECT ",
                ops_audit_columns!(),
                " FROM ops_audit WHERE (CAST($1 AS TEXT) IS NULL OR card_id = $1) ORDER BY at DESC, id DESC LIMIT $2"
            ))
            .bind(&filter.card_id)
            .bind(i64::from(filter.limit))
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}
