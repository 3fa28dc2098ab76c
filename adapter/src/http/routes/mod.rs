//! Route table of the Issuer API and the operational endpoints.

pub mod cards;
mod doc;
pub mod notifications;
pub mod public_key;
pub mod system;
pub mod tokens;

use actix_web::web;
use serde::de::DeserializeOwned;
use tmp_protocol::issuer_api::{
    NOTIFICATIONS_PATH, PUBLIC_KEY_PATH, TOKEN_EVENTS_PATH, VERIFY_CARD_PATH, VERIFY_CVC_PATH,
};
use tmp_protocol::jwe::JweError;

use super::AppState;
use super::error::ApiError;
use super::json::parse_encrypted;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(VERIFY_CARD_PATH, web::post().to(cards::verify_card))
        .route(VERIFY_CVC_PATH, web::post().to(cards::verify_cvc))
        .route(TOKEN_EVENTS_PATH, web::post().to(tokens::token_event))
        .route(NOTIFICATIONS_PATH, web::post().to(notifications::notification))
        .route(PUBLIC_KEY_PATH, web::get().to(public_key::public_key))
        .route("/healthz", web::get().to(system::healthz))
        .route("/readyz", web::get().to(system::readyz))
        .route("/metrics", web::get().to(system::metrics))
        .route("/openapi.json", web::get().to(system::openapi));
}

/// Decrypts an `encryptedPayload` with the adapter's key ring and parses its plaintext.
pub fn decrypt<T: DeserializeOwned>(state: &AppState, compact: &str) -> Result<T, ApiError> {
    let plaintext = state.keys.jwe.decrypt(compact).map_err(|e| {
        ApiError::InvalidEncryptedPayload(
            match e {
                JweError::Malformed => "`encryptedPayload` is not a compact JWE",
                JweError::UnsupportedAlgorithm => "`encryptedPayload` must use alg RSA-OAEP-256 and enc A256GCM",
                JweError::UnknownKey => "`encryptedPayload` is encrypted to an unknown `kid`",
                _ => "`encryptedPayload` could not be decrypted",
            }
            .to_owned(),
        )
    })?;
    parse_encrypted(&plaintext)
}
