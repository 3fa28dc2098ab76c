//! Fault injection per route: latency (fixed or random), an error status at a rate, a dropped
//! connection. Rules come from the config file and from `/_mock/v1/faults` at run time; the
//! same rules apply to inbound routes (the middleware) and to outbound calls to the issuer
//! (the sender and the simulator), both named `"METHOD /path/pattern"`.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// `"POST /tmp-api/v1/cards/{cardId}/status"`, `"POST /issuer-api/v1/cards/verify"`, …
    pub route: String,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// With `latency_ms`: a random delay in `[latency_ms, latency_max_ms]`.
    #[serde(default)]
    pub latency_max_ms: Option<u64>,
    #[serde(default)]
    pub error_status: Option<u16>,
    #[serde(default)]
    pub drop_connection: bool,
    /// Probability that the rule fires on a matching request.
    #[serde(default = "one")]
    pub rate: f64,
    /// Fire at most this many times.
    #[serde(default)]
    pub times: Option<u32>,
    /// Outbound only: deliver first, then fail the attempt (the issuer's answer is lost).
    #[serde(default)]
    pub after_delivery: bool,
    /// Outbound only: TMP loses the callback — it is never sent and never retried (a token
    /// event the issuer does not hear of: its mirror drifts until reconciled).
    #[serde(default)]
    pub discard: bool,
    /// Outbound only: the rule fires only on a callback whose body contains this text (a token
    /// id, a card id) — so one test's fault does not take another's callback on the same route.
    #[serde(default)]
    pub body_contains: Option<String>,
}

fn one() -> f64 {
    1.0
}

impl FaultRule {
    pub fn validate(&self) -> Result<(), String> {
        let Some((method, path)) = self.route.split_once(' ') else {
            return Err("route must be \"METHOD /path\"".into());
        };
        if method.is_empty() || !path.starts_with('/') {
            return Err("route must be \"METHOD /path\"".into());
        }
        if !(0.0..=1.0).contains(&self.rate) {
            return Err("rate must be between 0 and 1".into());
        }
        if let Some(status) = self.error_status
            && !(400..=599).contains(&status)
        {
            return Err("error_status must be a 4xx or 5xx status".into());
        }
        if self.latency_max_ms.is_some() && self.latency_ms.is_none() {
            return Err("latency_max_ms needs latency_ms".into());
        }
        if let (Some(min), Some(max)) = (self.latency_ms, self.latency_max_ms)
            && max < min
        {
            return Err("latency_max_ms must not be below latency_ms".into());
        }
        if self.discard && (self.error_status.is_some() || self.drop_connection || self.after_delivery) {
            return Err(
                "discard loses the callback: it takes no error_status, drop_connection or after_delivery".into()
            );
        }
        if self.body_contains.as_deref().is_some_and(str::is_empty) {
            return Err("body_contains must not be empty".into());
        }
        if self.latency_ms.is_none() && self.error_status.is_none() && !self.drop_connection && !self.discard {
            return Err("a rule needs latency_ms, error_status, drop_connection or discard".into());
        }
        Ok(())
    }
}

/// What a fired rule does to one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultAction {
    pub latency: Option<Duration>,
    pub error_status: Option<u16>,
    pub drop_connection: bool,
    pub after_delivery: bool,
    pub discard: bool,
    /// Id of the rule that fired, for the journal.
    pub rule_id: Option<u64>,
}

impl FaultAction {
    pub fn fails(&self) -> bool {
        self.error_status.is_some() || self.drop_connection
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ActiveFault {
    pub id: u64,
    #[serde(flatten)]
    pub rule: FaultRule,
    /// How often the rule has fired.
    pub fired: u32,
}

#[derive(Debug, Default)]
pub struct Faults {
    inner: Mutex<FaultsInner>,
}

#[derive(Debug, Default)]
struct FaultsInner {
    next_id: u64,
    rules: Vec<ActiveFault>,
}

impl Faults {
    pub fn new(rules: &[FaultRule]) -> Faults {
        let faults = Faults::default();
        for rule in rules {
            faults.add(rule.clone());
        }
        faults
    }

    pub fn add(&self, rule: FaultRule) -> ActiveFault {
        let mut inner = self.lock();
        inner.next_id += 1;
        let active = ActiveFault { id: inner.next_id, rule, fired: 0 };
        inner.rules.push(active.clone());
        active
    }

    pub fn list(&self) -> Vec<ActiveFault> {
        self.lock().rules.clone()
    }

    pub fn remove(&self, id: u64) -> bool {
        let mut inner = self.lock();
        let before = inner.rules.len();
        inner.rules.retain(|r| r.id != id);
        inner.rules.len() != before
    }

    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// Whether any rule is set (fired out or not): without one, [`Faults::decide`] answers
    /// no fault whatever the route, and the caller need not name the route.
    pub fn any(&self) -> bool {
        !self.lock().rules.is_empty()
    }

    /// The action for one request on `route` (`"METHOD /pattern"`): the first matching rule
    /// that still has firings left and wins its dice roll. `body` is the outbound callback's
    /// (inbound requests are decided without their body: `None`, which a rule with
    /// `body_contains` never matches).
    pub fn decide(&self, route: &str, body: Option<&[u8]>) -> FaultAction {
        let mut inner = self.lock();
        for active in inner.rules.iter_mut() {
            let rule = &active.rule;
            if rule.route != route || rule.times.is_some_and(|t| active.fired >= t) {
                continue;
            }
            if let Some(text) = &rule.body_contains
                && !body.is_some_and(|b| b.windows(text.len()).any(|w| w == text.as_bytes()))
            {
                continue;
            }
            if rule.rate < 1.0 && !rand::random_bool(rule.rate) {
                continue;
            }
            active.fired += 1;
            let latency = rule.latency_ms.map(|min| {
                let ms = match rule.latency_max_ms {
                    Some(max) if max > min => rand::random_range(min..=max),
                    _ => min,
                };
                Duration::from_millis(ms)
            });
            return FaultAction {
                latency,
                error_status: rule.error_status,
                drop_connection: rule.drop_connection,
                after_delivery: rule.after_delivery,
                discard: rule.discard,
                rule_id: Some(active.id),
            };
        }
        FaultAction::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultsInner> {
        // A panic while holding this lock cannot leave the rules inconsistent: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(route: &str) -> FaultRule {
        FaultRule {
            route: route.into(),
            latency_ms: None,
            latency_max_ms: None,
            error_status: Some(503),
            drop_connection: false,
            rate: 1.0,
            times: Some(1),
            after_delivery: false,
            discard: false,
            body_contains: None,
        }
    }

    #[test]
    fn a_rule_fires_at_most_times() {
        let faults = Faults::new(&[rule("POST /x")]);
        assert_eq!(faults.decide("POST /x", None).error_status, Some(503));
        assert_eq!(faults.decide("POST /x", None), FaultAction::default());
        assert_eq!(faults.decide("POST /y", None), FaultAction::default());
    }

    #[test]
    fn a_rule_with_body_contains_takes_only_the_callbacks_it_names() {
        let mut mine = rule("POST /x");
        mine.body_contains = Some("tok-7".into());
        let faults = Faults::new(&[mine.clone()]);
        assert_eq!(faults.decide("POST /x", Some(br#"{"tokenId":"tok-8"}"#)), FaultAction::default());
        assert_eq!(faults.decide("POST /x", None), FaultAction::default(), "inbound: never");
        assert_eq!(faults.decide("POST /x", Some(br#"{"tokenId":"tok-7"}"#)).error_status, Some(503));
        mine.body_contains = Some(String::new());
        assert!(mine.validate().unwrap_err().contains("body_contains"));
    }

    #[test]
    fn validation_names_the_problem() {
        let mut bad = rule("/x");
        assert!(bad.validate().is_err());
        bad.route = "POST /x".into();
        bad.rate = 2.0;
        assert!(bad.validate().unwrap_err().contains("rate"));
        // A lost callback is not also a failed one.
        let mut lost = rule("POST /x");
        lost.discard = true;
        assert!(lost.validate().unwrap_err().contains("discard"));
        lost.error_status = None;
        assert_eq!(lost.validate(), Ok(()));
        assert!(Faults::new(&[lost]).decide("POST /x", None).discard);
    }
}
