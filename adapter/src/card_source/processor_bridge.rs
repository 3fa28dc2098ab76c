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
use crate::domain::fields::{check_id, check_text};

pub struct ProcessorBridge {
    client: reqwest::Client,
    base_url: String,
    secret: Option<WebhookSecret>,
}

impl ProcessorBridge {
    /// `timeout` bounds each call; the verification deadline bounds the whole decision.
    pub fn new(settings: &ProcessorBridgeSettings, timeout: Duration) -> anyhow::Result<ProcessorBridge> {
        let tls = tmp_edge::client::ClientTls { ca_file: settings.ca_file.as_deref(), identity: None };
        let secret = settings
            .hmac_secret
            .as_deref()
            .map(WebhookSecret::parse)
            .transpose()
            .context("card_source.processor_bridge.hmac_secret")?;
        Ok(ProcessorBridge {
            client: tmp_edge::client::http_client(tls, timeout).context("the processor bridge's HTTP client")?,
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
            .header(CORRELATION_ID, tmp_edge::correlation::current());
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

/// Largest bridge answer read: a card is a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

async fn json_body<T: serde::de::DeserializeOwned>(mut response: reqwest::Response) -> Result<T, CardSourceError> {
    let transport = |e: reqwest::Error| match e.is_timeout() {
        true => CardSourceError::Timeout,
        false => CardSourceError::Unavailable(anyhow!("processor bridge body: {}", e.without_url())),
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(CardSourceError::Unavailable(anyhow!(
                "processor bridge answer exceeds {MAX_ANSWER_BYTES} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    // The protocol's parser never quotes values: the bridge's answers may hold card data.
    tmp_protocol::json::parse(&bytes, "")
        .map_err(|e| CardSourceError::Unavailable(anyhow!("processor bridge answered an invalid body: {e}")))
}

/// The bridge's card, checked like any input: its id and texts end up in the audit trail and
/// in answers to TMP, so a PAN used as a card id (legacy processors do that) is refused.
fn checked(card: BridgeCard) -> Result<CardFacts, CardSourceError> {
    let invalid = |e: tmp_edge::error::ApiError| {
        CardSourceError::Unavailable(anyhow!("processor bridge answered an invalid card: {e}"))
    };
    check_id("cardId", &card.card_id).map_err(invalid)?;
    if card.pan_last4.len() != 4 || !card.pan_last4.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CardSourceError::Unavailable(anyhow!("processor bridge answered an invalid panLast4")));
    }
    for (field, value) in [
        ("productCategory", &card.product_category),
        ("cardholder.phone", &card.cardholder.phone),
        ("cardholder.email", &card.cardholder.email),
    ] {
        if let Some(value) = value {
            check_text(field, value).map_err(invalid)?;
        }
    }
    Ok(CardFacts {
        card_id: card.card_id,
        status: card.status,
        expiry: card.expiry,
        pan_last4: card.pan_last4,
        cardholder: card.cardholder,
        product_category: card.product_category,
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
                checked(card).map(Some)
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
