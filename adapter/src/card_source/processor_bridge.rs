//! Card source that asks the issuer's processor over HTTP (the bridge contract in
//! `tmp_protocol::bridge`, documented in `docs/bridge.md`).

use std::time::Duration;

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use serde::Serialize;
use tmp_protocol::bridge::{
    BridgeCard, BridgeCvcRequest, BridgeCvcResponse, BridgeLookupRequest, LOOKUP_PATH, VERIFY_CVC_PATH,
};
use tmp_protocol::headers::CORRELATION_ID;
use tmp_protocol::sensitive::{Cvc, Pan};
use tmp_protocol::webhook::{SignatureHeaders, WebhookSecret};

use super::{CardFacts, CardSource, CardSourceError};
use crate::config::ProcessorBridgeSettings;

pub struct ProcessorBridge {
    client: reqwest::Client,
    base_url: String,
    secret: Option<WebhookSecret>,
}

impl ProcessorBridge {
    /// `timeout` bounds each call; the verification deadline bounds the whole decision.
    pub fn new(settings: &ProcessorBridgeSettings, timeout: Duration) -> anyhow::Result<ProcessorBridge> {
        let mut builder = reqwest::Client::builder().timeout(timeout).redirect(reqwest::redirect::Policy::none());
        if let Some(ca_file) = &settings.ca_file {
            builder = builder.use_preconfigured_tls(crate::tls::client_config_with_roots(ca_file)?);
        }
        let secret = settings
            .hmac_secret
            .as_deref()
            .map(WebhookSecret::parse)
            .transpose()
            .context("card_source.processor_bridge.hmac_secret")?;
        Ok(ProcessorBridge {
            client: builder.build().context("building the processor bridge HTTP client")?,
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            secret,
        })
    }

    async fn post<T: Serialize>(&self, path: &str, body: &T) -> Result<reqwest::Response, CardSourceError> {
        let body = serde_json::to_vec(body).map_err(|e| CardSourceError::Unavailable(e.into()))?;
        let mut request = self
            .client
            .post(format!("{}{}", self.base_url, path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(CORRELATION_ID, crate::http::correlation::current());
        if let Some(secret) = &self.secret {
            let headers = SignatureHeaders::sign_now(std::slice::from_ref(secret), &body)
                .map_err(|e| CardSourceError::Unavailable(e.into()))?;
            for (name, value) in headers.to_header_pairs() {
                request = request.header(name, value);
            }
        }
        request.body(body).send().await.map_err(|e| match e.is_timeout() {
            true => CardSourceError::Timeout,
            false => CardSourceError::Unavailable(anyhow!("processor bridge request failed: {}", e.without_url())),
        })
    }
}

async fn json_body<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T, CardSourceError> {
    let bytes = response.bytes().await.map_err(|e| match e.is_timeout() {
        true => CardSourceError::Timeout,
        false => CardSourceError::Unavailable(anyhow!("processor bridge body: {}", e.without_url())),
    })?;
    serde_json::from_slice(&bytes)
        // serde_json messages can quote input; the bridge's answers may hold card data.
        .map_err(|e| {
            CardSourceError::Unavailable(anyhow!("processor bridge answered an invalid body ({:?})", e.classify()))
        })
}

#[async_trait]
impl CardSource for ProcessorBridge {
    fn name(&self) -> &'static str {
        "processor_bridge"
    }

    #[tracing::instrument(skip_all)]
    async fn lookup(&self, pan: &Pan) -> Result<Option<CardFacts>, CardSourceError> {
        let response = self.post(LOOKUP_PATH, &BridgeLookupRequest { pan: pan.clone() }).await?;
        match response.status() {
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                let card: BridgeCard = json_body(response).await?;
                Ok(Some(CardFacts {
                    card_id: card.card_id,
                    status: card.status,
                    expiry: card.expiry,
                    pan_last4: card.pan_last4,
                    cardholder: card.cardholder,
                    product_category: card.product_category,
                }))
            }
            status => Err(CardSourceError::Unavailable(anyhow!("processor bridge lookup answered {status}"))),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn check_cvc(&self, card: &CardFacts, pan: &Pan, cvc: &Cvc) -> Result<bool, CardSourceError> {
        let request = BridgeCvcRequest {
            card_id: card.card_id.clone(),
            pan: pan.clone(),
            expiry: card.expiry.clone(),
            cvc: cvc.clone(),
        };
        let response = self.post(VERIFY_CVC_PATH, &request).await?;
        if !response.status().is_success() {
            return Err(CardSourceError::Unavailable(anyhow!(
                "processor bridge verify-cvc answered {}",
                response.status()
            )));
        }
        let answer: BridgeCvcResponse = json_body(response).await?;
        Ok(answer.matches)
    }
}
