//! TLS configuration: one rustls crypto provider (ring) for the whole process, a server's
//! (m)TLS config, and client configs with a private CA (and client certificate) for outbound
//! calls. The adapter and mock-tmp both build theirs here, so both ends of the kit verify
//! certificates the same way.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::{Context, bail};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

/// A server's certificate chain and key, and the CA its clients' certificates must chain to.
#[derive(Debug, Clone, Copy)]
pub struct ServerTls<'a> {
    pub cert_file: &'a Path,
    pub key_file: &'a Path,
    pub client_ca_file: Option<&'a Path>,
}

/// Installs AWS-LC as the process's rustls provider (the library JWE's RSA uses too).
/// Idempotent; called before any TLS use, because a second provider compiled in by a
/// dependency would make rustls refuse to choose.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
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

/// Server config; with `client_ca_file`, a client certificate, when presented, must chain to
/// that CA (whether one is required is each API's decision, by its `auth.mode`).
pub fn server_config(settings: ServerTls<'_>) -> anyhow::Result<rustls::ServerConfig> {
    Ok(reloadable_server_config(settings)?.0)
}

/// [`server_config`], and the handle that replaces its certificate, key and client CA while
/// the listener serves: handshakes after [`ReloadableServerTls::install`] use the new ones,
/// connections already open keep theirs.
pub fn reloadable_server_config(
    settings: ServerTls<'_>,
) -> anyhow::Result<(rustls::ServerConfig, ReloadableServerTls)> {
    let loaded = ServerTlsFiles::load(settings)?;
    let handle = ReloadableServerTls {
        certificate: Arc::new(CurrentCertificate(RwLock::new(loaded.certificate))),
        clients: Arc::new(CurrentClientVerifier(RwLock::new(loaded.clients))),
    };
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(handle.clients.clone())
        .with_cert_resolver(handle.certificate.clone());
    Ok((config, handle))
}

/// A server's certificate, key and client CA, loaded and checked (the key matches the
/// certificate, the CA is usable): what [`ReloadableServerTls::install`] puts in force.
pub struct ServerTlsFiles {
    certificate: Arc<CertifiedKey>,
    clients: Option<Arc<dyn ClientCertVerifier>>,
}

impl ServerTlsFiles {
    pub fn load(settings: ServerTls<'_>) -> anyhow::Result<ServerTlsFiles> {
        install_crypto_provider();
        let certs = load_certs(settings.cert_file)?;
        let key = PrivateKeyDer::from_pem_file(settings.key_file)
            .with_context(|| format!("cannot read the private key {}", settings.key_file.display()))?;
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let certificate = CertifiedKey::from_der(certs, key, &provider).with_context(|| {
            format!(
                "server certificate {} and key {} do not match",
                settings.cert_file.display(),
                settings.key_file.display()
            )
        })?;
        let clients = match settings.client_ca_file {
            // A certificate, when presented, must chain to `ca`; a connection without one is
            // accepted so probes reach /healthz, and an API that requires mTLS answers it 401.
            Some(ca) => Some(
                WebPkiClientVerifier::builder(Arc::new(load_roots(ca)?))
                    .allow_unauthenticated()
                    .build()
                    .context("building the client certificate verifier")?,
            ),
            None => None,
        };
        Ok(ServerTlsFiles { certificate: Arc::new(certificate), clients })
    }
}

/// Replaces a listener's certificate, key and client CA (see [`reloadable_server_config`]).
#[derive(Debug, Clone)]
pub struct ReloadableServerTls {
    certificate: Arc<CurrentCertificate>,
    clients: Arc<CurrentClientVerifier>,
}

impl ReloadableServerTls {
    pub fn install(&self, files: ServerTlsFiles) {
        *self.certificate.0.write().unwrap_or_else(PoisonError::into_inner) = files.certificate;
        *self.clients.0.write().unwrap_or_else(PoisonError::into_inner) = files.clients;
    }
}

#[derive(Debug)]
struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// The client CA in force; none: no client certificate is asked for.
#[derive(Debug)]
struct CurrentClientVerifier(RwLock<Option<Arc<dyn ClientCertVerifier>>>);

impl CurrentClientVerifier {
    fn current(&self) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(rustls::Error::General("no client CA is configured".into()))
    }
}

impl ClientCertVerifier for CurrentClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.current().is_ok()
    }

    fn client_auth_mandatory(&self) -> bool {
        // Never mandatory at the handshake: each API decides by its `auth.mode` (probes).
        false
    }

    /// No CA names are sent with the certificate request (they are optional in TLS): the CA in
    /// force can change under a handshake, and a client with one certificate sends it anyway.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()?.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().map(|v| v.supported_verify_schemes()).unwrap_or_default()
    }
}

/// A client certificate: its chain file and its private key file.
#[derive(Debug, Clone, Copy)]
pub struct ClientIdentity<'a> {
    pub cert_file: &'a Path,
    pub key_file: &'a Path,
}

/// Client config that trusts only the CAs in `ca_file` and, with `identity`, presents that
/// client certificate when the server asks for one (mTLS).
pub fn client_config(ca_file: &Path, identity: Option<ClientIdentity<'_>>) -> anyhow::Result<rustls::ClientConfig> {
    install_crypto_provider();
    with_identity(load_roots(ca_file)?, identity)
}

fn with_identity(roots: RootCertStore, identity: Option<ClientIdentity<'_>>) -> anyhow::Result<rustls::ClientConfig> {
    let roots = rustls::ClientConfig::builder().with_root_certificates(roots);
    match identity {
        Some(identity) => {
            let chain = load_certs(identity.cert_file)?;
            let key = PrivateKeyDer::from_pem_file(identity.key_file)
                .with_context(|| format!("cannot read the private key {}", identity.key_file.display()))?;
            roots.with_client_auth_cert(chain, key).context("client certificate and key do not match")
        }
        None => Ok(roots.with_no_client_auth()),
    }
}

/// Client config that trusts the platform's CA certificates (the operating system's store, read
/// once per process) and, with `identity`, presents that client certificate when asked. Where
/// the platform has none, the store is empty: plain `http` works, an `https` server is refused at
/// the handshake (configure a CA file for it).
pub fn platform_client_config(identity: Option<ClientIdentity<'_>>) -> anyhow::Result<rustls::ClientConfig> {
    static ROOTS: std::sync::OnceLock<RootCertStore> = std::sync::OnceLock::new();
    install_crypto_provider();
    let roots = ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        roots
    });
    with_identity(roots.clone(), identity)
}

/// The common name (CN) of a DER certificate's subject, when it has exactly one, as a UTF-8,
/// printable or IA5 string. A subject with two CNs has none here: which of them names the
/// caller would be a guess, and a CA that signed `CN=reader, CN=admin` must not grant the
/// second. A small DER walk over `Certificate → tbsCertificate → subject`: the certificate was
/// already verified by rustls against the client CA.
pub fn subject_common_name(der: &[u8]) -> Option<String> {
    /// One TLV: (tag, contents, rest).
    fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const CN_OID: &[u8] = &[0x55, 0x04, 0x03];
    let (tag, certificate, _) = tlv(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = tlv(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    // [0] version (optional), serialNumber, signature, issuer, validity, subject.
    let (tag, _, after) = tlv(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (tag, subject, _) = tlv(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut common_name = None;
    let mut rdns = subject;
    while !rdns.is_empty() {
        let (tag, set, next) = tlv(rdns)?;
        rdns = next;
        if tag != SET {
            continue;
        }
        let mut attributes = set;
        while !attributes.is_empty() {
            let (_, attribute, next) = tlv(attributes)?;
            attributes = next;
            let (oid_tag, oid, value) = tlv(attribute)?;
            if oid_tag == 0x06 && oid == CN_OID {
                if common_name.is_some() {
                    return None;
                }
                let (string_tag, text, _) = tlv(value)?;
                if !matches!(string_tag, 0x0c | 0x13 | 0x16) {
                    return None;
                }
                common_name = Some(std::str::from_utf8(text).ok()?.to_owned());
            }
        }
    }
    common_name
}

#[cfg(test)]
mod subject_tests {
    use super::subject_common_name;

    #[test]
    fn the_subject_common_name_is_read_from_a_certificate() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["client.example".into()]).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Bank");
        params.distinguished_name.push(rcgen::DnType::CommonName, "back-office.bank.example");
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(subject_common_name(cert.der()).as_deref(), Some("back-office.bank.example"));
        assert_eq!(subject_common_name(b"\x30\x03\x02\x01\x00"), None);
        // A second CN (the CN attribute type by its OID, which rcgen writes as given).
        params.distinguished_name.push(rcgen::DnType::CustomDnType(vec![2, 5, 4, 3]), "admin.bank.example");
        let two = params.self_signed(&key).expect("cert");
        assert_eq!(subject_common_name(two.der()), None, "two CNs authenticate nobody");
        assert_eq!(subject_common_name(&[]), None);
    }
}
