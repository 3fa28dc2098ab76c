//! `tmp-adapter`: the issuer's daemon for Verestro TMP.
//!
//! - [`http`]: the Issuer API TMP calls (card and CVC verification, token events,
//!   notifications, public keys) and the operational endpoints;
//! - [`domain`]: the decision policy, verification with deadline and stand-in, token events
//!   and notifications;
//! - [`card_source`]: the local card registry and the processor bridge behind one trait;
//! - [`outbox`]: the typed messages queued for delivery; [`relay`]: their delivery;
//! - [`store`]: one SQL store on SQLite or PostgreSQL, behind per-aggregate traits;
//! - [`crypto`], [`keys`]: keys at rest and in transit (TLS is `tmp_edge::tls`);
//! - [`config`], [`cli`], [`startup`], [`telemetry`], [`metrics`]: running it.

pub mod card_source;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod import;
pub mod keys;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod outbound;
pub mod outbox;
pub mod relay;
pub mod startup;
pub mod store;
pub mod telemetry;
