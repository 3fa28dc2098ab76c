//! The one place the kit builds an outbound HTTP client: the adapter's relay, sinks, processor
//! bridge and ops API calls to TMP, mock-tmp's callbacks to the issuer, and the suite's calls to
//! a target all get their clients here, so every part of the kit trusts, presents certificates,
//! times out and refuses redirects the same way.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::tls::{ClientIdentity, client_config, install_crypto_provider};

/// The TLS of an outbound client: which CA the server's certificate must chain to (`None`: the
/// platform's trust store) and which client certificate to present when asked (mTLS).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientTls<'a> {
    pub ca_file: Option<&'a Path>,
    pub identity: Option<ClientIdentity<'a>>,
}

/// A client with a per-request `timeout` and no redirects: a signed request is answered where it
/// was sent, never followed somewhere it was not meant to go.
pub fn http_client(tls: ClientTls<'_>, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    install_crypto_provider();
    let builder = reqwest::Client::builder().timeout(timeout).redirect(reqwest::redirect::Policy::none());
    let builder = match (tls.ca_file, tls.identity) {
        // Only this CA is trusted for the server's certificate.
        (Some(ca_file), identity) => builder.tls_backend_preconfigured(client_config(ca_file, identity)?),
        // The platform's trust store, with a client certificate.
        (None, Some(identity)) => {
            let mut pem = read(identity.cert_file)?;
            pem.push(b'\n');
            pem.extend(read(identity.key_file)?);
            let identity = reqwest::Identity::from_pem(&pem).with_context(|| {
                format!(
                    "{} and {} are not a usable certificate and key",
                    identity.cert_file.display(),
                    identity.key_file.display()
                )
            })?;
            builder.identity(identity)
        }
        (None, None) => builder,
    };
    builder.build().context("building an outbound HTTP client")
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
