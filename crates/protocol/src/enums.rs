//! The contract's enums. Unknown values are rejected at deserialisation (serde's default for
//! enums), which the HTTP layer turns into a 422 — they are never coerced to a default.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Outcome of a card verification during tokenization (green / yellow / red path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    Approved,
    RequireAdditionalAuthentication,
    Declined,
}

impl Decision {
    /// How restrictive a decision is: a guardrail picks the most restrictive of two.
    pub fn strictness(self) -> u8 {
        match self {
            Decision::Approved => 0,
            Decision::RequireAdditionalAuthentication => 1,
            Decision::Declined => 2,
        }
    }

    /// The more restrictive of `self` and `other`.
    pub fn at_least_as_strict_as(self, other: Decision) -> Decision {
        if other.strictness() > self.strictness() { other } else { self }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "APPROVED",
            Decision::RequireAdditionalAuthentication => "REQUIRE_ADDITIONAL_AUTHENTICATION",
            Decision::Declined => "DECLINED",
        }
    }
}

/// User-notification types TMP sends to the issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationType {
    /// Carries a one-time activation code (OTP) the cardholder types into the wallet.
    ActivationCodeDelivery,
    TokenActivated,
    CardRemovedByCustomer,
    CardRemovedByIssuer,
    /// The cardholder chose a step-up method without a code (`APP_TO_APP`, `CUSTOMER_SERVICE`,
    /// `OUTBOUND_CALL`, named in `stepUpMethod`): the issuer's systems take it from there and
    /// activate the token through the TMP API once the cardholder is authenticated.
    StepUpRequested,
}

impl NotificationType {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationType::ActivationCodeDelivery => "ACTIVATION_CODE_DELIVERY",
            NotificationType::TokenActivated => "TOKEN_ACTIVATED",
            NotificationType::CardRemovedByCustomer => "CARD_REMOVED_BY_CUSTOMER",
            NotificationType::CardRemovedByIssuer => "CARD_REMOVED_BY_ISSUER",
            NotificationType::StepUpRequested => "STEP_UP_REQUESTED",
        }
    }
}

/// Status of a payment token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenStatus {
    Inactive,
    Active,
    Suspended,
    Deactivated,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Inactive => "INACTIVE",
            TokenStatus::Active => "ACTIVE",
            TokenStatus::Suspended => "SUSPENDED",
            TokenStatus::Deactivated => "DEACTIVATED",
        }
    }

    pub fn parse(s: &str) -> Option<TokenStatus> {
        Some(match s {
            "INACTIVE" => TokenStatus::Inactive,
            "ACTIVE" => TokenStatus::Active,
            "SUSPENDED" => TokenStatus::Suspended,
            "DEACTIVATED" => TokenStatus::Deactivated,
            _ => return None,
        })
    }
}

/// Card status as reported by card verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CardStatus {
    Active,
    Blocked,
    Closed,
    Expired,
    NotFound,
    /// The card source did not answer (a stand-in): whether the card exists, and in which
    /// state, is not known. Never in a CVC check's answer (that has no stand-in).
    Unknown,
}

impl CardStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CardStatus::Active => "ACTIVE",
            CardStatus::Blocked => "BLOCKED",
            CardStatus::Closed => "CLOSED",
            CardStatus::Expired => "EXPIRED",
            CardStatus::NotFound => "NOT_FOUND",
            CardStatus::Unknown => "UNKNOWN",
        }
    }
}

/// Result of a CVC check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CvcResult {
    Match,
    NoMatch,
    NotProvided,
    AttemptsExceeded,
}

impl CvcResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CvcResult::Match => "MATCH",
            CvcResult::NoMatch => "NO_MATCH",
            CvcResult::NotProvided => "NOT_PROVIDED",
            CvcResult::AttemptsExceeded => "ATTEMPTS_EXCEEDED",
        }
    }
}

/// Token service provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Tsp {
    /// Mastercard Digital Enablement Service.
    Mdes,
    /// Visa Token Service.
    Vts,
}

impl Tsp {
    pub const ALL: [Tsp; 2] = [Tsp::Mdes, Tsp::Vts];

    /// The value `as_str` gives (a stored one, read back).
    pub fn parse(s: &str) -> Option<Tsp> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tsp::Mdes => "MDES",
            Tsp::Vts => "VTS",
        }
    }
}

/// Kind of token requestor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Wallet {
    ApplePay,
    GooglePay,
    SamsungPay,
    Merchant,
    Other,
}

impl Wallet {
    pub const ALL: [Wallet; 5] =
        [Wallet::ApplePay, Wallet::GooglePay, Wallet::SamsungPay, Wallet::Merchant, Wallet::Other];

    /// The value `as_str` gives (a stored one, read back).
    pub fn parse(s: &str) -> Option<Wallet> {
        Self::ALL.into_iter().find(|w| w.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Wallet::ApplePay => "APPLE_PAY",
            Wallet::GooglePay => "GOOGLE_PAY",
            Wallet::SamsungPay => "SAMSUNG_PAY",
            Wallet::Merchant => "MERCHANT",
            Wallet::Other => "OTHER",
        }
    }
}

/// The kind of device a token is provisioned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeviceType {
    Phone,
    Tablet,
    Watch,
    Wearable,
    Computer,
    Vehicle,
    Other,
}

impl DeviceType {
    pub const ALL: [DeviceType; 7] = [
        DeviceType::Phone,
        DeviceType::Tablet,
        DeviceType::Watch,
        DeviceType::Wearable,
        DeviceType::Computer,
        DeviceType::Vehicle,
        DeviceType::Other,
    ];

    /// The value `as_str` gives (a stored one, read back).
    pub fn parse(s: &str) -> Option<DeviceType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Phone => "PHONE",
            DeviceType::Tablet => "TABLET",
            DeviceType::Watch => "WATCH",
            DeviceType::Wearable => "WEARABLE",
            DeviceType::Computer => "COMPUTER",
            DeviceType::Vehicle => "VEHICLE",
            DeviceType::Other => "OTHER",
        }
    }
}

/// The kind of token a tokenization asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenType {
    /// Kept in the device's secure element (Apple Pay).
    SecureElement,
    /// Host card emulation: the token's keys in the cloud (Google Pay).
    Hce,
    /// Stored by a merchant for later payments.
    CardOnFile,
}

impl TokenType {
    pub const ALL: [TokenType; 3] = [TokenType::SecureElement, TokenType::Hce, TokenType::CardOnFile];

    /// The value `as_str` gives (a stored one, read back).
    pub fn parse(s: &str) -> Option<TokenType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::SecureElement => "SECURE_ELEMENT",
            TokenType::Hce => "HCE",
            TokenType::CardOnFile => "CARD_ON_FILE",
        }
    }
}

/// Where the wallet got the card number from (the kit's member, after VTS's `panSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PanSource {
    /// Typed or scanned by the cardholder.
    KeyEntered,
    /// Already on file with the wallet or merchant.
    OnFile,
    /// Pushed by the issuer's app.
    MobileBankingApp,
    Other,
}

impl PanSource {
    pub const ALL: [PanSource; 4] =
        [PanSource::KeyEntered, PanSource::OnFile, PanSource::MobileBankingApp, PanSource::Other];

    /// The value `as_str` gives (a stored one, read back).
    pub fn parse(s: &str) -> Option<PanSource> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PanSource::KeyEntered => "KEY_ENTERED",
            PanSource::OnFile => "ON_FILE",
            PanSource::MobileBankingApp => "MOBILE_BANKING_APP",
            PanSource::Other => "OTHER",
        }
    }
}

/// How the tokenization was started: the cardholder typed the card into the wallet, or the
/// issuer's app pushed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProvisioningMethod {
    Manual,
    Push,
}

/// Card status in the issuer's systems (processor events, Lifecycle API, TMP API card status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IssuerCardStatus {
    Active,
    Blocked,
    Closed,
}

impl IssuerCardStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IssuerCardStatus::Active => "ACTIVE",
            IssuerCardStatus::Blocked => "BLOCKED",
            IssuerCardStatus::Closed => "CLOSED",
        }
    }

    pub fn parse(s: &str) -> Option<IssuerCardStatus> {
        Some(match s {
            "ACTIVE" => IssuerCardStatus::Active,
            "BLOCKED" => IssuerCardStatus::Blocked,
            "CLOSED" => IssuerCardStatus::Closed,
            _ => return None,
        })
    }
}

/// How a cardholder can complete a step-up (the networks' activation methods: MDES's
/// `activationMethods`, VTS's `stepUpOptions`). The wallet offers only what the issuer lists in
/// verify-card's `stepUpMethods`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepUpMethodType {
    /// TMP sends an activation code, which the issuer delivers by SMS to the phone shown masked.
    OtpSms,
    /// The same by e-mail.
    OtpEmail,
    /// The wallet opens the issuer's app (the value is its id); the app authenticates the
    /// cardholder and the issuer activates the token.
    AppToApp,
    /// The cardholder calls the issuer (the value is the number to call).
    CustomerService,
    /// The issuer calls the cardholder (the value is the phone it will call, masked).
    OutboundCall,
}

impl StepUpMethodType {
    pub const ALL: [StepUpMethodType; 5] = [
        StepUpMethodType::OtpSms,
        StepUpMethodType::OtpEmail,
        StepUpMethodType::AppToApp,
        StepUpMethodType::CustomerService,
        StepUpMethodType::OutboundCall,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepUpMethodType::OtpSms => "OTP_SMS",
            StepUpMethodType::OtpEmail => "OTP_EMAIL",
            StepUpMethodType::AppToApp => "APP_TO_APP",
            StepUpMethodType::CustomerService => "CUSTOMER_SERVICE",
            StepUpMethodType::OutboundCall => "OUTBOUND_CALL",
        }
    }

    /// The method of an activation code sent by `channel` (none for `PUSH`).
    pub fn for_code_channel(channel: NotificationChannel) -> Option<StepUpMethodType> {
        match channel {
            NotificationChannel::Sms => Some(StepUpMethodType::OtpSms),
            NotificationChannel::Email => Some(StepUpMethodType::OtpEmail),
            NotificationChannel::Push => None,
        }
    }

    /// The channel an activation code of this method travels by; `None` for the methods
    /// without a code.
    pub fn code_channel(self) -> Option<NotificationChannel> {
        match self {
            StepUpMethodType::OtpSms => Some(NotificationChannel::Sms),
            StepUpMethodType::OtpEmail => Some(NotificationChannel::Email),
            _ => None,
        }
    }
}

/// Channel through which a notification should reach the cardholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationChannel {
    Sms,
    Email,
    Push,
}

/// Why a token's status was changed, as a code a fraud desk and a report can count (the
/// networks' coded reasons: MDES's `reasonCode`, VTS's `reasonCode`); the free-text `reason`
/// beside it says the rest. The kit's choice of values where TMP's are not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReasonCode {
    /// The device or card was lost.
    Lost,
    Stolen,
    /// Fraud suspected or confirmed.
    Fraud,
    /// A lost device or card was found (resumes what `LOST` suspended).
    Found,
    /// The cardholder asked.
    CustomerRequest,
    Other,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 6] = [
        ReasonCode::Lost,
        ReasonCode::Stolen,
        ReasonCode::Fraud,
        ReasonCode::Found,
        ReasonCode::CustomerRequest,
        ReasonCode::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::Lost => "LOST",
            ReasonCode::Stolen => "STOLEN",
            ReasonCode::Fraud => "FRAUD",
            ReasonCode::Found => "FOUND",
            ReasonCode::CustomerRequest => "CUSTOMER_REQUEST",
            ReasonCode::Other => "OTHER",
        }
    }

    pub fn parse(s: &str) -> Option<ReasonCode> {
        ReasonCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Who caused a token's status change, as a token event reports it (MDES's `causedBy`, VTS's
/// event source): the issuer (its own action or its card's block, closure or replacement), the
/// cardholder (through the issuer's app or by typing an activation code), the token requestor
/// (the wallet on its own, e.g. a device wiped) or the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeInitiator {
    Issuer,
    Cardholder,
    TokenRequestor,
    Network,
}

impl ChangeInitiator {
    pub const ALL: [ChangeInitiator; 4] = [
        ChangeInitiator::Issuer,
        ChangeInitiator::Cardholder,
        ChangeInitiator::TokenRequestor,
        ChangeInitiator::Network,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeInitiator::Issuer => "ISSUER",
            ChangeInitiator::Cardholder => "CARDHOLDER",
            ChangeInitiator::TokenRequestor => "TOKEN_REQUESTOR",
            ChangeInitiator::Network => "NETWORK",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeInitiator> {
        ChangeInitiator::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// What a card's replacement does to the old card's tokens: they move to the new card (the
/// default: the cardholder keeps paying with the phone) or are deactivated (a card replaced
/// after fraud: the wallet must provision the new card afresh). The kit's choice of names; MDES
/// and VTS both offer the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReplacementTokens {
    Move,
    Deactivate,
}

/// A status name that is not one of its enum's (as read back from storage).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

impl TryFrom<String> for TokenStatus {
    type Error = UnknownStatus;

    fn try_from(s: String) -> Result<Self, UnknownStatus> {
        TokenStatus::parse(&s).ok_or(UnknownStatus(s))
    }
}

impl TryFrom<String> for IssuerCardStatus {
    type Error = UnknownStatus;

    fn try_from(s: String) -> Result<Self, UnknownStatus> {
        IssuerCardStatus::parse(&s).ok_or(UnknownStatus(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names the store keeps are the wire's: every value's `as_str` is its JSON form, and
    /// `parse` reads it back.
    #[test]
    fn stored_names_are_the_wire_names() {
        fn check<T: Serialize + Copy + PartialEq + std::fmt::Debug>(
            all: &[T],
            as_str: fn(T) -> &'static str,
            parse: fn(&str) -> Option<T>,
        ) {
            for &value in all {
                assert_eq!(serde_json::to_value(value).unwrap(), serde_json::json!(as_str(value)));
                assert_eq!(parse(as_str(value)), Some(value));
            }
            assert_eq!(parse("lost"), None, "names are case-sensitive");
        }
        check(&ReasonCode::ALL, ReasonCode::as_str, ReasonCode::parse);
        check(&ChangeInitiator::ALL, ChangeInitiator::as_str, ChangeInitiator::parse);
        check(&Tsp::ALL, Tsp::as_str, Tsp::parse);
        check(&Wallet::ALL, Wallet::as_str, Wallet::parse);
        check(&DeviceType::ALL, DeviceType::as_str, DeviceType::parse);
        check(&TokenType::ALL, TokenType::as_str, TokenType::parse);
        check(&PanSource::ALL, PanSource::as_str, PanSource::parse);
    }
}
