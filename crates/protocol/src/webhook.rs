//! [Standard Webhooks](https://www.standardwebhooks.com) signatures (HMAC-SHA256, `v1`).
//!
//! Every request between TMP and the issuer carries three headers (names in
//! [`crate::headers`]):
//!
//! * `webhook-id` — unique per request; receivers use it to reject replays;
//! * `webhook-timestamp` — unix seconds when the request was signed;
//! * `webhook-signature` — space-separated `v1,<base64 HMAC-SHA256>` entries.
//!
//! The HMAC covers `"{id}.{timestamp}.{raw body}"`, byte for byte as sent: receivers must
//! verify the raw body *before* parsing it.
//!
//! Key rotation: a sender signs with every live secret ([`SignatureHeaders::sign`] emits
//! one entry per secret) and a receiver accepts a match against any of its live secrets
//! ([`Verifier`]), so both sides can roll a new secret in, then the old one out, without
//! downtime.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng as _;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// The only signature scheme version this module produces and checks.
pub const SIGNATURE_VERSION: &str = "v1";
/// Prefix of the textual form of a secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Shortest accepted secret, in bytes (the specification's lower bound, 192 bits).
pub const MIN_SECRET_LEN: usize = 24;
/// Longest accepted secret, in bytes (the specification's upper bound, 512 bits).
pub const MAX_SECRET_LEN: usize = 64;
/// Length of secrets made by [`WebhookSecret::generate`] (256 bits).
pub const GENERATED_SECRET_LEN: usize = 32;
/// Longest accepted `webhook-id`.
pub const MAX_ID_LEN: usize = 256;
/// Default tolerance between the signer's and the verifier's clocks.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// HMAC-SHA256 output length.
const MAC_LEN: usize = 32;

/// Standard alphabet, padding optional: `whsec_` secrets are usually padded, but a secret
/// typed or copied without its trailing `=` should still load.
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a secret could not be loaded or generated. Never contains secret material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    #[error("webhook secret is not valid base64")]
    NotBase64,
    #[error("webhook secret must be 24 to 64 bytes, got {0}")]
    Length(usize),
}

/// Why a request's signature was rejected.
///
/// The variants map to distinct API errors: `Missing` → `MISSING_SIGNATURE`, `Malformed`
/// → `INVALID_HEADER`, `Stale` → `STALE_TIMESTAMP`, `Invalid` → `INVALID_SIGNATURE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// A signature header is absent or empty; carries the header name.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// A signature header is present but not of the specified form; carries the header name.
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// The timestamp is further from the verifier's clock than the tolerance allows.
    #[error("webhook-timestamp is outside the accepted tolerance")]
    Stale,
    /// No `v1` signature matches any live secret.
    #[error("no signature matches a live key")]
    Invalid,
}

/// An HMAC secret shared between sender and receiver.
///
/// Textual form `whsec_<base64>`; the key bytes are wiped on drop and `Debug` prints
/// `WebhookSecret(***)`.
#[derive(Clone)]
pub struct WebhookSecret(Zeroizing<Vec<u8>>);

impl WebhookSecret {
    /// Parses `whsec_<base64>`, or bare base64 (standard alphabet, padding optional).
    pub fn parse(s: &str) -> Result<WebhookSecret, SecretError> {
        let encoded = s.trim().strip_prefix(SECRET_PREFIX).unwrap_or(s.trim());
        let bytes = Zeroizing::new(LENIENT_STANDARD.decode(encoded).map_err(|_| SecretError::NotBase64)?);
        Self::check_len(bytes.len())?;
        Ok(WebhookSecret(bytes))
    }

    /// Wraps raw key bytes (24 to 64 of them).
    pub fn from_bytes(bytes: &[u8]) -> Result<WebhookSecret, SecretError> {
        Self::check_len(bytes.len())?;
        Ok(WebhookSecret(Zeroizing::new(bytes.to_vec())))
    }

    /// A new random 256-bit secret and its `whsec_` form to hand to the other party (print
    /// it once; it is as sensitive as the secret itself).
    ///
    /// Uses `rand`'s thread-local CSPRNG (ChaCha12, seeded and periodically reseeded from
    /// the operating system).
    pub fn generate() -> (WebhookSecret, String) {
        let mut bytes = Zeroizing::new(vec![0u8; GENERATED_SECRET_LEN]);
        rand::rng().fill_bytes(&mut bytes);
        let secret = WebhookSecret(bytes);
        let text = secret.to_whsec_string();
        (secret, text)
    }

    /// The textual form `whsec_<base64>` (padded standard base64).
    pub fn to_whsec_string(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&*self.0))
    }

    /// The raw key bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    fn check_len(len: usize) -> Result<(), SecretError> {
        if (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&len) { Ok(()) } else { Err(SecretError::Length(len)) }
    }

    /// HMAC-SHA256 over `"{id}.{timestamp}.{body}"`.
    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> [u8; MAC_LEN] {
        // HMAC accepts keys of any length (longer ones are hashed), so this is an
        // invariant, not an input check. A silent fallback would be worse than a panic: a
        // constant MAC would let forged requests through.
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC-SHA256 accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

impl std::str::FromStr for WebhookSecret {
    type Err = SecretError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WebhookSecret::parse(s)
    }
}

/// From its textual form (a configuration value): a bad one is refused by the rule it breaks,
/// never quoted. The string read is wiped once parsed.
impl<'de> serde::Deserialize<'de> for WebhookSecret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(deserializer)?);
        WebhookSecret::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Checks a `webhook-id`: 1 to 256 visible ASCII characters (`!` to `~`; no spaces or
/// control characters, which could not travel in a header or would make logs ambiguous), and
/// not a card number (it is stored, to detect replays).
pub fn validate_id(id: &str) -> Result<(), SignatureError> {
    if id.is_empty()
        || id.len() > MAX_ID_LEN
        || !id.bytes().all(|b| b.is_ascii_graphic())
        || crate::sensitive::is_pan_like(id)
    {
        return Err(SignatureError::Malformed(crate::headers::WEBHOOK_ID));
    }
    Ok(())
}

/// A fresh `webhook-id`: `msg_` and a random UUID (hyphen-free), unique per request.
pub fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

/// One signature entry, `v1,<base64>`, for `secret` over `"{id}.{timestamp}.{body}"`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    format!("{SIGNATURE_VERSION},{}", STANDARD.encode(secret.mac(id, timestamp, body)))
}

/// The three header values of one signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`, unix seconds.
    pub timestamp: i64,
    /// `webhook-signature`: one `v1,…` entry per live secret, space separated.
    pub signature: String,
}

impl SignatureHeaders {
    /// Signs `body` with every secret in `secrets` (all keys live during a rotation).
    ///
    /// Fails with [`SignatureError::Malformed`] if `id` is not a valid `webhook-id`, and
    /// with [`SignatureError::Missing`] if `secrets` is empty (an unsigned request would
    /// only be rejected by the receiver).
    pub fn sign(
        secrets: &[WebhookSecret],
        id: &str,
        timestamp: i64,
        body: &[u8],
    ) -> Result<SignatureHeaders, SignatureError> {
        validate_id(id)?;
        if secrets.is_empty() {
            return Err(SignatureError::Missing(crate::headers::WEBHOOK_SIGNATURE));
        }
        let signature = secrets.iter().map(|s| sign(s, id, timestamp, body)).collect::<Vec<_>>().join(" ");
        Ok(SignatureHeaders { id: id.to_owned(), timestamp, signature })
    }

    /// Signs with a fresh id (see [`new_message_id`]) and the current time.
    pub fn sign_now(secrets: &[WebhookSecret], body: &[u8]) -> Result<SignatureHeaders, SignatureError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Self::sign(secrets, &new_message_id(), now, body)
    }

    /// `(header name, value)` pairs, ready to attach to a request.
    pub fn to_header_pairs(&self) -> [(&'static str, String); 3] {
        use crate::headers::{WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};
        [
            (WEBHOOK_ID, self.id.clone()),
            (WEBHOOK_TIMESTAMP, self.timestamp.to_string()),
            (WEBHOOK_SIGNATURE, self.signature.clone()),
        ]
    }
}

/// Verifies incoming requests against every live secret.
pub struct Verifier {
    secrets: Vec<WebhookSecret>,
    tolerance: Duration,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier").field("secrets", &self.secrets.len()).field("tolerance", &self.tolerance).finish()
    }
}

impl Verifier {
    /// A verifier accepting a signature by any of `secrets`, with timestamps at most
    /// `tolerance` away from the verifier's clock in either direction.
    ///
    /// With no secrets every request fails with [`SignatureError::Invalid`].
    pub fn new(secrets: Vec<WebhookSecret>, tolerance: Duration) -> Verifier {
        Verifier { secrets, tolerance }
    }

    /// Number of live secrets.
    pub fn secret_count(&self) -> usize {
        self.secrets.len()
    }

    /// Verifies one request. `id`, `timestamp` and `signature` are the raw header values
    /// (`None` when absent); `body` is the raw body; `now_unix` is the verifier's clock.
    ///
    /// Checks run cheapest first — presence, form, freshness — so that junk and replays
    /// of old captures are rejected before any HMAC is computed. Signature entries with a
    /// version other than `v1` are ignored (the specification reserves them, e.g. for
    /// asymmetric `v1a`), as are `v1` entries that do not decode to 32 bytes. The
    /// comparison is constant-time.
    pub fn verify(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), SignatureError> {
        use crate::headers::{WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};

        fn present<'a>(value: Option<&'a str>, name: &'static str) -> Result<&'a str, SignatureError> {
            value.filter(|v| !v.trim().is_empty()).ok_or(SignatureError::Missing(name))
        }
        let id = present(id, WEBHOOK_ID)?;
        let timestamp = present(timestamp, WEBHOOK_TIMESTAMP)?;
        let signature = present(signature, WEBHOOK_SIGNATURE)?;

        validate_id(id)?;
        let timestamp = parse_timestamp(timestamp)?;
        let entries = parse_signature_header(signature)?;

        // i128 so that no pair of i64 values can overflow the subtraction.
        let skew = (i128::from(now_unix) - i128::from(timestamp)).unsigned_abs();
        if skew > u128::from(self.tolerance.as_secs()) {
            return Err(SignatureError::Stale);
        }

        let mut matched = subtle::Choice::from(0);
        for secret in &self.secrets {
            let expected = secret.mac(id, timestamp, body);
            for candidate in &entries {
                // Accumulate instead of returning early: timing then reveals nothing about
                // which secret or which entry matched.
                matched |= candidate.ct_eq(&expected);
            }
        }
        if bool::from(matched) { Ok(()) } else { Err(SignatureError::Invalid) }
    }
}

/// Unix seconds: ASCII digits only (no sign, no spaces, no leading zeros), as the
/// specification sends them. The canonical form matters: the MAC is computed over the
/// re-formatted number, so a zero-padded header must not verify.
fn parse_timestamp(s: &str) -> Result<i64, SignatureError> {
    let malformed = SignatureError::Malformed(crate::headers::WEBHOOK_TIMESTAMP);
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return Err(malformed);
    }
    s.parse::<i64>().map_err(|_| malformed)
}

/// The decoded `v1` MACs of a `webhook-signature` header.
///
/// The header is malformed when no entry has the `version,value` shape at all; a header
/// whose entries are well shaped but none is a usable `v1` yields an empty list, which
/// verification reports as [`SignatureError::Invalid`].
fn parse_signature_header(header: &str) -> Result<Vec<[u8; MAC_LEN]>, SignatureError> {
    let mut any_entry = false;
    let mut macs = Vec::new();
    for entry in header.split(' ').filter(|e| !e.is_empty()) {
        let Some((version, value)) = entry.split_once(',') else {
            continue;
        };
        any_entry = true;
        if version != SIGNATURE_VERSION {
            continue;
        }
        if let Ok(bytes) = STANDARD.decode(value)
            && let Ok(mac) = <[u8; MAC_LEN]>::try_from(bytes.as_slice())
        {
            macs.push(mac);
        }
    }
    if any_entry { Ok(macs) } else { Err(SignatureError::Malformed(crate::headers::WEBHOOK_SIGNATURE)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the Standard Webhooks reference implementations.
    const SPEC_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const SPEC_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const SPEC_TS: i64 = 1_649_367_553;
    const SPEC_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SPEC_SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn verifier(secrets: &[&str]) -> Verifier {
        Verifier::new(secrets.iter().map(|s| WebhookSecret::parse(s).unwrap()).collect(), DEFAULT_TOLERANCE)
    }

    fn ts() -> String {
        SPEC_TS.to_string()
    }

    #[test]
    fn matches_the_specification_example() {
        let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
        assert_eq!(sign(&secret, SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIG);
        verifier(&[SPEC_SECRET]).verify(Some(SPEC_ID), Some(&ts()), Some(SPEC_SIG), SPEC_BODY, SPEC_TS).unwrap();
    }

    #[test]
    fn secret_forms() {
        let bare = WebhookSecret::parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let prefixed = WebhookSecret::parse(SPEC_SECRET).unwrap();
        assert_eq!(bare.expose(), prefixed.expose());
        assert_eq!(prefixed.to_whsec_string(), SPEC_SECRET);
        assert_eq!(format!("{prefixed:?}"), "WebhookSecret(***)");
        assert_eq!(WebhookSecret::parse("whsec_!!!").unwrap_err(), SecretError::NotBase64);
        assert_eq!(WebhookSecret::parse("whsec_AAAA").unwrap_err(), SecretError::Length(3));
        // Unpadded input is accepted.
        let (generated, text) = WebhookSecret::generate();
        assert_eq!(generated.expose().len(), GENERATED_SECRET_LEN);
        let unpadded = text.trim_end_matches('=');
        assert_eq!(WebhookSecret::parse(unpadded).unwrap().expose(), generated.expose());
        assert_eq!(WebhookSecret::parse(&text).unwrap().expose(), generated.expose());
    }

    #[test]
    fn any_live_secret_passes() {
        let (old, old_text) = WebhookSecret::generate();
        let (new, new_text) = WebhookSecret::generate();
        let v = verifier(&[&old_text, &new_text]);
        for headers in [
            SignatureHeaders::sign(std::slice::from_ref(&old), "msg_1", SPEC_TS, b"{}").unwrap(),
            SignatureHeaders::sign(std::slice::from_ref(&new), "msg_1", SPEC_TS, b"{}").unwrap(),
            SignatureHeaders::sign(&[old, new], "msg_1", SPEC_TS, b"{}").unwrap(),
        ] {
            v.verify(Some(&headers.id), Some(&headers.timestamp.to_string()), Some(&headers.signature), b"{}", SPEC_TS)
                .unwrap();
        }
    }

    #[test]
    fn multiple_entries_are_space_separated() {
        let (a, _) = WebhookSecret::generate();
        let (b, _) = WebhookSecret::generate();
        let h = SignatureHeaders::sign(&[a.clone(), b.clone()], "msg_x", 1, b"x").unwrap();
        assert_eq!(h.signature, format!("{} {}", sign(&a, "msg_x", 1, b"x"), sign(&b, "msg_x", 1, b"x")));
        assert_eq!(h.to_header_pairs()[1], ("webhook-timestamp", "1".to_owned()));
    }

    #[test]
    fn unknown_versions_are_ignored() {
        let v = verifier(&[SPEC_SECRET]);
        let header = format!("v1a,AAAA v2,{} {SPEC_SIG}", &SPEC_SIG[3..]);
        v.verify(Some(SPEC_ID), Some(&ts()), Some(&header), SPEC_BODY, SPEC_TS).unwrap();
        let only_unknown = format!("v2,{}", &SPEC_SIG[3..]);
        assert_eq!(
            v.verify(Some(SPEC_ID), Some(&ts()), Some(&only_unknown), SPEC_BODY, SPEC_TS),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn error_kinds_are_distinguished() {
        let v = verifier(&[SPEC_SECRET]);
        let ts = ts();
        let check =
            |id: Option<&str>, t: Option<&str>, s: Option<&str>, body: &[u8], now: i64| v.verify(id, t, s, body, now);
        assert_eq!(
            check(None, Some(&ts), Some(SPEC_SIG), SPEC_BODY, SPEC_TS),
            Err(SignatureError::Missing("webhook-id"))
        );
        assert_eq!(
            check(Some(SPEC_ID), None, Some(SPEC_SIG), SPEC_BODY, SPEC_TS),
            Err(SignatureError::Missing("webhook-timestamp"))
        );
        assert_eq!(
            check(Some(SPEC_ID), Some(&ts), Some(" "), SPEC_BODY, SPEC_TS),
            Err(SignatureError::Missing("webhook-signature"))
        );
        assert_eq!(
            check(Some("has space"), Some(&ts), Some(SPEC_SIG), SPEC_BODY, SPEC_TS),
            Err(SignatureError::Malformed("webhook-id"))
        );
        // Stored to detect replays: never a card number.
        assert_eq!(
            check(Some("4111-1111-1111-1111"), Some(&ts), Some(SPEC_SIG), SPEC_BODY, SPEC_TS),
            Err(SignatureError::Malformed("webhook-id"))
        );
        let long_id = "a".repeat(MAX_ID_LEN + 1);
        assert_eq!(
            check(Some(&long_id), Some(&ts), Some(SPEC_SIG), SPEC_BODY, SPEC_TS),
            Err(SignatureError::Malformed("webhook-id"))
        );
        for bad_ts in ["-1", "+1649367553", "1649367553.0", "abc", "99999999999999999999"] {
            assert_eq!(
                check(Some(SPEC_ID), Some(bad_ts), Some(SPEC_SIG), SPEC_BODY, SPEC_TS),
                Err(SignatureError::Malformed("webhook-timestamp")),
                "{bad_ts}"
            );
        }
        assert_eq!(
            check(Some(SPEC_ID), Some(&ts), Some("garbage"), SPEC_BODY, SPEC_TS),
            Err(SignatureError::Malformed("webhook-signature"))
        );
        assert_eq!(
            check(Some(SPEC_ID), Some(&ts), Some(SPEC_SIG), SPEC_BODY, SPEC_TS + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            check(Some(SPEC_ID), Some(&ts), Some(SPEC_SIG), SPEC_BODY, SPEC_TS - 301),
            Err(SignatureError::Stale)
        );
        check(Some(SPEC_ID), Some(&ts), Some(SPEC_SIG), SPEC_BODY, SPEC_TS + 300).unwrap();
        check(Some(SPEC_ID), Some(&ts), Some(SPEC_SIG), SPEC_BODY, SPEC_TS - 300).unwrap();
        assert_eq!(check(Some(SPEC_ID), Some(&ts), Some(SPEC_SIG), b"{}", SPEC_TS), Err(SignatureError::Invalid));
        assert_eq!(check(Some(SPEC_ID), Some(&ts), Some("v1,AAAA"), SPEC_BODY, SPEC_TS), Err(SignatureError::Invalid));
        // Extreme clocks must not overflow.
        assert_eq!(
            check(Some(SPEC_ID), Some("9223372036854775807"), Some(SPEC_SIG), SPEC_BODY, i64::MIN),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn signing_rejects_bad_input() {
        let (s, _) = WebhookSecret::generate();
        assert_eq!(SignatureHeaders::sign(&[], "msg_1", 1, b""), Err(SignatureError::Missing("webhook-signature")));
        assert_eq!(SignatureHeaders::sign(&[s], "", 1, b""), Err(SignatureError::Malformed("webhook-id")));
        let id = new_message_id();
        validate_id(&id).unwrap();
        assert!(id.starts_with("msg_"));
    }

    #[test]
    fn no_secrets_means_nothing_verifies() {
        let v = Verifier::new(Vec::new(), DEFAULT_TOLERANCE);
        assert_eq!(
            v.verify(Some(SPEC_ID), Some(&ts()), Some(SPEC_SIG), SPEC_BODY, SPEC_TS),
            Err(SignatureError::Invalid)
        );
    }
}
