//! The outbox's messages as types (see `message`); the store keeps them, the relay delivers them.

pub mod message;

pub use message::{
    CardEventMessage, Destination, ForwardedBody, ForwardedEvent, OutboxMessage, OutboxStatus, SealedCardData,
};
