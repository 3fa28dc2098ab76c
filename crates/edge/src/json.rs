//! Request-body parsing for every API of the kit, on the protocol's value-free JSON errors
//! (`tmp_protocol::json`): a value sent in the wrong place is never echoed.

use serde::de::DeserializeOwned;
use tmp_protocol::json::{JsonError, parse};

use crate::error::ApiError;

/// Parses a request body: syntax errors → 400 `MALFORMED_JSON`, shape errors → 422.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse(bytes, "").map_err(|e| match e {
        JsonError::Syntax(m) => ApiError::MalformedJson(format!("request body is {m}")),
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
