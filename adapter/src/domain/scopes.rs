//! What an ops API caller may do: the scopes of API keys, operator tokens and client
//! certificates.

use std::collections::BTreeSet;

/// One permission of the ops API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read a card's tokens.
    TokensRead,
    /// Activate, suspend, resume and deactivate tokens.
    TokensWrite,
    /// Push provisioning (sign card for Apple Pay / Google Pay).
    Provisioning,
    /// Read the decision audit of a card and the audit of operator writes.
    AuditRead,
    /// Outbox administration.
    OutboxAdmin,
    /// Reload keys, secrets and certificates from the configuration.
    ConfigAdmin,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::TokensRead,
        Scope::TokensWrite,
        Scope::Provisioning,
        Scope::AuditRead,
        Scope::OutboxAdmin,
        Scope::ConfigAdmin,
    ];
    /// For messages: every scope name.
    pub const ALL_NAMES: &'static str =
        "tokens:read, tokens:write, provisioning, audit:read, outbox:admin, config:admin";

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TokensRead => "tokens:read",
            Scope::TokensWrite => "tokens:write",
            Scope::Provisioning => "provisioning",
            Scope::AuditRead => "audit:read",
            Scope::OutboxAdmin => "outbox:admin",
            Scope::ConfigAdmin => "config:admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope name in the configuration (`ops.mtls.subjects`): an unknown one names itself and the
/// scopes there are.
impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Scope::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("`{name}` is not a scope ({})", Scope::ALL_NAMES)))
    }
}

/// Parses scope names; the first unknown one is the error.
pub fn parse_all<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<BTreeSet<Scope>, String> {
    names.into_iter().map(|n| Scope::parse(n).ok_or_else(|| n.to_owned())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
            assert!(Scope::ALL_NAMES.contains(scope.as_str()));
        }
        assert_eq!(Scope::parse("tokens:delete"), None);
        assert_eq!(parse_all(["tokens:read", "nope"]), Err("nope".to_owned()));
    }
}
