//! TLS material for tests, made here with rcgen: a test CA and leaf certificates signed by it.
//! Shared by the mock's tests and the kit's end-to-end tests (which include this file).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use mock_tmp::config::TlsConfig;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A test CA with a directory for the PEM files made from it.
pub struct Pki {
    pub dir: tempfile::TempDir,
    ca: Issuer<'static, KeyPair>,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("write ca");
        Pki { dir, ca: Issuer::new(params, key) }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A leaf certificate for `names` (subject alternative names) signed by this CA, written to
    /// `<file>.pem` and `<file>.key`; returns both paths.
    pub fn leaf(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
        params.distinguished_name.push(DnType::CommonName, file);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("signed");
        let (cert_file, key_file) =
            (self.dir.path().join(format!("{file}.pem")), self.dir.path().join(format!("{file}.key")));
        std::fs::write(&cert_file, cert.pem()).expect("write cert");
        std::fs::write(&key_file, key.serialize_pem()).expect("write key");
        (cert_file, key_file)
    }

    /// A server certificate for 127.0.0.1, as a mock `server.tls`.
    pub fn mock_server_tls(&self, client_ca: &Path) -> TlsConfig {
        let (cert_file, key_file) = self.leaf("mock-server", &["127.0.0.1", "localhost"]);
        TlsConfig { cert_file, key_file, client_ca_file: Some(client_ca.to_path_buf()) }
    }
}

/// An HTTPS client trusting only `ca`, presenting `identity` (cert file, key file) if given.
pub fn client(ca: &Path, identity: Option<&(PathBuf, PathBuf)>) -> reqwest::Client {
    let identity = identity.map(|(cert_file, key_file)| tmp_edge::tls::ClientIdentity { cert_file, key_file });
    let config = tmp_edge::tls::client_config(ca, identity).expect("client config");
    reqwest::Client::builder().tls_backend_preconfigured(config).build().expect("client")
}
