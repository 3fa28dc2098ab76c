//! `signature_headers`: Standard-Webhooks header parsing and verification with fixed secrets.
//!
//! Input: up to five lines, `webhook-id`, `webhook-timestamp`, `webhook-signature`, clock
//! skew, body (the body is everything after the fourth newline, newlines included). A missing
//! line, or one that is not UTF-8, is an absent header. The verifier's clock is the timestamp
//! plus the skew when both are numbers, else the skew line read as an absolute time, else 0.
//!
//! Checked, besides "never panics":
//! * `Verifier::verify` accepts exactly the requests an independent check accepts: a valid id,
//!   a canonical timestamp within the tolerance, and a `v1,<base64>` entry equal to the
//!   HMAC-SHA256 of `id.timestamp.body` under one of the live secrets (computed here with
//!   `hmac` directly). In particular, an accepted request carries a valid signature;
//! * headers made by `SignatureHeaders::sign` for the input's id, timestamp and body verify,
//!   and stop verifying when the body changes;
//! * `WebhookSecret::parse` of the signature line never panics, and a secret it accepts is 24
//!   to 64 bytes and survives its `whsec_` text form.

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tmp_protocol::webhook::{DEFAULT_TOLERANCE, SignatureError, SignatureHeaders, Verifier, WebhookSecret};

/// The Standard Webhooks specification's example secret (its example request is a seed).
pub const SECRET_A: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
/// A second live secret, as during a rotation: 64 bytes, the longest accepted.
pub const SECRET_B: &str =
    "whsec_ZnV6ei1vbmx5LXNlY29uZC1zZWNyZXQtZm9yLXNpZ25hdHVyZS1oZWFkZXJzLXRhcmdldC0wMTIzNDU2Nzg5IQ==";

static SECRETS: LazyLock<Vec<WebhookSecret>> =
    LazyLock::new(|| [SECRET_A, SECRET_B].iter().map(|s| WebhookSecret::parse(s).expect("fuzz secret")).collect());

static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| Verifier::new(SECRETS.clone(), DEFAULT_TOLERANCE));

/// The key bytes of the fuzz secrets, decoded here rather than by the crate under test.
static KEYS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    [SECRET_A, SECRET_B].iter().map(|s| STANDARD.decode(&s["whsec_".len()..]).expect("base64")).collect()
});

/// The decoded fuzz input.
pub struct Request<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub now: i64,
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    pub fn decode(data: &'a [u8]) -> Request<'a> {
        let mut lines = data.splitn(5, |&b| b == b'\n');
        let mut text = || lines.next().and_then(|l| std::str::from_utf8(l).ok());
        let (id, timestamp, signature, skew) = (text(), text(), text(), text());
        let body = lines.next().unwrap_or_default();
        let skew = skew.and_then(|s| s.parse::<i64>().ok());
        let ts = timestamp.and_then(|t| t.parse::<i64>().ok());
        let now = match (ts, skew) {
            (Some(ts), Some(skew)) => ts.saturating_add(skew),
            (None, Some(now)) => now,
            _ => 0,
        };
        Request { id, timestamp, signature, now, body }
    }

    /// The input that [`Request::decode`] reads back as `id`, `timestamp`, `signature`, a
    /// clock `skew` seconds after the timestamp, and `body`.
    pub fn encode(id: &str, timestamp: &str, signature: &str, skew: i64, body: &[u8]) -> Vec<u8> {
        let mut data = format!("{id}\n{timestamp}\n{signature}\n{skew}\n").into_bytes();
        data.extend_from_slice(body);
        data
    }
}

pub fn run(data: &[u8]) {
    let request = Request::decode(data);
    let result = VERIFIER.verify(request.id, request.timestamp, request.signature, request.body, request.now);
    let expected = should_verify(&request);
    assert_eq!(result.is_ok(), expected, "verify returned {result:?}, the independent check says {expected}");
    if let Err(e) = result {
        // Errors name a header, never echo a value.
        assert!(matches!(
            e,
            SignatureError::Missing(_) | SignatureError::Malformed(_) | SignatureError::Stale | SignatureError::Invalid
        ));
    }

    // Our own signer's output verifies, and only for its body. (Negative timestamps are not
    // unix times a sender produces; the verifier refuses them as malformed.)
    let timestamp = request.timestamp.and_then(|t| t.parse::<i64>().ok()).filter(|&ts| ts >= 0);
    if let (Some(id), Some(ts)) = (request.id, timestamp) {
        if let Ok(headers) = SignatureHeaders::sign(&SECRETS[1..], id, ts, request.body) {
            let ts_text = headers.timestamp.to_string();
            let check =
                |body: &[u8]| VERIFIER.verify(Some(&headers.id), Some(&ts_text), Some(&headers.signature), body, ts);
            assert_eq!(check(request.body), Ok(()), "a request we signed does not verify");
            let mut other = request.body.to_vec();
            other.push(b'x');
            assert_eq!(check(&other), Err(SignatureError::Invalid), "a signature verified another body");
        } else {
            assert!(!valid_id(id), "a valid id could not be signed");
        }
    }

    if let Some(text) = request.signature
        && let Ok(secret) = WebhookSecret::parse(text)
    {
        assert!((24..=64).contains(&secret.expose().len()), "secret of {} bytes accepted", secret.expose().len());
        let again = WebhookSecret::parse(&secret.to_whsec_string()).expect("whsec_ form parses");
        assert_eq!(again.expose(), secret.expose());
    }
}

/// The independent verdict on a request.
fn should_verify(r: &Request<'_>) -> bool {
    let (Some(id), Some(timestamp), Some(signature)) = (r.id, r.timestamp, r.signature) else { return false };
    let Some(ts) = canonical_timestamp(timestamp) else { return false };
    if !valid_id(id) || (i128::from(r.now) - i128::from(ts)).unsigned_abs() > u128::from(DEFAULT_TOLERANCE.as_secs()) {
        return false;
    }
    let expected: Vec<String> = KEYS
        .iter()
        .map(|key| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
            mac.update(format!("{id}.{ts}.").as_bytes());
            mac.update(r.body);
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        })
        .collect();
    signature.split(' ').any(|entry| expected.iter().any(|e| e == entry))
}

/// 1 to 256 visible ASCII characters.
fn valid_id(id: &str) -> bool {
    (1..=256).contains(&id.len()) && id.bytes().all(|b| (b'!'..=b'~').contains(&b)) && !is_card_number(id)
}

/// The contract's rule, written again here: an id made of 12 to 19 digits (separators `-./_:`
/// allowed) that pass the Luhn check is a card number, and is refused.
fn is_card_number(id: &str) -> bool {
    if !id.bytes().all(|b| b.is_ascii_digit() || b"-./_:".contains(&b)) {
        return false;
    }
    let digits: Vec<u32> = id.bytes().filter(u8::is_ascii_digit).map(|b| u32::from(b - b'0')).collect();
    let luhn: u32 =
        digits.iter().rev().enumerate().map(|(i, &d)| if i % 2 == 1 { (d * 2) / 10 + (d * 2) % 10 } else { d }).sum();
    (12..=19).contains(&digits.len()) && luhn % 10 == 0
}

/// A non-negative number written the way `i64::to_string` writes it.
fn canonical_timestamp(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().filter(|&ts| ts >= 0 && ts.to_string() == text)
}
