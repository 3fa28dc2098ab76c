//! What the suite must know about a target it did not start: its test cards (one per state the
//! cases need), where its secrets are, its deadline. Read from a YAML file (`--profile`); the
//! `tmp-kit check` builds one for the kit it starts. Secrets are never in the file: it names the
//! environment variables that hold them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use tmp_protocol::sensitive::{Expiry, Pan};

/// The environment variable the webhook secret is read from unless the profile names another.
pub const DEFAULT_SECRET_ENV: &str = "TMP_CONFORMANCE_SECRET";
/// The environment variable of the processor-ingest secret (forwarding cases).
pub const DEFAULT_PROCESSOR_SECRET_ENV: &str = "TMP_CONFORMANCE_PROCESSOR_SECRET";

/// The fixture names every profile must define, with the state each card must be in.
pub const REQUIRED_CARDS: [(&str, &str); 6] = [
    ("active", "ACTIVE, with the CVC and a cardholder phone or email on file"),
    ("blocked", "BLOCKED"),
    ("closed", "CLOSED"),
    ("expired", "ACTIVE but past its expiry month"),
    ("lockout", "ACTIVE, with the CVC: the suite spends its CVC attempts"),
    ("unknown", "a Luhn-valid PAN the target does not know"),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Name of the environment variable holding the `whsec_…` secret TMP signs with.
    #[serde(default = "default_secret_env")]
    pub secret_env: String,
    /// Name of the environment variable holding the processor-ingest secret (forwarding cases).
    #[serde(default = "default_processor_secret_env")]
    pub processor_secret_env: String,
    /// The target's verify-card deadline: every answer of the latency case must come within it.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Requests the latency case sends.
    #[serde(default = "default_latency_requests")]
    pub latency_requests: u32,
    /// Wrong CVCs after which the target locks a card (the contract default is 3).
    #[serde(default = "default_cvc_max_attempts")]
    pub cvc_max_attempts: u32,
    /// Largest body the target accepts; the oversized-input case sends four times as much.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// mTLS toward the target: CA bundle and client certificate (PEM).
    #[serde(default)]
    pub tls: Option<TlsProfile>,
    /// Test cards by fixture name; see [`REQUIRED_CARDS`].
    pub cards: BTreeMap<String, CardFixture>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsProfile {
    pub ca_file: PathBuf,
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

/// A test card. `pan` and `cvc` are held in the contract's masking types once parsed.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardFixture {
    pub pan: Pan,
    pub expiry: Expiry,
    #[serde(default)]
    pub cvc: Option<tmp_protocol::sensitive::Cvc>,
    /// The target's card id, when the cases should check it.
    #[serde(default)]
    pub card_id: Option<String>,
}

impl std::fmt::Debug for CardFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardFixture").field("pan", &self.pan).field("card_id", &self.card_id).finish_non_exhaustive()
    }
}

fn default_secret_env() -> String {
    DEFAULT_SECRET_ENV.to_owned()
}
fn default_processor_secret_env() -> String {
    DEFAULT_PROCESSOR_SECRET_ENV.to_owned()
}
fn default_deadline_ms() -> u64 {
    1500
}
fn default_latency_requests() -> u32 {
    50
}
fn default_cvc_max_attempts() -> u32 {
    3
}
fn default_body_limit() -> usize {
    65536
}

impl Profile {
    pub fn load(path: &Path) -> anyhow::Result<Profile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the profile {}", path.display()))?;
        let profile: Profile =
            serde_yaml_from_str(&text).with_context(|| format!("invalid profile {}", path.display()))?;
        profile.validate()?;
        Ok(profile)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, meaning) in REQUIRED_CARDS {
            let Some(card) = self.cards.get(name) else {
                bail!("the profile has no `cards.{name}` ({meaning})");
            };
            if matches!(name, "active" | "lockout") && card.cvc.is_none() {
                bail!("`cards.{name}.cvc` is required: the CVC cases send it");
            }
        }
        if self.latency_requests == 0 || self.deadline_ms == 0 {
            bail!("`latency_requests` and `deadline_ms` must be positive");
        }
        if self.cvc_max_attempts == 0 {
            bail!("`cvc_max_attempts` must be positive");
        }
        Ok(())
    }

    pub fn card(&self, name: &str) -> anyhow::Result<&CardFixture> {
        self.cards.get(name).with_context(|| format!("the profile has no card `{name}`"))
    }

    /// The secret TMP signs with, from the environment variable the profile names.
    pub fn secret(&self) -> anyhow::Result<tmp_protocol::webhook::WebhookSecret> {
        read_secret(&self.secret_env)
    }

    /// The processor's ingest secret, when its variable is set.
    pub fn processor_secret(&self) -> Option<tmp_protocol::webhook::WebhookSecret> {
        read_secret(&self.processor_secret_env).ok()
    }
}

fn read_secret(variable: &str) -> anyhow::Result<tmp_protocol::webhook::WebhookSecret> {
    let value = std::env::var(variable).with_context(|| format!("set {variable} to the target's whsec_… secret"))?;
    tmp_protocol::webhook::WebhookSecret::parse(&value).map_err(|e| anyhow::anyhow!("{variable}: {e}"))
}

/// YAML through the `config` crate the workspace already uses (no second YAML parser).
fn serde_yaml_from_str<T: serde::de::DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    let source = config::File::from_str(text, config::FileFormat::Yaml);
    Ok(config::Config::builder().add_source(source).build()?.try_deserialize()?)
}
