//! Hostile and broken requests: each gets a 4xx with the contract's JSON error, changes
//! nothing, and the adapter keeps serving.

use serde_json::json;
use tmp_protocol::jwk::RsaKeyPair;
use tmp_protocol::webhook::WebhookSecret;

use crate::helpers::app::*;
use crate::helpers::db::test_databases;
use crate::verify_card::verify_body;

const VERIFY: &str = "/issuer-api/v1/cards/verify";
const EVENTS: &str = "/issuer-api/v1/tokens/events";

/// Nothing was decided, mirrored or queued.
async fn assert_nothing_changed(app: &TestApp, context: &str) {
    for card in ["card-active", "card-blocked"] {
        let audit = app.store.decisions_for_card(card, 10).await.unwrap();
        assert!(audit.is_empty(), "{} {context}: audit {audit:?}", app.backend);
    }
    assert!(app.store.pending_outbox(10).await.unwrap().is_empty(), "{} {context}: outbox", app.backend);
    assert!(app.store.find_token("tok-bad").await.unwrap().is_none(), "{} {context}: token", app.backend);
}

/// Swaps one character of a compact JWE part (keeping it base64url).
fn tamper(compact: &str, part: usize) -> String {
    let mut parts: Vec<String> = compact.split('.').map(str::to_owned).collect();
    let target = &mut parts[part];
    let mid = target.len() / 2;
    let replacement = if &target[mid..=mid] == "A" { "B" } else { "A" };
    target.replace_range(mid..=mid, replacement);
    parts.join(".")
}

/// `compact` with its protected header replaced by `header` (the rest of the token unchanged).
fn with_header(compact: &str, header: serde_json::Value) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.to_string());
    let rest = compact.split_once('.').map(|(_, rest)| rest).expect("a compact JWE");
    format!("{encoded}.{rest}")
}

#[tokio::test]
async fn malformed_and_invalid_bodies_are_rejected_without_effect() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        app.import(&fixture_cards()).await;
        let good = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");

        expect_error(app.request(VERIFY).raw("{\"tsp\": ").send().await, 400, "MALFORMED_JSON").await;
        expect_error(app.request(VERIFY).raw("not json at all").send().await, 400, "MALFORMED_JSON").await;

        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove("tokenRequestor");
        let body = expect_error(app.request(VERIFY).json(&missing).send().await, 422, "VALIDATION_FAILED").await;
        assert!(body["error"]["message"].as_str().unwrap().contains("tokenRequestor"), "{body}");

        let mut wrong_type = good.clone();
        wrong_type["walletScore"] = json!("five");
        expect_error(app.request(VERIFY).json(&wrong_type).send().await, 422, "VALIDATION_FAILED").await;

        let mut out_of_range = good.clone();
        out_of_range["deviceScore"] = json!(9);
        expect_error(app.request(VERIFY).json(&out_of_range).send().await, 422, "VALIDATION_FAILED").await;

        let mut unknown_enum = good.clone();
        unknown_enum["tokenRequestor"]["wallet"] = json!("PAYPAL");
        let body = expect_error(app.request(VERIFY).json(&unknown_enum).send().await, 422, "VALIDATION_FAILED").await;
        assert!(body["error"]["message"].as_str().unwrap().contains("unknown enum value"), "{body}");
        let mut unknown_tsp = good.clone();
        unknown_tsp["tsp"] = json!("AMEX");
        expect_error(app.request(VERIFY).json(&unknown_tsp).send().await, 422, "VALIDATION_FAILED").await;

        let mut event = crate::token_events::event_body("tok-bad", "card-active", "FROZEN", "2026-03-01T10:00:00Z");
        expect_error(app.request(EVENTS).json(&event).send().await, 422, "VALIDATION_FAILED").await;
        event["status"] = json!("ACTIVE");
        event["occurredAt"] = json!("yesterday");
        expect_error(app.request(EVENTS).json(&event).send().await, 422, "VALIDATION_FAILED").await;

        let limit = app.settings.server.body_limit_bytes;
        let mut huge = good.clone();
        huge["tokenizationId"] = json!("x".repeat(limit));
        expect_error(app.request(VERIFY).json(&huge).send().await, 413, "PAYLOAD_TOO_LARGE").await;

        for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
            let response = app.request(VERIFY).json(&good).content_type(content_type).send().await;
            expect_error(response, 415, "UNSUPPORTED_MEDIA_TYPE").await;
        }
        expect_error(app.request(VERIFY).json(&good).idempotency_key(None).send().await, 400, "INVALID_HEADER").await;
        let long_key = "k".repeat(200);
        expect_error(
            app.request(VERIFY).json(&good).idempotency_key(Some(&long_key)).send().await,
            400,
            "INVALID_HEADER",
        )
        .await;

        assert_nothing_changed(&app, "after bad bodies").await;
        // Still serving: the same adapter answers a good request.
        expect_json(app.request(VERIFY).json(&good).send().await, 200).await;
        app.stop().await;
    }
}

#[tokio::test]
async fn bad_signatures_are_rejected_without_effect() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        app.import(&fixture_cards()).await;
        let good = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");

        let unsigned = app.request(VERIFY).json(&good).signing(Signing::None).send().await;
        expect_error(unsigned, 401, "MISSING_SIGNATURE").await;
        let (other, _) = WebhookSecret::generate();
        let wrong_key = app.request(VERIFY).json(&good).signing(Signing::WithSecret(other)).send().await;
        expect_error(wrong_key, 401, "INVALID_SIGNATURE").await;
        let tampered = app.request(VERIFY).json(&good).signing(Signing::TamperedBody).send().await;
        expect_error(tampered, 401, "INVALID_SIGNATURE").await;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let tolerance = app.settings.auth.timestamp_tolerance_secs as i64;
        for stale in [now - tolerance - 60, now + tolerance + 60] {
            let response = app.request(VERIFY).json(&good).timestamp(stale).send().await;
            expect_error(response, 401, "STALE_TIMESTAMP").await;
        }
        // A replay of a captured, validly signed request (same webhook-id) is refused.
        let first = app.request(VERIFY).json(&good).webhook_id("msg_replay_1").idempotency_key(Some("r1")).send().await;
        expect_json(first, 200).await;
        let replay =
            app.request(VERIFY).json(&good).webhook_id("msg_replay_1").idempotency_key(Some("r2")).send().await;
        expect_error(replay, 401, "REPLAYED_REQUEST").await;
        let audit = app.store.decisions_for_card("card-active", 10).await.unwrap();
        assert_eq!(audit.len(), 1, "{}: only the first request decided", db.backend);
        app.stop().await;
    }
}

#[tokio::test]
async fn a_second_live_secret_is_accepted_during_rotation() {
    for db in test_databases().await {
        let (new_secret, _) = WebhookSecret::generate();
        let app = TestApp::spawn_with(&db, |s| s.auth.hmac_secrets.push(new_secret.clone())).await;
        app.import(&fixture_cards()).await;
        let body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");
        let old = app.request(VERIFY).json(&body).send().await;
        expect_json(old, 200).await;
        let new = app.request(VERIFY).json(&body).signing(Signing::WithSecret(new_secret)).send().await;
        expect_json(new, 200).await;
        app.stop().await;
    }
}

#[tokio::test]
async fn bad_jwe_and_bad_card_data_are_rejected_without_effect() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        app.import(&fixture_cards()).await;
        let card = json!({"pan": PAN_ACTIVE, "expiry": EXPIRY});

        // Encrypted to a key the adapter does not have, under the adapter's own kid.
        let stranger = RsaKeyPair::generate(2048).unwrap().with_kid(app.jwk.kid.clone()).unwrap();
        let wrong_key = tmp_protocol::jwe::encrypt_json(&card, &stranger.public_jwk()).unwrap();
        // Encrypted to an unknown kid.
        let unknown_kid =
            tmp_protocol::jwe::encrypt_json(&card, &stranger.clone().with_kid("rotated-away").unwrap().public_jwk())
                .unwrap();
        let good_jwe = app.encrypt(&card);
        let kid = app.jwk.kid.clone();
        let header = |extra: serde_json::Value| {
            let mut h = json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": kid});
            for (k, v) in extra.as_object().expect("an object") {
                h[k] = v.clone();
            }
            h
        };
        let cases = [
            // Each header fault named as such (not as another).
            ("zip", with_header(&good_jwe, header(json!({"zip": "DEF"}))), "header `zip` is not supported"),
            ("crit", with_header(&good_jwe, header(json!({"crit": ["exp"]}))), "header `crit` is not supported"),
            ("no kid", with_header(&good_jwe, json!({"alg": "RSA-OAEP-256", "enc": "A256GCM"})), "has no `kid`"),
            ("enc", with_header(&good_jwe, header(json!({"enc": "A128GCM"}))), "`enc` must be A256GCM"),
            ("alg", with_header(&good_jwe, header(json!({"alg": "RSA-OAEP"}))), "`alg` must be RSA-OAEP-256"),
            ("wrong key", wrong_key, "could not be decrypted"),
            ("unknown kid", unknown_kid, "unknown `kid`"),
            ("tampered header", tamper(&good_jwe, 0), ""),
            ("tampered key", tamper(&good_jwe, 1), "could not be decrypted"),
            ("tampered iv", tamper(&good_jwe, 2), "could not be decrypted"),
            ("tampered ciphertext", tamper(&good_jwe, 3), "could not be decrypted"),
            ("tampered tag", tamper(&good_jwe, 4), "could not be decrypted"),
            ("not a JWE", "abc.def".to_owned(), "not a compact JWE"),
            ("plain JSON", card.to_string(), "not a compact JWE"),
        ];
        for (name, payload, message) in cases {
            let response = app.request(VERIFY).json(&verify_body(payload, "GOOGLE_PAY")).send().await;
            let body = expect_error(response, 422, "INVALID_ENCRYPTED_PAYLOAD").await;
            assert!(body["error"]["message"].as_str().unwrap().contains(message), "{} {name}: {body}", db.backend);
        }

        let bad_luhn = app.card_payload("4111111111111112", EXPIRY, None);
        let body = expect_error(
            app.request(VERIFY).json(&verify_body(bad_luhn, "GOOGLE_PAY")).send().await,
            422,
            "VALIDATION_FAILED",
        )
        .await;
        assert!(body["error"]["message"].as_str().unwrap().contains("Luhn"), "{body}");
        assert!(!body.to_string().contains("4111111111111112"));
        let bad_expiry = app.card_payload(PAN_ACTIVE, "13/30", None);
        expect_error(
            app.request(VERIFY).json(&verify_body(bad_expiry, "GOOGLE_PAY")).send().await,
            422,
            "VALIDATION_FAILED",
        )
        .await;
        let bad_cvc = app.card_payload(PAN_ACTIVE, EXPIRY, Some("12"));
        expect_error(
            app.request(VERIFY).json(&verify_body(bad_cvc, "GOOGLE_PAY")).send().await,
            422,
            "VALIDATION_FAILED",
        )
        .await;

        assert_nothing_changed(&app, "after bad JWE").await;
        app.stop().await;
    }
}

/// serde's derived structs also read a JSON array of their fields in order; the contract's
/// objects must not: neither as a body, nor as a member, nor as a JWE plaintext.
#[tokio::test]
async fn an_object_given_as_any_other_json_type_is_refused_without_effect() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        app.import(&fixture_cards()).await;
        let good = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");
        let refused = |body: serde_json::Value, what: &'static str| {
            let app = &app;
            let backend = db.backend;
            async move {
                let response = app.request(VERIFY).json(&body).send().await;
                let error = expect_error(response, 422, "VALIDATION_FAILED").await;
                let message = error["error"]["message"].as_str().unwrap().to_owned();
                assert!(!error.to_string().contains(PAN_ACTIVE), "{backend} {what}: {error}");
                message
            }
        };

        // The body itself.
        let positional: Vec<serde_json::Value> = good.as_object().unwrap().values().cloned().collect();
        for (what, body) in
            [("array", json!(positional)), ("number", json!(7)), ("string", json!("x")), ("null", json!(null))]
        {
            let message = refused(body, what).await;
            assert!(message.contains("body"), "{what}: {message}");
        }
        // A member.
        let mut requestor = good.clone();
        requestor["tokenRequestor"] = json!(["50110030273", "Google Pay", "GOOGLE_PAY"]);
        let message = refused(requestor, "tokenRequestor").await;
        assert!(message.contains("`tokenRequestor`: expected a JSON object"), "{message}");
        // The card-data plaintext, on verify-card and verify-cvc.
        let positional_card = app.encrypt(&json!([PAN_ACTIVE, EXPIRY]));
        let message = refused(verify_body(positional_card.clone(), "GOOGLE_PAY"), "plaintext").await;
        assert!(message.contains("`encryptedPayload`: expected a JSON object"), "{message}");
        let cvc_check = json!({
            "tokenRequestor": {"id": "50110030273", "name": "Apple Pay", "wallet": "APPLE_PAY"},
            "encryptedPayload": app.encrypt(&json!([PAN_ACTIVE, EXPIRY, "123"])),
        });
        let response = app.request("/issuer-api/v1/cards/verify-cvc").json(&cvc_check).send().await;
        expect_error(response, 422, "VALIDATION_FAILED").await;
        // The activation code's plaintext.
        let mut otp = crate::notifications::notification_body(&app, "ACTIVATION_CODE_DELIVERY", "n-array", None);
        otp["encryptedPayload"] = json!(app.encrypt(&json!([crate::notifications::OTP])));
        let response = app.request("/issuer-api/v1/notifications").json(&otp).send().await;
        expect_error(response, 422, "VALIDATION_FAILED").await;
        assert!(app.store.find_notification("n-array").await.unwrap().is_none(), "{}", db.backend);

        assert_nothing_changed(&app, "after positional objects").await;
        expect_json(app.request(VERIFY).json(&good).send().await, 200).await;
        app.stop().await;
    }
}

#[tokio::test]
async fn card_numbers_and_dot_segments_in_ids_and_headers_are_refused_without_effect() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        let event = || crate::token_events::event_body("tok-bad", "card-active", "ACTIVE", "2026-03-01T10:00:00Z");
        // Ids become path segments on the way to TMP: `.` and `..` would be resolved away there.
        for (field, value) in [("tokenId", ".."), ("cardId", "."), ("eventId", ".."), ("cardId", "4111-1111-1111-1111")]
        {
            let mut body = event();
            body[field] = json!(value);
            let answer = expect_error(app.request(EVENTS).json(&body).send().await, 422, "VALIDATION_FAILED").await;
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(field) && !message.contains("4111"), "{answer}");
        }
        // An idempotency key is stored and logged: a card number there is refused.
        for key in ["4111111111111111", "4111-1111-1111-1111"] {
            let response = app.request(EVENTS).json(&event()).idempotency_key(Some(key)).send().await;
            let answer = expect_error(response, 400, "INVALID_HEADER").await;
            // Not the correlation id: a random UUID may hold `4111` by chance.
            assert!(!answer["error"]["message"].to_string().contains("4111"), "{answer}");
        }
        assert_nothing_changed(&app, "after card numbers in ids and headers").await;
        // A correlation id only correlates: one holding a card number is replaced, not echoed,
        // and the request goes through.
        let response =
            app.request(EVENTS).json(&event()).header("X-Correlation-Id", "corr 4111.1111.1111.1111").send().await;
        let echoed = response.headers().get("x-correlation-id").unwrap().to_str().unwrap().to_owned();
        assert!(!echoed.contains("4111") && !echoed.is_empty(), "{echoed}");
        expect_json(response, 200).await;
        let response = app.request(EVENTS).json(&event()).header("X-Correlation-Id", "corr-42").send().await;
        assert_eq!(response.headers().get("x-correlation-id").unwrap(), "corr-42", "a plain one is kept");
        app.stop().await;
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_the_contract_error() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        expect_error(app.get("/issuer-api/v1/nope").await, 404, "NOT_FOUND").await;
        // A 405 says which method the path serves (RFC 9110 §15.5.6: `Allow` is required).
        let get = app.get("/issuer-api/v1/cards/verify").await;
        assert_eq!(get.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST"));
        expect_error(get, 405, "METHOD_NOT_ALLOWED").await;
        let delete = app.client.delete(format!("{}/issuer-api/v1/public-key", app.base_url)).send().await.unwrap();
        assert_eq!(delete.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET"));
        expect_error(delete, 405, "METHOD_NOT_ALLOWED").await;
        app.stop().await;
    }
}

/// A score is an integer as JSON Schema counts them: `3.0` is 3 (schemathesis sent one, which the
/// OpenAPI document allows), `3.5` is not, nor `-3.0`, `300.0` or `"3"`.
#[tokio::test]
async fn scores_are_integers_as_json_schema_counts_them() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        app.import(&fixture_cards()).await;
        let good = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");
        let mut integral = good.clone();
        integral["walletScore"] = json!(3.0);
        integral["deviceScore"] = json!(5.0);
        let answer = expect_json(app.request(VERIFY).json(&integral).send().await, 200).await;
        assert_eq!(answer["decision"], "APPROVED", "{}: {answer}", db.backend);
        for score in [json!(3.5), json!(-3.0), json!("3"), json!(300.0)] {
            let mut fractional = good.clone();
            fractional["walletScore"] = score;
            expect_error(app.request(VERIFY).json(&fractional).send().await, 422, "VALIDATION_FAILED").await;
        }
        app.stop().await;
    }
}
