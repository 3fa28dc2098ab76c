//! The adapter's outbound clients, built from its settings: one `tmp_edge::client::SignedClient`
//! per destination (TMP API, Lifecycle API — for the relay's deliveries and the ops API's TMP
//! calls) and one `HttpClient` per webhook sink. Signing, correlation and idempotency headers,
//! timeouts, answer limits, TLS (private CA, client certificate for mTLS) and the awc runtime are
//! the edge's (`tmp_edge::client`).

use std::time::Duration;

use anyhow::Context;
use tmp_edge::client::{ClientOptions, HttpClient, SignedClient};
use tmp_protocol::webhook::WebhookSecret;

use crate::config::{DestinationSettings, OutboundTlsSettings};

pub(super) fn parse_secrets(key: &str, secrets: &[String]) -> anyhow::Result<Vec<WebhookSecret>> {
    secrets.iter().map(|s| WebhookSecret::parse(s)).collect::<Result<_, _>>().with_context(|| key.to_owned())
}

/// An HTTP client toward a destination: the private CA and client certificate (mTLS) of `tls`
/// when set, `timeout` per request, answers up to 1 MiB, no redirects, and as many connections
/// as requests may run at once toward it (`connections`: for the relay, its per-destination
/// concurrency), so the pool never queues what the relay let through.
pub(super) fn http_client(
    key: &str,
    tls: &OutboundTlsSettings,
    timeout: Duration,
    connections: usize,
) -> anyhow::Result<HttpClient> {
    let options = ClientOptions { max_connections: connections, ..ClientOptions::with_timeout(timeout) };
    HttpClient::new(tls.edge(), options).with_context(|| format!("{key}.tls"))
}

/// The signed client for a configured destination (`key` names it in errors).
pub fn destination_client(
    key: &str,
    destination: &DestinationSettings,
    timeout: Duration,
    connections: usize,
) -> anyhow::Result<SignedClient> {
    Ok(SignedClient::new(
        &destination.base_url,
        parse_secrets(&format!("{key}.hmac_secrets"), &destination.hmac_secrets)?,
        http_client(key, &destination.tls, timeout, connections)?,
    ))
}
