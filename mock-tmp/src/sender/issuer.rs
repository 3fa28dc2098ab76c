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
use tmp_protocol::trace_context::TRACEPARENT;
use tmp_protocol::webhook::WebhookSecret;

use crate::config::IssuerConfig;
use crate::faults::Faults;
use crate::journal::{Direction, Journal, JournalEntry, Outcome, mask_bytes};
use tmp_edge::client::{ClientOptions, ClientTls, HttpClient, Request, SendError};
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
    #[error("an injected fault discarded the callback")]
    Discarded,
}

pub struct IssuerLink {
    base_url: String,
    client: HttpClient,
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
        let response = self.client.send(Request::get(url)).await;
        let result = match response {
            Ok(response) => {
                entry.status = Some(response.status.as_u16());
                let ok = response.is_success();
                match response.json::<JwkSet>() {
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
        let fault = self.faults.decide(&format!("POST {path}"), Some(body));
        let mut entry = JournalEntry::new(Direction::Sent, "POST", path, Outcome::Answered);
        entry.route = Some(path.to_owned());
        entry.idempotency_key = Some(idempotency_key.to_owned());
        entry.correlation_id = Some(correlation_id.to_owned());
        // The trace of what caused the call (the simulator's request, or the queued effect's).
        let trace = tmp_edge::correlation::outbound_trace();
        entry.trace_id = Some(trace.trace_id());
        entry.attempt = Some(attempt);
        entry.fault_id = fault.rule_id;
        entry.body = mask_bytes(body);
        if let Some(latency) = fault.latency {
            tokio::time::sleep(latency).await;
        }
        if fault.discard {
            entry.outcome = Outcome::Discarded;
            entry.note = Some("injected fault: TMP lost the callback; never sent".into());
            self.journal.record(entry);
            return Err(Failure::Discarded);
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
        let request = Request::post(format!("{}{path}", self.base_url))
            .header(IDEMPOTENCY_KEY, idempotency_key)
            .header(CORRELATION_ID, correlation_id)
            .header(TRACEPARENT, &trace.to_string())
            .json_body(body.to_vec());
        let request = match request.sign(&self.secrets) {
            Ok((request, webhook_id)) => {
                entry.webhook_id = Some(webhook_id);
                request
            }
            Err(e) => return Err(Failure::Local(e.to_string())),
        };
        let result = match self.client.send(request).await {
            Ok(response) => Ok(Answer { status: response.status.as_u16(), body: response.body }),
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
fn issuer_client(config: &IssuerConfig) -> anyhow::Result<HttpClient> {
    let identity = match (&config.client_cert_file, &config.client_key_file) {
        (Some(cert_file), Some(key_file)) => Some(ClientIdentity { cert_file, key_file }),
        _ => None,
    };
    let tls = ClientTls { ca_file: config.ca_file.as_deref(), identity };
    let options = ClientOptions::with_timeout(Duration::from_millis(config.request_timeout_ms));
    HttpClient::new(tls, options).context("the HTTP client toward the issuer")
}

fn classify(e: &SendError) -> Failure {
    match e {
        SendError::Timeout => Failure::TimedOut,
        SendError::Connect => Failure::ConnectionFailed,
        SendError::Invalid(why) => Failure::Local(why.clone()),
        // Reset, closed before a complete answer, a body cut short or too long: the peer
        // dropped us.
        SendError::Dropped | SendError::TooLarge => Failure::Dropped,
    }
}

fn outcome_of(failure: &Failure) -> Outcome {
    match failure {
        Failure::TimedOut => Outcome::TimedOut,
        Failure::Dropped => Outcome::Dropped,
        Failure::ConnectionFailed => Outcome::ConnectionFailed,
        Failure::Injected(_) => Outcome::FaultInjected,
        Failure::Discarded => Outcome::Discarded,
        Failure::Local(_) => Outcome::ConnectionFailed,
    }
}
