//! What the suite must know about a target it did not start: its test cards (one per state the
//! cases need), where its secrets are, and the choices the contract leaves to the issuer — its
//! decision policy, limits, retry schedule. Read from a YAML file (`--profile`); `tmp-kit check`
//! builds one for the kit it starts from the kit's own settings. Secrets are never in the file:
//! it names the environment variables that hold them.
//!
//! The suite never assumes a choice the profile does not declare: a case whose expectation
//! depends on an undeclared choice is skipped, naming the profile key that would declare it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tmp_protocol::enums::StepUpMethodType;
use tmp_protocol::sensitive::{Expiry, Pan};

/// The environment variable the webhook secret is read from unless the profile names another.
pub const DEFAULT_SECRET_ENV: &str = "TMP_CONFORMANCE_SECRET";
/// The environment variable of the processor-ingest secret (forwarding cases).
pub const DEFAULT_PROCESSOR_SECRET_ENV: &str = "TMP_CONFORMANCE_PROCESSOR_SECRET";
/// The environment variable of the issuer's TMP API secret (push provisioning on the mock).
pub const DEFAULT_ISSUER_SECRET_ENV: &str = "TMP_CONFORMANCE_ISSUER_SECRET";

/// The fixture names every profile must define, with the state each card must be in.
pub const REQUIRED_CARDS: [(&str, &str); 6] = [
    ("active", "ACTIVE, with the CVC and a cardholder phone or email on file"),
    ("blocked", "BLOCKED"),
    ("closed", "CLOSED"),
    ("expired", "ACTIVE but past its expiry month"),
    ("lockout", "ACTIVE, with the CVC: the suite spends its CVC attempts"),
    ("unknown", "a Luhn-valid PAN the target does not know"),
];

/// Fixtures a profile may define; the cases that use one are skipped without it.
pub const OPTIONAL_CARDS: [(&str, &str); 2] = [
    (
        "cap",
        "ACTIVE, with the CVC and its card_id: ISS-VERIFY-016 gives it tokens up to the cap and deactivates them again",
    ),
    (
        "failing",
        "a card the target's card source fails on (a test processor's error PAN, a damaged record), with a CVC: \
         ISS-VERIFY-017 expects the stand-in answer, ISS-CVC-010 a 503",
    ),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Name of the environment variable holding the `whsec_…` secret TMP signs with.
    #[serde(default = "default_secret_env")]
    pub secret_env: String,
    /// Name of the environment variable holding the processor-ingest secret (forwarding cases).
    #[serde(default = "default_processor_secret_env")]
    pub processor_secret_env: String,
    /// Name of the environment variable holding the issuer's secret toward the TMP API (the
    /// push-provisioning journeys sign a card through the mock with it).
    #[serde(default = "default_issuer_secret_env")]
    pub issuer_secret_env: String,
    /// The target's verify-card deadline: every answer of the latency case must come within it.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Requests the latency case sends.
    #[serde(default = "default_latency_requests")]
    pub latency_requests: u32,
    /// Wrong CVCs after which the target locks a card (the contract default is 3).
    #[serde(default = "default_cvc_max_attempts")]
    pub cvc_max_attempts: u32,
    /// How long the target's CVC counter lasts from its first counted attempt (contract §7.3).
    /// The window case waits it out, so it runs only when this is declared and short.
    #[serde(default)]
    pub cvc_lockout_window_secs: Option<u64>,
    /// Largest body the target accepts; the oversized-input case sends four times as much.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// The target's decision policy (contract §7.1); the cases that depend on it derive their
    /// expectation from it.
    #[serde(default)]
    pub policy: PolicyProfile,
    /// The target's forwarding (contract §10): how long its retries take.
    #[serde(default)]
    pub forwarding: ForwardingProfile,
    /// The card id the token-event cases name. Unset: a new, made-up id per event (the
    /// contract requires token events for card ids the issuer does not know to be accepted).
    #[serde(default)]
    pub token_event_card_id: Option<String>,
    /// mTLS toward the target: CA bundle and client certificate (PEM).
    #[serde(default)]
    pub tls: Option<TlsProfile>,
    /// Test cards by fixture name; see [`REQUIRED_CARDS`].
    pub cards: BTreeMap<String, CardFixture>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsProfile {
    pub ca_file: PathBuf,
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

/// The target's decision policy, as contract §7.1 defines its settings. Every key is optional:
/// a case that needs one the profile leaves out is skipped with the key named.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyProfile {
    /// `step_up_only` or `approved_and_step_up` (contract §7.2, contact disclosure).
    #[serde(default)]
    pub contact_disclosure: Option<ContactDisclosure>,
    /// The decision when the card source fails or misses the deadline, before the wallet's
    /// recommendation is applied (contract §7.4).
    #[serde(default)]
    pub stand_in_decision: Option<tmp_protocol::enums::Decision>,
    /// The policy of token requestors without an entry below.
    #[serde(default)]
    pub default: Option<PolicyEntry>,
    /// Per wallet (`APPLE_PAY`, `GOOGLE_PAY`, `SAMSUNG_PAY`, `MERCHANT`, `OTHER`).
    #[serde(default, deserialize_with = "wallet_keys")]
    pub wallets: BTreeMap<String, PolicyEntry>,
    /// Per token requestor id; wins over the wallet entry.
    #[serde(default)]
    pub token_requestors: BTreeMap<String, PolicyEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactDisclosure {
    StepUpOnly,
    ApprovedAndStepUp,
}

/// One policy entry (contract §7.1).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    /// Manual provisioning without a CVC is declined with `CVC_REQUIRED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_cvc: Option<bool>,
    /// Step up when the lower score is below this; 0 disables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up_below_score: Option<u8>,
    /// Decline with `TOO_MANY_TOKENS` at this many live tokens in the entry's scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_live_tokens_per_card: Option<u32>,
    /// Decline with `VELOCITY_EXCEEDED` at this many other tokenizations of the card within the
    /// target's velocity window; 0 when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokenizations_per_card: Option<u32>,
    /// The same per device (`device.id`); 0 when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokenizations_per_device: Option<u32>,
    /// The step-up methods a step-up answer lists, in order, where the card can use them
    /// (contract §7.6): `OTP_SMS` and `OUTBOUND_CALL` for a card with a phone, `OTP_EMAIL` with
    /// an e-mail, `APP_TO_APP` and `CUSTOMER_SERVICE` always. `[]` when the target lists none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up_methods: Option<Vec<StepUpMethodType>>,
}

/// A policy setting as it applies to one token requestor: its value, or why the suite cannot
/// know it (the profile key that would declare it).
pub type Declared<T> = Result<T, String>;

impl PolicyProfile {
    /// The entry that governs a token requestor (its own, else its wallet's, else the
    /// default), with the profile key it sits under.
    fn entry(&self, requestor_id: &str, wallet: &str) -> Declared<(String, &PolicyEntry)> {
        if let Some(entry) = self.token_requestors.get(requestor_id) {
            return Ok((format!("policy.token_requestors.{requestor_id}"), entry));
        }
        if let Some(entry) = self.wallets.get(wallet) {
            return Ok((format!("policy.wallets.{wallet}"), entry));
        }
        match &self.default {
            Some(entry) => Ok(("policy.default".to_owned(), entry)),
            None => Err(format!(
                "the profile declares no policy for token requestor {requestor_id} ({wallet}): set `policy.default` \
                 (or `policy.wallets.{wallet}`)"
            )),
        }
    }

    fn setting<T: Copy>(
        &self,
        requestor_id: &str,
        wallet: &str,
        name: &str,
        get: impl Fn(&PolicyEntry) -> Option<T>,
    ) -> Declared<T> {
        let (key, entry) = self.entry(requestor_id, wallet)?;
        get(entry).ok_or_else(|| format!("the profile does not declare `{key}.{name}`"))
    }

    pub fn require_cvc(&self, requestor_id: &str, wallet: &str) -> Declared<bool> {
        self.setting(requestor_id, wallet, "require_cvc", |e| e.require_cvc)
    }

    pub fn step_up_below_score(&self, requestor_id: &str, wallet: &str) -> Declared<u8> {
        self.setting(requestor_id, wallet, "step_up_below_score", |e| e.step_up_below_score)
    }

    pub fn max_live_tokens_per_card(&self, requestor_id: &str, wallet: &str) -> Declared<u32> {
        self.setting(requestor_id, wallet, "max_live_tokens_per_card", |e| e.max_live_tokens_per_card)
    }

    pub fn max_tokenizations_per_card(&self, requestor_id: &str, wallet: &str) -> Declared<u32> {
        self.setting(requestor_id, wallet, "max_tokenizations_per_card", |e| e.max_tokenizations_per_card)
    }

    pub fn max_tokenizations_per_device(&self, requestor_id: &str, wallet: &str) -> Declared<u32> {
        self.setting(requestor_id, wallet, "max_tokenizations_per_device", |e| e.max_tokenizations_per_device)
    }

    pub fn step_up_methods(&self, requestor_id: &str, wallet: &str) -> Declared<Vec<StepUpMethodType>> {
        let (key, entry) = self.entry(requestor_id, wallet)?;
        entry.step_up_methods.clone().ok_or_else(|| format!("the profile does not declare `{key}.step_up_methods`"))
    }

    pub fn contact_disclosure(&self) -> Declared<ContactDisclosure> {
        self.contact_disclosure.ok_or_else(|| "the profile does not declare `policy.contact_disclosure`".to_owned())
    }

    pub fn stand_in_decision(&self) -> Declared<tmp_protocol::enums::Decision> {
        self.stand_in_decision.ok_or_else(|| "the profile does not declare `policy.stand_in_decision`".to_owned())
    }

    fn entries(&self) -> impl Iterator<Item = (String, &PolicyEntry)> {
        let default = self.default.iter().map(|e| ("policy.default".to_owned(), e));
        let wallets = self.wallets.iter().map(|(w, e)| (format!("policy.wallets.{w}"), e));
        let requestors = self.token_requestors.iter().map(|(id, e)| (format!("policy.token_requestors.{id}"), e));
        default.chain(wallets).chain(requestors)
    }
}

/// The target's retries toward TMP, the Lifecycle API and its sinks.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardingProfile {
    /// The waits before the second, third, … attempt (the last repeats).
    #[serde(default)]
    pub retry_schedule_ms: Option<Vec<u64>>,
    /// Each wait may be up to this much longer (or shorter).
    #[serde(default)]
    pub jitter_percent: u32,
    /// How often the target looks for work to deliver (added once to every wait).
    #[serde(default)]
    pub poll_interval_ms: u64,
}

/// Slack on top of a declared retry schedule: the time to notice, connect and record.
const DELIVERY_SLACK: Duration = Duration::from_secs(10);

impl ForwardingProfile {
    /// The longest the target may take to deliver through `failures` failed attempts on its
    /// declared schedule, or the key that would declare it.
    pub fn delivery_after(&self, failures: usize) -> Declared<Duration> {
        let schedule = self.retry_schedule_ms.as_ref().filter(|s| !s.is_empty()).ok_or_else(|| {
            "the profile does not declare the target's retry schedule (`forwarding.retry_schedule_ms`)".to_owned()
        })?;
        let waits: u64 = (0..failures).map(|i| schedule[i.min(schedule.len() - 1)]).sum();
        let stretched = waits.saturating_mul(100 + u64::from(self.jitter_percent)) / 100;
        Ok(Duration::from_millis(stretched + self.poll_interval_ms) + DELIVERY_SLACK)
    }
}

/// `policy.wallets`' keys, in capitals, each a wallet the contract knows.
fn wallet_keys<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, PolicyEntry>, D::Error> {
    use serde::de::Error as _;
    let mut wallets = BTreeMap::new();
    for (name, entry) in BTreeMap::<String, PolicyEntry>::deserialize(deserializer)? {
        let upper = name.to_ascii_uppercase();
        if !matches!(upper.as_str(), "APPLE_PAY" | "GOOGLE_PAY" | "SAMSUNG_PAY" | "MERCHANT" | "OTHER") {
            return Err(D::Error::custom(format!(
                "`policy.wallets.{name}` is not a wallet (APPLE_PAY, GOOGLE_PAY, SAMSUNG_PAY, MERCHANT or OTHER)"
            )));
        }
        if wallets.insert(upper.clone(), entry).is_some() {
            return Err(D::Error::custom(format!("`policy.wallets` names {upper} twice (keys are read in any case)")));
        }
    }
    Ok(wallets)
}

/// A test card. `pan` and `cvc` are held in the contract's masking types once parsed.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardFixture {
    pub pan: Pan,
    pub expiry: Expiry,
    #[serde(default)]
    pub cvc: Option<tmp_protocol::sensitive::Cvc>,
    /// The target's card id, when the cases should check it.
    #[serde(default)]
    pub card_id: Option<String>,
}

impl std::fmt::Debug for CardFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardFixture").field("pan", &self.pan).field("card_id", &self.card_id).finish_non_exhaustive()
    }
}

fn default_secret_env() -> String {
    DEFAULT_SECRET_ENV.to_owned()
}
fn default_processor_secret_env() -> String {
    DEFAULT_PROCESSOR_SECRET_ENV.to_owned()
}
fn default_issuer_secret_env() -> String {
    DEFAULT_ISSUER_SECRET_ENV.to_owned()
}
fn default_deadline_ms() -> u64 {
    1500
}
fn default_latency_requests() -> u32 {
    50
}
fn default_cvc_max_attempts() -> u32 {
    3
}
fn default_body_limit() -> usize {
    65536
}

impl Profile {
    pub fn load(path: &Path) -> anyhow::Result<Profile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the profile {}", path.display()))?;
        let profile: Profile =
            serde_yaml_from_str(&text).with_context(|| format!("invalid profile {}", path.display()))?;
        profile.validate()?;
        Ok(profile)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, meaning) in REQUIRED_CARDS {
            let Some(card) = self.cards.get(name) else {
                bail!("the profile has no `cards.{name}` ({meaning})");
            };
            if matches!(name, "active" | "lockout") && card.cvc.is_none() {
                bail!("`cards.{name}.cvc` is required: the CVC cases send it");
            }
        }
        if self.latency_requests == 0 || self.deadline_ms == 0 {
            bail!("`latency_requests` and `deadline_ms` must be positive");
        }
        // With one attempt, the wrong-CVC cases would lock `cards.active` for every case after.
        if self.cvc_max_attempts < 2 {
            bail!(
                "`cvc_max_attempts` must be at least 2: the suite sends a wrong CVC to `cards.active` and then the right one"
            );
        }
        for variable in [&self.secret_env, &self.processor_secret_env, &self.issuer_secret_env] {
            let valid = variable.chars().next().is_some_and(|c| c.is_ascii_uppercase() || c == '_')
                && variable.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                bail!("`{variable}` is not an environment variable name (A-Z, 0-9 and _, not starting with a digit)");
            }
        }
        let mut pans = std::collections::BTreeSet::new();
        let mut ids = std::collections::BTreeSet::new();
        for (name, card) in &self.cards {
            if !pans.insert(card.pan.expose().to_owned()) {
                bail!("`cards.{name}` has the PAN of another fixture: each card must be its own");
            }
            if let Some(id) = &card.card_id
                && !ids.insert(id.clone())
            {
                bail!("`cards.{name}` has the card_id of another fixture: each card must be its own");
            }
        }
        if let Some(id) = self.token_event_card_id.as_ref().filter(|id| ids.contains(*id)) {
            bail!("`token_event_card_id` {id:?} is a fixture's card: the token-event cases would pile tokens on it");
        }
        for (name, meaning) in OPTIONAL_CARDS {
            // The cap case names the card in token events; the failing card's id is never seen.
            let needs_id = name == "cap";
            if let Some(card) = self.cards.get(name)
                && (card.cvc.is_none() || (needs_id && card.card_id.is_none()))
            {
                let what = if needs_id { "`cvc` and `card_id`" } else { "`cvc`" };
                bail!("`cards.{name}` needs its {what} ({meaning})");
            }
        }
        let known: Vec<&str> = REQUIRED_CARDS.iter().chain(OPTIONAL_CARDS.iter()).map(|(name, _)| *name).collect();
        if let Some(other) = self.cards.keys().find(|name| !known.contains(&name.as_str())) {
            bail!("`cards.{other}` is not a fixture the suite uses ({})", known.join(", "));
        }
        for (key, entry) in self.policy.entries() {
            // Scores are 1-5 and the suite's baseline requests send 5: a threshold above 5
            // would step up every request, and no approval could be checked.
            if entry.step_up_below_score.is_some_and(|t| t > 5) {
                bail!("`{key}.step_up_below_score` must be 0 (off) to 5: scores are 1-5");
            }
            if entry.max_live_tokens_per_card == Some(0) {
                bail!("`{key}.max_live_tokens_per_card` must be at least 1 (contract §7.1)");
            }
        }
        if self.forwarding.retry_schedule_ms.as_ref().is_some_and(|s| s.is_empty()) {
            bail!("`forwarding.retry_schedule_ms` must list at least one wait");
        }
        Ok(())
    }

    /// The profile as a file [`Profile::load`] reads back (the test cards in clear, as in any
    /// profile): what a harness that starts its own target hands to `tmp-conformance run`.
    pub fn to_yaml(&self) -> String {
        use std::fmt::Write as _;
        let mut yaml = String::new();
        let quoted = |text: &str| serde_json::Value::from(text).to_string();
        let _ = writeln!(yaml, "secret_env: {}", quoted(&self.secret_env));
        let _ = writeln!(yaml, "processor_secret_env: {}", quoted(&self.processor_secret_env));
        let _ = writeln!(yaml, "issuer_secret_env: {}", quoted(&self.issuer_secret_env));
        if let Some(tls) = &self.tls {
            let path = |p: &Path| quoted(&p.display().to_string());
            let _ = write!(yaml, "tls: {{ca_file: {}", path(&tls.ca_file));
            if let Some(cert) = &tls.client_cert_file {
                let _ = write!(yaml, ", client_cert_file: {}", path(cert));
            }
            if let Some(key) = &tls.client_key_file {
                let _ = write!(yaml, ", client_key_file: {}", path(key));
            }
            let _ = writeln!(yaml, "}}");
        }
        let _ = writeln!(yaml, "deadline_ms: {}", self.deadline_ms);
        let _ = writeln!(yaml, "latency_requests: {}", self.latency_requests);
        let _ = writeln!(yaml, "cvc_max_attempts: {}", self.cvc_max_attempts);
        if let Some(window) = self.cvc_lockout_window_secs {
            let _ = writeln!(yaml, "cvc_lockout_window_secs: {window}");
        }
        let _ = writeln!(yaml, "body_limit_bytes: {}", self.body_limit_bytes);
        // YAML reads JSON: the nested settings go in flow style.
        let json = |value: serde_json::Result<String>| value.expect("a profile setting serialises");
        let _ = writeln!(yaml, "policy: {}", json(serde_json::to_string(&self.policy)));
        let _ = writeln!(yaml, "forwarding: {}", json(serde_json::to_string(&self.forwarding)));
        if let Some(id) = &self.token_event_card_id {
            let _ = writeln!(yaml, "token_event_card_id: {}", serde_json::Value::from(id.as_str()));
        }
        let _ = writeln!(yaml, "cards:");
        for (name, card) in &self.cards {
            let _ = write!(yaml, "  {name}: {{pan: \"{}\", expiry: \"{}\"", card.pan.expose(), card.expiry.mm_yy());
            if let Some(cvc) = &card.cvc {
                let _ = write!(yaml, ", cvc: \"{}\"", cvc.expose());
            }
            if let Some(id) = &card.card_id {
                let _ = write!(yaml, ", card_id: {}", serde_json::Value::from(id.as_str()));
            }
            let _ = writeln!(yaml, "}}");
        }
        yaml
    }

    pub fn card(&self, name: &str) -> anyhow::Result<&CardFixture> {
        self.cards.get(name).with_context(|| format!("the profile has no card `{name}`"))
    }

    /// The secret TMP signs with, from the environment variable the profile names.
    pub fn secret(&self) -> anyhow::Result<tmp_protocol::webhook::WebhookSecret> {
        read_secret(&self.secret_env)
    }

    /// The processor's ingest secret, when its variable is set.
    pub fn processor_secret(&self) -> Option<tmp_protocol::webhook::WebhookSecret> {
        read_secret(&self.processor_secret_env).ok()
    }

    /// The issuer's TMP API secret, when its variable is set.
    pub fn issuer_secret(&self) -> Option<tmp_protocol::webhook::WebhookSecret> {
        read_secret(&self.issuer_secret_env).ok()
    }
}

fn read_secret(variable: &str) -> anyhow::Result<tmp_protocol::webhook::WebhookSecret> {
    let value = std::env::var(variable).with_context(|| format!("set {variable} to the target's whsec_… secret"))?;
    tmp_protocol::webhook::WebhookSecret::parse(&value).map_err(|e| anyhow::anyhow!("{variable}: {e}"))
}

/// YAML through the `config` crate the workspace already uses (no second YAML parser).
fn serde_yaml_from_str<T: serde::de::DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    let source = config::File::from_str(text, config::FileFormat::Yaml);
    Ok(config::Config::builder().add_source(source).build()?.try_deserialize()?)
}
