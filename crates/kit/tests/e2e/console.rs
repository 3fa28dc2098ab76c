//! mock-tmp's browser console in a real, headless Chromium driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`; `.ci/run` installs them): a developer's yellow path clicked
//! through against the real adapter, and what the page shows checked at each step.
//!
//! The WebDriver client is the protocol's few JSON calls over HTTP (W3C WebDriver), made with the
//! test's HTTP client: no driver crate for five requests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tmp_protocol::enums::TokenStatus;

use crate::browser::{chromium, in_ci};
use crate::helpers::{EXPIRY, Kit, PAN_ACTIVE};

/// The key W3C WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a page may take to show what a step expects (a wait, never an assertion on speed).
const PATIENCE: Duration = Duration::from_secs(20);

/// A running chromedriver, stopped on drop.
struct Driver {
    url: String,
    child: Child,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// chromedriver on a free port, or `None` (with a note) when Chromium or its driver is not
    /// installed and this is not CI.
    async fn start() -> Option<Driver> {
        let driver = ["chromedriver", "chromium-driver"]
            .into_iter()
            .find(|name| Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success()));
        let (Some(driver), Some(_)) = (driver, chromium()) else {
            assert!(!in_ci(), "CI needs chromium and chromium-driver for the console test (.ci/run installs them)");
            eprintln!("note: no chromium/chromedriver on PATH; the console's browser test is skipped");
            return None;
        };
        // The test's HTTP client needs the process's TLS provider, even for plain HTTP.
        tmp_edge::tls::install_crypto_provider();
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("addr").port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver { url: format!("http://127.0.0.1:{port}"), child, http: reqwest::Client::new() };
        let started = Instant::now();
        loop {
            let ready = driver.http.get(format!("{}/status", driver.url)).send().await;
            if let Ok(answer) = ready
                && answer.json::<Value>().await.is_ok_and(|s| s["value"]["ready"] == true)
            {
                return Some(driver);
            }
            assert!(started.elapsed() < PATIENCE, "chromedriver did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn session(&self) -> Page<'_> {
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--window-size=1440,1900",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ];
        args.push("--force-device-scale-factor=1");
        let mut options = json!({"args": args});
        if std::path::Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let capabilities =
            json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}});
        let answer = self.http.post(format!("{}/session", self.url)).json(&capabilities).send().await.expect("session");
        let body: Value = answer.json().await.expect("json");
        let id = body["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {body}")).to_owned();
        Page { driver: self, base: format!("{}/session/{id}", self.url) }
    }
}

/// One browser session.
struct Page<'a> {
    driver: &'a Driver,
    base: String,
}

impl Page<'_> {
    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.driver.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.expect("webdriver").json().await.expect("json");
        answer["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    /// The element `css` selects, if there is one now.
    async fn find(&self, css: &str) -> Option<String> {
        let found =
            self.command(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        found[ELEMENT].as_str().map(str::to_owned)
    }

    /// The element `css` selects, waiting for the page to show it.
    async fn element(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(id) = self.find(css).await {
                return id;
            }
            assert!(started.elapsed() < PATIENCE, "the page never showed `{css}`");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await;
    }

    async fn fill(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{id}/clear"), Some(json!({}))).await;
        self.command(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({"text": text}))).await;
    }

    async fn text(&self, css: &str) -> String {
        let id = self.element(css).await;
        self.command(reqwest::Method::GET, &format!("/element/{id}/text"), None).await.as_str().unwrap_or("").to_owned()
    }

    async fn attribute(&self, css: &str, name: &str) -> String {
        let id = self.element(css).await;
        let value = self.command(reqwest::Method::GET, &format!("/element/{id}/attribute/{name}"), None).await;
        value.as_str().unwrap_or("").to_owned()
    }

    /// Waits until the text of `css` satisfies `done`; returns it.
    async fn wait_text(&self, css: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            if self.find(css).await.is_some() {
                let text = self.text(css).await;
                if done(&text) {
                    return text;
                }
                assert!(started.elapsed() < PATIENCE, "`{css}` never showed {what}; it shows {text:?}");
            } else {
                assert!(started.elapsed() < PATIENCE, "the page never showed `{css}`");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn script(&self, script: &str) -> Value {
        self.command(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    async fn screenshot(&self) -> Vec<u8> {
        let encoded = self.command(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD.decode(encoded.as_str().expect("base64")).expect("a PNG")
    }

    async fn close(self) {
        self.driver.http.delete(&self.base).send().await.expect("close the session");
    }
}

/// A developer integrating the yellow path: tokenizes in Google Pay with a low score from the
/// console, reads the code the issuer's system received, types it into the token's row, and
/// watches the token become active — at the mock and in the adapter's mirror; then suspends it
/// from the wallet, adds a fault, and sees the journal of calls both ways with their traces.
#[tokio::test]
async fn the_console_finishes_the_yellow_path_in_a_real_browser() {
    let Some(driver) = Driver::start().await else { return };
    let kit = Kit::spawn().await;
    // A device name with markup in it: the page must show it as text, never run it.
    let hostile = kit
        .simulate(json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY",
                          "deviceName": "<img src=x id=injected onerror=alert(1)>"}))
        .await;
    assert_eq!(hostile["path"], "GREEN", "{hostile}");
    kit.inner.mock_idle().await;

    let page = driver.session().await;
    page.goto(&format!("{}/_mock/console", kit.mock_url)).await;
    page.wait_text("#connection", "live", |t| t == "live").await;
    page.fill("#pan", PAN_ACTIVE).await;
    page.fill("#expiry", EXPIRY).await;
    // The cardholder picks the step-up method on the token, after seeing what the issuer offers.
    page.script("document.getElementById('step-up').value = 'LATER'; return true").await;
    page.click("#yellow").await;
    page.wait_text("#result", "the tokenization's answer", |t| t.contains("tokenize (yellow) → 200")).await;
    assert_eq!(page.attribute("#result", "data-path").await, "YELLOW");
    let token_id = page.attribute("#result", "data-token-id").await;
    assert!(!token_id.is_empty());
    assert_eq!(page.attribute("#result", "data-notification-id").await, "", "no code before the choice");

    let row = format!("tr[data-token-id='{token_id}']");
    page.wait_text(&format!("{row} td.status"), "INACTIVE", |t| t == "INACTIVE").await;
    let offered = page.wait_text(&row, "the methods offered", |t| t.contains("no method chosen yet")).await;
    assert!(offered.contains("OTP_EMAIL · h•••@example.com") && offered.contains("APP_TO_APP"), "{offered}");
    assert!(!offered.contains("holder@example.com"), "the e-mail masked: {offered}");
    page.click(&format!("{row} button.step-up[data-method='OTP_EMAIL']")).await;
    page.wait_text("#result", "the choice's answer", |t| t.contains("step-up OTP_EMAIL") && t.contains("→ 200")).await;
    let notification_id = page.attribute("#result", "data-notification-id").await;
    assert!(!notification_id.is_empty());
    page.wait_text(&row, "the choice shown", |t| t.contains("chosen: OTP_EMAIL")).await;
    kit.inner.mock_idle().await;
    let sent = kit.sent(tmp_protocol::issuer_api::NOTIFICATIONS_PATH).await;
    let code = sent.iter().find(|e| e["body"]["notificationId"] == notification_id.as_str()).expect("the code sent");
    assert_eq!(
        (code["body"]["channel"].as_str(), code["body"]["stepUpMethod"].as_str()),
        (Some("EMAIL"), Some("OTP_EMAIL"))
    );
    // The code, as the issuer's system (the dev inbox) received it from the adapter.
    let otp = kit.delivered_otp(&notification_id).await;
    page.fill(&format!("{row} .otp-input"), &otp).await;
    page.click(&format!("{row} .otp-submit")).await;
    page.wait_text("#result", "the code accepted", |t| t.contains("\"ACCEPTED\"")).await;
    page.wait_text(&format!("{row} td.status"), "ACTIVE", |t| t == "ACTIVE").await;
    kit.inner.mock_idle().await;
    assert_eq!(kit.adapter_token(&token_id).await.status, TokenStatus::Active, "the adapter's mirror follows");

    // The wallet suspends it; the page shows who holds it.
    page.click(&format!("{row} button.suspend")).await;
    page.wait_text(&format!("{row} td.status"), "SUSPENDED", |t| t == "SUSPENDED").await;
    let held = page.text(&row).await;
    assert!(held.contains("TOKEN_REQUESTOR"), "the hold is the wallet's: {held}");

    // A fault added from the page is listed, with what is left of it.
    page.fill("#fault-status", "503").await;
    page.fill("#fault-times", "2").await;
    page.click("#add-fault").await;
    let faults = page.wait_text("#faults tbody", "the new fault", |t| t.contains("status 503")).await;
    assert!(faults.contains("POST /issuer-api/v1/tokens/events"), "{faults}");

    // The journal: both directions, the verification and the code's callbacks, with a trace.
    let journal = page.wait_text("#journal tbody", "the OTP entry", |t| t.contains("/_mock/v1/simulate/tokens/")).await;
    assert!(journal.contains("TMP → issuer") && journal.contains("POST /issuer-api/v1/cards/verify"), "{journal}");
    assert!(journal.contains("POST /issuer-api/v1/notifications"), "{journal}");
    let traced = page.script("return [...document.querySelectorAll('#journal td[title]')].filter(td => /^[0-9a-f]{32}$/.test(td.title)).length").await;
    assert!(traced.as_u64().unwrap_or(0) >= 3, "journal rows name their trace: {traced}");

    // What the page shows: masked card numbers, the hostile name as text.
    let body = page.text("body").await;
    assert!(!body.contains(PAN_ACTIVE), "the page shows no card number");
    assert!(body.contains("•••• 1111"), "cards by their last four digits");
    assert!(body.contains("<img src=x id=injected"), "the device name as text");
    assert_eq!(page.script("return document.getElementById('injected') === null").await, json!(true));

    let png = page.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "a screenshot of the console");
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/images/mock-console.png");
        std::fs::create_dir_all(path.parent().expect("docs/images")).expect("docs/images");
        std::fs::write(&path, &png).expect("write the screenshot");
    }
    page.close().await;
}

/// A cardholder on the issuer's website adds the card to Google Pay through the wallet's web
/// flow (the mock's page) in a real browser: the page shows the card by its last four digits,
/// holds the add until the terms are accepted, and sends the browser back to the issuer with the
/// new token, active at the mock.
#[tokio::test]
async fn a_web_push_is_added_through_the_wallets_page_in_a_real_browser() {
    let Some(driver) = Driver::start().await else { return };
    let ops = crate::ops_api::Ops::spawn().await;
    ops.seed("card-web", PAN_ACTIVE, "ACTIVE").await;
    let (_, key) = ops.key("online banking", &["provisioning"], None).await;
    // The issuer's page to come back to: any loopback address does for the browser.
    let callback = format!("{}/bank/cards/added?session=s1", ops.kit.mock_url);
    let body = json!({"wallet": "GOOGLE_PAY", "callbackUrl": callback});
    let answer = ops.post("/ops/v1/cards/card-web/push-provisioning/web", &key, &body, None).await;
    let signed: Value = answer.json().await.expect("json");
    let push_url = signed["pushUrl"].as_str().unwrap_or_else(|| panic!("a web flow: {signed}")).to_owned();

    let page = driver.session().await;
    page.goto(&push_url).await;
    let shown = page.text("main").await;
    assert!(shown.contains("•••• 1111") && shown.contains("Google Pay"), "{shown}");
    assert!(!shown.contains(PAN_ACTIVE));
    page.fill("input[name=deviceName]", "Laptop").await;
    // Without the terms: the page says so, and nothing is added.
    page.click("#add").await;
    page.wait_text("main", "the terms asked for", |t| t.contains("Accept the terms")).await;
    page.goto(&push_url).await;
    page.fill("input[name=deviceName]", "Laptop").await;
    page.click("input[name=terms]").await;
    page.click("#add").await;
    let started = Instant::now();
    let landed = loop {
        let url = page.command(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned();
        if url.starts_with(&callback) {
            break url;
        }
        assert!(started.elapsed() < PATIENCE, "the browser never came back to the issuer: {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let token = landed
        .strip_prefix(&format!("{callback}&result=ADDED&tokenId="))
        .unwrap_or_else(|| panic!("added, with the token: {landed}"));
    ops.kit.inner.mock_idle().await;
    let at_mock = ops.kit.mock_token(token).await;
    assert_eq!((at_mock["status"].as_str(), at_mock["deviceName"].as_str()), (Some("ACTIVE"), Some("Laptop")));
    assert_eq!(at_mock["provisioningMethod"], "PUSH");
    // Back on the old link: used.
    page.goto(&push_url).await;
    page.wait_text("main", "the link used", |t| t.contains("already used")).await;
    page.close().await;
}

/// The console's files are served by the mock itself, with a policy that lets the page run only
/// its own script and call only the mock.
#[tokio::test]
async fn the_console_is_served_by_the_mock_under_a_strict_content_security_policy() {
    let kit = Kit::spawn().await;
    for (path, kind) in [
        ("/_mock/console", "text/html"),
        ("/_mock/console/console.js", "text/javascript"),
        ("/_mock/console/console.css", "text/css"),
    ] {
        let answer = kit.client.get(format!("{}{path}", kit.mock_url)).send().await.expect("get");
        assert_eq!(answer.status(), 200, "{path}");
        let header = |name: &str| answer.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert!(header("content-type").starts_with(kind), "{path}: {}", header("content-type"));
        let csp = header("content-security-policy");
        assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff");
    }
    let index: Value =
        kit.client.get(format!("{}/", kit.mock_url)).send().await.expect("get").json().await.expect("json");
    assert_eq!(index["links"]["console"], "/_mock/console", "{index}");
    // The page has no inline script for the policy to refuse.
    let html = kit.client.get(format!("{}/_mock/console", kit.mock_url)).send().await.unwrap().text().await.unwrap();
    // Every script element loads a file; no element carries an event-handler attribute.
    for (at, _) in html.match_indices("<script") {
        let tag = &html[at..at + html[at..].find('>').expect("a closed tag")];
        assert!(tag.contains(" src=\"/_mock/console/"), "an inline script: {tag}");
    }
    let lower = html.to_ascii_lowercase();
    let handler = lower.match_indices(" on").find(|(at, _)| {
        let name: String = lower[at + 1..].chars().take_while(|c| c.is_ascii_alphabetic()).collect();
        name.len() > 2 && lower[at + 1 + name.len()..].starts_with('=')
    });
    assert!(handler.is_none(), "an inline event handler at {handler:?}");
    // Reading the mock's state (the console polls it) does not fill the journal.
    kit.get("/_mock/v1/cards").await;
    let journal = kit.get("/_mock/v1/requests").await;
    let reads =
        journal["requests"].as_array().expect("requests").iter().filter(|e| e["path"] == "/_mock/v1/cards").count();
    assert_eq!(reads, 0, "{journal}");
}
