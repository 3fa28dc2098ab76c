//! The Issuer API over HTTP: thin handlers over the domain, one error type, one place that
//! checks size, signature, replay and content type before a handler sees a body.

pub mod body;
pub mod error;
pub mod idempotency;
pub mod middleware;
pub mod ops;
pub mod routes;

use std::sync::Arc;

use tmp_protocol::webhook::Verifier;

use crate::config::Settings;
use crate::domain::verification::CardVerifier;
use crate::keys::KeyMaterial;
use crate::metrics::Metrics;
use crate::store::DynStore;

/// Shared, read-only state of the HTTP handlers.
pub struct AppState {
    pub settings: Settings,
    pub store: DynStore,
    pub keys: Arc<KeyMaterial>,
    /// Present when the auth mode requires HMAC signatures.
    pub signature_verifier: Option<Verifier>,
    /// Present when `processor.hmac_secrets` is set: the processor ingest is served.
    pub processor_verifier: Option<Verifier>,
    /// Wakes this process's relay when new outbox rows are committed.
    pub relay_wakeup: Arc<tokio::sync::Notify>,
    pub verifier: CardVerifier,
    pub metrics: Metrics,
    /// Private-key operations running at once: one per core. More would only make each take
    /// longer, and start a blocking thread per request waiting.
    pub private_key_slots: Arc<tokio::sync::Semaphore>,
}
