//! The OpenAPI 3 document, generated from the handlers and the protocol types. The checked-in
//! copy in `docs/openapi/issuer-api.json` is compared with this by a test; regenerate it with
//! `tmp-adapter openapi > docs/openapi/issuer-api.json`.

use utoipa::OpenApi;

use crate::http::routes::{cards, notifications, public_key, tokens};

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
    )),
    tags((name = "Issuer API", description = "TMP → issuer"))
)]
pub struct IssuerApiDoc;

/// The Issuer API document as pretty JSON with a trailing newline (the checked-in form).
pub fn issuer_api_json() -> String {
    let mut json = IssuerApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".to_owned());
    json.push('\n');
    json
}
