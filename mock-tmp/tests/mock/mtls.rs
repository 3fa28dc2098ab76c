//! mTLS in both directions, with certificates made here (rcgen): the issuer's calls to the TMP
//! API (inbound, `server.tls` + `auth.mode`) and the mock's calls to an issuer that requires a
//! client certificate (outbound, `issuer.ca_file` / `client_cert_file` / `client_key_file`).

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use reqwest::Method;
use serde_json::{Value, json};
use tmp_adapter::config::{AuthMode as AdapterAuthMode, TlsSettings};
use tmp_protocol::enums::TokenStatus;

use mock_tmp::config::{AuthMode, TlsConfig};

use crate::helpers::{EXPIRY, Kit, PAN_ACTIVE, expect_error, expect_json};

/// A test CA with a directory for the PEM files made from it.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
    ca: Issuer<'static, KeyPair>,
}

impl Pki {
    pub(crate) fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("write ca");
        Pki { dir, ca: Issuer::new(params, key) }
    }

    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A leaf certificate for `names` (subject alternative names) signed by this CA, written to
    /// `<file>.pem` and `<file>.key`; returns both paths.
    pub(crate) fn leaf(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
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
    pub(crate) fn mock_server_tls(&self, client_ca: &Path) -> TlsConfig {
        let (cert_file, key_file) = self.leaf("mock-server", &["127.0.0.1", "localhost"]);
        TlsConfig { cert_file, key_file, client_ca_file: Some(client_ca.to_path_buf()) }
    }
}

/// An HTTPS client trusting only `ca`, presenting `identity` (cert file, key file) if given.
pub(crate) fn client(ca: &Path, identity: Option<&(PathBuf, PathBuf)>) -> reqwest::Client {
    let identity = identity.map(|(cert_file, key_file)| mock_tmp::tls::ClientIdentity { cert_file, key_file });
    let config = mock_tmp::tls::client_config(ca, identity).expect("client config");
    reqwest::Client::builder().tls_backend_preconfigured(config).build().expect("client")
}

/// The issuer's tokens of `card-active`, asked without an HMAC signature.
async fn tokens_unsigned(kit: &Kit) -> reqwest::Result<reqwest::Response> {
    kit.signed(Method::GET, "/tmp-api/v1/cards/card-active/tokens").secret(None).try_send().await
}

#[tokio::test]
async fn the_tmp_api_over_mtls_admits_only_client_certificates_from_the_configured_ca() {
    let pki = Pki::new("Test TMP CA");
    let tls = pki.mock_server_tls(&pki.ca_file());
    let issuer_identity = pki.leaf("issuer-client", &[]);
    let rogue = Pki::new("Rogue CA");
    let rogue_identity = rogue.leaf("intruder", &[]);
    let mut kit = Kit::spawn_with(
        |_| {},
        |config| {
            config.server.tls = Some(tls);
            config.auth.mode = AuthMode::Mtls;
        },
    )
    .await;
    assert!(kit.mock_url.starts_with("https://"), "{}", kit.mock_url);

    // A certificate from the configured CA: served, without an HMAC signature in mode mtls.
    kit.client = client(&pki.ca_file(), Some(&issuer_identity));
    let token_id = kit.green_token().await;
    let list = expect_json(tokens_unsigned(&kit).await.expect("served"), 200).await;
    assert_eq!(list["tokens"][0]["tokenId"], token_id.as_str(), "{list}");
    let suspend = kit
        .signed(Method::POST, &format!("/tmp-api/v1/tokens/{token_id}/suspend"))
        .secret(None)
        .json(&json!({"initiator": "ISSUER", "reason": "mtls"}))
        .send()
        .await;
    assert_eq!(expect_json(suspend, 200).await["status"], "SUSPENDED");

    // No certificate: the handshake succeeds (the public key set and /_mock/v1 stay reachable)
    // and the TMP API answers the contract's 401.
    kit.client = client(&pki.ca_file(), None);
    expect_error(tokens_unsigned(&kit).await.expect("answered"), 401, "UNAUTHENTICATED").await;
    expect_error(kit.signed(Method::GET, "/tmp-api/v1/cards/card-active/tokens").send().await, 401, "UNAUTHENTICATED")
        .await;
    let keys = kit.client.get(format!("{}/tmp-api/v1/public-key", kit.mock_url)).send().await.expect("public key");
    assert_eq!(keys.status(), 200);
    assert_eq!(kit.get("/_mock/v1/tokens").await["tokens"][0]["status"], "SUSPENDED");

    // A certificate from another CA: the handshake is refused, no HTTP answer at all.
    kit.client = client(&pki.ca_file(), Some(&rogue_identity));
    let refused = tokens_unsigned(&kit).await;
    assert!(refused.is_err(), "a foreign client certificate must be refused: {:?}", refused.map(|r| r.status()));
    // The mock keeps serving the legitimate client.
    kit.client = client(&pki.ca_file(), Some(&issuer_identity));
    expect_json(tokens_unsigned(&kit).await.expect("served"), 200).await;
}

#[tokio::test]
async fn hmac_and_mtls_requires_both_the_certificate_and_the_signature() {
    let pki = Pki::new("Test TMP CA");
    let tls = pki.mock_server_tls(&pki.ca_file());
    let identity = pki.leaf("issuer-client", &[]);
    let mut kit = Kit::spawn_with(
        |_| {},
        |config| {
            config.server.tls = Some(tls);
            config.auth.mode = AuthMode::HmacAndMtls;
        },
    )
    .await;
    kit.client = client(&pki.ca_file(), Some(&identity));
    kit.control("/_mock/v1/cards", json!({"cardId": "card-active", "pan": PAN_ACTIVE, "expiry": EXPIRY})).await;
    expect_error(tokens_unsigned(&kit).await.expect("answered"), 401, "MISSING_SIGNATURE").await;
    expect_json(kit.signed(Method::GET, "/tmp-api/v1/cards/card-active/tokens").send().await, 200).await;
    kit.client = client(&pki.ca_file(), None);
    expect_error(kit.signed(Method::GET, "/tmp-api/v1/cards/card-active/tokens").send().await, 401, "UNAUTHENTICATED")
        .await;
}

/// Two CAs, as in production: the issuer's (its server certificate) and TMP's (the client
/// certificate the mock presents, which the adapter's `client_ca_file` trusts).
struct OutboundPki {
    issuer: Pki,
    tmp: Pki,
    tmp_client: (PathBuf, PathBuf),
}

impl OutboundPki {
    fn new() -> OutboundPki {
        let tmp = Pki::new("Test TMP client CA");
        let tmp_client = tmp.leaf("tmp-client", &[]);
        OutboundPki { issuer: Pki::new("Test issuer CA"), tmp, tmp_client }
    }

    /// An adapter serving HTTPS with a certificate from the issuer CA, requiring a client
    /// certificate from the TMP CA (`auth.mode: mtls`, no HMAC).
    fn adapter_tls(&self) -> impl FnOnce(&mut tmp_adapter::config::Settings) + use<> {
        let (cert_file, key_file) = self.issuer.leaf("adapter-server", &["127.0.0.1", "localhost"]);
        let client_ca_file = Some(self.tmp.ca_file());
        move |settings| {
            settings.server.tls = Some(TlsSettings { cert_file, key_file, client_ca_file });
            settings.auth.mode = AdapterAuthMode::Mtls;
        }
    }
}

/// The journal's entries the mock sent to `path`, oldest first.
fn sent_to<'a>(journal: &'a Value, path: &str) -> Vec<&'a Value> {
    journal["requests"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["direction"] == "sent" && e["path"] == path)
        .collect()
}

#[tokio::test]
async fn the_mock_presents_its_client_certificate_to_an_mtls_issuer() {
    let pki = OutboundPki::new();
    let (ca_file, (cert_file, key_file)) = (pki.issuer.ca_file(), pki.tmp_client.clone());
    let kit = Kit::spawn_with(pki.adapter_tls(), |config| {
        config.issuer.ca_file = Some(ca_file);
        config.issuer.client_cert_file = Some(cert_file);
        config.issuer.client_key_file = Some(key_file);
        // Generous: this test is about authentication, not about the deadline.
        config.issuer.verify_card_deadline_ms = 60_000;
    })
    .await;
    assert!(kit.adapter_url.starts_with("https://"), "{}", kit.adapter_url);

    // green_token asserts GREEN and waits for the token event to be delivered.
    let token_id = kit.green_token().await;
    let decisions = kit.store.decisions_for_card("card-active", 10).await.expect("audit");
    assert_eq!(decisions.len(), 1, "the adapter decided once");
    assert_eq!((decisions[0].operation.as_str(), decisions[0].decision.as_str()), ("verify_card", "APPROVED"));
    // The token event went over the same mTLS link.
    assert_eq!(kit.adapter_token(&token_id).await.status, TokenStatus::Active);
    let journal = kit.get("/_mock/v1/requests").await;
    let verify = sent_to(&journal, "/issuer-api/v1/cards/verify");
    assert_eq!(verify.len(), 1, "{journal}");
    assert_eq!(verify[0]["status"], 200);
    assert!(journal["requests"].as_array().expect("entries").iter().all(|e| e["outcome"] != "stand_in"), "{journal}");
}

#[tokio::test]
async fn without_a_client_certificate_the_issuer_answers_401_and_the_mock_stands_in() {
    let pki = OutboundPki::new();
    let ca_file = pki.issuer.ca_file();
    let kit = Kit::spawn_with(pki.adapter_tls(), |config| {
        config.issuer.ca_file = Some(ca_file);
        config.issuer.verify_card_deadline_ms = 60_000;
    })
    .await;

    let answer = kit.simulate(json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY"})).await;
    // The adapter's 401 is a failed verification: the mock stands in with stand_in_decision
    // (DECLINED by default), so the path is red and no token exists.
    assert_eq!(
        (answer["path"].as_str(), answer["decision"].as_str(), answer["reason"].as_str(), answer["standIn"].as_bool()),
        (Some("RED"), Some("DECLINED"), Some("STAND_IN_UNAVAILABLE"), Some(true)),
        "{answer}"
    );
    assert!(answer["token"].is_null(), "{answer}");
    let journal = kit.get("/_mock/v1/requests").await;
    // The public key set is not authenticated: the TLS link itself works without a certificate.
    let public_key = sent_to(&journal, "/issuer-api/v1/public-key");
    assert_eq!(public_key.first().map(|e| &e["status"]), Some(&json!(200)), "{journal}");
    let verify = sent_to(&journal, "/issuer-api/v1/cards/verify");
    let answered = verify.iter().find(|e| e["outcome"] == "answered").expect("the verify-card attempt");
    assert_eq!(answered["status"], 401, "{journal}");
    let stand_in = verify.iter().find(|e| e["outcome"] == "stand_in").expect("the stand-in entry");
    assert_eq!(stand_in["note"], "stand-in: the issuer answered 401", "{journal}");
    assert_eq!(kit.get("/_mock/v1/tokenizations").await["tokenizations"][0]["standIn"], true);
    // The adapter refused before deciding anything.
    assert!(kit.store.decisions_for_card("card-active", 10).await.expect("audit").is_empty());
}

#[tokio::test]
async fn the_mock_trusts_only_the_configured_issuer_ca() {
    let pki = OutboundPki::new();
    // The TMP CA did not sign the adapter's server certificate.
    let (wrong_ca, (cert_file, key_file)) = (pki.tmp.ca_file(), pki.tmp_client.clone());
    let kit = Kit::spawn_with(pki.adapter_tls(), |config| {
        config.issuer.ca_file = Some(wrong_ca);
        config.issuer.client_cert_file = Some(cert_file);
        config.issuer.client_key_file = Some(key_file);
        config.issuer.verify_card_deadline_ms = 60_000;
    })
    .await;

    let answer = kit.simulate(json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY"})).await;
    assert_eq!(
        (answer["path"].as_str(), answer["reason"].as_str(), answer["standIn"].as_bool()),
        (Some("RED"), Some("STAND_IN_UNAVAILABLE"), Some(true)),
        "{answer}"
    );
    let journal = kit.get("/_mock/v1/requests").await;
    // The first call (the issuer's key) fails in the handshake; nothing reaches the adapter.
    let public_key = sent_to(&journal, "/issuer-api/v1/public-key");
    assert_eq!(public_key.first().map(|e| &e["outcome"]), Some(&json!("connection_failed")), "{journal}");
    let verify = sent_to(&journal, "/issuer-api/v1/cards/verify");
    assert_eq!(verify.len(), 1, "only the stand-in entry: {journal}");
    assert_eq!(verify[0]["note"], "stand-in: the issuer could not be reached", "{journal}");
    assert!(kit.store.decisions_for_card("card-active", 10).await.expect("audit").is_empty());
}

#[test]
fn issuer_tls_settings_are_validated() {
    let https = |edit: fn(&mut mock_tmp::MockConfig)| {
        let mut config = mock_tmp::MockConfig::defaults();
        config.issuer.base_url = "https://issuer.example:8443".into();
        edit(&mut config);
        config.validate().map_err(|e| e.to_string())
    };
    assert!(https(|_| {}).is_ok());
    assert!(
        https(|c| {
            c.issuer.ca_file = Some("ca.pem".into());
            c.issuer.client_cert_file = Some("tmp.pem".into());
            c.issuer.client_key_file = Some("tmp.key".into());
        })
        .is_ok()
    );
    let half = https(|c| c.issuer.client_cert_file = Some("tmp.pem".into())).expect_err("a certificate without a key");
    assert!(half.contains("issuer.client_cert_file and issuer.client_key_file"), "{half}");
    let http = https(|c| {
        c.issuer.base_url = "http://127.0.0.1:8080".into();
        c.issuer.ca_file = Some("ca.pem".into());
    })
    .expect_err("TLS settings on a plain HTTP URL");
    assert!(http.contains("https issuer.base_url"), "{http}");
}

#[tokio::test]
async fn an_unreadable_issuer_certificate_stops_the_start() {
    let pki = Pki::new("Test CA");
    let mut config = crate::helpers::mock_config("https://127.0.0.1:1");
    config.issuer.ca_file = Some(pki.ca_file());
    config.issuer.client_cert_file = Some(pki.dir.path().join("missing.pem"));
    config.issuer.client_key_file = Some(pki.dir.path().join("missing.key"));
    let error = mock_tmp::start(config).await.err().expect("the mock refuses to start");
    assert!(format!("{error:#}").contains("missing.pem"), "{error:#}");
}
