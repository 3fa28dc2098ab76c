//! Route table of the Issuer API and the operational endpoints.

pub mod cards;
mod doc;
pub mod notifications;
pub mod processor;
pub mod public_key;
pub mod system;
pub mod tokens;

use actix_web::middleware::from_fn;
use actix_web::web;
use serde::de::DeserializeOwned;
use tmp_protocol::issuer_api::{
    NOTIFICATIONS_PATH, PUBLIC_KEY_PATH, TOKEN_EVENTS_PATH, VERIFY_CARD_PATH, VERIFY_CVC_PATH,
};
use tmp_protocol::jwe::JweError;

use super::AppState;
use tmp_edge::error::{ApiError, resource};
use tmp_edge::json::parse_encrypted;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Every call of TMP and of the processor is answered within `server.request_timeout_ms`
    // (the budget is a resource middleware: only a routed request can be answered in its place).
    let budget = || from_fn(super::middleware::time_budget);
    // A known path with the wrong method answers 405 with the contract's body, not 404.
    cfg.service(resource(VERIFY_CARD_PATH, "POST", cards::verify_card).wrap(budget()))
        .service(resource(VERIFY_CVC_PATH, "POST", cards::verify_cvc).wrap(budget()))
        .service(resource(TOKEN_EVENTS_PATH, "POST", tokens::token_event).wrap(budget()))
        .service(resource(NOTIFICATIONS_PATH, "POST", notifications::notification).wrap(budget()))
        .service(resource(PUBLIC_KEY_PATH, "GET", public_key::public_key).wrap(budget()))
        .service(resource(tmp_protocol::processor::EVENTS_PATH, "POST", processor::events).wrap(budget()))
        .service(resource("/", "GET", system::index))
        .service(resource("/healthz", "GET", system::healthz))
        .service(resource("/readyz", "GET", system::readyz))
        .service(resource("/metrics", "GET", system::metrics))
        .service(resource("/openapi.json", "GET", system::openapi));
}

/// Decrypts a JWE sent to the adapter's key and parses what it holds. The RSA private-key
/// operation (milliseconds of CPU) runs on the runtime's blocking pool, not on the HTTP worker
/// thread: a worker busy with it could not read, answer or time out its other connections.
pub async fn decrypt<T: DeserializeOwned + Send + 'static>(state: &AppState, compact: &str) -> Result<T, ApiError> {
    let keys = state.credentials().jwe.clone();
    let compact = compact.to_owned();
    let _slot = state.private_key_slots.acquire().await.map_err(|e| ApiError::Internal(e.into()))?;
    tokio::task::spawn_blocking(move || decrypt_now(&keys, &compact))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("the decryption task failed: {e}")))?
}

fn decrypt_now<T: DeserializeOwned>(keys: &tmp_protocol::jwe::KeyRing, compact: &str) -> Result<T, ApiError> {
    let plaintext = keys.decrypt(compact).map_err(|e| {
        ApiError::InvalidEncryptedPayload(match e {
            JweError::Malformed => "`encryptedPayload` is not a compact JWE".to_owned(),
            // Each names the header member at fault and quotes nothing the sender sent.
            JweError::UnsupportedAlgorithm
            | JweError::UnsupportedEncryption
            | JweError::UnsupportedHeader(_)
            | JweError::MissingKeyId => format!("`encryptedPayload`: {e}"),
            JweError::UnknownKey => "`encryptedPayload` is encrypted to an unknown `kid`".to_owned(),
            _ => "`encryptedPayload` could not be decrypted".to_owned(),
        })
    })?;
    parse_encrypted(&plaintext)
}
