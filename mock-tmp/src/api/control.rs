//! `/_mock/v1/…`: the control plane of the mock — simulator, inspection, faults, sender
//! behaviour, key rotation, reset. Unauthenticated by design (a local test tool); bodies of the
//! simulator are camelCase like the contract, fault rules and sender behaviour use the
//! snake_case keys of the configuration file.

use actix_web::web::{self, Data, Path, Query};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use tmp_protocol::enums::{IssuerCardStatus, StepUpMethodType};
use tmp_protocol::issuer_api::CardholderContact;
use tmp_protocol::sensitive::{Expiry, Otp, Pan};
use tmp_protocol::tmp_api::TokenAction;

use super::middleware::RawBody;
use crate::config::SenderBehaviour;
use crate::context::Mock;
use crate::faults::FaultRule;
use crate::keys::KeyUse;
use crate::simulator::{self, PushRequest, TokenizeRequest};
use crate::state::{Card, Cause, MockState, Suspender};
use tmp_edge::error::ApiError;
use tmp_edge::json::parse_body;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/_mock/v1/simulate/tokenizations", web::post().to(tokenize))
        .route("/_mock/v1/simulate/wallet/push", web::post().to(push))
        .route("/_mock/v1/simulate/tokens/{tokenId}/otp", web::post().to(otp))
        .route("/_mock/v1/simulate/tokens/{tokenId}/step-up", web::post().to(step_up))
        .route("/_mock/v1/simulate/tokens/{tokenId}/remove", web::post().to(remove))
        .route("/_mock/v1/simulate/tokens/{tokenId}/wallet/{action}", web::post().to(wallet_action))
        .route("/_mock/v1/cards", web::get().to(cards))
        .route("/_mock/v1/cards", web::post().to(seed_card))
        .route("/_mock/v1/tokens", web::get().to(tokens))
        .route("/_mock/v1/tokenizations", web::get().to(tokenizations))
        .route("/_mock/v1/pushes", web::get().to(pushes))
        .route("/_mock/v1/requests", web::get().to(requests))
        .route("/_mock/v1/requests", web::delete().to(clear_requests))
        .route("/_mock/v1/faults", web::get().to(list_faults))
        .route("/_mock/v1/faults", web::post().to(add_fault))
        .route("/_mock/v1/faults", web::delete().to(clear_faults))
        .route("/_mock/v1/faults/{id}", web::delete().to(remove_fault))
        .route("/_mock/v1/clock", web::get().to(clock))
        .route("/_mock/v1/clock/advance", web::post().to(advance_clock))
        .route("/_mock/v1/sender", web::get().to(get_sender))
        .route("/_mock/v1/sender", web::put().to(put_sender))
        .route("/_mock/v1/keys/rotate", web::post().to(rotate_keys))
        .route("/_mock/v1/reset", web::post().to(reset));
}

fn body(req: &HttpRequest) -> web::Bytes {
    req.extensions().get::<RawBody>().map(|b| b.0.clone()).unwrap_or_default()
}

async fn tokenize(mock: Data<Mock>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let request: TokenizeRequest = parse_body(&body(&req))?;
    Ok(HttpResponse::Ok().json(simulator::tokenize(&mock, request).await?))
}

async fn push(mock: Data<Mock>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let request: PushRequest = parse_body(&body(&req))?;
    Ok(HttpResponse::Ok().json(simulator::push(&mock, request).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OtpInput {
    otp: Otp,
}

async fn otp(mock: Data<Mock>, req: HttpRequest, token_id: Path<String>) -> Result<HttpResponse, ApiError> {
    let input: OtpInput = parse_body(&body(&req))?;
    Ok(HttpResponse::Ok().json(simulator::enter_otp(&mock, &token_id, &input.otp).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepUpInput {
    method: StepUpMethodType,
}

/// The cardholder picks a step-up method the issuer offered.
async fn step_up(mock: Data<Mock>, req: HttpRequest, token_id: Path<String>) -> Result<HttpResponse, ApiError> {
    let input: StepUpInput = parse_body(&body(&req))?;
    Ok(HttpResponse::Ok().json(simulator::choose_step_up(&mock, &token_id, input.method).await?))
}

async fn remove(mock: Data<Mock>, token_id: Path<String>) -> Result<HttpResponse, ApiError> {
    let mut state = mock.state.lock().await;
    let (info, effects) = state.remove_by_cardholder(&token_id)?;
    mock.commit(&mut state, effects).await?;
    Ok(HttpResponse::Ok().json(info))
}

/// The wallet suspends or resumes a token on its own (a device reported lost in the wallet's
/// app, then found): a suspension of the token requestor's, apart from the issuer's.
async fn wallet_action(mock: Data<Mock>, path: Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (token_id, action) = path.into_inner();
    let (action, reason) = match action.as_str() {
        "suspend" => (TokenAction::Suspend, "SUSPENDED_BY_TOKEN_REQUESTOR"),
        "resume" => (TokenAction::Resume, "RESUMED_BY_TOKEN_REQUESTOR"),
        _ => return Err(ApiError::UnknownResource(format!("no wallet action `{action}`: suspend or resume"))),
    };
    let who = Suspender::TokenRequestor;
    let mut state = mock.state.lock().await;
    let (info, effects) = state.token_action_by(&token_id, action, who, &Cause::new(who.initiator(), reason))?;
    mock.commit(&mut state, effects).await?;
    Ok(HttpResponse::Ok().json(info))
}

/// A card TMP knows (for push provisioning or `cardId`-only tokenizations) without DataCore.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedCard {
    card_id: String,
    pan: Pan,
    expiry: Expiry,
    #[serde(default)]
    status: Option<IssuerCardStatus>,
    #[serde(default)]
    cardholder: Option<CardholderContact>,
}

async fn seed_card(mock: Data<Mock>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let seed: SeedCard = parse_body(&body(&req))?;
    let mut state = mock.state.lock().await;
    let mut card = Card::new(&seed.card_id, seed.status.unwrap_or(IssuerCardStatus::Active));
    card.set_pan(seed.pan);
    card.expiry = Some(seed.expiry);
    card.cardholder = seed.cardholder;
    let view = card.view();
    state.cards.insert(seed.card_id, card);
    mock.save(&mut state).await?;
    Ok(HttpResponse::Created().json(view))
}

async fn cards(mock: Data<Mock>) -> HttpResponse {
    let state = mock.state.lock().await;
    HttpResponse::Ok().json(json!({"cards": state.cards.values().map(Card::view).collect::<Vec<_>>()}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenFilter {
    card_id: Option<String>,
}

async fn tokens(mock: Data<Mock>, filter: Query<TokenFilter>) -> HttpResponse {
    let state = mock.state.lock().await;
    let tokens: Vec<_> = state
        .tokens
        .values()
        .filter(|t| filter.card_id.as_ref().is_none_or(|c| &t.card_id == c))
        .map(|t| t.view())
        .collect();
    HttpResponse::Ok().json(json!({"tokens": tokens}))
}

async fn tokenizations(mock: Data<Mock>) -> HttpResponse {
    let state = mock.state.lock().await;
    HttpResponse::Ok().json(json!({"tokenizations": state.tokenizations}))
}

/// What `sign` issued (card, wallet, whether a wallet used it), never the payload.
async fn pushes(mock: Data<Mock>) -> HttpResponse {
    let state = mock.state.lock().await;
    let pushes: Vec<_> = state
        .push_grants
        .values()
        .map(|g| {
            json!({"cardId": g.card_id, "wallet": g.wallet, "issuedAt": crate::state::rfc3339(g.issued_at),
                   "hasActivationData": g.activation_data.is_some(), "used": g.used})
        })
        .collect();
    HttpResponse::Ok().json(json!({"pushes": pushes}))
}

async fn requests(mock: Data<Mock>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"requests": mock.journal.entries()}))
}

async fn clear_requests(mock: Data<Mock>) -> HttpResponse {
    mock.journal.clear();
    HttpResponse::NoContent().finish()
}

async fn list_faults(mock: Data<Mock>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"faults": mock.faults.list()}))
}

async fn add_fault(mock: Data<Mock>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let rule: FaultRule = parse_body(&body(&req))?;
    rule.validate().map_err(ApiError::Validation)?;
    Ok(HttpResponse::Created().json(mock.faults.add(rule)))
}

async fn clear_faults(mock: Data<Mock>) -> HttpResponse {
    mock.faults.clear();
    HttpResponse::NoContent().finish()
}

async fn remove_fault(mock: Data<Mock>, id: Path<u64>) -> Result<HttpResponse, ApiError> {
    if mock.faults.remove(*id) {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::UnknownResource(format!("no fault {id}")))
    }
}

fn clock_view(mock: &Mock) -> serde_json::Value {
    let offset = mock.clock_offset_secs.load(std::sync::atomic::Ordering::Relaxed);
    json!({"now": crate::state::rfc3339(mock.now()), "offsetSecs": offset})
}

async fn clock(mock: Data<Mock>) -> HttpResponse {
    HttpResponse::Ok().json(clock_view(&mock))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Advance {
    secs: i64,
}

/// Moves the mock's clock ahead (it times activation codes): `{"secs": 600}`.
async fn advance_clock(mock: Data<Mock>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let advance: Advance = parse_body(&body(&req))?;
    if !(1..=366 * 86_400).contains(&advance.secs) {
        return Err(ApiError::validation("`secs` must be 1 to 31622400 (a year): the clock only moves ahead"));
    }
    mock.advance_clock(advance.secs);
    Ok(HttpResponse::Ok().json(clock_view(&mock)))
}

async fn get_sender(mock: Data<Mock>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"behaviour": mock.sender_behaviour(), "pending": mock.outbox.pending()}))
}

async fn put_sender(mock: Data<Mock>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let behaviour: SenderBehaviour = parse_body(&body(&req))?;
    behaviour.validate().map_err(ApiError::Validation)?;
    mock.set_sender_behaviour(behaviour.clone());
    Ok(HttpResponse::Ok().json(json!({"behaviour": behaviour})))
}

#[derive(Deserialize)]
struct RotateQuery {
    #[serde(default)]
    set: Option<KeyUse>,
}

/// Rotates the TMP API and Lifecycle API keys (or only `?set=tmp_api|lifecycle_api|wallet`).
async fn rotate_keys(mock: Data<Mock>, query: Query<RotateQuery>) -> Result<HttpResponse, ApiError> {
    let bits = mock.config.keys.rsa_bits;
    let sets = match query.set {
        Some(set) => vec![set],
        None => vec![KeyUse::TmpApi, KeyUse::LifecycleApi],
    };
    // RSA generation is slow: keep it off the async workers.
    let generated = web::block(move || {
        sets.into_iter()
            .map(|set| tmp_protocol::jwk::RsaKeyPair::generate(bits).map(|pair| (set, pair)))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("key generation did not run: {e}")))?
    .map_err(|e| ApiError::Internal(e.into()))?;
    let mut rotated = serde_json::Map::new();
    {
        let mut keys = mock.keys_mut();
        for (set, pair) in generated {
            let kid = keys.get_mut(set).rotate_to(pair);
            rotated.insert(
                serde_json::to_value(set).unwrap_or_default().as_str().unwrap_or_default().to_owned(),
                json!(kid),
            );
        }
    }
    let mut state = mock.state.lock().await;
    mock.save(&mut state).await?;
    Ok(HttpResponse::Ok().json(json!({"rotated": rotated})))
}

/// Forgets cards, tokens, tokenizations, idempotency records, the journal and runtime faults;
/// keeps keys and configuration.
async fn reset(mock: Data<Mock>) -> Result<HttpResponse, ApiError> {
    let mut state = mock.state.lock().await;
    *state = MockState::default();
    mock.journal.clear();
    mock.faults.clear();
    for rule in &mock.config.faults {
        mock.faults.add(rule.clone());
    }
    mock.set_sender_behaviour(mock.config.sender.clone());
    mock.save(&mut state).await?;
    Ok(HttpResponse::NoContent().finish())
}
