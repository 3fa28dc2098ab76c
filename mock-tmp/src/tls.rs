//! TLS: one rustls crypto provider (ring) for the process, and the server's (m)TLS config.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

/// Installs ring as the process's rustls provider (idempotent), before any TLS use.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} holds an invalid PEM certificate", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}

/// Server config; with `client_ca_file`, a client certificate chaining to it is verified when
/// presented (a connection without one reaches only the public keys and `/_mock/v1`: the TMP
/// and Lifecycle APIs answer it 401 when `auth.mode` requires mTLS).
pub fn server_config(config: &TlsConfig) -> anyhow::Result<rustls::ServerConfig> {
    install_crypto_provider();
    let certs = load_certs(&config.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&config.key_file)
        .with_context(|| format!("cannot read the private key {}", config.key_file.display()))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match &config.client_ca_file {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs(ca)? {
                roots.add(cert).with_context(|| format!("{} holds an unusable CA certificate", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                .allow_unauthenticated()
                .build()
                .context("building the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder.with_single_cert(certs, key).context("server certificate and key do not match")
}
