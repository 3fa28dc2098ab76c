//! TLS: one rustls crypto provider (ring) for the process, the server's (m)TLS config, and the
//! client config of the callbacks toward the issuer (private CA, client certificate).

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

fn load_roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).with_context(|| format!("{} holds an unusable CA certificate", path.display()))?;
    }
    Ok(roots)
}

fn load_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).with_context(|| format!("cannot read the private key {}", path.display()))
}

/// A client certificate: its chain file and its private key file.
#[derive(Debug, Clone, Copy)]
pub struct ClientIdentity<'a> {
    pub cert_file: &'a Path,
    pub key_file: &'a Path,
}

/// Client config that trusts only the CA(s) in `ca_file` and, with `identity`, presents that
/// client certificate when the server asks for one.
pub fn client_config(ca_file: &Path, identity: Option<ClientIdentity<'_>>) -> anyhow::Result<rustls::ClientConfig> {
    install_crypto_provider();
    let builder = rustls::ClientConfig::builder().with_root_certificates(load_roots(ca_file)?);
    match identity {
        Some(identity) => builder
            .with_client_auth_cert(load_certs(identity.cert_file)?, load_key(identity.key_file)?)
            .with_context(|| {
                format!(
                    "{} and {} are not a usable certificate and key",
                    identity.cert_file.display(),
                    identity.key_file.display()
                )
            }),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// Server config; with `client_ca_file`, a client certificate chaining to it is verified when
/// presented (a connection without one reaches only the public keys and `/_mock/v1`: the TMP
/// and Lifecycle APIs answer it 401 when `auth.mode` requires mTLS).
pub fn server_config(config: &TlsConfig) -> anyhow::Result<rustls::ServerConfig> {
    install_crypto_provider();
    let certs = load_certs(&config.cert_file)?;
    let key = load_key(&config.key_file)?;
    let builder = rustls::ServerConfig::builder();
    let builder = match &config.client_ca_file {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder(Arc::new(load_roots(ca)?))
                .allow_unauthenticated()
                .build()
                .context("building the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder.with_single_cert(certs, key).context("server certificate and key do not match")
}
