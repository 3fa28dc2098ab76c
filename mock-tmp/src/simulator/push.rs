//! Push provisioning: what `sign` encrypts to the test wallet key, and what the simulated
//! wallet hands back to start a push tokenization.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tmp_protocol::enums::Wallet;
use tmp_protocol::sensitive::{Expiry, Pan};

/// Plaintext of the push payload (JWE to the mock's wallet key). Single use: its nonce is
/// remembered once a wallet has presented it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushPayload {
    pub card_id: String,
    pub pan: Pan,
    pub expiry: Expiry,
    pub wallet: Wallet,
    pub nonce: String,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
}

impl PushPayload {
    pub fn new(card_id: &str, pan: Pan, expiry: Expiry, wallet: Wallet) -> PushPayload {
        PushPayload {
            card_id: card_id.to_owned(),
            pan,
            expiry,
            wallet,
            nonce: uuid::Uuid::new_v4().simple().to_string(),
            issued_at: OffsetDateTime::now_utc(),
        }
    }
}
