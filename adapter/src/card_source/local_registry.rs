//! Card source backed by the adapter's own database: cards imported with `tmp-adapter import`
//! (or, later, kept current by processor events). PANs are found by their keyed fingerprint;
//! CVC2 is computed from the configured CVK pair — for development and test, production uses
//! the processor bridge or the issuer's HSM.

use std::sync::Arc;

use anyhow::anyhow;
use async_trait::async_trait;
use tmp_protocol::fields::{FreeText, Phone};
use tmp_protocol::issuer_api::{CardholderContact, VerifyCardRequest};
use tmp_protocol::sensitive::{Cvc, Expiry, Pan};

use super::{CardFacts, CardSource, CardSourceError};
use crate::crypto::at_rest::Fingerprinter;
use crate::crypto::cvc2::CvkPair;
use crate::store::{CardRecord, DynStore};

pub struct LocalRegistry {
    store: DynStore,
    fingerprinter: Arc<Fingerprinter>,
    cvk: Arc<CvkPair>,
}

impl LocalRegistry {
    pub fn new(store: DynStore, fingerprinter: Arc<Fingerprinter>, cvk: Arc<CvkPair>) -> LocalRegistry {
        LocalRegistry { store, fingerprinter, cvk }
    }
}

/// Card facts from a registry row.
pub fn facts_from_record(record: CardRecord) -> Result<CardFacts, CardSourceError> {
    let corrupt = |what: &str| CardSourceError::Unavailable(anyhow!("card {} has a corrupt {what}", record.card_id));
    let expiry = expiry_from_yymm(&record.expiry_yymm).ok_or_else(|| corrupt("expiry"))?;
    // Checked on the way in; a stored value that no longer passes is corrupt, not disclosed.
    let cardholder = CardholderContact {
        phone: record.cardholder_phone.clone().map(Phone::parse).transpose().map_err(|_| corrupt("phone"))?,
        email: record.cardholder_email.clone().map(FreeText::parse).transpose().map_err(|_| corrupt("e-mail"))?,
    };
    Ok(CardFacts {
        card_id: record.card_id,
        status: record.status,
        expiry,
        pan_last4: record.pan_last4,
        cardholder,
        product_category: record.product_category,
    })
}

fn expiry_from_yymm(yymm: &str) -> Option<Expiry> {
    if yymm.len() != 4 || !yymm.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: u16 = yymm[..2].parse().ok()?;
    let month: u8 = yymm[2..].parse().ok()?;
    Expiry::new(month, 2000 + year).ok()
}

#[async_trait]
impl CardSource for LocalRegistry {
    fn name(&self) -> &'static str {
        "local_registry"
    }

    #[tracing::instrument(skip_all)]
    async fn lookup(
        &self,
        pan: &Pan,
        _tokenization: Option<&VerifyCardRequest>,
    ) -> Result<Option<CardFacts>, CardSourceError> {
        let fingerprint = self.fingerprinter.fingerprint(pan);
        let record = self
            .store
            .find_card_by_fingerprint(&fingerprint)
            .await
            .map_err(|e| CardSourceError::Unavailable(e.into()))?;
        record.map(facts_from_record).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn check_cvc(&self, card: &CardFacts, pan: &Pan, cvc: &Cvc) -> Result<bool, CardSourceError> {
        let expected = self.cvk.cvc2(pan, &card.expiry);
        Ok(expected.ct_eq(cvc))
    }
}
