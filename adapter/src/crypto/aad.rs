//! Every rule that binds a ciphertext at rest to its row (AES-GCM associated data): a
//! ciphertext copied into another row, or another kind of row, does not decrypt. One module, so
//! that the writer and the reader of each kind cannot drift apart.

/// A card's PAN in the registry (`cards.pan_ciphertext`), bound to its card id.
pub fn card_pan(card_id: &str) -> Vec<u8> {
    format!("pan:{card_id}").into_bytes()
}

/// Card data sealed into an outbox row's message, bound to the row's id.
pub fn outbox_row(outbox_id: &uuid::Uuid) -> Vec<u8> {
    format!("outbox:{outbox_id}").into_bytes()
}

/// An activation code (`notifications.otp_ciphertext`), bound to its notification id.
pub fn otp(notification_id: &str) -> Vec<u8> {
    format!("otp:{notification_id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_row_has_its_own_binding() {
        // Stored ciphertexts depend on these exact bytes: changing one makes every row of that
        // kind undecryptable.
        assert_eq!(card_pan("card-1"), b"pan:card-1");
        assert_eq!(otp("card-1"), b"otp:card-1");
        let id = uuid::Uuid::nil();
        assert_eq!(outbox_row(&id), b"outbox:00000000-0000-0000-0000-000000000000");
    }
}
