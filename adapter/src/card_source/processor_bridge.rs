//! Card source that asks the issuer's processor over HTTP (the bridge contract in
//! `tmp_protocol::bridge`, documented in `docs/bridge.md`).

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use anyhow::{Context, anyhow};
use async_trait::async_trait;
use serde::Serialize;
use tmp_edge::client::{ClientOptions, ClientTls, HttpClient, Response, SendError, SignedClient};
use tmp_protocol::bridge::{
    BridgeCard, BridgeCvcRequest, BridgeCvcResponse, BridgeDecideRequest, BridgeDecideResponse, BridgeLookupRequest,
    BridgeTokenization, DECIDE_PATH, LOOKUP_PATH, VERIFY_CVC_PATH,
};
use tmp_protocol::issuer_api::VerifyCardRequest;
use tmp_protocol::sensitive::{Cvc, Pan};

use super::{CardFacts, CardSource, CardSourceError, DecisionHook, HookAnswer, HookError, HookQuestion};
use crate::config::ProcessorBridgeSettings;
use tmp_protocol::fields::{FreeText, Id};

pub struct ProcessorBridge {
    client: SignedClient,
}

impl ProcessorBridge {
    /// `timeout` bounds each call; the verification deadline bounds the whole decision.
    pub fn new(settings: &ProcessorBridgeSettings, timeout: Duration) -> anyhow::Result<ProcessorBridge> {
        let tls = ClientTls { ca_file: settings.ca_file.as_deref(), identity: None };
        let options = ClientOptions { body_limit: MAX_ANSWER_BYTES, ..ClientOptions::with_timeout(timeout) };
        let http = HttpClient::new(tls, options).context("card_source.processor_bridge.ca_file")?;
        let secrets = settings.hmac_secret.iter().cloned().collect();
        Ok(ProcessorBridge { client: SignedClient::new(&settings.base_url, secrets, http) })
    }

    async fn post<T: Serialize>(&self, path: &str, body: &T) -> Result<Response, CardSourceError> {
        self.send(path, body).await.map_err(|e| match e {
            SendError::Timeout => CardSourceError::Timeout,
            other => CardSourceError::Unavailable(anyhow!("processor bridge request failed: {other}")),
        })
    }

    async fn send<T: Serialize>(&self, path: &str, body: &T) -> Result<Response, SendError> {
        let body = serde_json::to_vec(body).map_err(|e| SendError::Invalid(e.to_string()))?;
        let correlation_id = tmp_edge::correlation::current();
        self.client.send(Method::POST, path, Some(body), None, &correlation_id).await
    }
}

/// Largest bridge answer read: a card is a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

fn json_body<T: serde::de::DeserializeOwned>(response: &Response) -> Result<T, CardSourceError> {
    // The protocol's parser never quotes values: the bridge's answers may hold card data.
    tmp_protocol::json::parse(&response.body, "")
        .map_err(|e| CardSourceError::Unavailable(anyhow!("processor bridge answered an invalid body: {e}")))
}

/// The bridge's card, checked like any input: its id and texts end up in the audit trail and
/// in answers to TMP, so a PAN used as a card id (legacy processors do that) is refused.
fn checked(card: BridgeCard) -> Result<CardFacts, CardSourceError> {
    let invalid = |e: tmp_protocol::fields::FieldError| {
        CardSourceError::Unavailable(anyhow!("processor bridge answered an invalid card: {e}"))
    };
    Id::parse(card.card_id.as_str()).map_err(invalid)?;
    if card.pan_last4.len() != 4 || !card.pan_last4.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CardSourceError::Unavailable(anyhow!("processor bridge answered an invalid panLast4")));
    }
    // The cardholder's contact is `FreeText`, checked as the answer was parsed.
    if let Some(category) = &card.product_category {
        FreeText::parse(category.as_str()).map_err(invalid)?;
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

/// TMP's context of a tokenization for the processor: everything but the card data (the
/// `encryptedPayload` stays with the adapter).
fn context(request: &VerifyCardRequest) -> BridgeTokenization {
    BridgeTokenization {
        tokenization_id: request.tokenization_id.clone(),
        tsp: request.tsp,
        token_requestor: request.token_requestor.clone(),
        provisioning_method: request.provisioning_method,
        wallet_recommendation: request.wallet_recommendation,
        wallet_score: request.wallet_score,
        device_score: request.device_score,
        device: request.device.clone(),
        token_type: request.token_type,
        risk: request.risk.clone(),
    }
}

#[async_trait]
impl CardSource for ProcessorBridge {
    fn name(&self) -> &'static str {
        "processor_bridge"
    }

    #[tracing::instrument(skip_all)]
    async fn lookup(
        &self,
        pan: &Pan,
        tokenization: Option<&VerifyCardRequest>,
    ) -> Result<Option<CardFacts>, CardSourceError> {
        let request = BridgeLookupRequest { pan: pan.clone(), tokenization: tokenization.map(context) };
        let response = self.post(LOOKUP_PATH, &request).await?;
        match response.status {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                let card: BridgeCard = json_body(&response)?;
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
        if !response.is_success() {
            return Err(CardSourceError::Unavailable(anyhow!(
                "processor bridge verify-cvc answered {}",
                response.status
            )));
        }
        let answer: BridgeCvcResponse = json_body(&response)?;
        Ok(answer.matches)
    }
}

#[async_trait]
impl DecisionHook for ProcessorBridge {
    #[tracing::instrument(skip_all)]
    async fn decide(&self, question: &HookQuestion<'_>) -> Result<HookAnswer, HookError> {
        let request = BridgeDecideRequest {
            card_id: question.card_id.to_owned(),
            tokenization: context(question.request),
            decision: question.decision,
            reason: question.reason,
        };
        // An answer too large to read is the engine's, and not a decision: INVALID, like any
        // other answer that is not one; FAILED is kept for no answer at all.
        let response = self.send(DECIDE_PATH, &request).await.map_err(|e| match e {
            SendError::Timeout => HookError::Timeout,
            SendError::TooLarge => HookError::Invalid("answer too large".to_owned()),
            other => HookError::Failed(anyhow!("processor bridge decide failed: {other}")),
        })?;
        if response.status != StatusCode::OK {
            return Err(HookError::Invalid(format!("status {}", response.status)));
        }
        let answer: BridgeDecideResponse = json_body(&response).map_err(|e| HookError::Invalid(format!("{e:#}")))?;
        Ok(HookAnswer { decision: answer.decision, reason: answer.reason })
    }
}
