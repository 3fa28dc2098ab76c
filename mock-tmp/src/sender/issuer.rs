//! The link to the issuer's Issuer API: signs every request (Standard Webhooks, a new
//! `webhook-id` per attempt), fetches and caches the issuer's JWK set, applies outbound fault
//! rules, and journals every attempt with its outcome.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use actix_web::web::Bytes;
use tmp_protocol::headers::{CORRELATION_ID, IDEMPOTENCY_KEY};
use tmp_protocol::issuer_api::PUBLIC_KEY_PATH;
use tmp_protocol::jwk::{JwkSet, PublicJwk};
use tmp_protocol::webhook::{SignatureHeaders, WebhookSecret};

use crate::config::IssuerConfig;
use crate::faults::Faults;
use crate::journal::{Direction, Journal, JournalEntry, Outcome, mask_bytes};
use tmp_edge::client::{ClientTls, http_client};
use tmp_edge::tls::ClientIdentity;

/// An HTTP answer from the issuer (any status).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The contract error code of an error body, if it is one.
    pub fn error_code(&self) -> Option<String> {
        let body: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        body["error"]["code"].as_str().map(str::to_owned)
    }
}

/// An attempt that got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("the issuer did not answer in time")]
    TimedOut,
    #[error("the connection was dropped")]
    Dropped,
    #[error("the issuer could not be reached")]
    ConnectionFailed,
    #[error("an injected fault failed the attempt with status {0}")]
    Injected(u16),
    #[error("the request could not be built: {0}")]
    Local(String),
}

pub struct IssuerLink {
    base_url: String,
    client: reqwest::Client,
    secrets: Vec<WebhookSecret>,
    key: tokio::sync::Mutex<Option<PublicJwk>>,
    journal: Arc<Journal>,
    faults: Arc<Faults>,
}

impl IssuerLink {
    pub fn new(
        config: &IssuerConfig,
        secrets: Vec<WebhookSecret>,
        journal: Arc<Journal>,
        faults: Arc<Faults>,
    ) -> anyhow::Result<IssuerLink> {
        let client = issuer_client(config)?;
        Ok(IssuerLink {
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            client,
            secrets,
            key: tokio::sync::Mutex::new(None),
            journal,
            faults,
        })
    }

    /// The issuer's current encryption key; cached, refetched when `refresh` (after the issuer
    /// answered `INVALID_ENCRYPTED_PAYLOAD`, i.e. it rotated).
    #[tracing::instrument(skip_all)]
    pub async fn encryption_key(&self, refresh: bool) -> Result<PublicJwk, Failure> {
        let mut cached = self.key.lock().await;
        if !refresh && let Some(key) = cached.as_ref() {
            return Ok(key.clone());
        }
        let url = format!("{}{PUBLIC_KEY_PATH}", self.base_url);
        let mut entry = JournalEntry::new(Direction::Sent, "GET", PUBLIC_KEY_PATH, Outcome::Answered);
        let response = self.client.get(&url).send().await;
        let result = match response {
            Ok(response) => {
                entry.status = Some(response.status().as_u16());
                let ok = response.status().is_success();
                match response.json::<JwkSet>().await {
                    Ok(set) if ok => set
                        .encryption_key()
                        .cloned()
                        .ok_or_else(|| Failure::Local("the issuer publishes no usable key".into())),
                    _ => Err(Failure::Local("the issuer's JWK set could not be read".into())),
                }
            }
            Err(e) => {
                let failure = classify(&e);
                entry.outcome = outcome_of(&failure);
                Err(failure)
            }
        };
        self.journal.record(entry);
        let key = result?;
        *cached = Some(key.clone());
        Ok(key)
    }

    /// One signed POST to the issuer, under the outbound fault rules of its route.
    #[tracing::instrument(skip_all, fields(path = path, attempt = attempt))]
    pub async fn post(
        &self,
        path: &str,
        idempotency_key: &str,
        correlation_id: &str,
        body: &[u8],
        attempt: u32,
    ) -> Result<Answer, Failure> {
        let fault = self.faults.decide(&format!("POST {path}"));
        let mut entry = JournalEntry::new(Direction::Sent, "POST", path, Outcome::Answered);
        entry.route = Some(path.to_owned());
        entry.idempotency_key = Some(idempotency_key.to_owned());
        entry.correlation_id = Some(correlation_id.to_owned());
        entry.attempt = Some(attempt);
        entry.fault_id = fault.rule_id;
        entry.body = mask_bytes(body);
        if let Some(latency) = fault.latency {
            tokio::time::sleep(latency).await;
        }
        if fault.fails() && !fault.after_delivery {
            let failure = if fault.drop_connection {
                Failure::Dropped
            } else {
                Failure::Injected(fault.error_status.unwrap_or(503))
            };
            entry.outcome = if fault.drop_connection { Outcome::Dropped } else { Outcome::FaultInjected };
            entry.status = fault.error_status.filter(|_| !fault.drop_connection);
            entry.note = Some("injected fault: the request was not sent".into());
            self.journal.record(entry);
            return Err(failure);
        }
        let headers = match SignatureHeaders::sign_now(&self.secrets, body) {
            Ok(headers) => headers,
            Err(e) => return Err(Failure::Local(e.to_string())),
        };
        entry.webhook_id = Some(headers.id.clone());
        let mut request = self
            .client
            .post(format!("{}{path}", self.base_url))
            .header("content-type", "application/json")
            .header(IDEMPOTENCY_KEY, idempotency_key)
            .header(CORRELATION_ID, correlation_id);
        for (name, value) in headers.to_header_pairs() {
            request = request.header(name, value);
        }
        let result = match request.body(body.to_vec()).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(body) => Ok(Answer { status, body }),
                    Err(e) => Err(classify(&e)),
                }
            }
            Err(e) => Err(classify(&e)),
        };
        match &result {
            Ok(answer) => entry.status = Some(answer.status),
            Err(failure) => entry.outcome = outcome_of(failure),
        }
        if fault.fails() && fault.after_delivery {
            // The issuer got the request; its answer is "lost" on the way back.
            entry.outcome = Outcome::AnswerLost;
            entry.note = Some("injected fault: delivered, answer discarded".into());
            self.journal.record(entry);
            return Err(if fault.drop_connection {
                Failure::Dropped
            } else {
                Failure::Injected(fault.error_status.unwrap_or(503))
            });
        }
        self.journal.record(entry);
        result
    }
}

/// The HTTP client of the callbacks: per-attempt timeout, no redirects, and for an `https`
/// issuer the configured trust (`issuer.ca_file`) and client certificate.
fn issuer_client(config: &IssuerConfig) -> anyhow::Result<reqwest::Client> {
    let identity = match (&config.client_cert_file, &config.client_key_file) {
        (Some(cert_file), Some(key_file)) => Some(ClientIdentity { cert_file, key_file }),
        _ => None,
    };
    let tls = ClientTls { ca_file: config.ca_file.as_deref(), identity };
    http_client(tls, Duration::from_millis(config.request_timeout_ms)).context("the HTTP client toward the issuer")
}

fn classify(e: &reqwest::Error) -> Failure {
    if e.is_timeout() {
        Failure::TimedOut
    } else if e.is_connect() {
        Failure::ConnectionFailed
    } else {
        // Reset, closed before a complete answer, or a body cut short: the peer dropped us.
        Failure::Dropped
    }
}

fn outcome_of(failure: &Failure) -> Outcome {
    match failure {
        Failure::TimedOut => Outcome::TimedOut,
        Failure::Dropped => Outcome::Dropped,
        Failure::ConnectionFailed => Outcome::ConnectionFailed,
        Failure::Injected(_) => Outcome::FaultInjected,
        Failure::Local(_) => Outcome::ConnectionFailed,
    }
}
