//! Typed, layered configuration.
//!
//! Sources, later ones win:
//! 1. `config/base.yaml` (every key, commented — also embedded in the binary, so
//!    `print-default-config` and a missing config directory still work);
//! 2. `config/{environment}.yaml`, where the environment comes from `TMP_ADAPTER_ENV`
//!    (`local` by default, or `production`);
//! 3. environment variables `TMP_ADAPTER__SECTION__KEY` (e.g. `TMP_ADAPTER__SERVER__PORT=9000`);
//!    lists are comma-separated (`TMP_ADAPTER__AUTH__HMAC_SECRETS=whsec_a,whsec_b`).
//!
//! After loading, [`Settings::validate`] rejects inconsistent or unsafe settings with a message
//! that names the key.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tmp_protocol::enums::StepUpMethodType;
use tmp_protocol::webhook::WebhookSecret;

pub use crate::domain::Approach;
pub use crate::domain::policy::{CvcPolicySettings, PolicySettings, RequestorPolicy};
use crate::domain::scopes::Scope;

/// The commented reference configuration, embedded so the binary is self-describing.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../../config/base.yaml");

/// Development-only HMAC secrets shipped in `config/local.yaml`; production refuses them.
pub const DEVELOPMENT_HMAC_SECRETS: &[&str] = &["whsec_ZGV2ZWxvcG1lbnQtb25seS10bXAtYWRhcHRlci1zZWNyZXQ="];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Local,
    Production,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub environment: Environment,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub log: LogSettings,
    pub auth: AuthSettings,
    pub keys: KeySettings,
    pub card_source: CardSourceSettings,
    pub policy: PolicySettings,
    pub housekeeping: HousekeepingSettings,
    pub processor: ProcessorSettings,
    pub forwarding: ForwardingSettings,
    pub relay: RelaySettings,
    /// The operator HTTP surface (outbox administration), on its own listener.
    pub ops: OpsSettings,
    /// The issuer's own systems that receive token events and notifications as webhooks.
    #[serde(default)]
    pub sinks: Vec<SinkSettings>,
}

/// `POST /processor/v1/events`: the processor's card events.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorSettings {
    /// `whsec_…` secrets the processor signs with (several live at once for rotation).
    /// Empty: the ingest route is not served (404).
    pub hmac_secrets: Vec<WebhookSecret>,
    /// Largest accepted ingest body (batches are larger than Issuer API calls).
    pub body_limit_bytes: usize,
    /// Most events accepted in one batch.
    pub max_batch_events: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardingSettings {
    pub approach: Approach,
    pub tmp_api: DestinationSettings,
    pub lifecycle_api: DestinationSettings,
    /// How long a fetched public key (TMP's or DataCore's) is used before it is fetched again.
    pub public_key_ttl_secs: u64,
}

/// An HTTP destination of the relay (TMP API or Lifecycle API).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSettings {
    pub base_url: String,
    /// `whsec_…` secrets requests are signed with (every one of them: rotation).
    pub hmac_secrets: Vec<WebhookSecret>,
    #[serde(default)]
    pub tls: OutboundTlsSettings,
}

/// TLS toward a destination: a private CA and/or a client certificate (mTLS).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundTlsSettings {
    /// CA bundle (PEM) the destination's certificate must chain to; null = the client's defaults.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) presented to the destination; needs `client_key_file`.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// Its private key (PEM, PKCS#8).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

impl OutboundTlsSettings {
    /// The files, as the edge's HTTP client takes them.
    pub fn edge(&self) -> tmp_edge::client::ClientTls<'_> {
        let identity = match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert_file), Some(key_file)) => Some(tmp_edge::tls::ClientIdentity { cert_file, key_file }),
            _ => None,
        };
        tmp_edge::client::ClientTls { ca_file: self.ca_file.as_deref(), identity }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySettings {
    /// Run the outbox relay in this process.
    pub enabled: bool,
    /// Deliveries in flight at once (different ordering keys; one per key at a time).
    pub concurrency: usize,
    /// How often the outbox is polled when there is nothing to do.
    pub poll_interval_ms: u64,
    /// How long a claimed row stays reserved for this process; a crashed process's rows are
    /// taken over after it.
    pub lease_secs: u64,
    /// Per-request timeout toward destinations.
    pub request_timeout_ms: u64,
    /// Delay before each retry; after the last one the row is `dead`.
    pub retry_schedule_ms: Vec<u64>,
    /// Each delay is randomised by up to this many percent either way.
    pub jitter_percent: u8,
    /// Upper bound of a destination's `Retry-After`.
    pub retry_after_max_secs: u64,
    /// How often the outbox depth/age gauges are refreshed.
    pub stats_interval_secs: u64,
}

/// The ops API: operator endpoints on a listener of their own, never the Issuer API's port.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsSettings {
    /// Serve the ops API.
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    /// SHA-256 digests (64 hex characters) of operator bearer tokens with every scope; the
    /// tokens themselves are never stored (`tmp-adapter ops token` makes one). Scoped API keys
    /// (`tmp-adapter apikey create`) live in the database.
    pub api_tokens: Vec<String>,
    /// Serve the ops API over HTTPS; with `client_ca_file`, client certificates authenticate
    /// (their subject's CN is looked up in `mtls.subjects`).
    pub tls: Option<TlsSettings>,
    /// As `server.tls_terminated_by_proxy`, for the ops listener (production asks for one or the
    /// other unless the ops listener is on a loopback address).
    pub tls_terminated_by_proxy: bool,
    pub mtls: OpsMtlsSettings,
    pub rate_limit: RateLimitSettings,
    /// Timeout of one TMP API call made for the ops API (tokens, sign, token actions).
    pub tmp_request_timeout_ms: u64,
    /// The hosts a web push may send the cardholder back to (`callbackUrl`); empty: any host.
    #[serde(default)]
    pub web_push_callback_hosts: Vec<String>,
    /// Most connections the ops listener holds open at once: a caller holding many cannot take
    /// the descriptors the Issuer API needs.
    pub max_connections: usize,
    /// Most connections one peer (IP address) holds on the ops listener; 0: no cap beside
    /// `max_connections`.
    pub max_connections_per_peer: usize,
}

/// Client certificates of the ops listener: subject common name → scopes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsMtlsSettings {
    pub subjects: BTreeMap<String, BTreeSet<Scope>>,
}

/// The ops API's token bucket per caller (API key, operator token or certificate subject).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Sustained rate; an API key may override it (`apikey create --rate-limit-per-minute`).
    pub requests_per_minute: u32,
    /// Requests allowed at once after a quiet period (the bucket's size).
    pub burst: u32,
}

impl OpsSettings {
    pub fn listen_address(&self) -> Result<SocketAddr, ConfigError> {
        format!("{}:{}", self.host, self.port)
            .parse()
            .map_err(|_| ConfigError("ops.host and ops.port do not form a socket address".into()))
    }

    /// The accepted token digests, decoded (validated at load).
    pub fn token_digests(&self) -> Vec<[u8; 32]> {
        self.api_tokens
            .iter()
            .filter_map(|d| hex::decode(d.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()))
            .collect()
    }
}

impl std::fmt::Debug for OpsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsSettings")
            .field("enabled", &self.enabled)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("api_tokens", &format_args!("[{} digest(s)]", self.api_tokens.len()))
            .field("tls", &self.tls)
            .field("tls_terminated_by_proxy", &self.tls_terminated_by_proxy)
            .field("mtls", &self.mtls)
            .field("rate_limit", &self.rate_limit)
            .field("tmp_request_timeout_ms", &self.tmp_request_timeout_ms)
            .field("web_push_callback_hosts", &self.web_push_callback_hosts)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_peer", &self.max_connections_per_peer)
            .finish()
    }
}

/// One of the issuer's own systems receiving webhooks.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSettings {
    /// Names the sink in logs, metrics and dead letters.
    pub name: String,
    pub url: String,
    pub hmac_secrets: Vec<WebhookSecret>,
    /// Event types delivered (`token.status_changed`, `notification.*`, …); empty = all.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Public JWK (JSON file) activation codes are encrypted to; null = codes are not sent.
    #[serde(default)]
    pub otp_jwk_file: Option<PathBuf>,
    #[serde(default)]
    pub tls: OutboundTlsSettings,
}

impl SinkSettings {
    /// Whether this sink takes `event_type` (`prefix.*` patterns match by prefix).
    pub fn accepts(&self, event_type: &str) -> bool {
        self.event_types.is_empty()
            || self.event_types.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => event_type.starts_with(prefix),
                None => p == event_type,
            })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Largest accepted request body; larger ones get 413.
    pub body_limit_bytes: usize,
    /// How long a request body may take to arrive; slower → 408.
    pub body_read_timeout_secs: u64,
    /// How long graceful shutdown waits for in-flight requests.
    pub shutdown_timeout_secs: u64,
    /// Every request of this listener is answered within this, or gets 503 (a stalled
    /// database must not hold TMP's requests).
    pub request_timeout_ms: u64,
    /// How long `/readyz` waits for the database before answering 503.
    pub readiness_timeout_ms: u64,
    /// Most connections this listener holds open at once; more wait in the accept queue.
    pub max_connections: usize,
    /// Most connections one peer (IP address) holds on this listener; more are shut down as
    /// they are accepted. 0: no cap beside `max_connections` (behind a load balancer every
    /// connection comes from it: cap there).
    pub max_connections_per_peer: usize,
    /// Serve HTTPS (and mTLS when `client_ca_file` is set) instead of plain HTTP.
    pub tls: Option<TlsSettings>,
    /// Acknowledges that plain HTTP is meant: a proxy in front terminates TLS. Production
    /// refuses a listener without `tls` unless this is set.
    pub tls_terminated_by_proxy: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// CA that signs the client certificates TMP presents. A certificate presented by a client
    /// must chain to it; the Issuer API requires one when `auth.mode` is `mtls` or
    /// `hmac_and_mtls` (probes without one still reach /healthz).
    pub client_ca_file: Option<PathBuf>,
}

impl TlsSettings {
    /// The files, as the edge's server config takes them.
    pub fn edge(&self) -> tmp_edge::tls::ServerTls<'_> {
        tmp_edge::tls::ServerTls {
            cert_file: &self.cert_file,
            key_file: &self.key_file,
            client_ca_file: self.client_ca_file.as_deref(),
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://./data/tmp-adapter.db` (created on first start) or `postgres://…`.
    pub url: String,
    pub max_connections: u32,
    pub group_commit: GroupCommitConfig,
}

/// `database.group_commit`: how concurrent requests' writes share one flush.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupCommitConfig {
    /// Longest a flush waits for more commits, only while other durable writes are in flight.
    pub max_wait_micros: u64,
    /// A waiting flush starts once this many commits wait for it.
    pub max_batch: u32,
}

impl GroupCommitConfig {
    pub fn settings(&self) -> crate::store::GroupCommitSettings {
        crate::store::GroupCommitSettings {
            max_wait: std::time::Duration::from_micros(self.max_wait_micros),
            max_batch: self.max_batch,
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
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive; `RUST_LOG` overrides it outside production.
    pub level: String,
    /// Spans exported to an OpenTelemetry collector (off unless `endpoint` is set).
    pub otlp: OtlpExportSettings,
}

/// `log.otlp`: OTLP/HTTP (JSON) export of the request, delivery and outbound-call spans.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpExportSettings {
    /// The collector's base URL (`http://127.0.0.1:4318`); empty: nothing is exported.
    pub endpoint: String,
    /// `service.name` of the exported spans.
    pub service_name: String,
    pub flush_interval_ms: u64,
    pub max_queued_spans: usize,
    pub timeout_ms: u64,
    /// CA the collector's certificate must chain to (`None`: the platform's trust store).
    pub ca_file: Option<PathBuf>,
}

impl OtlpExportSettings {
    /// The exporter's settings, or `None` when export is off.
    pub fn exporter(&self) -> Option<tmp_edge::otlp::OtlpSettings> {
        (!self.endpoint.is_empty()).then(|| tmp_edge::otlp::OtlpSettings {
            endpoint: self.endpoint.clone(),
            service_name: self.service_name.clone(),
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            max_queued_spans: self.max_queued_spans,
            timeout: Duration::from_millis(self.timeout_ms),
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |msg: &str| Err(ConfigError(format!("log.otlp.{msg}")));
        let url = self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://");
        if !(self.endpoint.is_empty() || url) {
            return fail("endpoint must be empty (no export) or an http:// or https:// URL");
        }
        if self.service_name.trim().is_empty() || self.service_name.len() > 128 {
            return fail("service_name must be 1-128 characters");
        }
        if !(10..=60_000).contains(&self.flush_interval_ms) {
            return fail("flush_interval_ms must be between 10 and 60000");
        }
        if !(1..=1_000_000).contains(&self.max_queued_spans) {
            return fail("max_queued_spans must be between 1 and 1000000");
        }
        if !(100..=60_000).contains(&self.timeout_ms) {
            return fail("timeout_ms must be between 100 and 60000");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Standard-Webhooks HMAC signature on every request (default).
    Hmac,
    /// Client certificate verified against `server.tls.client_ca_file`.
    Mtls,
    /// Both.
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

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// `whsec_…` secrets; all are accepted at once, so a new one can be added before the old
    /// one is removed.
    pub hmac_secrets: Vec<WebhookSecret>,
    /// Signatures older or newer than this are rejected as stale.
    pub timestamp_tolerance_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// Development only: generate any missing key file below into this directory on first
    /// start (marked as development keys, which production refuses).
    pub generate_missing_in: Option<PathBuf>,
    /// The adapter's JWE decryption keys (PKCS#8 PEM RSA). All are live; all are published.
    pub jwe: Vec<JweKeySettings>,
    /// Data keys that encrypt PANs and OTPs at rest (files with 64 hex characters).
    pub data_keys: DataKeySettings,
    /// Key of the HMAC-SHA256 PAN fingerprint (file with 64 hex characters).
    pub fingerprint_key_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JweKeySettings {
    pub kid: String,
    pub private_key_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataKeySettings {
    /// Id of the key new data is encrypted under; older keys stay for decryption.
    pub active: String,
    pub files: BTreeMap<String, PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardSourceKind {
    LocalRegistry,
    ProcessorBridge,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardSourceSettings {
    pub kind: CardSourceKind,
    pub local_registry: LocalRegistrySettings,
    pub processor_bridge: ProcessorBridgeSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalRegistrySettings {
    /// File with the CVK pair as 32 hex characters (CVK-A || CVK-B).
    pub cvk_file: PathBuf,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorBridgeSettings {
    /// Base URL of the bridge, e.g. `https://processor.internal:9443`.
    pub base_url: String,
    /// `whsec_…` secret the adapter signs bridge requests with; none → unsigned.
    pub hmac_secret: Option<WebhookSecret>,
    /// CA bundle that signs the bridge's server certificate (default: system roots).
    pub ca_file: Option<PathBuf>,
    /// Ask the bridge's decision hook (`/bridge/v1/tokenizations/decide`) once the card checks
    /// passed: the issuer's fraud engine decides within the verification deadline. With the
    /// local registry, the bridge's address answers this call alone.
    #[serde(default)]
    pub decide: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HousekeepingSettings {
    /// How often expired OTPs, idempotency records and seen request ids are purged.
    pub interval_secs: u64,
    /// How long idempotency records are kept (TMP's retries must fall inside this).
    pub idempotency_retention_hours: u64,
}

// Settings holding secrets print them masked: a `?settings` in a log line must not leak.
impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("group_commit", &self.group_commit)
            .finish()
    }
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("mode", &self.mode)
            .field("hmac_secrets", &SecretCount(self.hmac_secrets.len()))
            .field("timestamp_tolerance_secs", &self.timestamp_tolerance_secs)
            .finish()
    }
}

impl std::fmt::Debug for ProcessorBridgeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessorBridgeSettings")
            .field("base_url", &self.base_url)
            .field("hmac_secret", &self.hmac_secret.as_ref().map(|_| "***"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// How a list of secrets prints: its size only.
struct SecretCount(usize);

impl std::fmt::Debug for SecretCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} secret(s)]", self.0)
    }
}

impl std::fmt::Debug for ProcessorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessorSettings")
            .field("hmac_secrets", &SecretCount(self.hmac_secrets.len()))
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("max_batch_events", &self.max_batch_events)
            .finish()
    }
}

impl std::fmt::Debug for DestinationSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestinationSettings")
            .field("base_url", &self.base_url)
            .field("hmac_secrets", &SecretCount(self.hmac_secrets.len()))
            .field("tls", &self.tls)
            .finish()
    }
}

impl std::fmt::Debug for SinkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkSettings")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("hmac_secrets", &SecretCount(self.hmac_secrets.len()))
            .field("event_types", &self.event_types)
            .field("otp_jwk_file", &self.otp_jwk_file)
            .field("tls", &self.tls)
            .finish()
    }
}

/// A database URL without its password (in the userinfo or a `password=` parameter).
pub fn redact_url(url: &str) -> String {
    let mut out = match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    };
    if let Some((base, query)) = out.clone().split_once('?') {
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{base}?{}", query.join("&"));
    }
    out
}

/// A configuration that cannot run, with the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Loads the layered configuration from `config_dir` (see the module docs).
    pub fn load(config_dir: &Path) -> Result<Settings, ConfigError> {
        let environment = std::env::var("TMP_ADAPTER_ENV").unwrap_or_else(|_| "local".to_owned());
        Self::load_with(config_dir, &environment, config::Environment::with_prefix("TMP_ADAPTER"))
    }

    /// Same as [`Settings::load`] with an explicit environment name and variable source (tests).
    pub fn load_with(
        config_dir: &Path,
        environment: &str,
        env_source: config::Environment,
    ) -> Result<Settings, ConfigError> {
        if !matches!(environment, "local" | "production") {
            return Err(ConfigError(format!("TMP_ADAPTER_ENV must be `local` or `production`, not `{environment}`")));
        }
        let base = config_dir.join("base.yaml");
        let builder = config::Config::builder();
        let builder = if base.exists() {
            builder.add_source(config::File::from(base))
        } else {
            builder.add_source(config::File::from_str(DEFAULT_CONFIG_YAML, config::FileFormat::Yaml))
        };
        let raw = builder
            .add_source(config::File::from(config_dir.join(format!("{environment}.yaml"))).required(false))
            .set_override("environment", environment)
            .map_err(|e| ConfigError(e.to_string()))?
            .add_source(
                env_source
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("auth.hmac_secrets")
                    .with_list_parse_key("processor.hmac_secrets")
                    .with_list_parse_key("forwarding.tmp_api.hmac_secrets")
                    .with_list_parse_key("forwarding.lifecycle_api.hmac_secrets")
                    .with_list_parse_key("relay.retry_schedule_ms")
                    .with_list_parse_key("policy.default.step_up_methods")
                    .with_list_parse_key("ops.api_tokens")
                    .with_list_parse_key("ops.web_push_callback_hosts"),
            )
            .build()
            .map_err(|e| ConfigError(e.to_string()))?;
        // Without the directory only the built-in defaults and the environment apply: say so, or
        // the first complaint (a missing secret, say) hides the cause.
        let hint = |error: ConfigError| match config_dir.is_dir() {
            true => error,
            false => ConfigError(format!(
                "{} (no configuration directory at `{}`: only the built-in defaults and TMP_ADAPTER__* \
                 variables apply; run from the repository root or pass --config-dir)",
                error.0,
                config_dir.display()
            )),
        };
        let settings: Settings = serde_path_to_error::deserialize(raw)
            .map_err(|e| hint(ConfigError(format!("`{}`: {}", e.path(), e.inner()))))?;
        settings.validate().map_err(hint)?;
        Ok(settings)
    }

    /// Rejects settings that cannot work or are unsafe, naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |msg: String| Err(ConfigError(msg));
        if self.server.body_limit_bytes < 1024 || self.server.body_limit_bytes > 16 * 1024 * 1024 {
            return fail("server.body_limit_bytes must be between 1024 and 16777216".into());
        }
        if self.database.max_connections == 0 {
            return fail("database.max_connections must be at least 1".into());
        }
        if self.database.group_commit.max_wait_micros > 100_000 {
            return fail("database.group_commit.max_wait_micros must be at most 100000 (100 ms)".into());
        }
        if !(1..=10_000).contains(&self.database.group_commit.max_batch) {
            return fail("database.group_commit.max_batch must be between 1 and 10000".into());
        }
        if !(self.database.url.starts_with("sqlite:")
            || self.database.url.starts_with("postgres://")
            || self.database.url.starts_with("postgresql://"))
        {
            return fail("database.url must start with sqlite:, postgres:// or postgresql://".into());
        }
        if self.auth.mode.requires_hmac() && self.auth.hmac_secrets.is_empty() {
            return fail("auth.hmac_secrets must hold at least one secret when auth.mode uses hmac".into());
        }
        if self.auth.mode.requires_mtls() && self.server.tls.as_ref().and_then(|t| t.client_ca_file.as_ref()).is_none()
        {
            return fail("auth.mode uses mtls: set server.tls.cert_file, key_file and client_ca_file".into());
        }
        if self.auth.timestamp_tolerance_secs == 0 || self.auth.timestamp_tolerance_secs > 3600 {
            return fail("auth.timestamp_tolerance_secs must be between 1 and 3600".into());
        }
        if self.keys.jwe.is_empty() {
            return fail("keys.jwe must list at least one key".into());
        }
        if !self.keys.data_keys.files.contains_key(&self.keys.data_keys.active) {
            return fail(format!(
                "keys.data_keys.active `{}` is not a key of keys.data_keys.files",
                self.keys.data_keys.active
            ));
        }
        if self.policy.deadline_ms == 0 {
            return fail("policy.deadline_ms must be positive".into());
        }
        if self.policy.cvc.max_attempts == 0 || self.policy.cvc.max_attempts > 100 {
            return fail("policy.cvc.max_attempts must be between 1 and 100".into());
        }
        // A window of seconds makes the lockout no obstacle to guessing: production requires a
        // minute at least; elsewhere a test may shorten it to watch a window end.
        let shortest = if self.environment == Environment::Production { 60 } else { 1 };
        if !(shortest..=31 * 86_400).contains(&self.policy.cvc.lockout_window_secs) {
            return fail(format!(
                "policy.cvc.lockout_window_secs must be between {shortest} and 2678400 (31 days){}",
                if shortest == 1 { "; production requires at least 60" } else { "" }
            ));
        }
        if !(1..=31 * 86_400).contains(&self.policy.velocity_window_secs) {
            return fail("policy.velocity_window_secs must be between 1 and 2678400 (31 days)".into());
        }
        if self.policy.answer_reserve_ms >= self.policy.deadline_ms {
            return fail("policy.answer_reserve_ms must be less than policy.deadline_ms".into());
        }
        if self.policy.deadline_ms > 60_000 {
            return fail("policy.deadline_ms must be at most 60000".into());
        }
        if !(1..=600).contains(&self.server.body_read_timeout_secs) {
            return fail("server.body_read_timeout_secs must be between 1 and 600".into());
        }
        // The card source's deadline must leave room for the stand-in answer and its write.
        if !(100..=600_000).contains(&self.server.request_timeout_ms)
            || self.server.request_timeout_ms <= self.policy.deadline_ms
        {
            return fail("server.request_timeout_ms must be 100 to 600000 and exceed policy.deadline_ms".into());
        }
        if !(1..=60_000).contains(&self.server.readiness_timeout_ms) {
            return fail("server.readiness_timeout_ms must be between 1 and 60000".into());
        }
        if !(1..=1_000_000).contains(&self.server.max_connections) || !(1..=100_000).contains(&self.ops.max_connections)
        {
            return fail("server.max_connections must be 1 to 1000000 and ops.max_connections 1 to 100000".into());
        }
        if !(1..=24 * 90).contains(&self.housekeeping.idempotency_retention_hours) {
            return fail("housekeeping.idempotency_retention_hours must be between 1 and 2160 (90 days)".into());
        }
        for (name, p) in std::iter::once(("default", &self.policy.default))
            .chain(self.policy.wallets.iter().map(|(k, v)| (k.as_str(), v)))
            .chain(self.policy.token_requestors.iter().map(|(k, v)| (k.as_str(), v)))
        {
            if p.step_up_below_score > 6 {
                return fail(format!("policy `{name}`: step_up_below_score must be 0 to 6"));
            }
            if p.max_live_tokens_per_card == 0 {
                return fail(format!("policy `{name}`: max_live_tokens_per_card must be at least 1"));
            }
            let methods = &p.step_up_methods;
            if let Some(twice) = methods.iter().enumerate().find(|(i, m)| methods[..*i].contains(m)) {
                return fail(format!("policy `{name}`: step_up_methods names {} twice", twice.1.as_str()));
            }
            if methods.contains(&StepUpMethodType::AppToApp) && p.app_id.as_ref().is_none_or(|id| id.trim().is_empty())
            {
                return fail(format!("policy `{name}`: step_up_methods offers APP_TO_APP, so app_id must be set"));
            }
            let phone = self.policy.customer_service_phone.as_ref();
            if methods.contains(&StepUpMethodType::CustomerService) && phone.is_none_or(|p| p.trim().is_empty()) {
                return fail(format!(
                    "policy `{name}`: step_up_methods offers CUSTOMER_SERVICE, so policy.customer_service_phone must be set"
                ));
            }
        }
        // The bridge is called for cards (kind processor_bridge), for decisions (decide), or both.
        if self.bridge_in_use() {
            let url = &self.card_source.processor_bridge.base_url;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return fail("card_source.processor_bridge.base_url must be an http(s) URL".into());
            }
        }
        if self.housekeeping.interval_secs == 0 {
            return fail("housekeeping.interval_secs must be positive".into());
        }
        self.validate_forwarding()?;
        self.validate_ops()?;
        self.log.otlp.validate()?;
        if self.environment == Environment::Production {
            self.validate_production()?;
        }
        Ok(())
    }

    fn validate_forwarding(&self) -> Result<(), ConfigError> {
        let fail = |msg: String| Err(ConfigError(msg));
        let tls = |key: &str, t: &OutboundTlsSettings| -> Result<(), ConfigError> {
            if t.client_cert_file.is_some() != t.client_key_file.is_some() {
                return Err(ConfigError(format!(
                    "{key}.tls: set both client_cert_file and client_key_file, or neither"
                )));
            }
            // Without a CA file the client would need the platform roots, which this build
            // does not carry: a client certificate goes with a private CA.
            if t.client_cert_file.is_some() && t.ca_file.is_none() {
                return Err(ConfigError(format!("{key}.tls: a client certificate needs ca_file")));
            }
            Ok(())
        };
        let url = |key: &str, u: &str| -> Result<(), ConfigError> {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(ConfigError(format!("{key} must be an http(s) URL")));
            }
            Ok(())
        };
        if self.processor.body_limit_bytes < 1024 || self.processor.body_limit_bytes > 64 * 1024 * 1024 {
            return fail("processor.body_limit_bytes must be between 1024 and 67108864".into());
        }
        if self.processor.max_batch_events == 0 {
            return fail("processor.max_batch_events must be at least 1".into());
        }
        for (key, d) in [
            ("forwarding.tmp_api", &self.forwarding.tmp_api),
            ("forwarding.lifecycle_api", &self.forwarding.lifecycle_api),
        ] {
            url(&format!("{key}.base_url"), &d.base_url)?;
            tls(key, &d.tls)?;
        }
        if self.forwarding.public_key_ttl_secs == 0 {
            return fail("forwarding.public_key_ttl_secs must be positive".into());
        }
        let r = &self.relay;
        if r.concurrency == 0 || r.concurrency > 1024 {
            return fail("relay.concurrency must be between 1 and 1024".into());
        }
        if r.poll_interval_ms == 0 || r.request_timeout_ms == 0 || r.stats_interval_secs == 0 {
            return fail("relay.poll_interval_ms, request_timeout_ms and stats_interval_secs must be positive".into());
        }
        // A lease shorter than a delivery could expire mid-flight and let another process
        // send the same row at the same time.
        if r.lease_secs * 1000 < 2 * r.request_timeout_ms + 1000 {
            return fail("relay.lease_secs must exceed twice relay.request_timeout_ms by at least a second".into());
        }
        if r.retry_schedule_ms.is_empty() {
            return fail("relay.retry_schedule_ms must list at least one delay".into());
        }
        if r.jitter_percent > 50 {
            return fail("relay.jitter_percent must be at most 50".into());
        }
        for (i, sink) in self.sinks.iter().enumerate() {
            if sink.name.is_empty() || self.sinks.iter().filter(|s| s.name == sink.name).count() > 1 {
                return fail(format!("sinks[{i}].name must be set and unique"));
            }
            url(&format!("sinks[{i}].url"), &sink.url)?;
            if sink.hmac_secrets.is_empty() {
                return fail(format!("sinks[{i}].hmac_secrets must hold at least one secret"));
            }
            tls(&format!("sinks[{i}]"), &sink.tls)?;
        }
        Ok(())
    }

    fn validate_ops(&self) -> Result<(), ConfigError> {
        let ops = &self.ops;
        for (i, digest) in ops.api_tokens.iter().enumerate() {
            let d = digest.trim();
            if d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError(format!(
                    "ops.api_tokens[{i}] must be the SHA-256 digest of a token (64 hex characters), \
                     not the token: `tmp-adapter ops token` prints both"
                )));
            }
        }
        let rate = &ops.rate_limit;
        if !(1..=1_000_000).contains(&rate.requests_per_minute) || !(1..=100_000).contains(&rate.burst) {
            return Err(ConfigError(
                "ops.rate_limit.requests_per_minute must be 1 to 1000000 and ops.rate_limit.burst 1 to 100000".into(),
            ));
        }
        if !(1..=60_000).contains(&ops.tmp_request_timeout_ms) {
            return Err(ConfigError("ops.tmp_request_timeout_ms must be between 1 and 60000".into()));
        }
        if !ops.mtls.subjects.is_empty() && ops.tls.as_ref().and_then(|t| t.client_ca_file.as_ref()).is_none() {
            return Err(ConfigError("ops.mtls.subjects needs ops.tls with client_ca_file".into()));
        }
        for (subject, scopes) in &ops.mtls.subjects {
            if subject.trim().is_empty() {
                return Err(ConfigError("ops.mtls.subjects: a subject must not be empty".into()));
            }
            if scopes.is_empty() {
                return Err(ConfigError(format!("ops.mtls.subjects.{subject} must list at least one scope")));
            }
        }
        if ops.enabled {
            ops.listen_address()?;
            if ops.port != 0 && ops.port == self.server.port {
                return Err(ConfigError(
                    "ops.port must differ from server.port (the ops API has its own listener)".into(),
                ));
            }
        }
        Ok(())
    }

    /// Production refuses everything that only makes sense on a developer's machine.
    fn validate_production(&self) -> Result<(), ConfigError> {
        if self.keys.generate_missing_in.is_some() {
            return Err(ConfigError(
                "production: keys.generate_missing_in must be unset (development keys are refused)".into(),
            ));
        }
        if self.auth.hmac_secrets.iter().any(is_development_secret) {
            return Err(ConfigError("production: auth.hmac_secrets holds the development secret".into()));
        }
        if self.card_source.processor_bridge.hmac_secret.as_ref().is_some_and(is_development_secret) {
            return Err(ConfigError(
                "production: card_source.processor_bridge.hmac_secret is the development secret".into(),
            ));
        }
        let outbound = [
            ("processor.hmac_secrets", &self.processor.hmac_secrets),
            ("forwarding.tmp_api.hmac_secrets", &self.forwarding.tmp_api.hmac_secrets),
            ("forwarding.lifecycle_api.hmac_secrets", &self.forwarding.lifecycle_api.hmac_secrets),
        ];
        let sinks = self.sinks.iter().enumerate().map(|(i, sink)| (i, &sink.hmac_secrets));
        for (key, secrets) in outbound {
            if secrets.iter().any(is_development_secret) {
                return Err(ConfigError(format!("production: {key} holds the development secret")));
            }
        }
        for (i, secrets) in sinks {
            if secrets.iter().any(is_development_secret) {
                return Err(ConfigError(format!("production: sinks[{i}].hmac_secrets holds the development secret")));
            }
        }
        // Parsed, not pattern-matched: `DEBUG`, `5` or `tmp_adapter=trace` are all debug-or-finer.
        let filter = tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|_| ConfigError("log.level is not a valid filter directive".into()))?;
        if filter.max_level_hint().is_none_or(|level| level > tracing::level_filters::LevelFilter::INFO) {
            return Err(ConfigError("production: log.level must not enable debug or trace".into()));
        }
        if self.bridge_in_use() {
            let bridge = &self.card_source.processor_bridge;
            if !bridge.base_url.starts_with("https://") {
                return Err(ConfigError(
                    "production: card_source.processor_bridge.base_url must be https (PANs and CVCs cross it)".into(),
                ));
            }
            if bridge.hmac_secret.is_none() {
                return Err(ConfigError(
                    "production: card_source.processor_bridge.hmac_secret must be set (the bridge must be able to \
                     tell the adapter's calls from anyone else's)"
                        .into(),
                ));
            }
        }
        if self.policy.stand_in_decision == tmp_protocol::enums::Decision::Approved
            && !self.policy.stand_in_approved_acknowledged
        {
            return Err(ConfigError(
                "production: policy.stand_in_decision APPROVED approves blocked, closed and unknown cards and skips \
                 the CVC requirement whenever the card source fails; set policy.stand_in_approved_acknowledged: true \
                 to mean it"
                    .into(),
            ));
        }
        self.validate_production_remotes()?;
        if self.server.tls.is_none() && !self.server.tls_terminated_by_proxy {
            return Err(ConfigError(
                "production: server.tls is unset: serve HTTPS, or set server.tls_terminated_by_proxy: true when a \
                 proxy in front terminates TLS"
                    .into(),
            ));
        }
        let ops = &self.ops;
        let ops_on_loopback = ops.listen_address().is_ok_and(|a| a.ip().is_loopback());
        if ops.enabled && ops.tls.is_none() && !ops.tls_terminated_by_proxy && !ops_on_loopback {
            return Err(ConfigError(
                "production: the ops listener is reachable beyond this host without TLS: set ops.tls, or \
                 ops.tls_terminated_by_proxy: true"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Production: every remote the adapter will call for real is HTTPS, not this host, and
    /// signed — the placeholder TMP address of the shipped configuration, a plain-http sink or
    /// unsigned forwarding are refused rather than discovered at the first event.
    fn validate_production_remotes(&self) -> Result<(), ConfigError> {
        let remote = |key: &str, url: &str, secrets: &[WebhookSecret]| -> Result<(), ConfigError> {
            if !url.starts_with("https://") {
                return Err(ConfigError(format!("production: {key}.base_url must be https")));
            }
            if is_loopback_url(url) {
                return Err(ConfigError(format!(
                    "production: {key}.base_url points at this host ({url}): set Verestro's address"
                )));
            }
            if secrets.is_empty() {
                return Err(ConfigError(format!(
                    "production: {key}.hmac_secrets must hold the secret requests are signed with"
                )));
            }
            Ok(())
        };
        let ingest = !self.processor.hmac_secrets.is_empty();
        // The ops API calls TMP too (tokens, push provisioning, token actions).
        if (ingest && self.forwarding.approach == Approach::External) || self.ops.enabled {
            let tmp = &self.forwarding.tmp_api;
            remote("forwarding.tmp_api", &tmp.base_url, &tmp.hmac_secrets)?;
        }
        if ingest && self.forwarding.approach == Approach::Datacore {
            let lifecycle = &self.forwarding.lifecycle_api;
            remote("forwarding.lifecycle_api", &lifecycle.base_url, &lifecycle.hmac_secrets)?;
        }
        for (i, sink) in self.sinks.iter().enumerate() {
            if !sink.url.starts_with("https://") {
                return Err(ConfigError(format!(
                    "production: sinks[{i}].url must be https (activation codes and token events cross it)"
                )));
            }
        }
        Ok(())
    }

    pub fn listen_address(&self) -> Result<SocketAddr, ConfigError> {
        format!("{}:{}", self.server.host, self.server.port)
            .parse()
            .map_err(|_| ConfigError("server.host and server.port do not form a socket address".into()))
    }

    /// Whether `RUST_LOG` may replace `log.level` (not in production, whose level is checked).
    pub fn allows_log_override(&self) -> bool {
        self.environment != Environment::Production
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.policy.deadline_ms)
    }

    /// Whether the adapter calls the processor bridge: for cards (`kind: processor_bridge`),
    /// for decisions (`decide`), or both.
    pub fn bridge_in_use(&self) -> bool {
        self.card_source.kind == CardSourceKind::ProcessorBridge || self.card_source.processor_bridge.decide
    }
}

/// Whether `secret` is a development secret, however it was written (with or without the
/// `whsec_` prefix or padding): the decoded bytes are compared.
fn is_development_secret(secret: &WebhookSecret) -> bool {
    DEVELOPMENT_HMAC_SECRETS
        .iter()
        .filter_map(|dev| WebhookSecret::parse(dev).ok())
        .any(|dev| dev.expose() == secret.expose())
}

/// Whether an http(s) URL names this host: `localhost` (or a name under it) or a loopback
/// address.
fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_recognised() {
        for url in [
            "http://127.0.0.1:9100",
            "https://localhost/x",
            "https://LOCALHOST.:8443",
            "https://api.localhost",
            "https://[::1]:9100/tmp-api",
            "https://user:pw@127.0.0.2",
            "https://0.0.0.0",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in ["https://tmp.verestro.example", "https://10.0.0.7:443", "https://localhost.example.com"] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let (secret, whsec) = WebhookSecret::generate();
        let destination = DestinationSettings {
            base_url: "https://tmp.example".into(),
            hmac_secrets: vec![secret],
            tls: OutboundTlsSettings::default(),
        };
        let printed = format!("{destination:?}");
        assert!(!printed.contains(&whsec) && printed.contains("1 secret"), "{printed}");
    }

    /// Parses `json` as `T` the way the loader does, naming the key at fault.
    fn load<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, String> {
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(json))
            .map_err(|e| format!("`{}`: {}", e.path(), e.inner()))
    }

    #[test]
    fn typed_values_are_parsed_once_at_load_and_a_bad_one_names_its_key() {
        let (_, whsec) = WebhookSecret::generate();
        let auth: AuthSettings =
            load(&format!(r#"{{"mode": "hmac", "hmac_secrets": ["{whsec}"], "timestamp_tolerance_secs": 300}}"#))
                .unwrap();
        assert_eq!(auth.hmac_secrets.len(), 1);
        let error =
            load::<AuthSettings>(r#"{"mode": "hmac", "hmac_secrets": ["whsec_!!!"], "timestamp_tolerance_secs": 300}"#)
                .unwrap_err();
        assert!(error.starts_with("`hmac_secrets[0]`: webhook secret is not valid base64"), "{error}");

        let subjects: OpsMtlsSettings =
            load(r#"{"subjects": {"back-office": ["tokens:read", "audit:read"]}}"#).unwrap();
        assert_eq!(subjects.subjects["back-office"], [Scope::TokensRead, Scope::AuditRead].into());
        let error = load::<OpsMtlsSettings>(r#"{"subjects": {"back-office": ["tokens:delete"]}}"#).unwrap_err();
        assert!(error.starts_with("`subjects.back-office[0]`: `tokens:delete` is not a scope"), "{error}");
    }

    #[test]
    fn a_setting_without_what_it_needs_is_refused_at_load() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../config"));
        let variables = config::Environment::with_prefix("TMP_ADAPTER_UNSET_IN_THIS_TEST");
        let local = Settings::load_with(dir, "local", variables).unwrap();
        assert_eq!(local.policy.default.step_up_methods.len(), 5, "config/local.yaml offers every method");
        let refused = |change: fn(&mut Settings)| {
            let mut settings = local.clone();
            change(&mut settings);
            settings.validate().unwrap_err().0
        };
        let error = refused(|s| s.policy.default.app_id = None);
        assert!(error.contains("APP_TO_APP, so app_id must be set"), "{error}");
        let error = refused(|s| s.policy.default.app_id = Some(tmp_protocol::fields::FreeText::parse(" ").unwrap()));
        assert!(error.contains("APP_TO_APP, so app_id must be set"), "{error}");
        let error = refused(|s| s.policy.customer_service_phone = None);
        assert!(error.contains("policy.customer_service_phone must be set"), "{error}");
        let error = refused(|s| s.policy.default.step_up_methods.push(StepUpMethodType::OtpSms));
        assert!(error.contains("names OTP_SMS twice"), "{error}");
        // Cards imported here, decisions by the issuer's engine behind the bridge's address.
        let mut engine = local.clone();
        engine.card_source.processor_bridge.decide = true;
        engine.validate().expect("decide with the local registry");
        let error = refused(|s| {
            s.card_source.processor_bridge.decide = true;
            s.card_source.processor_bridge.base_url = "engine.internal".into();
        });
        assert!(error.contains("base_url must be an http(s) URL"), "{error}");
        let mut none = local.clone();
        none.policy.default.step_up_methods.clear();
        none.validate().expect("an issuer may list no method: the wallet then offers codes by the contact");
        // Span export: off by default, an http(s) collector when on.
        assert!(local.log.otlp.exporter().is_none(), "nothing is exported unless asked");
        let error = refused(|s| s.log.otlp.endpoint = "collector:4318".into());
        assert!(error.contains("log.otlp.endpoint must be empty (no export) or an http"), "{error}");
        let error = refused(|s| s.log.otlp.flush_interval_ms = 0);
        assert!(error.contains("log.otlp.flush_interval_ms"), "{error}");
        let mut exported = local.clone();
        exported.log.otlp.endpoint = "http://127.0.0.1:4318".into();
        exported.validate().expect("a local collector");
        assert_eq!(exported.log.otlp.exporter().map(|e| e.service_name), Some("tmp-adapter".to_owned()));
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("postgres://app:s3cret@db/x"), "postgres://app:***@db/x");
        assert_eq!(
            redact_url("postgres://db/x?user=app&password=s3cret&sslmode=require"),
            "postgres://db/x?user=app&password=***&sslmode=require"
        );
        assert_eq!(redact_url("sqlite://./data/a.db"), "sqlite://./data/a.db");
    }

    #[test]
    fn development_secrets_are_recognised_however_written() {
        let dev = DEVELOPMENT_HMAC_SECRETS[0];
        let parsed = |text: &str| WebhookSecret::parse(text).unwrap();
        assert!(is_development_secret(&parsed(dev)));
        assert!(is_development_secret(&parsed(dev.trim_start_matches("whsec_"))));
        assert!(is_development_secret(&parsed(dev.trim_start_matches("whsec_").trim_end_matches('='))));
        let (fresh, _) = WebhookSecret::generate();
        assert!(!is_development_secret(&fresh));
    }
}
