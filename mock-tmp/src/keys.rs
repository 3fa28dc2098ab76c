//! The mock's JWE keys: one rotating set per published JWK set (TMP API, Lifecycle API) and a
//! test wallet key that push-provisioning payloads are encrypted to. A rotation publishes a
//! new current key first; the previous one keeps decrypting (and stays published) for
//! `keys.retired_key_ttl_secs`, like a real platform that cannot make every sender switch at
//! once.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tmp_protocol::jwe::{JweError, KeyRing};
use tmp_protocol::jwk::{JwkSet, RsaKeyPair};

/// Which key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyUse {
    TmpApi,
    LifecycleApi,
    Wallet,
}

struct LiveKey {
    pair: RsaKeyPair,
    retired_at: Option<OffsetDateTime>,
}

pub struct RotatingKeys {
    /// Current key first.
    keys: Vec<LiveKey>,
    ttl: time::Duration,
}

/// The persisted form (state file). Test keys only; see `state.storage`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredKey {
    pub kid: String,
    pub pem: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub retired_at: Option<OffsetDateTime>,
}

impl RotatingKeys {
    pub fn generate(bits: usize, ttl_secs: u64) -> anyhow::Result<RotatingKeys> {
        let pair = RsaKeyPair::generate(bits)?;
        Ok(RotatingKeys { keys: vec![LiveKey { pair, retired_at: None }], ttl: ttl(ttl_secs) })
    }

    pub fn restore(stored: &[StoredKey], ttl_secs: u64) -> anyhow::Result<RotatingKeys> {
        let keys = stored
            .iter()
            .map(|k| Ok(LiveKey { pair: RsaKeyPair::from_pkcs8_pem(&k.kid, &k.pem)?, retired_at: k.retired_at }))
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!keys.is_empty(), "a stored key set is empty");
        Ok(RotatingKeys { keys, ttl: ttl(ttl_secs) })
    }

    pub fn store(&self) -> anyhow::Result<Vec<StoredKey>> {
        self.keys
            .iter()
            .map(|k| {
                Ok(StoredKey {
                    kid: k.pair.kid().to_owned(),
                    pem: k.pair.to_pkcs8_pem()?.to_string(),
                    retired_at: k.retired_at,
                })
            })
            .collect()
    }

    /// Makes a new key current; the old one retires (still live for the TTL).
    pub fn rotate_to(&mut self, pair: RsaKeyPair) -> String {
        let now = OffsetDateTime::now_utc();
        self.expire(now);
        for key in &mut self.keys {
            key.retired_at.get_or_insert(now);
        }
        let kid = pair.kid().to_owned();
        self.keys.insert(0, LiveKey { pair, retired_at: None });
        kid
    }

    fn expire(&mut self, now: OffsetDateTime) {
        let ttl = self.ttl;
        self.keys.retain(|k| k.retired_at.is_none_or(|at| now - at < ttl));
    }

    fn ring(&self) -> KeyRing {
        let now = OffsetDateTime::now_utc();
        let live = self
            .keys
            .iter()
            .filter(|k| k.retired_at.is_none_or(|at| now - at < self.ttl))
            .map(|k| k.pair.clone())
            .collect();
        // The current key is never retired, so the ring is never empty.
        KeyRing::new(live).unwrap_or_else(|_| KeyRing::new(vec![self.keys[0].pair.clone()]).expect("current key"))
    }

    pub fn jwk_set(&self) -> JwkSet {
        self.ring().jwk_set()
    }

    pub fn current(&self) -> &RsaKeyPair {
        &self.keys[0].pair
    }

    pub fn decrypt_json<T: serde::de::DeserializeOwned>(&self, compact: &str) -> Result<T, JweError> {
        self.ring().decrypt_json(compact)
    }
}

fn ttl(secs: u64) -> time::Duration {
    time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 2))
}

/// All key sets of the mock.
pub struct MockKeys {
    pub tmp_api: RotatingKeys,
    pub lifecycle_api: RotatingKeys,
    pub wallet: RotatingKeys,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredKeys {
    pub tmp_api: Vec<StoredKey>,
    pub lifecycle_api: Vec<StoredKey>,
    pub wallet: Vec<StoredKey>,
}

impl MockKeys {
    pub fn generate(bits: usize, ttl_secs: u64) -> anyhow::Result<MockKeys> {
        Ok(MockKeys {
            tmp_api: RotatingKeys::generate(bits, ttl_secs)?,
            lifecycle_api: RotatingKeys::generate(bits, ttl_secs)?,
            wallet: RotatingKeys::generate(bits, ttl_secs)?,
        })
    }

    pub fn restore(stored: &StoredKeys, ttl_secs: u64) -> anyhow::Result<MockKeys> {
        Ok(MockKeys {
            tmp_api: RotatingKeys::restore(&stored.tmp_api, ttl_secs)?,
            lifecycle_api: RotatingKeys::restore(&stored.lifecycle_api, ttl_secs)?,
            wallet: RotatingKeys::restore(&stored.wallet, ttl_secs)?,
        })
    }

    pub fn store(&self) -> anyhow::Result<StoredKeys> {
        Ok(StoredKeys {
            tmp_api: self.tmp_api.store()?,
            lifecycle_api: self.lifecycle_api.store()?,
            wallet: self.wallet.store()?,
        })
    }

    pub fn get_mut(&mut self, key_use: KeyUse) -> &mut RotatingKeys {
        match key_use {
            KeyUse::TmpApi => &mut self.tmp_api,
            KeyUse::LifecycleApi => &mut self.lifecycle_api,
            KeyUse::Wallet => &mut self.wallet,
        }
    }
}
