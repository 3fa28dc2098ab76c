//! The audit row of an operator write: who, what, on what, why, how it ended. Built here for
//! both surfaces, so a CLI write and an ops API write leave the same kind of row.

use time::OffsetDateTime;

use crate::store::OpsAuditRecord;

/// What a write is doing, filled in as it learns its target's card and the operator's reason.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    /// `token.suspend`, `provisioning.apple_pay`, `outbox.retry`, `apikey.create`, …
    pub action: &'static str,
    pub target: Option<String>,
    pub card_id: Option<String>,
    pub reason: Option<String>,
}

impl AuditDraft {
    pub fn new(action: &'static str, target: Option<String>, card_id: Option<String>) -> AuditDraft {
        AuditDraft { action, target, card_id, reason: None }
    }

    /// The row: `actor` did it, it ended with `outcome` (`ok` or the error code) and `status`
    /// (the HTTP status; 0 for the CLI).
    pub fn record(&self, actor: &str, outcome: &str, status: u16, correlation_id: String) -> OpsAuditRecord {
        OpsAuditRecord {
            id: uuid::Uuid::new_v4(),
            at: OffsetDateTime::now_utc(),
            actor: actor.to_owned(),
            action: self.action.to_owned(),
            target: self.target.clone(),
            card_id: self.card_id.clone(),
            reason: self.reason.clone(),
            outcome: outcome.to_owned(),
            status,
            correlation_id,
        }
    }
}

/// Who the audit names for a CLI write: `cli:<user>` (the login name, printable ASCII), or `cli`.
pub fn cli_actor() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_default();
    let user: String = user.chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
    if user.is_empty() { "cli".to_owned() } else { format!("cli:{user}") }
}
