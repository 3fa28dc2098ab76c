//! The local card registry and the processor events that change it: cards found by id or PAN
//! fingerprint, and each batch of events committed with its registry changes and outbox rows.

use async_trait::async_trait;
use tmp_protocol::enums::IssuerCardStatus;

use super::engine::{SqlStore, WriteTx, dispatch};
use super::rows::{self, Ts, card_columns};
use super::{CardChange, CardRecord, IngestOutcome, ProcessorEventRecord, StoreError, StoreResult};

#[async_trait]
pub trait CardStore: Send + Sync {
    /// Inserts or updates (by `card_id`) all cards in ONE transaction: all or nothing.
    /// A PAN fingerprint already used by another card id → `DuplicatePan`, nothing written.
    async fn upsert_cards(&self, cards: &[CardRecord]) -> StoreResult<u64>;
    async fn find_card_by_fingerprint(&self, fingerprint: &[u8]) -> StoreResult<Option<CardRecord>>;
    async fn find_card(&self, card_id: &str) -> StoreResult<Option<CardRecord>>;
    /// In ONE transaction: deduplicates every event by id, applies its registry change and
    /// writes its outbox row. All or nothing: a conflicting id or a PAN registered under
    /// another card id (`DuplicatePan`) writes nothing.
    async fn ingest_processor_events(&self, events: &[ProcessorEventRecord]) -> StoreResult<IngestOutcome>;
}

/// Inserts or updates one card by id; a PAN fingerprint owned by another id is `DuplicatePan`.
async fn upsert_card(tx: &mut WriteTx, card: &CardRecord) -> StoreResult<u64> {
    let owner: Option<String> = dispatch!(tx.conn(), |c| {
        sqlx::query_scalar("SELECT card_id FROM cards WHERE pan_fingerprint = $1")
            .bind(&card.pan_fingerprint)
            .fetch_optional(c)
            .await?
    });
    if owner.is_some_and(|owner| owner != card.card_id) {
        return Err(StoreError::DuplicatePan);
    }
    let written = dispatch!(tx.conn(), |c| {
        sqlx::query(
            "INSERT INTO cards \
             (card_id, pan_fingerprint, pan_ciphertext, pan_key_id, pan_last4, expiry_yymm, \
              status, cardholder_phone, cardholder_email, product_category, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (card_id) DO UPDATE SET \
              pan_fingerprint = excluded.pan_fingerprint, \
              pan_ciphertext = excluded.pan_ciphertext, \
              pan_key_id = excluded.pan_key_id, \
              pan_last4 = excluded.pan_last4, \
              expiry_yymm = excluded.expiry_yymm, \
              status = excluded.status, \
              cardholder_phone = excluded.cardholder_phone, \
              cardholder_email = excluded.cardholder_email, \
              product_category = excluded.product_category, \
              updated_at = excluded.updated_at",
        )
        .bind(&card.card_id)
        .bind(&card.pan_fingerprint)
        .bind(&card.pan_ciphertext)
        .bind(&card.pan_key_id)
        .bind(&card.pan_last4)
        .bind(&card.expiry_yymm)
        .bind(card.status.as_str())
        .bind(&card.cardholder_phone)
        .bind(&card.cardholder_email)
        .bind(&card.product_category)
        .bind(Ts(card.updated_at))
        .execute(c)
        .await
        .map_err(rows::card_write_error)?
        .rows_affected()
    });
    Ok(written)
}

async fn fetch_card(tx: &mut WriteTx, card_id: &str) -> StoreResult<Option<CardRecord>> {
    dispatch!(tx.conn(), |c| {
        Ok(sqlx::query_as(concat!("SELECT ", card_columns!(), " FROM cards WHERE card_id = $1"))
            .bind(card_id)
            .fetch_optional(c)
            .await?)
    })
}

/// Applies one processor event's change to the registry. Changes to a card the registry does
/// not hold (cards kept at the processor) touch nothing.
async fn apply_card_change(tx: &mut WriteTx, event: &ProcessorEventRecord) -> StoreResult<()> {
    let now = Ts(event.received_at);
    let card_id = &event.card_id;
    let (sql, value): (&str, Option<&str>) = match &event.change {
        CardChange::Register(card) => {
            upsert_card(tx, card).await?;
            return Ok(());
        }
        CardChange::Replace(new_card) => {
            let mut new_card = new_card.clone();
            if let Some(old) = fetch_card(tx, card_id).await? {
                new_card.cardholder_phone = new_card.cardholder_phone.or(old.cardholder_phone);
                new_card.cardholder_email = new_card.cardholder_email.or(old.cardholder_email);
                new_card.product_category = new_card.product_category.or(old.product_category);
            }
            upsert_card(tx, &new_card).await?;
            (
                "UPDATE cards SET status = $2, updated_at = $3 WHERE card_id = $1",
                Some(IssuerCardStatus::Closed.as_str()),
            )
        }
        CardChange::Status(status) => {
            ("UPDATE cards SET status = $2, updated_at = $3 WHERE card_id = $1", Some(status.as_str()))
        }
        CardChange::Expiry { expiry_yymm } => {
            ("UPDATE cards SET expiry_yymm = $2, updated_at = $3 WHERE card_id = $1", Some(expiry_yymm.as_str()))
        }
        CardChange::Contact { phone, email } => {
            dispatch!(tx.conn(), |c| {
                sqlx::query(
                    "UPDATE cards SET cardholder_phone = COALESCE($2, cardholder_phone), \
                     cardholder_email = COALESCE($3, cardholder_email), updated_at = $4 WHERE card_id = $1",
                )
                .bind(card_id)
                .bind(phone)
                .bind(email)
                .bind(now)
                .execute(c)
                .await?;
            });
            return Ok(());
        }
        CardChange::Product { product_category } => (
            "UPDATE cards SET product_category = COALESCE($2, product_category), updated_at = $3 WHERE card_id = $1",
            product_category.as_deref(),
        ),
    };
    dispatch!(tx.conn(), |c| {
        sqlx::query(sql).bind(card_id).bind(value).bind(now).execute(c).await?;
    });
    Ok(())
}

#[async_trait]
impl CardStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn upsert_cards(&self, cards: &[CardRecord]) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let mut written = 0;
        for card in cards {
            written += upsert_card(&mut tx, card).await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    #[tracing::instrument(skip_all)]
    async fn find_card_by_fingerprint(&self, fingerprint: &[u8]) -> StoreResult<Option<CardRecord>> {
        dispatch!(self.read(), |pool| {
            Ok(sqlx::query_as(concat!("SELECT ", card_columns!(), " FROM cards WHERE pan_fingerprint = $1"))
                .bind(fingerprint)
                .fetch_optional(pool)
                .await?)
        })
    }

    #[tracing::instrument(skip_all)]
    async fn find_card(&self, card_id: &str) -> StoreResult<Option<CardRecord>> {
        dispatch!(self.read(), |pool| {
            Ok(sqlx::query_as(concat!("SELECT ", card_columns!(), " FROM cards WHERE card_id = $1"))
                .bind(card_id)
                .fetch_optional(pool)
                .await?)
        })
    }

    #[tracing::instrument(skip_all)]
    async fn ingest_processor_events(&self, events: &[ProcessorEventRecord]) -> StoreResult<IngestOutcome> {
        // SQLite: the write lock up front, writers serialised, so seq order is commit order.
        // PostgreSQL: every ordering key of the batch locked, in one (sorted) order so that
        // concurrent batches sharing cards cannot deadlock.
        let mut tx = self.begin_write().await?;
        let keys: Vec<&str> =
            events.iter().filter_map(|e| e.outbox.as_ref().map(|o| o.ordering_key.as_str())).collect();
        tx.lock_ordering_keys(&keys).await?;
        let (mut accepted, mut duplicates) = (0, 0);
        for event in events {
            let inserted = dispatch!(tx.conn(), |c| {
                sqlx::query(
                    "INSERT INTO processor_events \
                     (event_id, body_hash, card_id, event_type, occurred_at, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
                )
                .bind(&event.event_id)
                .bind(&event.body_hash)
                .bind(&event.card_id)
                .bind(&event.event_type)
                .bind(Ts(event.occurred_at))
                .bind(Ts(event.received_at))
                .execute(c)
                .await?
                .rows_affected()
            }) == 1;
            if !inserted {
                let hash: Vec<u8> = dispatch!(tx.conn(), |c| {
                    sqlx::query_scalar("SELECT body_hash FROM processor_events WHERE event_id = $1")
                        .bind(&event.event_id)
                        .fetch_one(c)
                        .await?
                });
                if hash != event.body_hash {
                    tx.rollback().await?;
                    return Ok(IngestOutcome::Conflict { event_id: event.event_id.clone() });
                }
                duplicates += 1;
                continue;
            }
            if let Err(e) = apply_card_change(&mut tx, event).await {
                tx.rollback().await?;
                return Err(e);
            }
            if let Some(outbox) = &event.outbox {
                super::outbox::insert(&mut tx, outbox).await?;
            }
            accepted += 1;
        }
        tx.commit().await?;
        Ok(IngestOutcome::Committed { accepted, duplicates })
    }
}
