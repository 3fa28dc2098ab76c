//! TLS: the same rustls setup as the adapter (one ring provider for the process, the server's
//! (m)TLS config, client configs with a private CA and client certificate), reused from
//! `tmp_adapter::tls` so both ends of the kit verify certificates the same way.

use tmp_adapter::config::TlsSettings;

use crate::config::TlsConfig;

pub use tmp_adapter::tls::{ClientIdentity, client_config, install_crypto_provider};

/// Server config; with `client_ca_file`, a client certificate chaining to it is verified when
/// presented (a connection without one reaches only the public keys and `/_mock/v1`: the TMP
/// and Lifecycle APIs answer it 401 when `auth.mode` requires mTLS).
pub fn server_config(config: &TlsConfig) -> anyhow::Result<rustls::ServerConfig> {
    tmp_adapter::tls::server_config(&TlsSettings {
        cert_file: config.cert_file.clone(),
        key_file: config.key_file.clone(),
        client_ca_file: config.client_ca_file.clone(),
    })
}
