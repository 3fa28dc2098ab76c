//! Verestro DataCore's Lifecycle API as the adapter calls it: the methods the relay forwards
//! processor events to (approach `datacore`).

use std::time::Duration;

use actix_web::http::Method;
use tmp_protocol::lifecycle_api::{LifecycleCard, LifecycleCardReplace, LifecycleCardUpdate};

use super::{ApiClient, CallError, destination_client, segment};
use crate::config::DestinationSettings;

/// Every call carries the caller's correlation id and idempotency key (the relay's: its outbox
/// row id, stable across attempts).
pub struct LifecycleApiClient {
    pub api: ApiClient,
}

impl LifecycleApiClient {
    /// A client toward `forwarding.lifecycle_api` (`key` names it in errors), `timeout` per call,
    /// at most `connections` at once.
    pub fn new(
        key: &str,
        destination: &DestinationSettings,
        timeout: Duration,
        connections: usize,
    ) -> anyhow::Result<LifecycleApiClient> {
        Ok(LifecycleApiClient { api: ApiClient { http: destination_client(key, destination, timeout, connections)? } })
    }

    fn card(card_id: &str, tail: &str) -> String {
        format!("/lifecycle/v1/cards/{}{tail}", segment(card_id))
    }

    /// `POST /lifecycle/v1/cards`.
    pub async fn create_card(&self, card: &LifecycleCard, key: &str, correlation_id: &str) -> Result<(), CallError> {
        self.api.call_for_status(Method::POST, "/lifecycle/v1/cards", Some(card), Some(key), correlation_id).await
    }

    /// `PATCH /lifecycle/v1/cards/{cardId}`.
    pub async fn update_card(
        &self,
        card_id: &str,
        update: &LifecycleCardUpdate,
        key: &str,
        correlation_id: &str,
    ) -> Result<(), CallError> {
        let path = Self::card(card_id, "");
        self.api.call_for_status(Method::PATCH, &path, Some(update), Some(key), correlation_id).await
    }

    /// `POST /lifecycle/v1/cards/{cardId}/replace`.
    pub async fn replace_card(
        &self,
        card_id: &str,
        replace: &LifecycleCardReplace,
        key: &str,
        correlation_id: &str,
    ) -> Result<(), CallError> {
        let path = Self::card(card_id, "/replace");
        self.api.call_for_status(Method::POST, &path, Some(replace), Some(key), correlation_id).await
    }

    /// `DELETE /lifecycle/v1/cards/{cardId}`.
    pub async fn delete_card(&self, card_id: &str, key: &str, correlation_id: &str) -> Result<(), CallError> {
        let path = Self::card(card_id, "");
        self.api.call_for_status(Method::DELETE, &path, None::<&()>, Some(key), correlation_id).await
    }
}
