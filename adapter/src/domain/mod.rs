//! What the adapter decides and records. It speaks in domain terms — protocol types in, store
//! records and [`error::DomainError`] out — and never in HTTP: `http` parses requests into these
//! types and maps `DomainError` onto the contract's errors (`http::error`). It reads the
//! correlation id of the request it serves from `tmp_edge::correlation` (a task-local set by the
//! HTTP middleware), and uses the store and card-source traits.

pub mod error;
pub mod notifications;
pub mod policy;
pub mod processor_events;
pub mod scopes;
pub mod token_events;
pub mod verification;

use serde::Deserialize;

/// Where the issuer's cards live, and so where processor events are forwarded (`forwarding.approach`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approach {
    /// Cards live at the issuer's processor: events go to the TMP API.
    External,
    /// Cards live in Verestro DataCore: events go to the Lifecycle API.
    Datacore,
}
