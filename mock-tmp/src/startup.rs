//! Wiring: configuration → state (memory or SQLite snapshot), keys, sender worker, HTTP server.
//! [`start`] binds the listener (port 0 in tests) and returns a [`MockHandle`] with the real
//! address before anything is served.

use std::net::{SocketAddr, TcpListener};

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::web::{self, Data};
use actix_web::{App, HttpServer};
use anyhow::Context;

use crate::config::{MockConfig, StorageKind};
use crate::context::Mock;
use crate::keys::MockKeys;
use crate::sender::{self, Outbox};
use crate::state::MockState;
use crate::state::persist::Persistence;
use tmp_edge::admit::ClientCertificate;

/// A running mock.
pub struct MockHandle {
    addr: SocketAddr,
    scheme: &'static str,
    server: ServerHandle,
    mock: Data<Mock>,
    server_task: tokio::task::JoinHandle<std::io::Result<()>>,
    sender_task: tokio::task::JoinHandle<()>,
}

impl MockHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The shared state, for in-process inspection (tests).
    pub fn mock(&self) -> &Mock {
        &self.mock
    }

    /// Resolves once every queued callback has been delivered or given up.
    pub async fn wait_idle(&self) {
        self.mock.outbox.wait_idle().await;
    }

    /// Stops serving (in-flight requests finish) and stops the sender.
    pub async fn stop(self) {
        self.server.stop(true).await;
        let _ = self.server_task.await;
        self.sender_task.abort();
        if let Some(persistence) = &self.mock.persistence {
            persistence.close().await;
        }
    }

    /// Serves until the server stops (SIGINT / SIGTERM in the binary).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = match self.server_task.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        };
        self.sender_task.abort();
        result
    }
}

/// Binds `server.host:server.port` and starts there (see [`start_on`]).
pub async fn start(config: MockConfig) -> anyhow::Result<MockHandle> {
    config.validate()?;
    let listener = TcpListener::bind(config.listen_address())
        .with_context(|| format!("cannot listen on {}", config.listen_address()))?;
    start_on(config, listener).await
}

/// Starts on a listener the caller already holds: one bound to port 0 whose address another
/// party (the adapter under test) must know before the mock starts. Binding that port again
/// later could lose it to another process in between. `server.host` and `server.port` are
/// not used.
pub async fn start_on(config: MockConfig, listener: TcpListener) -> anyhow::Result<MockHandle> {
    config.validate()?;
    tmp_edge::tls::install_crypto_provider();
    let persistence = match config.state.storage {
        StorageKind::Memory => None,
        StorageKind::Sqlite => Some(
            Persistence::open(&config.state.sqlite_url)
                .await
                .with_context(|| format!("cannot open the state file {}", config.state.sqlite_url))?,
        ),
    };
    let mut state = match &persistence {
        Some(p) => p.load().await.context("cannot read the saved state")?.unwrap_or_default(),
        None => MockState::default(),
    };
    let (bits, ttl) = (config.keys.rsa_bits, config.keys.retired_key_ttl_secs);
    let keys = match state.keys.take() {
        Some(stored) => MockKeys::restore(&stored, ttl).context("cannot restore the saved keys")?,
        // RSA key generation takes a moment: keep it off the runtime's workers.
        None => tokio::task::spawn_blocking(move || MockKeys::generate(bits, ttl)).await??,
    };
    let (outbox, receiver) = Outbox::new();
    let addr = listener.local_addr()?;
    let tls = config.server.tls.as_ref().map(|tls| tmp_edge::tls::server_config(tls.edge())).transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mock = Data::new(Mock::new(config, state, keys, persistence, outbox)?);
    {
        let mut state = mock.state.lock().await;
        mock.save(&mut state).await?;
    }
    let sender_task = tokio::spawn(sender::run(mock.clone().into_inner(), receiver));

    let app_mock = mock.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_mock.clone())
            .wrap(from_fn(crate::api::middleware::observe))
            .configure(crate::api::configure)
            .default_service(web::to(crate::api::not_found))
    })
    .on_connect(|connection, extensions| {
        use actix_tls::accept::rustls_0_23::TlsStream;
        if let Some(tls) = connection.downcast_ref::<TlsStream<actix_web::rt::net::TcpStream>>() {
            let (_, session) = tls.get_ref();
            // rustls has already verified a presented certificate against the client CA.
            if session.peer_certificates().is_some_and(|certs| !certs.is_empty()) {
                extensions.insert(ClientCertificate);
            }
        }
    });
    let server = match tls {
        Some(tls) => server.listen_rustls_0_23(listener, tls)?,
        None => server.listen(listener)?,
    }
    .run();
    let handle = server.handle();
    let server_task = tokio::spawn(server);
    tracing::info!(%addr, "mock-tmp listening");
    Ok(MockHandle { addr, scheme, server: handle, mock, server_task, sender_task })
}
