//! One delivery attempt per destination, and the mapping of outbox rows onto each
//! destination's API (tabled in `docs/forwarding.md`).
//!
//! Every request carries `X-Idempotency-Key` = the outbox row's id (stable across attempts),
//! `X-Correlation-Id`, and a Standard-Webhooks signature with a fresh `webhook-id` per attempt.
//! Card data is unsealed from the row and JWE-encrypted to the destination's public key only
//! here, at delivery time; an activation code is read from its notification row, re-encrypted
//! to the sink's key, and erased once every sink has it.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::Method;
use anyhow::Context;
use serde::Serialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use tmp_protocol::enums::IssuerCardStatus;
use tmp_protocol::jwk::{JwkSet, PublicJwk};
use tmp_protocol::lifecycle_api::{LifecycleCard, LifecycleCardReplace, LifecycleCardUpdate};
use tmp_protocol::tmp_api::{CardExpiryUpdate, CardReplace, CardStatusUpdate};
use zeroize::Zeroizing;

use tmp_edge::client::{Request as HttpRequest, SendError, SignedClient};

use super::client::{destination_client, http_client, parse_secrets};
use crate::config::{DestinationSettings, Settings, SinkSettings};
use crate::crypto::aad;
use crate::keys::KeyMaterial;
use crate::outbox::{CardEventMessage, Destination, ForwardedBody, ForwardedEvent, OutboxMessage};
use crate::store::{DynStore, OutboxEntry};

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// 408, 429, 5xx, timeout, connection error: worth another try.
    Transient {
        error: String,
        retry_after: Option<Duration>,
    },
    /// Any other 4xx, or a row that cannot be delivered at all.
    Permanent(String),
}

enum Sent {
    Ok,
    /// 422 `INVALID_ENCRYPTED_PAYLOAD`: the destination no longer takes the key we used.
    KeyRejected,
    Failed(Attempt),
}

/// A destination's public key, fetched on first use and again after `ttl` or a rejection.
struct KeyCache {
    ttl: Duration,
    cached: Mutex<Option<(PublicJwk, Instant)>>,
}

impl KeyCache {
    fn get_cached(&self) -> Option<PublicJwk> {
        let guard = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().filter(|(_, at)| at.elapsed() < self.ttl).map(|(k, _)| k.clone())
    }

    fn store(&self, key: PublicJwk) {
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, Instant::now()));
    }

    fn invalidate(&self) {
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

struct Api {
    http: SignedClient,
    key_path: &'static str,
    key: KeyCache,
}

struct Sink {
    settings: SinkSettings,
    /// The sink as a signed destination: its URL is the whole address (no path is appended).
    http: SignedClient,
    otp_key: Option<PublicJwk>,
}

pub(super) struct Destinations {
    store: DynStore,
    keys: Arc<KeyMaterial>,
    tmp: Api,
    lifecycle: Api,
    sinks: Vec<Sink>,
}

fn load_jwk(path: &Path) -> anyhow::Result<PublicJwk> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let jwk: PublicJwk =
        serde_json::from_str(&text).with_context(|| format!("{} is not a public JWK", path.display()))?;
    jwk.to_public_key().with_context(|| format!("{} is not a usable RSA key", path.display()))?;
    Ok(jwk)
}

impl Destinations {
    pub(super) fn new(settings: &Settings, store: DynStore, keys: Arc<KeyMaterial>) -> anyhow::Result<Destinations> {
        let timeout = Duration::from_millis(settings.relay.request_timeout_ms);
        let ttl = Duration::from_secs(settings.forwarding.public_key_ttl_secs);
        let api = |key: &str, d: &DestinationSettings, key_path: &'static str| -> anyhow::Result<Api> {
            Ok(Api {
                http: destination_client(key, d, timeout, settings.relay.concurrency)?,
                key_path,
                key: KeyCache { ttl, cached: Mutex::new(None) },
            })
        };
        let sinks = settings
            .sinks
            .iter()
            .map(|s| {
                let key = format!("sinks.{}", s.name);
                Ok(Sink {
                    http: SignedClient::new(
                        &s.url,
                        parse_secrets(&format!("{key}.hmac_secrets"), &s.hmac_secrets)?,
                        http_client(&key, &s.tls, timeout, settings.relay.concurrency)?,
                    ),
                    otp_key: s.otp_jwk_file.as_deref().map(load_jwk).transpose()?,
                    settings: s.clone(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Destinations {
            store,
            keys,
            tmp: api("forwarding.tmp_api", &settings.forwarding.tmp_api, tmp_protocol::tmp_api::PUBLIC_KEY_PATH)?,
            lifecycle: api(
                "forwarding.lifecycle_api",
                &settings.forwarding.lifecycle_api,
                tmp_protocol::lifecycle_api::PUBLIC_KEY_PATH,
            )?,
            sinks,
        })
    }

    pub(super) async fn deliver(&self, entry: &OutboxEntry) -> Attempt {
        match (entry.record.destination, &entry.record.message) {
            (Destination::IssuerWebhook, message) => self.deliver_to_sinks(entry, message).await,
            (Destination::TmpApi, OutboxMessage::CardEvent(card)) => {
                self.forward(&self.tmp, entry, card, tmp_request).await
            }
            (Destination::LifecycleApi, OutboxMessage::CardEvent(card)) => {
                self.forward(&self.lifecycle, entry, card, lifecycle_request).await
            }
            (destination, message) => Attempt::Permanent(format!(
                "no mapping of `{}` onto destination {}",
                message.event_type(),
                destination.as_str()
            )),
        }
    }

    /// The card data sealed into the row at ingest (JSON `{"pan","expiry"}` or `{"expiry"}`).
    fn unseal(&self, entry: &OutboxEntry, card: &CardEventMessage) -> Result<Option<Zeroizing<Vec<u8>>>, Attempt> {
        let Some(sealed) = &card.sealed else {
            return Ok(None);
        };
        let plaintext = self
            .keys
            .data_keys
            .decrypt(&sealed.key_id, &sealed.data, &aad::outbox_row(&entry.record.id))
            .map_err(|_| Attempt::Permanent("sealed card data cannot be decrypted".into()))?;
        Ok(Some(plaintext))
    }

    async fn public_key(&self, api: &Api) -> Result<PublicJwk, Attempt> {
        if let Some(key) = api.key.get_cached() {
            return Ok(key);
        }
        let unavailable = |what: &str| Attempt::Transient { error: format!("public key: {what}"), retry_after: None };
        let response = api
            .http
            .http
            .send(HttpRequest::get(api.http.url(api.key_path)))
            .await
            .map_err(|e| unavailable(e.as_str()))?;
        if !response.is_success() {
            return Err(unavailable(&format!("HTTP {}", response.status.as_u16())));
        }
        let set: JwkSet = response.json().map_err(|_| unavailable("not a JWK set"))?;
        let key = set.encryption_key().cloned().ok_or_else(|| unavailable("no encryption key in the set"))?;
        api.key.store(key.clone());
        Ok(key)
    }

    async fn forward(
        &self,
        api: &Api,
        entry: &OutboxEntry,
        card: &CardEventMessage,
        map: fn(&ForwardedEvent, Option<String>) -> Result<Request, String>,
    ) -> Attempt {
        let sealed = match self.unseal(entry, card) {
            Ok(sealed) => sealed,
            Err(attempt) => return attempt,
        };
        // Twice at most: once more with a freshly fetched key when the destination rejects
        // the one we had (it rotated).
        for round in 0..2 {
            let jwe = match &sealed {
                None => None,
                Some(plaintext) => {
                    let key = match self.public_key(api).await {
                        Ok(key) => key,
                        Err(attempt) => return attempt,
                    };
                    match tmp_protocol::jwe::encrypt(plaintext, &key) {
                        Ok(jwe) => Some(jwe),
                        Err(_) => return Attempt::Permanent("cannot encrypt to the destination's key".into()),
                    }
                }
            };
            let request = match map(&card.event, jwe) {
                Ok(request) => request,
                Err(error) => return Attempt::Permanent(error),
            };
            match send(&api.http, request.method, &request.path, request.body, entry).await {
                Sent::Ok => return Attempt::Delivered,
                Sent::KeyRejected if round == 0 && sealed.is_some() => api.key.invalidate(),
                Sent::KeyRejected => return Attempt::Permanent("HTTP 422 INVALID_ENCRYPTED_PAYLOAD".into()),
                Sent::Failed(attempt) => return attempt,
            }
        }
        Attempt::Permanent("HTTP 422 INVALID_ENCRYPTED_PAYLOAD".into())
    }

    /// Delivers to every sink whose filter takes the event type. A failure at any sink fails
    /// the attempt and the retry goes to all of them again: sinks deduplicate on
    /// `X-Idempotency-Key`.
    async fn deliver_to_sinks(&self, entry: &OutboxEntry, message: &OutboxMessage) -> Attempt {
        let event_type = message.event_type();
        let sinks: Vec<&Sink> = self.sinks.iter().filter(|s| s.settings.accepts(&event_type)).collect();
        let notification_id = match message {
            OutboxMessage::Notification(n) => Some(n.notification_id.as_str()),
            _ => None,
        };
        let otp = match notification_id {
            Some(id) if sinks.iter().any(|s| s.otp_key.is_some()) => match self.otp(id).await {
                Ok(otp) => otp,
                Err(attempt) => return attempt,
            },
            _ => None,
        };
        let timestamp = entry.record.created_at.format(&Rfc3339).unwrap_or_default();
        let mut first_transient = None;
        let mut permanent = Vec::new();
        for sink in &sinks {
            let data = match (message, &otp, &sink.otp_key) {
                (OutboxMessage::Notification(n), Some(otp), Some(key)) => {
                    #[derive(Serialize)]
                    struct Code<'a> {
                        otp: &'a str,
                    }
                    let Ok(jwe) = tmp_protocol::jwe::encrypt_json(&Code { otp: otp.as_str() }, key) else {
                        return Attempt::Permanent(format!("sink {}: cannot encrypt to its key", sink.settings.name));
                    };
                    let mut n = n.clone();
                    n.encrypted_payload = Some(jwe);
                    OutboxMessage::Notification(n).to_json()
                }
                _ => message.to_json(),
            };
            let body = json!({ "type": event_type, "timestamp": timestamp, "data": data });
            let body = serde_json::to_vec(&body).unwrap_or_default();
            match send(&sink.http, Method::POST, "", Some(body), entry).await {
                Sent::Ok => {}
                Sent::KeyRejected => permanent.push(format!("sink {}: HTTP 422", sink.settings.name)),
                Sent::Failed(Attempt::Transient { error, retry_after }) => {
                    first_transient.get_or_insert(Attempt::Transient {
                        error: format!("sink {}: {error}", sink.settings.name),
                        retry_after,
                    });
                }
                Sent::Failed(Attempt::Permanent(error)) => {
                    permanent.push(format!("sink {}: {error}", sink.settings.name))
                }
                Sent::Failed(Attempt::Delivered) => {}
            }
        }
        if let Some(transient) = first_transient {
            return transient;
        }
        if !permanent.is_empty() {
            return Attempt::Permanent(permanent.join("; "));
        }
        if let Some(id) = notification_id
            && let Err(error) = self.store.erase_otp(id).await
        {
            // Housekeeping erases it at expiry anyway.
            tracing::warn!(error = ?error, "cannot erase a delivered activation code");
        }
        Attempt::Delivered
    }

    async fn otp(&self, notification_id: &str) -> Result<Option<Zeroizing<String>>, Attempt> {
        let transient = |e: String| Attempt::Transient { error: e, retry_after: None };
        let notification = self
            .store
            .find_notification(notification_id)
            .await
            .map_err(|_| transient("cannot read the notification".into()))?;
        let Some((Some(ciphertext), Some(key_id))) = notification.map(|n| (n.otp_ciphertext, n.otp_key_id)) else {
            return Ok(None);
        };
        let plaintext = self
            .keys
            .data_keys
            .decrypt(&key_id, &ciphertext, &aad::otp(notification_id))
            .map_err(|_| Attempt::Permanent("the activation code cannot be decrypted".into()))?;
        let otp = String::from_utf8(plaintext.to_vec())
            .map_err(|_| Attempt::Permanent("the activation code is corrupt".into()))?;
        Ok(Some(Zeroizing::new(otp)))
    }
}

/// One HTTP request to a destination.
pub(super) struct Request {
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
}

fn json_request<T: Serialize>(method: Method, path: String, body: &T) -> Result<Request, String> {
    let body = serde_json::to_vec(body).map_err(|_| "the request body does not serialize".to_owned())?;
    Ok(Request { method, path, body: Some(body) })
}

/// A path segment, percent-encoded.
pub(super) fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn required(value: Option<String>, what: &str) -> Result<String, String> {
    value.ok_or_else(|| format!("the outbox row lacks {what}"))
}

/// Approach `external`: the TMP API's card-lifecycle methods.
fn tmp_request(event: &ForwardedEvent, jwe: Option<String>) -> Result<Request, String> {
    let base = format!("/tmp-api/v1/cards/{}", segment(&event.card_id));
    match &event.body {
        ForwardedBody::CardStatusChanged(d) => json_request(
            Method::POST,
            format!("{base}/status"),
            &CardStatusUpdate { status: d.status, reason: d.reason.as_ref().map(|r| r.to_string()) },
        ),
        ForwardedBody::CardClosed(d) => json_request(
            Method::POST,
            format!("{base}/status"),
            &CardStatusUpdate { status: IssuerCardStatus::Closed, reason: d.reason.as_ref().map(|r| r.to_string()) },
        ),
        ForwardedBody::CardReplaced { new_card_id } => json_request(
            Method::POST,
            format!("{base}/replace"),
            &CardReplace { new_card_id: new_card_id.to_string(), encrypted_payload: required(jwe, "card data")? },
        ),
        ForwardedBody::CardRenewed {} => json_request(
            Method::POST,
            format!("{base}/expiry"),
            &CardExpiryUpdate { encrypted_payload: required(jwe, "card data")? },
        ),
        other => Err(format!("no TMP API mapping for `{}`", other.type_name())),
    }
}

/// Approach `datacore`: the Lifecycle API.
fn lifecycle_request(event: &ForwardedEvent, jwe: Option<String>) -> Result<Request, String> {
    let card_path = format!("/lifecycle/v1/cards/{}", segment(&event.card_id));
    match &event.body {
        ForwardedBody::CardIssued { product_category, cardholder } => json_request(
            Method::POST,
            "/lifecycle/v1/cards".to_owned(),
            &LifecycleCard {
                card_id: event.card_id.to_string(),
                status: IssuerCardStatus::Active,
                product_category: product_category.as_ref().map(|c| c.to_string()),
                cardholder: cardholder.clone(),
                encrypted_payload: required(jwe, "card data")?,
            },
        ),
        ForwardedBody::CardStatusChanged(d) => json_request(
            Method::PATCH,
            card_path,
            &LifecycleCardUpdate { status: Some(d.status), ..Default::default() },
        ),
        ForwardedBody::CardReplaced { new_card_id } => json_request(
            Method::POST,
            format!("{card_path}/replace"),
            &LifecycleCardReplace {
                new_card_id: new_card_id.to_string(),
                encrypted_payload: required(jwe, "card data")?,
            },
        ),
        ForwardedBody::CardRenewed {} => json_request(
            Method::PATCH,
            card_path,
            &LifecycleCardUpdate { encrypted_payload: Some(required(jwe, "card data")?), ..Default::default() },
        ),
        ForwardedBody::CardClosed(_) => Ok(Request { method: Method::DELETE, path: card_path, body: None }),
        ForwardedBody::CardholderUpdated(contact) => json_request(
            Method::PATCH,
            card_path,
            &LifecycleCardUpdate { cardholder: Some(contact.clone()), ..Default::default() },
        ),
    }
}

/// Sends one signed request and classifies the answer. Error texts hold the status and the
/// contract's error code only: a body may echo data and never reaches a log or a row.
async fn send(client: &SignedClient, method: Method, path: &str, body: Option<Vec<u8>>, entry: &OutboxEntry) -> Sent {
    let correlation_id = entry.record.correlation_id.clone().unwrap_or_else(|| entry.record.id.to_string());
    let key = entry.record.id.to_string();
    // Delivered means answered 2xx; the body of a 2xx is not read for anything.
    let request = match client.request(method, path, body, Some(&key), &correlation_id) {
        Ok(request) => request.ignore_success_body(),
        Err(SendError::Invalid(why)) => return Sent::Failed(Attempt::Permanent(why)),
        Err(error) => return Sent::Failed(Attempt::Permanent(error.as_str().into())),
    };
    let response = match client.http.send(request).await {
        Ok(response) => response,
        Err(SendError::Invalid(why)) => return Sent::Failed(Attempt::Permanent(why)),
        Err(error) => return Sent::Failed(Attempt::Transient { error: error.as_str().into(), retry_after: None }),
    };
    if response.is_success() {
        return Sent::Ok;
    }
    let answer = response.error_answer();
    if answer.status == 422 && answer.code.as_deref() == Some("INVALID_ENCRYPTED_PAYLOAD") {
        return Sent::KeyRejected;
    }
    if answer.is_transient() {
        Sent::Failed(Attempt::Transient { error: answer.summary(), retry_after: answer.retry_after })
    } else {
        Sent::Failed(Attempt::Permanent(answer.summary()))
    }
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("card-1_A.b~"), "card-1_A.b~");
        assert_eq!(segment("a/b?c d"), "a%2Fb%3Fc%20d");
    }
}
