//! What goes inside an `encryptedPayload`, named so that a reproduction can rebuild it without
//! printing card data: `card=active;cvc=wrong` is enough for `tmp-conformance encrypt` to make
//! the same JWE from the profile.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use tmp_protocol::jwk::{JwkSet, PublicJwk, RsaKeyPair};

use crate::profile::Profile;

/// The plaintext of an `encryptedPayload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plain {
    /// A profile card as `CardData`; `extra` adds a member the contract does not define.
    Card { card: String, cvc: CvcChoice, expiry: Option<String>, extra: bool },
    /// An `ActivationCode` (test OTP, not a cardholder's).
    Otp(String),
    /// A renewal's new expiry alone, `{"expiry": "MM/YY"}`.
    Expiry(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CvcChoice {
    Right,
    Wrong,
    Omitted,
}

/// Which key the JWE is made with, and how it is spoiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChoice {
    /// The target's first published key.
    Published,
    /// The published key with this `kid` (rotation).
    Kid(String),
    /// A key the suite made, announced under the target's `kid`.
    Wrong,
    /// The published key, under a `kid` the target never published.
    UnknownKid,
    /// A valid JWE with one ciphertext byte flipped.
    Tampered,
    /// A valid JWE whose header says `RSA1_5`.
    WrongAlgorithm,
    /// Not a JWE at all.
    NotJwe,
    /// The published key, with one more member in the protected header (covered by the AAD).
    HeaderMember(HeaderMember),
}

/// A protected-header member the suite adds to an otherwise valid JWE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderMember {
    /// `zip: DEF`: compression, which the contract refuses.
    Zip,
    /// `crit: ["exp"]` with `exp`: a critical extension, which the contract refuses.
    Crit,
    /// `cty` and a private member: allowed by the contract.
    Other,
}

impl HeaderMember {
    fn name(self) -> &'static str {
        match self {
            HeaderMember::Zip => "zip",
            HeaderMember::Crit => "crit",
            HeaderMember::Other => "other",
        }
    }

    fn members(self) -> serde_json::Map<String, Value> {
        let members = match self {
            HeaderMember::Zip => json!({"zip": "DEF"}),
            HeaderMember::Crit => json!({"crit": ["exp"], "exp": 4_102_444_800_u64}),
            HeaderMember::Other => json!({"cty": "json", "x-conformance": "an extra member"}),
        };
        members.as_object().cloned().unwrap_or_default()
    }
}

/// A payload and its key: everything needed to make (or remake) one `encryptedPayload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadSpec {
    pub plain: Plain,
    pub key: KeyChoice,
}

impl PayloadSpec {
    pub fn card(card: &str) -> PayloadSpec {
        PayloadSpec {
            plain: Plain::Card { card: card.to_owned(), cvc: CvcChoice::Right, expiry: None, extra: false },
            key: KeyChoice::Published,
        }
    }

    /// A card's PAN and expiry without a CVC: what processor events carry.
    pub fn card_data(card: &str) -> PayloadSpec {
        PayloadSpec::card(card).cvc(CvcChoice::Omitted)
    }

    pub fn otp(otp: &str) -> PayloadSpec {
        PayloadSpec { plain: Plain::Otp(otp.to_owned()), key: KeyChoice::Published }
    }

    pub fn cvc(mut self, choice: CvcChoice) -> PayloadSpec {
        if let Plain::Card { cvc, .. } = &mut self.plain {
            *cvc = choice;
        }
        self
    }

    pub fn expiry(mut self, value: &str) -> PayloadSpec {
        if let Plain::Card { expiry, .. } = &mut self.plain {
            *expiry = Some(value.to_owned());
        }
        self
    }

    /// The card data with a member the contract does not define (plaintexts are strict).
    pub fn extra_member(mut self) -> PayloadSpec {
        if let Plain::Card { extra, .. } = &mut self.plain {
            *extra = true;
        }
        self
    }

    pub fn key(mut self, key: KeyChoice) -> PayloadSpec {
        self.key = key;
        self
    }

    /// Builds the compact JWE for `keys` (the target's published set).
    pub fn encrypt(&self, profile: &Profile, keys: &JwkSet) -> anyhow::Result<String> {
        let plaintext = self.plaintext(profile)?;
        let published = || keys.encryption_key().cloned().ok_or_else(|| anyhow!("the target publishes no usable key"));
        let jwe =
            |recipient: &PublicJwk| tmp_protocol::jwe::encrypt_json(&plaintext, recipient).map_err(anyhow::Error::from);
        match &self.key {
            KeyChoice::Published => jwe(&published()?),
            KeyChoice::Kid(kid) => {
                jwe(keys.find(kid).with_context(|| format!("the target publishes no key `{kid}`"))?)
            }
            KeyChoice::Wrong => {
                let target = published()?;
                let mut other = stray_key()?.public_jwk();
                other.kid = target.kid;
                jwe(&other)
            }
            KeyChoice::UnknownKid => {
                let mut key = published()?;
                key.kid = "conformance-unpublished-kid".to_owned();
                jwe(&key)
            }
            KeyChoice::Tampered => {
                let token = jwe(&published()?)?;
                let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
                // Flip the first ciphertext character to another base64url letter.
                let flipped = match parts[3].chars().next() {
                    Some('A') => 'B',
                    _ => 'A',
                };
                parts[3].replace_range(0..1, &flipped.to_string());
                Ok(parts.join("."))
            }
            KeyChoice::WrongAlgorithm => {
                let token = jwe(&published()?)?;
                let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
                let kid = published()?.kid;
                let header = json!({"alg": "RSA1_5", "enc": "A256GCM", "kid": kid});
                parts[0] = base64_url(header.to_string().as_bytes());
                Ok(parts.join("."))
            }
            KeyChoice::NotJwe => Ok("not-a-jwe".to_owned()),
            KeyChoice::HeaderMember(member) => {
                let plaintext = serde_json::to_vec(&plaintext)?;
                Ok(tmp_protocol::jwe::encrypt_with_header(&plaintext, &published()?, &member.members())?)
            }
        }
    }

    fn plaintext(&self, profile: &Profile) -> anyhow::Result<Value> {
        Ok(match &self.plain {
            Plain::Otp(otp) => json!({"otp": otp}),
            Plain::Expiry(expiry) => json!({"expiry": expiry}),
            Plain::Card { card, cvc, expiry, extra } => {
                let fixture = profile.card(card)?;
                let mut value = json!({
                    "pan": fixture.pan.expose(),
                    "expiry": expiry.clone().unwrap_or_else(|| fixture.expiry.mm_yy()),
                });
                let right = fixture.cvc.as_ref().map(|c| c.expose().to_owned());
                match (cvc, right) {
                    (CvcChoice::Omitted, _) => {}
                    (CvcChoice::Right, Some(right)) => value["cvc"] = json!(right),
                    (CvcChoice::Wrong, Some(right)) => value["cvc"] = json!(wrong_cvc(&right)),
                    (CvcChoice::Wrong, None) => value["cvc"] = json!("000"),
                    (CvcChoice::Right, None) => bail!("the profile has no CVC for card `{card}`"),
                }
                if *extra {
                    value["cardholderName"] = json!("an extra member");
                }
                value
            }
        })
    }
}

/// A CVC of the same length that differs in every digit.
pub fn wrong_cvc(right: &str) -> String {
    right.chars().map(|c| char::from(b'0' + ((c as u8 - b'0' + 5) % 10))).collect()
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A key the target has never seen, made once per process (RSA generation is slow).
fn stray_key() -> anyhow::Result<&'static RsaKeyPair> {
    static KEY: std::sync::OnceLock<RsaKeyPair> = std::sync::OnceLock::new();
    if let Some(key) = KEY.get() {
        return Ok(key);
    }
    let key = RsaKeyPair::generate(2048)?;
    Ok(KEY.get_or_init(|| key))
}

impl fmt::Display for PayloadSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.plain {
            Plain::Otp(otp) => write!(f, "otp={otp}")?,
            Plain::Expiry(expiry) => write!(f, "renewal={expiry}")?,
            Plain::Card { card, cvc, expiry, extra } => {
                write!(f, "card={card}")?;
                match cvc {
                    CvcChoice::Right => {}
                    CvcChoice::Wrong => write!(f, ";cvc=wrong")?,
                    CvcChoice::Omitted => write!(f, ";cvc=none")?,
                }
                if let Some(expiry) = expiry {
                    write!(f, ";expiry={expiry}")?;
                }
                if *extra {
                    write!(f, ";extra=member")?;
                }
            }
        }
        match &self.key {
            KeyChoice::Published => Ok(()),
            KeyChoice::Kid(kid) => write!(f, ";key=kid:{kid}"),
            KeyChoice::Wrong => write!(f, ";key=wrong"),
            KeyChoice::UnknownKid => write!(f, ";key=unknown-kid"),
            KeyChoice::Tampered => write!(f, ";key=tampered"),
            KeyChoice::WrongAlgorithm => write!(f, ";key=wrong-alg"),
            KeyChoice::NotJwe => write!(f, ";key=not-jwe"),
            KeyChoice::HeaderMember(member) => write!(f, ";key=header-{}", member.name()),
        }
    }
}

impl FromStr for PayloadSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<PayloadSpec> {
        let mut spec: Option<PayloadSpec> = None;
        let mut key = KeyChoice::Published;
        for part in s.split(';') {
            let (name, value) = part.split_once('=').with_context(|| format!("`{part}` is not name=value"))?;
            match (name, spec.take()) {
                ("card", None) => spec = Some(PayloadSpec::card(value)),
                ("otp", None) => spec = Some(PayloadSpec::otp(value)),
                ("renewal", None) => {
                    spec = Some(PayloadSpec { plain: Plain::Expiry(value.to_owned()), key: KeyChoice::Published })
                }
                ("cvc", Some(s)) => {
                    let choice = match value {
                        "right" => CvcChoice::Right,
                        "wrong" => CvcChoice::Wrong,
                        "none" => CvcChoice::Omitted,
                        other => bail!("cvc={other}: expected right, wrong or none"),
                    };
                    spec = Some(s.cvc(choice));
                }
                ("expiry", Some(s)) => spec = Some(s.expiry(value)),
                ("extra", Some(s)) => spec = Some(s.extra_member()),
                ("key", s) => {
                    spec = s;
                    key = match value {
                        "wrong" => KeyChoice::Wrong,
                        "unknown-kid" => KeyChoice::UnknownKid,
                        "tampered" => KeyChoice::Tampered,
                        "wrong-alg" => KeyChoice::WrongAlgorithm,
                        "not-jwe" => KeyChoice::NotJwe,
                        "header-zip" => KeyChoice::HeaderMember(HeaderMember::Zip),
                        "header-crit" => KeyChoice::HeaderMember(HeaderMember::Crit),
                        "header-other" => KeyChoice::HeaderMember(HeaderMember::Other),
                        other => match other.strip_prefix("kid:") {
                            Some(kid) => KeyChoice::Kid(kid.to_owned()),
                            None => bail!(
                                "key={other}: expected wrong, unknown-kid, tampered, wrong-alg, not-jwe, \
                                 header-zip, header-crit, header-other or kid:<kid>"
                            ),
                        },
                    };
                }
                (name, _) => bail!("`{name}` is not expected here (start with card=… or otp=…)"),
            }
        }
        Ok(spec.context("a payload starts with card=<fixture> or otp=<digits>")?.key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_survive_their_text_form() {
        for spec in [
            PayloadSpec::card("active"),
            PayloadSpec::card("lockout").cvc(CvcChoice::Wrong),
            PayloadSpec::card("active").cvc(CvcChoice::Omitted).expiry("11/29").key(KeyChoice::Tampered),
            PayloadSpec::otp("123456").key(KeyChoice::Kid("k-2".into())),
            PayloadSpec { plain: Plain::Expiry("12/31".into()), key: KeyChoice::Published },
            PayloadSpec::card("active").key(KeyChoice::HeaderMember(HeaderMember::Crit)),
            PayloadSpec::card("active").extra_member(),
        ] {
            assert_eq!(spec.to_string().parse::<PayloadSpec>().unwrap(), spec, "{spec}");
        }
        assert!("cvc=wrong".parse::<PayloadSpec>().is_err());
        assert!("card=active;key=sideways".parse::<PayloadSpec>().is_err());
    }

    #[test]
    fn a_wrong_cvc_differs_in_every_digit() {
        assert_eq!(wrong_cvc("123"), "678");
        assert_eq!(wrong_cvc("9999"), "4444");
    }
}
