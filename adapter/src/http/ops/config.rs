//! Reloading keys, secrets and certificates on the ops API (scope `config:admin`): the reload
//! `SIGHUP` triggers (`startup::Reloader`), from the configuration directory the adapter was
//! started with, audited like every ops write. A refused reload changes nothing: the set in
//! force keeps serving, and the answer says why.

use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::outbox::ActionRequest;
use super::{Answer, AuditDraft, OpsErrors, Principal, optional_json, optional_reason};
use crate::domain::scopes::Scope;
use crate::http::AppState;
use crate::startup::Reloader;
use tmp_edge::error::ApiError;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReloadAck {
    /// What is in force now: JWE kids, how many secrets, the active data key, sinks, whether the
    /// listeners' certificates were replaced. Never a secret.
    pub summary: String,
}

/// Loads the configuration again and replaces keys, secrets and certificates, or refuses with
/// 409 and the reason (nothing changed).
#[utoipa::path(
    post,
    path = "/ops/v1/config/reload",
    operation_id = "reload_config",
    tag = "Configuration",
    request_body(content = ActionRequest, description = "Optional; the reason is audited"),
    responses((status = 200, description = "The new set is in force", body = ReloadAck), OpsErrors),
    security(("bearer" = ["config:admin"]), ("mtls" = ["config:admin"]))
)]
#[tracing::instrument(skip_all)]
pub async fn reload(
    principal: Principal,
    state: Data<AppState>,
    reloader: Data<Reloader>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let draft = AuditDraft::new("config.reload", None, None);
    super::write(&state, &principal, &req, body, Scope::ConfigAdmin, draft, async |audit, _, bytes| {
        let action: ActionRequest = optional_json(bytes)?;
        audit.reason = optional_reason(action.reason)?;
        let summary = reloader.reload_from_source().await.map_err(|error| {
            ApiError::Conflict(format!("reload refused; the set in force keeps serving: {error:#}"))
        })?;
        Answer::ok(&ReloadAck { summary })
    })
    .await
}
