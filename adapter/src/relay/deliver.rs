//! One delivery attempt per destination, and the mapping of outbox messages onto each
//! destination's API (tabled in `docs/forwarding.md`), through the typed clients of `outbound`.
//!
//! Every request carries `X-Idempotency-Key` = the outbox row's id (stable across attempts),
//! `X-Correlation-Id`, and a Standard-Webhooks signature with a fresh `webhook-id` per attempt.
//! Card data is unsealed from the row and JWE-encrypted to the destination's public key only
//! here, at delivery time; an activation code is read from its notification row, re-encrypted
//! to the sink's key, and erased once every sink has it.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::Method;
use anyhow::Context;
use serde::Serialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use tmp_protocol::enums::IssuerCardStatus;
use tmp_protocol::jwk::PublicJwk;
use tmp_protocol::lifecycle_api::{LifecycleCard, LifecycleCardReplace, LifecycleCardUpdate};
use tmp_protocol::tmp_api::{CardExpiryUpdate, CardReplace, CardStatusUpdate};
use zeroize::Zeroizing;

use tmp_edge::client::SignedClient;

use crate::config::{Settings, SinkSettings};
use crate::crypto::aad;
use crate::crypto::at_rest::AtRestError;
use crate::keys::KeyMaterial;
use crate::outbound::{ApiClient, CallError, EncryptingApi, LifecycleApiClient, TmpApiClient, http_client};
use crate::outbox::{CardEventMessage, Destination, ForwardedBody, ForwardedEvent, OutboxMessage};
use crate::store::{NotificationStore, OutboxEntry};

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// 408, 429, 5xx, timeout, connection error: worth another try.
    Transient {
        error: String,
        retry_after: Option<Duration>,
    },
    /// 401 or 403: a stale timestamp (clock skew), a secret rotated on one side only, a
    /// revoked grant. Nothing wrong with the message, so retried like a transient failure,
    /// and counted apart for an alert.
    Unauthorized(String),
    /// Any other 4xx, or a row that cannot be delivered at all.
    Permanent(String),
    /// No configured sink takes the event type: nothing was sent to anyone.
    Unrouted,
}

impl Attempt {
    fn of(error: CallError) -> Attempt {
        match error {
            CallError::Unavailable { cause, retry_after } => Attempt::Transient { error: cause, retry_after },
            CallError::Refused(answer) if matches!(answer.status, 401 | 403) => Attempt::Unauthorized(answer.summary()),
            CallError::Refused(answer) => Attempt::Permanent(answer.summary()),
            CallError::BadAnswer(why) => Attempt::Permanent(why),
        }
    }
}

/// Why a message was not forwarded: the row cannot be mapped, or the call failed.
enum Failure {
    Unmapped(String),
    Call(CallError),
}

impl From<CallError> for Failure {
    fn from(error: CallError) -> Failure {
        Failure::Call(error)
    }
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

/// A destination whose card data is encrypted to its public key, and that key once fetched.
struct Keyed<C> {
    client: C,
    key: KeyCache,
}

struct Sink {
    settings: SinkSettings,
    /// The sink as a signed destination: its URL is the whole address (no path is appended).
    api: ApiClient,
    otp_key: Option<PublicJwk>,
}

/// Where the relay delivers, and with what (see [`super::Relay::prepare_destinations`]).
pub struct Destinations {
    /// Where activation codes are read from and erased once delivered.
    notifications: Arc<dyn NotificationStore>,
    keys: Arc<KeyMaterial>,
    tmp: Keyed<TmpApiClient>,
    lifecycle: Keyed<LifecycleApiClient>,
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
    pub(super) fn new(
        settings: &Settings,
        notifications: Arc<dyn NotificationStore>,
        keys: Arc<KeyMaterial>,
    ) -> anyhow::Result<Destinations> {
        let timeout = Duration::from_millis(settings.relay.request_timeout_ms);
        let ttl = Duration::from_secs(settings.forwarding.public_key_ttl_secs);
        let connections = settings.relay.concurrency;
        let key = || KeyCache { ttl, cached: Mutex::new(None) };
        let tmp = Keyed {
            client: TmpApiClient::new("forwarding.tmp_api", &settings.forwarding.tmp_api, timeout, connections)?,
            key: key(),
        };
        let lifecycle = Keyed {
            client: LifecycleApiClient::new(
                "forwarding.lifecycle_api",
                &settings.forwarding.lifecycle_api,
                timeout,
                connections,
            )?,
            key: key(),
        };
        let sinks = settings
            .sinks
            .iter()
            .map(|s| {
                let key = format!("sinks.{}", s.name);
                Ok(Sink {
                    api: ApiClient {
                        http: SignedClient::new(
                            &s.url,
                            s.hmac_secrets.clone(),
                            http_client(&key, &s.tls, timeout, connections)?,
                        ),
                    },
                    otp_key: s.otp_jwk_file.as_deref().map(load_jwk).transpose()?,
                    settings: s.clone(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Destinations { notifications, keys, tmp, lifecycle, sinks })
    }

    pub(super) async fn deliver(&self, entry: &OutboxEntry) -> Attempt {
        let key = entry.record.id.to_string();
        let correlation_id = entry.record.correlation_id.clone().unwrap_or_else(|| key.clone());
        let (key, correlation_id) = (key.as_str(), correlation_id.as_str());
        match (entry.record.destination, &entry.record.message) {
            (Destination::IssuerWebhook, message) => self.deliver_to_sinks(entry, message, key, correlation_id).await,
            (Destination::TmpApi, OutboxMessage::CardEvent(card)) => {
                let client = &self.tmp.client;
                let call = |jwe| to_tmp(client, &card.event, jwe, key, correlation_id);
                self.forward(&self.tmp, entry, card, call).await
            }
            (Destination::LifecycleApi, OutboxMessage::CardEvent(card)) => {
                let client = &self.lifecycle.client;
                let call = |jwe| to_lifecycle(client, &card.event, jwe, key, correlation_id);
                self.forward(&self.lifecycle, entry, card, call).await
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
            .current()
            .decrypt(&sealed.key_id, &sealed.data, &aad::outbox_row(&entry.record.id))
            .map_err(|e| unsealing_failed("sealed card data", e))?;
        Ok(Some(plaintext))
    }

    async fn public_key<C: EncryptingApi>(&self, destination: &Keyed<C>) -> Result<PublicJwk, Attempt> {
        if let Some(key) = destination.key.get_cached() {
            return Ok(key);
        }
        let unavailable = |what: &str| Attempt::Transient { error: format!("public key: {what}"), retry_after: None };
        let set = destination.client.api().public_keys(C::PUBLIC_KEY_PATH).await.map_err(|e| match e {
            CallError::Unavailable { cause, .. } => unavailable(&cause),
            other => unavailable(&other.to_string()),
        })?;
        let key = set.encryption_key().cloned().ok_or_else(|| unavailable("no encryption key in the set"))?;
        destination.key.store(key.clone());
        Ok(key)
    }

    /// Forwards a card event with `call`, its card data (if any) encrypted to the destination's
    /// key — twice at most: once more with a freshly fetched key when the destination rejects
    /// the one we had (it rotated).
    async fn forward<C: EncryptingApi, F, Fut>(
        &self,
        destination: &Keyed<C>,
        entry: &OutboxEntry,
        card: &CardEventMessage,
        call: F,
    ) -> Attempt
    where
        F: Fn(Option<String>) -> Fut,
        Fut: Future<Output = Result<(), Failure>>,
    {
        let sealed = match self.unseal(entry, card) {
            Ok(sealed) => sealed,
            Err(attempt) => return attempt,
        };
        for round in 0..2 {
            let jwe = match &sealed {
                None => None,
                Some(plaintext) => {
                    let key = match self.public_key(destination).await {
                        Ok(key) => key,
                        Err(attempt) => return attempt,
                    };
                    match tmp_protocol::jwe::encrypt(plaintext, &key) {
                        Ok(jwe) => Some(jwe),
                        Err(_) => return Attempt::Permanent("cannot encrypt to the destination's key".into()),
                    }
                }
            };
            match call(jwe).await {
                Ok(()) => return Attempt::Delivered,
                Err(Failure::Call(e)) if e.is_key_rejected() && round == 0 && sealed.is_some() => {
                    destination.key.invalidate()
                }
                Err(Failure::Call(e)) => return Attempt::of(e),
                Err(Failure::Unmapped(why)) => return Attempt::Permanent(why),
            }
        }
        Attempt::Permanent("HTTP 422 INVALID_ENCRYPTED_PAYLOAD".into())
    }

    /// Delivers to every sink whose filter takes the event type. A failure at any sink fails
    /// the attempt and the retry goes to all of them again: sinks deduplicate on
    /// `X-Idempotency-Key`.
    async fn deliver_to_sinks(
        &self,
        entry: &OutboxEntry,
        message: &OutboxMessage,
        key: &str,
        correlation_id: &str,
    ) -> Attempt {
        let event_type = message.event_type();
        let sinks: Vec<&Sink> = self.sinks.iter().filter(|s| s.settings.accepts(&event_type)).collect();
        let notification_id = match message {
            OutboxMessage::Notification(n) => Some(n.notification_id.as_str()),
            _ => None,
        };
        if sinks.is_empty() {
            // Said as it is (not "delivered"), and an activation code nobody will receive is
            // not kept.
            if let Some(id) = notification_id
                && let Err(error) = self.notifications.erase_otp(id).await
            {
                tracing::warn!(error = ?error, "cannot erase an activation code no sink takes");
            }
            return Attempt::Unrouted;
        }
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
                (OutboxMessage::Notification(n), Some(otp), Some(otp_key)) => {
                    #[derive(Serialize)]
                    struct Code<'a> {
                        otp: &'a str,
                    }
                    let Ok(jwe) = tmp_protocol::jwe::encrypt_json(&Code { otp: otp.as_str() }, otp_key) else {
                        return Attempt::Permanent(format!("sink {}: cannot encrypt to its key", sink.settings.name));
                    };
                    let mut n = n.clone();
                    n.encrypted_payload = Some(jwe);
                    OutboxMessage::Notification(n).to_json()
                }
                _ => message.to_json(),
            };
            let body = json!({ "type": event_type, "timestamp": timestamp, "data": data });
            let name = &sink.settings.name;
            match sink.api.call_for_status(Method::POST, "", Some(&body), Some(key), correlation_id).await {
                Ok(()) => {}
                Err(e) if e.is_key_rejected() => permanent.push(format!("sink {name}: HTTP 422")),
                Err(e) => match Attempt::of(e) {
                    Attempt::Transient { error, retry_after } => {
                        first_transient
                            .get_or_insert(Attempt::Transient { error: format!("sink {name}: {error}"), retry_after });
                    }
                    Attempt::Unauthorized(error) => {
                        first_transient.get_or_insert(Attempt::Unauthorized(format!("sink {name}: {error}")));
                    }
                    Attempt::Permanent(error) => permanent.push(format!("sink {name}: {error}")),
                    Attempt::Delivered | Attempt::Unrouted => {}
                },
            }
        }
        if let Some(transient) = first_transient {
            return transient;
        }
        if !permanent.is_empty() {
            return Attempt::Permanent(permanent.join("; "));
        }
        if let Some(id) = notification_id
            && let Err(error) = self.notifications.erase_otp(id).await
        {
            // Housekeeping erases it at expiry anyway.
            tracing::warn!(error = ?error, "cannot erase a delivered activation code");
        }
        Attempt::Delivered
    }

    async fn otp(&self, notification_id: &str) -> Result<Option<Zeroizing<String>>, Attempt> {
        let transient = |e: String| Attempt::Transient { error: e, retry_after: None };
        let notification = self
            .notifications
            .find_notification(notification_id)
            .await
            .map_err(|_| transient("cannot read the notification".into()))?;
        let Some((Some(ciphertext), Some(key_id))) = notification.map(|n| (n.otp_ciphertext, n.otp_key_id)) else {
            return Ok(None);
        };
        let plaintext = self
            .keys
            .data_keys
            .current()
            .decrypt(&key_id, &ciphertext, &aad::otp(notification_id))
            .map_err(|e| unsealing_failed("the activation code", e))?;
        let otp = String::from_utf8(plaintext.to_vec())
            .map_err(|_| Attempt::Permanent("the activation code is corrupt".into()))?;
        Ok(Some(Zeroizing::new(otp)))
    }
}

/// A sealed value that does not open. Under a key this process lacks, it is retried: another
/// replica may already seal under a key this one gets at its next reload, or `keys reseal`
/// moved the value after this delivery read it (the next attempt reads it again). Anything
/// else — a wrong tag, a value moved between rows — will never open.
fn unsealing_failed(what: &str, error: AtRestError) -> Attempt {
    match error {
        AtRestError::UnknownKeyId => Attempt::Transient {
            error: format!("{what} is sealed under a data key this adapter does not have (keys.data_keys)"),
            retry_after: None,
        },
        _ => Attempt::Permanent(format!("{what} cannot be decrypted")),
    }
}

fn card_data(jwe: Option<String>) -> Result<String, Failure> {
    jwe.ok_or_else(|| Failure::Unmapped("the outbox row lacks card data".into()))
}

/// Approach `external`: the TMP API's card-lifecycle methods.
async fn to_tmp(
    client: &TmpApiClient,
    event: &ForwardedEvent,
    jwe: Option<String>,
    key: &str,
    correlation_id: &str,
) -> Result<(), Failure> {
    let card_id = event.card_id.as_str();
    match &event.body {
        ForwardedBody::CardStatusChanged(d) => {
            let update = CardStatusUpdate {
                status: d.status,
                reason: d.reason.clone(),
                propagate_to_tokens: d.propagate_to_tokens,
            };
            client.update_card_status(card_id, &update, key, correlation_id).await?
        }
        ForwardedBody::CardClosed(d) => {
            let update = CardStatusUpdate {
                status: IssuerCardStatus::Closed,
                reason: d.reason.clone(),
                propagate_to_tokens: None,
            };
            client.update_card_status(card_id, &update, key, correlation_id).await?
        }
        ForwardedBody::CardReplaced { new_card_id, tokens } => {
            let replace = CardReplace {
                new_card_id: new_card_id.to_string(),
                tokens: *tokens,
                encrypted_payload: card_data(jwe)?,
            };
            client.replace_card(card_id, &replace, key, correlation_id).await?
        }
        ForwardedBody::CardRenewed {} => {
            let update = CardExpiryUpdate { encrypted_payload: card_data(jwe)? };
            client.update_card_expiry(card_id, &update, key, correlation_id).await?
        }
        ForwardedBody::CardMetadataUpdated(metadata) => {
            client.update_card_metadata(card_id, metadata, key, correlation_id).await?
        }
        other => return Err(Failure::Unmapped(format!("no TMP API mapping for `{}`", other.type_name()))),
    }
    Ok(())
}

/// Approach `datacore`: the Lifecycle API.
async fn to_lifecycle(
    client: &LifecycleApiClient,
    event: &ForwardedEvent,
    jwe: Option<String>,
    key: &str,
    correlation_id: &str,
) -> Result<(), Failure> {
    let card_id = event.card_id.as_str();
    match &event.body {
        ForwardedBody::CardIssued { product_category, cardholder } => {
            let card = LifecycleCard {
                card_id: card_id.to_owned(),
                status: IssuerCardStatus::Active,
                product_category: product_category.as_ref().map(|c| c.to_string()),
                cardholder: cardholder.clone(),
                encrypted_payload: card_data(jwe)?,
            };
            client.create_card(&card, key, correlation_id).await?
        }
        ForwardedBody::CardStatusChanged(d) => {
            let update = LifecycleCardUpdate {
                status: Some(d.status),
                propagate_to_tokens: d.propagate_to_tokens,
                ..Default::default()
            };
            client.update_card(card_id, &update, key, correlation_id).await?
        }
        ForwardedBody::CardReplaced { new_card_id, tokens } => {
            let replace = LifecycleCardReplace {
                new_card_id: new_card_id.to_string(),
                tokens: *tokens,
                encrypted_payload: card_data(jwe)?,
            };
            client.replace_card(card_id, &replace, key, correlation_id).await?
        }
        ForwardedBody::CardRenewed {} => {
            let update = LifecycleCardUpdate { encrypted_payload: Some(card_data(jwe)?), ..Default::default() };
            client.update_card(card_id, &update, key, correlation_id).await?
        }
        ForwardedBody::CardClosed(_) => client.delete_card(card_id, key, correlation_id).await?,
        ForwardedBody::CardholderUpdated(contact) => {
            let update = LifecycleCardUpdate { cardholder: Some(contact.clone()), ..Default::default() };
            client.update_card(card_id, &update, key, correlation_id).await?
        }
        ForwardedBody::CardMetadataUpdated(metadata) => {
            let update = LifecycleCardUpdate { metadata: Some(metadata.clone()), ..Default::default() };
            client.update_card(card_id, &update, key, correlation_id).await?
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_under_a_key_this_replica_lacks_is_retried_and_a_value_that_does_not_open_is_not() {
        // Another replica sealed under a newer key, or a reseal moved the value: it opens later.
        let later = unsealing_failed("the activation code", AtRestError::UnknownKeyId);
        assert!(matches!(later, Attempt::Transient { .. }), "{later:?}");
        for never in [AtRestError::DecryptionFailed, AtRestError::Malformed] {
            let attempt = unsealing_failed("sealed card data", never);
            assert_eq!(attempt, Attempt::Permanent("sealed card data cannot be decrypted".into()));
        }
    }
}
