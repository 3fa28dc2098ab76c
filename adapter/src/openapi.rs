//! The OpenAPI 3 documents, generated from the handlers and the protocol types: the Issuer API
//! (with the processor ingest; served at the Issuer API's `/openapi.json`) and the ops API
//! (served at the ops listener's `/openapi.json`). The checked-in copies in `docs/openapi/` are
//! compared with these by a test; regenerate them with
//! `UPDATE_OPENAPI=1 cargo test -p tmp-adapter openapi` (or `tmp-adapter openapi [--ops]`).

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::ops;
use crate::http::routes::{cards, notifications, processor, public_key, tokens};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "TMP Issuer Kit — Issuer API",
        version = "1",
        description = "Served by the issuer (tmp-adapter), called by Verestro TMP. Contract v1: see docs/contract.md. \
PAN, CVC, expiry and OTP travel only as compact JWE (RSA-OAEP-256 + A256GCM) in `encryptedPayload`."
    ),
    paths(
        cards::verify_card,
        cards::verify_cvc,
        tokens::token_event,
        notifications::notification,
        public_key::public_key,
        processor::events,
    ),
    components(schemas(
        tmp_protocol::error::ErrorBody,
        tmp_protocol::error::ErrorDetail,
        tmp_protocol::error::ErrorCode,
        tmp_protocol::issuer_api::VerifyCardRequest,
        tmp_protocol::issuer_api::VerifyCardResponse,
        tmp_protocol::issuer_api::VerifyCvcRequest,
        tmp_protocol::issuer_api::VerifyCvcResponse,
        tmp_protocol::issuer_api::TokenEventRequest,
        tmp_protocol::issuer_api::TokenEventAck,
        tmp_protocol::issuer_api::NotificationRequest,
        tmp_protocol::issuer_api::NotificationAck,
        tmp_protocol::issuer_api::DecisionReason,
        tmp_protocol::jwk::JwkSet,
        tmp_protocol::jwk::PublicJwk,
        processor::ProcessorEventsRequest,
        tmp_protocol::processor::ProcessorEvent,
        tmp_protocol::processor::ProcessorEventsAck,
    )),
    modifiers(&ConditionalRules),
    tags(
        (name = "Issuer API", description = "TMP → issuer"),
        (name = "Processor", description = "The issuer's card processor → tmp-adapter: card events forwarded to TMP / DataCore")
    )
)]
pub struct IssuerApiDoc;

/// The Issuer API document as pretty JSON with a trailing newline (the checked-in form).
pub fn issuer_api_json() -> String {
    let mut json = IssuerApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".to_owned());
    json.push('\n');
    json
}

/// What a processor event's `data` must hold beyond its type (`domain::processor_events::validate`):
/// texts that are given are not empty, a `cardholder.updated` carries a phone, an e-mail or
/// both, and a `card.metadata_updated` at least one of its members.
fn processor_event_rule(event_type: &str) -> Option<serde_json::Value> {
    use serde_json::json;
    let not_empty = json!({"minLength": 1});
    let given = |field: &str| json!({"required": [field], "properties": {field: {"type": "string"}}});
    let data = match event_type {
        "card.issued" => json!({
            "properties": {
                "productCategory": not_empty,
                "cardholder": {"properties": {"phone": not_empty, "email": not_empty}}
            }
        }),
        "card.status_changed" | "card.closed" => json!({"properties": {"reason": not_empty}}),
        "cardholder.updated" => json!({
            "anyOf": [given("phone"), given("email")],
            "properties": {"phone": not_empty, "email": not_empty}
        }),
        "card.metadata_updated" => json!({
            "anyOf": [given("productId"), given("productName"), given("productCategory"), given("cardArtId")],
            "properties": {"productName": not_empty, "productCategory": not_empty}
        }),
        _ => return None,
    };
    Some(json!({"properties": {"data": data}}))
}

/// The rules that depend on another member's value, which the derived schemas cannot say, stated
/// with JSON Schema's `if`/`then`/`else` and `anyOf` (OpenAPI 3.1) so that a generated client or
/// a fuzzer knows them: an `ACTIVATION_CODE_DELIVERY` notification carries `encryptedPayload` and
/// `expiresAt`, any other type no `encryptedPayload`; a `stepUpMethod` goes with a code (a code
/// method) or with `STEP_UP_REQUESTED` (required there, with `tokenId`; a method without a code)
/// and nowhere else (`domain::notifications::validate`); a
/// `cardholder.updated` event carries a phone, an e-mail or both, a `card.metadata_updated` one
/// of its members (`domain::processor_events::validate`).
struct ConditionalRules;

impl Modify for ConditionalRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, Schema};
        let Some(schemas) = openapi.components.as_mut().map(|c| &mut c.schemas) else {
            return;
        };
        if let Some(RefOr::T(Schema::OneOf(bodies))) = schemas.get_mut("ProcessorEventBody") {
            let event_type = |schema: &utoipa::openapi::schema::Object| match schema.properties.get("type") {
                Some(RefOr::T(Schema::Object(t))) => {
                    t.enum_values.as_ref().and_then(|v| v.first()).and_then(|v| v.as_str()).map(str::to_owned)
                }
                _ => None,
            };
            for body in &mut bodies.items {
                if let RefOr::T(Schema::Object(body)) = body
                    && let Some(rule) = event_type(body).as_deref().and_then(processor_event_rule)
                {
                    body.extensions
                        .get_or_insert_with(Default::default)
                        .insert("allOf".into(), serde_json::json!([rule]));
                }
            }
        }
        let Some(RefOr::T(Schema::Object(schema))) = schemas.get_mut("NotificationRequest") else {
            return;
        };
        // One member (the extensions are a hash map: several would print in any order).
        let rule = serde_json::json!([
            {
                "if": {"properties": {"type": {"const": "ACTIVATION_CODE_DELIVERY"}}, "required": ["type"]},
                "then": {
                    "required": ["encryptedPayload", "expiresAt"],
                    "properties": {
                        "encryptedPayload": {"not": {"const": null}},
                        "expiresAt": {"not": {"const": null}},
                        "stepUpMethod": {"enum": ["OTP_SMS", "OTP_EMAIL", null]}
                    }
                },
                "else": {"properties": {"encryptedPayload": {"const": null}}}
            },
            {
                "if": {"properties": {"type": {"const": "STEP_UP_REQUESTED"}}, "required": ["type"]},
                "then": {
                    "required": ["stepUpMethod", "tokenId"],
                    "properties": {"stepUpMethod": {"enum": ["APP_TO_APP", "CUSTOMER_SERVICE", "OUTBOUND_CALL"]}}
                },
                "else": {
                    "if": {"properties": {"type": {"const": "ACTIVATION_CODE_DELIVERY"}}, "required": ["type"]},
                    "else": {"properties": {"stepUpMethod": {"const": null}}}
                }
            }
        ]);
        schema.extensions.get_or_insert_with(Default::default).insert("allOf".into(), rule);
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "TMP Issuer Kit — ops API",
        version = "1",
        description = "Served by tmp-adapter on its own listener (`ops.host`/`ops.port`), never on the Issuer API's port: \
the issuer's app backend and back office reach TMP through the adapter (a card's tokens, push provisioning, token actions), \
read the decision audit, administer the outbox and reload keys, secrets and certificates. Authenticated by API keys (`Authorization: Bearer tmpk_…`, \
`tmp-adapter apikey create`) with scopes `tokens:read`, `tokens:write`, `provisioning`, `audit:read`, `outbox:admin`, `config:admin`; \
by operator tokens (`ops.api_tokens`, every scope); or by client certificates (`ops.mtls.subjects`). Rate limited per caller \
(429 with `Retry-After`); every write is audited. See docs/ops-api.md."
    ),
    paths(
        ops::tokens::list,
        ops::tokens::history,
        ops::tokens::action,
        ops::tokens::card_action,
        ops::tokens::reconcile,
        ops::tokens::resend_code,
        ops::provisioning::apple_pay,
        ops::provisioning::google_pay,
        ops::provisioning::samsung_pay,
        ops::provisioning::web_push,
        ops::audit::decisions,
        ops::audit::list,
        ops::outbox::list,
        ops::outbox::show,
        ops::outbox::retry,
        ops::outbox::skip,
        ops::outbox::replay,
        ops::config::reload,
    ),
    components(schemas(
        tmp_protocol::error::ErrorBody,
        tmp_protocol::error::ErrorDetail,
        tmp_protocol::error::ErrorCode,
        tmp_protocol::enums::TokenStatus,
        tmp_protocol::enums::Wallet,
        tmp_protocol::tmp_api::ActionInitiator,
        tmp_protocol::enums::ReasonCode,
        ops::tokens::OpsToken,
        ops::tokens::TokenSource,
        ops::tokens::CardTokens,
        ops::tokens::TokenHistory,
        ops::tokens::TokenHistoryEvent,
        ops::tokens::TokenizationDecision,
        ops::tokens::TokenActionBody,
        ops::tokens::CardTokensActionBody,
        ops::tokens::CardTokensActionResult,
        ops::tokens::CardTokenResult,
        ops::tokens::TokenActionOutcome,
        ops::tokens::TokenActionProblem,
        ops::tokens::ResendCodeBody,
        tmp_protocol::tmp_api::ActivationCodeState,
        crate::ops::tokens::Reconciliation,
        crate::ops::tokens::Drift,
        crate::ops::tokens::DriftKind,
        crate::ops::tokens::LeftBecause,
        ops::tokens::ReconcileBody,
        ops::provisioning::ApplePayPushRequest,
        ops::provisioning::ApplePayPushResponse,
        ops::provisioning::GooglePayPushRequest,
        ops::provisioning::GooglePayPushResponse,
        ops::provisioning::SamsungPayPushRequest,
        ops::provisioning::SamsungPayPushResponse,
        ops::provisioning::WebPushRequest,
        ops::provisioning::WebPushResponse,
        ops::audit::Decision,
        ops::audit::CardDecisions,
        ops::audit::AuditEntry,
        ops::audit::AuditList,
        crate::outbox::OutboxStatus,
        crate::outbox::Destination,
        ops::outbox::OutboxRow,
        ops::outbox::OutboxRowDetail,
        ops::outbox::OutboxList,
        ops::outbox::ActionRequest,
        ops::outbox::ReplayRequest,
        ops::outbox::ReplayAck,
        ops::config::ReloadAck,
    )),
    modifiers(&OpsAuth),
    tags(
        (name = "Tokens", description = "A card's tokens at TMP (or the local mirror, stale) and token actions"),
        (name = "Push provisioning", description = "Apple Pay and Google Pay push provisioning through TMP's sign card"),
        (name = "Audit", description = "The decision audit of a card and the audit of operator writes"),
        (name = "Outbox", description = "Outbox administration (held and dead rows, retry, skip, replay)"),
        (name = "Configuration", description = "Reloading keys, secrets and certificates without a restart")
    )
)]
pub struct OpsApiDoc;

struct OpsAuth;

impl Modify for OpsAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some("An API key `tmpk_…` (scopes of the key) or an operator token (every scope)".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        components.add_security_scheme(
            "mtls",
            SecurityScheme::MutualTls {
                description: Some("A client certificate whose subject CN is listed in ops.mtls.subjects".into()),
                deprecated: None,
                extensions: None,
            },
        );
    }
}

/// The ops API document, in the checked-in form.
pub fn ops_api_json() -> String {
    let mut json = OpsApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".to_owned());
    json.push('\n');
    json
}

/// Every generated document with its file under `docs/openapi/`.
pub fn documents() -> [(&'static str, String); 2] {
    [("issuer-api.json", issuer_api_json()), ("ops-api.json", ops_api_json())]
}
