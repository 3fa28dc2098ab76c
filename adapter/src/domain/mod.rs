//! What the adapter decides and records, independent of HTTP.

pub mod fields;
pub mod notifications;
pub mod policy;
pub mod processor_events;
pub mod scopes;
pub mod token_events;
pub mod verification;
