//! `tmp-edge`: what every server and client of the kit shares at the HTTP edge, so that the
//! adapter and mock-tmp answer, authenticate and trace requests the same way:
//!
//! - [`tls`]: the one rustls crypto provider, server (m)TLS configs, client configs with a
//!   private CA and client certificate, a certificate's subject name;
//! - [`client`]: every outbound HTTP client (trust, client certificate, timeout, no redirects);
//! - [`correlation`]: the `X-Correlation-Id` of the request being served (task-local);
//! - [`error`]: the contract's error codes as one error type, and the one place it becomes the
//!   contract's JSON error body;
//! - [`json`]: request-body parsing with value-free errors;
//! - [`limits`]: the process's open-file limit, raised to what the system allows;
//! - [`log_budget`]: at most so many lines a second of each kind a peer can cause at will;
//! - [`peers`]: at most so many connections per peer on a listener;
//! - [`index`]: what `GET /` answers on every listener: which service this is and where to go;
//! - [`admit`]: body admission — size and read time, client certificate, Standard-Webhooks
//!   signature, replayed ids (through a [`admit::ReplayGuard`] the server implements), content
//!   type — and the `X-Idempotency-Key` header.
//!
//! - [`cli_docs`]: shell completions and man pages, generated from a binary's command line.
//!
//! It depends on `tmp-protocol` only; nothing here knows the adapter or the mock.

pub mod admit;
pub mod cli_docs;
pub mod client;
pub mod correlation;
pub mod error;
pub mod index;
pub mod json;
pub mod limits;
pub mod log_budget;
pub mod otlp;
pub mod peers;
pub mod tls;
