//! Wiring: configuration → store, keys, card source, policy → the HTTP server and its
//! background housekeeping. `Application::build` binds the listener (port 0 in tests) and
//! reports the real port before anything is served.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::web::{self, Data};
use actix_web::{App, HttpServer};
use anyhow::Context;
use time::OffsetDateTime;
use tmp_protocol::webhook::Verifier;

use crate::card_source::{CardSource, DecisionHook, LocalRegistry, ProcessorBridge};
use crate::config::{CardSourceKind, OpsSettings, Settings};
use crate::domain::verification::CardVerifier;
use crate::http::ops::{self, OpsState};
use crate::http::{AppState, Credentials};
use crate::http::{middleware, routes};
use crate::keys::KeyMaterial;
use crate::metrics::Metrics;
use crate::outbound::TmpApiClient;
use crate::relay::Relay;
use crate::store::{self, DynStore};
use tmp_edge::admit::ClientCertificate;
use tmp_edge::error::ApiError;
use tmp_edge::tls::ReloadableServerTls;

pub struct Application {
    port: u16,
    server: Server,
    /// The ops API's listener (`ops.enabled`): its port and server.
    ops: Option<(u16, Server)>,
    housekeeping: tokio::task::JoinHandle<()>,
    relay: Option<(tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
    reloader: Reloader,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        tmp_edge::tls::install_crypto_provider();
        check_open_files(&settings);
        let database = &settings.database;
        let store = store::connect_with(&database.url, database.max_connections, database.group_commit.settings())
            .await
            .context("cannot open the database")?;
        store.migrate().await.context("cannot migrate the database")?;
        let window = time::Duration::seconds(settings.policy.velocity_window_secs as i64);
        let caught_up = store
            .backfill_tokenization_attempts(OffsetDateTime::now_utc() - window)
            .await
            .context("cannot bring the velocity count up to date")?;
        if caught_up > 0 {
            tracing::info!(caught_up, "velocity count: tokenizations audited by an earlier version recorded");
        }
        let keys = Arc::new(KeyMaterial::load(&settings)?);
        if keys.uses_development_keys {
            tracing::warn!("RUNNING WITH DEVELOPMENT KEYS: never send real card data to this instance");
        }
        let metrics = Metrics::new();
        let (source, hook) = card_source(&settings, &store, &keys)?;
        let credentials = credentials(&settings, &keys);
        let verifier = CardVerifier::new(source, hook, store.clone(), settings.policy.clone(), metrics.clone());
        let housekeeping = tokio::spawn(housekeeping(store.clone(), settings.clone()));
        let relay_wakeup = Arc::new(crate::relay::Wakeup::default());
        let exporter = exporter(&settings)?;
        let (relay, relay_task) = if settings.relay.enabled {
            let relay = Relay::new(&settings, store.clone(), keys.clone(), metrics.clone(), relay_wakeup.clone())?;
            let relay = Arc::new(relay.with_exporter(exporter.clone()));
            let (stop, stopped) = tokio::sync::watch::channel(false);
            (Some(relay.clone()), Some((stop, tokio::spawn(relay.run(stopped)))))
        } else {
            (None, None)
        };

        let listener = TcpListener::bind(settings.listen_address()?)
            .with_context(|| format!("cannot listen on {}:{}", settings.server.host, settings.server.port))?;
        let port = listener.local_addr()?.port();
        let (tls, issuer_tls) = reloadable_tls(settings.server.tls.as_ref()).context("server.tls")?;
        let shutdown_timeout = settings.server.shutdown_timeout_secs;
        let state = Data::new(AppState {
            settings,
            store,
            keys,
            credentials: std::sync::RwLock::new(Arc::new(credentials)),
            relay_wakeup,
            verifier,
            metrics,
            exporter,
            private_key_slots: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )),
        });

        let ops = if state.settings.ops.enabled { Some(OpsListener::bind(&state)?) } else { None };
        if ops.is_some()
            && state.settings.environment == crate::config::Environment::Production
            && state.settings.ops.web_push_callback_hosts.is_empty()
        {
            tracing::warn!(
                "ops.web_push_callback_hosts is empty: a web push may send the cardholder back to any host; \
                 list the issuer's own"
            );
        }
        let reloader = Reloader {
            state: state.clone(),
            relay,
            ops: ops.as_ref().map(|o| o.state.clone()),
            issuer_tls,
            ops_tls: ops.as_ref().and_then(|o| o.tls_handle.clone()),
            source: Arc::new(std::sync::RwLock::new(None)),
            one_at_a_time: Arc::new(tokio::sync::Mutex::new(())),
        };
        let ops = ops.map(|o| o.serve(state.clone(), reloader.clone(), shutdown_timeout)).transpose()?;
        let state_max_connections = state.settings.server.max_connections;
        let peers = tmp_edge::peers::PeerConnections::new(state.settings.server.max_connections_per_peer);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(from_fn(middleware::observe))
                .configure(routes::configure)
                .default_service(web::to(|| async { Err::<actix_web::HttpResponse, _>(ApiError::NotFound) }))
        })
        .shutdown_timeout(shutdown_timeout)
        .disable_signals()
        .workers(ISSUER_API_WORKERS.get())
        .max_connections(state_max_connections.div_ceil(ISSUER_API_WORKERS.get()).max(1))
        .on_connect(move |connection, extensions| {
            use actix_tls::accept::rustls_0_23::TlsStream;
            peers.on_connect(connection, extensions);
            if let Some(tls) = connection.downcast_ref::<TlsStream<actix_web::rt::net::TcpStream>>() {
                let (_, session) = tls.get_ref();
                // rustls has already verified any certificate against the client CA.
                if session.peer_certificates().is_some_and(|certs| !certs.is_empty()) {
                    extensions.insert(ClientCertificate);
                }
            }
        });
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config)?,
            None => server.listen(listener)?,
        }
        .run();
        tracing::info!(port, "tmp-adapter listening");
        Ok(Application { port, server, ops, housekeeping, relay: relay_task, reloader })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Replaces keys and secrets without a restart (the daemon calls it on `SIGHUP`).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The ops API's port, when `ops.enabled`.
    pub fn ops_port(&self) -> Option<u16> {
        self.ops.as_ref().map(|(port, _)| *port)
    }

    /// Stops the server from another task (tests); otherwise SIGTERM or SIGINT does it, draining
    /// the requests in flight in both cases.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped; in-flight requests finish within `server.shutdown_timeout_secs`,
    /// then the relay finishes the deliveries it has in flight (claims nothing new).
    /// The ops listener stops with the Issuer API.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let ops = self.ops.map(|(_, server)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        // actix would stop at once on SIGINT (Ctrl-C): both signals drain instead.
        let handle = self.server.handle();
        let signals = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing the requests in flight (server.shutdown_timeout_secs)");
            handle.stop(true).await;
        });
        let result = self.server.await;
        signals.abort();
        if let Some((handle, ops)) = ops {
            handle.stop(true).await;
            let _ = ops.await;
        }
        self.housekeeping.abort();
        if let Some((stop, relay)) = self.relay {
            let _ = stop.send(true);
            let _ = relay.await;
        }
        tracing::info!("tmp-adapter stopped");
        result
    }
}

/// A listener's TLS config, and the handle a reload replaces its certificate, key and client CA
/// with.
fn reloadable_tls(
    tls: Option<&crate::config::TlsSettings>,
) -> anyhow::Result<(Option<rustls::ServerConfig>, Option<ReloadableServerTls>)> {
    Ok(match tls {
        Some(tls) => {
            let (config, handle) = tmp_edge::tls::reloadable_server_config(tls.edge())?;
            (Some(config), Some(handle))
        }
        None => (None, None),
    })
}

/// The ops API's listener, bound, before it serves (the [`Reloader`] is built in between).
struct OpsListener {
    listener: TcpListener,
    port: u16,
    state: Data<OpsState>,
    tls: Option<rustls::ServerConfig>,
    tls_handle: Option<ReloadableServerTls>,
}

impl OpsListener {
    fn bind(state: &AppState) -> anyhow::Result<OpsListener> {
        let settings = &state.settings;
        let ops_settings: &OpsSettings = &settings.ops;
        let listener = TcpListener::bind(ops_settings.listen_address()?)
            .with_context(|| format!("cannot listen on {}:{} (ops)", ops_settings.host, ops_settings.port))?;
        let port = listener.local_addr()?.port();
        let ops_state = Data::new(OpsState {
            auth: ops::auth::Authenticator::new(ops_settings)?,
            rate_limiter: ops::rate_limit::RateLimiter::new(ops_settings.rate_limit.clone()),
            tmp: std::sync::RwLock::new(Arc::new(ops_tmp_client(settings)?)),
        });
        if ops_settings.api_tokens.is_empty() && ops_settings.mtls.subjects.is_empty() {
            tracing::info!("ops API: callers authenticate with API keys only (tmp-adapter apikey create)");
        }
        let (tls, tls_handle) = reloadable_tls(ops_settings.tls.as_ref()).context("ops.tls")?;
        Ok(OpsListener { listener, port, state: ops_state, tls, tls_handle })
    }

    /// The ops API on its own listener: same state, metrics and middleware as the Issuer API,
    /// only the ops routes (nothing of the Issuer API is reachable here); plain HTTP or HTTPS,
    /// where a verified client certificate's subject CN is kept on the connection for
    /// `ops.mtls.subjects`.
    fn serve(self, state: Data<AppState>, reloader: Reloader, shutdown_timeout: u64) -> anyhow::Result<(u16, Server)> {
        let OpsListener { listener, port, state: ops_state, tls, .. } = self;
        let ops_max_connections = state.settings.ops.max_connections;
        let peers = tmp_edge::peers::PeerConnections::new(state.settings.ops.max_connections_per_peer);
        let reloader = Data::new(reloader);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(ops_state.clone())
                .app_data(reloader.clone())
                .wrap(from_fn(middleware::observe))
                .configure(ops::configure)
                .default_service(web::to(|| async { Err::<actix_web::HttpResponse, _>(ApiError::NotFound) }))
        })
        .workers(1)
        .disable_signals()
        .max_connections(ops_max_connections)
        .shutdown_timeout(shutdown_timeout)
        .on_connect(move |connection, extensions| {
            use actix_tls::accept::rustls_0_23::TlsStream;
            peers.on_connect(connection, extensions);
            if let Some(tls) = connection.downcast_ref::<TlsStream<actix_web::rt::net::TcpStream>>() {
                let (_, session) = tls.get_ref();
                // rustls has already verified the certificate against ops.tls.client_ca_file.
                if let Some(subject) = session
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .and_then(|c| tmp_edge::tls::subject_common_name(c))
                {
                    extensions.insert(ops::OpsClientSubject(subject));
                }
            }
        });
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config)?,
            None => server.listen(listener)?,
        }
        .run();
        tracing::info!(port, "ops API listening");
        Ok((port, server))
    }
}

/// The ops API's client of TMP (token views and actions, push provisioning).
pub(crate) fn ops_tmp_client(settings: &Settings) -> anyhow::Result<TmpApiClient> {
    TmpApiClient::new(
        "forwarding.tmp_api",
        &settings.forwarding.tmp_api,
        Duration::from_millis(settings.ops.tmp_request_timeout_ms),
        tmp_edge::client::DEFAULT_MAX_CONNECTIONS,
    )
    .context("ops API: the TMP API client")
}

/// Where card facts come from, and the fraud engine when one answers.
type CardSourceParts = (Arc<dyn CardSource>, Option<Arc<dyn DecisionHook>>);

/// The card source, and the decision hook where the processor bridge answers one (for the
/// bridge's cards or the local registry's alike).
/// The OTLP span exporter `log.otlp` asks for, started; `None` when export is off.
fn exporter(settings: &Settings) -> anyhow::Result<Option<tmp_edge::otlp::Exporter>> {
    let Some(otlp) = settings.log.otlp.exporter() else { return Ok(None) };
    let tls = tmp_edge::client::ClientTls { ca_file: settings.log.otlp.ca_file.as_deref(), identity: None };
    let exporter = tmp_edge::otlp::Exporter::start(&otlp, tls).context("log.otlp")?;
    tracing::info!(endpoint = %otlp.endpoint, "exporting spans over OTLP");
    Ok(Some(exporter))
}

fn card_source(settings: &Settings, store: &DynStore, keys: &KeyMaterial) -> anyhow::Result<CardSourceParts> {
    let bridge = match settings.bridge_in_use() {
        true => Some(Arc::new(ProcessorBridge::new(&settings.card_source.processor_bridge, settings.deadline())?)),
        false => None,
    };
    let hook = match (&bridge, settings.card_source.processor_bridge.decide) {
        (Some(bridge), true) => Some(bridge.clone() as Arc<dyn DecisionHook>),
        _ => None,
    };
    let source: Arc<dyn CardSource> = match (settings.card_source.kind, bridge) {
        (CardSourceKind::ProcessorBridge, Some(bridge)) => bridge,
        _ => {
            let cvk = keys.cvk.clone().context("the local registry needs card_source.local_registry.cvk_file")?;
            Arc::new(LocalRegistry::new(store.clone(), keys.fingerprinter.clone(), cvk))
        }
    };
    Ok((source, hook))
}

/// Erases expired OTPs and forgets idempotency records and request ids nobody can reuse, and
/// tokenizations older than the velocity window.
async fn housekeeping(store: DynStore, settings: Settings) {
    let mut interval = tokio::time::interval(Duration::from_secs(settings.housekeeping.interval_secs));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let now = OffsetDateTime::now_utc();
        let retention = time::Duration::hours(settings.housekeeping.idempotency_retention_hours as i64);
        // A request id older than twice the tolerance fails the timestamp check anyway.
        let seen_horizon = time::Duration::seconds(2 * settings.auth.timestamp_tolerance_secs as i64);
        let velocity_window = time::Duration::seconds(settings.policy.velocity_window_secs as i64);
        let result = async {
            let otps = store.erase_expired_otps(now).await?;
            let keys = store.purge_idempotency(now - retention).await?;
            let ids = store.purge_request_ids(now - seen_horizon).await?;
            // Past the velocity window a tokenization counts for nothing.
            let attempts = store.purge_tokenization_attempts(now - velocity_window).await?;
            Ok::<_, store::StoreError>((otps, keys, ids, attempts))
        }
        .await;
        match result {
            Ok((otps, keys, ids, attempts)) if otps + keys + ids + attempts > 0 => {
                tracing::info!(
                    erased_otps = otps,
                    purged_idempotency = keys,
                    purged_request_ids = ids,
                    purged_tokenization_attempts = attempts,
                    "housekeeping"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(error = ?error, "housekeeping failed; will retry"),
        }
    }
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// The Issuer API's HTTP workers: one per core, as actix would choose.
static ISSUER_API_WORKERS: std::sync::LazyLock<std::num::NonZeroUsize> =
    std::sync::LazyLock::new(|| std::thread::available_parallelism().unwrap_or(std::num::NonZeroUsize::MIN));

/// Raises the open-file limit to the hard limit, and warns when the listeners' connection caps,
/// the database pool and the relay's connections do not fit in it: past the limit no listener
/// accepts anyone, the probes included.
fn check_open_files(settings: &Settings) {
    let limit = match tmp_edge::limits::raise_open_files() {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open-file limit");
            return;
        }
    };
    let ops = if settings.ops.enabled { settings.ops.max_connections } else { 0 };
    // The database pool (and SQLite's writer or PostgreSQL's flusher), one connection per relay
    // delivery in flight to each of three destinations, and files, logs and listeners.
    let others = settings.database.max_connections as usize + 1 + 3 * settings.relay.concurrency + 64;
    let needed = settings.server.max_connections + ops + others;
    match limit {
        Some(limit) if (limit as usize) < needed => tracing::warn!(
            limit,
            needed,
            "the open-file limit is below server.max_connections + ops.max_connections + the database and relay \
             connections: raise the hard limit (LimitNOFILE=) or lower the connection caps"
        ),
        _ => tracing::info!(limit = ?limit, needed, "open-file limit"),
    }
}

/// The keys and secrets requests are checked with, from `settings` and the keys it names.
fn credentials(settings: &Settings, keys: &KeyMaterial) -> Credentials {
    let tolerance = Duration::from_secs(settings.auth.timestamp_tolerance_secs);
    Credentials {
        jwe: Arc::new(keys.jwe.clone()),
        signature_verifier: settings
            .auth
            .mode
            .requires_hmac()
            .then(|| Verifier::new(keys.hmac_secrets.clone(), tolerance)),
        processor_verifier: (!settings.processor.hmac_secrets.is_empty())
            .then(|| Verifier::new(settings.processor.hmac_secrets.clone(), tolerance)),
    }
}

/// Where a reload reads the configuration from: the daemon's configuration directory.
pub type SettingsSource = Arc<dyn Fn() -> anyhow::Result<Settings> + Send + Sync>;

/// Replaces a running adapter's keys, secrets and certificates with those of a freshly loaded
/// configuration, without a restart (`SIGHUP`, or `POST /ops/v1/config/reload`): the JWE keys,
/// the Issuer API's and the processor's HMAC secrets, the data keys, the secrets, TLS client
/// certificates and CAs of every destination (TMP, Lifecycle API, sinks), and the listeners'
/// certificates, keys and client CAs. Everything is loaded and checked first; on any error the
/// adapter keeps serving with what it had, and says why. What the listeners and the store were
/// built with (addresses, `auth.mode`, the database, the fingerprint key, the CVK) needs a
/// restart, and a reload that changes it is refused.
#[derive(Clone)]
pub struct Reloader {
    state: Data<AppState>,
    relay: Option<Arc<Relay>>,
    ops: Option<Data<OpsState>>,
    issuer_tls: Option<ReloadableServerTls>,
    ops_tls: Option<ReloadableServerTls>,
    source: Arc<std::sync::RwLock<Option<SettingsSource>>>,
    /// Two reloads at once (a signal and an API call) would check against the same old set and
    /// install in either order: one at a time.
    one_at_a_time: Arc<tokio::sync::Mutex<()>>,
}

/// Everything a reload puts in force, built and checked before anything changes.
struct Prepared {
    credentials: Credentials,
    data_keys: Arc<crate::crypto::at_rest::DataKeyRing>,
    destinations: Option<crate::relay::Destinations>,
    ops_tmp: Option<TmpApiClient>,
    issuer_tls: Option<tmp_edge::tls::ServerTlsFiles>,
    ops_tls: Option<tmp_edge::tls::ServerTlsFiles>,
}

impl Reloader {
    /// Where [`Reloader::reload_from_source`] reads the configuration (the daemon: its
    /// configuration directory).
    pub fn read_from(&self, source: SettingsSource) {
        *self.source.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(source);
    }

    /// Loads the configuration again from where [`Reloader::read_from`] says, and applies it.
    pub async fn reload_from_source(&self) -> anyhow::Result<String> {
        let source = self.source.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let fresh = match source {
            Some(source) => source(),
            None => Err(anyhow::anyhow!("this adapter was started without a configuration directory to reload from")),
        };
        self.reload(fresh).await
    }

    /// Applies `fresh`, the configuration as loaded (and validated) again — or refuses it, and
    /// a configuration that failed to load, keeping what is in force. Returns what is now in force.
    pub async fn reload(&self, fresh: anyhow::Result<Settings>) -> anyhow::Result<String> {
        let _one = self.one_at_a_time.lock().await;
        let result = match fresh {
            Ok(fresh) => self.prepare(&fresh).await.map(|prepared| self.install(&fresh, prepared)),
            Err(error) => Err(error),
        };
        let outcome = if result.is_ok() { "applied" } else { "refused" };
        self.state.metrics.config_reloads.with_label_values(&[outcome]).inc();
        match &result {
            Ok(summary) => tracing::info!(%summary, "configuration reloaded: keys, secrets and certificates replaced"),
            Err(error) => tracing::error!(
                error = %format!("{error:#}"),
                "configuration reload refused; serving with the previous keys, secrets and certificates"
            ),
        }
        result
    }

    async fn prepare(&self, fresh: &Settings) -> anyhow::Result<Prepared> {
        let running = &self.state.settings;
        // What the listeners and the store were built with cannot change under them.
        let restart = |what: &str| anyhow::anyhow!("{what} changed: that needs a restart");
        anyhow::ensure!(
            fresh.auth.mode == running.auth.mode,
            "auth.mode changed ({:?} → {:?}): that needs a restart",
            running.auth.mode,
            fresh.auth.mode
        );
        if fresh.server.tls.is_some() != running.server.tls.is_some() {
            return Err(restart("whether server.tls is set"));
        }
        if fresh.ops.enabled && fresh.ops.tls.is_some() != running.ops.tls.is_some() {
            return Err(restart("whether ops.tls is set"));
        }
        let keys = KeyMaterial::load(fresh).context("loading the keys")?;
        if !keys.fingerprinter.same_key(&self.state.keys.fingerprinter) {
            return Err(restart(
                "keys.fingerprint_key_file (every stored card is found by its fingerprint under it; it cannot be rotated in place)",
            ));
        }
        let data_keys = keys.data_keys.current();
        self.check_data_keys(&data_keys).await?;
        let destinations = match &self.relay {
            Some(relay) => Some(relay.prepare_destinations(fresh).context("the relay's destinations")?),
            None => None,
        };
        let ops_tmp = match &self.ops {
            Some(_) => Some(ops_tmp_client(fresh)?),
            None => None,
        };
        let server_tls = |tls: Option<&crate::config::TlsSettings>, key: &str| {
            tls.map(|tls| tmp_edge::tls::ServerTlsFiles::load(tls.edge()).with_context(|| key.to_owned())).transpose()
        };
        let issuer_tls = server_tls(fresh.server.tls.as_ref(), "server.tls")?;
        let ops_tls = if self.ops_tls.is_some() { server_tls(fresh.ops.tls.as_ref(), "ops.tls")? } else { None };
        Ok(Prepared { credentials: credentials(fresh, &keys), data_keys, destinations, ops_tmp, issuer_tls, ops_tls })
    }

    /// A data key may leave the ring only once nothing is sealed under it any more
    /// (`tmp-adapter keys reseal`); a key kept under its id must be the same key.
    async fn check_data_keys(&self, fresh: &crate::crypto::at_rest::DataKeyRing) -> anyhow::Result<()> {
        let running = self.state.keys.data_keys.current();
        if let Some(id) = running.key_ids().find(|id| !fresh.same_key_as(&running, id)) {
            anyhow::bail!(
                "data key `{id}` has other key material than the one in force: what it sealed would no longer open \
                 (give a new key a new id)"
            );
        }
        for id in running.key_ids().filter(|id| !fresh.has_key(id)) {
            for kind in crate::store::SealedKind::ALL {
                if self.state.store.data_key_in_use(kind, id).await.context("checking the data keys in use")? {
                    anyhow::bail!(
                        "data key `{id}` still seals {}: keep it in keys.data_keys.files until \
                         `tmp-adapter keys reseal` has moved everything to the active key",
                        kind.as_str()
                    );
                }
            }
        }
        Ok(())
    }

    fn install(&self, fresh: &Settings, prepared: Prepared) -> String {
        let Prepared { credentials, data_keys, destinations, ops_tmp, issuer_tls, ops_tls } = prepared;
        let active_data_key = data_keys.active_key_id().to_owned();
        self.state.keys.data_keys.replace(data_keys);
        self.state.replace_credentials(credentials);
        if let (Some(relay), Some(destinations)) = (&self.relay, destinations) {
            relay.install_destinations(destinations);
        }
        if let (Some(ops), Some(client)) = (&self.ops, ops_tmp) {
            *ops.tmp.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(client);
        }
        if let (Some(handle), Some(files)) = (&self.issuer_tls, issuer_tls) {
            handle.install(files);
        }
        if let (Some(handle), Some(files)) = (&self.ops_tls, ops_tls) {
            handle.install(files);
        }
        format!(
            "JWE kids {}; {} Issuer API secret(s); {} processor secret(s); active data key {active_data_key}; \
             {} sink(s); listener certificates {}",
            fresh.keys.jwe.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>().join(", "),
            fresh.auth.hmac_secrets.len(),
            fresh.processor.hmac_secrets.len(),
            fresh.sinks.len(),
            if self.issuer_tls.is_some() || self.ops_tls.is_some() { "replaced" } else { "none (plain HTTP)" },
        )
    }
}
