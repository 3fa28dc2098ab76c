//! The signed HTTP client of every outbound call: TMP API, Lifecycle API, the issuer's webhook
//! sinks (deliveries of the relay) and the TMP API calls of the ops API.
//!
//! Every request carries `X-Correlation-Id`, `X-Idempotency-Key` when given, and — when secrets
//! are configured — a Standard-Webhooks signature with a fresh `webhook-id`. TLS (private CA,
//! client certificate for mTLS) is [`outbound_client`]'s.

use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use serde_json::Value;
use tmp_protocol::headers::{CORRELATION_ID, IDEMPOTENCY_KEY};
use tmp_protocol::webhook::{SignatureHeaders, WebhookSecret};

use crate::config::DestinationSettings;

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The request could not be signed (not retryable).
    Sign,
    /// Timeout or connection failure: `timeout`, `connection failed` or `connection error`.
    Transport(&'static str),
}

/// A base URL with its signing secrets and HTTP client.
pub struct SignedClient {
    pub(super) base_url: String,
    pub(super) secrets: Vec<WebhookSecret>,
    pub(super) client: reqwest::Client,
}

pub(super) fn parse_secrets(key: &str, secrets: &[String]) -> anyhow::Result<Vec<WebhookSecret>> {
    secrets.iter().map(|s| WebhookSecret::parse(s)).collect::<Result<_, _>>().with_context(|| key.to_owned())
}

impl SignedClient {
    /// The client for a configured destination (`key` names it in errors).
    pub fn new(key: &str, destination: &DestinationSettings, timeout: Duration) -> anyhow::Result<SignedClient> {
        Ok(SignedClient {
            base_url: destination.base_url.trim_end_matches('/').to_owned(),
            secrets: parse_secrets(&format!("{key}.hmac_secrets"), &destination.hmac_secrets)?,
            client: outbound_client(&destination.tls, timeout).with_context(|| key.to_owned())?,
        })
    }

    /// Sends `body` to `path` under the base URL.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        idempotency_key: Option<&str>,
        correlation_id: &str,
    ) -> Result<reqwest::Response, SendError> {
        let url = format!("{}{path}", self.base_url);
        signed_request(&self.client, method, &url, body, &self.secrets, idempotency_key, correlation_id).await
    }
}

/// One signed request to `url`.
pub(super) async fn signed_request(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Vec<u8>>,
    secrets: &[WebhookSecret],
    idempotency_key: Option<&str>,
    correlation_id: &str,
) -> Result<reqwest::Response, SendError> {
    let bytes = body.unwrap_or_default();
    let mut request = client.request(method, url).header(CORRELATION_ID, correlation_id);
    if let Some(key) = idempotency_key {
        request = request.header(IDEMPOTENCY_KEY, key);
    }
    if !bytes.is_empty() {
        request = request.header(reqwest::header::CONTENT_TYPE, "application/json");
    }
    if !secrets.is_empty() {
        // A fresh webhook-id per attempt: receivers reject a replayed one.
        let headers = SignatureHeaders::sign_now(secrets, &bytes).map_err(|_| SendError::Sign)?;
        for (name, value) in headers.to_header_pairs() {
            request = request.header(name, value);
        }
    }
    request.body(bytes).send().await.map_err(|e| SendError::Transport(transport_error(&e)))
}

pub(super) fn transport_error(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "connection error"
    }
}

/// What a failed answer said: its `Retry-After` (seconds) and the contract's error code and
/// message, when the body follows the contract. The code is kept only when it looks like one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorAnswer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub code: Option<String>,
    pub message: Option<String>,
}

impl ErrorAnswer {
    /// `HTTP 409 CONFLICT` / `HTTP 503`: the status and code, never a body.
    pub fn summary(&self) -> String {
        match &self.code {
            Some(code) => format!("HTTP {} {code}", self.status),
            None => format!("HTTP {}", self.status),
        }
    }

    /// 408, 429 and 5xx: worth another try.
    pub fn is_transient(&self) -> bool {
        self.status == 408 || self.status == 429 || self.status >= 500
    }
}

/// Largest error body read.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// Reads a non-success answer.
pub async fn read_error(response: reqwest::Response) -> ErrorAnswer {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body =
        read_limited(response, ERROR_BODY_LIMIT).await.ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let code = body
        .as_ref()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
    let message = body.as_ref().and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
    ErrorAnswer { status, retry_after, code, message }
}

/// The body, refused when over `limit` bytes.
pub async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, SendError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(SendError::Transport("answer too large"));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| SendError::Transport(transport_error(&e)))? {
        if bytes.len() + chunk.len() > limit {
            return Err(SendError::Transport("answer too large"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// An HTTP client toward a relay destination: the private CA and client certificate (mTLS)
/// of `settings` when set, a per-request timeout, and no redirects.
pub(crate) fn outbound_client(
    settings: &crate::config::OutboundTlsSettings,
    timeout: Duration,
) -> anyhow::Result<reqwest::Client> {
    tmp_edge::client::http_client(settings.edge(), timeout)
}
