//! The request journal behind `GET /_mock/v1/requests`: what the mock received and what it
//! sent, newest last, bounded. Bodies are stored only after [`mask`]: card numbers, CVCs,
//! OTPs and encrypted payloads never enter it in clear.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Received,
    Sent,
}

/// How an exchange ended, from the mock's point of view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// An HTTP answer (any status).
    Answered,
    /// The connection was aborted (by a fault, or by the peer).
    Dropped,
    /// No answer within the timeout.
    TimedOut,
    /// The peer could not be reached.
    ConnectionFailed,
    /// The answer was discarded by an injected fault (outbound `after_delivery`).
    AnswerLost,
    /// A request that was never sent because an injected fault failed it.
    FaultInjected,
    /// A callback TMP lost (an injected `discard` fault): never sent, never retried.
    Discarded,
    /// The deadline passed and the mock answered for the issuer.
    StandIn,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub direction: Direction,
    pub method: String,
    /// Path of the request (inbound) or of the issuer's endpoint (outbound).
    pub path: String,
    /// Route pattern, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The W3C trace id the request carried (32 hex digits): one tokenization, followed from
    /// the simulator through the issuer and back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Attempt number of an outbound callback (1 = first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Id of the fault rule that fired, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_id: Option<u64>,
    /// Masked request body (JSON), when it was JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Free-text note (e.g. why the mock stood in). Never card data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl JournalEntry {
    pub fn new(direction: Direction, method: &str, path: &str, outcome: Outcome) -> JournalEntry {
        JournalEntry {
            seq: 0,
            at: OffsetDateTime::now_utc(),
            direction,
            method: method.to_owned(),
            path: path.to_owned(),
            route: None,
            status: None,
            outcome,
            idempotency_key: None,
            webhook_id: None,
            correlation_id: None,
            trace_id: None,
            attempt: None,
            fault_id: None,
            body: None,
            note: None,
        }
    }
}

#[derive(Debug)]
pub struct Journal {
    capacity: usize,
    inner: Mutex<(u64, VecDeque<JournalEntry>)>,
}

impl Journal {
    pub fn new(capacity: usize) -> Journal {
        Journal { capacity, inner: Mutex::new((0, VecDeque::new())) }
    }

    pub fn record(&self, mut entry: JournalEntry) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.0 += 1;
        entry.seq = inner.0;
        if inner.1.len() == self.capacity {
            inner.1.pop_front();
        }
        inner.1.push_back(entry);
    }

    pub fn entries(&self) -> Vec<JournalEntry> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1.iter().cloned().collect()
    }

    pub fn clear(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1.clear();
    }
}

/// Field names whose values are card data or secrets, wherever they appear.
const SECRET_FIELDS: &[&str] = &["cvc", "otp", "code"];
/// Field names that hold encrypted or opaque card data: only their shape is kept.
const OPAQUE_FIELDS: &[&str] =
    &["encryptedPayload", "encryptedPassData", "opaquePaymentCard", "activationData", "ephemeralPublicKey", "payload"];

/// A copy of `body` (if it is JSON) with sensitive values masked.
pub fn mask_bytes(body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => Some(mask(value)),
        Err(_) => Some(Value::String(format!("<{} bytes, not JSON>", body.len()))),
    }
}

/// Masks PANs (kept: last four digits), CVCs, OTPs and JWEs (kept: length) in a JSON tree.
pub fn mask(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let masked = if k == "pan" {
                        mask_pan(&v)
                    } else if SECRET_FIELDS.contains(&k.as_str()) {
                        Value::String("******".into())
                    } else if OPAQUE_FIELDS.contains(&k.as_str()) {
                        mask_opaque(&v)
                    } else {
                        mask(v)
                    };
                    (k, masked)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(mask).collect()),
        // A digit run that looks like a PAN anywhere else is masked too: better safe.
        Value::String(s) if looks_like_pan(&s) => mask_pan(&Value::String(s)),
        other => other,
    }
}

fn looks_like_pan(s: &str) -> bool {
    (12..=19).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

fn mask_pan(v: &Value) -> Value {
    match v.as_str() {
        Some(s) if s.len() >= 4 && s.is_ascii() => Value::String(format!("************{}", &s[s.len() - 4..])),
        _ => Value::String("****".into()),
    }
}

fn mask_opaque(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::String(s) => Value::String(format!("<redacted, {} chars>", s.len())),
        _ => Value::String("<redacted>".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn card_data_is_masked_everywhere() {
        let masked = mask(json!({
            "card": {"pan": "4111111111111111", "expiry": "12/30", "cvc": "123"},
            "otp": "123456",
            "encryptedPayload": "eyJhbGciOi.x.y.z.w",
            "note": "5555555555554444",
            "list": [{"pan": "4012888888881881"}]
        }));
        let text = masked.to_string();
        for secret in ["4111111111111111", "123456", "eyJhbGciOi", "5555555555554444", "4012888888881881", "\"123\""] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert!(text.contains("************1111"), "{text}");
    }
}
