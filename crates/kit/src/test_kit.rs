//! [`TestKit`]: the kit wired together in this process, on ports chosen by the system — a
//! `mock-tmp` (TMP + DataCore), a `tmp-adapter` forwarding to it (SQLite in a temporary
//! directory, or a fresh database on the PostgreSQL server of `database_url`), and a webhook sink
//! standing in for the issuer's own systems. Every secret and key is generated for the run.
//! `tmp-kit check`, `load`, `soak` and the end-to-end tests all run against one of these; the
//! fixture cards of the conformance profile go in through processor ingest
//! ([`crate::harness::spawned_session`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use anyhow::{Context, bail};
use mock_tmp::MockConfig;
use serde_json::json;
use sqlx::Connection;
use tmp_adapter::config::{Approach, JweKeySettings, Settings, SinkSettings};
use tmp_adapter::domain::policy::{ContactDisclosure as AdapterDisclosure, PolicySettings, RequestorPolicy};
use tmp_adapter::keys::KeyMaterial;
use tmp_adapter::startup::Application;
use tmp_conformance::client::Secrets;
use tmp_conformance::harness::OpsAccess;
use tmp_conformance::profile::{
    CardFixture, ContactDisclosure, ForwardingProfile, PolicyEntry, PolicyProfile, Profile,
};
use tmp_protocol::enums::StepUpMethodType;
use tmp_protocol::fields::{FreeText, Phone};
use tmp_protocol::sensitive::{Expiry, Pan};
use tmp_protocol::webhook::WebhookSecret;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::engine::DecisionEngine;
use crate::sink::Sink;

/// The test cards of a spawned kit: well-known test PANs, never real ones.
const FIXTURES: [(&str, &str, &str); 8] = [
    ("active", "4111111111111111", "12/30"),
    ("cap", "4242424242424242", "12/30"),
    ("blocked", "5555555555554444", "12/30"),
    ("closed", "4012888888881881", "12/30"),
    ("expired", "5105105105105100", "01/20"),
    ("lockout", "4000056655665556", "12/30"),
    ("failing", "5200828282828210", "12/30"),
    ("unknown", "6011111111111117", "12/30"),
];

/// What to start.
#[derive(Debug, Clone)]
pub struct KitOptions {
    pub approach: Approach,
    /// `None`: SQLite in a temporary directory. A PostgreSQL URL: a fresh database on that
    /// server, dropped at the end.
    pub database_url: Option<String>,
    /// The mock's journal size (`GET /_mock/v1/requests`); its configured default when `None`.
    /// Load and soak runs read every delivery from it.
    pub mock_journal_capacity: Option<usize>,
    /// Where the adapter's keys are (generated there when missing); a directory of the run's
    /// own when `None`. Tests share one: RSA key generation is slow.
    pub key_dir: Option<std::path::PathBuf>,
    /// Whether the adapter asks an issuer's decision engine the kit serves (the processor
    /// bridge's decision hook beside the local registry): the conformance suite's
    /// `decision-engine` capability. Load and soak runs leave it out: it adds a call to every
    /// card verification.
    pub decision_engine: bool,
}

impl KitOptions {
    pub fn new(approach: Approach) -> KitOptions {
        KitOptions { approach, database_url: None, mock_journal_capacity: None, key_dir: None, decision_engine: true }
    }
}

struct RunningAdapter {
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A running kit: mock, adapter and sink.
pub struct TestKit {
    pub adapter_url: String,
    pub mock_url: String,
    /// The adapter's ops API, with a key holding every scope and one holding `tokens:read` only
    /// (`None` when a customisation turned the ops listener off).
    pub ops: Option<OpsAccess>,
    pub sink: Sink,
    /// The issuer's decision engine the adapter asks ([`KitOptions::decision_engine`]).
    pub engine: Option<DecisionEngine>,
    pub profile: Profile,
    pub secrets: Secrets,
    settings: Settings,
    adapter: Mutex<Option<RunningAdapter>>,
    mock: Mutex<Option<mock_tmp::MockHandle>>,
    database: Database,
    _dir: tempfile::TempDir,
}

enum Database {
    Sqlite,
    Postgres(ScratchDatabase),
}

impl TestKit {
    pub async fn start(options: &KitOptions) -> anyhow::Result<TestKit> {
        Self::start_with(options, |_| {}, |_| {}).await
    }

    /// Starts the kit with the adapter's settings and the mock's configuration changed by
    /// `adapter` and `mock` after the kit's own wiring (a test's TLS, approach, faults …).
    pub async fn start_with(
        options: &KitOptions,
        adapter: impl FnOnce(&mut Settings),
        mock: impl FnOnce(&mut MockConfig),
    ) -> anyhow::Result<TestKit> {
        let dir = tempfile::Builder::new().prefix("tmp-kit-").tempdir()?;
        let (database_url, database) = match &options.database_url {
            None => (format!("sqlite://{}", dir.path().join("adapter.db").display()), Database::Sqlite),
            Some(admin_url) if admin_url.starts_with("postgres") => {
                let database = ScratchDatabase::create(admin_url, "tmp_kit").await?;
                (database.url.clone(), Database::Postgres(database))
            }
            Some(other) => bail!(
                "--database-url must be a postgres:// URL (SQLite is the default), not {}",
                tmp_adapter::config::redact_url(other)
            ),
        };

        let (tmp_secret, _) = WebhookSecret::generate();
        let (processor_secret, _) = WebhookSecret::generate();
        let (issuer_secret, _) = WebhookSecret::generate();
        let sink = Sink::start().await?;
        // Held from here until the mock serves on it: the adapter is configured with its address
        // first, and a port that was let go in between could be taken by another process.
        let mock_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let mock_url = format!("http://127.0.0.1:{}", mock_listener.local_addr()?.port());

        let key_dir = options.key_dir.clone().unwrap_or_else(|| dir.path().join("keys"));
        let mut settings = adapter_settings(dir.path(), &key_dir, &database_url, options.approach, &mock_url)?;
        settings.auth.hmac_secrets = vec![tmp_secret.clone()];
        settings.processor.hmac_secrets = vec![processor_secret.clone()];
        settings.forwarding.tmp_api.hmac_secrets = vec![issuer_secret.clone()];
        settings.forwarding.lifecycle_api.hmac_secrets = vec![issuer_secret.clone()];
        let jwk_file = dir.path().join("sink-otp.jwk.json");
        std::fs::write(&jwk_file, &sink.otp_jwk_json)?;
        settings.sinks = vec![SinkSettings {
            name: "sms-gateway".into(),
            url: sink.url.clone(),
            hmac_secrets: vec![sink.secret.clone()],
            event_types: Vec::new(),
            otp_jwk_file: Some(jwk_file),
            tls: Default::default(),
        }];
        let engine = match options.decision_engine {
            true => {
                let engine = DecisionEngine::start().await?;
                let bridge = &mut settings.card_source.processor_bridge;
                bridge.base_url = engine.url.clone();
                bridge.hmac_secret = Some(engine.secret.clone());
                bridge.decide = true;
                Some(engine)
            }
            false => None,
        };
        adapter(&mut settings);
        if let Some(engine) = &engine {
            // A late answer comes well after the deadline the adapter keeps, as the test's own
            // settings left it.
            engine.answer_late_by(Duration::from_millis(settings.policy.deadline_ms + 2_000));
        }
        settings.validate().context("the spawned adapter's settings")?;

        let app = Application::build(settings.clone()).await.context("the adapter did not start")?;
        // A restart comes back on the same ports.
        settings.server.port = app.port();
        let ops = match app.ops_port() {
            Some(port) => {
                settings.ops.port = port;
                Some(OpsAccess {
                    url: format!("http://127.0.0.1:{port}"),
                    key: create_api_key(&settings, "tmp-kit: every scope", &SCOPES).await?,
                    read_only_key: create_api_key(&settings, "tmp-kit: read only", &["tokens:read"]).await?,
                })
            }
            None => None,
        };
        let scheme = if settings.server.tls.is_some() { "https" } else { "http" };
        let adapter_url = format!("{scheme}://127.0.0.1:{}", app.port());
        let adapter = RunningAdapter { handle: app.handle(), task: tokio::spawn(app.run_until_stopped()) };

        let mut mock_config = MockConfig::defaults();
        mock_config.issuer.base_url = adapter_url.clone();
        mock_config.issuer.hmac_secrets = vec![tmp_secret.clone()];
        mock_config.auth.hmac_secrets = vec![issuer_secret.clone()];
        mock_config.sender.backoff_initial_ms = 20;
        mock_config.sender.backoff_max_ms = 200;
        if let Some(capacity) = options.mock_journal_capacity {
            mock_config.journal.capacity = capacity;
        }
        mock(&mut mock_config);
        let mock_url = match mock_config.server.tls {
            Some(_) => mock_url.replacen("http://", "https://", 1),
            None => mock_url,
        };
        let mock = mock_tmp::start_on(mock_config, mock_listener).await.context("the mock did not start")?;

        let keys = KeyMaterial::load(&settings)?;
        let profile = fixture_profile(&keys, &settings)?;
        Ok(TestKit {
            adapter_url,
            mock_url,
            ops,
            sink,
            engine,
            profile,
            secrets: Secrets { tmp: Some(tmp_secret), processor: Some(processor_secret), issuer: Some(issuer_secret) },
            settings,
            adapter: Mutex::new(Some(adapter)),
            mock: Mutex::new(Some(mock)),
            database,
            _dir: dir,
        })
    }

    /// The spawned adapter's settings (its keys, database, secrets).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The mock's listening address (for a proxy put in front of it).
    pub async fn mock_addr(&self) -> Option<std::net::SocketAddr> {
        self.mock.lock().await.as_ref().map(|mock| mock.addr())
    }

    /// Waits until the mock has no callback to the issuer in flight or scheduled.
    pub async fn mock_idle(&self) {
        if let Some(mock) = self.mock.lock().await.as_ref() {
            mock.wait_idle().await;
        }
    }

    /// Generates the keys a kit uses into `dir` (what [`KitOptions::key_dir`] names), for tests
    /// that share one set.
    pub fn generate_keys(dir: &Path) -> anyhow::Result<()> {
        let settings = adapter_settings(dir, dir, "sqlite://unused.db", Approach::External, "http://127.0.0.1:1")?;
        KeyMaterial::load(&settings).map(drop)
    }

    /// Stops the adapter abruptly: connections in flight are dropped, not drained (the relay
    /// still finishes the deliveries it has started, as a killed process's would be retried
    /// after their lease). The soak's "kill".
    pub async fn kill_adapter(&self) {
        if let Some(running) = self.adapter.lock().await.take() {
            running.handle.stop(false).await;
            let _ = running.task.await;
        }
    }

    /// Stops the adapter (in-flight work finishes), then starts it again on the same port and
    /// database — the restart the harness offers the forwarding cases.
    pub async fn stop_adapter(&self) -> anyhow::Result<()> {
        if let Some(running) = self.adapter.lock().await.take() {
            running.handle.stop(true).await;
            let _ = running.task.await;
        }
        Ok(())
    }

    pub async fn start_adapter(&self) -> anyhow::Result<()> {
        let mut slot = self.adapter.lock().await;
        if slot.is_some() {
            return Ok(());
        }
        // The port was just released; a moment may pass before the kernel lets it go.
        let mut last = None;
        for _ in 0..50 {
            match Application::build(self.settings.clone()).await {
                Ok(app) => {
                    *slot = Some(RunningAdapter { handle: app.handle(), task: tokio::spawn(app.run_until_stopped()) });
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(last.expect("tried").context("the adapter did not start again"))
    }

    /// Stops everything and drops a PostgreSQL database made for the run.
    pub async fn stop(&self) {
        let _ = self.stop_adapter().await;
        if let Some(mock) = self.mock.lock().await.take() {
            mock.stop().await;
        }
        self.sink.stop().await;
        if let Some(engine) = &self.engine {
            engine.stop().await;
        }
        if let Database::Postgres(database) = &self.database {
            database.drop_now().await;
        }
    }
}

/// The adapter's settings for a run: the embedded defaults (the `local` environment without a
/// file), keys in `keys` (generated when missing), two JWE keys (rotation), forwarding to the
/// mock, fast retries.
fn adapter_settings(
    dir: &Path,
    keys: &Path,
    database_url: &str,
    approach: Approach,
    mock_url: &str,
) -> anyhow::Result<Settings> {
    // The loader validates, and an adapter without secrets is invalid: start from a file that
    // holds placeholders, replaced by the run's generated secrets below.
    let config_dir = dir.join("config");
    std::fs::create_dir_all(&config_dir)?;
    let placeholder = WebhookSecret::generate().1;
    std::fs::write(config_dir.join("local.yaml"), format!("auth:\n  hmac_secrets: [\"{placeholder}\"]\n"))?;
    let never = config::Environment::with_prefix("TMP_KIT_NEVER_SET");
    let mut settings = Settings::load_with(&config_dir, "local", never)?;
    settings.database.url = database_url.to_owned();
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    settings.ops.enabled = true;
    settings.ops.host = "127.0.0.1".into();
    settings.ops.port = 0;
    settings.keys.generate_missing_in = Some(keys.to_path_buf());
    settings.keys.jwe = vec![
        JweKeySettings { kid: "conformance-1".into(), private_key_file: keys.join("jwe-1.pem") },
        JweKeySettings { kid: "conformance-2".into(), private_key_file: keys.join("jwe-2.pem") },
    ];
    settings.keys.data_keys.active = "data-1".into();
    settings.keys.data_keys.files = BTreeMap::from([("data-1".to_owned(), keys.join("data-1.hex"))]);
    settings.keys.fingerprint_key_file = keys.join("fingerprint.hex");
    settings.card_source.local_registry.cvk_file = keys.join("cvk.hex");
    settings.forwarding.approach = approach;
    settings.forwarding.tmp_api.base_url = mock_url.to_owned();
    settings.forwarding.lifecycle_api.base_url = mock_url.to_owned();
    settings.relay.enabled = true;
    settings.relay.poll_interval_ms = 50;
    settings.relay.retry_schedule_ms = vec![100, 200, 400, 800, 1000, 1000, 1000, 1000, 1000, 1000];
    settings.relay.jitter_percent = 0;
    // Short enough for ISS-CVC-009 to wait out, long enough for a case's lock to hold.
    settings.policy.cvc.lockout_window_secs = 4;
    // A device limit the velocity case can reach (each run's tokenizations name their own
    // devices, so no other case comes near it).
    settings.policy.default.max_tokenizations_per_device = 5;
    // Every step-up method, so the console and the journeys can try each (the shipped policy
    // offers the two codes: an app id and a call-centre number are the issuer's own).
    settings.policy.customer_service_phone = Some(Phone::parse(DEV_CUSTOMER_SERVICE_PHONE)?);
    for entry in std::iter::once(&mut settings.policy.default).chain(settings.policy.wallets.values_mut()) {
        entry.step_up_methods = StepUpMethodType::ALL.to_vec();
        entry.app_id = Some(FreeText::parse(DEV_APP_ID)?);
    }
    settings.housekeeping.interval_secs = 3600;
    Ok(settings)
}

/// The issuer app and call-centre number the local kit offers for step-up (example values).
pub const DEV_APP_ID: &str = "com.example.bank";
pub const DEV_CUSTOMER_SERVICE_PHONE: &str = "+48 22 000 00 00";

/// The profile of the spawned kit: the fixtures with the CVCs the adapter's CVK gives them.
fn fixture_profile(keys: &KeyMaterial, settings: &Settings) -> anyhow::Result<Profile> {
    let cards = FIXTURES.iter().map(|(name, pan, expiry)| {
        let card_id = (*name != "unknown").then(|| format!("card-{name}"));
        Ok((name.to_string(), Pan::parse(pan)?, Expiry::parse(expiry)?, card_id))
    });
    declared_profile(keys, settings, cards.collect::<anyhow::Result<Vec<_>>>()?)
}

/// A profile that declares what `settings` configure (policy, limits, retry schedule), with
/// `cards` (name, PAN, expiry, card id; no card id: a card the adapter must not know) and the
/// CVCs the adapter's CVK gives them.
pub fn declared_profile(
    keys: &KeyMaterial,
    settings: &Settings,
    cards: Vec<(String, Pan, Expiry, Option<String>)>,
) -> anyhow::Result<Profile> {
    let cvk = keys.cvk.as_ref().context("the adapter has no CVK (card_source.local_registry.cvk_file)")?;
    let cards = cards
        .into_iter()
        .map(|(name, pan, expiry, card_id)| {
            let cvc = card_id.is_some().then(|| cvk.cvc2(&pan, &expiry));
            (name, CardFixture { pan, expiry, cvc, card_id })
        })
        .collect();
    let profile = Profile {
        secret_env: tmp_conformance::profile::DEFAULT_SECRET_ENV.into(),
        processor_secret_env: tmp_conformance::profile::DEFAULT_PROCESSOR_SECRET_ENV.into(),
        issuer_secret_env: tmp_conformance::profile::DEFAULT_ISSUER_SECRET_ENV.into(),
        deadline_ms: settings.policy.deadline_ms,
        latency_requests: 50,
        cvc_max_attempts: settings.policy.cvc.max_attempts,
        cvc_lockout_window_secs: Some(settings.policy.cvc.lockout_window_secs),
        body_limit_bytes: settings.server.body_limit_bytes,
        policy: declared_policy(&settings.policy),
        forwarding: ForwardingProfile {
            retry_schedule_ms: Some(settings.relay.retry_schedule_ms.clone()),
            jitter_percent: settings.relay.jitter_percent.into(),
            poll_interval_ms: settings.relay.poll_interval_ms,
        },
        token_event_card_id: None,
        tls: None,
        cards,
    };
    profile.validate()?;
    Ok(profile)
}

/// The adapter's decision policy as a conformance profile declares it: the suite expects what
/// the kit is configured to do, never what it ships with.
pub fn declared_policy(policy: &PolicySettings) -> PolicyProfile {
    let entry = |p: &RequestorPolicy| PolicyEntry {
        require_cvc: Some(p.require_cvc),
        step_up_below_score: Some(p.step_up_below_score),
        max_live_tokens_per_card: Some(p.max_live_tokens_per_card),
        max_tokenizations_per_card: Some(p.max_tokenizations_per_card),
        max_tokenizations_per_device: Some(p.max_tokenizations_per_device),
        step_up_methods: Some(p.step_up_methods.clone()),
    };
    PolicyProfile {
        stand_in_decision: Some(policy.stand_in_decision),
        contact_disclosure: Some(match policy.contact_disclosure {
            AdapterDisclosure::StepUpOnly => ContactDisclosure::StepUpOnly,
            AdapterDisclosure::ApprovedAndStepUp => ContactDisclosure::ApprovedAndStepUp,
        }),
        default: Some(entry(&policy.default)),
        wallets: policy.wallets.iter().map(|(wallet, p)| (wallet.as_str().to_owned(), entry(p))).collect(),
        token_requestors: policy.token_requestors.iter().map(|(id, p)| (id.clone(), entry(p))).collect(),
    }
}

/// The fixture cards' processor events, for the cards of `profile` that have a card id:
/// issued, then blocked or closed where the fixture says.
pub fn fixture_events(run: &str, profile: &Profile) -> Vec<(String, serde_json::Value)> {
    let mut events = Vec::new();
    for (name, card) in &profile.cards {
        let Some(card_id) = card.card_id.clone() else { continue };
        let issued = json!({
            "id": format!("fixture-{run}-{name}-issued"),
            "cardId": card_id,
            "type": "card.issued",
            "occurredAt": "2026-01-01T00:00:00Z",
            "data": {"encryptedPayload": "@@payload0@@", "productCategory": "CONSUMER_DEBIT",
                     "cardholder": {"phone": "+48500100200", "email": "holder@example.com"}},
        });
        events.push((name.to_string(), issued));
        let change = match name.as_str() {
            "blocked" => Some(json!({"status": "BLOCKED", "reason": "LOST"})),
            "closed" => Some(json!({"status": "CLOSED", "reason": "CLOSED_BY_HOLDER"})),
            _ => None,
        };
        if let Some(data) = change {
            events.push((
                name.to_string(),
                json!({"id": format!("fixture-{run}-{name}-status"), "cardId": card_id, "type": "card.status_changed",
                       "occurredAt": "2026-01-01T00:00:01Z", "data": data}),
            ));
        }
    }
    events
}

const SCOPES: [&str; 5] = ["tokens:read", "tokens:write", "provisioning", "audit:read", "outbox:admin"];

/// An ops API key, stored (as its digest) the way `tmp-adapter apikey create` stores one.
async fn create_api_key(settings: &Settings, name: &str, scopes: &[&str]) -> anyhow::Result<Zeroizing<String>> {
    use tmp_adapter::store::{ApiKeyRecord, OpsAuditRecord};
    let key = tmp_adapter::ops::api_keys::NewApiKey::generate();
    let store = tmp_adapter::store::connect(&settings.database.url, 1).await?;
    let now = time::OffsetDateTime::now_utc();
    let record = ApiKeyRecord {
        id: key.id.clone(),
        name: name.to_owned(),
        secret_digest: key.digest.clone(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        rate_limit_per_minute: None,
        created_at: now,
        revoked_at: None,
    };
    let audit = OpsAuditRecord {
        id: uuid::Uuid::new_v4(),
        at: now,
        actor: "cli:tmp-kit".into(),
        action: "apikey.create".into(),
        target: Some(key.id.clone()),
        card_id: None,
        reason: Some("a kit started by tmp-kit".into()),
        outcome: "ok".into(),
        status: 0,
        correlation_id: uuid::Uuid::new_v4().to_string(),
    };
    store.create_api_key(&record, &audit).await?;
    Ok(key.key)
}

/// A database made for one run on the PostgreSQL server of `admin_url`, dropped by
/// [`ScratchDatabase::drop_now`] (a run that is killed leaves it behind: its name says what made it).
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl ScratchDatabase {
    /// Creates `{prefix}_{random hex}`.
    pub async fn create(admin_url: &str, prefix: &str) -> anyhow::Result<ScratchDatabase> {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("cannot connect to {}", tmp_adapter::config::redact_url(admin_url)))?;
        // The name is the caller's constant prefix and hex digits: safe to splice.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut admin).await?;
        let _ = admin.close().await;
        Ok(ScratchDatabase { admin_url: admin_url.to_owned(), url: with_database(admin_url, &name), name })
    }

    /// Drops the database, closing whatever is still connected to it.
    pub async fn drop_now(&self) {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
            let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
            let _ = admin.close().await;
        }
    }
}

/// `admin_url` with its database replaced by `database` (query string kept).
pub fn with_database(admin_url: &str, database: &str) -> String {
    let (base, query) = admin_url.split_once('?').map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let server = base[authority..].find('/').map_or(base, |slash| &base[..authority + slash]);
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_is_replaced_in_the_url() {
        assert_eq!(super::with_database("postgres://p@h:5432/postgres", "x"), "postgres://p@h:5432/x");
        assert_eq!(super::with_database("postgres://p@h?sslmode=disable", "x"), "postgres://p@h/x?sslmode=disable");
    }
}
