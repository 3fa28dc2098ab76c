//! TMP's API as the adapter calls it: the card-lifecycle methods the relay forwards processor
//! events to (approach `external`), and the calls the ops API makes on the issuer's behalf — a
//! card's tokens, sign card (push provisioning), token actions.

use std::time::Duration;

use actix_web::http::Method;
use tmp_protocol::tmp_api::{
    CardExpiryUpdate, CardMetadata, CardReplace, CardStatusUpdate, ResendActivationCodeRequest, SignCardRequest,
    SignCardResponse, TokenAction, TokenActionRequest, TokenInfo, TokenList,
};

use super::{ApiClient, CallError, destination_client, segment};
use crate::config::DestinationSettings;

/// Every call carries the caller's correlation id; writes carry an idempotency key (the relay's:
/// its outbox row id, stable across attempts).
pub struct TmpApiClient {
    pub api: ApiClient,
}

impl TmpApiClient {
    /// A client toward `forwarding.tmp_api` (`key` names it in errors), `timeout` per call, at
    /// most `connections` at once.
    pub fn new(
        key: &str,
        destination: &DestinationSettings,
        timeout: Duration,
        connections: usize,
    ) -> anyhow::Result<TmpApiClient> {
        Ok(TmpApiClient { api: ApiClient { http: destination_client(key, destination, timeout, connections)? } })
    }

    fn card(card_id: &str, tail: &str) -> String {
        format!("/tmp-api/v1/cards/{}{tail}", segment(card_id))
    }

    /// `GET /tmp-api/v1/cards/{cardId}/tokens`.
    #[tracing::instrument(skip_all)]
    pub async fn card_tokens(&self, card_id: &str, correlation_id: &str) -> Result<TokenList, CallError> {
        self.api.call(Method::GET, &Self::card(card_id, "/tokens"), None::<&()>, None, correlation_id).await
    }

    /// `POST /tmp-api/v1/cards/{cardId}/sign`.
    #[tracing::instrument(skip_all)]
    pub async fn sign_card(
        &self,
        card_id: &str,
        request: &SignCardRequest,
        idempotency_key: &str,
        correlation_id: &str,
    ) -> Result<SignCardResponse, CallError> {
        let path = Self::card(card_id, "/sign");
        self.api.call(Method::POST, &path, Some(request), Some(idempotency_key), correlation_id).await
    }

    /// `POST /tmp-api/v1/tokens/{tokenId}/{action}`.
    #[tracing::instrument(skip_all)]
    pub async fn token_action(
        &self,
        token_id: &str,
        action: TokenAction,
        request: &TokenActionRequest,
        idempotency_key: &str,
        correlation_id: &str,
    ) -> Result<TokenInfo, CallError> {
        let path = format!("/tmp-api/v1/tokens/{}/{}", segment(token_id), action.path_segment());
        self.api.call(Method::POST, &path, Some(request), Some(idempotency_key), correlation_id).await
    }

    /// `POST /tmp-api/v1/tokens/{tokenId}/activation-code/resend`.
    #[tracing::instrument(skip_all)]
    pub async fn resend_activation_code(
        &self,
        token_id: &str,
        request: &ResendActivationCodeRequest,
        idempotency_key: &str,
        correlation_id: &str,
    ) -> Result<TokenInfo, CallError> {
        let path = format!("/tmp-api/v1/tokens/{}/activation-code/resend", segment(token_id));
        self.api.call(Method::POST, &path, Some(request), Some(idempotency_key), correlation_id).await
    }

    /// `POST /tmp-api/v1/cards/{cardId}/status`.
    pub async fn update_card_status(
        &self,
        card_id: &str,
        update: &CardStatusUpdate,
        idempotency_key: &str,
        correlation_id: &str,
    ) -> Result<(), CallError> {
        let path = Self::card(card_id, "/status");
        self.api.call_for_status(Method::POST, &path, Some(update), Some(idempotency_key), correlation_id).await
    }

    /// `POST /tmp-api/v1/cards/{cardId}/replace`.
    pub async fn replace_card(
        &self,
        card_id: &str,
        replace: &CardReplace,
        idempotency_key: &str,
        correlation_id: &str,
    ) -> Result<(), CallError> {
        let path = Self::card(card_id, "/replace");
        self.api.call_for_status(Method::POST, &path, Some(replace), Some(idempotency_key), correlation_id).await
    }

    /// `POST /tmp-api/v1/cards/{cardId}/expiry`.
    pub async fn update_card_expiry(
        &self,
        card_id: &str,
        update: &CardExpiryUpdate,
        idempotency_key: &str,
        correlation_id: &str,
    ) -> Result<(), CallError> {
        let path = Self::card(card_id, "/expiry");
        self.api.call_for_status(Method::POST, &path, Some(update), Some(idempotency_key), correlation_id).await
    }

    /// `POST /tmp-api/v1/cards/{cardId}/metadata`.
    pub async fn update_card_metadata(
        &self,
        card_id: &str,
        metadata: &CardMetadata,
        idempotency_key: &str,
        correlation_id: &str,
    ) -> Result<(), CallError> {
        let path = Self::card(card_id, "/metadata");
        self.api.call_for_status(Method::POST, &path, Some(metadata), Some(idempotency_key), correlation_id).await
    }
}
