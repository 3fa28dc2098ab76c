//! An Issuer API with one plausible implementer mistake — or one legitimate choice the contract
//! allows: a proxy in front of a real, spawned tmp-adapter that changes what one variant
//! changes and passes everything else through. The proxy holds what the target's owner holds
//! (its TMP secret and JWE keys), so a mistake that needs to read or rewrite a signed,
//! encrypted request can: it re-signs with the request's own `webhook-id` and timestamp, and
//! only requests that arrived authentic. These variants live in the test tree only; the
//! shipped adapter has none of them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes, Data};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{Value, json};
use tmp_protocol::issuer_api::{NOTIFICATIONS_PATH, TOKEN_EVENTS_PATH, VERIFY_CARD_PATH, VERIFY_CVC_PATH};
use tmp_protocol::jwe::KeyRing;
use tmp_protocol::jwk::{JwkSet, RsaKeyPair};
use tmp_protocol::webhook::{SignatureHeaders, Verifier, WebhookSecret};

/// What the proxy changes. Each broken variant is one mistake an implementer could make from
/// the contract; each legitimate one a choice the contract leaves open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Passes everything through: the control.
    Honest,
    // --- admission order, signatures, replay
    /// Re-signs every request: whatever signature (or none) the caller sent is accepted.
    AcceptsBadSignatures,
    /// Accepts an authentic signature whatever its timestamp.
    AcceptsStaleTimestamps,
    /// Does not remember `webhook-id`s.
    NoReplayCheck,
    /// Parses the JSON before checking the signature.
    ParsesBeforeAuthenticating,
    /// Reads any content type as JSON.
    IgnoresContentType,
    /// Parses the JSON before looking at the idempotency key.
    ParsesBeforeTheKey,
    // --- idempotency
    /// Replaces every X-Idempotency-Key with a fresh one.
    IgnoresIdempotencyKeys,
    /// One key store for every route.
    KeysSharedAcrossRoutes,
    /// A reused key replays the stored answer whatever the body.
    ReusedKeyReplaysAnyBody,
    /// Stores rejections (4xx) under their key as well.
    StoresRejections,
    /// Replays without `Idempotent-Replayed: true`.
    ReplaysUnmarked,
    /// Makes up a key when none is sent.
    KeyOptional,
    // --- JWE
    /// Tries every key when the `kid` is unknown.
    TriesEveryKey,
    /// Refuses header members other than alg, enc and kid.
    RefusesOtherHeaderMembers,
    /// Takes any OTP length.
    OtpLengthUnchecked,
    // --- field rules
    /// Takes any tokenLast4.
    TokenLast4Unchecked,
    /// Clamps scores outside 1–5 instead of refusing them.
    ClampsScores,
    /// Maps an unknown enum value to a known one.
    CoercesUnknownEnums,
    /// Strips card numbers from free text instead of refusing them.
    StripsPansFromFreeText,
    /// Takes a PAN as an id.
    PanAsIdAccepted,
    /// Reads a timestamp without an offset as UTC.
    NaiveTimestampsAsUtc,
    /// Fills a missing tokenId.
    FillsMissingFields,
    /// Takes a number where an id string is due.
    CoercesTypes,
    // --- decision policy
    /// Approves blocked cards.
    ApprovesBlockedCards,
    /// No token cap.
    NoTokenCap,
    /// Steps up at the threshold (≤ instead of <).
    StepsUpAtTheThreshold,
    /// Ignores the scores.
    IgnoresScores,
    /// Ignores the wallet's recommendation.
    NoWalletGuardrail,
    /// Treats push provisioning as manual (asks it for a CVC).
    PushTreatedAsManual,
    /// Ignores require_cvc.
    IgnoresRequireCvc,
    /// Sends no contact with a step-up.
    NoContactOnStepUp,
    /// Shows the cardholder's phone and e-mail in clear as step-up method values.
    UnmaskedStepUpMethods,
    /// Gives an unknown card a card id.
    CardIdForUnknownCards,
    /// Does not compare the presented expiry.
    ExpiryNotCompared,
    /// Echoes the card's expiry in the answer.
    EchoesCardData,
    // --- CVC counting
    /// Locks a card one wrong CVC early.
    LocksOneEarly,
    /// Never locks.
    NeverLocks,
    /// Card verification without a CVC skips the lockout.
    LockoutSkippedWithoutCvc,
    /// verify-cvc of an expired card says ACTIVE.
    ExpiredCardActiveInCvcCheck,
    // --- card source failures
    /// Answers a CVC check the card source failed on with NO_MATCH (a stand-in) instead of 503.
    StandInForCvcCheck,
    /// A 503 without Retry-After.
    NoRetryAfterOn503,
    /// Stores 503 answers under their key as well.
    StoresUnavailable,
    /// A stand-in answer that names a card and its contact.
    StandInNamesTheCard,
    /// A stand-in that approves whatever the policy and the wallet say.
    StandInApproves,
    // --- notifications
    /// Acknowledges an activation code without its payload.
    ActivationCodeWithoutPayload,
    /// Drops a payload other notification types must not carry.
    DropsPayloadOfOtherTypes,
    // --- token events
    /// A reused eventId with other content is taken as a new event.
    NoEventConflict,
    /// Refuses token events of cards it does not know.
    RefusesUnknownCards,
    /// Acknowledges token events with a body cut short.
    MalformedTokenAcks,
    // --- correlation id, errors, keys, latency
    /// Does not echo X-Correlation-Id.
    NoCorrelationEcho,
    /// Error bodies without correlationId.
    ErrorsWithoutCorrelationId,
    /// An HTML 404.
    HtmlNotFound,
    /// 400 where the contract says 422 VALIDATION_FAILED.
    BadRequestForValidation,
    /// Publishes the private exponent with each key.
    PublishesPrivateMembers,
    /// Answers card verifications only after this delay.
    AnswersLate(Duration),
    // --- legitimate
    /// `application/json; charset=utf-8` on every JSON answer.
    CharsetInContentType,
    /// 413 from the declared Content-Length, before reading the body.
    EarlyPayloadTooLarge,
    /// More response headers (Server, HSTS, nosniff, a request id).
    ExtraResponseHeaders,
    /// JSON answers pretty-printed.
    ReformattedJson,
}

/// What the proxy knows of the target it fronts: what its owner knows.
pub struct Target {
    pub upstream: String,
    pub secret: WebhookSecret,
    /// The target's JWE private keys.
    pub keys: Vec<RsaKeyPair>,
    /// The card ids the target holds (the profile's).
    pub known_cards: Vec<String>,
    /// The target's step-up threshold, CVC attempt limit and body limit.
    pub step_up_below_score: u8,
    pub cvc_max_attempts: u32,
    pub body_limit: usize,
}

#[derive(Default)]
struct Memory {
    /// Key → (route, status, body) of a stored 2xx answer.
    answers: HashMap<String, (String, u16, Vec<u8>)>,
    /// "route key" → the first body sent under it.
    first_bodies: HashMap<String, Vec<u8>>,
    /// "route key" → (status, body) of a rejection.
    rejections: HashMap<String, (u16, Vec<u8>)>,
    /// PAN → wrong CVCs in a row.
    wrong_cvcs: HashMap<String, u32>,
    /// eventId → (tokenId, status, occurredAt).
    events: HashMap<String, Value>,
}

struct State {
    target: Target,
    variant: Variant,
    ring: KeyRing,
    published: JwkSet,
    http: reqwest::Client,
    memory: Mutex<Memory>,
}

pub struct Proxy {
    pub url: String,
    handle: ServerHandle,
}

impl Proxy {
    pub async fn start(target: Target, variant: Variant) -> Proxy {
        let ring = KeyRing::new(target.keys.clone()).expect("the target's keys");
        let published = ring.jwk_set();
        let state = Data::new(State {
            target,
            variant,
            ring,
            published,
            http: reqwest::Client::new(),
            memory: Mutex::new(Memory::default()),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = HttpServer::new(move || {
            // As large as any body a case sends: the proxy must not refuse what the target would.
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(16 << 20))
                .default_service(web::to(forward))
        })
        .workers(2)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Proxy { url, handle }
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

const PASSED_BACK: [&str; 6] =
    ["content-type", "idempotent-replayed", "x-correlation-id", "retry-after", "allow", "cache-control"];

/// The request on its way to the target.
struct Outgoing {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Outgoing {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn set_header(&mut self, name: &str, value: String) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value));
    }
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
    fn key(&self) -> Option<String> {
        self.header("x-idempotency-key").map(str::to_owned)
    }
}

/// The answer on its way back.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
    fn set_json(&mut self, value: &Value) {
        self.body = value.to_string().into_bytes();
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
    fn set_header(&mut self, name: &str, value: &str) {
        self.remove_header(name);
        self.headers.push((name.to_owned(), value.to_owned()));
    }
    /// The contract's error answer, as the proxy's own.
    fn error(status: u16, code: &str, message: &str) -> Answer {
        let correlation = uuid::Uuid::new_v4().to_string();
        let body = json!({"error": {"code": code, "message": message, "correlationId": correlation}});
        Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into()), ("x-correlation-id".into(), correlation)],
            body: body.to_string().into_bytes(),
        }
    }
    fn ok(body: &Value) -> Answer {
        Answer {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-correlation-id".into(), uuid::Uuid::new_v4().to_string()),
            ],
            body: body.to_string().into_bytes(),
        }
    }
}

async fn forward(state: Data<State>, request: HttpRequest, body: Bytes) -> HttpResponse {
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let issuer_post = path.starts_with("/issuer-api/") && request.method() == actix_web::http::Method::POST;
    let headers = request
        .headers()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "host" | "content-length" | "connection"))
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let mut out = Outgoing { path: path.clone(), headers, body: body.to_vec() };
    let declared_length =
        request.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    // Whether the request arrived authentically signed (any timestamp): only those are
    // re-signed after a change, so a mistake never launders a bad signature by accident.
    let authentic = issuer_post.then(|| authentic(&state, &out)).flatten();

    let before = if issuer_post { before(&state, &mut out, declared_length, authentic.as_ref()) } else { None };
    let mut answer = match before {
        Some(answer) => answer,
        None => {
            if issuer_post
                && out.body != body.as_ref()
                && let Some((id, timestamp)) = &authentic
            {
                resign(&state, &mut out, id, *timestamp);
            }
            let Some(answer) = send(&state, &out, request.method()).await else {
                return HttpResponse::BadGateway().finish();
            };
            answer
        }
    };
    after(&state, &out, &body, &mut answer).await;

    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(answer.status).expect("status"));
    let extra = state.variant == Variant::ExtraResponseHeaders;
    for (name, value) in &answer.headers {
        if PASSED_BACK.contains(&name.to_ascii_lowercase().as_str()) || extra {
            response.append_header((name.as_str(), value.as_str()));
        }
    }
    response.body(answer.body)
}

async fn send(state: &State, out: &Outgoing, method: &actix_web::http::Method) -> Option<Answer> {
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).expect("a method");
    let mut outbound = state.http.request(method, format!("{}{}", state.target.upstream, out.path));
    for (name, value) in &out.headers {
        outbound = outbound.header(name, value);
    }
    let answer = outbound.body(out.body.clone()).send().await.ok()?;
    let status = answer.status().as_u16();
    let headers = answer
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = answer.bytes().await.unwrap_or_default().to_vec();
    Some(Answer { status, headers, body })
}

/// `(webhook-id, timestamp)` when the request carries a valid signature, whatever its age.
fn authentic(state: &State, out: &Outgoing) -> Option<(String, i64)> {
    let id = out.header("webhook-id")?;
    let timestamp: i64 = out.header("webhook-timestamp")?.parse().ok()?;
    let verifier = Verifier::new(vec![state.target.secret.clone()], Duration::from_secs(60));
    verifier
        .verify(Some(id), out.header("webhook-timestamp"), out.header("webhook-signature"), &out.body, timestamp)
        .ok()?;
    Some((id.to_owned(), timestamp))
}

fn resign(state: &State, out: &mut Outgoing, id: &str, timestamp: i64) {
    let headers =
        SignatureHeaders::sign(std::slice::from_ref(&state.target.secret), id, timestamp, &out.body).expect("sign");
    for (name, value) in headers.to_header_pairs() {
        out.set_header(name, value);
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The plaintext of a request's `encryptedPayload`, decrypted with the target's keys.
fn plaintext(state: &State, body: &Value) -> Option<Value> {
    let jwe = body["encryptedPayload"].as_str()?;
    state.ring.decrypt_json::<Value>(jwe).ok()
}

fn encrypt(state: &State, plaintext: &Value) -> String {
    let key = state.published.encryption_key().expect("a published key");
    tmp_protocol::jwe::encrypt_json(plaintext, key).expect("encrypt")
}

fn jwe_header(body: &Value) -> Option<Value> {
    use base64::Engine as _;
    let jwe = body["encryptedPayload"].as_str()?;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwe.split('.').next()?).ok()?;
    serde_json::from_slice(&header).ok()
}

fn card_number_like(text: &str) -> bool {
    let digits: Vec<char> = text.chars().filter(char::is_ascii_digit).collect();
    digits.len() >= 13 && text.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
}

fn has_digit_run(text: &str, at_least: usize) -> bool {
    text.split(|c: char| !c.is_ascii_digit()).any(|run| run.len() >= at_least)
}

/// The mistake on the way in: a changed request, or an answer of the proxy's own.
/// `authentic`: the request's `webhook-id` and timestamp when its signature is valid (any age).
fn before(
    state: &State,
    out: &mut Outgoing,
    declared_length: Option<usize>,
    authentic: Option<&(String, i64)>,
) -> Option<Answer> {
    // Authentic and fresh: past where an implementation checks the signature.
    let signed = authentic.is_some_and(|(_, t)| (now() - t).abs() <= 300);
    let route = out.path.clone();
    let json = out.json();
    let mut body = json.clone();
    let answer = match state.variant {
        Variant::AcceptsBadSignatures => {
            let headers = SignatureHeaders::sign_now(std::slice::from_ref(&state.target.secret), &out.body).ok()?;
            for (name, value) in headers.to_header_pairs() {
                out.set_header(name, value);
            }
            None
        }
        Variant::AcceptsStaleTimestamps => {
            let (id, timestamp) = authentic?;
            if (now() - timestamp).abs() > 60 {
                resign(state, out, id, now());
            }
            None
        }
        Variant::NoReplayCheck => {
            let (_, timestamp) = authentic?;
            resign(state, out, &tmp_protocol::webhook::new_message_id(), *timestamp);
            None
        }
        Variant::ParsesBeforeAuthenticating => (json.is_none() && out.body.len() <= state.target.body_limit)
            .then(|| Answer::error(400, "MALFORMED_JSON", "the body is not JSON")),
        Variant::IgnoresContentType => {
            out.set_header("content-type", "application/json".into());
            None
        }
        Variant::ParsesBeforeTheKey => {
            let json_type = out.header("content-type").is_some_and(|c| c.starts_with("application/json"));
            let within = out.body.len() <= state.target.body_limit;
            (signed && json_type && within && json.is_none())
                .then(|| Answer::error(400, "MALFORMED_JSON", "the body is not JSON"))
        }
        Variant::IgnoresIdempotencyKeys => {
            out.set_header("x-idempotency-key", uuid::Uuid::new_v4().to_string());
            None
        }
        Variant::KeysSharedAcrossRoutes => {
            let key = out.key()?;
            let memory = state.memory.lock().expect("memory");
            let (stored_route, status, stored) = memory.answers.get(&key)?;
            (stored_route != &route).then(|| {
                let mut answer = Answer::ok(&Value::Null);
                answer.status = *status;
                answer.body = stored.clone();
                answer.set_header("idempotent-replayed", "true");
                answer
            })
        }
        Variant::ReusedKeyReplaysAnyBody => {
            let key = out.key()?;
            let first = state.memory.lock().expect("memory").first_bodies.get(&format!("{route} {key}")).cloned();
            if let Some(first) = first {
                out.body = first;
            }
            None
        }
        Variant::StoresRejections | Variant::StoresUnavailable => {
            let key = out.key()?;
            let memory = state.memory.lock().expect("memory");
            memory.rejections.get(&format!("{route} {key}")).map(|(status, stored)| {
                let mut answer = Answer::error(*status, "", "");
                answer.body = stored.clone();
                answer
            })
        }
        Variant::KeyOptional => {
            if out.key().is_none() {
                out.set_header("x-idempotency-key", uuid::Uuid::new_v4().to_string());
            }
            None
        }
        Variant::TriesEveryKey => {
            let kid = jwe_header(body.as_ref()?)?["kid"].as_str()?.to_owned();
            if state.ring.get(&kid).is_none() {
                let relabelled = state.target.keys[0].clone().with_kid(kid).ok()?;
                let ring = KeyRing::new(vec![relabelled]).ok()?;
                let jwe = body.as_ref()?["encryptedPayload"].as_str()?.to_owned();
                let plain: Value = ring.decrypt_json(&jwe).ok()?;
                body.as_mut()?["encryptedPayload"] = json!(encrypt(state, &plain));
            }
            None
        }
        Variant::RefusesOtherHeaderMembers => {
            let header = jwe_header(body.as_ref()?)?;
            let extra = header.as_object()?.keys().any(|k| !matches!(k.as_str(), "alg" | "enc" | "kid"));
            extra.then(|| Answer::error(422, "INVALID_ENCRYPTED_PAYLOAD", "the payload could not be decrypted"))
        }
        Variant::OtpLengthUnchecked => {
            let plain = plaintext(state, body.as_ref()?)?;
            let otp = plain["otp"].as_str()?;
            if !(6..=8).contains(&otp.len()) {
                body.as_mut()?["encryptedPayload"] = json!(encrypt(state, &json!({"otp": "123456"})));
            }
            None
        }
        Variant::TokenLast4Unchecked => {
            let last4 = body.as_ref()?["tokenLast4"].as_str().map(str::to_owned);
            if last4.is_some_and(|l| l.len() != 4 || !l.chars().all(|c| c.is_ascii_digit())) {
                body.as_mut()?["tokenLast4"] = json!("0000");
            }
            None
        }
        Variant::ClampsScores => {
            for field in ["walletScore", "deviceScore"] {
                if let Some(score) = body.as_ref()?[field].as_i64() {
                    body.as_mut()?[field] = json!(score.clamp(1, 5));
                }
            }
            None
        }
        Variant::CoercesUnknownEnums => {
            let known: [(&str, &[&str]); 7] = [
                ("/status", &["INACTIVE", "ACTIVE", "SUSPENDED", "DEACTIVATED"]),
                ("/previousStatus", &["INACTIVE", "ACTIVE", "SUSPENDED", "DEACTIVATED"]),
                ("/tsp", &["MDES", "VTS"]),
                ("/tokenRequestor/wallet", &["APPLE_PAY", "GOOGLE_PAY", "SAMSUNG_PAY", "MERCHANT", "OTHER"]),
                ("/provisioningMethod", &["MANUAL", "PUSH"]),
                ("/walletRecommendation", &["APPROVED", "REQUIRE_ADDITIONAL_AUTHENTICATION", "DECLINED"]),
                ("/channel", &["SMS", "EMAIL", "PUSH"]),
            ];
            for (pointer, values) in known {
                if let Some(slot) = body.as_mut()?.pointer_mut(pointer)
                    && slot.as_str().is_some_and(|v| !values.contains(&v))
                {
                    *slot = json!(values[0]);
                }
            }
            None
        }
        Variant::StripsPansFromFreeText => {
            for pointer in ["/reason", "/tokenRequestor/name"] {
                if let Some(slot) = body.as_mut()?.pointer_mut(pointer)
                    && slot.as_str().is_some_and(|v| has_digit_run(&v.replace([' ', '-'], ""), 13))
                {
                    *slot = json!("redacted");
                }
            }
            None
        }
        Variant::PanAsIdAccepted => {
            for field in ["eventId", "tokenId", "cardId", "notificationId", "tokenizationId"] {
                if body.as_ref()?[field].as_str().is_some_and(card_number_like) {
                    body.as_mut()?[field] = json!(format!("id-{}", uuid::Uuid::new_v4().simple()));
                }
            }
            None
        }
        Variant::NaiveTimestampsAsUtc => {
            for field in ["occurredAt", "expiresAt"] {
                let value = body.as_ref()?[field].as_str().map(str::to_owned);
                if let Some(value) = value
                    && time::PrimitiveDateTime::parse(&value, &time::format_description::well_known::Iso8601::DEFAULT)
                        .is_ok()
                    && !value.ends_with('Z')
                    && !value[10..].contains(['+', '-'])
                {
                    body.as_mut()?[field] = json!(format!("{value}Z"));
                }
            }
            None
        }
        Variant::FillsMissingFields => {
            if route == TOKEN_EVENTS_PATH && body.as_ref()?.get("tokenId").is_none() {
                body.as_mut()?["tokenId"] = json!(format!("filled-{}", uuid::Uuid::new_v4().simple()));
            }
            None
        }
        Variant::CoercesTypes => {
            for field in ["eventId", "tokenId", "cardId", "notificationId", "tokenizationId"] {
                if let Some(number) = body.as_ref()?[field].as_i64() {
                    body.as_mut()?[field] = json!(number.to_string());
                }
            }
            None
        }
        Variant::StepsUpAtTheThreshold => {
            let threshold = i64::from(state.target.step_up_below_score);
            for field in ["walletScore", "deviceScore"] {
                if route == VERIFY_CARD_PATH && body.as_ref()?[field].as_i64() == Some(threshold) && threshold > 1 {
                    body.as_mut()?[field] = json!(threshold - 1);
                }
            }
            None
        }
        Variant::IgnoresScores => {
            if route == VERIFY_CARD_PATH {
                body.as_mut()?["walletScore"] = json!(5);
                body.as_mut()?["deviceScore"] = json!(5);
            }
            None
        }
        Variant::NoWalletGuardrail => {
            body.as_mut()?.as_object_mut()?.remove("walletRecommendation");
            None
        }
        Variant::PushTreatedAsManual => {
            if body.as_ref()?["provisioningMethod"] == "PUSH" {
                body.as_mut()?["provisioningMethod"] = json!("MANUAL");
            }
            None
        }
        Variant::ActivationCodeWithoutPayload => {
            let b = body.as_ref()?;
            (route == NOTIFICATIONS_PATH
                && b["type"] == "ACTIVATION_CODE_DELIVERY"
                && b.get("encryptedPayload").is_none())
            .then(|| Answer::ok(&json!({"notificationId": b["notificationId"], "accepted": true})))
        }
        Variant::DropsPayloadOfOtherTypes => {
            if route == NOTIFICATIONS_PATH && body.as_ref()?["type"] != "ACTIVATION_CODE_DELIVERY" {
                body.as_mut()?.as_object_mut()?.remove("encryptedPayload");
            }
            None
        }
        Variant::NoEventConflict => {
            let b = body.as_ref()?;
            if route == TOKEN_EVENTS_PATH {
                let id = b["eventId"].as_str()?.to_owned();
                let content = json!([b["tokenId"], b["status"], b["occurredAt"]]);
                let known = state.memory.lock().expect("memory").events.get(&id).cloned();
                match known {
                    Some(seen) if seen != content => {
                        body.as_mut()?["eventId"] = json!(format!("{id}-again"));
                    }
                    Some(_) => {}
                    None => {
                        state.memory.lock().expect("memory").events.insert(id, content);
                    }
                }
            }
            None
        }
        Variant::RefusesUnknownCards => {
            // After authentication and the key, where a lookup would sit.
            let card = body.as_ref()?["cardId"].as_str()?;
            (signed
                && out.key().is_some()
                && route == TOKEN_EVENTS_PATH
                && !state.target.known_cards.iter().any(|c| c == card))
            .then(|| Answer::error(422, "VALIDATION_FAILED", "cardId: unknown card"))
        }
        Variant::EarlyPayloadTooLarge => declared_length
            .filter(|length| *length > state.target.body_limit)
            .map(|_| Answer::error(413, "PAYLOAD_TOO_LARGE", "the body is larger than the limit")),
        _ => None,
    };
    if answer.is_none()
        && let Some(body) = body
        && Some(&body) != json.as_ref()
    {
        out.body = body.to_string().into_bytes();
    }
    answer
}

/// The mistake on the way out: a changed answer, and what the proxy remembers.
async fn after(state: &State, out: &Outgoing, sent: &[u8], answer: &mut Answer) {
    let route = out.path.as_str();
    let request = serde_json::from_slice::<Value>(sent).ok();
    let mut json = answer.json();
    let key = out.key();
    match state.variant {
        Variant::KeysSharedAcrossRoutes if (200..300).contains(&answer.status) => {
            if let Some(key) = key {
                let mut memory = state.memory.lock().expect("memory");
                memory.answers.entry(key).or_insert_with(|| (route.to_owned(), answer.status, answer.body.clone()));
            }
        }
        Variant::ReusedKeyReplaysAnyBody if answer.status == 200 => {
            if let Some(key) = key {
                let scoped = format!("{route} {key}");
                state.memory.lock().expect("memory").first_bodies.entry(scoped).or_insert_with(|| sent.to_vec());
            }
        }
        Variant::StoresRejections | Variant::StoresUnavailable
            if match state.variant {
                Variant::StoresRejections => (400..500).contains(&answer.status),
                _ => answer.status == 503,
            } =>
        {
            if let Some(key) = key {
                let stored = (answer.status, answer.body.clone());
                state.memory.lock().expect("memory").rejections.entry(format!("{route} {key}")).or_insert(stored);
            }
        }
        Variant::ReplaysUnmarked => answer.remove_header("idempotent-replayed"),
        Variant::ApprovesBlockedCards => {
            if let Some(decision) = json.as_mut().filter(|d| route == VERIFY_CARD_PATH && d["cardStatus"] == "BLOCKED")
            {
                decision["decision"] = json!("APPROVED");
                decision["reason"] = json!("CARD_VERIFIED");
            }
        }
        Variant::NoTokenCap => approve_instead_of(&mut json, route, "TOO_MANY_TOKENS"),
        Variant::IgnoresRequireCvc => approve_instead_of(&mut json, route, "CVC_REQUIRED"),
        Variant::ExpiryNotCompared => approve_instead_of(&mut json, route, "EXPIRY_MISMATCH"),
        Variant::NoContactOnStepUp => {
            if let Some(d) = json.as_mut().filter(|d| d["decision"] == "REQUIRE_ADDITIONAL_AUTHENTICATION") {
                d.as_object_mut().map(|o| o.remove("cardholder"));
            }
        }
        Variant::UnmaskedStepUpMethods => {
            if let Some(d) = json.as_mut().filter(|d| d["stepUpMethods"].is_array()) {
                let contact = d["cardholder"].clone();
                for method in d["stepUpMethods"].as_array_mut().into_iter().flatten() {
                    match method["type"].as_str() {
                        Some("OTP_SMS" | "OUTBOUND_CALL") => method["value"] = contact["phone"].clone(),
                        Some("OTP_EMAIL") => method["value"] = contact["email"].clone(),
                        _ => {}
                    }
                }
            }
        }
        Variant::CardIdForUnknownCards => {
            if let Some(d) = json.as_mut().filter(|d| route == VERIFY_CARD_PATH && d["reason"] == "CARD_NOT_FOUND") {
                d["cardId"] = json!("card-unknown");
            }
        }
        Variant::EchoesCardData => {
            let plain = request.as_ref().and_then(|r| plaintext(state, r));
            if let (Some(d), Some(plain)) = (json.as_mut().filter(|_| route == VERIFY_CARD_PATH), plain) {
                d["expiry"] = plain["expiry"].clone();
            }
        }
        Variant::LocksOneEarly => {
            let pan =
                request.as_ref().and_then(|r| plaintext(state, r)).and_then(|p| p["pan"].as_str().map(str::to_owned));
            if let (Some(d), Some(pan)) =
                (json.as_mut().filter(|_| route == VERIFY_CVC_PATH || route == VERIFY_CARD_PATH), pan)
            {
                let mut memory = state.memory.lock().expect("memory");
                let count = memory.wrong_cvcs.entry(pan).or_default();
                match d["cvcResult"].as_str() {
                    Some("MATCH") => *count = 0,
                    Some("NO_MATCH") => {
                        *count += 1;
                        // The limit-th wrong CVC already answers the lock (`>=` for `>`).
                        if *count >= state.target.cvc_max_attempts {
                            d["cvcResult"] = json!("ATTEMPTS_EXCEEDED");
                            if route == VERIFY_CARD_PATH {
                                d["reason"] = json!("CVC_ATTEMPTS_EXCEEDED");
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Variant::NeverLocks => {
            if let Some(d) = json.as_mut().filter(|d| d["cvcResult"] == "ATTEMPTS_EXCEEDED") {
                d["cvcResult"] = json!("NO_MATCH");
                if d["reason"] == "CVC_ATTEMPTS_EXCEEDED" {
                    d["reason"] = json!("CVC_NO_MATCH");
                }
            }
        }
        Variant::LockoutSkippedWithoutCvc => {
            let without_cvc =
                request.as_ref().and_then(|r| plaintext(state, r)).is_some_and(|p| p.get("cvc").is_none());
            if let Some(d) = json
                .as_mut()
                .filter(|d| route == VERIFY_CARD_PATH && without_cvc && d["reason"] == "CVC_ATTEMPTS_EXCEEDED")
            {
                d["decision"] = json!("APPROVED");
                d["reason"] = json!("CARD_VERIFIED");
                d["cvcResult"] = json!("NOT_PROVIDED");
            }
        }
        Variant::ExpiredCardActiveInCvcCheck => {
            if let Some(d) = json.as_mut().filter(|d| route == VERIFY_CVC_PATH && d["cardStatus"] == "EXPIRED") {
                d["cardStatus"] = json!("ACTIVE");
            }
        }
        Variant::StandInForCvcCheck if route == VERIFY_CVC_PATH && answer.status == 503 => {
            answer.status = 200;
            answer.remove_header("retry-after");
            json = Some(json!({"cvcResult": "NO_MATCH", "cardStatus": "NOT_FOUND"}));
        }
        Variant::NoRetryAfterOn503 if answer.status == 503 => answer.remove_header("retry-after"),
        Variant::StandInNamesTheCard => {
            if let Some(d) = json.as_mut().filter(|d| route == VERIFY_CARD_PATH && d["standIn"] == true) {
                d["cardId"] = json!("card-failing");
                d["cardholder"] = json!({"phone": "+48500100200"});
            }
        }
        Variant::StandInApproves => {
            if let Some(d) = json.as_mut().filter(|d| route == VERIFY_CARD_PATH && d["standIn"] == true) {
                d["decision"] = json!("APPROVED");
            }
        }
        Variant::MalformedTokenAcks if route == TOKEN_EVENTS_PATH && answer.status == 200 => {
            answer.body.truncate(answer.body.len() / 2);
            return;
        }
        Variant::NoCorrelationEcho => answer.remove_header("x-correlation-id"),
        Variant::ErrorsWithoutCorrelationId => {
            if let Some(error) = json.as_mut().and_then(|b| b["error"].as_object_mut()) {
                error.remove("correlationId");
            }
        }
        Variant::HtmlNotFound if answer.status == 404 => {
            answer.set_header("content-type", "text/html");
            answer.body = b"<html><body><h1>Not Found</h1></body></html>".to_vec();
            return;
        }
        Variant::BadRequestForValidation
            if answer.status == 422 && json.as_ref().is_some_and(|b| b["error"]["code"] == "VALIDATION_FAILED") =>
        {
            answer.status = 400;
        }
        Variant::PublishesPrivateMembers if route == tmp_protocol::issuer_api::PUBLIC_KEY_PATH => {
            if let Some(keys) = json.as_mut().and_then(|b| b["keys"].as_array_mut()) {
                for key in keys {
                    key["d"] = json!("cHJpdmF0ZQ");
                }
            }
        }
        Variant::AnswersLate(delay) if route == VERIFY_CARD_PATH => tokio::time::sleep(delay).await,
        Variant::CharsetInContentType
            if answer.header("content-type").is_some_and(|c| c.starts_with("application/json")) =>
        {
            answer.set_header("content-type", "application/json; charset=utf-8");
        }
        Variant::ExtraResponseHeaders => {
            answer.set_header("server", "issuer-api/1.0");
            answer.set_header("x-request-id", &uuid::Uuid::new_v4().to_string());
            answer.set_header("strict-transport-security", "max-age=31536000");
            answer.set_header("x-content-type-options", "nosniff");
        }
        Variant::ReformattedJson => {
            if let Some(value) = &json {
                answer.body = serde_json::to_vec_pretty(value).expect("json");
            }
            return;
        }
        _ => {}
    }
    if let Some(value) = json.filter(|v| Some(v) != answer.json().as_ref()) {
        answer.set_json(&value);
    }
}

/// A decline for `reason` answered as an approval.
fn approve_instead_of(json: &mut Option<Value>, route: &str, reason: &str) {
    if let Some(d) = json.as_mut().filter(|d| route == VERIFY_CARD_PATH && d["reason"] == reason) {
        d["decision"] = json!("APPROVED");
        d["reason"] = json!("CARD_VERIFIED");
    }
}
