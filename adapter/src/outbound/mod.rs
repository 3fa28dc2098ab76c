//! The adapter's calls to other systems, one typed client per remote API: [`TmpApiClient`]
//! (the relay's card-lifecycle forwarding and the ops API's token and provisioning calls),
//! [`LifecycleApiClient`] (DataCore), and [`ApiClient`] underneath them and for the webhook sinks,
//! which answers every call as data or as a [`CallError`]. Built from the settings here; signing,
//! correlation and idempotency headers, timeouts, answer limits, TLS (private CA, client
//! certificate for mTLS) and the awc runtime are the edge's (`tmp_edge::client`).

mod lifecycle_api;
mod tmp_api;

pub use lifecycle_api::LifecycleApiClient;
pub use tmp_api::TmpApiClient;

use std::time::Duration;

use actix_web::http::Method;
use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tmp_edge::client::{ClientOptions, ErrorAnswer, HttpClient, SendError, SignedClient};
use tmp_protocol::jwk::JwkSet;

use crate::config::{DestinationSettings, OutboundTlsSettings};

/// An HTTP client toward a destination: the private CA and client certificate (mTLS) of `tls`
/// when set, `timeout` per request, answers up to 1 MiB, no redirects, and as many connections
/// as requests may run at once toward it (`connections`: for the relay, its per-destination
/// concurrency), so the pool never queues what the relay let through.
pub fn http_client(
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
        destination.hmac_secrets.clone(),
        http_client(key, &destination.tls, timeout, connections)?,
    ))
}

/// A remote API that card data is encrypted to: it publishes its keys at its own path.
pub trait EncryptingApi {
    /// Where its JWK set is served.
    const PUBLIC_KEY_PATH: &'static str;
    fn api(&self) -> &ApiClient;
}

impl EncryptingApi for TmpApiClient {
    const PUBLIC_KEY_PATH: &'static str = tmp_protocol::tmp_api::PUBLIC_KEY_PATH;
    fn api(&self) -> &ApiClient {
        &self.api
    }
}

impl EncryptingApi for LifecycleApiClient {
    const PUBLIC_KEY_PATH: &'static str = tmp_protocol::lifecycle_api::PUBLIC_KEY_PATH;
    fn api(&self) -> &ApiClient {
        &self.api
    }
}

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Unreachable, timed out, 408, 429 or 5xx: try again later (`retry_after` when the other
    /// side said).
    Unavailable { cause: String, retry_after: Option<Duration> },
    /// Any other non-success answer (404 unknown card or token, 409 state, 422, …).
    Refused(ErrorAnswer),
    /// A request we could not make (a body that does not serialize, a header we cannot sign), or
    /// a success whose body does not follow the contract.
    BadAnswer(String),
}

impl CallError {
    /// 422 `INVALID_ENCRYPTED_PAYLOAD`: the receiver no longer takes the key we encrypted to.
    pub fn is_key_rejected(&self) -> bool {
        matches!(self, CallError::Refused(a) if a.status == 422 && a.code.as_deref() == Some("INVALID_ENCRYPTED_PAYLOAD"))
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unavailable { cause, .. } => write!(f, "unavailable: {cause}"),
            CallError::Refused(answer) => write!(f, "refused: {}", answer.summary()),
            CallError::BadAnswer(what) => write!(f, "outside the contract: {what}"),
        }
    }
}

impl std::error::Error for CallError {}

/// A signed client whose calls answer as data or as a [`CallError`]. Error texts hold the
/// status and the contract's error code only: a body may echo data and never reaches a log.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub http: SignedClient,
}

impl ApiClient {
    /// A JSON call whose answer is `R`.
    pub async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        idempotency_key: Option<&str>,
        correlation_id: &str,
    ) -> Result<R, CallError> {
        let response = self.exchange(method, path, body, idempotency_key, correlation_id, false).await?;
        response.json().map_err(|_| CallError::BadAnswer(format!("{path}: not the expected JSON")))
    }

    /// A call whose success says all: the body of a 2xx is not read.
    pub async fn call_for_status<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        idempotency_key: Option<&str>,
        correlation_id: &str,
    ) -> Result<(), CallError> {
        self.exchange(method, path, body, idempotency_key, correlation_id, true).await.map(drop)
    }

    /// The receiver's encryption keys (`GET` of its public-key path, unsigned).
    pub async fn public_keys(&self, path: &str) -> Result<JwkSet, CallError> {
        let unavailable = |cause: &str| CallError::Unavailable { cause: cause.to_owned(), retry_after: None };
        let response = self
            .http
            .http
            .send(tmp_edge::client::Request::get(self.http.url(path)))
            .await
            .map_err(|e| unavailable(e.as_str()))?;
        if !response.is_success() {
            return Err(unavailable(&format!("HTTP {}", response.status.as_u16())));
        }
        response.json().map_err(|_| unavailable("not a JWK set"))
    }

    async fn exchange<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        idempotency_key: Option<&str>,
        correlation_id: &str,
        ignore_success_body: bool,
    ) -> Result<tmp_edge::client::Response, CallError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|_| CallError::BadAnswer("the request body does not serialize".into()))?;
        let request = match self.http.request(method, path, body, idempotency_key, correlation_id) {
            Ok(request) if ignore_success_body => request.ignore_success_body(),
            Ok(request) => request,
            Err(SendError::Invalid(why)) => return Err(CallError::BadAnswer(why)),
            Err(error) => return Err(CallError::BadAnswer(error.as_str().into())),
        };
        let response = match self.http.http.send(request).await {
            Ok(response) => response,
            Err(SendError::Invalid(why)) => return Err(CallError::BadAnswer(why)),
            Err(error) => return Err(CallError::Unavailable { cause: error.as_str().into(), retry_after: None }),
        };
        if response.is_success() {
            return Ok(response);
        }
        let answer = response.error_answer();
        Err(if answer.is_transient() {
            CallError::Unavailable { cause: answer.summary(), retry_after: answer.retry_after }
        } else {
            CallError::Refused(answer)
        })
    }
}

/// A path segment, percent-encoded. `.` and `..` are encoded too (`%2E`), so that no URL
/// resolution between here and the receiver can remove a segment or climb out of the path (ids
/// are refused when they are exactly those, so this is a second line).
pub fn segment(s: &str) -> String {
    let dot_segment = s == "." || s == "..";
    s.bytes()
        .map(|b| match b {
            b'.' if dot_segment => "%2E".to_owned(),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("card-1_A.b~"), "card-1_A.b~");
        assert_eq!(segment("a/b?c d"), "a%2Fb%3Fc%20d");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("."), "%2E");
        assert_eq!(segment("..."), "...");
    }
}
