//! The TMP API calls the ops API makes on the issuer's behalf — a card's tokens, sign card (push
//! provisioning), token actions — on the same signed client, secrets and TLS as forwarding
//! (`forwarding.tmp_api`), with `ops.tmp_request_timeout_ms` per call.

use std::time::Duration;

use actix_web::http::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tmp_protocol::tmp_api::{SignCardRequest, SignCardResponse, TokenAction, TokenActionRequest, TokenInfo, TokenList};

use tmp_edge::client::{ErrorAnswer, SendError, SignedClient};

use super::client::destination_client;
use crate::config::Settings;

/// Why a TMP API call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TmpError {
    /// Unreachable, timed out, 408, 429 or 5xx: try again later (`retry_after` when TMP said).
    Unavailable { cause: String, retry_after: Option<Duration> },
    /// Any other non-success answer (404 unknown card or token, 409 state, 422, …).
    Refused(ErrorAnswer),
    /// A success whose body does not follow the contract.
    BadAnswer(String),
}

impl std::fmt::Display for TmpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TmpError::Unavailable { cause, .. } => write!(f, "TMP unavailable: {cause}"),
            TmpError::Refused(answer) => write!(f, "TMP refused: {}", answer.summary()),
            TmpError::BadAnswer(what) => write!(f, "TMP answered outside the contract: {what}"),
        }
    }
}

impl std::error::Error for TmpError {}

/// A path segment, percent-encoded.
fn segment(s: &str) -> String {
    super::deliver::segment(s)
}

pub struct TmpApiClient {
    http: SignedClient,
}

impl TmpApiClient {
    pub fn new(settings: &Settings) -> anyhow::Result<TmpApiClient> {
        let timeout = Duration::from_millis(settings.ops.tmp_request_timeout_ms);
        let connections = tmp_edge::client::DEFAULT_MAX_CONNECTIONS;
        let http = destination_client("forwarding.tmp_api", &settings.forwarding.tmp_api, timeout, connections)?;
        Ok(TmpApiClient { http })
    }

    /// `GET /tmp-api/v1/cards/{cardId}/tokens`.
    #[tracing::instrument(skip_all)]
    pub async fn card_tokens(&self, card_id: &str, correlation_id: &str) -> Result<TokenList, TmpError> {
        let path = format!("/tmp-api/v1/cards/{}/tokens", segment(card_id));
        self.call(Method::GET, &path, None::<&()>, None, correlation_id).await
    }

    /// `POST /tmp-api/v1/cards/{cardId}/sign`.
    #[tracing::instrument(skip_all)]
    pub async fn sign_card(
        &self,
        card_id: &str,
        request: &SignCardRequest,
        idempotency_key: &str,
        correlation_id: &str,
    ) -> Result<SignCardResponse, TmpError> {
        let path = format!("/tmp-api/v1/cards/{}/sign", segment(card_id));
        self.call(Method::POST, &path, Some(request), Some(idempotency_key), correlation_id).await
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
    ) -> Result<TokenInfo, TmpError> {
        let path = format!("/tmp-api/v1/tokens/{}/{}", segment(token_id), action.path_segment());
        self.call(Method::POST, &path, Some(request), Some(idempotency_key), correlation_id).await
    }

    async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        idempotency_key: Option<&str>,
        correlation_id: &str,
    ) -> Result<R, TmpError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|_| TmpError::BadAnswer("the request body does not serialize".into()))?;
        let unavailable = |cause: &str| TmpError::Unavailable { cause: cause.to_owned(), retry_after: None };
        let response = match self.http.send(method, path, body, idempotency_key, correlation_id).await {
            Ok(response) => response,
            Err(SendError::Invalid(why)) => return Err(TmpError::BadAnswer(why)),
            Err(error) => return Err(unavailable(error.as_str())),
        };
        if !response.is_success() {
            let answer = response.error_answer();
            return Err(if answer.is_transient() {
                TmpError::Unavailable { cause: answer.summary(), retry_after: answer.retry_after }
            } else {
                TmpError::Refused(answer)
            });
        }
        response.json().map_err(|_| TmpError::BadAnswer(format!("{path}: not the expected JSON")))
    }
}
