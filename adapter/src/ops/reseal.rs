//! `keys reseal`: moves every sealed value (card PANs, activation codes still held, the card
//! data of outbox rows) to the active data key, so that an old key can leave `keys.data_keys`.
//!
//! In pages of `batch` values, each page re-sealed in memory and written in one durable
//! transaction. A value is replaced only while it is still under the key it was read with, so
//! the adapter may keep serving (and erasing or sealing values) meanwhile; an interrupted run
//! loses nothing and a second run carries on with what is left (it selects by key, not by a
//! saved position). Every replica must already have the active key in its ring (a reload or a
//! restart) before the run: otherwise a replica that lacks it cannot open what was moved, and
//! retries those deliveries until it has it.

use crate::crypto::aad;
use crate::crypto::at_rest::{AtRestError, DataKeyRing};
use crate::store::{SealedKind, SealedStore, SealedValue};

use super::OpsError;

/// Where a run stands, after each page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub kind: SealedKind,
    /// Values of `kind` moved so far.
    pub moved: u64,
    /// Values of `kind` not under the active key when the run reached it (a value sealed or
    /// erased meanwhile can make `moved` end below or above it).
    pub total: u64,
}

/// What a run did, per kind: `(kind, moved)`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResealReport {
    pub moved: Vec<(SealedKind, u64)>,
}

impl ResealReport {
    pub fn total(&self) -> u64 {
        self.moved.iter().map(|(_, n)| n).sum()
    }
}

/// Re-seals under `ring`'s active key everything sealed under another of its keys.
#[tracing::instrument(skip_all)]
pub async fn reseal(
    store: &dyn SealedStore,
    ring: &DataKeyRing,
    batch: u32,
    mut progress: impl FnMut(Progress),
) -> Result<ResealReport, OpsError> {
    if batch == 0 {
        return Err(OpsError::Invalid("the batch size must be at least 1".into()));
    }
    let active = ring.active_key_id().to_owned();
    let mut report = ResealReport::default();
    for kind in SealedKind::ALL {
        let total = store.count_sealed_elsewhere(kind, &active).await?;
        let mut moved = 0;
        progress(Progress { kind, moved, total });
        let mut after: Option<String> = None;
        loop {
            let page = store.sealed_elsewhere(kind, &active, after.as_deref(), batch).await?;
            if page.values.is_empty() {
                break;
            }
            let mut resealed = Vec::with_capacity(page.values.len());
            for value in page.values {
                let aad = binding(&value)?;
                let plaintext = ring.decrypt(&value.key_id, &value.bytes, &aad).map_err(|e| cannot_open(&value, e))?;
                let sealed = ring.encrypt(&plaintext, &aad);
                resealed.push((value, sealed.key_id, sealed.bytes));
            }
            moved += store.replace_sealed(&resealed).await?;
            progress(Progress { kind, moved, total });
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        tracing::info!(kind = kind.as_str(), moved, active_key = %active, "re-sealed under the active data key");
        report.moved.push((kind, moved));
    }
    Ok(report)
}

/// The associated data the value was sealed with (`crypto::aad`).
fn binding(value: &SealedValue) -> Result<Vec<u8>, OpsError> {
    Ok(match value.kind {
        SealedKind::CardPan => aad::card_pan(&value.id),
        SealedKind::ActivationCode => aad::otp(&value.id),
        SealedKind::OutboxCardData => {
            let id =
                value.id.parse().map_err(|_| OpsError::Invalid(format!("outbox id {} is not a UUID", value.id)))?;
            aad::outbox_row(&id)
        }
    })
}

fn cannot_open(value: &SealedValue, error: AtRestError) -> OpsError {
    let what = format!("{} {}", value.kind.as_str(), value.id);
    match error {
        AtRestError::UnknownKeyId => OpsError::Conflict(format!(
            "{what} is sealed under data key `{}`, which is not in keys.data_keys.files: add it back, then run again",
            value.key_id
        )),
        _ => OpsError::Conflict(format!(
            "{what} does not open under data key `{}` (wrong key file, or the value was tampered with); \
             the run stopped there, what came before it is moved",
            value.key_id
        )),
    }
}
