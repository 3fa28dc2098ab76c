//! The adapter's ops API (docs/ops-api.md) against the mock as TMP: a card's tokens, push
//! provisioning to a wallet, token actions with their forbidden transitions, TMP down, scopes,
//! idempotency and the audits. They need a harness that hands out the API keys (`tmp-kit check`).

use std::sync::Arc;

use actix_web::http::Method;
use serde_json::{Value, json};

use super::forwarding::issue_card;
use super::journeys::{
    card_with_token, expect_path, issuer_told, known_to_tmp, push, token_id, token_status, tokenize,
};
use super::verify_cvc_call;
use crate::case;
use crate::case::{BOTH, Case, Expect, Failure, Outcome, ensure};
use crate::client::{Answer, Bearer, Call};
use crate::payload::PayloadSpec;
use crate::session::{Session, eventually};

/// The variable a reproduction reads the ops API key from.
pub const OPS_KEY_ENV: &str = "TMP_CONFORMANCE_OPS_KEY";

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "OPS-001",
            Ops,
            BOTH,
            OpsApi,
            "A card's tokens come from TMP",
            "GET /ops/v1/cards/{id}/tokens lists the card's tokens as TMP holds them (source tmp, not stale).",
            &["R-OPS-1"],
            ops_tokens_from_tmp
        ),
        case!(
            "OPS-002",
            Ops,
            BOTH,
            OpsApi,
            "Google Pay push provisioning ends in an active token",
            "The ops API signs the card through TMP; the wallet pushes the opaque payment card; the ACTIVE token is visible through the ops API.",
            &["R-OPS-3"],
            ops_push_google_pay
        ),
        case!(
            "OPS-003",
            Ops,
            BOTH,
            OpsApi,
            "Apple Pay push provisioning returns what PassKit needs",
            "Certificates, nonce and nonce signature give encrypted pass data, activation data and an ephemeral public key; with the activation data the wallet's token is ACTIVE.",
            &["R-OPS-2"],
            ops_push_apple_pay
        ),
        case!(
            "OPS-018",
            Ops,
            BOTH,
            OpsApi,
            "Samsung Pay push provisioning ends in an active token",
            "The ops API signs the card through TMP for Samsung Pay; the wallet's addCard pushes the provisioning payload; the ACTIVE Samsung Pay token is visible through the ops API.",
            &["R-OPS-13"],
            ops_push_samsung_pay
        ),
        case!(
            "OPS-019",
            Ops,
            BOTH,
            OpsApi,
            "A web push sends the cardholder to the wallet and back with the token",
            "POST …/push-provisioning/web {wallet, callbackUrl} answers the wallet's web flow; adding the card there returns the browser to the callback with result ADDED and the token id, ACTIVE through the ops API; the receipt works once; an Apple Pay web push, a plain-http callback and a card number in the callback are 422 VALIDATION_FAILED.",
            &["R-OPS-14"],
            ops_push_web
        ),
        case!(
            "OPS-004",
            Ops,
            BOTH,
            OpsApi,
            "Suspend and resume a token",
            "suspend then resume, each with a reason, leave the token SUSPENDED then ACTIVE at TMP.",
            &["R-OPS-4"],
            ops_suspend_resume
        ),
        case!(
            "OPS-005",
            Ops,
            BOTH,
            OpsApi,
            "Resuming an active token is a forbidden transition",
            "resume of a token nobody suspended is 409 INVALID_TOKEN_STATE.",
            &["R-OPS-4"],
            ops_forbidden_resume
        ),
        case!(
            "OPS-006",
            Ops,
            BOTH,
            OpsApi,
            "A deactivated token stays deactivated",
            "deactivate gives DEACTIVATED; activate afterwards is 409 INVALID_TOKEN_STATE.",
            &["R-OPS-4"],
            ops_deactivate
        ),
        case!(
            "OPS-007",
            Ops,
            BOTH,
            OpsApi,
            "Unknown cards and tokens are 404",
            "The tokens of a card TMP does not know, and an action on a token it does not know, are 404 NOT_FOUND.",
            &["R-OPS-1", "R-OPS-4"],
            ops_unknown
        ),
        case!(
            "OPS-008",
            Ops,
            BOTH,
            OpsApi,
            "TMP down: reads from the mirror, writes 503",
            "With TMP answering 503, a card's tokens come from the adapter's mirror marked stale, and a token action is 503 UNAVAILABLE with Retry-After.",
            &["R-OPS-1"],
            ops_tmp_down
        ),
        case!(
            "OPS-009",
            Ops,
            BOTH,
            OpsApi,
            "A key without the scope is refused",
            "A tokens:read key lists tokens but its suspend is 403 FORBIDDEN.",
            &["R-OPS-5"],
            ops_wrong_scope
        ),
        case!(
            "OPS-010",
            Ops,
            BOTH,
            OpsApi,
            "No key, no access",
            "Without credentials, or with an unknown key, the answer is 401 UNAUTHENTICATED.",
            &["R-OPS-5"],
            ops_unauthenticated
        ),
        case!(
            "OPS-011",
            Ops,
            BOTH,
            OpsApi,
            "A token action needs a reason",
            "A token action without a reason is 422 VALIDATION_FAILED.",
            &["R-OPS-6"],
            ops_reason_required
        ),
        case!(
            "OPS-012",
            Ops,
            BOTH,
            OpsApi,
            "Writes honour X-Idempotency-Key",
            "The same key and body answer the stored result (Idempotent-Replayed: true); the same key with another body is 422 IDEMPOTENCY_KEY_REUSED.",
            &["R-OPS-7"],
            ops_idempotency
        ),
        case!(
            "OPS-013",
            Ops,
            BOTH,
            OpsApi,
            "The decision audit shows why, never card data",
            "GET /ops/v1/cards/{id}/decisions lists the card's verifications with their reasons and no PAN.",
            &["R-OPS-9"],
            ops_decision_audit
        ),
        case!(
            "OPS-014",
            Ops,
            BOTH,
            OpsApi,
            "Every write is audited with who, what and why",
            "After a suspend, GET /ops/v1/audit holds token.suspend with the API key, the token and the reason.",
            &["R-OPS-8"],
            ops_write_audit
        ),
        case!(
            "OPS-015",
            Ops,
            BOTH,
            OpsApi,
            "A card-wide action suspends the tokens on one device with a coded reason",
            "POST /ops/v1/cards/{id}/tokens/suspend with reasonCode LOST and a deviceId suspends that device's token, leaves the other device's active, and says so per token.",
            &["R-OPS-10"],
            ops_card_wide_suspend
        ),
        case!(
            "OPS-016",
            Ops,
            BOTH,
            OpsApi,
            "Reconciliation repairs a token event TMP lost",
            "TMP loses the token event of a wallet's suspension (the mock's discard fault); POST /ops/v1/cards/{id}/tokens/reconcile reports the token's status drift as repaired, and a second run finds none.",
            &["R-OPS-11"],
            ops_reconcile_lost_event
        ),
        case!(
            "OPS-017",
            Ops,
            BOTH,
            OpsApi,
            "A token waiting for its code gets a new one by another channel",
            "After a YELLOW tokenization, POST /ops/v1/tokens/{id}/activation-code/resend with channel EMAIL answers the INACTIVE token with its new code's state (EMAIL, attempts left), and TMP sends the issuer a second ACTIVATION_CODE_DELIVERY.",
            &["R-OPS-12"],
            ops_resend_activation_code
        ),
        case!(
            "OPS-020",
            Ops,
            BOTH,
            OpsApi,
            "A token's history says what happened, who did it and why",
            "After a GREEN tokenization and a suspend with reasonCode LOST, GET /ops/v1/tokens/{id}/history shows the SUSPENDED token, its events in the order they happened ending with SUSPENDED from ACTIVE, LOST, initiator ISSUER; with cards at the processor, the APPROVED verification of the tokenization that created it. An unknown token is 404 NOT_FOUND.",
            &["R-OPS-15"],
            ops_token_history
        ),
    ]
}

// ---- Helpers ----------------------------------------------------------------------------

fn bearer(token: &zeroize::Zeroizing<String>) -> Bearer {
    Bearer { env: OPS_KEY_ENV, token: token.clone() }
}

/// A call to the ops API with the key that holds every scope.
fn ops(s: &Session, method: Method, path: &str, body: Option<Value>) -> Result<Call, Failure> {
    let ops = s.ops_api()?;
    let mut call = match body {
        Some(body) => Call::post(&ops.url, path, body),
        None => Call::get(&ops.url, path),
    };
    call.method = method;
    Ok(call.signer(None).idempotency_key(None).bearer(Some(bearer(&ops.key))))
}

async fn action(s: &Session, token: &str, verb: &str, reason: &str) -> Result<Answer, Failure> {
    let call = ops(s, Method::POST, &format!("/ops/v1/tokens/{token}/{verb}"), Some(json!({"reason": reason})))?;
    s.send(call).await
}

async fn tokens(s: &Session, card_id: &str) -> Result<Answer, Failure> {
    s.send(ops(s, Method::GET, &format!("/ops/v1/cards/{card_id}/tokens"), None)?).await
}

fn listed(answer: &Answer, token: &str, status: &str) -> Outcome {
    let body = answer.json().unwrap_or_default();
    let found =
        body["tokens"].as_array().is_some_and(|all| all.iter().any(|t| t["tokenId"] == token && t["status"] == status));
    ensure(found, format!("token {token} listed as {status}"), body.to_string()).map_err(|f| f.with(answer))
}

// ---- Cases ------------------------------------------------------------------------------

async fn ops_tokens_from_tmp(s: Arc<Session>) -> Outcome {
    let (card_id, token) = card_with_token(&s, "ops-list").await?;
    let answer = tokens(&s, &card_id).await?;
    answer.ok_with(&[("/source", json!("tmp")), ("/stale", json!(false))])?;
    listed(&answer, &token, "ACTIVE")
}

async fn ops_push_google_pay(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "ops-gpay").await?;
    known_to_tmp(&s, &card_id).await?;
    let body = json!({"clientDeviceId": "device-1", "clientWalletAccountId": "wallet-1", "reason": "Add to Google Pay tapped"});
    let path = format!("/ops/v1/cards/{card_id}/push-provisioning/google-pay");
    let answer = s.send(ops(&s, Method::POST, &path, Some(body))?).await?;
    answer.status(200)?;
    let opc = answer.json().unwrap_or_default()["opaquePaymentCard"].as_str().map(str::to_owned);
    let opc = opc.ok_or_else(|| Failure::new("an opaquePaymentCard", answer.text()).with(&answer))?;
    let pushed = push(&s, &opc, |_| {}).await?;
    expect_path(&pushed, "GREEN").await?;
    let token = token_id(&pushed)?;
    token_status(&s, &token, "ACTIVE").await?;
    listed(&tokens(&s, &card_id).await?, &token, "ACTIVE")
}

async fn ops_push_apple_pay(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "ops-apay").await?;
    known_to_tmp(&s, &card_id).await?;
    let body = json!({"certificates": ["MIIBconformanceLeaf", "MIIBconformanceSubCA"], "nonce": "4a2b9c0d",
                      "nonceSignature": "9f8e7d6c", "reason": "Add to Apple Wallet tapped"});
    let path = format!("/ops/v1/cards/{card_id}/push-provisioning/apple-pay");
    let answer = s.send(ops(&s, Method::POST, &path, Some(body))?).await?;
    answer.status(200)?;
    let body = answer.json().unwrap_or_default();
    let part = |name: &str| body[name].as_str().filter(|v| !v.is_empty()).map(str::to_owned);
    let (Some(pass), Some(activation), Some(_key)) =
        (part("encryptedPassData"), part("activationData"), part("ephemeralPublicKey"))
    else {
        return Err(
            Failure::new("encryptedPassData, activationData and ephemeralPublicKey", body.to_string()).with(&answer)
        );
    };
    let pushed = push(&s, &pass, |r| {
        r["activationData"] = json!(activation);
        r["walletRecommendation"] = json!("REQUIRE_ADDITIONAL_AUTHENTICATION");
    })
    .await?;
    token_status(&s, &token_id(&pushed)?, "ACTIVE").await
}

async fn ops_push_samsung_pay(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "ops-spay").await?;
    known_to_tmp(&s, &card_id).await?;
    let body = json!({"deviceId": "galaxy-1", "walletUserId": "wu-1", "reason": "Add to Samsung Wallet tapped"});
    let path = format!("/ops/v1/cards/{card_id}/push-provisioning/samsung-pay");
    let answer = s.send(ops(&s, Method::POST, &path, Some(body))?).await?;
    answer.ok_with(&[("/wallet", json!("SAMSUNG_PAY"))])?;
    let payload = answer.json().unwrap_or_default()["provisioningPayload"].as_str().map(str::to_owned);
    let payload = payload.ok_or_else(|| Failure::new("a provisioningPayload", answer.text()).with(&answer))?;
    let pushed = push(&s, &payload, |_| {}).await?;
    expect_path(&pushed, "GREEN").await?;
    let token = token_id(&pushed)?;
    token_status(&s, &token, "ACTIVE").await?;
    let listed_tokens = tokens(&s, &card_id).await?;
    listed(&listed_tokens, &token, "ACTIVE")?;
    let wallet = listed_tokens.json().unwrap_or_default()["tokens"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["tokenId"] == token.as_str()).map(|t| t["wallet"].clone()))
        .unwrap_or_default();
    ensure(wallet == "SAMSUNG_PAY", "the token in Samsung Pay", wallet.to_string())
}

async fn ops_push_web(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "ops-web").await?;
    known_to_tmp(&s, &card_id).await?;
    let path = format!("/ops/v1/cards/{card_id}/push-provisioning/web");
    let pan = crate::client::generate_pan();
    for body in [
        json!({"wallet": "APPLE_PAY", "callbackUrl": "https://bank.example/back"}),
        json!({"wallet": "GOOGLE_PAY", "callbackUrl": "http://bank.example/back"}),
        json!({"wallet": "GOOGLE_PAY", "callbackUrl": format!("https://bank.example/back?card={}", pan.expose())}),
    ] {
        let refused = s.send(ops(&s, Method::POST, &path, Some(body))?).await?;
        refused.error(422, "VALIDATION_FAILED")?;
        ensure(!refused.text().contains(pan.expose()), "no card number in the error", "the card number repeated")?;
    }
    let callback = "https://bank.example/cards/added?session=conformance";
    let body = json!({"wallet": "GOOGLE_PAY", "callbackUrl": callback, "reason": "Add to Google Pay on the website"});
    let answer = s.send(ops(&s, Method::POST, &path, Some(body))?).await?;
    answer.ok_with(&[("/wallet", json!("GOOGLE_PAY"))])?;
    let push_url = answer.json().unwrap_or_default()["pushUrl"].as_str().map(str::to_owned);
    let push_url = push_url.ok_or_else(|| Failure::new("a pushUrl", answer.text()).with(&answer))?;
    let mock = s.mock()?;
    let (status, _) = mock.web_push_page(&push_url).await.map_err(Failure::from)?;
    ensure(status == 200, "the wallet's web flow at pushUrl (200)", status.to_string())?;
    let (status, location) =
        mock.web_push_submit(&push_url, "deviceName=Laptop&terms=accepted&action=add").await.map_err(Failure::from)?;
    let location = location.unwrap_or_default();
    let prefix = format!("{callback}&result=ADDED&tokenId=");
    let token = location.strip_prefix(&prefix).filter(|t| status == 303 && !t.is_empty());
    let token = token.ok_or_else(|| Failure::new(format!("303 to {prefix}…"), format!("{status} to {location}")))?;
    token_status(&s, token, "ACTIVE").await?;
    listed(&tokens(&s, &card_id).await?, token, "ACTIVE")?;
    let (again, _) = mock.web_push_submit(&push_url, "terms=accepted&action=add").await.map_err(Failure::from)?;
    ensure(again == 409, "a used receipt refused (409)", again.to_string())
}

async fn ops_suspend_resume(s: Arc<Session>) -> Outcome {
    let (_, token) = card_with_token(&s, "ops-suspend").await?;
    action(&s, &token, "suspend", "fraud case 4411").await?.ok_with(&[("/status", json!("SUSPENDED"))])?;
    token_status(&s, &token, "SUSPENDED").await?;
    action(&s, &token, "resume", "fraud case 4411 closed").await?.ok_with(&[("/status", json!("ACTIVE"))])?;
    token_status(&s, &token, "ACTIVE").await
}

async fn ops_forbidden_resume(s: Arc<Session>) -> Outcome {
    let (_, token) = card_with_token(&s, "ops-resume").await?;
    action(&s, &token, "resume", "nothing to resume").await?.error(409, "INVALID_TOKEN_STATE")
}

async fn ops_deactivate(s: Arc<Session>) -> Outcome {
    let (_, token) = card_with_token(&s, "ops-deactivate").await?;
    action(&s, &token, "deactivate", "device reported stolen").await?.ok_with(&[("/status", json!("DEACTIVATED"))])?;
    token_status(&s, &token, "DEACTIVATED").await?;
    action(&s, &token, "activate", "try to bring it back").await?.error(409, "INVALID_TOKEN_STATE")
}

async fn ops_unknown(s: Arc<Session>) -> Outcome {
    tokens(&s, &s.id("ops-no-such-card")).await?.error(404, "NOT_FOUND")?;
    action(&s, &s.id("DWSPMC-no-such-token"), "suspend", "checking").await?.error(404, "NOT_FOUND")
}

async fn ops_tmp_down(s: Arc<Session>) -> Outcome {
    let (card_id, token) = card_with_token(&s, "ops-down").await?;
    // The mirror learns the token from TMP's token event.
    issuer_told(&s, "/issuer-api/v1/tokens/events", &token).await?;
    let mock = s.mock()?;
    let list = mock.add_fault(json!({"route": "GET /tmp-api/v1/cards/{cardId}/tokens", "error_status": 503})).await?;
    let act =
        mock.add_fault(json!({"route": "POST /tmp-api/v1/tokens/{tokenId}/{action}", "error_status": 503})).await?;
    let result = async {
        let answer = tokens(&s, &card_id).await?;
        answer.ok_with(&[("/source", json!("mirror")), ("/stale", json!(true))])?;
        listed(&answer, &token, "ACTIVE")?;
        let answer = action(&s, &token, "suspend", "while TMP is down").await?;
        answer.error(503, "UNAVAILABLE")?;
        ensure(answer.header("retry-after").is_some(), "a Retry-After header", "none").map_err(|f| f.with(&answer))
    }
    .await;
    mock.remove_fault(list).await.ok();
    mock.remove_fault(act).await.ok();
    result
}

async fn ops_wrong_scope(s: Arc<Session>) -> Outcome {
    let (card_id, token) = card_with_token(&s, "ops-scope").await?;
    let read_only = Some(bearer(&s.ops_api()?.read_only_key));
    let list = ops(&s, Method::GET, &format!("/ops/v1/cards/{card_id}/tokens"), None)?.bearer(read_only.clone());
    s.send(list).await?.status(200)?;
    let path = format!("/ops/v1/tokens/{token}/suspend");
    let write = ops(&s, Method::POST, &path, Some(json!({"reason": "not allowed"})))?.bearer(read_only);
    s.send(write).await?.error(403, "FORBIDDEN")?;
    token_status(&s, &token, "ACTIVE").await
}

async fn ops_unauthenticated(s: Arc<Session>) -> Outcome {
    let path = "/ops/v1/cards/card-active/tokens";
    s.send(ops(&s, Method::GET, path, None)?.bearer(None)).await?.error(401, "UNAUTHENTICATED")?;
    let stranger = Bearer { env: OPS_KEY_ENV, token: zeroize::Zeroizing::new("tmpk_0000000000000000_unknown".into()) };
    s.send(ops(&s, Method::GET, path, None)?.bearer(Some(stranger))).await?.error(401, "UNAUTHENTICATED")
}

async fn ops_reason_required(s: Arc<Session>) -> Outcome {
    let (_, token) = card_with_token(&s, "ops-reason").await?;
    let call = ops(&s, Method::POST, &format!("/ops/v1/tokens/{token}/suspend"), Some(json!({})))?;
    s.send(call).await?.error(422, "VALIDATION_FAILED")?;
    token_status(&s, &token, "ACTIVE").await
}

async fn ops_idempotency(s: Arc<Session>) -> Outcome {
    let (_, token) = card_with_token(&s, "ops-idem").await?;
    let key = uuid::Uuid::new_v4().to_string();
    let path = format!("/ops/v1/tokens/{token}/suspend");
    let call = ops(&s, Method::POST, &path, Some(json!({"reason": "case 1"})))?.idempotency_key(Some(&key));
    let prepared = s.prepare(call).await?;
    let first = s.send_prepared(&prepared).await?;
    first.ok_with(&[("/status", json!("SUSPENDED"))])?;
    let second = s.send_prepared(&prepared).await?;
    second.status(200)?;
    ensure(
        second.header("idempotent-replayed").as_deref() == Some("true"),
        "Idempotent-Replayed: true",
        "a fresh answer",
    )
    .map_err(|f| f.with(&second))?;
    let other = ops(&s, Method::POST, &path, Some(json!({"reason": "case 2"})))?.idempotency_key(Some(&key));
    s.send(other).await?.error(422, "IDEMPOTENCY_KEY_REUSED")
}

async fn ops_decision_audit(s: Arc<Session>) -> Outcome {
    s.send(verify_cvc_call(&s, PayloadSpec::card("active"))).await?.field("/cvcResult", "MATCH")?;
    let card_id = super::card_id(&s, "active");
    let answer = s.send(ops(&s, Method::GET, &format!("/ops/v1/cards/{card_id}/decisions?limit=5"), None)?).await?;
    answer.status(200)?;
    let body = answer.json().unwrap_or_default();
    let items = body["items"].as_array().cloned().unwrap_or_default();
    ensure(items.iter().any(|i| i["reason"].is_string()), "decisions with their reasons", body.to_string())
        .map_err(|f| f.with(&answer))?;
    let pan = s.client.profile.card("active")?.pan.expose().to_owned();
    ensure(!answer.text().contains(&pan), "no PAN in the audit", "the PAN").map_err(|f| f.with(&answer))
}

async fn ops_write_audit(s: Arc<Session>) -> Outcome {
    let (card_id, token) = card_with_token(&s, "ops-audit").await?;
    let words = format!("audit check {}", s.id("case"));
    action(&s, &token, "suspend", &words).await?.status(200)?;
    // Without a reasonCode the action is coded OTHER, and the audit says so.
    let reason = format!("OTHER: {words}");
    let answer = s.send(ops(&s, Method::GET, &format!("/ops/v1/audit?cardId={card_id}"), None)?).await?;
    answer.status(200)?;
    let body = answer.json().unwrap_or_default();
    let found = body["items"].as_array().is_some_and(|items| {
        items.iter().any(|i| {
            i["action"] == "token.suspend"
                && i["target"] == token.as_str()
                && i["reason"] == reason.as_str()
                && i["actor"].as_str().is_some_and(|a| a.starts_with("apikey:"))
                && i["outcome"] == "ok"
        })
    });
    ensure(found, "token.suspend by the API key, with the token and the reason", body.to_string())
        .map_err(|f| f.with(&answer))
}

async fn ops_card_wide_suspend(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "ops-device").await?;
    let (lost, kept) = (s.id("dev-lost"), s.id("dev-kept"));
    let mut tokens = Vec::new();
    for (wallet, device) in [("GOOGLE_PAY", &lost), ("SAMSUNG_PAY", &kept)] {
        let answer = tokenize(&s, &card_id, |r| {
            r["wallet"] = json!(wallet);
            r["deviceId"] = json!(device);
        })
        .await?;
        expect_path(&answer, "GREEN").await?;
        let token = token_id(&answer)?;
        token_status(&s, &token, "ACTIVE").await?;
        tokens.push(token);
    }
    let body = json!({"reasonCode": "LOST", "reason": "phone reported lost", "deviceId": lost});
    let answer = s.send(ops(&s, Method::POST, &format!("/ops/v1/cards/{card_id}/tokens/suspend"), Some(body))?).await?;
    answer.ok_with(&[
        ("/done", json!(1)),
        ("/failed", json!(0)),
        ("/tokens/0/tokenId", json!(tokens[0])),
        ("/tokens/0/outcome", json!("done")),
    ])?;
    let listed = answer.json().unwrap_or_default()["tokens"].as_array().map_or(0, Vec::len);
    ensure(listed == 1, "only the lost device's token in the answer", answer.text()).map_err(|f| f.with(&answer))?;
    token_status(&s, &tokens[0], "SUSPENDED").await?;
    token_status(&s, &tokens[1], "ACTIVE").await
}

async fn ops_token_history(s: Arc<Session>) -> Outcome {
    let (_, token) = card_with_token(&s, "ops-history").await?;
    issuer_told(&s, "/issuer-api/v1/tokens/events", &token).await?;
    let body = json!({"reasonCode": "LOST", "reason": "phone reported lost"});
    s.send(ops(&s, Method::POST, &format!("/ops/v1/tokens/{token}/suspend"), Some(body))?).await?.status(200)?;
    let path = format!("/ops/v1/tokens/{token}/history");
    // TMP tells the issuer of the suspension on its own time: the history has it once it did.
    eventually(s.delivery_within, || async {
        let answer = s.send(ops(&s, Method::GET, &path, None)?).await?;
        answer.ok_with(&[("/token/tokenId", json!(token)), ("/token/status", json!("SUSPENDED"))])
    })
    .await?;
    let answer = s.send(ops(&s, Method::GET, &path, None)?).await?;
    let history = answer.json().unwrap_or_default();
    let events = history["events"].as_array().cloned().unwrap_or_default();
    let shown = answer.text();
    let fail = |what: &str| Failure::new(what.to_owned(), shown.clone()).with(&answer);
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Err(fail("the token's events"));
    };
    ensure(first["status"] == "ACTIVE", "the first event made the token ACTIVE", shown.clone())
        .map_err(|f| f.with(&answer))?;
    let suspended = [
        ("status", json!("SUSPENDED")),
        ("previousStatus", json!("ACTIVE")),
        ("reasonCode", json!("LOST")),
        ("initiator", json!("ISSUER")),
    ];
    for (member, expected) in suspended {
        ensure(last[member] == expected, format!("the last event's {member} {expected}"), shown.clone())
            .map_err(|f| f.with(&answer))?;
    }
    let times: Vec<&str> = events.iter().filter_map(|e| e["occurredAt"].as_str()).collect();
    // RFC 3339 in UTC with one precision compares as text; the contract's times are that.
    ensure(times.windows(2).all(|w| w[0] <= w[1]), "events in the order they happened", shown.clone())
        .map_err(|f| f.with(&answer))?;
    if s.approach == crate::case::Approach::External {
        let decided = history["decisions"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["operation"] == "verify_card" && d["decision"] == "APPROVED"));
        ensure(decided, "the APPROVED card verification of the tokenization", shown.clone())
            .map_err(|f| f.with(&answer))?;
    }
    let unknown = format!("/ops/v1/tokens/{}/history", s.id("no-such-token"));
    s.send(ops(&s, Method::GET, &unknown, None)?).await?.error(404, "NOT_FOUND")
}

async fn ops_reconcile_lost_event(s: Arc<Session>) -> Outcome {
    let (card_id, token) = card_with_token(&s, "ops-drift").await?;
    // The creation's token event delivered first: the fault must lose the suspension's, not it
    // (nor another case's still in flight).
    issuer_told(&s, "/issuer-api/v1/tokens/events", &token).await?;
    let mock = s.mock()?;
    // Only this token's callbacks: another case's token event in flight is not lost instead.
    let rule =
        json!({"route": "POST /issuer-api/v1/tokens/events", "discard": true, "times": 1, "body_contains": token});
    let fault = mock.add_fault(rule).await?;
    let lost = async {
        mock.wallet_action(&token, "suspend").await?;
        token_status(&s, &token, "SUSPENDED").await?;
        // The mock's sender works on its own: the event is lost once the journal says so.
        eventually(s.delivery_within, || async {
            let discarded = mock
                .requests()
                .await?
                .iter()
                .any(|r| r["outcome"] == "discarded" && r["body"]["tokenId"] == token.as_str());
            ensure(discarded, "the suspension's token event lost by TMP", "not yet")
        })
        .await
    }
    .await;
    mock.remove_fault(fault).await.ok();
    lost?;
    let path = format!("/ops/v1/cards/{card_id}/tokens/reconcile");
    let answer = s.send(ops(&s, Method::POST, &path, Some(json!({"reason": "conformance drift check"})))?).await?;
    answer.ok_with(&[
        ("/drift/0/tokenId", json!(token)),
        ("/drift/0/kind", json!("status")),
        ("/drift/0/mirrorStatus", json!("ACTIVE")),
        ("/drift/0/tmpStatus", json!("SUSPENDED")),
        ("/drift/0/repaired", json!(true)),
    ])?;
    let again = s.send(ops(&s, Method::POST, &path, Some(json!({})))?).await?;
    again.ok_with(&[("/drift", json!([]))])
}

async fn ops_resend_activation_code(s: Arc<Session>) -> Outcome {
    let card_id = issue_card(&s, "ops-resend").await?;
    let answer =
        tokenize(&s, &card_id, |r| r["walletRecommendation"] = json!("REQUIRE_ADDITIONAL_AUTHENTICATION")).await?;
    expect_path(&answer, "YELLOW").await?;
    let token = token_id(&answer)?;
    token_status(&s, &token, "INACTIVE").await?;
    let body = json!({"channel": "EMAIL", "reason": "the cardholder did not get the SMS"});
    let path = format!("/ops/v1/tokens/{token}/activation-code/resend");
    let answer = s.send(ops(&s, Method::POST, &path, Some(body))?).await?;
    answer.ok_with(&[("/status", json!("INACTIVE")), ("/activationCode/channel", json!("EMAIL"))])?;
    let left = answer.json().unwrap_or_default()["activationCode"]["attemptsLeft"].as_u64();
    ensure(left.is_some_and(|n| n > 0), "attempts left", format!("{left:?}")).map_err(|f| f.with(&answer))?;
    let mock = s.mock()?;
    eventually(s.delivery_within, || async {
        let codes = mock
            .requests()
            .await?
            .into_iter()
            .filter(|r| {
                r["direction"] == "sent"
                    && r["path"] == "/issuer-api/v1/notifications"
                    && r["body"]["tokenId"] == token.as_str()
                    && r["body"]["type"] == "ACTIVATION_CODE_DELIVERY"
                    && r["status"].as_u64().is_some_and(|c| (200..300).contains(&c))
            })
            .count();
        ensure(codes >= 2, "two activation codes delivered to the issuer", format!("{codes}"))
    })
    .await
}
