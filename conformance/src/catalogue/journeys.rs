//! Journeys through the mock's simulator: a wallet tokenizes (manual or push; green, yellow,
//! red), the cardholder types the activation code, and the card's life (block, unblock,
//! replace, renew, close) carries its tokens along — TMP and the issuer agreeing at each step.

use std::sync::Arc;

use serde_json::{Value, json};

use super::forwarding::{event, ingest, issue_card, received};
use tmp_protocol::issuer_api::NOTIFICATIONS_PATH as NOTIFICATIONS;

use crate::case;
use crate::case::{Approach, BOTH, Case, EXTERNAL, Expect, Failure, Outcome, ensure};
use crate::client::{Call, Signer};
use crate::harness::Capability;
use crate::session::{Session, eventually};

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "JRN-001",
            Journeys,
            BOTH,
            Mock,
            "Manual provisioning, green path",
            "A trusted wallet and device tokenize an active card: GREEN, the token ACTIVE, the issuer told by a token event.",
            &["R-FWD-7"],
            jrn_manual_green
        ),
        case!(
            "JRN-002",
            Journeys,
            BOTH,
            MockActivationCodes,
            "Manual provisioning, yellow path with the right code",
            "The wallet recommends step-up: YELLOW, the token INACTIVE, the activation code reaches the issuer's system; typed in, the token is ACTIVE.",
            &["R-NOTIFY-5", "R-FWD-7"],
            jrn_manual_yellow
        ),
        case!(
            "JRN-003",
            Journeys,
            BOTH,
            Mock,
            "Yellow path with a wrong code",
            "A wrong activation code is refused and the token stays INACTIVE.",
            &["R-FWD-7"],
            jrn_yellow_wrong_code
        ),
        case!(
            "JRN-004",
            Journeys,
            BOTH,
            Mock,
            "Manual provisioning, red path",
            "A blocked card cannot be tokenized: RED, no token.",
            &["R-FWD-7"],
            jrn_manual_red
        ),
        case!(
            "JRN-005",
            Journeys,
            BOTH,
            Mock,
            "Push provisioning to Google Pay, green path",
            "The issuer signs the card through the TMP API; the wallet pushes the opaque payment card: GREEN, the token ACTIVE.",
            &["R-FWD-7"],
            jrn_push_green
        ),
        case!(
            "JRN-006",
            Journeys,
            BOTH,
            MockActivationCodes,
            "Push provisioning, yellow path",
            "A push the wallet wants stepped up: YELLOW; the activation code typed in makes the token ACTIVE.",
            &["R-NOTIFY-5", "R-FWD-7"],
            jrn_push_yellow
        ),
        case!(
            "JRN-007",
            Journeys,
            BOTH,
            Mock,
            "Push provisioning, red path",
            "A push the wallet recommends declining: RED, no token.",
            &["R-FWD-7"],
            jrn_push_red
        ),
        case!(
            "JRN-008",
            Journeys,
            BOTH,
            Mock,
            "Blocking the card suspends its tokens",
            "After card.status_changed BLOCKED, the card's active tokens are SUSPENDED at TMP.",
            &["R-FWD-2"],
            jrn_block
        ),
        case!(
            "JRN-009",
            Journeys,
            BOTH,
            Mock,
            "Unblocking the card resumes its tokens",
            "After the unblock, the tokens the block suspended are ACTIVE again.",
            &["R-FWD-2"],
            jrn_unblock
        ),
        case!(
            "JRN-010",
            Journeys,
            BOTH,
            Mock,
            "Replacing the card moves its tokens",
            "After card.replaced, the tokens belong to the new card and stay ACTIVE.",
            &["R-FWD-2"],
            jrn_replace
        ),
        case!(
            "JRN-011",
            Journeys,
            BOTH,
            Mock,
            "Renewing the card keeps its tokens",
            "After card.renewed, the renewal reached TMP / DataCore and the tokens stay ACTIVE.",
            &["R-FWD-2"],
            jrn_renew
        ),
        case!(
            "JRN-012",
            Journeys,
            BOTH,
            Mock,
            "Closing the card deactivates its tokens",
            "After card.closed, the tokens are DEACTIVATED and the issuer is told CARD_REMOVED_BY_ISSUER.",
            &["R-FWD-2"],
            jrn_close
        ),
        case!(
            "JRN-013",
            Journeys,
            BOTH,
            Mock,
            "A block that does not propagate leaves the tokens active",
            "card.status_changed BLOCKED with propagateToTokens false reaches TMP / DataCore (the card BLOCKED there) and the card's token stays ACTIVE.",
            &["R-FWD-8"],
            jrn_block_card_only
        ),
        case!(
            "JRN-014",
            Journeys,
            BOTH,
            Mock,
            "A replacement can deactivate the tokens instead of moving them",
            "card.replaced with tokens DEACTIVATE deactivates the old card's token (it stays on the old card) and the issuer is told CARD_REMOVED_BY_ISSUER.",
            &["R-FWD-8"],
            jrn_replace_deactivating
        ),
        case!(
            "JRN-015",
            Journeys,
            BOTH,
            MockActivationCodes,
            "Step-up by a code sent by SMS",
            "On a step-up the cardholder picks OTP_SMS among the methods offered (no code is sent before): the issuer acknowledges ACTIVATION_CODE_DELIVERY with stepUpMethod OTP_SMS and channel SMS, and the code read at its sink activates the token.",
            &["R-STEPUP-1", "R-STEPUP-2", "R-NOTIFY-5"],
            jrn_step_up_sms
        ),
        case!(
            "JRN-016",
            Journeys,
            BOTH,
            MockActivationCodes,
            "Step-up by a code sent by e-mail",
            "The same with OTP_EMAIL: the code goes by e-mail (channel EMAIL) and activates the token.",
            &["R-STEPUP-1", "R-STEPUP-2", "R-NOTIFY-5"],
            jrn_step_up_email
        ),
        case!(
            "JRN-017",
            Journeys,
            EXTERNAL,
            Mock,
            "Step-up in the issuer's app",
            "The cardholder picks APP_TO_APP: the issuer acknowledges STEP_UP_REQUESTED naming it, no code is sent, and once the issuer activates the token through the TMP API it is ACTIVE and the issuer is told TOKEN_ACTIVATED. Skipped when the target does not offer the method.",
            &["R-STEPUP-1", "R-STEPUP-3"],
            jrn_step_up_app
        ),
        case!(
            "JRN-018",
            Journeys,
            EXTERNAL,
            Mock,
            "Step-up by calling the issuer",
            "The same with CUSTOMER_SERVICE: the cardholder calls the number shown, the issuer activates the token.",
            &["R-STEPUP-1", "R-STEPUP-3"],
            jrn_step_up_customer_service
        ),
        case!(
            "JRN-019",
            Journeys,
            EXTERNAL,
            Mock,
            "Step-up by the issuer's call",
            "The same with OUTBOUND_CALL: the issuer calls the cardholder's phone, then activates the token.",
            &["R-STEPUP-1", "R-STEPUP-3"],
            jrn_step_up_outbound_call
        ),
    ]
}

// ---- Helpers ----------------------------------------------------------------------------

/// The simulated wallet's tokenization of `card_id` (a card the run made up).
pub(super) async fn tokenize(s: &Session, card_id: &str, tweak: impl FnOnce(&mut Value)) -> Result<Value, Failure> {
    let card = s.client.card(card_id).ok_or_else(|| Failure::new("a card the run made", card_id.to_owned()))?;
    let mut request = json!({
        "approach": s.approach.as_str(),
        "card": {"pan": card.pan.expose(), "expiry": card.expiry.mm_yy()},
        "wallet": "GOOGLE_PAY",
        "walletScore": 5,
        "deviceScore": 5,
    });
    tweak(&mut request);
    let (status, answer) = s.mock()?.tokenize(request).await?;
    ensure(status == 200, "the mock's tokenization to run", format!("HTTP {status}: {answer}"))?;
    Ok(answer)
}

pub(super) fn token_id(answer: &Value) -> Result<String, Failure> {
    answer["tokenId"].as_str().map(str::to_owned).ok_or_else(|| Failure::new("a token", format!("no token: {answer}")))
}

pub(super) async fn expect_path(answer: &Value, path: &str) -> Outcome {
    ensure(answer["path"] == path, format!("the {path} path"), answer.to_string())
}

/// Waits until the mock holds `token` in `status`.
pub(super) async fn token_status(s: &Session, token: &str, status: &str) -> Outcome {
    let mock = s.mock()?;
    eventually(s.delivery_within, || async {
        let found = mock.token(token).await?.unwrap_or_default();
        ensure(found["status"] == status, format!("token {status}"), format!("{found}"))
    })
    .await
}

/// A new card with one ACTIVE token (the green manual path).
pub(super) async fn card_with_token(s: &Session, prefix: &str) -> Result<(String, String), Failure> {
    let card_id = issue_card(s, prefix).await?;
    let answer = tokenize(s, &card_id, |_| {}).await?;
    expect_path(&answer, "GREEN").await?;
    let token = token_id(&answer)?;
    token_status(s, &token, "ACTIVE").await?;
    Ok((card_id, token))
}

async fn status_event(s: &Session, card_id: &str, status: &str) -> Outcome {
    let body = event(s, card_id, "card.status_changed", json!({"status": status, "reason": "CONFORMANCE"}));
    ingest(s, body, vec![]).await?.status(202)
}

/// The mock sent the issuer `path` for `token` and the issuer answered 2xx.
pub(super) async fn issuer_told(s: &Session, path: &str, token: &str) -> Outcome {
    let mock = s.mock()?;
    eventually(s.delivery_within, || async {
        let sent = mock.requests().await?.into_iter().any(|r| {
            r["direction"] == "sent"
                && r["path"] == path
                && r["body"]["tokenId"] == token
                && r["status"].as_u64().is_some_and(|c| (200..300).contains(&c))
        });
        ensure(sent, format!("{path} for the token acknowledged by the issuer"), "not (yet)")
    })
    .await
}

/// Makes sure TMP holds the card's data, as push provisioning needs: in `datacore` DataCore has
/// it already; with cards at the processor, TMP learns the card (the mock's seed).
pub(super) async fn known_to_tmp(s: &Session, card_id: &str) -> Outcome {
    if s.approach == Approach::External {
        let card = s.client.card(card_id).ok_or_else(|| Failure::new("a card the run made", card_id.to_owned()))?;
        let seed = json!({"cardId": card_id, "pan": card.pan.expose(), "expiry": card.expiry.mm_yy()});
        s.mock()?.seed_card(seed).await?;
    }
    Ok(())
}

/// The issuer's backend asks TMP to sign the card for a wallet (push provisioning).
async fn sign(s: &Session, card_id: &str, wallet: &str) -> Result<String, Failure> {
    let mock = s.mock()?;
    if s.client.secret(Signer::Issuer).is_none() {
        return Err(Failure::skip(format!(
            "push provisioning signs the card at TMP with the issuer's TMP API secret: set {} \
             (the variable the profile's `issuer_secret_env` names)",
            s.client.profile.issuer_secret_env
        )));
    }
    known_to_tmp(s, card_id).await?;
    let body = match wallet {
        "APPLE_PAY" => {
            json!({"wallet": wallet, "applePay": {"certificates": ["MIIB"], "nonce": "a1b2c3d4", "nonceSignature": "0a0b0c0d"}})
        }
        _ => {
            json!({"wallet": wallet, "googlePay": {"clientDeviceId": "device-1", "clientWalletAccountId": "wallet-1"}})
        }
    };
    let call =
        Call::post(&mock.base_url, &format!("/tmp-api/v1/cards/{card_id}/sign"), body).signer(Some(Signer::Issuer));
    let answer = s.send(call).await?;
    answer.status(200)?;
    let body = answer.json().unwrap_or_default();
    body["googlePay"]["opaquePaymentCard"]
        .as_str()
        .or(body["applePay"]["encryptedPassData"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| Failure::new("a payload for the wallet", body.to_string()).with(&answer))
}

pub(super) async fn push(s: &Session, payload: &str, tweak: impl FnOnce(&mut Value)) -> Result<Value, Failure> {
    let mut request = json!({"payload": payload, "approach": s.approach.as_str()});
    tweak(&mut request);
    let (status, answer) = s.mock()?.push(request).await?;
    ensure(status == 200, "the wallet's push to run", format!("HTTP {status}: {answer}"))?;
    Ok(answer)
}

/// Reads the code at the issuer's sink and types it in.
async fn activate_with_sink_code(s: &Session, token: &str) -> Outcome {
    let harness = s.harness(Capability::ActivationCodes)?.clone();
    let mut code = None;
    eventually(s.delivery_within, || {
        code = harness.activation_code(token);
        let found = code.is_some();
        async move { ensure(found, "the activation code at the issuer's sink", "not yet") }
    })
    .await?;
    let code = code.expect("found");
    let (status, answer) = s.mock()?.enter_otp(token, code.expose()).await?;
    ensure(status == 200 && answer["result"] == "ACCEPTED", "the code accepted", format!("HTTP {status}: {answer}"))?;
    token_status(s, token, "ACTIVE").await
}

/// A yellow token whose cardholder has not chosen a step-up method yet, on a new card; skipped
/// when the issuer did not offer `method`.
async fn waiting_for_step_up(s: &Session, prefix: &str, method: &str) -> Result<String, Failure> {
    let card_id = issue_card(s, prefix).await?;
    let answer = tokenize(s, &card_id, |r| {
        r["walletRecommendation"] = json!("REQUIRE_ADDITIONAL_AUTHENTICATION");
        r["stepUpMethod"] = json!("LATER");
    })
    .await?;
    expect_path(&answer, "YELLOW").await?;
    let token = token_id(&answer)?;
    let found = s.mock()?.token(&token).await?.unwrap_or_default();
    let offered = found["stepUp"]["offered"].as_array().cloned().unwrap_or_default();
    if !offered.iter().any(|m| m["type"] == method) {
        let types: Vec<_> = offered.iter().filter_map(|m| m["type"].as_str()).collect();
        return Err(Failure::skip(format!(
            "the target does not offer {method} for this card (offered: {})",
            if types.is_empty() { "none".to_owned() } else { types.join(", ") }
        )));
    }
    // Nothing is sent before the cardholder chooses: once the token's own event has reached the
    // issuer (queued with anything else the tokenization caused), no notification for it has.
    issuer_told(s, "/issuer-api/v1/tokens/events", &token).await?;
    let sent = s
        .mock()?
        .requests()
        .await?
        .into_iter()
        .any(|r| r["direction"] == "sent" && r["path"] == NOTIFICATIONS && r["body"]["tokenId"] == token.as_str());
    ensure(!sent, "no notification for the token before the cardholder chooses a method", "one was sent")?;
    Ok(token)
}

/// The cardholder picks `method`.
async fn choose(s: &Session, token: &str, method: &str) -> Outcome {
    let (status, answer) = s.mock()?.choose_step_up(token, method).await?;
    ensure(status == 200, format!("{method} chosen"), format!("HTTP {status}: {answer}"))?;
    ensure(answer["token"]["stepUp"]["chosen"] == method, format!("{method} chosen"), answer.to_string())
}

/// The issuer acknowledged a notification of `kind` for `token` naming `method`.
async fn issuer_told_method(s: &Session, kind: &str, token: &str, method: &str) -> Outcome {
    let mock = s.mock()?;
    eventually(s.delivery_within, || async {
        let told = mock.requests().await?.into_iter().any(|r| {
            r["direction"] == "sent"
                && r["path"] == NOTIFICATIONS
                && r["body"]["type"] == kind
                && r["body"]["tokenId"] == token
                && r["body"]["stepUpMethod"] == method
                && r["status"].as_u64().is_some_and(|c| (200..300).contains(&c))
        });
        ensure(told, format!("{kind} naming {method} acknowledged by the issuer"), "not (yet)")
    })
    .await
}

async fn step_up_by_code(s: &Session, prefix: &str, method: &str, channel: &str) -> Outcome {
    let token = waiting_for_step_up(s, prefix, method).await?;
    choose(s, &token, method).await?;
    issuer_told_method(s, "ACTIVATION_CODE_DELIVERY", &token, method).await?;
    let sent = s.mock()?.requests().await?;
    let channel_sent = sent.iter().any(|r| {
        r["path"] == NOTIFICATIONS && r["body"]["tokenId"] == token.as_str() && r["body"]["channel"] == channel
    });
    ensure(channel_sent, format!("the code sent by {channel}"), "another channel")?;
    activate_with_sink_code(s, &token).await
}

/// A method without a code: the issuer hears the choice, authenticates the cardholder its own
/// way and activates the token through the TMP API (the suite plays its back office).
async fn step_up_by_issuer(s: &Session, prefix: &str, method: &str) -> Outcome {
    if s.client.secret(Signer::Issuer).is_none() {
        return Err(Failure::skip(format!(
            "the issuer activates the token at TMP with its TMP API secret: set {}",
            s.client.profile.issuer_secret_env
        )));
    }
    let token = waiting_for_step_up(s, prefix, method).await?;
    choose(s, &token, method).await?;
    issuer_told_method(s, "STEP_UP_REQUESTED", &token, method).await?;
    token_status(s, &token, "INACTIVE").await?;
    let mock = s.mock()?;
    let body = json!({"initiator": "ISSUER", "reasonCode": "CUSTOMER_REQUEST", "reason": "cardholder authenticated"});
    let call = Call::post(&mock.base_url, &format!("/tmp-api/v1/tokens/{token}/activate"), body)
        .signer(Some(Signer::Issuer))
        .idempotency_key(Some(&s.id("activate")));
    s.send(call).await?.status(200)?;
    token_status(s, &token, "ACTIVE").await?;
    let told = mock.requests().await?.into_iter().any(|r| {
        r["path"] == NOTIFICATIONS && r["body"]["type"] == "ACTIVATION_CODE_DELIVERY" && r["body"]["tokenId"] == token
    });
    ensure(!told, "no activation code for a method without one", "a code was sent")?;
    eventually(s.delivery_within, || async {
        let activated = mock.requests().await?.into_iter().any(|r| {
            r["path"] == NOTIFICATIONS && r["body"]["type"] == "TOKEN_ACTIVATED" && r["body"]["tokenId"] == token
        });
        ensure(activated, "TOKEN_ACTIVATED sent to the issuer", "not (yet)")
    })
    .await
}

// ---- Cases ------------------------------------------------------------------------------

async fn jrn_step_up_sms(s: Arc<Session>) -> Outcome {
    step_up_by_code(&s, "jrn-sms", "OTP_SMS", "SMS").await
}

async fn jrn_step_up_email(s: Arc<Session>) -> Outcome {
    step_up_by_code(&s, "jrn-email", "OTP_EMAIL", "EMAIL").await
}

async fn jrn_step_up_app(s: Arc<Session>) -> Outcome {
    step_up_by_issuer(&s, "jrn-app", "APP_TO_APP").await
}

async fn jrn_step_up_customer_service(s: Arc<Session>) -> Outcome {
    step_up_by_issuer(&s, "jrn-call-in", "CUSTOMER_SERVICE").await
}

async fn jrn_step_up_outbound_call(s: Arc<Session>) -> Outcome {
    step_up_by_issuer(&s, "jrn-call-out", "OUTBOUND_CALL").await
}

async fn jrn_manual_green(s: Arc<Session>) -> Outcome {
    let (_, token) = card_with_token(&s, "jrn-green").await?;
    issuer_told(&s, "/issuer-api/v1/tokens/events", &token).await
}

async fn jrn_manual_yellow(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "jrn-yellow").await?;
    let answer =
        tokenize(&s, &card_id, |r| r["walletRecommendation"] = json!("REQUIRE_ADDITIONAL_AUTHENTICATION")).await?;
    expect_path(&answer, "YELLOW").await?;
    let token = token_id(&answer)?;
    token_status(&s, &token, "INACTIVE").await?;
    activate_with_sink_code(&s, &token).await
}

async fn jrn_yellow_wrong_code(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "jrn-wrong-code").await?;
    let answer =
        tokenize(&s, &card_id, |r| r["walletRecommendation"] = json!("REQUIRE_ADDITIONAL_AUTHENTICATION")).await?;
    expect_path(&answer, "YELLOW").await?;
    let token = token_id(&answer)?;
    let (status, answer) = s.mock()?.enter_otp(&token, "00000000").await?;
    ensure(status == 200 && answer["result"] == "WRONG_CODE", "WRONG_CODE", format!("HTTP {status}: {answer}"))?;
    token_status(&s, &token, "INACTIVE").await
}

async fn jrn_manual_red(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "jrn-red").await?;
    status_event(&s, &card_id, "BLOCKED").await?;
    if s.approach == Approach::Datacore {
        received(&s, &card_id, "PATCH", &format!("/lifecycle/v1/cards/{card_id}")).await?;
    }
    let answer = tokenize(&s, &card_id, |_| {}).await?;
    expect_path(&answer, "RED").await?;
    ensure(answer["tokenId"].is_null(), "no token", answer.to_string())?;
    let tokens = s.mock()?.tokens_of(&card_id).await?;
    ensure(tokens.is_empty(), "no token at TMP", format!("{tokens:?}"))
}

async fn jrn_push_green(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "jrn-push").await?;
    let payload = sign(&s, &card_id, "GOOGLE_PAY").await?;
    let answer = push(&s, &payload, |_| {}).await?;
    expect_path(&answer, "GREEN").await?;
    token_status(&s, &token_id(&answer)?, "ACTIVE").await
}

async fn jrn_push_yellow(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "jrn-push-yellow").await?;
    let payload = sign(&s, &card_id, "GOOGLE_PAY").await?;
    let answer = push(&s, &payload, |r| r["walletRecommendation"] = json!("REQUIRE_ADDITIONAL_AUTHENTICATION")).await?;
    expect_path(&answer, "YELLOW").await?;
    activate_with_sink_code(&s, &token_id(&answer)?).await
}

async fn jrn_push_red(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "jrn-push-red").await?;
    let payload = sign(&s, &card_id, "GOOGLE_PAY").await?;
    let answer = push(&s, &payload, |r| r["walletRecommendation"] = json!("DECLINED")).await?;
    expect_path(&answer, "RED").await?;
    ensure(answer["tokenId"].is_null(), "no token", answer.to_string())
}

async fn jrn_block(s: Arc<Session>) -> Outcome {
    let (card_id, token) = card_with_token(&s, "jrn-block").await?;
    status_event(&s, &card_id, "BLOCKED").await?;
    token_status(&s, &token, "SUSPENDED").await
}

async fn jrn_unblock(s: Arc<Session>) -> Outcome {
    let (card_id, token) = card_with_token(&s, "jrn-unblock").await?;
    status_event(&s, &card_id, "BLOCKED").await?;
    token_status(&s, &token, "SUSPENDED").await?;
    status_event(&s, &card_id, "ACTIVE").await?;
    token_status(&s, &token, "ACTIVE").await
}

async fn jrn_replace(s: Arc<Session>) -> Outcome {
    let (card_id, token) = card_with_token(&s, "jrn-replace").await?;
    let new_id = s.id("jrn-replacement");
    s.client.generate_card(&new_id, "12/31")?;
    let body = event(
        &s,
        &card_id,
        "card.replaced",
        json!({"newCardId": new_id, "encryptedPayload": crate::client::payload_slot(0)}),
    );
    ingest(&s, body, vec![crate::payload::PayloadSpec::card_data(&new_id)]).await?.status(202)?;
    let mock = s.mock()?;
    eventually(s.delivery_within, || async {
        let found = mock.token(&token).await?.unwrap_or_default();
        ensure(
            found["cardId"] == new_id.as_str() && found["status"] == "ACTIVE",
            "the token ACTIVE on the new card",
            found.to_string(),
        )
    })
    .await
}

async fn jrn_block_card_only(s: Arc<Session>) -> Outcome {
    let (card_id, token) = card_with_token(&s, "jrn-card-only").await?;
    let data = json!({"status": "BLOCKED", "reason": "PIN_LOCKED", "propagateToTokens": false});
    ingest(&s, event(&s, &card_id, "card.status_changed", data), vec![]).await?.status(202)?;
    let mock = s.mock()?;
    eventually(s.delivery_within, || async {
        let card = mock.card(&card_id).await?.unwrap_or_default();
        ensure(card["status"] == "BLOCKED", "the card BLOCKED at TMP / DataCore", card.to_string())
    })
    .await?;
    let found = mock.token(&token).await?.unwrap_or_default();
    ensure(found["status"] == "ACTIVE", "the token still ACTIVE", found.to_string())
}

async fn jrn_replace_deactivating(s: Arc<Session>) -> Outcome {
    let (card_id, token) = card_with_token(&s, "jrn-replace-off").await?;
    let new_id = s.id("jrn-fresh-card");
    s.client.generate_card(&new_id, "12/31")?;
    let data = json!({"newCardId": new_id, "tokens": "DEACTIVATE", "encryptedPayload": crate::client::payload_slot(0)});
    let body = event(&s, &card_id, "card.replaced", data);
    ingest(&s, body, vec![crate::payload::PayloadSpec::card_data(&new_id)]).await?.status(202)?;
    token_status(&s, &token, "DEACTIVATED").await?;
    let found = s.mock()?.token(&token).await?.unwrap_or_default();
    ensure(found["cardId"] == card_id.as_str(), "the token left on the old card", found.to_string())?;
    removed_by_issuer(&s, &card_id).await
}

async fn jrn_renew(s: Arc<Session>) -> Outcome {
    let (card_id, token) = card_with_token(&s, "jrn-renew").await?;
    let body = event(&s, &card_id, "card.renewed", json!({"encryptedPayload": crate::client::payload_slot(0)}));
    let renewal = crate::payload::PayloadSpec {
        plain: crate::payload::Plain::Expiry("12/33".into()),
        key: crate::payload::KeyChoice::Published,
    };
    ingest(&s, body, vec![renewal]).await?.status(202)?;
    let (method, path) = match s.approach {
        Approach::External => ("POST", format!("/tmp-api/v1/cards/{card_id}/expiry")),
        Approach::Datacore => ("PATCH", format!("/lifecycle/v1/cards/{card_id}")),
    };
    received(&s, &card_id, method, &path).await?;
    token_status(&s, &token, "ACTIVE").await
}

async fn jrn_close(s: Arc<Session>) -> Outcome {
    let (card_id, token) = card_with_token(&s, "jrn-close").await?;
    ingest(&s, event(&s, &card_id, "card.closed", json!({"reason": "CLOSED_BY_HOLDER"})), vec![]).await?.status(202)?;
    token_status(&s, &token, "DEACTIVATED").await?;
    removed_by_issuer(&s, &card_id).await
}

/// TMP told the issuer `CARD_REMOVED_BY_ISSUER` for `card_id`, and the issuer acknowledged it.
async fn removed_by_issuer(s: &Session, card_id: &str) -> Outcome {
    let mock = s.mock()?;
    eventually(s.delivery_within, || async {
        let told = mock.requests().await?.into_iter().any(|r| {
            r["direction"] == "sent"
                && r["path"] == "/issuer-api/v1/notifications"
                && r["body"]["type"] == "CARD_REMOVED_BY_ISSUER"
                && r["body"]["cardId"] == card_id
                && r["status"].as_u64().is_some_and(|c| (200..300).contains(&c))
        });
        ensure(told, "CARD_REMOVED_BY_ISSUER acknowledged by the issuer", "not (yet)")
    })
    .await
}
