//! Identifiers and free text as the contract defines them, checked once, when they are parsed
//! (the way [`crate::sensitive::Pan`] is): a value of these types has passed the rules, so no
//! handler has to remember to check it.
//!
//! - [`Id`]: event, token, card, notification, requestor and tokenization ids — 1 to
//!   [`MAX_ID_LEN`] printable ASCII characters without spaces, and never a card number (an id
//!   made only of digits that passes the Luhn check is a PAN in the wrong place; ids merely
//!   containing digit runs, as token references do, are fine).
//! - [`FreeText`]: reasons, names, contacts, categories — at most [`MAX_TEXT_LEN`] characters,
//!   holding nothing that looks like a card number: it is stored and forwarded in clear, so a
//!   PAN pasted into it is refused at the door.
//!
//! Errors say which rule was broken, never the value.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::sensitive::{contains_pan_like, is_pan_like};

/// Longest accepted id.
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted free text, in characters.
pub const MAX_TEXT_LEN: usize = 256;

/// Which rule a field broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("must be 1 to 128 printable ASCII characters without spaces")]
    MalformedId,
    #[error("must not be a card number")]
    IdIsCardNumber,
    #[error("must be at most 256 characters")]
    TextTooLong,
    #[error("must not contain a card number")]
    TextHoldsCardNumber,
}

/// An identifier (see the module docs).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Id(String);

impl Id {
    pub fn parse(value: impl Into<String>) -> Result<Id, FieldError> {
        let value = value.into();
        if value.is_empty() || value.len() > MAX_ID_LEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FieldError::MalformedId);
        }
        if is_pan_like(&value) {
            return Err(FieldError::IdIsCardNumber);
        }
        Ok(Id(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text (see the module docs).
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct FreeText(String);

impl FreeText {
    pub fn parse(value: impl Into<String>) -> Result<FreeText, FieldError> {
        let value = value.into();
        if value.chars().count() > MAX_TEXT_LEN {
            return Err(FieldError::TextTooLong);
        }
        if contains_pan_like(&value) {
            return Err(FieldError::TextHoldsCardNumber);
        }
        Ok(FreeText(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl TryFrom<&str> for $name {
            type Error = FieldError;
            fn try_from(value: &str) -> Result<Self, FieldError> {
                $name::parse(value)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                $name::parse(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_newtype!(Id);
string_newtype!(FreeText);

impl utoipa::PartialSchema for Id {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("1 to 128 printable ASCII characters without spaces; never a card number."))
            .min_length(Some(1))
            .max_length(Some(MAX_ID_LEN))
            .pattern(Some("^[!-~]+$"))
            .into()
    }
}

impl utoipa::ToSchema for Id {}

impl utoipa::PartialSchema for FreeText {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("At most 256 characters; never holding a card number."))
            .max_length(Some(MAX_TEXT_LEN))
            .into()
    }
}

impl utoipa::ToSchema for FreeText {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(Id::parse("card-1").is_ok());
        assert!(Id::parse("DWSPMC000000000132d72d4fcb2f4136a0532d3093ff1a45").is_ok());
        assert_eq!(Id::parse("4111111111111111"), Err(FieldError::IdIsCardNumber));
        assert_eq!(Id::parse(""), Err(FieldError::MalformedId));
        assert_eq!(Id::parse("a b"), Err(FieldError::MalformedId));
        assert_eq!(Id::parse("x".repeat(129)), Err(FieldError::MalformedId));
        assert!(Id::parse("x".repeat(128)).is_ok());
    }

    #[test]
    fn free_text() {
        assert!(FreeText::parse("CARD_BLOCKED").is_ok());
        assert!(FreeText::parse("").is_ok());
        assert_eq!(FreeText::parse("replaced card 4111 1111 1111 1111"), Err(FieldError::TextHoldsCardNumber));
        assert_eq!(FreeText::parse("é".repeat(257)), Err(FieldError::TextTooLong));
        assert!(FreeText::parse("é".repeat(256)).is_ok());
    }

    #[test]
    fn parsing_json_applies_the_rules_and_never_echoes_the_value() {
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "camelCase")]
        #[allow(dead_code)]
        struct Event {
            card_id: Id,
            reason: FreeText,
        }
        let error = crate::json::parse::<Event>(br#"{"cardId": "4111111111111111", "reason": "x"}"#, "").unwrap_err();
        assert_eq!(error.to_string(), "`cardId`: must not be a card number");
        let error =
            crate::json::parse::<Event>(br#"{"cardId": "c1", "reason": "ref 4111111111111111"}"#, "").unwrap_err();
        assert!(!error.to_string().contains("4111"), "{error}");
        assert!(crate::json::parse::<Event>(br#"{"cardId": "c1", "reason": "lost"}"#, "").is_ok());
    }
}
