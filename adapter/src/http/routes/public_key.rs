//! `GET /issuer-api/v1/public-key`: the adapter's JWE public keys. Every configured key is
//! published, so TMP can move to a new `kid` while the old one still decrypts.

use actix_web::HttpResponse;
use actix_web::web::Data;
use tmp_protocol::jwk::JwkSet;

use crate::http::AppState;

#[utoipa::path(
    get,
    path = "/issuer-api/v1/public-key",
    tag = "Issuer API",
    responses((status = 200, description = "The adapter's JWK set", body = JwkSet))
)]
pub async fn public_key(state: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().insert_header(("Cache-Control", "max-age=300")).json(state.credentials().jwe.jwk_set())
}
