//! User notifications from TMP: validated, the OTP decrypted from its JWE and re-encrypted
//! at rest under the data key, and queued for the issuer's own systems through the outbox.
//! The outbox payload never holds the OTP: the relay reads it from the notification row, and
//! never after `expiresAt`.

use time::OffsetDateTime;
use tmp_protocol::enums::NotificationType;
use tmp_protocol::issuer_api::{ActivationCode, NotificationRequest};

use super::error::DomainError;
use crate::crypto::aad;
use crate::crypto::at_rest::DataKeyRing;
use crate::outbox::{Destination, OutboxMessage};
use crate::store::{NotificationRecord, OutboxRecord};

/// The rules a notification's types do not already hold: only an activation code carries a
/// payload, and it always carries one, with its expiry; a step-up method goes with an
/// activation code (one sent by a code channel, agreeing with `channel`) or with
/// `STEP_UP_REQUESTED` (one without a code, for a token), and nowhere else.
pub fn validate(n: &NotificationRequest) -> Result<(), DomainError> {
    let carries_code = n.notification_type == NotificationType::ActivationCodeDelivery;
    match (carries_code, &n.encrypted_payload, n.expires_at) {
        (true, None, _) => return Err(DomainError::rule("ACTIVATION_CODE_DELIVERY requires `encryptedPayload`")),
        (true, Some(_), None) => return Err(DomainError::rule("ACTIVATION_CODE_DELIVERY requires `expiresAt`")),
        (false, Some(_), _) => {
            return Err(DomainError::rule("only ACTIVATION_CODE_DELIVERY carries an `encryptedPayload`"));
        }
        _ => {}
    }
    let code_channel = n.step_up_method.map(|m| m.code_channel());
    match (n.notification_type, code_channel) {
        (NotificationType::ActivationCodeDelivery, None) => Ok(()),
        (NotificationType::ActivationCodeDelivery, Some(None)) => {
            Err(DomainError::rule("an activation code's `stepUpMethod` must be OTP_SMS or OTP_EMAIL"))
        }
        (NotificationType::ActivationCodeDelivery, Some(Some(channel))) => match n.channel {
            Some(stated) if stated != channel => {
                Err(DomainError::rule("`stepUpMethod` and `channel` name different channels"))
            }
            _ => Ok(()),
        },
        (NotificationType::StepUpRequested, None) => {
            Err(DomainError::rule("STEP_UP_REQUESTED requires `stepUpMethod`"))
        }
        (NotificationType::StepUpRequested, Some(Some(_))) => Err(DomainError::rule(
            "STEP_UP_REQUESTED names a method without a code (APP_TO_APP, CUSTOMER_SERVICE or OUTBOUND_CALL); \
             a code comes as ACTIVATION_CODE_DELIVERY",
        )),
        (NotificationType::StepUpRequested, Some(None)) if n.token_id.is_none() => {
            Err(DomainError::rule("STEP_UP_REQUESTED requires `tokenId`"))
        }
        (NotificationType::StepUpRequested, Some(None)) => Ok(()),
        (_, Some(_)) => {
            Err(DomainError::rule("only ACTIVATION_CODE_DELIVERY and STEP_UP_REQUESTED carry a `stepUpMethod`"))
        }
        (_, None) => Ok(()),
    }
}

pub fn to_records(
    n: &NotificationRequest,
    code: Option<&ActivationCode>,
    data_keys: &DataKeyRing,
    now: OffsetDateTime,
) -> (NotificationRecord, OutboxRecord) {
    let sealed = code.map(|c| data_keys.encrypt(c.otp.expose().as_bytes(), &aad::otp(&n.notification_id)));
    let record = NotificationRecord {
        notification_id: n.notification_id.to_string(),
        notification_type: n.notification_type.as_str().into(),
        card_id: n.card_id.to_string(),
        token_id: n.token_id.as_ref().map(|t| t.to_string()),
        token_requestor_id: n.token_requestor.as_ref().map(|r| r.id.to_string()),
        channel: n
            .channel
            .map(|c| serde_json::to_value(c).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()),
        otp_key_id: sealed.as_ref().map(|s| s.key_id.clone()),
        otp_ciphertext: sealed.map(|s| s.bytes),
        expires_at: n.expires_at,
        occurred_at: n.occurred_at,
        received_at: now,
    };
    // The JWE was for the adapter; the sink gets the code from the relay, re-encrypted.
    let message = OutboxMessage::Notification(NotificationRequest { encrypted_payload: None, ..n.clone() });
    let outbox = OutboxRecord {
        id: uuid::Uuid::new_v4(),
        destination: Destination::IssuerWebhook,
        ordering_key: n.card_id.to_string(),
        message,
        created_at: now,
        not_after: n.expires_at,
        correlation_id: Some(tmp_edge::correlation::current()),
        traceparent: tmp_edge::correlation::current_trace(),
    };
    (record, outbox)
}
