//! The adapter's one integration-test binary: real HTTP over sockets, real TLS, real JWE,
//! SQLite always and PostgreSQL when `TEST_DATABASE_URL` is set (always in CI).

mod bad_input;
mod cli;
mod deployment;
mod forwarding;
mod forwarding_scale;
mod helpers;
mod monitoring;
mod notifications;
mod ops;
mod ops_keys;
mod outbox_rows;
mod rotation;
mod security;
mod stalls;
mod store;
mod token_events;
mod verify_card;
mod verify_cvc;
