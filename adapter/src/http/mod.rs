//! The Issuer API over HTTP: thin handlers over the domain, one error type, one place that
//! checks size, signature, replay and content type before a handler sees a body.

pub mod body;
pub mod error;
pub mod idempotency;
pub mod middleware;
pub mod ops;
pub mod routes;

use std::sync::{Arc, PoisonError, RwLock};

use tmp_protocol::jwe::KeyRing;
use tmp_protocol::webhook::Verifier;

use crate::config::Settings;
use crate::domain::verification::CardVerifier;
use crate::keys::KeyMaterial;
use crate::metrics::Metrics;
use crate::store::DynStore;

/// What a reload (`SIGHUP`) replaces without a restart: the keys and secrets incoming requests
/// are checked with. A request takes one snapshot and uses it throughout, so it is checked by
/// one set or the other, never a mix.
pub struct Credentials {
    /// The JWE private keys (every configured `kid`, all published).
    pub jwe: Arc<KeyRing>,
    /// Present when the auth mode requires HMAC signatures.
    pub signature_verifier: Option<Verifier>,
    /// Present when `processor.hmac_secrets` is set: the processor ingest is served.
    pub processor_verifier: Option<Verifier>,
}

/// Shared state of the HTTP handlers; read-only but for [`Credentials`], which a reload swaps.
pub struct AppState {
    /// As loaded at start (a reload replaces only the [`Credentials`]).
    pub settings: Settings,
    pub store: DynStore,
    /// Data keys, fingerprint key and CVK, as loaded at start. (The JWE keys and HMAC secrets in
    /// force are in [`AppState::credentials`].)
    pub keys: Arc<KeyMaterial>,
    pub credentials: RwLock<Arc<Credentials>>,
    /// Wakes this process's relay when new outbox rows are committed.
    pub relay_wakeup: Arc<crate::relay::Wakeup>,
    pub verifier: CardVerifier,
    pub metrics: Metrics,
    /// Where requests and their outbound calls are exported as spans (`log.otlp`), when on.
    pub exporter: Option<tmp_edge::otlp::Exporter>,
    /// Private-key operations running at once: one per core. More would only make each take
    /// longer, and start a blocking thread per request waiting.
    pub private_key_slots: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// The credentials in force now.
    pub fn credentials(&self) -> Arc<Credentials> {
        self.credentials.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn replace_credentials(&self, credentials: Credentials) {
        *self.credentials.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(credentials);
    }
}
