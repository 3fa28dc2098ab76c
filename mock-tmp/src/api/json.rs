//! Request-body parsing for the mock's APIs, on the protocol's value-free JSON errors
//! (`tmp_protocol::json`): a value sent in the wrong place is never echoed.

use serde::de::DeserializeOwned;
use tmp_protocol::json::{JsonError, parse};

use crate::error::MockError;

/// Syntax errors → 400 `MALFORMED_JSON`; shape errors (missing field, unknown enum, wrong
/// type) → 422 `VALIDATION_FAILED`.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, MockError> {
    parse(bytes, "").map_err(|e| match e {
        JsonError::Syntax(m) => MockError::MalformedJson(format!("request body is {m}")),
        JsonError::Shape(m) => MockError::Validation(m),
    })
}
