//! Typed configuration of the mock.
//!
//! Sources, later ones win:
//! 1. `config/mock-tmp.yaml` (every key, commented; also embedded in the binary, so a missing
//!    file still gives a working local setup);
//! 2. environment variables `MOCK_TMP__SECTION__KEY` (e.g. `MOCK_TMP__SERVER__PORT=9090`);
//!    lists are comma-separated (`MOCK_TMP__AUTH__HMAC_SECRETS=whsec_a,whsec_b`).
//!
//! [`MockConfig::validate`] rejects settings that cannot work, naming the key at fault.

use std::path::{Path, PathBuf};
use tmp_protocol::webhook::WebhookSecret;

use serde::{Deserialize, Serialize};
use tmp_protocol::enums::Decision;

use crate::faults::FaultRule;

/// The commented reference configuration, embedded so the binary is self-describing.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../../config/mock-tmp.yaml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockConfig {
    pub server: ServerConfig,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub keys: KeysConfig,
    pub issuer: IssuerConfig,
    pub simulator: SimulatorConfig,
    pub sender: SenderBehaviour,
    pub state: StateConfig,
    pub journal: JournalConfig,
    #[serde(default)]
    pub faults: Vec<FaultRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub body_limit_bytes: usize,
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
}

impl TlsConfig {
    /// The files, as the edge's server config takes them.
    pub fn edge(&self) -> tmp_edge::tls::ServerTls<'_> {
        tmp_edge::tls::ServerTls {
            cert_file: &self.cert_file,
            key_file: &self.key_file,
            client_ca_file: self.client_ca_file.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    Hmac,
    Mtls,
    HmacAndMtls,
}

impl AuthMode {
    pub fn requires_hmac(self) -> bool {
        matches!(self, AuthMode::Hmac | AuthMode::HmacAndMtls)
    }
    pub fn requires_mtls(self) -> bool {
        matches!(self, AuthMode::Mtls | AuthMode::HmacAndMtls)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// Secrets the issuer signs TMP / Lifecycle API calls with; all are accepted.
    pub hmac_secrets: Vec<WebhookSecret>,
    pub timestamp_tolerance_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    pub rsa_bits: usize,
    /// After a rotation the previous key stays published and decrypts for this long.
    pub retired_key_ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Base URL of the issuer's Issuer API (the adapter).
    pub base_url: String,
    /// With an `https` base URL: trust only the CA(s) in this PEM file for the issuer's server
    /// certificate (unset: the platform's trust store).
    pub ca_file: Option<PathBuf>,
    /// With an `https` base URL: the client certificate chain (PEM) presented to the issuer,
    /// as Verestro does toward an issuer that authenticates TMP by mTLS. Needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// The private key of `client_cert_file` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub client_key_file: Option<PathBuf>,
    /// Secrets every callback is signed with (one `v1,` entry each).
    pub hmac_secrets: Vec<WebhookSecret>,
    /// Per-attempt HTTP timeout of callbacks.
    pub request_timeout_ms: u64,
    /// Budget of verify-card (and verify-CVC); after it the mock stands in.
    pub verify_card_deadline_ms: u64,
    /// The decision the mock takes when it stands in.
    pub stand_in_decision: Decision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approach {
    /// The issuer decides: the mock calls the Issuer API's verify-card.
    External,
    /// TMP decides from the cards the issuer loaded into DataCore (Lifecycle API).
    Datacore,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorConfig {
    pub default_approach: Approach,
    pub otp_length: usize,
    pub otp_max_attempts: u32,
    pub otp_ttl_secs: u64,
    /// How long a web push receipt (`sign` with `web`) stays usable, by the mock's clock.
    pub web_push_ttl_secs: u64,
}

/// How callbacks toward the issuer are delivered; changeable at run time (`PUT /_mock/v1/sender`,
/// same snake_case keys as the file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderBehaviour {
    /// Attempts per callback, the first included.
    pub max_attempts: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// Probability (0–1) that a delivered callback is sent again.
    pub duplicate_rate: f64,
    /// How many extra copies a duplicated callback gets.
    pub duplicate_copies: u32,
    /// Every callback waits this long before its first attempt (late callbacks).
    pub delay_ms: u64,
    /// 0 or 1: in order. N ≥ 2: up to N queued callbacks are held and sent newest first.
    pub reorder_window: usize,
    /// Longest a held callback waits for the window to fill.
    pub reorder_hold_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageKind {
    Memory,
    Sqlite,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    pub storage: StorageKind,
    /// `sqlite://PATH`; used when `storage` is `sqlite`.
    pub sqlite_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    pub capacity: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl MockConfig {
    /// Loads `path` (or the embedded defaults if it does not exist) and `MOCK_TMP__…` variables.
    pub fn load(path: &Path) -> Result<MockConfig, ConfigError> {
        Self::load_with(path, config::Environment::with_prefix("MOCK_TMP"))
    }

    /// Same as [`MockConfig::load`] with an explicit variable source (tests).
    pub fn load_with(path: &Path, env_source: config::Environment) -> Result<MockConfig, ConfigError> {
        let builder = config::Config::builder();
        let builder = if path.exists() {
            builder.add_source(config::File::from(path))
        } else {
            builder.add_source(config::File::from_str(DEFAULT_CONFIG_YAML, config::FileFormat::Yaml))
        };
        let raw = builder
            .add_source(
                env_source
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("auth.hmac_secrets")
                    .with_list_parse_key("issuer.hmac_secrets"),
            )
            .build()
            .map_err(|e| ConfigError(e.to_string()))?;
        let config: MockConfig =
            serde_path_to_error::deserialize(raw).map_err(|e| ConfigError(format!("`{}`: {}", e.path(), e.inner())))?;
        config.validate()?;
        Ok(config)
    }

    /// The embedded defaults, validated (tests and `--print-default-config`).
    pub fn defaults() -> MockConfig {
        Self::load_with(Path::new("/nonexistent/mock-tmp.yaml"), config::Environment::with_prefix("MOCK_TMP_NEVER_SET"))
            .expect("the embedded configuration is valid")
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |msg: &str| Err(ConfigError(msg.to_owned()));
        if !(1024..=16 * 1024 * 1024).contains(&self.server.body_limit_bytes) {
            return fail("server.body_limit_bytes must be between 1024 and 16777216");
        }
        if self.auth.mode.requires_hmac() && self.auth.hmac_secrets.is_empty() {
            return fail("auth.hmac_secrets must hold at least one secret when auth.mode uses hmac");
        }
        if self.auth.mode.requires_mtls() && self.server.tls.as_ref().and_then(|t| t.client_ca_file.as_ref()).is_none()
        {
            return fail("auth.mode uses mtls: set server.tls.cert_file, key_file and client_ca_file");
        }
        if self.issuer.hmac_secrets.is_empty() {
            return fail("issuer.hmac_secrets must hold at least one secret: the issuer rejects unsigned callbacks");
        }
        if self.auth.timestamp_tolerance_secs == 0 || self.auth.timestamp_tolerance_secs > 3600 {
            return fail("auth.timestamp_tolerance_secs must be between 1 and 3600");
        }
        if ![2048, 3072, 4096].contains(&self.keys.rsa_bits) {
            return fail("keys.rsa_bits must be 2048, 3072 or 4096");
        }
        if !(self.issuer.base_url.starts_with("http://") || self.issuer.base_url.starts_with("https://")) {
            return fail("issuer.base_url must be an http(s) URL");
        }
        if self.issuer.client_cert_file.is_some() != self.issuer.client_key_file.is_some() {
            return fail("issuer.client_cert_file and issuer.client_key_file must be set together");
        }
        let issuer_tls = self.issuer.ca_file.is_some() || self.issuer.client_cert_file.is_some();
        if issuer_tls && !self.issuer.base_url.starts_with("https://") {
            return fail("issuer.ca_file and issuer.client_cert_file / client_key_file need an https issuer.base_url");
        }
        if self.issuer.request_timeout_ms == 0 || self.issuer.verify_card_deadline_ms == 0 {
            return fail("issuer.request_timeout_ms and issuer.verify_card_deadline_ms must be positive");
        }
        if !(6..=8).contains(&self.simulator.otp_length) {
            return fail("simulator.otp_length must be 6 to 8");
        }
        if self.simulator.otp_max_attempts == 0 || self.simulator.otp_ttl_secs == 0 {
            return fail("simulator.otp_max_attempts and simulator.otp_ttl_secs must be positive");
        }
        if self.simulator.web_push_ttl_secs == 0 {
            return fail("simulator.web_push_ttl_secs must be positive");
        }
        self.sender.validate().map_err(|m| ConfigError(format!("sender: {m}")))?;
        if self.state.storage == StorageKind::Sqlite && !self.state.sqlite_url.starts_with("sqlite:") {
            return fail("state.sqlite_url must start with sqlite:");
        }
        if self.journal.capacity == 0 {
            return fail("journal.capacity must be at least 1");
        }
        for (i, rule) in self.faults.iter().enumerate() {
            rule.validate().map_err(|m| ConfigError(format!("faults[{i}]: {m}")))?;
        }
        Ok(())
    }

    pub fn listen_address(&self) -> String {
        format!("{}:{}", self.server.host, self.server.port)
    }
}

impl SenderBehaviour {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.duplicate_rate) {
            return Err("duplicate_rate must be between 0 and 1".into());
        }
        if self.backoff_initial_ms > self.backoff_max_ms {
            return Err("backoff_initial_ms must not exceed backoff_max_ms".into());
        }
        Ok(())
    }
}
