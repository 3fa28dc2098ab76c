//! Inbound `X-Idempotency-Key`: the same key with the same body gets the stored response and
//! causes no second effect; the same key with another body gets 422. Keys are scoped per route.
//! The stored response is written in the same transaction as the effect (see `store`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tmp_protocol::headers::IDEMPOTENT_REPLAYED;

use crate::store::{DynStore, IdempotencyRecord, IdempotentWrite};
use tmp_edge::error::ApiError;

/// A request that has not been answered before under its key.
pub struct Pending {
    scope: String,
    key: String,
    request_hash: Vec<u8>,
}

pub enum Begin {
    /// Answered before with the same body: this is the stored answer.
    Replay(HttpResponse),
    Fresh(Pending),
}

/// Looks the request's key up: a replay is answered from the store, a reuse with another body
/// is refused, anything else proceeds.
pub async fn begin(store: &DynStore, scope: &str, req: &HttpRequest, body: &[u8]) -> Result<Begin, ApiError> {
    let key = tmp_edge::admit::required_idempotency_key(req)?;
    lookup(store, scope, key, body).await
}

/// As [`begin`] where the key is optional (the ops API): `None` without one.
pub async fn begin_optional(
    store: &DynStore,
    scope: &str,
    req: &HttpRequest,
    body: &[u8],
) -> Result<Option<Begin>, ApiError> {
    match tmp_edge::admit::idempotency_key(req)? {
        Some(key) => lookup(store, scope, key, body).await.map(Some),
        None => Ok(None),
    }
}

async fn lookup(store: &DynStore, scope: &str, key: String, body: &[u8]) -> Result<Begin, ApiError> {
    let request_hash = Sha256::digest(body).to_vec();
    match store.find_idempotency(scope, &key).await? {
        Some(record) => replay(&record, &request_hash).map(Begin::Replay),
        None => Ok(Begin::Fresh(Pending { scope: scope.to_owned(), key, request_hash })),
    }
}

/// An idempotency key derived from two parts (a scope and a key, a request's key and a token):
/// the same parts give the same key, any other parts another. `ops-` and 40 hex digits.
pub fn derived_key(parent: &str, child: &str) -> String {
    let digest = Sha256::digest(format!("{parent}\n{child}").as_bytes());
    format!("ops-{}", &hex::encode(digest)[..40])
}

impl Pending {
    /// The idempotency key to send on a downstream call made for this request (the ops API's
    /// TMP calls): the same for every retry of the request, different across scopes.
    pub fn downstream_key(&self) -> String {
        derived_key(&self.scope, &self.key)
    }

    /// The record to commit with the effect.
    pub fn record(&self, status: StatusCode, body: Vec<u8>) -> IdempotencyRecord {
        IdempotencyRecord {
            scope: self.scope.clone(),
            key: self.key.clone(),
            request_hash: self.request_hash.clone(),
            response_status: status.as_u16(),
            response_body: body,
            created_at: OffsetDateTime::now_utc(),
        }
    }

    /// The response to send after the write: ours if committed, else the concurrent winner's.
    pub fn settle(&self, write: IdempotentWrite, committed: &IdempotencyRecord) -> Result<HttpResponse, ApiError> {
        match write {
            IdempotentWrite::Committed => Ok(respond(committed, false)),
            IdempotentWrite::AlreadyExists(existing) => replay(&existing, &self.request_hash),
        }
    }
}

fn replay(record: &IdempotencyRecord, request_hash: &[u8]) -> Result<HttpResponse, ApiError> {
    if record.request_hash != request_hash {
        return Err(ApiError::IdempotencyKeyReused);
    }
    Ok(respond(record, true))
}

fn respond(record: &IdempotencyRecord, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(record.response_status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    response.content_type("application/json");
    if replayed {
        response.insert_header((IDEMPOTENT_REPLAYED, "true"));
    }
    response.body(record.response_body.clone())
}
