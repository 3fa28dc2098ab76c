//! Field rules shared by every surface: ids are short printable ASCII and never a PAN; free
//! text never holds anything that looks like a card number (it is stored and forwarded in
//! clear, so a PAN pasted into a reason or a name must be refused at the door).

use tmp_protocol::issuer_api::TokenRequestor;
use tmp_protocol::sensitive::contains_pan_like;

use tmp_edge::error::ApiError;

/// Longest accepted id (event, token, card, notification ids).
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted free text (reasons, names).
pub const MAX_TEXT_LEN: usize = 256;

/// Rejects ids that are empty, too long, not printable ASCII, or a PAN.
pub fn check_id(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > MAX_ID_LEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::validation(format!(
            "`{field}` must be 1 to {MAX_ID_LEN} printable ASCII characters without spaces"
        )));
    }
    // An id made only of digits that passes the Luhn check is a PAN in the wrong place. Ids
    // merely containing digit runs (token references do) are fine.
    if value.bytes().all(|b| b.is_ascii_digit()) && contains_pan_like(value) {
        return Err(ApiError::validation(format!("`{field}` must not be a card number")));
    }
    Ok(())
}

/// Rejects free text that is too long or holds something that looks like a PAN.
pub fn check_text(field: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().count() > MAX_TEXT_LEN {
        return Err(ApiError::validation(format!("`{field}` must be at most {MAX_TEXT_LEN} characters")));
    }
    if contains_pan_like(value) {
        return Err(ApiError::validation(format!("`{field}` must not contain a card number")));
    }
    Ok(())
}

pub fn check_requestor(field: &str, requestor: &TokenRequestor) -> Result<(), ApiError> {
    check_id(&format!("{field}.id"), &requestor.id)?;
    check_text(&format!("{field}.name"), &requestor.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_text() {
        assert!(check_id("cardId", "card-1").is_ok());
        assert!(check_id("tokenId", "DWSPMC000000000132d72d4fcb2f4136a0532d3093ff1a45").is_ok());
        assert!(check_id("cardId", "4111111111111111").is_err());
        assert!(check_id("cardId", "").is_err());
        assert!(check_id("cardId", "a b").is_err());
        assert!(check_id("cardId", &"x".repeat(129)).is_err());
        assert!(check_text("reason", "CARD_BLOCKED").is_ok());
        assert!(check_text("reason", "replaced card 4111 1111 1111 1111").is_err());
        assert!(check_text("reason", &"x".repeat(257)).is_err());
    }
}
