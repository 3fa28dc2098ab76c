//! Parsing contract JSON with errors that name the field and the expectation, never the input:
//! a value sent in the wrong place (a PAN in clear, say) must not be echoed into an error body
//! or a log. Every service of the kit parses request bodies through here.

use serde::de::DeserializeOwned;

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
pub fn parse<T: DeserializeOwned>(bytes: &[u8], prefix: &str) -> Result<T, JsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            // serde stops at the first error it meets, so `[[[[` reads as a wrong type before
            // its syntax is seen: a body that is not JSON at all is a syntax error (400).
            serde_json::error::Category::Data => match syntax_error(bytes) {
                Some(syntax) => syntax,
                None => JsonError::Shape(describe(&inner, prefix, &path)),
            },
            _ => JsonError::Syntax(format!("not valid JSON (line {}, column {})", inner.line(), inner.column())),
        }
    })?;
    deserializer.end().map_err(|_| JsonError::Syntax("trailing characters after the JSON value".into()))?;
    Ok(value)
}

/// The syntax error of `bytes`, if they are not one well-formed JSON value.
fn syntax_error(bytes: &[u8]) -> Option<JsonError> {
    match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        Ok(_) => None,
        Err(e) => Some(JsonError::Syntax(format!("not valid JSON (line {}, column {})", e.line(), e.column()))),
    }
}

/// A field-level message without the offending value.
fn describe(error: &serde_json::Error, prefix: &str, path: &str) -> String {
    let full = error.to_string();
    // serde_json appends " at line L column C"; the position is not useful once the path is known.
    let message = full.rsplit_once(" at line ").map_or(full.as_str(), |(m, _)| m);
    // For an unknown field the path ends with the sender's key: name its parent instead.
    let path = match message.starts_with("unknown field ") {
        true => path.rsplit_once('.').map_or(".", |(parent, _)| parent),
        false => path,
    };
    let location = match (prefix.is_empty(), path == ".") {
        (true, true) => String::from("body"),
        (true, false) => format!("`{path}`"),
        (false, true) => format!("`{prefix}`"),
        (false, false) => format!("`{prefix}.{path}`"),
    };
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let expected = rest.split_once(", expected ").map_or("a known value", |(_, e)| e);
        return format!("{location}: unknown enum value, expected {expected}");
    }
    if message.starts_with("invalid type")
        || message.starts_with("invalid value")
        || message.starts_with("invalid length")
    {
        let expected = message.split_once(", expected ").map_or("another value", |(_, e)| e);
        return format!("{location}: expected {expected}");
    }
    // An unknown field's name is the sender's text (inside a decrypted payload, it could be
    // anything): name only the fields we expect.
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let expected = rest.split_once(", expected ").map_or("no other field", |(_, e)| e);
        return format!("{location}: unknown field, expected {expected}");
    }
    // Missing / duplicate field messages quote our field names only; custom messages come
    // from this crate's own parsers (Pan, Cvc, …), which never quote the input.
    format!("{location}: {message}")
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
}
