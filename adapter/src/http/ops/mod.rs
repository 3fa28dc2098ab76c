//! The ops API: the issuer's app backend and back office talk to TMP through the adapter, on a
//! listener of its own (`ops.host`/`ops.port`, optionally HTTPS with client certificates),
//! never on the Issuer API's port (docs/ops-api.md).
//!
//! - [`auth`]: API keys (`tmpk_…`, hashed, scoped, revocable), operator tokens
//!   (`ops.api_tokens`, every scope) and client certificates (`ops.mtls.subjects`);
//! - [`rate_limit`]: a token bucket per caller;
//! - [`tokens`]: a card's tokens (TMP, or the local mirror marked stale) and token actions;
//! - [`provisioning`]: push provisioning through TMP's sign card (Apple Pay, Google Pay);
//! - [`audit`]: the decision audit of a card and the audit of operator writes;
//! - [`outbox`]: outbox administration;
//! - [`config`]: reloading keys, secrets and certificates.
//!
//! Every write goes through [`write`]: scope check,
//! `X-Idempotency-Key` (same key and body → the stored answer, other body → 422), then one
//! audit row (who, what, on what, why, outcome) committed with the idempotency record.

pub mod audit;
pub mod auth;
pub mod config;
pub mod outbox;
pub mod provisioning;
pub mod rate_limit;
pub mod tokens;

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tmp_protocol::error::ErrorBody;
use tmp_protocol::fields::{FreeText, Id};
use utoipa::IntoResponses;

use super::AppState;
use super::idempotency::{self, Begin, Pending};
use crate::domain::scopes::Scope;
pub use crate::ops::audit::AuditDraft;
use crate::outbound::{CallError, TmpApiClient};
use crate::store::{IdempotentWrite, OpsAuditRecord};
use tmp_edge::correlation;
use tmp_edge::error::{ApiError, resource};
use tmp_edge::json::parse_body;

pub use auth::{OpsClientSubject, Principal};

/// Largest accepted ops request body.
pub const BODY_LIMIT: usize = 16 * 1024;
/// Longest `reason` kept.
pub const MAX_REASON: usize = 200;

/// State of the ops listener only.
pub struct OpsState {
    pub auth: auth::Authenticator,
    pub rate_limiter: rate_limit::RateLimiter,
    /// Replaced by a reload (`forwarding.tmp_api`'s secrets and TLS).
    pub tmp: std::sync::RwLock<std::sync::Arc<TmpApiClient>>,
}

impl OpsState {
    /// The TMP API client in force.
    pub fn tmp(&self) -> std::sync::Arc<TmpApiClient> {
        self.tmp.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Route table of the ops listener. Nothing of the Issuer API is served here.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Literal segments before patterns: `replay` before `{id}`.
    cfg.service(resource("/ops/v1/cards/{cardId}/tokens", "GET", tokens::list))
        // Before `{action}`, which would take `history` as an action name.
        .service(resource("/ops/v1/tokens/{tokenId}/history", "GET", tokens::history))
        .service(resource("/ops/v1/tokens/{tokenId}/activation-code/resend", "POST", tokens::resend_code))
        .service(resource("/ops/v1/tokens/{tokenId}/{action}", "POST", tokens::action))
        // Before `{action}`: the first matching resource serves.
        .service(resource("/ops/v1/cards/{cardId}/tokens/reconcile", "POST", tokens::reconcile))
        .service(resource("/ops/v1/cards/{cardId}/tokens/{action}", "POST", tokens::card_action))
        .service(resource("/ops/v1/cards/{cardId}/push-provisioning/apple-pay", "POST", provisioning::apple_pay))
        .service(resource("/ops/v1/cards/{cardId}/push-provisioning/google-pay", "POST", provisioning::google_pay))
        .service(resource("/ops/v1/cards/{cardId}/push-provisioning/samsung-pay", "POST", provisioning::samsung_pay))
        .service(resource("/ops/v1/cards/{cardId}/push-provisioning/web", "POST", provisioning::web_push))
        .service(resource("/ops/v1/cards/{cardId}/decisions", "GET", audit::decisions))
        .service(resource("/ops/v1/audit", "GET", audit::list))
        .service(resource("/ops/v1/outbox", "GET", outbox::list))
        .service(resource("/ops/v1/outbox/replay", "POST", outbox::replay))
        .service(resource("/ops/v1/outbox/{id}", "GET", outbox::show))
        .service(resource("/ops/v1/outbox/{id}/retry", "POST", outbox::retry))
        .service(resource("/ops/v1/outbox/{id}/skip", "POST", outbox::skip))
        .service(resource("/ops/v1/config/reload", "POST", config::reload))
        .service(resource("/openapi.json", "GET", openapi))
        .service(resource("/", "GET", index));
}

/// `GET /` of the ops listener (no credentials needed: it names only public paths).
pub async fn index() -> HttpResponse {
    tmp_edge::index::answer(
        "tmp-adapter",
        "ops",
        env!("CARGO_PKG_VERSION"),
        &[("openapi", "/openapi.json"), ("api", "/ops/v1/…"), ("docs", "docs/ops-api.md in the kit's repository")],
    )
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(crate::openapi::ops_api_json())
}

/// Error answers of the ops API.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only describes the answers; never constructed.
pub enum OpsErrors {
    /// Malformed JSON body, or a malformed `X-Idempotency-Key`.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No credentials, or an unknown or revoked API key, an unknown operator token, a client
    /// certificate whose subject is not configured (`UNAUTHENTICATED`).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The caller lacks the route's scope (`FORBIDDEN`).
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Unknown outbox row; a card or token TMP does not know (`NOT_FOUND`).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The token's state forbids the action (`INVALID_TOKEN_STATE`); the card or the outbox row
    /// is in a state that forbids it (`CONFLICT`).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// Body over 16 KiB.
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// Bad path, query parameter or body field (`VALIDATION_FAILED`); an idempotency key reused
    /// with another body (`IDEMPOTENCY_KEY_REUSED`).
    #[response(status = 422)]
    Unprocessable(ErrorBody),
    /// The caller's rate limit is spent; retry after `Retry-After` seconds (`RATE_LIMITED`).
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
    /// TMP or the database unavailable; retry after `Retry-After` seconds (`UNAVAILABLE`).
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

// ---- writes: scope, idempotency, audit ----

/// A write that is not a replay: its pending idempotency record when the caller sent a key,
/// and the idempotency key of the downstream (TMP) call.
pub struct FreshWrite {
    pending: Option<Pending>,
    pub downstream_key: String,
}

enum BeginWrite {
    /// Answered before under this key with the same body: the stored answer.
    Replay(HttpResponse),
    Fresh(FreshWrite),
}

/// Checks the scope, then `X-Idempotency-Key` (scoped by caller and path).
async fn begin_write(
    state: &AppState,
    principal: &Principal,
    req: &HttpRequest,
    scope: Scope,
    body: &[u8],
) -> Result<BeginWrite, ApiError> {
    principal.require(scope)?;
    let idempotency_scope = format!("ops {} {}", principal.id, req.path());
    match idempotency::begin_optional(&state.store, &idempotency_scope, req, body).await? {
        Some(Begin::Replay(response)) => Ok(BeginWrite::Replay(response)),
        Some(Begin::Fresh(pending)) => {
            let downstream_key = pending.downstream_key();
            Ok(BeginWrite::Fresh(FreshWrite { pending: Some(pending), downstream_key }))
        }
        None => Ok(BeginWrite::Fresh(FreshWrite { pending: None, downstream_key: uuid::Uuid::new_v4().to_string() })),
    }
}

/// A successful write's answer.
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn ok<T: Serialize>(value: &T) -> Result<Answer, ApiError> {
        let body = serde_json::to_vec(value).map_err(|e| ApiError::Internal(e.into()))?;
        Ok(Answer { status: StatusCode::OK, body })
    }
}

fn audit_record(draft: &AuditDraft, principal: &Principal, outcome: &str, status: StatusCode) -> OpsAuditRecord {
    draft.record(&principal.actor, outcome, status.as_u16(), correlation::current())
}

/// Audits a write refused before it began (scope, idempotency key).
async fn refused(
    draft: AuditDraft,
    state: &AppState,
    principal: &Principal,
    error: ApiError,
) -> Result<HttpResponse, ApiError> {
    let record = audit_record(&draft, principal, &error.wire_code(), actix_web::ResponseError::status_code(&error));
    if let Err(e) = state.store.record_ops_audit(&record, None).await {
        tracing::warn!(error = ?e, "cannot audit a refused ops write");
    }
    Err(error)
}

/// Audits the write's outcome — with its idempotency record, in one transaction, when it
/// succeeded — and answers.
async fn finish(
    draft: AuditDraft,
    state: &AppState,
    principal: &Principal,
    write: FreshWrite,
    result: Result<Answer, ApiError>,
) -> Result<HttpResponse, ApiError> {
    match result {
        Ok(answer) => {
            let record = audit_record(&draft, principal, "ok", answer.status);
            tracing::info!(
                who = %record.actor,
                action = %record.action,
                target = %record.target.as_deref().unwrap_or("-"),
                reason = %record.reason.as_deref().unwrap_or("-"),
                "ops write"
            );
            match write.pending {
                Some(pending) => {
                    let stored = pending.record(answer.status, answer.body);
                    let written = state.store.record_ops_audit(&record, Some(&stored)).await?;
                    pending.settle(written, &stored)
                }
                None => {
                    let written = state.store.record_ops_audit(&record, None).await?;
                    debug_assert_eq!(written, IdempotentWrite::Committed);
                    Ok(HttpResponse::build(answer.status).content_type("application/json").body(answer.body))
                }
            }
        }
        Err(error) => {
            let status = actix_web::ResponseError::status_code(&error);
            let record = audit_record(&draft, principal, &error.wire_code(), status);
            tracing::info!(who = %record.actor, action = %record.action, outcome = %record.outcome, "ops write refused");
            if let Err(e) = state.store.record_ops_audit(&record, None).await {
                tracing::warn!(error = ?e, "cannot audit a failed ops write");
            }
            Err(error)
        }
    }
}

/// The one ceremony of every ops API write: read the body, check the scope and
/// `X-Idempotency-Key` (a replay answers at once), run `work` — which fills in the audit draft as
/// it learns the card and the reason, and may use the downstream idempotency key — then audit the
/// outcome (with the idempotency record, in one transaction) and answer. A refusal at any step is
/// audited too.
pub async fn write(
    state: &AppState,
    principal: &Principal,
    req: &HttpRequest,
    body: web::Payload,
    scope: Scope,
    mut draft: AuditDraft,
    work: impl AsyncFnOnce(&mut AuditDraft, &FreshWrite, &Bytes) -> Result<Answer, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let bytes = read_body(state, req, body).await?;
    let write = match begin_write(state, principal, req, scope, &bytes).await {
        Ok(BeginWrite::Replay(response)) => return Ok(response),
        Ok(BeginWrite::Fresh(write)) => write,
        Err(error) => return refused(draft, state, principal, error).await,
    };
    let result = work(&mut draft, &write, &bytes).await;
    finish(draft, state, principal, write, result).await
}

// ---- TMP errors → ops API errors (the one place) ----

/// What the ops API was doing when TMP failed, for the error's wording.
pub enum TmpCall<'a> {
    CardTokens { card_id: &'a str },
    Sign { card_id: &'a str },
    TokenAction { token_id: &'a str, action: &'a str },
}

/// Maps a TMP failure onto the ops API's errors: TMP down → 503 with `Retry-After`; an unknown
/// card or token → 404; a token whose state forbids the action → 409 `INVALID_TOKEN_STATE`; a
/// card that cannot be pushed → 409 `CONFLICT`; a request TMP found invalid → 422; anything else
/// (TMP refusing the adapter's own credentials) → 500, logged.
pub fn tmp_error(call: TmpCall<'_>, error: CallError) -> ApiError {
    let says = |answer: &tmp_edge::client::ErrorAnswer| {
        // TMP's own words only when they pass the free-text rules (no card number, short).
        answer
            .message
            .as_deref()
            .filter(|m| FreeText::parse(*m).is_ok() && !m.chars().any(char::is_control))
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    };
    match error {
        CallError::Unavailable { cause, retry_after } => ApiError::UpstreamUnavailable {
            message: format!("TMP is unavailable ({cause}); retry later"),
            retry_after_secs: retry_after.map_or(1, |d| d.as_secs().clamp(1, 60)),
        },
        CallError::Refused(answer) => match (answer.status, &call) {
            (404, TmpCall::CardTokens { card_id } | TmpCall::Sign { card_id }) => {
                ApiError::UnknownResource(format!("TMP does not know card `{card_id}`"))
            }
            (404, TmpCall::TokenAction { token_id, .. }) => {
                ApiError::UnknownResource(format!("TMP does not know token `{token_id}`"))
            }
            (409, TmpCall::TokenAction { token_id, action }) => ApiError::InvalidTokenState(format!(
                "TMP refused to {action} token `{token_id}` in its current state{}",
                says(&answer)
            )),
            (409, _) => ApiError::Conflict(format!("TMP refused: the card's state forbids this{}", says(&answer))),
            (422, _) => ApiError::validation(format!("TMP refused the request as invalid{}", says(&answer))),
            _ => ApiError::Internal(anyhow::anyhow!("TMP refused the adapter's call: {}", answer.summary())),
        },
        CallError::BadAnswer(what) => ApiError::Internal(anyhow::anyhow!("TMP answered outside the contract: {what}")),
    }
}

// ---- helpers ----

/// The body, at most [`BODY_LIMIT`] bytes (a larger declared `Content-Length` is refused before
/// reading) within `server.body_read_timeout_secs`: a caller trickling a body cannot hold a
/// connection of the ops listener.
pub async fn read_body(state: &AppState, req: &HttpRequest, body: web::Payload) -> Result<Bytes, ApiError> {
    let timeout = std::time::Duration::from_secs(state.settings.server.body_read_timeout_secs);
    tmp_edge::admit::read_body(req.headers(), &mut body.into_inner(), BODY_LIMIT, Some(timeout)).await
}

/// An empty body is the default value.
pub fn optional_json<T: Default + serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) { Ok(T::default()) } else { parse_body(bytes) }
}

/// An optional `reason`: at most [`MAX_REASON`] characters, no control characters, no card
/// number; blank is none.
pub fn optional_reason(reason: Option<String>) -> Result<Option<String>, ApiError> {
    match reason {
        Some(r) if r.chars().count() > MAX_REASON || r.chars().any(char::is_control) => Err(ApiError::validation(
            format!("`reason` must be at most {MAX_REASON} characters without control characters"),
        )),
        Some(r) if r.trim().is_empty() => Ok(None),
        Some(r) => {
            FreeText::parse(r.as_str()).map_err(|e| crate::http::error::invalid_field("reason", e))?;
            Ok(Some(r))
        }
        None => Ok(None),
    }
}

/// A required `reason` (token actions).
pub fn required_reason(reason: Option<String>) -> Result<String, ApiError> {
    optional_reason(reason)?.ok_or_else(|| ApiError::validation("`reason` is required: say why, for the audit"))
}

/// A `limit` query parameter: 1 to `max`, `default` when absent.
pub fn limit(value: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = value.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(ApiError::validation(format!("`limit` must be between 1 and {max}")));
    }
    Ok(limit)
}

/// A path id (card, token): the shared id rules, 422 otherwise.
pub fn path_id(field: &str, value: &str) -> Result<(), ApiError> {
    Id::parse(value).map(drop).map_err(|e| crate::http::error::invalid_field(field, e))
}

pub fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}
