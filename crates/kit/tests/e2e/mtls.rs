//! mTLS from the mock to a real adapter that requires a client certificate (`issuer.ca_file` /
//! `client_cert_file` / `client_key_file`), with certificates made here (rcgen). The mock's own
//! listener over mTLS is tested in mock-tmp's tests.

use std::path::PathBuf;

use serde_json::{Value, json};
use tmp_adapter::config::{AuthMode as AdapterAuthMode, TlsSettings};
use tmp_protocol::enums::TokenStatus;

use crate::helpers::{EXPIRY, Kit, PAN_ACTIVE};

#[path = "../../../../mock-tmp/tests/mock/pki.rs"]
mod pki;

pub(crate) use pki::{Pki, client};

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
