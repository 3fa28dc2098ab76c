//! `mock-tmp`: a stateful stand-in for Verestro TMP and DataCore that drives the issuer like
//! the real platform.
//!
//! - [`api`]: the TMP API and Lifecycle API exactly as `tmp_protocol` defines them (HMAC /
//!   mTLS, JWE, idempotency, contract errors) and the `/_mock/v1` control plane;
//! - [`state`]: cards, tokens, tokenizations; [`state::rules`] is the automated token lifecycle;
//! - [`simulator`]: tokenizations (green / yellow / red, manual and push), OTP entry, removal;
//! - [`sender`]: callbacks to the issuer with retries, duplicates, delays and reordering;
//! - [`faults`], [`journal`], [`keys`]: fault injection, the request journal, JWK rotation;
//! - [`config`], [`startup`], [`cli`]: running it.

pub mod api;
pub mod cli;
pub mod config;
pub mod context;
pub mod faults;
pub mod journal;
pub mod keys;
pub mod sender;
pub mod simulator;
pub mod startup;
pub mod state;

pub use config::MockConfig;
pub use startup::{MockHandle, start, start_on};
