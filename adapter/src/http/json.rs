//! JSON parsing with errors that name the field and the expectation, never the input: a value
//! sent in the wrong place (a PAN in clear, say) must not be echoed into a body or a log.

use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Parses a request body: syntax errors → 400 `MALFORMED_JSON`, shape errors → 422.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse(bytes, "").map_err(|e| match e {
        JsonError::Syntax(m) => ApiError::MalformedJson(m),
        JsonError::Shape(m) => ApiError::Validation(m),
    })
}

/// Parses the plaintext of an `encryptedPayload`: every error is a 422 about that field.
pub fn parse_encrypted<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse(bytes, "encryptedPayload").map_err(|e| match e {
        JsonError::Syntax(_) => {
            ApiError::InvalidEncryptedPayload("`encryptedPayload` does not hold a JSON object".into())
        }
        JsonError::Shape(m) => ApiError::Validation(m),
    })
}

enum JsonError {
    Syntax(String),
    Shape(String),
}

fn parse<T: DeserializeOwned>(bytes: &[u8], prefix: &str) -> Result<T, JsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => Shape(describe(&inner, prefix, &path)),
            _ => Syntax(format!("request body is not valid JSON (line {}, column {})", inner.line(), inner.column())),
        }
    })?;
    deserializer.end().map_err(|_| Syntax("request body has trailing characters after the JSON value".into()))?;
    Ok(value)
}

use JsonError::{Shape, Syntax};

/// A field-level message without the offending value.
fn describe(error: &serde_json::Error, prefix: &str, path: &str) -> String {
    let full = error.to_string();
    // serde_json appends " at line L column C"; the position is not useful once the path is known.
    let message = full.rsplit_once(" at line ").map_or(full.as_str(), |(m, _)| m);
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
    if message.starts_with("missing field")
        || message.starts_with("unknown field")
        || message.starts_with("duplicate field")
    {
        return format!("{location}: {message}");
    }
    // Custom messages come from our own parsers (Pan, Cvc, …), which never quote the input.
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
        kind: tmp_protocol::enums::Wallet,
    }

    fn message(body: &str) -> String {
        match parse_body::<Sample>(body.as_bytes()) {
            Err(ApiError::Validation(m)) | Err(ApiError::MalformedJson(m)) => m,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn wrong_types_do_not_echo_the_value() {
        let m = message(r#"{"count": "4111111111111111", "kind": "APPLE_PAY"}"#);
        assert!(!m.contains("4111"), "{m}");
        assert!(m.contains("`count`"), "{m}");
    }

    #[test]
    fn unknown_enum_names_the_choices() {
        let m = message(r#"{"count": 1, "kind": "PAYPAL"}"#);
        assert!(m.contains("unknown enum value") && m.contains("APPLE_PAY") && !m.contains("PAYPAL"), "{m}");
    }

    #[test]
    fn syntax_errors_are_malformed() {
        assert!(matches!(parse_body::<Sample>(b"{\"count\": "), Err(ApiError::MalformedJson(_))));
        assert!(matches!(
            parse_body::<Sample>(b"{} x"),
            Err(ApiError::MalformedJson(_)) | Err(ApiError::Validation(_))
        ));
        assert!(message(r#"{"kind": "OTHER"}"#).contains("missing field `count`"));
    }
}
