//! The mock's control plane (`/_mock/v1/…`) over HTTP: the simulator that drives the target as
//! TMP does, the state the target's forwarding changed, the journal and fault injection. Works
//! against any running mock-tmp, not only one this process started.

use actix_web::http::Method;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use tmp_edge::client::{ClientOptions, HttpClient, Request};

pub struct MockApi {
    pub base_url: String,
    http: HttpClient,
}

impl MockApi {
    pub fn new(base_url: &str) -> anyhow::Result<MockApi> {
        // The journal is read whole and may hold up to the mock's `journal.capacity` entries
        // (`tmp-kit load` reads millions): the limit bounds memory, not a reasonable answer.
        let options =
            ClientOptions { body_limit: 1 << 30, ..ClientOptions::with_timeout(crate::client::REQUEST_TIMEOUT) };
        let http = HttpClient::plain(options)?;
        Ok(MockApi { base_url: base_url.trim_end_matches('/').to_owned(), http })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.base_url);
        let mut request = Request::new(method.clone(), url.clone());
        if let Some(body) = body {
            request = request.json_body(serde_json::to_vec(&body)?);
        }
        let response =
            self.http.send(request).await.with_context(|| format!("{method} {url}: no answer from the mock"))?;
        let status = response.status.as_u16();
        let text = response.text();
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Ok((status, value))
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let (status, value) = self.call(method.clone(), path, body).await?;
        if !(200..300).contains(&status) {
            bail!("{method} {path} on the mock answered {status}: {value}");
        }
        Ok(value)
    }

    /// `POST /_mock/v1/simulate/tokenizations`: the mock tokenizes as a wallet would (and calls
    /// the target's Issuer API on the way). Answers the status and the mock's summary.
    pub async fn tokenize(&self, request: Value) -> anyhow::Result<(u16, Value)> {
        self.call(Method::POST, "/_mock/v1/simulate/tokenizations", Some(request)).await
    }

    pub async fn push(&self, request: Value) -> anyhow::Result<(u16, Value)> {
        self.call(Method::POST, "/_mock/v1/simulate/wallet/push", Some(request)).await
    }

    /// The wallet's web flow of a web push, as a browser reaches it (`url` is the `pushUrl`
    /// the target handed out): the page's status and HTML.
    pub async fn web_push_page(&self, url: &str) -> anyhow::Result<(u16, String)> {
        let response = self.http.send(Request::get(url)).await.with_context(|| format!("GET {url}: no answer"))?;
        Ok((response.status.as_u16(), response.text()))
    }

    /// The web flow's form posted as a browser would (`deviceName=…&terms=accepted&action=add`):
    /// the status and where it sends the browser (`Location`), not followed.
    pub async fn web_push_submit(&self, url: &str, form: &str) -> anyhow::Result<(u16, Option<String>)> {
        let mut request = Request::post(url)
            .header(actix_web::http::header::CONTENT_TYPE.as_str(), "application/x-www-form-urlencoded");
        request.body = form.to_owned().into();
        let response = self.http.send(request).await.with_context(|| format!("POST {url}: no answer"))?;
        Ok((response.status.as_u16(), response.header("location").map(str::to_owned)))
    }

    pub async fn enter_otp(&self, token_id: &str, otp: &str) -> anyhow::Result<(u16, Value)> {
        self.call(Method::POST, &format!("/_mock/v1/simulate/tokens/{token_id}/otp"), Some(json!({"otp": otp}))).await
    }

    /// The cardholder picks a step-up method the issuer offered for a token (`OTP_SMS`, …).
    pub async fn choose_step_up(&self, token_id: &str, method: &str) -> anyhow::Result<(u16, Value)> {
        let body = Some(json!({"method": method}));
        self.call(Method::POST, &format!("/_mock/v1/simulate/tokens/{token_id}/step-up"), body).await
    }

    /// The wallet suspends or resumes a token on its own (`suspend` / `resume`).
    pub async fn wallet_action(&self, token_id: &str, action: &str) -> anyhow::Result<Value> {
        self.ok(Method::POST, &format!("/_mock/v1/simulate/tokens/{token_id}/wallet/{action}"), Some(json!({}))).await
    }

    /// A card TMP knows without DataCore (push provisioning in the external approach).
    pub async fn seed_card(&self, card: Value) -> anyhow::Result<Value> {
        self.ok(Method::POST, "/_mock/v1/cards", Some(card)).await
    }

    /// Every card the mock holds.
    pub async fn cards(&self) -> anyhow::Result<Vec<Value>> {
        let cards = self.ok(Method::GET, "/_mock/v1/cards", None).await?;
        Ok(cards["cards"].as_array().cloned().unwrap_or_default())
    }

    pub async fn card(&self, card_id: &str) -> anyhow::Result<Option<Value>> {
        let cards = self.ok(Method::GET, "/_mock/v1/cards", None).await?;
        Ok(cards["cards"].as_array().and_then(|all| all.iter().find(|c| c["cardId"] == card_id)).cloned())
    }

    pub async fn tokens_of(&self, card_id: &str) -> anyhow::Result<Vec<Value>> {
        let tokens = self.ok(Method::GET, &format!("/_mock/v1/tokens?cardId={card_id}"), None).await?;
        Ok(tokens["tokens"].as_array().cloned().unwrap_or_default())
    }

    pub async fn token(&self, token_id: &str) -> anyhow::Result<Option<Value>> {
        let tokens = self.ok(Method::GET, "/_mock/v1/tokens", None).await?;
        Ok(tokens["tokens"].as_array().and_then(|all| all.iter().find(|t| t["tokenId"] == token_id)).cloned())
    }

    /// The journal: every request the mock received or sent.
    pub async fn requests(&self) -> anyhow::Result<Vec<Value>> {
        let journal = self.ok(Method::GET, "/_mock/v1/requests", None).await?;
        Ok(journal["requests"].as_array().cloned().unwrap_or_default())
    }

    /// Requests the mock received on paths that mention `card_id`, oldest first.
    pub async fn received_for(&self, card_id: &str) -> anyhow::Result<Vec<Value>> {
        let needle = format!("/{card_id}");
        Ok(self
            .requests()
            .await?
            .into_iter()
            .filter(|r| r["direction"] == "received")
            .filter(|r| {
                r["path"].as_str().is_some_and(|p| p.ends_with(&needle) || p.contains(&format!("{needle}/")))
                    || r["body"]["cardId"] == card_id
            })
            .collect())
    }

    /// Empties the journal.
    pub async fn clear_requests(&self) -> anyhow::Result<()> {
        self.ok(Method::DELETE, "/_mock/v1/requests", None).await.map(drop)
    }

    /// Adds a fault rule; answers its id.
    pub async fn add_fault(&self, rule: Value) -> anyhow::Result<u64> {
        let fault = self.ok(Method::POST, "/_mock/v1/faults", Some(rule)).await?;
        fault["id"].as_u64().context("the mock answered a fault without an id")
    }

    pub async fn remove_fault(&self, id: u64) -> anyhow::Result<()> {
        self.ok(Method::DELETE, &format!("/_mock/v1/faults/{id}"), None).await.map(drop)
    }
}
