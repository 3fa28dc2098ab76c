//! mTLS on the mock's own listener (`server.tls` + `auth.mode`), with certificates made here,
//! and the validation of the issuer-side TLS settings.

use reqwest::Method;
use serde_json::json;

use mock_tmp::config::AuthMode;

use crate::driver::{EXPIRY, PAN_ACTIVE, expect_error, expect_json};
use crate::helpers::Mock;
use crate::pki::{Pki, client};

/// The issuer's tokens of `card-active`, asked without an HMAC signature.
async fn tokens_unsigned(kit: &Mock) -> reqwest::Result<reqwest::Response> {
    kit.signed(Method::GET, "/tmp-api/v1/cards/card-active/tokens").secret(None).try_send().await
}

#[tokio::test]
async fn the_tmp_api_over_mtls_admits_only_client_certificates_from_the_configured_ca() {
    let pki = Pki::new("Test TMP CA");
    let tls = pki.mock_server_tls(&pki.ca_file());
    let issuer_identity = pki.leaf("issuer-client", &[]);
    let rogue = Pki::new("Rogue CA");
    let rogue_identity = rogue.leaf("intruder", &[]);
    let mut kit = Mock::start_with(|config| {
        config.server.tls = Some(tls);
        config.auth.mode = AuthMode::Mtls;
    })
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
        .json(&json!({"initiator": "ISSUER", "reasonCode": "OTHER", "reason": "mtls"}))
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
    let mut kit = Mock::start_with(|config| {
        config.server.tls = Some(tls);
        config.auth.mode = AuthMode::HmacAndMtls;
    })
    .await;
    kit.client = client(&pki.ca_file(), Some(&identity));
    kit.control("/_mock/v1/cards", json!({"cardId": "card-active", "pan": PAN_ACTIVE, "expiry": EXPIRY})).await;
    expect_error(tokens_unsigned(&kit).await.expect("answered"), 401, "MISSING_SIGNATURE").await;
    expect_json(kit.signed(Method::GET, "/tmp-api/v1/cards/card-active/tokens").send().await, 200).await;
    kit.client = client(&pki.ca_file(), None);
    expect_error(kit.signed(Method::GET, "/tmp-api/v1/cards/card-active/tokens").send().await, 401, "UNAUTHENTICATED")
        .await;
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
    let issuer = crate::fake_issuer::FakeIssuer::start().await;
    let (mut config, _) = crate::helpers::mock_config(&issuer);
    config.issuer.base_url = "https://127.0.0.1:1".into();
    config.issuer.ca_file = Some(pki.ca_file());
    config.issuer.client_cert_file = Some(pki.dir.path().join("missing.pem"));
    config.issuer.client_key_file = Some(pki.dir.path().join("missing.key"));
    let error = mock_tmp::start(config).await.err().expect("the mock refuses to start");
    assert!(format!("{error:#}").contains("missing.pem"), "{error:#}");
}
