//! Who calls the ops API, and with which scopes. Three ways in, tried in this order:
//!
//! 1. `Authorization: Bearer tmpk_<id>_<secret>`: an API key from `tmp-adapter apikey create`,
//!    looked up by id; the SHA-256 of the whole key must match the stored digest (constant
//!    time) and the key must not be revoked. Its scopes are the key's.
//! 2. `Authorization: Bearer <token>` whose SHA-256 is one of `ops.api_tokens`: an operator
//!    token with every scope (the ops listener's first form of authentication, kept).
//! 3. No `Authorization` header, over TLS with a verified client certificate whose subject's
//!    common name is a key of `ops.mtls.subjects`: that entry's scopes.
//!
//! Anything else is 401 `UNAUTHENTICATED`. A known caller is then held to its rate limit
//! (429) before the handler checks the route's scope (403).

use std::collections::{BTreeMap, BTreeSet};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::OpsState;
use crate::config::OpsSettings;
use crate::domain::scopes::Scope;
use crate::http::AppState;
use crate::ops::api_keys::api_key_id;
use tmp_edge::error::ApiError;

/// Connection marker of the ops listener: the verified client certificate's subject CN.
#[derive(Debug, Clone)]
pub struct OpsClientSubject(pub String);

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Stable name of the caller: the rate-limit bucket and the idempotency scope
    /// (`apikey:<id>`, `token:<digest prefix>`, `mtls:<CN>`).
    pub id: String,
    /// How the audit names it (`apikey:<id> (<name>)`, …).
    pub actor: String,
    pub scopes: BTreeSet<Scope>,
    /// Per-key override of `ops.rate_limit.requests_per_minute`.
    pub rate_limit_per_minute: Option<u32>,
}

impl Principal {
    /// 403 unless the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("this route needs the `{scope}` scope")))
        }
    }
}

/// The ops listener's credentials other than API keys (which live in the database).
pub struct Authenticator {
    token_digests: Vec<[u8; 32]>,
    subjects: BTreeMap<String, BTreeSet<Scope>>,
}

impl Authenticator {
    pub fn new(settings: &OpsSettings) -> anyhow::Result<Authenticator> {
        Ok(Authenticator { token_digests: settings.token_digests(), subjects: settings.mtls.subjects.clone() })
    }

    fn operator_token(&self, token: &str) -> Option<Principal> {
        let digest = Sha256::digest(token.as_bytes());
        // Every configured digest is compared, each in constant time.
        let mut matched = subtle::Choice::from(0u8);
        for known in &self.token_digests {
            matched |= known.as_slice().ct_eq(digest.as_slice());
        }
        bool::from(matched).then(|| {
            let who = format!("token:{}", hex::encode(&digest[..6]));
            Principal {
                id: who.clone(),
                actor: who,
                scopes: Scope::ALL.into_iter().collect(),
                rate_limit_per_minute: None,
            }
        })
    }

    fn subject(&self, subject: &str) -> Option<Principal> {
        self.subjects.get(subject).map(|scopes| {
            let who = format!("mtls:{subject}");
            Principal { id: who.clone(), actor: who, scopes: scopes.clone(), rate_limit_per_minute: None }
        })
    }
}

fn bearer(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = req.headers().get(AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(Some)
        .ok_or(ApiError::InvalidToken)
}

async fn authenticate(req: &HttpRequest, app: &AppState, ops: &OpsState) -> Result<Principal, ApiError> {
    let refused = |why: &str| {
        tracing::warn!(why, "ops API: authentication refused");
        ApiError::InvalidToken
    };
    match bearer(req)? {
        Some(token) => {
            if let Some(id) = api_key_id(token) {
                let key = app.store.find_api_key(id).await?.ok_or_else(|| refused("unknown API key"))?;
                let digest = Sha256::digest(token.as_bytes());
                if !bool::from(key.secret_digest.as_slice().ct_eq(digest.as_slice())) {
                    return Err(refused("API key does not match"));
                }
                if key.revoked_at.is_some() {
                    return Err(refused("revoked API key"));
                }
                // Scopes were checked when the key was made; an unknown one grants nothing.
                let scopes = key.scopes.iter().filter_map(|s| Scope::parse(s)).collect();
                return Ok(Principal {
                    id: format!("apikey:{}", key.id),
                    actor: format!("apikey:{} ({})", key.id, key.name),
                    scopes,
                    rate_limit_per_minute: key.rate_limit_per_minute,
                });
            }
            ops.auth.operator_token(token).ok_or_else(|| refused("unknown bearer token"))
        }
        None => match req.conn_data::<OpsClientSubject>() {
            Some(OpsClientSubject(subject)) => {
                ops.auth.subject(subject).ok_or_else(|| refused("client certificate subject not configured"))
            }
            None => Err(refused("no credentials")),
        },
    }
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Principal, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let missing = || ApiError::Internal(anyhow::anyhow!("ops state is not registered"));
            let app = req.app_data::<Data<AppState>>().cloned().ok_or_else(missing)?;
            let ops = req.app_data::<Data<OpsState>>().cloned().ok_or_else(missing)?;
            let principal = authenticate(&req, &app, &ops).await?;
            ops.rate_limiter.check(&principal)?;
            Ok(principal)
        })
    }
}
