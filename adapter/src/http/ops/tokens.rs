//! A card's tokens, and token actions (activate, suspend, resume, deactivate) through the TMP
//! API. Reading falls back to the adapter's token mirror, marked stale, when TMP is unavailable.

use crate::ops::tokens::{self as reconcile, Reconciliation};
use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use tmp_protocol::enums::NotificationChannel;
use tmp_protocol::enums::{ChangeInitiator, ReasonCode, TokenStatus, Wallet};
use tmp_protocol::error::ErrorCode;
use tmp_protocol::fields::FreeText;
use tmp_protocol::tmp_api::{
    ActionInitiator, ActivationCodeState, ResendActivationCodeRequest, TokenAction, TokenActionRequest, TokenInfo,
};
use utoipa::ToSchema;

use super::{Answer, AuditDraft, OpsErrors, OpsState, Principal, TmpCall, path_id};
use crate::domain::scopes::Scope;
use crate::http::AppState;
use crate::outbound::CallError;
use crate::store::{StoredTokenEvent, TokenRecord};
use tmp_edge::correlation;
use tmp_edge::error::ApiError;
use tmp_edge::json::parse_body;

/// A token as the ops API shows it, from TMP or from the local mirror.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpsToken {
    pub token_id: String,
    pub card_id: String,
    pub status: TokenStatus,
    /// `MDES` or `VTS`.
    pub tsp: String,
    pub token_requestor_id: String,
    /// `APPLE_PAY`, `GOOGLE_PAY`, `SAMSUNG_PAY`, `MERCHANT` or `OTHER`.
    pub wallet: String,
    /// The token requestor's name (TMP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_requestor_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_last4: Option<String>,
    /// TMP only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// The device the token lives on (TMP only): the filter of a card-wide action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// An `INACTIVE` token's pending activation code: expiry, attempts left, channel (TMP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_code: Option<ActivationCodeState>,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&TokenInfo> for OpsToken {
    fn from(t: &TokenInfo) -> Self {
        OpsToken {
            token_id: t.token_id.clone(),
            card_id: t.card_id.clone(),
            status: t.status,
            tsp: t.tsp.as_str().to_owned(),
            token_requestor_id: t.token_requestor.id.to_string(),
            wallet: t.token_requestor.wallet.as_str().to_owned(),
            token_requestor_name: Some(t.token_requestor.name.to_string()),
            token_last4: t.token_last4.clone(),
            device_name: t.device_name.clone(),
            device_id: t.device_id.clone(),
            activation_code: t.activation_code.clone(),
            updated_at: super::ts(t.updated_at),
        }
    }
}

impl From<&TokenRecord> for OpsToken {
    fn from(t: &TokenRecord) -> Self {
        OpsToken {
            token_id: t.token_id.clone(),
            card_id: t.card_id.clone(),
            status: t.status,
            tsp: t.tsp.clone(),
            token_requestor_id: t.token_requestor_id.clone(),
            wallet: t.wallet.clone(),
            token_requestor_name: None,
            token_last4: t.token_last4.clone(),
            device_name: None,
            device_id: None,
            activation_code: None,
            updated_at: super::ts(t.updated_at),
        }
    }
}

/// Where the answer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenSource {
    /// TMP answered.
    Tmp,
    /// TMP was unavailable: the adapter's mirror, fed by TMP's token events.
    Mirror,
}

/// A card's tokens.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardTokens {
    pub card_id: String,
    pub source: TokenSource,
    /// True when TMP was unavailable and the mirror answered: it may lag behind TMP.
    pub stale: bool,
    /// When TMP answered: how many of the card's tokens the adapter's mirror has wrong (TMP
    /// lists it and the mirror does not, another status, or the mirror has a live token TMP does
    /// not list). A read repairs nothing: `POST .../tokens/reconcile` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_drift: Option<u32>,
    pub tokens: Vec<OpsToken>,
}

/// Optional reason for the audit; `deactivateUnknown` also deactivates, in the mirror, the live
/// tokens TMP does not list on the card (only once you know TMP dropped them: a token TMP moved
/// to a replacement card looks the same until its token event arrives).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReconcileBody {
    /// 1 to 200 characters, no card number.
    pub reason: Option<String>,
    #[serde(default)]
    pub deactivate_unknown: bool,
}

/// One token event as the adapter received it from TMP.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenHistoryEvent {
    pub event_id: String,
    pub status: TokenStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<TokenStatus>,
    /// TMP's reason (e.g. `CARD_BLOCKED`, `ACTIVATION_CODE_VERIFIED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The coded reason, when the change was asked for with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<ReasonCode>,
    /// Who caused the change, when TMP said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator: Option<ChangeInitiator>,
    /// RFC 3339: when the change happened (orders the history).
    pub occurred_at: String,
    /// RFC 3339: when the adapter received the event.
    pub received_at: String,
    /// Whether the event changed the token's status in the mirror when it arrived: an event
    /// older than the mirror's state is history only.
    pub applied: bool,
}

impl From<&StoredTokenEvent> for TokenHistoryEvent {
    fn from(stored: &StoredTokenEvent) -> Self {
        let e = &stored.event;
        TokenHistoryEvent {
            event_id: e.event_id.clone(),
            status: e.status,
            previous_status: e.previous_status,
            reason: e.reason.clone(),
            reason_code: e.reason_code,
            initiator: e.initiator,
            occurred_at: super::ts(e.occurred_at),
            received_at: super::ts(e.received_at),
            applied: stored.applied,
        }
    }
}

/// What happened to a token, as the adapter knows it: the mirror's state, the issuer's
/// decisions in the tokenization that created it, and every token event TMP sent, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenHistory {
    pub token: OpsToken,
    /// The tokenization that created the token, when TMP's token events named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenization_id: Option<String>,
    /// The adapter's decisions in that tokenization (a CVC check, the card verification),
    /// oldest first; empty when none was found (a stand-in, which found no card, is not linked).
    pub decisions: Vec<TokenizationDecision>,
    pub events: Vec<TokenHistoryEvent>,
}

/// One of the issuer's decisions in a token's tokenization: what was decided and why (the full
/// record, with the card's last four digits, is in the decision audit, `audit:read`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenizationDecision {
    /// `verify_card` or `verify_cvc`.
    pub operation: String,
    /// RFC 3339.
    pub decided_at: String,
    pub decision: String,
    pub reason: String,
    pub cvc_result: String,
    pub stand_in: bool,
}

/// Why a token action is taken (required, for the audit), and on whose behalf.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenActionBody {
    /// `LOST`, `STOLEN`, `FRAUD`, `FOUND`, `CUSTOMER_REQUEST` or `OTHER` (the default): sent to
    /// TMP, carried back on the token event, counted in reports.
    pub reason_code: Option<ReasonCode>,
    /// 1 to 200 characters, no card number.
    pub reason: Option<String>,
    /// `ISSUER` (default) or `CARDHOLDER` (the app acting for the cardholder). A token suspended
    /// by both resumes only when both have resumed it.
    pub initiator: Option<ActionInitiator>,
}

impl TokenActionBody {
    /// TMP's request, and the audit's reason (`CODE: words`).
    fn parse(self) -> Result<(TokenActionRequest, String), ApiError> {
        let reason = super::required_reason(self.reason)?;
        let reason_code = self.reason_code.unwrap_or(ReasonCode::Other);
        let audit = format!("{}: {reason}", reason_code.as_str());
        let reason = FreeText::parse(reason).map_err(|e| crate::http::error::invalid_field("reason", e))?;
        let initiator = self.initiator.unwrap_or(ActionInitiator::Issuer);
        Ok((TokenActionRequest { initiator, reason_code, reason }, audit))
    }
}

/// A card-wide action: the token action's reason, code and initiator (as for one token), and
/// which of the card's tokens it covers (all of them when neither filter is given).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CardTokensActionBody {
    pub reason_code: Option<ReasonCode>,
    /// 1 to 200 characters, no card number.
    pub reason: Option<String>,
    pub initiator: Option<ActionInitiator>,
    /// Only the tokens of this wallet.
    pub wallet: Option<Wallet>,
    /// Only the tokens on this device (TMP's `deviceId`): "phone lost: suspend every token on it".
    pub device_id: Option<String>,
}

/// What a card-wide action did to one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenActionOutcome {
    /// TMP applied the action.
    Done,
    /// Not tried, or TMP found nothing to do: the token's status already is what the action
    /// makes it (or forbids it, e.g. resuming an active token).
    Skipped,
    /// TMP refused (the token's state forbids it: another party still holds a suspension) or
    /// could not be reached; `error` says why. Send the request again with a new
    /// `X-Idempotency-Key` to try again (tokens already done come back `skipped`).
    Failed,
}

/// Why a token's action failed or was skipped.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenActionProblem {
    pub code: ErrorCode,
    pub message: String,
}

/// One token of a card-wide action.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardTokenResult {
    pub token_id: String,
    pub outcome: TokenActionOutcome,
    /// The token after the action (`done`), or as TMP listed it before.
    pub token: OpsToken,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TokenActionProblem>,
}

/// The answer of a card-wide action: one result per token the filters matched.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardTokensActionResult {
    pub card_id: String,
    /// `suspend`, `resume` or `deactivate`.
    pub action: String,
    pub done: u32,
    pub skipped: u32,
    pub failed: u32,
    pub tokens: Vec<CardTokenResult>,
}

/// A token action's path segment, and its audit action.
fn token_action(name: &str) -> Option<(TokenAction, &'static str)> {
    Some(match name {
        "activate" => (TokenAction::Activate, "token.activate"),
        "suspend" => (TokenAction::Suspend, "token.suspend"),
        "resume" => (TokenAction::Resume, "token.resume"),
        "deactivate" => (TokenAction::Deactivate, "token.deactivate"),
        _ => return None,
    })
}

/// Whether `action` can change a token in `status` (a suspended token may still take the
/// issuer's own suspension, which keeps it suspended when another party resumes it).
fn applies_to(action: TokenAction, status: TokenStatus) -> bool {
    match action {
        TokenAction::Activate => status == TokenStatus::Inactive,
        TokenAction::Suspend => matches!(status, TokenStatus::Active | TokenStatus::Suspended),
        TokenAction::Resume => status == TokenStatus::Suspended,
        TokenAction::Deactivate => status != TokenStatus::Deactivated,
    }
}

/// One token action at TMP, its failure in the ops API's terms.
async fn act(
    ops: &OpsState,
    token_id: &str,
    name: &str,
    action: TokenAction,
    request: &TokenActionRequest,
    downstream_key: &str,
) -> Result<TokenInfo, ApiError> {
    ops.tmp()
        .token_action(token_id, action, request, downstream_key, &correlation::current())
        .await
        .map_err(|e| super::tmp_error(TmpCall::TokenAction { token_id, action: name }, e))
}

/// The tokens of a card from TMP; when TMP is unreachable or failing, from the local mirror with
/// `stale: true` and `source: "mirror"`.
#[utoipa::path(
    get,
    path = "/ops/v1/cards/{cardId}/tokens",
    operation_id = "card_tokens",
    tag = "Tokens",
    params(("cardId" = String, Path, description = "The card id TMP knows the card by")),
    responses((status = 200, description = "The card's tokens", body = CardTokens), OpsErrors),
    security(("bearer" = ["tokens:read"]), ("mtls" = ["tokens:read"]))
)]
#[tracing::instrument(skip_all)]
pub async fn list(
    principal: Principal,
    state: Data<AppState>,
    ops: Data<OpsState>,
    card_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::TokensRead)?;
    path_id("cardId", &card_id)?;
    let answer = match ops.tmp().card_tokens(&card_id, &correlation::current()).await {
        Ok(list) => {
            // TMP's list is at hand: say how far the mirror is off (a read writes nothing; a
            // repair is an audited operator action).
            let now = time::OffsetDateTime::now_utc();
            let mirror_drift = match reconcile::reconcile(&*state.store, &list, reconcile::Mode::Report, now).await {
                // A token the mirror heard of after TMP's list was made is not wrong.
                Ok(report) => {
                    let wrong = report.drift.iter().filter(|d| d.left != Some(reconcile::LeftBecause::MirrorNewer));
                    Some(u32::try_from(wrong.count()).unwrap_or(u32::MAX))
                }
                Err(error) => {
                    tracing::warn!(error = %error, "the mirror could not be compared with TMP's list");
                    None
                }
            };
            CardTokens {
                card_id: card_id.into_inner(),
                source: TokenSource::Tmp,
                stale: false,
                mirror_drift,
                tokens: list.tokens.iter().map(OpsToken::from).collect(),
            }
        }
        Err(CallError::Unavailable { cause, .. }) => {
            tracing::warn!(%cause, "TMP unavailable: answering a card's tokens from the mirror");
            let tokens = state.store.tokens_for_card(&card_id).await?;
            CardTokens {
                card_id: card_id.into_inner(),
                source: TokenSource::Mirror,
                stale: true,
                mirror_drift: None,
                tokens: tokens.iter().map(OpsToken::from).collect(),
            }
        }
        Err(error) => return Err(super::tmp_error(TmpCall::CardTokens { card_id: &card_id }, error)),
    };
    Ok(HttpResponse::Ok().json(answer))
}

/// A token's history from the adapter's mirror: every token event TMP sent for it (retries of
/// one event once), oldest first, and the state the mirror holds. Customer service's first
/// question — "what happened to my token" — without a call to TMP.
#[utoipa::path(
    get,
    path = "/ops/v1/tokens/{tokenId}/history",
    operation_id = "token_history",
    tag = "Tokens",
    params(("tokenId" = String, Path, description = "TMP's token id")),
    responses((status = 200, description = "The token and its events", body = TokenHistory), OpsErrors),
    security(("bearer" = ["tokens:read"]), ("mtls" = ["tokens:read"]))
)]
#[tracing::instrument(skip_all)]
pub async fn history(
    principal: Principal,
    state: Data<AppState>,
    token_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::TokensRead)?;
    path_id("tokenId", &token_id)?;
    let Some(token) = state.store.find_token(&token_id).await? else {
        return Err(ApiError::NotFound);
    };
    let stored = state.store.token_history(&token_id).await?;
    // The card of the event that named the tokenization: the token may have moved to a
    // replacement card since, and the decisions were made for the card it was created on.
    let tokenized = stored.iter().find_map(|e| Some((e.event.card_id.as_str(), e.event.tokenization_id.as_deref()?)));
    let tokenization_id = tokenized.map(|(_, id)| id.to_owned());
    let decisions = match tokenized {
        Some((card_id, id)) => state.store.decisions_for_tokenization(card_id, id).await?,
        None => Vec::new(),
    };
    let decisions = decisions
        .iter()
        .map(|d| TokenizationDecision {
            operation: d.operation.clone(),
            decided_at: super::ts(d.decided_at),
            decision: d.decision.clone(),
            reason: d.reason.clone(),
            cvc_result: d.cvc_result.clone(),
            stand_in: d.stand_in,
        })
        .collect();
    let events = stored.iter().map(TokenHistoryEvent::from).collect();
    Ok(HttpResponse::Ok().json(TokenHistory { token: OpsToken::from(&token), tokenization_id, decisions, events }))
}

/// Activates, suspends, resumes or deactivates a token at TMP, with a reason. TMP's answer is
/// the token after the action.
#[utoipa::path(
    post,
    path = "/ops/v1/tokens/{tokenId}/{action}",
    operation_id = "token_action",
    tag = "Tokens",
    params(
        ("tokenId" = String, Path, description = "TMP's token id"),
        ("action" = String, Path, description = "`activate`, `suspend`, `resume` or `deactivate`"),
        ("X-Idempotency-Key" = Option<String>, Header, description = "Same key and body: the stored answer, no second action"),
    ),
    request_body = TokenActionBody,
    responses((status = 200, description = "The token after the action", body = OpsToken), OpsErrors),
    security(("bearer" = ["tokens:write"]), ("mtls" = ["tokens:write"]))
)]
#[tracing::instrument(skip_all)]
pub async fn action(
    principal: Principal,
    state: Data<AppState>,
    ops: Data<OpsState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (token_id, action_name) = path.into_inner();
    let Some((action, audit_action)) = token_action(&action_name) else {
        return Err(ApiError::NotFound);
    };
    let draft = AuditDraft::new(audit_action, Some(token_id.clone()), None);
    super::write(&state, &principal, &req, body, Scope::TokensWrite, draft, async |audit, write, bytes| {
        path_id("tokenId", &token_id)?;
        let (request, reason) = parse_body::<TokenActionBody>(bytes)?.parse()?;
        audit.reason = Some(reason);
        let token = act(&ops, &token_id, &action_name, action, &request, &write.downstream_key).await?;
        audit.card_id = Some(token.card_id.clone());
        Answer::ok(&OpsToken::from(&token))
    })
    .await
}

/// Suspends, resumes or deactivates every token of a card at TMP — or those of one wallet, or
/// on one device — with one coded reason: "phone lost: suspend every token on it". The card's
/// tokens come from TMP; each matching token is acted on in turn (a token whose status the
/// action cannot change is `skipped`), one audit row per token tried, and the answer lists
/// every matching token with its outcome. A token TMP refuses does not stop the others.
#[utoipa::path(
    post,
    path = "/ops/v1/cards/{cardId}/tokens/{action}",
    operation_id = "card_tokens_action",
    tag = "Tokens",
    params(
        ("cardId" = String, Path, description = "The card id TMP knows the card by"),
        ("action" = String, Path, description = "`suspend`, `resume` or `deactivate`"),
        ("X-Idempotency-Key" = Option<String>, Header, description = "Same key and body: the stored answer, no second action"),
    ),
    request_body = CardTokensActionBody,
    responses((status = 200, description = "Each matching token's outcome", body = CardTokensActionResult), OpsErrors),
    security(("bearer" = ["tokens:write"]), ("mtls" = ["tokens:write"]))
)]
#[tracing::instrument(skip_all)]
pub async fn card_action(
    principal: Principal,
    state: Data<AppState>,
    ops: Data<OpsState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (card_id, action_name) = path.into_inner();
    let Some((action, audit_action)) = token_action(&action_name).filter(|(a, _)| *a != TokenAction::Activate) else {
        return Err(ApiError::NotFound);
    };
    let draft = AuditDraft::new(card_audit_action(action), Some(card_id.clone()), Some(card_id.clone()));
    super::write(&state, &principal, &req, body, Scope::TokensWrite, draft, async |audit, write, bytes| {
        path_id("cardId", &card_id)?;
        let body: CardTokensActionBody = parse_body(bytes)?;
        if let Some(device_id) = &body.device_id {
            path_id("deviceId", device_id)?;
        }
        let (wallet, device_id) = (body.wallet, body.device_id);
        let one = TokenActionBody { reason_code: body.reason_code, reason: body.reason, initiator: body.initiator };
        let (request, reason) = one.parse()?;
        // The request's row says which tokens it meant; each token's row, what happened to it.
        let filters: Vec<String> =
            [device_id.as_ref().map(|d| format!("deviceId {d}")), wallet.map(|w| format!("wallet {}", w.as_str()))]
                .into_iter()
                .flatten()
                .collect();
        audit.reason =
            Some(if filters.is_empty() { reason.clone() } else { format!("{reason} ({})", filters.join(", ")) });
        let list = ops
            .tmp()
            .card_tokens(&card_id, &correlation::current())
            .await
            .map_err(|e| super::tmp_error(TmpCall::CardTokens { card_id: &card_id }, e))?;
        let matching = list.tokens.iter().filter(|t| {
            wallet.is_none_or(|w| t.token_requestor.wallet == w)
                && device_id.as_ref().is_none_or(|d| t.device_id.as_ref() == Some(d))
        });
        let mut answer = CardTokensActionResult {
            card_id: card_id.clone(),
            action: action_name.clone(),
            done: 0,
            skipped: 0,
            failed: 0,
            tokens: Vec::new(),
        };
        let mut tmp_down = false;
        for before in matching {
            let token_id = before.token_id.as_str();
            let problem = |code: ErrorCode, message: String| Some(TokenActionProblem { code, message });
            let (outcome, token, error) = if !applies_to(action, before.status) {
                let why = format!("not tried: a {} token cannot {action_name}", before.status.as_str());
                (TokenActionOutcome::Skipped, OpsToken::from(before), problem(ErrorCode::InvalidTokenState, why))
            } else if tmp_down {
                // One timeout is enough to know: the rest are not tried.
                let why = "not tried: TMP became unavailable during this request".to_owned();
                (TokenActionOutcome::Failed, OpsToken::from(before), problem(ErrorCode::Unavailable, why))
            } else {
                // Its own downstream key, derived from the request's: sent again under the same
                // key, each token's action is TMP's replay, not a second action.
                let key = crate::http::idempotency::derived_key(&write.downstream_key, token_id);
                let result = act(&ops, token_id, &action_name, action, &request, &key).await;
                let mut row = AuditDraft::new(audit_action, Some(token_id.to_owned()), Some(card_id.clone()));
                row.reason = Some(reason.clone());
                let (word, status) = match &result {
                    Ok(_) => ("ok".to_owned(), 200),
                    Err(e) => (e.wire_code(), actix_web::ResponseError::status_code(e).as_u16()),
                };
                // The adapter's own database failing ends the request here (503, nothing
                // stored): sent again under the same key, TMP replays what it already did.
                let record = row.record(&principal.actor, &word, status, correlation::current());
                state.store.record_ops_audit(&record, None).await?;
                match result {
                    Ok(after) => (TokenActionOutcome::Done, OpsToken::from(&after), None),
                    Err(error) => {
                        tmp_down |= matches!(error, ApiError::UpstreamUnavailable { .. });
                        if matches!(error, ApiError::Internal(_)) {
                            tracing::error!(error = ?error, token_id, "a card-wide token action failed");
                        }
                        // TMP's 409 on a token already where the action leads (a suspension the
                        // issuer already holds): nothing left to do. Any other 409 — another
                        // party still holds it — is a failure to act.
                        let already = matches!(error, ApiError::InvalidTokenState(_))
                            && Some(before.status) == target_status(action);
                        let outcome = if already { TokenActionOutcome::Skipped } else { TokenActionOutcome::Failed };
                        (outcome, OpsToken::from(before), problem(error.code(), error.to_string()))
                    }
                }
            };
            match outcome {
                TokenActionOutcome::Done => answer.done += 1,
                TokenActionOutcome::Skipped => answer.skipped += 1,
                TokenActionOutcome::Failed => answer.failed += 1,
            }
            answer.tokens.push(CardTokenResult { token_id: token_id.to_owned(), outcome, token, error });
        }
        // TMP down before anything was done: a 503 to retry, not an answer to keep.
        if tmp_down && answer.done == 0 {
            return Err(ApiError::UpstreamUnavailable {
                message: "TMP became unavailable before any token was acted on; retry later".into(),
                retry_after_secs: 1,
            });
        }
        Answer::ok(&answer)
    })
    .await
}

/// The status a token action leads to.
fn target_status(action: TokenAction) -> Option<TokenStatus> {
    match action {
        TokenAction::Activate | TokenAction::Resume => Some(TokenStatus::Active),
        TokenAction::Suspend => Some(TokenStatus::Suspended),
        TokenAction::Deactivate => Some(TokenStatus::Deactivated),
    }
}

/// The audit action of the request that acts on a card's tokens (each token gets its own row).
fn card_audit_action(action: TokenAction) -> &'static str {
    match action {
        TokenAction::Activate => "card_tokens.activate",
        TokenAction::Suspend => "card_tokens.suspend",
        TokenAction::Resume => "card_tokens.resume",
        TokenAction::Deactivate => "card_tokens.deactivate",
    }
}

/// Compares the adapter's token mirror of a card with TMP's token list and repairs each
/// difference TMP's list settles: a token the mirror lacks (`missing`), another status
/// (`status`). Each repair is a token event of TMP's state in the token's history (reason
/// `RECONCILED_WITH_TMP`), forwarded to the issuer's sinks like any; a mirror whose event is
/// newer than TMP's `updatedAt` is left (`left: mirror_newer`). A live token TMP does not list
/// (`unknown_at_tmp`) is reported, and deactivated in the mirror only with `deactivateUnknown`.
#[utoipa::path(
    post,
    path = "/ops/v1/cards/{cardId}/tokens/reconcile",
    operation_id = "card_tokens_reconcile",
    tag = "Tokens",
    params(("cardId" = String, Path, description = "The card id TMP knows the card by")),
    request_body(content = ReconcileBody, description = "Optional: why, for the audit; whether to deactivate tokens TMP does not list"),
    responses((status = 200, description = "What differed and whether it was repaired", body = Reconciliation), OpsErrors),
    security(("bearer" = ["tokens:write"]), ("mtls" = ["tokens:write"]))
)]
#[tracing::instrument(skip_all)]
pub async fn reconcile(
    principal: Principal,
    state: Data<AppState>,
    ops: Data<OpsState>,
    req: HttpRequest,
    card_id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let card_id = card_id.into_inner();
    let draft = AuditDraft::new("tokens.reconcile", Some(card_id.clone()), Some(card_id.clone()));
    super::write(&state, &principal, &req, body, Scope::TokensWrite, draft, async |audit, _, bytes| {
        path_id("cardId", &card_id)?;
        let body: ReconcileBody = super::optional_json(bytes)?;
        audit.reason = super::optional_reason(body.reason)?;
        if body.deactivate_unknown {
            // The operator's decision outranks TMP's events in flight: the audit says it was taken.
            audit.action = crate::ops::tokens::DEACTIVATE_UNKNOWN_ACTION;
        }
        let list = ops
            .tmp()
            .card_tokens(&card_id, &correlation::current())
            .await
            .map_err(|e| super::tmp_error(TmpCall::CardTokens { card_id: &card_id }, e))?;
        let mode = reconcile::Mode::Repair { deactivate_unknown: body.deactivate_unknown };
        let report = reconcile::reconcile(&*state.store, &list, mode, time::OffsetDateTime::now_utc()).await?;
        for drift in &report.drift {
            state.metrics.token_drift.with_label_values(&[drift.kind.as_str()]).inc();
        }
        Answer::ok(&report)
    })
    .await
}

/// A new activation code for a token waiting for one: by `channel` (`SMS` or `EMAIL`; by
/// default the last code's), with a reason for the audit.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResendCodeBody {
    pub channel: Option<NotificationChannel>,
    /// 1 to 200 characters, no card number.
    pub reason: Option<String>,
}

/// Asks TMP for a new activation code for an `INACTIVE` token — the cardholder lost the SMS, or
/// the code expired — by SMS or e-mail. The old code stops working; wrong attempts so far still
/// count. TMP sends the code to the adapter as a new `ACTIVATION_CODE_DELIVERY` notification,
/// which the adapter forwards to the sinks. The answer is the token with its new
/// `activationCode` (expiry, attempts left, channel). A token not waiting for a code is 409.
#[utoipa::path(
    post,
    path = "/ops/v1/tokens/{tokenId}/activation-code/resend",
    operation_id = "token_resend_activation_code",
    tag = "Tokens",
    params(
        ("tokenId" = String, Path, description = "TMP's token id"),
        ("X-Idempotency-Key" = Option<String>, Header, description = "Same key and body: the stored answer, no second code"),
    ),
    request_body = ResendCodeBody,
    responses((status = 200, description = "The token with its new activation code's state", body = OpsToken), OpsErrors),
    security(("bearer" = ["tokens:write"]), ("mtls" = ["tokens:write"]))
)]
#[tracing::instrument(skip_all)]
pub async fn resend_code(
    principal: Principal,
    state: Data<AppState>,
    ops: Data<OpsState>,
    req: HttpRequest,
    token_id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let token_id = token_id.into_inner();
    let draft = AuditDraft::new("token.resend_activation_code", Some(token_id.clone()), None);
    super::write(&state, &principal, &req, body, Scope::TokensWrite, draft, async |audit, write, bytes| {
        path_id("tokenId", &token_id)?;
        let body: ResendCodeBody = parse_body(bytes)?;
        if body.channel == Some(NotificationChannel::Push) {
            return Err(ApiError::validation("`channel` must be SMS or EMAIL"));
        }
        let reason = super::required_reason(body.reason)?;
        audit.reason = Some(reason.clone());
        let reason = FreeText::parse(reason).map_err(|e| crate::http::error::invalid_field("reason", e))?;
        let request = ResendActivationCodeRequest { channel: body.channel, reason };
        let token = ops
            .tmp()
            .resend_activation_code(&token_id, &request, &write.downstream_key, &correlation::current())
            .await
            .map_err(|e| {
                super::tmp_error(TmpCall::TokenAction { token_id: &token_id, action: "resend the code of" }, e)
            })?;
        audit.card_id = Some(token.card_id.clone());
        Answer::ok(&OpsToken::from(&token))
    })
    .await
}
