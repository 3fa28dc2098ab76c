//! JSON parsing whose errors name the field and the expectation, never the input: a value sent
//! in the wrong place (a PAN in clear, say) must not be echoed into a body or a log.

use serde::de::DeserializeOwned;

use crate::error::MockError;

/// Syntax errors → 400 `MALFORMED_JSON`; shape errors (missing field, unknown enum, wrong
/// type) → 422 `VALIDATION_FAILED`.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, MockError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => MockError::Validation(describe(&inner, &path)),
            _ => MockError::MalformedJson(format!(
                "request body is not valid JSON (line {}, column {})",
                inner.line(),
                inner.column()
            )),
        }
    })?;
    deserializer
        .end()
        .map_err(|_| MockError::MalformedJson("request body has trailing characters after the JSON value".into()))?;
    Ok(value)
}

fn describe(error: &serde_json::Error, path: &str) -> String {
    let full = error.to_string();
    let message = full.rsplit_once(" at line ").map_or(full.as_str(), |(m, _)| m);
    let location = if path == "." { "body".to_owned() } else { format!("`{path}`") };
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
    // Missing/unknown/duplicate field messages quote only field names; custom messages come
    // from the protocol's parsers (Pan, Cvc, …), which never quote the input.
    format!("{location}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        wallet: tmp_protocol::enums::Wallet,
        count: u8,
    }

    #[test]
    fn errors_never_echo_values() {
        let Err(MockError::Validation(m)) = parse_body::<Sample>(br#"{"wallet": "PAYPAL", "count": 1}"#) else {
            panic!("expected a validation error")
        };
        assert!(m.contains("unknown enum value") && !m.contains("PAYPAL"), "{m}");
        let Err(MockError::Validation(m)) =
            parse_body::<Sample>(br#"{"wallet": "OTHER", "count": "4111111111111111"}"#)
        else {
            panic!("expected a validation error")
        };
        assert!(!m.contains("4111"), "{m}");
        assert!(matches!(parse_body::<Sample>(b"{\"wallet\": "), Err(MockError::MalformedJson(_))));
    }
}
