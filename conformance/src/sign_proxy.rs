//! `tmp-conformance sign-proxy`: a local HTTP proxy in front of an Issuer API that makes every
//! well-formed request one the target can authenticate, so that a schema-driven fuzzer
//! (schemathesis, or any generated client) reaches the target's validation instead of stopping at
//! its signature check.
//!
//! What it changes, and only where the request already has the form the OpenAPI document asks
//! for (a malformed part passes through unchanged, for the target to refuse):
//! - every `encryptedPayload` of compact-JWE form becomes a JWE of a profile card (a test
//!   activation code for a notification, the expiry alone for a renewal), encrypted to the
//!   target's published key;
//! - well-formed `webhook-*` headers become a valid signature of the body as sent (the
//!   processor's secret for `/processor/v1/…`, TMP's otherwise), with a fresh id and timestamp;
//!   missing or malformed ones are passed on as they came;
//! - an `X-Idempotency-Key`, a processor event `id`, a token `eventId` or a `notificationId` that
//!   the fuzzer reuses for *another* body gets a fresh value: TMP never does that (the rules about
//!   reuse are the suite's cases to check, not a fuzzer's), while a fuzzer's smallest values
//!   repeat. The same body with the same key is sent the same way again (a retry).
//!
//! Method, path, query, the other headers and the target's answer pass through unchanged, so a
//! fuzzer judges the target's own answers. docs/conformance.md says how to run schemathesis
//! through it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Mutex;

use actix_web::dev::Server;
use actix_web::http::Method;
use actix_web::web::{self, Bytes, Data};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use serde_json::Value;
use tmp_edge::client::Request;

use crate::client::{Client, Signer, Signing, signature_headers};
use crate::payload::{KeyChoice, PayloadSpec, Plain};

/// The profile card every card payload carries.
const CARD: &str = "active";
/// The activation code every notification payload carries (a test value, never a cardholder's).
const TEST_OTP: &str = "123456";
/// Largest body passed on: well above any limit a target should accept, so that the target
/// judges oversized bodies itself.
const MAX_BODY: usize = 4 * 1024 * 1024;

struct Proxy {
    client: Client,
    target: String,
    memory: Mutex<Memory>,
}

/// What the proxy remembers so that it rewrites the same request the same way every time.
#[derive(Default)]
struct Memory {
    /// Request (path and body as received) → the body as sent.
    bodies: HashMap<u64, Bytes>,
    /// (field, value) of a key or id → the first request that used it.
    owners: HashMap<(&'static str, String), u64>,
    /// (key, request) → the key sent instead, for a key first used by another request.
    renamed_keys: HashMap<(String, u64), String>,
}

/// Beyond this many remembered requests the memory starts afresh (a long fuzzing run).
const MEMORY_LIMIT: usize = 100_000;

/// Serves on `listen` until Ctrl-C, in front of `target`.
pub async fn run(client: Client, target: &str, listen: SocketAddr) -> anyhow::Result<()> {
    let (bound, server) = start(client, target, listen).await?;
    println!("sign proxy on http://{bound} → {target} (signing, and encrypting card data to the target's key)");
    server.await.context("the sign proxy stopped")
}

/// Binds `listen` (port 0: any) and returns the address and the server, not yet awaited.
pub async fn start(client: Client, target: &str, listen: SocketAddr) -> anyhow::Result<(SocketAddr, Server)> {
    // Fetched once up front: a target that publishes no key fails here, not on every request.
    client.keys(false).await.context("the sign proxy needs the target's public key")?;
    let proxy = Data::new(Proxy {
        client,
        target: target.trim_end_matches('/').to_owned(),
        memory: Mutex::new(Memory::default()),
    });
    let server = HttpServer::new(move || {
        App::new().app_data(proxy.clone()).app_data(web::PayloadConfig::new(MAX_BODY)).default_service(web::to(forward))
    })
    .workers(2)
    .disable_signals()
    .bind(listen)
    .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = server.addrs().first().copied().unwrap_or(listen);
    Ok((bound, server.run()))
}

async fn forward(proxy: Data<Proxy>, req: HttpRequest, body: Bytes) -> HttpResponse {
    match forward_inner(&proxy, &req, body).await {
        Ok(response) => response,
        // The proxy's own failure, told apart from the target's answers by its status and body.
        Err(error) => HttpResponse::BadGateway()
            .insert_header(("x-sign-proxy-error", "true"))
            .body(format!("sign proxy: {error:#}")),
    }
}

async fn forward_inner(proxy: &Proxy, req: &HttpRequest, body: Bytes) -> anyhow::Result<HttpResponse> {
    let path = req.path();
    let request_id = {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (path, body.as_ref()).hash(&mut hasher);
        hasher.finish()
    };
    let body = if req.method() == Method::POST { proxy.body_to_send(path, request_id, body).await? } else { body };
    let url = match req.query_string() {
        "" => format!("{}{path}", proxy.target),
        query => format!("{}{path}?{query}", proxy.target),
    };
    let mut request = Request::new(req.method().clone(), url);
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let well_signed_form =
        well_formed_signature_headers(header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
    for (name, value) in req.headers() {
        let name = name.as_str();
        if is_hop_by_hop(name) || (well_signed_form && name.starts_with("webhook-")) {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        let value = if name.eq_ignore_ascii_case(tmp_protocol::headers::IDEMPOTENCY_KEY) {
            proxy.idempotency_key(value, request_id)
        } else {
            value.to_owned()
        };
        request = request.header(name, &value);
    }
    if well_signed_form {
        let signer = if path.starts_with("/processor/") { Signer::Processor } else { Signer::Tmp };
        let secret =
            proxy.client.secret(signer).context("no secret to sign with: set the variables the profile names")?;
        if let Some((_, pairs)) = signature_headers(&Signing::Valid, &secret, &body)? {
            for (name, value) in pairs {
                request = request.header(name, &value);
            }
        }
    }
    request.body = body;
    let answer =
        proxy.client.http.send(request).await.map_err(|e| anyhow::anyhow!("the target did not answer: {e}"))?;
    let mut response = HttpResponse::build(answer.status);
    for (name, value) in &answer.headers {
        if !is_hop_by_hop(name.as_str()) {
            response.append_header((name.clone(), value.clone()));
        }
    }
    Ok(response.body(answer.body))
}

impl Proxy {
    /// The body to send for a POST: the one sent before for the same request, or a new one with
    /// its payloads encrypted and its reused ids renewed.
    async fn body_to_send(&self, path: &str, request_id: u64, body: Bytes) -> anyhow::Result<Bytes> {
        if let Some(sent) = self.memory.lock().expect("memory").bodies.get(&request_id) {
            return Ok(sent.clone());
        }
        let Ok(mut json) = serde_json::from_slice::<Value>(&body) else {
            return Ok(body);
        };
        {
            let mut memory = self.memory.lock().expect("memory");
            for (field, value) in unique_ids(&mut json, path) {
                let owner = *memory.owners.entry((field, value.clone())).or_insert(request_id);
                if owner != request_id {
                    *value = format!("sp-{}", uuid::Uuid::new_v4().simple());
                }
            }
        }
        if has_payload(&json) {
            let keys = self.client.keys(false).await?;
            replace_payloads(&mut json, path, &mut |spec| {
                // A processor event's card: the profile's card under that id, or one made up for it.
                let profile = match &spec.plain {
                    Plain::Card { card, .. } => self.client.profile_with_card(card)?,
                    _ => self.client.profile.clone(),
                };
                spec.encrypt(&profile, &keys)
            })?;
        }
        let sent = Bytes::from(serde_json::to_vec(&json)?);
        let mut memory = self.memory.lock().expect("memory");
        if memory.bodies.len() > MEMORY_LIMIT {
            *memory = Memory::default();
        }
        memory.bodies.insert(request_id, sent.clone());
        Ok(sent)
    }

    /// The idempotency key to send: the fuzzer's, unless another request used it first.
    fn idempotency_key(&self, key: &str, request_id: u64) -> String {
        if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return key.to_owned();
        }
        let mut memory = self.memory.lock().expect("memory");
        let owner = *memory.owners.entry(("X-Idempotency-Key", key.to_owned())).or_insert(request_id);
        if owner == request_id {
            return key.to_owned();
        }
        memory
            .renamed_keys
            .entry((key.to_owned(), request_id))
            .or_insert_with(|| uuid::Uuid::new_v4().to_string())
            .clone()
    }
}

/// The ids the contract requires to be unique per request, as (field, value) slots: a processor
/// event's `id`, a token event's `eventId`, a notification's `notificationId`.
fn unique_ids<'a>(json: &'a mut Value, path: &str) -> Vec<(&'static str, &'a mut String)> {
    let field = if path.starts_with("/processor/") {
        "id"
    } else if path.ends_with("/tokens/events") {
        "eventId"
    } else if path.ends_with("/notifications") {
        "notificationId"
    } else {
        return Vec::new();
    };
    let objects: Vec<&'a mut Value> = match json {
        Value::Array(items) => items.iter_mut().collect(),
        object => vec![object],
    };
    objects
        .into_iter()
        .filter_map(|object| match object.get_mut(field) {
            Some(Value::String(value)) => Some((field, value)),
            _ => None,
        })
        .collect()
}

/// `webhook-id`, `webhook-timestamp` and `webhook-signature` all present and of the form the
/// OpenAPI document gives them (what their values are is the proxy's to set).
fn well_formed_signature_headers(id: Option<&str>, timestamp: Option<&str>, signature: Option<&str>) -> bool {
    let (Some(id), Some(timestamp), Some(signature)) = (id, timestamp, signature) else {
        return false;
    };
    let id_ok =
        !id.is_empty() && id.len() <= tmp_protocol::webhook::MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic());
    let timestamp_ok = timestamp.parse::<u64>().is_ok();
    let signature_ok = signature.split(' ').any(|entry| {
        entry.len() == 47
            && entry.starts_with("v1,")
            && entry.ends_with('=')
            && entry[3..46].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    });
    id_ok && timestamp_ok && signature_ok
}

/// Whether `value` has the compact-JWE form the OpenAPI document gives `encryptedPayload`.
fn compact_jwe_form(value: &str) -> bool {
    let parts: Vec<&str> = value.split('.').collect();
    (tmp_protocol::jwe::MIN_COMPACT_LEN..=tmp_protocol::jwe::MAX_COMPACT_LEN).contains(&value.len())
        && parts.len() == 5
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// Hop-by-hop headers and those the client sets itself.
fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "trailer" | "upgrade" | "host" | "content-length"
    )
}

fn has_payload(json: &Value) -> bool {
    match json {
        Value::Object(map) => map.iter().any(|(k, v)| k == "encryptedPayload" || has_payload(v)),
        Value::Array(items) => items.iter().any(has_payload),
        _ => false,
    }
}

/// Replaces every `encryptedPayload` of compact-JWE form in `json` with `encrypt` of what that
/// route's payload holds: the profile's active card (with its CVC) for card verification and the
/// CVC check, a test activation code for a notification, and for a processor event the card it
/// is about (the new card of a replacement; the expiry alone for a renewal) — by its card id, so
/// that a card the fuzzer issues under a new id gets a PAN of its own.
fn replace_payloads(
    json: &mut Value,
    path: &str,
    encrypt: &mut dyn FnMut(&PayloadSpec) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    fn walk(
        value: &mut Value,
        path: &str,
        event: Option<&(String, String)>,
        encrypt: &mut dyn FnMut(&PayloadSpec) -> anyhow::Result<String>,
    ) -> anyhow::Result<()> {
        match value {
            Value::Object(map) => {
                // A processor event names its type and card beside its data.
                let own = match (map.get("type").and_then(Value::as_str), map.get("cardId").and_then(Value::as_str)) {
                    (Some(kind), Some(card)) => {
                        let new_card = map.get("data").and_then(|d| d.get("newCardId")).and_then(Value::as_str);
                        let card = if kind == "card.replaced" { new_card.unwrap_or(card) } else { card };
                        Some((kind.to_owned(), card.to_owned()))
                    }
                    _ => None,
                };
                let event = own.as_ref().or(event);
                for (key, inner) in map.iter_mut() {
                    if key == "encryptedPayload" && inner.as_str().is_some_and(compact_jwe_form) {
                        *inner = Value::String(encrypt(&spec_for(path, event))?);
                    } else {
                        walk(inner, path, event, encrypt)?;
                    }
                }
                Ok(())
            }
            Value::Array(items) => items.iter_mut().try_for_each(|item| walk(item, path, event, encrypt)),
            _ => Ok(()),
        }
    }
    walk(json, path, None, encrypt)
}

/// What the `encryptedPayload` of `path` carries; `event` is a processor event's type and card.
fn spec_for(path: &str, event: Option<&(String, String)>) -> PayloadSpec {
    if path.ends_with("/notifications") {
        PayloadSpec::otp(TEST_OTP)
    } else if path.starts_with("/processor/") {
        match event {
            Some((kind, _)) if kind == "card.renewed" => {
                PayloadSpec { plain: Plain::Expiry("12/30".into()), key: KeyChoice::Published }
            }
            Some((_, card)) => PayloadSpec::card_data(card),
            None => PayloadSpec::card_data(CARD),
        }
    } else {
        // Card verification and the CVC check: the card with its right CVC.
        PayloadSpec::card(CARD)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn replaced(path: &str, mut body: Value) -> (Value, Vec<PayloadSpec>) {
        let mut seen = Vec::new();
        replace_payloads(&mut body, path, &mut |spec| {
            seen.push(spec.clone());
            Ok(format!("jwe{}", seen.len()))
        })
        .unwrap();
        (body, seen)
    }

    #[test]
    fn every_encrypted_payload_is_replaced_by_what_its_route_carries() {
        let jwe = "a.b.c.d.e";
        let (body, seen) = replaced("/issuer-api/v1/notifications", json!({"encryptedPayload": jwe, "type": "A"}));
        assert_eq!(body["encryptedPayload"], "jwe1");
        assert_eq!(seen, vec![PayloadSpec::otp(TEST_OTP)]);

        let events = json!([
            {"type": "card.issued", "cardId": "c-1", "data": {"encryptedPayload": jwe}},
            {"type": "card.renewed", "cardId": "c-1", "data": {"encryptedPayload": jwe}},
            {"type": "card.closed", "cardId": "c-1", "data": {"reason": "z"}},
            {"type": "card.replaced", "cardId": "c-1", "data": {"newCardId": "c-2", "encryptedPayload": jwe}},
        ]);
        let (body, seen) = replaced("/processor/v1/events", events);
        assert_eq!(body[0]["data"]["encryptedPayload"], "jwe1");
        assert_eq!(body[1]["data"]["encryptedPayload"], "jwe2");
        assert_eq!(body[2]["data"]["reason"], "z", "other members pass through");
        assert_eq!(seen[0], PayloadSpec::card_data("c-1"), "the event's own card");
        assert_eq!(seen[1].plain, Plain::Expiry("12/30".into()));
        assert_eq!(seen[2], PayloadSpec::card_data("c-2"), "a replacement carries the new card");

        let (_, seen) = replaced("/issuer-api/v1/cards/verify", json!({"encryptedPayload": jwe}));
        assert_eq!(seen, vec![PayloadSpec::card(CARD)]);
        // Not of the compact form (or not a string): the target's to refuse, left as it is.
        for malformed in [json!(7), json!("a.b.c.d"), json!("a.b.c.d.e!"), json!("a..c.d.e")] {
            let (body, seen) = replaced("/issuer-api/v1/cards/verify", json!({"encryptedPayload": malformed.clone()}));
            assert_eq!(body["encryptedPayload"], malformed);
            assert!(seen.is_empty());
        }
    }

    #[test]
    fn only_well_formed_signature_headers_are_replaced() {
        let signature = format!("v1,{}=", "A".repeat(43));
        assert!(well_formed_signature_headers(Some("msg_1"), Some("1700000000"), Some(&signature)));
        assert!(well_formed_signature_headers(Some("0"), Some("0"), Some(&format!("v2,x {signature}"))));
        assert!(!well_formed_signature_headers(None, Some("1700000000"), Some(&signature)), "missing");
        assert!(!well_formed_signature_headers(Some("a b"), Some("1"), Some(&signature)), "id with a space");
        assert!(!well_formed_signature_headers(Some("a"), Some("F~u"), Some(&signature)), "timestamp");
        assert!(!well_formed_signature_headers(Some("a"), Some("1"), Some("0?qG")), "signature");
    }

    #[test]
    fn ids_are_found_where_the_contract_makes_them_unique() {
        let mut events = json!([{"id": "0", "type": "card.closed"}, {"id": "1"}]);
        let ids: Vec<String> =
            unique_ids(&mut events, "/processor/v1/events").into_iter().map(|(_, v)| v.clone()).collect();
        assert_eq!(ids, ["0", "1"]);
        let mut token = json!({"eventId": "e", "tokenRequestor": {"id": "r"}});
        assert_eq!(unique_ids(&mut token, "/issuer-api/v1/tokens/events").len(), 1);
        let mut verify = json!({"tokenizationId": "t"});
        assert!(unique_ids(&mut verify, "/issuer-api/v1/cards/verify").is_empty());
    }
}
