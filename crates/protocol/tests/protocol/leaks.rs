//! Nothing secret may reach a log line: `Debug`, `Display` and every error message of every
//! sensitive type and secret holder must be free of the clear value.

use proptest::prelude::*;
use tmp_protocol::jwe::{self, KeyRing};
use tmp_protocol::sensitive::{Cvc, Expiry, Otp, Pan};
use tmp_protocol::webhook::{Verifier, WebhookSecret};

use crate::{keys, with_luhn_digit};

/// True if `text` contains any ASCII digit.
fn has_digit(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_digit())
}

/// Every way a value can end up in a log.
fn renderings<T: std::fmt::Debug + std::fmt::Display>(v: &T) -> Vec<String> {
    vec![format!("{v}"), format!("{v:?}"), format!("{v:#?}"), format!("{:?}", Some(v))]
}

/// The fixed texts that may appear in errors, and whose digits are rules, not data.
const FIXED_TEXTS: &[&str] = &[
    "PAN must be 12 to 19 digits",
    "CVC must be 3 or 4 digits",
    "OTP must be 6 to 8 digits",
    "expiry month must be 01 to 12",
    "expiry year must be 2000 to 2099",
    "a PAN as a string of 12 to 19 digits",
    "a CVC as a string of 3 or 4 digits",
    "an OTP as a string of 6 to 8 digits",
];

/// `text` with the fixed texts removed; whatever digits remain came from the input.
fn scrub(text: &str) -> String {
    FIXED_TEXTS.iter().fold(text.to_owned(), |t, fixed| t.replace(fixed, ""))
}

/// Serde error messages for `json` parsed as `T`, with serde_json's "at line L column C"
/// suffix removed (its digits are positions, not data) and the fixed texts scrubbed.
fn serde_error<T: serde::de::DeserializeOwned>(json: &str) -> String {
    let err = serde_json::from_str::<T>(json).err().expect("must not parse").to_string();
    let err = match err.rfind(" at line ") {
        Some(i) => err[..i].to_owned(),
        None => err,
    };
    scrub(&err)
}

proptest! {
    #[test]
    fn pan_renderings_show_at_most_the_last_four(body in "[0-9]{11,18}") {
        let digits = with_luhn_digit(&body);
        let pan = Pan::parse(&digits).unwrap();
        for text in renderings(&pan).into_iter().chain([pan.masked()]) {
            // Only the last four digits may appear, once, at the end of the masked part.
            let without_last4 = text.replacen(pan.last4(), "", 1);
            prop_assert!(!has_digit(&without_last4), "{}", text);
        }
    }

    #[test]
    fn short_secrets_render_without_digits(cvc in "[0-9]{3,4}", otp in "[0-9]{6,8}", m in 1u8..=12, y in 2000u16..=2099) {
        let cvc = Cvc::parse(&cvc).unwrap();
        let otp = Otp::parse(&otp).unwrap();
        let exp = Expiry::new(m, y).unwrap();
        for text in renderings(&cvc).into_iter().chain(renderings(&otp)).chain(renderings(&exp)) {
            prop_assert!(!has_digit(&text), "{}", text);
        }
    }

    #[test]
    fn rejected_values_are_never_quoted(digits in "[0-9]{3,40}") {
        // Direct parse errors.
        for err in [
            Pan::parse(&digits).err().map(|e| e.to_string()),
            Cvc::parse(&digits).err().map(|e| e.to_string()),
            Otp::parse(&digits).err().map(|e| e.to_string()),
            Expiry::parse(&digits).err().map(|e| e.to_string()),
        ].into_iter().flatten() {
            prop_assert!(!has_digit(&scrub(&err)), "{}", err);
        }
        // Serde errors, for the value as a JSON string and as a bare JSON number.
        let luhn_broken = {
            let mut d = with_luhn_digit(&digits[..digits.len().min(15)]).into_bytes();
            let last = d.len() - 1;
            d[last] = b'0' + (d[last] - b'0' + 1) % 10;
            String::from_utf8(d).unwrap()
        };
        for value in [&digits, &luhn_broken] {
            for json in [format!("\"{value}\""), value.to_string(), format!("\"{value}x\"")] {
                for err in [
                    serde_json::from_str::<Pan>(&json).err().map(|_| serde_error::<Pan>(&json)),
                    serde_json::from_str::<Cvc>(&json).err().map(|_| serde_error::<Cvc>(&json)),
                    serde_json::from_str::<Otp>(&json).err().map(|_| serde_error::<Otp>(&json)),
                    serde_json::from_str::<Expiry>(&json).err().map(|_| serde_error::<Expiry>(&json)),
                ].into_iter().flatten() {
                    prop_assert!(!has_digit(&err), "{} -> {}", json, err);
                }
            }
        }
    }
}

#[test]
fn expiry_errors_do_not_quote_input() {
    for json in ["\"13/28\"", "\"00/00\"", "1228", "\"12/2028\""] {
        let err = serde_error::<Expiry>(json);
        assert!(!has_digit(&err), "{json} -> {err}");
    }
}

#[test]
fn key_holders_do_not_print_key_material() {
    let (secret, text) = WebhookSecret::generate();
    let encoded = text.trim_start_matches("whsec_");
    for rendered in [
        format!("{secret:?}"),
        format!("{:?}", Verifier::new(vec![secret.clone()], std::time::Duration::from_secs(300))),
    ] {
        assert!(!rendered.contains(encoded), "{rendered}");
        assert!(!rendered.contains(&encoded[..8]), "{rendered}");
    }

    let (a, _) = keys();
    let pem = a.to_pkcs8_pem().unwrap();
    let body_line = pem.lines().nth(3).unwrap();
    let ring = KeyRing::new(vec![a.clone()]).unwrap();
    for rendered in [format!("{a:?}"), format!("{a:#?}"), format!("{ring:?}")] {
        assert!(!rendered.contains(&body_line[..16]), "{rendered}");
        assert!(rendered.contains(a.kid()), "{rendered}");
    }
}

#[test]
fn jwe_errors_do_not_echo_plaintext() {
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        amount: u32,
    }
    let (a, _) = keys();
    let ring = KeyRing::new(vec![a.clone()]).unwrap();
    for plaintext in [
        r#"{"amount":"4111111111111111"}"#,
        r#"{"4111111111111111":1}"#,
        r#"{"amount":1,"pan":"4111111111111111"}"#,
        "4111111111111111",
        "not json 4111111111111111",
    ] {
        let token = jwe::encrypt(plaintext.as_bytes(), &a.public_jwk()).unwrap();
        let err = ring.decrypt_json::<Strict>(&token).unwrap_err();
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains("4111"), "{text}");
        }
    }
}
