//! Property tests of the sensitive-data types.

use proptest::prelude::*;
use tmp_protocol::fields::{FieldError, FreeText};
use tmp_protocol::sensitive::{Cvc, Expiry, Otp, Pan, SensitiveError, contains_pan_like};

use crate::with_luhn_digit;

/// Luhn-valid PANs of every accepted length.
fn valid_pan() -> impl Strategy<Value = String> {
    "[0-9]{11,18}".prop_map(|body| with_luhn_digit(&body))
}

/// `pan` as people write, paste or disguise it: digits adjacent, or in groups of four split by
/// `separator`; in full-width digits when `full_width`.
fn written(pan: &str, separator: Option<&str>, full_width: bool) -> String {
    let pan: String = if full_width {
        pan.chars().map(|c| char::from_u32(0xFF10 + c.to_digit(10).unwrap()).unwrap()).collect()
    } else {
        pan.to_owned()
    };
    match separator {
        None => pan,
        Some(sep) => pan
            .chars()
            .collect::<Vec<_>>()
            .chunks(4)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(sep),
    }
}

/// Separators between a card number's groups, as typed and as pasted.
const SEPARATORS: [&str; 12] =
    [" ", "-", ".", "\t", "/", "_", "  ", " - ", "\u{a0}", "\u{200b}", "\u{2013}", "\u{3000}"];

proptest! {
    #[test]
    fn a_card_number_anywhere_in_free_text_is_found(
        pan in valid_pan(),
        separator in prop::option::of(prop::sample::select(SEPARATORS.to_vec())),
        full_width in any::<bool>(),
        before in "[a-zA-Z ,:]{0,20}[0-9]{0,3}",
        after in "[0-9]{0,3}[a-zA-Z ,:]{0,20}",
    ) {
        // Digits glued before or after it make a longer run: the PAN is still in it.
        let text = format!("{before}{}{after}", written(&pan, separator, full_width));
        prop_assert!(contains_pan_like(&text), "{}", text);
        if text.chars().count() <= 256 {
            prop_assert_eq!(FreeText::parse(text.as_str()), Err(FieldError::TextHoldsCardNumber));
        }
    }

    #[test]
    fn text_without_a_long_digit_run_is_free(text in "([a-zA-Z ,:.-]{0,7}[a-zA-Z][0-9]{0,11}){0,12}") {
        prop_assert!(!contains_pan_like(&text), "{}", text);
    }

    #[test]
    fn luhn_valid_pans_parse(pan in valid_pan()) {
        let parsed = Pan::parse(&pan).unwrap();
        prop_assert_eq!(parsed.expose(), pan.as_str());
        prop_assert_eq!(parsed.last4(), &pan[pan.len() - 4..]);
        prop_assert_eq!(parsed.masked().len(), pan.len());
    }

    #[test]
    fn any_wrong_check_digit_is_rejected(pan in valid_pan(), delta in 1u8..10) {
        let mut bytes = pan.into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = b'0' + (bytes[last] - b'0' + delta) % 10;
        let wrong = String::from_utf8(bytes).unwrap();
        prop_assert_eq!(Pan::parse(&wrong), Err(SensitiveError::PanLuhn));
    }

    #[test]
    fn single_digit_errors_are_caught(pan in valid_pan(), pos in any::<prop::sample::Index>(), delta in 1u8..10) {
        // Luhn detects every single-digit substitution.
        let mut bytes = pan.into_bytes();
        let i = pos.index(bytes.len());
        bytes[i] = b'0' + (bytes[i] - b'0' + delta) % 10;
        prop_assert!(Pan::parse(std::str::from_utf8(&bytes).unwrap()).is_err());
    }

    #[test]
    fn wrong_lengths_are_rejected(digits in "[0-9]{0,11}|[0-9]{20,40}") {
        prop_assert_eq!(Pan::parse(&digits), Err(SensitiveError::PanLength));
    }

    #[test]
    fn non_digits_are_rejected(s in "[0-9]{6}[^0-9][0-9]{9}") {
        prop_assert_eq!(Pan::parse(&s), Err(SensitiveError::PanNotDigits));
    }

    #[test]
    fn pan_serde_round_trip(pan in valid_pan()) {
        let p = Pan::parse(&pan).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        prop_assert_eq!(&json, &format!("\"{pan}\""));
        let back: Pan = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, p);
    }

    #[test]
    fn cvc_and_otp_round_trip(cvc in "[0-9]{3,4}", otp in "[0-9]{6,8}") {
        let c = Cvc::parse(&cvc).unwrap();
        let o = Otp::parse(&otp).unwrap();
        prop_assert_eq!(serde_json::from_str::<Cvc>(&serde_json::to_string(&c).unwrap()).unwrap(), c.clone());
        prop_assert_eq!(serde_json::from_str::<Otp>(&serde_json::to_string(&o).unwrap()).unwrap(), o.clone());
        prop_assert!(c.ct_eq(&Cvc::parse(&cvc).unwrap()));
        prop_assert!(o.ct_eq(&Otp::parse(&otp).unwrap()));
    }

    #[test]
    fn ct_eq_agrees_with_string_equality(a in "[0-9]{3,4}", b in "[0-9]{3,4}") {
        prop_assert_eq!(Cvc::parse(&a).unwrap().ct_eq(&Cvc::parse(&b).unwrap()), a == b);
    }

    #[test]
    fn expiry_round_trip(month in 1u8..=12, year in 2000u16..=2099) {
        let e = Expiry::new(month, year).unwrap();
        let wire = format!("{month:02}/{:02}", year % 100);
        prop_assert_eq!(Expiry::parse(&wire).unwrap(), e.clone());
        prop_assert_eq!(serde_json::to_string(&e).unwrap(), format!("\"{wire}\""));
        prop_assert_eq!(e.yymm(), format!("{:02}{month:02}", year % 100));
    }

    #[test]
    fn expiry_parser_never_panics(s in "\\PC{0,8}") {
        let _ = Expiry::parse(&s);
        let _ = Pan::parse(&s);
        let _ = Cvc::parse(&s);
        let _ = Otp::parse(&s);
    }
}

#[test]
fn struct_with_sensitive_fields_round_trips_and_masks() {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct CardData {
        pan: Pan,
        expiry: Expiry,
        cvc: Option<Cvc>,
    }
    let card: CardData = serde_json::from_str(r#"{"pan":"5555555555554444","expiry":"11/29","cvc":"737"}"#).unwrap();
    assert_eq!(
        format!("{card:?}"),
        "CardData { pan: Pan(************4444), expiry: Expiry(**/**), cvc: Some(Cvc(***)) }"
    );
    let json = serde_json::to_string(&card).unwrap();
    assert_eq!(json, r#"{"pan":"5555555555554444","expiry":"11/29","cvc":"737"}"#);
}
