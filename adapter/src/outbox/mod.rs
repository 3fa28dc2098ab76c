//! The outbox's messages as types (see `message`); the store keeps them, the relay delivers them.

pub mod message;

pub use message::{
    CardEventMessage, Destination, ForwardedBody, ForwardedEvent, OutboxMessage, OutboxStatus, SealedCardData,
};

/// The `lastError` of a row no sink takes (`sinks` names none for its event type). Such a row is
/// dead but not a dead letter: the gauges and the alerts leave it out, the listings show it.
pub const NO_SINK: &str = "no sink configured: nothing sent";
