//! Callback delivery toward the issuer, behaving like a real at-least-once sender: failed
//! callbacks are retried with exponential backoff under the same `X-Idempotency-Key` (a new
//! `webhook-id` each attempt); delivered ones may be duplicated; callbacks may be delayed and
//! held in a window and sent newest first (reordered). All of it is configurable
//! ([`crate::config::SenderBehaviour`]) and changeable at run time.
//!
//! One worker delivers callbacks one after another, so without reordering the issuer sees them
//! in the order the changes happened.

pub mod issuer;

use std::sync::Arc;
use std::time::Duration;
use tmp_protocol::fields::{FieldError, FreeText, Id};

use tmp_protocol::issuer_api::{
    ActivationCode, NOTIFICATIONS_PATH, NotificationRequest, TOKEN_EVENTS_PATH, TokenEventRequest,
};
use tmp_protocol::sensitive::Otp;
use tmp_protocol::trace_context::TraceParent;
use tokio::sync::{mpsc, watch};

use self::issuer::{Answer, Failure};
use crate::context::Mock;
use crate::state::Effect;

/// One logical callback; its id is also its idempotency key across every attempt.
pub enum Callback {
    TokenEvent(TokenEventRequest),
    Notification(NotificationRequest, Option<Otp>),
}

impl Callback {
    pub fn id(&self) -> &str {
        match self {
            Callback::TokenEvent(e) => &e.event_id,
            Callback::Notification(n, _) => &n.notification_id,
        }
    }

    fn path(&self) -> &'static str {
        match self {
            Callback::TokenEvent(_) => TOKEN_EVENTS_PATH,
            Callback::Notification(..) => NOTIFICATIONS_PATH,
        }
    }

    /// The request an effect calls for. Its ids are the mock's own or ones the contract's rules
    /// already let in (card ids from the issuer's answers and the simulator's requests), so
    /// `Err` means a value that bypassed those rules.
    pub fn from_effect(effect: Effect) -> Result<Callback, FieldError> {
        Ok(match effect {
            Effect::TokenEvent { token, tokenization_id, previous, cause, at } => {
                Callback::TokenEvent(TokenEventRequest {
                    event_id: Id::parse(format!("evt-{}", uuid::Uuid::new_v4().simple()))?,
                    token_id: Id::parse(token.token_id)?,
                    card_id: Id::parse(token.card_id)?,
                    tsp: token.tsp,
                    token_requestor: token.token_requestor,
                    status: token.status,
                    previous_status: previous,
                    reason: Some(FreeText::parse(cause.reason)?),
                    reason_code: cause.reason_code,
                    initiator: Some(cause.initiator),
                    tokenization_id: tokenization_id.map(Id::parse).transpose()?,
                    token_last4: token.token_last4,
                    occurred_at: at,
                })
            }
            Effect::Notification { kind, card_id, token_id, token_requestor, otp, channel, step_up_method, at } => {
                let (otp, expires_at) = match otp {
                    Some((otp, expires_at)) => (Some(otp), Some(expires_at)),
                    None => (None, None),
                };
                Callback::Notification(
                    NotificationRequest {
                        notification_id: Id::parse(format!("ntf-{}", uuid::Uuid::new_v4().simple()))?,
                        notification_type: kind,
                        card_id: Id::parse(card_id)?,
                        token_id: token_id.map(Id::parse).transpose()?,
                        token_requestor,
                        channel,
                        step_up_method,
                        encrypted_payload: None,
                        expires_at,
                        occurred_at: at,
                    },
                    otp,
                )
            }
        })
    }
}

/// The queue into the sender, and a count of callbacks not yet settled (delivered, or given up).
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Queued>,
    pending: Arc<watch::Sender<usize>>,
}

/// A callback with the trace of what caused it (the request being served when it was queued),
/// which every attempt carries on as `traceparent`.
struct Queued {
    callback: Callback,
    trace: TraceParent,
}

pub struct OutboxReceiver(mpsc::UnboundedReceiver<Queued>);

impl Outbox {
    pub fn new() -> (Outbox, OutboxReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Outbox { tx, pending: Arc::new(watch::Sender::new(0)) }, OutboxReceiver(rx))
    }

    /// Queues the callback of an effect; returns its id (none when the effect holds an id the
    /// contract refuses: see [`Callback::from_effect`]; it is logged and not sent).
    pub fn push(&self, effect: Effect) -> Option<String> {
        let callback = match Callback::from_effect(effect) {
            Ok(callback) => callback,
            Err(error) => {
                tracing::error!(%error, "an effect holds an id or text the contract refuses: not sent");
                return None;
            }
        };
        let id = callback.id().to_owned();
        let trace = tmp_edge::correlation::current_trace().unwrap_or_else(TraceParent::start);
        self.pending.send_modify(|n| *n += 1);
        if self.tx.send(Queued { callback, trace }).is_err() {
            // The worker is gone (the mock is stopping): nothing will deliver it.
            self.pending.send_modify(|n| *n = n.saturating_sub(1));
        }
        Some(id)
    }

    pub fn pending(&self) -> usize {
        *self.pending.borrow()
    }

    /// Resolves once every queued callback is settled.
    pub async fn wait_idle(&self) {
        let mut rx = self.pending.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    fn settled(&self) {
        self.pending.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The worker: takes callbacks in order, holds a window when reordering, delivers.
pub async fn run(mock: Arc<Mock>, mut rx: OutboxReceiver) {
    while let Some(first) = rx.0.recv().await {
        let behaviour = mock.sender_behaviour();
        let mut batch = vec![first];
        if behaviour.reorder_window >= 2 {
            let until = tokio::time::Instant::now() + Duration::from_millis(behaviour.reorder_hold_ms);
            while batch.len() < behaviour.reorder_window {
                match tokio::time::timeout_at(until, rx.0.recv()).await {
                    Ok(Some(callback)) => batch.push(callback),
                    _ => break,
                }
            }
            batch.reverse();
        }
        for Queued { callback, trace } in batch {
            let id = callback.id().to_owned();
            tmp_edge::correlation::scope(id, trace, deliver(&mock, callback)).await;
            mock.outbox.settled();
        }
    }
}

fn retryable(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// Serializes the callback, encrypting the OTP (if any) to the issuer's current key.
async fn body_of(mock: &Mock, callback: &mut Callback, refresh_key: bool) -> Result<Vec<u8>, Failure> {
    match callback {
        Callback::TokenEvent(event) => serde_json::to_vec(event).map_err(|e| Failure::Local(e.to_string())),
        Callback::Notification(notification, otp) => {
            if let Some(otp) = otp {
                let key = mock.issuer.encryption_key(refresh_key).await?;
                let code = ActivationCode { otp: otp.clone() };
                notification.encrypted_payload =
                    Some(tmp_protocol::jwe::encrypt_json(&code, &key).map_err(|e| Failure::Local(e.to_string()))?);
            }
            serde_json::to_vec(notification).map_err(|e| Failure::Local(e.to_string()))
        }
    }
}

#[tracing::instrument(skip_all, fields(callback = callback.id()))]
async fn deliver(mock: &Mock, mut callback: Callback) {
    let behaviour = mock.sender_behaviour();
    if behaviour.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(behaviour.delay_ms)).await;
    }
    let id = callback.id().to_owned();
    let path = callback.path();
    let mut body = None;
    let mut refresh_key = false;
    let mut delivered = 0u32;
    let mut attempt = 0u32;
    while attempt < behaviour.max_attempts {
        attempt += 1;
        // Built once and resent byte for byte: a retry under the same idempotency key must
        // carry the same body. Rebuilt only after the issuer refused our encryption.
        let bytes = match &body {
            Some(bytes) => Ok(bytes),
            None => match body_of(mock, &mut callback, refresh_key).await {
                Ok(bytes) => Ok(&*body.insert(bytes)),
                Err(failure) => Err(failure),
            },
        };
        let result = match bytes {
            Ok(bytes) => mock.issuer.post(path, &id, &id, bytes, attempt).await,
            Err(failure) => Err(failure),
        };
        match result {
            Ok(answer) if answer.is_success() => {
                delivered = attempt;
                break;
            }
            Ok(answer) if is_stale_key(&answer) && !refresh_key => {
                // The issuer rotated its key; nothing was stored under the idempotency key.
                tracing::info!("issuer refused the encrypted payload; refetching its key");
                refresh_key = true;
                body = None;
                continue;
            }
            Ok(answer) if !retryable(answer.status) => {
                tracing::warn!(status = answer.status, "the issuer rejected a callback; not retrying");
                return;
            }
            Ok(Answer { status, .. }) => tracing::info!(status, attempt, "callback failed; will retry"),
            Err(Failure::Discarded) => {
                tracing::info!("an injected fault discarded the callback: the issuer will not hear of it");
                return;
            }
            Err(failure) => tracing::info!(%failure, attempt, "callback failed; will retry"),
        }
        if attempt < behaviour.max_attempts {
            tokio::time::sleep(backoff(&behaviour, attempt)).await;
        }
    }
    if delivered == 0 {
        tracing::warn!(attempts = attempt, "giving up on a callback");
        return;
    }
    if behaviour.duplicate_rate > 0.0 && rand::random_bool(behaviour.duplicate_rate) {
        let Some(bytes) = &body else { return };
        for copy in 1..=behaviour.duplicate_copies {
            // Same key and body, new webhook-id: what an at-least-once sender produces.
            let _ = mock.issuer.post(path, &id, &id, bytes, delivered + copy).await;
        }
    }
}

fn is_stale_key(answer: &Answer) -> bool {
    answer.status == 422 && answer.error_code().as_deref() == Some("INVALID_ENCRYPTED_PAYLOAD")
}

/// `initial · 2^(attempt-1)`, capped.
pub fn backoff(behaviour: &crate::config::SenderBehaviour, attempt: u32) -> Duration {
    let factor = 1u64.checked_shl(attempt.saturating_sub(1)).unwrap_or(u64::MAX);
    Duration::from_millis(behaviour.backoff_initial_ms.saturating_mul(factor).min(behaviour.backoff_max_ms))
}
