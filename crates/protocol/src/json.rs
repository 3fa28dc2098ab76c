//! Parsing contract JSON with errors that name the field and the expectation, never the input:
//! a value sent in the wrong place (a PAN in clear, say) must not be echoed into an error body
//! or a log. Every service of the kit parses request bodies through here.

use serde::Deserialize as _;
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

mod objects_only;
pub use objects_only::{ObjectsOnly, object};

/// An optional list where `null` means none, as for the contract's other optional members
/// (`#[serde(default)]` alone refuses an explicit `null` for a list).
pub fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Why a JSON document was refused. Messages carry field paths and expectations only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON at all (→ 400 `MALFORMED_JSON`).
    #[error("{0}")]
    Syntax(String),
    /// JSON of the wrong shape: missing field, wrong type, unknown enum value, invalid value
    /// (→ 422 `VALIDATION_FAILED`).
    #[error("{0}")]
    Shape(String),
}

/// Parses `bytes` as one JSON document of type `T`. `prefix` names where the document sits
/// (e.g. `encryptedPayload` for a decrypted plaintext) and is prepended to field paths.
/// Wherever `T` has a struct, only a JSON object is accepted ([`ObjectsOnly`]).
pub fn parse<T: DeserializeOwned>(bytes: &[u8], prefix: &str) -> Result<T, JsonError> {
    // JSON text is UTF-8 (RFC 8259 §8.1). serde_json checks that only in the strings it
    // decodes, not in the members it skips (an unknown field's name or value), so a body with
    // invalid UTF-8 there would be accepted: check the whole document first.
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = position(&bytes[..e.valid_up_to()]);
        JsonError::Syntax(format!("not valid JSON (invalid UTF-8 at line {line}, column {column})"))
    })?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(ObjectsOnly(&mut deserializer)).map_err(|e| {
        let segments: Vec<Segment> = e.path().iter().cloned().collect();
        let inner = e.into_inner();
        match inner.classify() {
            // serde stops at the first error it meets, so `[[[[` reads as a wrong type before
            // its syntax is seen: a body that is not JSON at all is a syntax error (400).
            serde_json::error::Category::Data if !well_formed(text) => syntax_error(text),
            serde_json::error::Category::Data => JsonError::Shape(describe(&inner, prefix, &segments)),
            // serde_json reports some well-formed documents as syntax errors: a number, `null`,
            // `true` or an array where an enum is expected ("expected value"), or a value it
            // cannot decode (a lone surrogate escape, a number beyond f64). Those are documents
            // of the wrong shape (422), not malformed ones (400).
            _ if well_formed(text) => JsonError::Shape(if decodable(text) {
                format!("{}: invalid value", location(prefix, &segments))
            } else {
                // The undecodable value may sit in members buffered under the sender's own
                // names (`#[serde(flatten)]`), which the path would then echo: no path.
                format!("{}: holds a lone surrogate escape or a number out of range", location(prefix, &[]))
            }),
            _ => JsonError::Syntax(format!("not valid JSON (line {}, column {})", inner.line(), inner.column())),
        }
    })?;
    deserializer.end().map_err(|_| JsonError::Syntax("trailing characters after the JSON value".into()))?;
    Ok(value)
}

/// The syntax error of a document that is not well-formed JSON.
fn syntax_error(text: &str) -> JsonError {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let error = match serde::de::IgnoredAny::deserialize(&mut deserializer) {
        Err(e) => e,
        Ok(_) => match deserializer.end() {
            Err(e) => e,
            Ok(()) => return JsonError::Syntax("not valid JSON".into()),
        },
    };
    JsonError::Syntax(format!("not valid JSON (line {}, column {})", error.line(), error.column()))
}

/// Whether `text` is one well-formed JSON value, whatever its shape.
fn well_formed(text: &str) -> bool {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    serde::de::IgnoredAny::deserialize(&mut deserializer).is_ok() && deserializer.end().is_ok()
}

/// Whether serde_json can decode every value of `text` (it refuses lone surrogate escapes and
/// numbers beyond f64, which the JSON grammar allows).
fn decodable(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok()
}

/// Line and column (both from 1, the column in bytes) just after `before`.
fn position(before: &[u8]) -> (usize, usize) {
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}

/// Where a path points, for messages: `body`, `` `field.sub[0]` `` or `` `prefix.field` ``.
fn location(prefix: &str, segments: &[Segment]) -> String {
    // As `serde_path_to_error::Path` displays itself.
    let mut path = String::new();
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 && !matches!(segment, Segment::Seq { .. }) {
            path.push('.');
        }
        path.push_str(&segment.to_string());
    }
    match (prefix.is_empty(), path.is_empty()) {
        (true, true) => String::from("body"),
        (true, false) => format!("`{path}`"),
        (false, true) => format!("`{prefix}`"),
        (false, false) => format!("`{prefix}.{path}`"),
    }
}

/// A field-level message without the offending value.
fn describe(error: &serde_json::Error, prefix: &str, segments: &[Segment]) -> String {
    let full = error.to_string();
    // serde_json appends " at line L column C"; the position is not useful once the path is known.
    let message = full.rsplit_once(" at line ").map_or(full.as_str(), |(m, _)| m);
    // For an unknown field the path ends with the sender's key: name its parent instead. (The
    // key is arbitrary text, dots included: drop the segment, not the text after a dot.)
    let segments = match message.starts_with("unknown field ") {
        true => segments.split_last().map_or(segments, |(_, parent)| parent),
        false => segments,
    };
    let location = location(prefix, segments);
    if message.starts_with("unknown variant ") {
        let expected = expectation(message, "a known value");
        return format!("{location}: unknown enum value, expected {expected}");
    }
    if message.starts_with("invalid type")
        || message.starts_with("invalid value")
        || message.starts_with("invalid length")
    {
        let expected = expectation(message, "another value");
        return format!("{location}: expected {expected}");
    }
    // An unknown field's name is the sender's text (inside a decrypted payload, it could be
    // anything): name only the fields we expect.
    if message.starts_with("unknown field ") {
        let expected = expectation(message, "no other field");
        return format!("{location}: unknown field, expected {expected}");
    }
    // Missing / duplicate field messages quote our field names only; custom messages come
    // from this crate's own parsers (Pan, Cvc, …), which never quote the input.
    format!("{location}: {message}")
}

/// The `{expected}` of a serde message `… {quoted input}, expected {expected}`, or `otherwise`.
///
/// The quoted input is the sender's text and may itself contain ", expected ", so the split is
/// at the last one (our expectations never contain it); and when serde says "there are no
/// fields" (or variants) instead, any ", expected " is the sender's.
fn expectation<'a>(message: &'a str, otherwise: &'a str) -> &'a str {
    if message.ends_with(", there are no fields") || message.ends_with(", there are no variants") {
        return otherwise;
    }
    message.rsplit_once(", expected ").map_or(otherwise, |(_, e)| e)
}

/// An optional small integer, written `3` or `3.0`: JSON Schema, and so the OpenAPI document,
/// counts a number with a zero fraction as an integer, and a generated client may send either.
/// `3.5`, a negative number, one above 255 or a string is refused.
pub fn optional_integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u8>, D::Error> {
    use serde::Deserialize;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let integral = number
        .as_u64()
        .or_else(|| number.as_f64().filter(|f| f.fract() == 0.0 && (0.0..=255.0).contains(f)).map(|f| f as u64));
    integral
        .and_then(|n| u8::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("expected an integer from 0 to 255"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        count: u8,
        kind: crate::enums::Wallet,
        pan: Option<crate::sensitive::Pan>,
    }

    fn shape(body: &str) -> String {
        match parse::<Sample>(body.as_bytes(), "") {
            Err(JsonError::Shape(m)) => m,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn wrong_types_do_not_echo_the_value() {
        let m = shape(r#"{"count": "4111111111111111", "kind": "APPLE_PAY"}"#);
        assert!(!m.contains("4111") && m.contains("`count`"), "{m}");
        let m = shape(r#"{"count": 1, "kind": "APPLE_PAY", "pan": 4111111111111111}"#);
        assert!(!m.contains("4111") && m.contains("`pan`"), "{m}");
        let m = shape(r#"{"count": 1, "kind": "APPLE_PAY", "pan": "4111111111111112"}"#);
        assert!(!m.contains("4111") && m.contains("Luhn"), "{m}");
    }

    #[test]
    fn unknown_enum_names_the_choices_not_the_value() {
        let m = shape(r#"{"count": 1, "kind": "PAYPAL"}"#);
        assert!(m.contains("unknown enum value") && m.contains("APPLE_PAY") && !m.contains("PAYPAL"), "{m}");
    }

    #[test]
    fn unknown_field_names_are_not_echoed() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Strict {
            pan: String,
        }
        let Err(JsonError::Shape(m)) =
            parse::<Strict>(br#"{"pan": "x", "extra4111111111111111": 1}"#, "encryptedPayload")
        else {
            panic!("shape error expected")
        };
        assert!(!m.contains("extra") && !m.contains("4111"), "{m}");
        assert!(m.starts_with("`encryptedPayload`: unknown field, expected"), "{m}");
        // A key with dots is one segment, however it splits.
        let Err(JsonError::Shape(m)) = parse::<Strict>(br#"{"pan": "x", "4111111111111111.x": 1}"#, "encryptedPayload")
        else {
            panic!("shape error expected")
        };
        assert_eq!(m, "`encryptedPayload`: unknown field, expected `pan`");
        // A key (or value) that reads like the rest of serde's message.
        let Err(JsonError::Shape(m)) = parse::<Strict>(br#"{"pan": "x", "a`, expected 4111111111111111": 1}"#, "")
        else {
            panic!("shape error expected")
        };
        assert_eq!(m, "body: unknown field, expected `pan`");
        let m = shape(r#"{"count": 1, "kind": "a`, expected 4111111111111111"}"#);
        assert!(m.starts_with("`kind`: unknown enum value, expected one of `APPLE_PAY`"), "{m}");
        let m = shape(r#"{"count": "a\", expected 4111111111111111", "kind": "OTHER"}"#);
        assert_eq!(m, "`count`: expected u8");
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Empty {}
        let Err(JsonError::Shape(m)) = parse::<Empty>(br#"{"a`, expected 4111111111111111": 1}"#, "") else {
            panic!("shape error expected")
        };
        assert_eq!(m, "body: unknown field, expected no other field");
    }

    #[test]
    fn syntax_errors_missing_fields_and_prefixes() {
        assert!(matches!(parse::<Sample>(b"{\"count\": ", ""), Err(JsonError::Syntax(_))));
        assert!(matches!(parse::<Sample>(b"{\"count\": 1, \"kind\": \"OTHER\"} x", ""), Err(JsonError::Syntax(_))));
        assert!(shape(r#"{"kind": "OTHER"}"#).contains("missing field `count`"));
        let Err(JsonError::Shape(m)) = parse::<Sample>(br#"{"count": 300, "kind": "OTHER"}"#, "encryptedPayload")
        else {
            panic!("shape error expected")
        };
        assert!(m.starts_with("`encryptedPayload.count`"), "{m}");
    }

    #[test]
    fn invalid_utf8_is_a_syntax_error_even_where_nothing_is_decoded() {
        // In an unknown member (skipped, not decoded), and in a decoded value.
        let skipped = b"{\"count\": 1, \"kind\": \"OTHER\",\n \"x\": \"\x96\"}";
        let Err(JsonError::Syntax(m)) = parse::<Sample>(skipped, "") else { panic!("syntax error expected") };
        assert_eq!(m, "not valid JSON (invalid UTF-8 at line 2, column 8)");
        assert!(matches!(parse::<Sample>(b"{\"kind\": \"\xff\"}", ""), Err(JsonError::Syntax(_))));
    }

    #[test]
    fn well_formed_values_serde_json_calls_syntax_errors_are_shape_errors() {
        // serde_json answers "expected value" for a non-string where an enum is expected.
        for kind in ["1", "null", "true", "[]", "18446744073709551616"] {
            let body = format!(r#"{{"count": 1, "kind": {kind}}}"#);
            let Err(JsonError::Shape(m)) = parse::<Sample>(body.as_bytes(), "") else {
                panic!("shape error expected for {body}")
            };
            assert_eq!(m, "`kind`: invalid value", "{body}");
        }
        // A lone surrogate escape is well formed, but not a string serde_json can decode.
        let Err(JsonError::Shape(m)) = parse::<Sample>(br#"{"count": 1, "kind": "\ud800"}"#, "encryptedPayload") else {
            panic!("shape error expected")
        };
        assert_eq!(m, "`encryptedPayload`: holds a lone surrogate escape or a number out of range");
    }
}
