//! Identifiers and free text as the contract defines them, checked once, when they are parsed
//! (the way [`crate::sensitive::Pan`] is): a value of these types has passed the rules, so no
//! handler has to remember to check it.
//!
//! - [`Id`]: event, token, card, notification, requestor and tokenization ids — 1 to
//!   [`MAX_ID_LEN`] printable ASCII characters without spaces, never `.` or `..` (ids become
//!   URL path segments on the way to TMP, where those two would be resolved away), and never a
//!   card number (an id made only of digits, possibly split by dashes, dots, slashes,
//!   underscores or colons, that passes the Luhn check is a PAN in the wrong place; ids merely
//!   containing digit runs, as token references do, are fine).
//! - [`Code`]: a code someone else defines (a wallet's recommendation reason) — 1 to
//!   [`MAX_CODE_LEN`] letters, digits, `_`, `-` or `.`, holding no card number anywhere (unlike
//!   an id, a code has no reason to carry a long digit run).
//! - [`Phone`]: a cardholder's phone — free text, except that a number in international form
//!   is never taken for a card number (see [`Phone`]).
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
/// Longest accepted code.
pub const MAX_CODE_LEN: usize = 64;
/// Longest accepted free text, in characters.
pub const MAX_TEXT_LEN: usize = 256;

/// Which rule a field broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("must be 1 to 128 printable ASCII characters without spaces")]
    MalformedId,
    #[error("must not be a card number")]
    IdIsCardNumber,
    #[error("must not be `.` or `..`")]
    IdIsDotSegment,
    #[error("must be at most 256 characters")]
    TextTooLong,
    #[error("must not contain a card number")]
    TextHoldsCardNumber,
    #[error("must be 1 to 64 letters, digits, `_`, `-` or `.`")]
    MalformedCode,
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
        if value == "." || value == ".." {
            return Err(FieldError::IdIsDotSegment);
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

/// A code (see the module docs).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Code(String);

impl Code {
    pub fn parse(value: impl Into<String>) -> Result<Code, FieldError> {
        let value = value.into();
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
        if value.is_empty() || value.len() > MAX_CODE_LEN || !value.bytes().all(allowed) {
            return Err(FieldError::MalformedCode);
        }
        if contains_pan_like(&value) {
            return Err(FieldError::TextHoldsCardNumber);
        }
        Ok(Code(value))
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

/// A cardholder's phone number: [`FreeText`]'s rules, except that a number in international
/// form — `+`, then at most 15 digits (E.164's limit) with spaces, dashes, dots or parentheses
/// between them — is never taken for a card number. Without that exception one in four
/// 13-digit international numbers would be refused, since some 12 of their digits pass the Luhn
/// check; card numbers are not written with a leading `+`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Phone(String);

/// Most digits of an international (E.164) phone number.
pub const MAX_PHONE_DIGITS: usize = 15;

impl Phone {
    pub fn parse(value: impl Into<String>) -> Result<Phone, FieldError> {
        let value = value.into();
        if Phone::is_international(&value) {
            return Ok(Phone(value));
        }
        FreeText::parse(value).map(|text| Phone(text.0))
    }

    fn is_international(value: &str) -> bool {
        let Some(number) = value.trim().strip_prefix('+') else {
            return false;
        };
        let digits = number.bytes().filter(u8::is_ascii_digit).count();
        (1..=MAX_PHONE_DIGITS).contains(&digits)
            && number.bytes().all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'-' | b'.' | b'(' | b')'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a wallet shows beside a step-up method — a masked contact, the issuer app's id, the
/// number to call: [`Phone`]'s rules (free text, in which an international number is never
/// taken for a card number).
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DisplayText(String);

impl DisplayText {
    pub fn parse(value: impl Into<String>) -> Result<DisplayText, FieldError> {
        Phone::parse(value).map(|phone| DisplayText(phone.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Phone> for DisplayText {
    fn from(phone: Phone) -> DisplayText {
        DisplayText(phone.0)
    }
}

impl From<FreeText> for DisplayText {
    fn from(text: FreeText) -> DisplayText {
        DisplayText(text.0)
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
string_newtype!(Code);
string_newtype!(FreeText);
string_newtype!(Phone);
string_newtype!(DisplayText);

impl utoipa::PartialSchema for Id {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "1 to 128 printable ASCII characters without spaces; never `.` or `..`; never a card number \
                 (12 to 19 digits passing the Luhn check, alone or split by `-`, `.`, `/`, `_` or `:`).",
            ))
            .min_length(Some(1))
            .max_length(Some(MAX_ID_LEN))
            .pattern(Some("^(?!\\.{1,2}$)[!-~]+$"))
            .into()
    }
}

impl utoipa::ToSchema for Id {}

impl utoipa::PartialSchema for Code {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("1 to 64 letters, digits, `_`, `-` or `.`; never holding a card number."))
            .min_length(Some(1))
            .max_length(Some(MAX_CODE_LEN))
            .pattern(Some("^[A-Za-z0-9_.-]+$"))
            .into()
    }
}

impl utoipa::ToSchema for Code {}

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

impl utoipa::PartialSchema for Phone {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "At most 256 characters; never holding a card number, except that a number in international \
                 form (`+` and at most 15 digits, with spaces, dashes, dots or parentheses) is always accepted.",
            ))
            .max_length(Some(MAX_TEXT_LEN))
            .into()
    }
}

impl utoipa::ToSchema for Phone {}

impl utoipa::PartialSchema for DisplayText {
    fn schema() -> RefOr<Schema> {
        Phone::schema()
    }
}

impl utoipa::ToSchema for DisplayText {}

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
        assert_eq!(Id::parse("."), Err(FieldError::IdIsDotSegment));
        assert_eq!(Id::parse(".."), Err(FieldError::IdIsDotSegment));
        assert!(Id::parse("...").is_ok() && Id::parse(".x").is_ok());
        assert_eq!(Id::parse("4111-1111-1111-1111"), Err(FieldError::IdIsCardNumber));
        assert!(Id::parse("550e8400-e29b-41d4-a716-446655440000").is_ok());
    }

    #[test]
    fn codes() {
        assert!(Code::parse("ACCOUNT_TOO_NEW").is_ok() && Code::parse("0G").is_ok());
        for bad in ["", "a b", "ACCOUNT,TOO_NEW", "é", &"X".repeat(65)] {
            assert_eq!(Code::parse(bad), Err(FieldError::MalformedCode), "{bad}");
        }
        // A card number anywhere in it, not only the whole of it.
        for hidden in ["4111111111111111", "R4111111111111111", "X-4111-1111-1111-1111-Y"] {
            assert_eq!(Code::parse(hidden), Err(FieldError::TextHoldsCardNumber), "{hidden}");
        }
    }

    #[test]
    fn phones() {
        // 13 digits of which the last 12 pass the Luhn check: free text would refuse it.
        assert!(contains_pan_like("+4917612345678"));
        for phone in ["+4917612345678", "+49 176 1234 5678", "+48 (500) 100-200", "+1.555.010.0199"] {
            assert_eq!(Phone::parse(phone).unwrap(), phone);
        }
        assert_eq!(Phone::parse("+4111111111111111"), Err(FieldError::TextHoldsCardNumber), "16 digits: not E.164");
        assert_eq!(Phone::parse("4111 1111 1111 1111"), Err(FieldError::TextHoldsCardNumber));
        assert_eq!(Phone::parse("+48 4111111111111111 x"), Err(FieldError::TextHoldsCardNumber));
        assert!(Phone::parse("500 100 200").is_ok());
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
