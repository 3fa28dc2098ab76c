//! Values sealed under data keys — card PANs, activation codes, the card data of outbox rows —
//! seen by the key that sealed them: whether a key still seals anything (a reload refuses to
//! drop one that does), and moving them to the active key (`tmp-adapter keys reseal`).

use async_trait::async_trait;

use super::StoreResult;
use super::engine::{SqlStore, dispatch};
use crate::outbox::SealedCardData;

/// Where sealed values live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedKind {
    /// `cards.pan_ciphertext`, bound to the card's id.
    CardPan,
    /// `notifications.otp_ciphertext`, bound to the notification's id (erased once delivered).
    ActivationCode,
    /// The `sealed` member of an outbox row's payload, bound to the row's id.
    OutboxCardData,
}

impl SealedKind {
    pub const ALL: [SealedKind; 3] = [SealedKind::CardPan, SealedKind::ActivationCode, SealedKind::OutboxCardData];

    /// For progress and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            SealedKind::CardPan => "card PANs",
            SealedKind::ActivationCode => "activation codes",
            SealedKind::OutboxCardData => "outbox card data",
        }
    }
}

/// One sealed value as read: where it is, the key that sealed it, and the sealed bytes
/// (`nonce || ciphertext || tag`).
#[derive(Debug, Clone)]
pub struct SealedValue {
    pub kind: SealedKind,
    /// The card id, the notification id, or the outbox row's UUID.
    pub id: String,
    pub key_id: String,
    pub bytes: Vec<u8>,
}

/// The statements of one kind. Each kind has its own literal SQL (no identifiers spliced in);
/// the same text runs on both engines.
struct Statements {
    in_use: &'static str,
    count_elsewhere: &'static str,
    /// `$1` the active key id, `$2` the id the page starts after, `$3` the page size.
    page_elsewhere: &'static str,
    /// `$1` the new key id, `$2` the new bytes, `$3` the id, `$4` the key id it was read with
    /// (the outbox's card data is rewritten inside its payload: see `replace_sealed`).
    replace: &'static str,
}

fn statements(kind: SealedKind) -> Statements {
    match kind {
        SealedKind::CardPan => Statements {
            in_use: "SELECT COUNT(*) FROM (SELECT 1 FROM cards WHERE pan_key_id = $1 LIMIT 1) AS used",
            count_elsewhere: "SELECT COUNT(*) FROM cards WHERE pan_key_id <> $1",
            page_elsewhere: "SELECT card_id, pan_key_id, pan_ciphertext FROM cards \
                             WHERE pan_key_id <> $1 AND card_id > $2 ORDER BY card_id LIMIT $3",
            replace: "UPDATE cards SET pan_key_id = $1, pan_ciphertext = $2 WHERE card_id = $3 AND pan_key_id = $4",
        },
        SealedKind::ActivationCode => Statements {
            in_use: "SELECT COUNT(*) FROM (SELECT 1 FROM notifications WHERE otp_key_id = $1 LIMIT 1) AS used",
            count_elsewhere: "SELECT COUNT(*) FROM notifications WHERE otp_key_id IS NOT NULL AND otp_key_id <> $1",
            page_elsewhere: "SELECT notification_id, otp_key_id, otp_ciphertext FROM notifications \
                             WHERE otp_key_id IS NOT NULL AND otp_ciphertext IS NOT NULL AND otp_key_id <> $1 \
                             AND notification_id > $2 ORDER BY notification_id LIMIT $3",
            replace: "UPDATE notifications SET otp_key_id = $1, otp_ciphertext = $2 \
                      WHERE notification_id = $3 AND otp_key_id = $4",
        },
        SealedKind::OutboxCardData => Statements {
            in_use: "SELECT COUNT(*) FROM (SELECT 1 FROM outbox WHERE sealed_key_id = $1 LIMIT 1) AS used",
            count_elsewhere: "SELECT COUNT(*) FROM outbox WHERE sealed_key_id IS NOT NULL AND sealed_key_id <> $1",
            // Paged by `seq`, the row's insertion order (its UUID is random): `$2` is a number.
            page_elsewhere: "SELECT CAST(seq AS TEXT), id, payload FROM outbox \
                             WHERE sealed_key_id IS NOT NULL AND sealed_key_id <> $1 AND seq > $2 \
                             ORDER BY seq LIMIT $3",
            replace: "UPDATE outbox SET payload = $1, sealed_key_id = $2 WHERE id = $3 AND sealed_key_id = $4",
        },
    }
}

/// A page of values not under the active key, and where the next page starts.
pub struct SealedPage {
    pub values: Vec<SealedValue>,
    /// Pass to the next call; `None` when this page was the last.
    pub next: Option<String>,
}

#[async_trait]
pub trait SealedStore: Send + Sync {
    /// Whether anything of `kind` is still sealed under `key_id` (one index probe).
    async fn data_key_in_use(&self, kind: SealedKind, key_id: &str) -> StoreResult<bool>;
    /// How many values of `kind` are sealed under another key than `active`.
    async fn count_sealed_elsewhere(&self, kind: SealedKind, active: &str) -> StoreResult<u64>;
    /// Up to `limit` values of `kind` sealed under another key than `active`, in a stable order,
    /// from where the previous page ended (`after`, `None` for the first).
    async fn sealed_elsewhere(
        &self,
        kind: SealedKind,
        active: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<SealedPage>;
    /// Writes re-sealed values (`(the value as read, its new key id and bytes)`) in one durable
    /// transaction. Each is replaced only while still sealed under the key it was read with, so
    /// a value erased or replaced meanwhile is left as it is. Returns how many were replaced.
    async fn replace_sealed(&self, values: &[(SealedValue, String, Vec<u8>)]) -> StoreResult<u64>;
}

#[async_trait]
impl SealedStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn data_key_in_use(&self, kind: SealedKind, key_id: &str) -> StoreResult<bool> {
        let sql = statements(kind).in_use;
        let count: i64 = dispatch!(self.read(), |pool| sqlx::query_scalar(sql).bind(key_id).fetch_one(pool).await?);
        Ok(count > 0)
    }

    #[tracing::instrument(skip_all)]
    async fn count_sealed_elsewhere(&self, kind: SealedKind, active: &str) -> StoreResult<u64> {
        let sql = statements(kind).count_elsewhere;
        let count: i64 = dispatch!(self.read(), |pool| sqlx::query_scalar(sql).bind(active).fetch_one(pool).await?);
        Ok(u64::try_from(count).unwrap_or(0))
    }

    #[tracing::instrument(skip_all)]
    async fn sealed_elsewhere(
        &self,
        kind: SealedKind,
        active: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<SealedPage> {
        let sql = statements(kind).page_elsewhere;
        // Each value with the position the next page starts after: the id itself, or an outbox
        // row's `seq` (its UUID is random, its insertion order is not).
        let page: Vec<(String, SealedValue)> = match kind {
            SealedKind::CardPan | SealedKind::ActivationCode => {
                let rows: Vec<(String, String, Vec<u8>)> = dispatch!(self.read(), |pool| {
                    sqlx::query_as(sql)
                        .bind(active)
                        .bind(after.unwrap_or(""))
                        .bind(i64::from(limit))
                        .fetch_all(pool)
                        .await?
                });
                rows.into_iter()
                    .map(|(id, key_id, bytes)| (id.clone(), SealedValue { kind, id, key_id, bytes }))
                    .collect()
            }
            SealedKind::OutboxCardData => {
                let after: i64 = after.and_then(|a| a.parse().ok()).unwrap_or(0);
                let rows: Vec<(String, uuid::Uuid, sqlx::types::Json<serde_json::Value>)> =
                    dispatch!(self.read(), |pool| {
                        sqlx::query_as(sql).bind(active).bind(after).bind(i64::from(limit)).fetch_all(pool).await?
                    });
                rows.into_iter()
                    .map(|(seq, id, payload)| {
                        let sealed = payload.0.get("sealed").cloned().map(serde_json::from_value::<SealedCardData>);
                        let Some(Ok(sealed)) = sealed else {
                            return Err(super::StoreError::Corrupt(format!(
                                "outbox row {id} has a sealed_key_id but no sealed card data"
                            )));
                        };
                        Ok((seq, SealedValue { kind, id: id.to_string(), key_id: sealed.key_id, bytes: sealed.data }))
                    })
                    .collect::<StoreResult<_>>()?
            }
        };
        let next = if page.len() == limit as usize { page.last().map(|(position, _)| position.clone()) } else { None };
        Ok(SealedPage { values: page.into_iter().map(|(_, value)| value).collect(), next })
    }

    #[tracing::instrument(skip_all)]
    async fn replace_sealed(&self, values: &[(SealedValue, String, Vec<u8>)]) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let mut replaced = 0;
        for (old, key_id, bytes) in values {
            replaced += match old.kind {
                SealedKind::CardPan | SealedKind::ActivationCode => dispatch!(tx.conn(), |c| {
                    sqlx::query(statements(old.kind).replace)
                        .bind(key_id)
                        .bind(bytes)
                        .bind(&old.id)
                        .bind(&old.key_id)
                        .execute(c)
                        .await?
                        .rows_affected()
                }),
                SealedKind::OutboxCardData => {
                    let id: uuid::Uuid = old
                        .id
                        .parse()
                        .map_err(|_| super::StoreError::Corrupt(format!("outbox id {} is not a UUID", old.id)))?;
                    let sealed = SealedCardData { key_id: key_id.clone(), data: bytes.clone() };
                    let sealed =
                        serde_json::to_value(&sealed).map_err(|e| super::StoreError::Corrupt(e.to_string()))?;
                    // Read again in the transaction, under the same guard: only the `sealed`
                    // member is replaced (nothing else ever rewrites a payload).
                    let payload: Option<sqlx::types::Json<serde_json::Value>> = dispatch!(tx.conn(), |c| {
                        sqlx::query_scalar("SELECT payload FROM outbox WHERE id = $1 AND sealed_key_id = $2")
                            .bind(id)
                            .bind(&old.key_id)
                            .fetch_optional(c)
                            .await?
                    });
                    let Some(sqlx::types::Json(mut payload)) = payload else {
                        continue;
                    };
                    payload["sealed"] = sealed;
                    dispatch!(tx.conn(), |c| {
                        sqlx::query(
                            "UPDATE outbox SET payload = $1, sealed_key_id = $2 WHERE id = $3 AND sealed_key_id = $4",
                        )
                        .bind(sqlx::types::Json(&payload))
                        .bind(key_id)
                        .bind(id)
                        .bind(&old.key_id)
                        .execute(c)
                        .await?
                        .rows_affected()
                    })
                }
            };
        }
        tx.commit().await?;
        Ok(replaced)
    }
}
