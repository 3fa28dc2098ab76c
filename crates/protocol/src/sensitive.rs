//! Sensitive card data: [`Pan`], [`Cvc`], [`Otp`] and [`Expiry`].
//!
//! These types exist so that card data cannot leak by accident:
//!
//! * **Validated on construction.** A value of one of these types is always well formed;
//!   there is no way to build an invalid one, including through serde.
//! * **Masked when printed.** `Debug` and `Display` never print the digits, so a value that
//!   ends up in a log line, a panic message or an error chain shows `************1111`,
//!   `***` or `**/**` instead.
//! * **Zeroized on drop.** The digits live in a [`Zeroizing`] buffer, wiped when the value
//!   (or any clone of it) is dropped.
//! * **Errors never echo input.** [`SensitiveError`] messages name the problem, never the
//!   value, and deserialization errors do not quote the offending JSON value either.
//! * **Explicit reads.** The digits can only be read through `expose()`, which makes every
//!   place that handles clear card data easy to find in review.
//!
//! `Serialize` writes the clear value. That is deliberate: these types appear in the
//! *plaintext* of JWE payloads (see [`crate::jwe`]), which must carry the real digits.
//! Never serialize them into logs or into any unencrypted response body.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;
use time::{OffsetDateTime, UtcOffset};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Why a sensitive value was rejected. Messages never contain the rejected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum SensitiveError {
    #[error("PAN must contain digits only")]
    PanNotDigits,
    #[error("PAN must be 12 to 19 digits")]
    PanLength,
    #[error("PAN fails the Luhn check")]
    PanLuhn,
    #[error("CVC must be 3 or 4 digits")]
    Cvc,
    #[error("OTP must be 6 to 8 digits")]
    Otp,
    #[error("expiry must be formatted MM/YY")]
    ExpiryFormat,
    #[error("expiry month must be 01 to 12")]
    ExpiryMonth,
    #[error("expiry year must be 2000 to 2099")]
    ExpiryYear,
}

/// True if `s` is non-empty and consists of ASCII digits only.
fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether free text (a reason, a name, a contact) holds something that looks like a PAN: 12 to
/// 19 consecutive digits that pass the Luhn check, anywhere inside a run of digits. Digits are
/// ASCII or any other script's decimal digits (full-width `４`, Arabic-Indic `٤`, …); up to
/// [`MAX_GAP`] separators between two digits continue the run — whitespace of any kind (tabs,
/// no-break and zero-width spaces included), dashes, dots, slashes and underscores — as people
/// write, paste and disguise card numbers. A PAN with more digits before or after it
/// (`ref 4111111111111111 0000`) is found too: every window of the run is checked, not the run as
/// a whole. Fields that must never carry card data are refused with this check, so a PAN pasted
/// into the wrong place never reaches storage, logs or a forwarded payload. (About one in ten
/// windows of random digits passes Luhn, so long digit runs in free text are refused as a rule:
/// they cannot be told from card numbers.)
pub fn contains_pan_like(text: &str) -> bool {
    let mut digits: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
    // Separators seen since the run's last digit.
    let mut gap = 0;
    for c in text.chars().chain(std::iter::once('\0')) {
        if let Some(d) = decimal_digit(c) {
            digits.push(b'0' + d);
            gap = 0;
            continue;
        }
        if !digits.is_empty() && gap < MAX_GAP && is_digit_separator(c) {
            gap += 1;
            continue;
        }
        if holds_pan(&digits) {
            return true;
        }
        digits.clear();
        gap = 0;
    }
    false
}

/// Most separator characters between two digits of one run (`4111 - 1111` has three).
pub const MAX_GAP: usize = 3;

/// The value of a decimal digit of any script Unicode lists in the Nd category and people are
/// likely to type: ASCII, full-width, Arabic-Indic, the Indic scripts, Thai, Lao, Tibetan,
/// Myanmar, and the mathematical alphanumeric digits.
fn decimal_digit(c: char) -> Option<u8> {
    const ZEROS: [u32; 23] = [
        0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xE50, 0xED0, 0xF20,
        0x1040, 0xFF10, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6,
    ];
    let code = u32::from(c);
    // Each block holds the ten digits in order from its zero, so the offset is the value.
    ZEROS.iter().find(|&&zero| (zero..zero + 10).contains(&code)).map(|zero| (code - zero) as u8)
}

/// Characters that may stand between the digits of a card number as written or disguised.
fn is_digit_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(c, '-' | '.' | '/' | '_' | '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FF0D}' | '\u{FF0E}' | '\u{FF0F}')
        // Zero-width characters, which `is_whitespace` does not count.
        || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}')
}

/// Whether the value as a whole is a PAN: 12 to 19 ASCII digits, Luhn-valid, possibly with
/// dashes, dots, slashes, underscores or colons between them (`4111-1111-1111-1111`). For ids and
/// header tokens, which may be long numbers or hold digit runs (UUIDs, token references) but
/// must not be a card number; judging every window, as free text is judged, would refuse a
/// fair share of random UUIDs.
pub fn is_pan_like(text: &str) -> bool {
    if !text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'/' | b'_' | b':')) {
        return false;
    }
    let digits: Zeroizing<Vec<u8>> = Zeroizing::new(text.bytes().filter(u8::is_ascii_digit).collect());
    (12..=19).contains(&digits.len()) && luhn_valid(&digits)
}

/// Whether some 12 to 19 consecutive digits of `digits` pass the Luhn check.
fn holds_pan(digits: &[u8]) -> bool {
    (12..=19.min(digits.len())).any(|len| (0..=digits.len() - len).any(|start| luhn_valid(&digits[start..start + len])))
}

/// Luhn (mod 10) check over ASCII digits; the caller guarantees `digits` are `0`-`9`.
fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                // Doubling a digit d > 4 gives a two-digit number; its digit sum is 2d - 9.
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Constant-time equality of two secrets. Only the lengths may leak through timing, and
/// those are public anyway (a PAN's length is visible in its masked form).
fn ct_eq_str(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Types that deserialize from a JSON string through their validating parser.
trait FromWire: Sized {
    /// Shown by serde in "expected …" messages.
    const EXPECTING: &'static str;
    fn from_wire(s: &str) -> Result<Self, SensitiveError>;
}

/// A serde visitor that parses a string with [`FromWire::from_wire`] and, for every other
/// JSON type, reports only the *kind* of value received. Serde's default messages quote
/// the value (``invalid type: integer `4111111111111111` ``), which would put card data into
/// error messages and from there into logs.
///
/// It is driven through `deserialize_any`, not `deserialize_str`: for a non-string value
/// serde_json's `deserialize_str` builds the quoting error itself without consulting the
/// visitor. The cost is that these types need a self-describing format (JSON is the only
/// one this contract uses).
struct WireVisitor<T>(PhantomData<T>);

impl<T: FromWire> WireVisitor<T> {
    fn not_a_string<E: de::Error>(&self, kind: &'static str) -> E {
        E::invalid_type(Unexpected::Other(kind), self)
    }
}

impl<T: FromWire> Visitor<'_> for WireVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::from_wire(v).map_err(E::custom)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<T, E> {
        // Take ownership so the deserializer's copy is wiped too, valid or not.
        let v = Zeroizing::new(v);
        T::from_wire(&v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<T, E> {
        Err(self.not_a_string("a number"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<T, E> {
        Err(self.not_a_string("a number"))
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<T, E> {
        Err(self.not_a_string("a number"))
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<T, E> {
        Err(self.not_a_string("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<T, E> {
        Err(self.not_a_string("a number"))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<T, E> {
        Err(self.not_a_string("bytes"))
    }
}

// ---------------------------------------------------------------------------------------
// PAN
// ---------------------------------------------------------------------------------------

/// A primary account number: 12 to 19 ASCII digits that pass the Luhn check.
///
/// `Debug` and `Display` print the masked form (`************1111`); the digits are read
/// only through [`Pan::expose`]. Equality is constant-time. The digits are wiped on drop.
#[derive(Clone)]
pub struct Pan(Zeroizing<String>);

impl Pan {
    /// Shortest accepted PAN (ISO/IEC 7812 allows 8, but no scheme issues fewer than 12).
    pub const MIN_LEN: usize = 12;
    /// Longest PAN ISO/IEC 7812 allows.
    pub const MAX_LEN: usize = 19;

    /// Parses a PAN: digits only (no spaces or dashes), 12 to 19 of them, Luhn-valid.
    ///
    /// Validation happens on the borrowed input before anything is copied, so a rejected
    /// value is never duplicated into a new allocation.
    pub fn parse(s: &str) -> Result<Pan, SensitiveError> {
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SensitiveError::PanNotDigits);
        }
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&s.len()) {
            return Err(SensitiveError::PanLength);
        }
        if !luhn_valid(s.as_bytes()) {
            return Err(SensitiveError::PanLuhn);
        }
        Ok(Pan(Zeroizing::new(s.to_owned())))
    }

    /// The clear digits. Every call site handles clear card data: keep them few and
    /// never log, persist unencrypted or return the result.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The last four digits, which PCI DSS allows to be displayed.
    pub fn last4(&self) -> &str {
        // The length is at least MIN_LEN (> 4) and every byte is ASCII, so this slice is
        // always on a character boundary.
        &self.0[self.0.len() - 4..]
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: a PAN has at least [`Pan::MIN_LEN`] digits. Present for API
    /// symmetry with [`Pan::len`].
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every digit but the last four replaced by `*`, e.g. `************1111`.
    pub fn masked(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for _ in 0..self.0.len() - 4 {
            f.write_str("*")?;
        }
        f.write_str(self.last4())
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({self})")
    }
}

impl PartialEq for Pan {
    fn eq(&self, other: &Self) -> bool {
        ct_eq_str(&self.0, &other.0)
    }
}

impl Eq for Pan {}

impl FromStr for Pan {
    type Err = SensitiveError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pan::parse(s)
    }
}

impl FromWire for Pan {
    const EXPECTING: &'static str = "a PAN as a string of 12 to 19 digits";
    fn from_wire(s: &str) -> Result<Self, SensitiveError> {
        Pan::parse(s)
    }
}

/// Writes the clear digits: only ever serialize a `Pan` into a JWE plaintext.
impl Serialize for Pan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

/// Validates through [`Pan::parse`]; errors never quote the input.
impl<'de> Deserialize<'de> for Pan {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WireVisitor::<Pan>(PhantomData))
    }
}

// ---------------------------------------------------------------------------------------
// CVC and OTP: short digit secrets
// ---------------------------------------------------------------------------------------

/// Defines a short all-digits secret with a length range, a fixed mask that does not
/// reveal the length, constant-time equality, serde and zeroize-on-drop.
macro_rules! digit_secret {
    (
        $(#[$meta:meta])*
        $name:ident, $min:literal ..= $max:literal, $err:ident, $mask:literal, $expecting:literal
    ) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name(Zeroizing<String>);

        impl $name {
            /// Fewest digits accepted.
            pub const MIN_LEN: usize = $min;
            /// Most digits accepted.
            pub const MAX_LEN: usize = $max;
            /// What `Debug` and `Display` print, whatever the value and its length.
            pub const MASK: &'static str = $mask;

            #[doc = concat!("Parses ", stringify!($min), " to ", stringify!($max), " ASCII digits.")]
            pub fn parse(s: &str) -> Result<$name, SensitiveError> {
                if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&s.len()) || !all_digits(s) {
                    return Err(SensitiveError::$err);
                }
                Ok($name(Zeroizing::new(s.to_owned())))
            }

            /// The clear digits. Never log, persist or return them.
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// Constant-time comparison: the time taken does not depend on how many
            /// leading digits match, so a verifier cannot be used to guess digit by digit.
            pub fn ct_eq(&self, other: &Self) -> bool {
                ct_eq_str(&self.0, &other.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(Self::MASK)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), Self::MASK)
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.ct_eq(other)
            }
        }

        impl Eq for $name {}

        impl FromStr for $name {
            type Err = SensitiveError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }

        impl FromWire for $name {
            const EXPECTING: &'static str = $expecting;
            fn from_wire(s: &str) -> Result<Self, SensitiveError> {
                $name::parse(s)
            }
        }

        /// Writes the clear digits: only ever serialize into a JWE plaintext.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.expose())
            }
        }

        /// Validates through `parse`; errors never quote the input.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(WireVisitor::<$name>(PhantomData))
            }
        }
    };
}

digit_secret! {
    /// A card verification code (CVC2/CVV2/CID): 3 or 4 digits.
    ///
    /// Prints as `***` regardless of length. Compare with [`Cvc::ct_eq`] (or `==`, which
    /// is the same constant-time comparison).
    Cvc, 3..=4, Cvc, "***", "a CVC as a string of 3 or 4 digits"
}

digit_secret! {
    /// A one-time password (activation code): 6 to 8 digits.
    ///
    /// Prints as `******` regardless of length. Compare with [`Otp::ct_eq`] (or `==`).
    Otp, 6..=8, Otp, "******", "an OTP as a string of 6 to 8 digits"
}

// ---------------------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------------------

/// A card expiry month. Wire format `"MM/YY"` (e.g. `"12/28"`); years are 2000-2099.
///
/// A card is valid through the last day of its expiry month (UTC); see
/// [`Expiry::is_expired_at`]. Prints as `**/**`; zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Expiry {
    month: u8,
    /// Four digits, 2000..=2099.
    year: u16,
}

impl Expiry {
    /// Parses exactly `MM/YY`: two-digit month 01-12, a slash, two-digit year.
    pub fn parse(s: &str) -> Result<Expiry, SensitiveError> {
        let b = s.as_bytes();
        let digit = |i: usize| b[i].is_ascii_digit();
        if b.len() != 5 || b[2] != b'/' || !(digit(0) && digit(1) && digit(3) && digit(4)) {
            return Err(SensitiveError::ExpiryFormat);
        }
        let two = |i: usize| (b[i] - b'0') * 10 + (b[i + 1] - b'0');
        Expiry::new(two(0), 2000 + u16::from(two(3)))
    }

    /// Builds an expiry from a month (1-12) and a four-digit year (2000-2099).
    pub fn new(month: u8, year_4digit: u16) -> Result<Expiry, SensitiveError> {
        if !(1..=12).contains(&month) {
            return Err(SensitiveError::ExpiryMonth);
        }
        if !(2000..=2099).contains(&year_4digit) {
            return Err(SensitiveError::ExpiryYear);
        }
        Ok(Expiry { month, year: year_4digit })
    }

    /// Month, 1-12.
    pub fn month(&self) -> u8 {
        self.month
    }

    /// Four-digit year, 2000-2099.
    pub fn year(&self) -> u16 {
        self.year
    }

    /// `YYMM`, as used by the card-verification algorithms (e.g. `"2812"`).
    pub fn yymm(&self) -> String {
        format!("{:02}{:02}", self.year % 100, self.month)
    }

    /// The clear wire form `MM/YY` (e.g. `"12/28"`).
    pub fn mm_yy(&self) -> String {
        format!("{:02}/{:02}", self.month, self.year % 100)
    }

    /// True once `now` is past the last day of the expiry month, in UTC.
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        let now = now.to_offset(UtcOffset::UTC);
        // Expired iff (year, month) of now is after the expiry month; comparing the pair
        // avoids any day-of-month arithmetic.
        (now.year(), u8::from(now.month())) > (i32::from(self.year), self.month)
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**/**")
    }
}

impl fmt::Debug for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Expiry(**/**)")
    }
}

impl FromStr for Expiry {
    type Err = SensitiveError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Expiry::parse(s)
    }
}

impl FromWire for Expiry {
    const EXPECTING: &'static str = "an expiry as a string MM/YY";
    fn from_wire(s: &str) -> Result<Self, SensitiveError> {
        Expiry::parse(s)
    }
}

/// Writes the clear `MM/YY`: only ever serialize into a JWE plaintext.
impl Serialize for Expiry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let s = Zeroizing::new(self.mm_yy());
        serializer.serialize_str(&s)
    }
}

/// Validates through [`Expiry::parse`]; errors never quote the input.
impl<'de> Deserialize<'de> for Expiry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WireVisitor::<Expiry>(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const VISA: &str = "4111111111111111";

    #[test]
    fn pan_accepts_known_good_numbers() {
        for pan in [VISA, "5555555555554444", "378282246310005", "6011111111111117", "4222222222222"] {
            let p = Pan::parse(pan).expect(pan);
            assert_eq!(p.expose(), pan);
        }
        // 19 digits.
        assert!(Pan::parse("6011000000000000001").is_ok());
    }

    #[test]
    fn pan_rejections_name_the_problem() {
        assert_eq!(Pan::parse("4111 1111 1111 1111"), Err(SensitiveError::PanNotDigits));
        assert_eq!(Pan::parse("4111-1111-1111-1111"), Err(SensitiveError::PanNotDigits));
        assert_eq!(Pan::parse("４１１１111111111111"), Err(SensitiveError::PanNotDigits));
        assert_eq!(Pan::parse(""), Err(SensitiveError::PanLength));
        assert_eq!(Pan::parse("42424242426"), Err(SensitiveError::PanLength));
        assert_eq!(Pan::parse("41111111111111111111"), Err(SensitiveError::PanLength));
        assert_eq!(Pan::parse("4111111111111112"), Err(SensitiveError::PanLuhn));
        assert_eq!(SensitiveError::PanLuhn.to_string(), "PAN fails the Luhn check");
        assert_eq!(SensitiveError::PanLength.to_string(), "PAN must be 12 to 19 digits");
    }

    #[test]
    fn pan_masks() {
        let p = Pan::parse(VISA).unwrap();
        assert_eq!(p.last4(), "1111");
        assert_eq!(p.masked(), "************1111");
        assert_eq!(p.to_string(), "************1111");
        assert_eq!(format!("{p:?}"), "Pan(************1111)");
        assert_eq!(format!("{:?}", Some(&p)), "Some(Pan(************1111))");
        assert_eq!(Pan::parse("378282246310005").unwrap().masked(), "***********0005");
    }

    #[test]
    fn pan_serde_round_trip() {
        let p = Pan::parse(VISA).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, format!("\"{VISA}\""));
        let back: Pan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn deserialize_errors_do_not_echo_input() {
        for json in [
            "\"4111111111111112\"",
            "4111111111111111",
            "\"4111 1111 1111 1111\"",
            "-4111111111111111",
            "4111111111111111.5",
            "41111111111111111111111111111111111111",
        ] {
            let err = serde_json::from_str::<Pan>(json).unwrap_err().to_string();
            assert!(!err.contains("4111"), "{err}");
        }
        let err = serde_json::from_str::<Cvc>("1234").unwrap_err().to_string();
        assert!(!err.contains("1234"), "{err}");
        let err = serde_json::from_str::<Otp>("\"12345\"").unwrap_err().to_string();
        assert!(!err.contains("12345"), "{err}");
        let err = serde_json::from_str::<Expiry>("\"13/28\"").unwrap_err().to_string();
        assert!(!err.contains("13/28"), "{err}");
    }

    #[test]
    fn cvc_and_otp() {
        assert!(Cvc::parse("123").is_ok());
        assert!(Cvc::parse("1234").is_ok());
        for bad in ["", "12", "12345", "12a", " 123", "１２３"] {
            assert_eq!(Cvc::parse(bad), Err(SensitiveError::Cvc), "{bad:?}");
        }
        assert!(Otp::parse("123456").is_ok());
        assert!(Otp::parse("12345678").is_ok());
        for bad in ["12345", "123456789", "12345a", ""] {
            assert_eq!(Otp::parse(bad), Err(SensitiveError::Otp), "{bad:?}");
        }
        let c = Cvc::parse("123").unwrap();
        assert!(c.ct_eq(&Cvc::parse("123").unwrap()));
        assert!(!c.ct_eq(&Cvc::parse("124").unwrap()));
        assert!(!c.ct_eq(&Cvc::parse("1234").unwrap()));
        assert_eq!(c.to_string(), "***");
        assert_eq!(format!("{c:?}"), "Cvc(***)");
        assert_eq!(Cvc::parse("1234").unwrap().to_string(), "***");
        let o = Otp::parse("98765432").unwrap();
        assert_eq!(o.to_string(), "******");
        assert_eq!(format!("{o:?}"), "Otp(******)");
        assert!(o.ct_eq(&Otp::parse("98765432").unwrap()));
        assert_eq!(serde_json::to_string(&o).unwrap(), "\"98765432\"");
        assert_eq!(serde_json::from_str::<Otp>("\"98765432\"").unwrap(), o);
    }

    #[test]
    fn expiry_parse_and_format() {
        let e = Expiry::parse("12/28").unwrap();
        assert_eq!((e.month(), e.year()), (12, 2028));
        assert_eq!(e.yymm(), "2812");
        assert_eq!(e.mm_yy(), "12/28");
        assert_eq!(Expiry::parse("01/00").unwrap().yymm(), "0001");
        assert_eq!(Expiry::new(3, 2031).unwrap().mm_yy(), "03/31");
        assert_eq!(e.to_string(), "**/**");
        assert_eq!(format!("{e:?}"), "Expiry(**/**)");
        for bad in ["1228", "12-28", "1/28", "12/2028", "ab/cd", "", "12/2", "１2/28"] {
            assert_eq!(Expiry::parse(bad), Err(SensitiveError::ExpiryFormat), "{bad:?}");
        }
        assert_eq!(Expiry::parse("00/28"), Err(SensitiveError::ExpiryMonth));
        assert_eq!(Expiry::parse("13/28"), Err(SensitiveError::ExpiryMonth));
        assert_eq!(Expiry::new(1, 1999), Err(SensitiveError::ExpiryYear));
        assert_eq!(Expiry::new(1, 2100), Err(SensitiveError::ExpiryYear));
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"12/28\"");
        assert_eq!(serde_json::from_str::<Expiry>("\"12/28\"").unwrap(), e);
    }

    #[test]
    fn expiry_is_valid_through_the_last_day_of_its_month() {
        let e = Expiry::parse("02/28").unwrap();
        assert!(!e.is_expired_at(datetime!(2028-02-29 23:59:59 UTC)));
        assert!(e.is_expired_at(datetime!(2028-03-01 00:00:00 UTC)));
        assert!(!e.is_expired_at(datetime!(2027-12-31 23:59:59 UTC)));
        // Offsets are normalised to UTC: 2028-03-01 01:00 +02:00 is still February in UTC.
        assert!(!e.is_expired_at(datetime!(2028-03-01 01:00:00 +02:00)));
        assert!(e.is_expired_at(datetime!(2028-02-29 23:30:00 -01:00)));
        let dec = Expiry::parse("12/28").unwrap();
        assert!(!dec.is_expired_at(datetime!(2028-12-31 23:59:59 UTC)));
        assert!(dec.is_expired_at(datetime!(2029-01-01 00:00:00 UTC)));
    }

    #[test]
    fn pan_like_text_is_recognised() {
        assert!(contains_pan_like("replaced card 4111111111111111 today"));
        assert!(contains_pan_like("4111 1111 1111 1111"));
        assert!(contains_pan_like("card:4111-1111-1111-1111."));
        assert!(!contains_pan_like("411111111112"), "no 12 to 19 of its digits pass Luhn");
        assert!(!contains_pan_like("order 12345 of 2026-03-01"));
        assert!(contains_pan_like("4111  1111 1111 1111"), "two spaces continue a run");
        assert!(contains_pan_like("4111\t1111/1111_1111"));
        assert!(contains_pan_like("4111\u{a0}1111\u{200b}1111 - 1111"));
        assert!(contains_pan_like("\u{ff14}\u{ff11}\u{ff11}\u{ff11}111111111111"), "full-width digits");
        assert!(contains_pan_like("\u{664}\u{661}\u{661}\u{661} 1111 1111 1111"), "Arabic-Indic digits");
        assert!(!contains_pan_like("4111    1111 1111 1111"), "four separators end a run");
        assert!(!contains_pan_like("+48 500 100 200, 4111 1111"));
        assert!(!contains_pan_like(""));
        // A PAN inside a longer run of digits, or written with dots.
        assert!(contains_pan_like("ref 4111111111111111 0000"));
        assert!(contains_pan_like("x 4111111111111111-9"));
        assert!(contains_pan_like("9 4111.1111.1111.1111 9"));
        assert!(contains_pan_like("00004111111111111111"));
        assert!(!contains_pan_like("11 digits 50110030273 and a date 2026-03-01"));
        assert!(is_pan_like("4111111111111111"));
        assert!(!is_pan_like("41111111111111110"), "a longer number is not itself a PAN");
        assert!(!is_pan_like("4111 1111 1111 1111"), "no spaces in ids or header tokens");
        assert!(is_pan_like("4111-1111-1111-1111") && is_pan_like("4111.1111.1111.1111"));
        assert!(is_pan_like("4111_1111_1111_1111") && is_pan_like("4111:1111:1111:1111"));
        assert!(!is_pan_like("ref-4111111111111111"), "a token holding a PAN among letters is judged whole");
        assert!(!is_pan_like("550e8400-e29b-41d4-a716-446655440000"));
    }

    #[test]
    fn luhn_reference_values() {
        assert!(luhn_valid(b"79927398713"));
        assert!(!luhn_valid(b"79927398710"));
        assert!(luhn_valid(b"0"));
    }
}
