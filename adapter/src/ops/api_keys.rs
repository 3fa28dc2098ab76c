//! The ops API's keys: made (`tmpk_<id>_<secret>`, shown once, only its SHA-256 digest kept),
//! listed and revoked, each write audited in the same transaction.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::audit::AuditDraft;
use super::{OpsError, operator_text};
use crate::domain::scopes::Scope;
use crate::store::{ApiKeyRecord, OpsAuditRecord, OpsStore};

/// How every API key starts.
pub const API_KEY_PREFIX: &str = "tmpk_";

/// A new API key: its id, the key to hand out (printed once) and the digest to store.
pub struct NewApiKey {
    pub id: String,
    pub key: zeroize::Zeroizing<String>,
    pub digest: Vec<u8>,
}

impl NewApiKey {
    pub fn generate() -> NewApiKey {
        let id = crate::keys::random_hex(8).to_string();
        let secret = crate::keys::random_hex(32);
        let key = zeroize::Zeroizing::new(format!("{API_KEY_PREFIX}{id}_{}", secret.as_str()));
        let digest = Sha256::digest(key.as_bytes()).to_vec();
        NewApiKey { id, key, digest }
    }
}

/// The id part of `tmpk_<id>_<secret>`, when the token has that shape.
pub fn api_key_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(API_KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (ok(id, 16) && ok(secret, 64)).then_some(id)
}

/// Makes a key named `name` with `scopes` (and its own rate limit, if given), audited as made by
/// `actor`. The key itself is in the answer only.
pub async fn create(
    store: &dyn OpsStore,
    name: &str,
    scopes: &BTreeSet<Scope>,
    rate_limit_per_minute: Option<u32>,
    actor: &str,
    correlation_id: String,
) -> Result<(NewApiKey, ApiKeyRecord), OpsError> {
    operator_text("the name", name)?;
    if scopes.is_empty() {
        return Err(OpsError::Invalid(format!("a key needs at least one scope ({})", Scope::ALL_NAMES)));
    }
    if rate_limit_per_minute.is_some_and(|n| n == 0 || n > 1_000_000) {
        return Err(OpsError::Invalid("the rate limit must be 1 to 1000000 per minute".into()));
    }
    let new = NewApiKey::generate();
    let record = ApiKeyRecord {
        id: new.id.clone(),
        name: name.to_owned(),
        secret_digest: new.digest.clone(),
        scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        rate_limit_per_minute,
        created_at: OffsetDateTime::now_utc(),
        revoked_at: None,
    };
    let mut audit = AuditDraft::new("apikey.create", Some(new.id.clone()), None);
    audit.reason = Some(format!("{name}: {}", record.scopes.join(" ")));
    store.create_api_key(&record, &audit.record(actor, "ok", 0, correlation_id)).await?;
    Ok((new, record))
}

/// Every key, revoked ones included, oldest first.
pub async fn list(store: &dyn OpsStore) -> Result<Vec<ApiKeyRecord>, OpsError> {
    Ok(store.list_api_keys().await?)
}

/// Revokes the live key `id` (refused on its next request, on every instance), audited as done
/// by `actor` for `reason`.
pub async fn revoke(
    store: &dyn OpsStore,
    id: &str,
    reason: Option<&str>,
    actor: &str,
    correlation_id: String,
) -> Result<(), OpsError> {
    if let Some(reason) = reason {
        operator_text("the reason", reason)?;
    }
    let mut audit = AuditDraft::new("apikey.revoke", Some(id.to_owned()), None);
    audit.reason = reason.map(str::to_owned);
    let record: OpsAuditRecord = audit.record(actor, "ok", 0, correlation_id);
    if store.revoke_api_key(id, OffsetDateTime::now_utc(), &record).await? {
        Ok(())
    } else {
        Err(OpsError::NotFound(format!("{id}: no live key with this id")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_have_one_shape() {
        let key = NewApiKey::generate();
        assert_eq!(api_key_id(&key.key), Some(key.id.as_str()));
        assert_eq!(key.digest, Sha256::digest(key.key.as_bytes()).to_vec());
        assert_eq!(api_key_id("tmpk_short_x"), None);
        assert_eq!(api_key_id("tmpops_abc"), None);
        assert_ne!(NewApiKey::generate().key, key.key);
    }
}
