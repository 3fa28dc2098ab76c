//! Calls to the target as TMP (or the card processor) makes them: signed with Standard Webhooks,
//! card data as JWE to the target's published key, an `X-Idempotency-Key` — with a knob to break
//! each part. Every call is kept as an [`Exchange`], so that a failure can be shown with what was
//! sent, what came back, and a reproduction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::http::header::HeaderMap;
use anyhow::Context;
use serde_json::Value;
use tmp_edge::client::{ClientOptions, ClientTls, HttpClient, Request, SendError};
use tmp_edge::tls::ClientIdentity;
use tmp_protocol::jwk::JwkSet;
use tmp_protocol::webhook::{SignatureHeaders, WebhookSecret};

use crate::payload::PayloadSpec;
use crate::profile::Profile;

/// How long the suite waits for any one answer. Generous: the latency case judges speed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Which secret signs a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// TMP's secret toward the Issuer API.
    Tmp,
    /// The card processor's secret toward `POST /processor/v1/events`.
    Processor,
    /// The issuer's secret toward the TMP API (push provisioning on the mock).
    Issuer,
}

/// The secrets a run signs with; each is optional, a case that needs a missing one fails.
#[derive(Clone, Default)]
pub struct Secrets {
    pub tmp: Option<WebhookSecret>,
    pub processor: Option<WebhookSecret>,
    pub issuer: Option<WebhookSecret>,
}

/// How a request is signed, or broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    Valid,
    /// No `webhook-*` headers at all.
    Missing,
    /// Signed with a secret the target does not hold.
    WrongSecret,
    /// Timestamp ten minutes in the past / future.
    Stale,
    Future,
    /// Signed, then a byte is appended to the body.
    TamperedBody,
    /// A `webhook-signature` header with no `v1,…` entry.
    MalformedHeader,
    /// Valid, with this `webhook-id` (a replay when it was used before).
    WithId(String),
    /// Several entries, as a sender mid-rotation signs: one by a secret the target does not
    /// hold, one of another version (`v1a`), then the valid one.
    SeveralEntries,
}

impl Signing {
    /// Seconds the timestamp is moved by.
    fn skew(&self) -> i64 {
        match self {
            Signing::Stale => -600,
            Signing::Future => 600,
            _ => 0,
        }
    }
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    Empty,
    /// JSON; a string `"@@payload<i>@@"` is replaced by the i-th payload's JWE.
    Json(Value),
    /// Bytes as they are, with the shell expression that makes them for a reproduction.
    Raw {
        bytes: Vec<u8>,
        shell: String,
    },
}

/// Marks where the i-th [`PayloadSpec`] of a call goes in its JSON body.
pub fn payload_slot(index: usize) -> Value {
    Value::String(format!("@@payload{index}@@"))
}

/// An `Authorization: Bearer` credential (the ops API), named by the environment variable a
/// reproduction reads it from; its value never prints.
#[derive(Clone)]
pub struct Bearer {
    pub env: &'static str,
    pub token: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bearer(${})", self.env)
    }
}

/// One request to make.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub base_url: String,
    pub path: String,
    pub body: Body,
    pub payloads: Vec<PayloadSpec>,
    pub content_type: Option<String>,
    pub idempotency_key: Option<String>,
    /// `X-Correlation-Id` sent with the request (none by default).
    pub correlation_id: Option<String>,
    pub signer: Option<Signer>,
    pub signing: Signing,
    pub bearer: Option<Bearer>,
}

impl Call {
    pub fn post(base_url: &str, path: &str, body: Value) -> Call {
        Call {
            method: Method::POST,
            base_url: base_url.trim_end_matches('/').to_owned(),
            path: path.to_owned(),
            body: Body::Json(body),
            payloads: Vec::new(),
            content_type: Some("application/json".to_owned()),
            idempotency_key: Some(uuid::Uuid::new_v4().to_string()),
            correlation_id: None,
            signer: Some(Signer::Tmp),
            signing: Signing::Valid,
            bearer: None,
        }
    }

    pub fn get(base_url: &str, path: &str) -> Call {
        Call {
            method: Method::GET,
            body: Body::Empty,
            content_type: None,
            idempotency_key: None,
            signer: None,
            ..Call::post(base_url, path, Value::Null)
        }
    }

    pub fn payload(mut self, spec: PayloadSpec) -> Call {
        self.payloads.push(spec);
        self
    }
    pub fn bearer(mut self, bearer: Option<Bearer>) -> Call {
        self.bearer = bearer;
        self
    }
    pub fn signing(mut self, signing: Signing) -> Call {
        self.signing = signing;
        self
    }
    pub fn signer(mut self, signer: Option<Signer>) -> Call {
        self.signer = signer;
        self
    }
    pub fn idempotency_key(mut self, key: Option<&str>) -> Call {
        self.idempotency_key = key.map(str::to_owned);
        self
    }
    pub fn correlation_id(mut self, id: Option<&str>) -> Call {
        self.correlation_id = id.map(str::to_owned);
        self
    }
    pub fn content_type(mut self, content_type: Option<&str>) -> Call {
        self.content_type = content_type.map(str::to_owned);
        self
    }
    pub fn raw(mut self, bytes: Vec<u8>, shell: &str) -> Call {
        self.body = Body::Raw { bytes, shell: shell.to_owned() };
        self
    }
    /// Whether the JSON body has a slot for a payload.
    pub fn body_mentions_payload(&self) -> bool {
        matches!(&self.body, Body::Json(value) if value.to_string().contains("@@payload0@@"))
    }

    pub fn url(&self) -> String {
        format!("{}{}", self.base_url, self.path)
    }
}

/// A call with its body bytes fixed (JWEs made once), so it can be sent again byte-identical.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub call: Call,
    pub bytes: Vec<u8>,
}

/// What one sending of a call gave.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub call: Call,
    /// The `webhook-id` it was signed with, if any.
    pub webhook_id: Option<String>,
    pub status: Option<u16>,
    /// The answer's body (the suite's targets never put card data in one), or the transport error.
    pub response: String,
    pub elapsed: Duration,
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub elapsed: Duration,
    pub exchange: Arc<Exchange>,
}

impl Answer {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

/// The connection to the target and what it takes to sign and encrypt for it.
pub struct Client {
    pub http: HttpClient,
    pub profile: Profile,
    secrets: Secrets,
    /// Cards the run made up (forwarding, journeys), beside the profile's.
    generated: std::sync::Mutex<std::collections::BTreeMap<String, crate::profile::CardFixture>>,
    keys: tokio::sync::Mutex<Option<JwkSet>>,
    /// Where the target's key set is published.
    pub key_url: String,
}

impl Client {
    pub fn new(profile: Profile, target: &str, secrets: Secrets) -> anyhow::Result<Client> {
        let tls = match &profile.tls {
            Some(tls) => ClientTls {
                ca_file: Some(&tls.ca_file),
                identity: match (&tls.client_cert_file, &tls.client_key_file) {
                    (Some(cert_file), Some(key_file)) => Some(ClientIdentity { cert_file, key_file }),
                    _ => None,
                },
            },
            None => ClientTls::default(),
        };
        // One worker thread per core: `tmp-kit load` drives the target through this client, and
        // one thread would make the generator the bottleneck.
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let http = HttpClient::new(tls, ClientOptions { workers, ..ClientOptions::with_timeout(REQUEST_TIMEOUT) })?;
        let key_url = format!("{}{}", target.trim_end_matches('/'), tmp_protocol::issuer_api::PUBLIC_KEY_PATH);
        Ok(Client {
            http,
            profile,
            secrets,
            generated: Default::default(),
            keys: tokio::sync::Mutex::new(None),
            key_url,
        })
    }

    /// Makes a card up: a Luhn-valid PAN in the Visa test range `4000 00…`, never a real card,
    /// known to payloads as `name`.
    pub fn generate_card(&self, name: &str, expiry: &str) -> anyhow::Result<crate::profile::CardFixture> {
        let card = crate::profile::CardFixture {
            pan: generate_pan(),
            expiry: tmp_protocol::sensitive::Expiry::parse(expiry)?,
            cvc: None,
            card_id: Some(name.to_owned()),
        };
        self.generated.lock().expect("cards").insert(name.to_owned(), card.clone());
        Ok(card)
    }

    /// The profile, where `name` is a card: a card of the profile named so, or whose `card_id`
    /// is `name` (then known under `name` too), or one made up for `name` (kept for the run).
    pub fn profile_with_card(&self, name: &str) -> anyhow::Result<Profile> {
        let mut profile = self.profile.clone();
        profile.cards.extend(self.generated.lock().expect("cards").clone());
        if !profile.cards.contains_key(name) {
            let by_id = profile.cards.values().find(|c| c.card_id.as_deref() == Some(name)).cloned();
            let card = match by_id {
                Some(card) => card,
                None => self.generate_card(name, "12/30")?,
            };
            profile.cards.insert(name.to_owned(), card);
        }
        Ok(profile)
    }

    /// A card of the profile or one the run made up.
    pub fn card(&self, name: &str) -> Option<crate::profile::CardFixture> {
        self.profile.cards.get(name).cloned().or_else(|| self.generated.lock().expect("cards").get(name).cloned())
    }

    /// The secret `signer` signs with, when the run has it.
    pub fn secret(&self, signer: Signer) -> Option<WebhookSecret> {
        match signer {
            Signer::Tmp => self.secrets.tmp.clone(),
            Signer::Processor => self.secrets.processor.clone(),
            Signer::Issuer => self.secrets.issuer.clone(),
        }
    }

    pub fn has_processor_secret(&self) -> bool {
        self.secrets.processor.is_some()
    }

    /// The target's published key set (fetched once; `refresh` fetches again).
    pub async fn keys(&self, refresh: bool) -> anyhow::Result<JwkSet> {
        let mut cached = self.keys.lock().await;
        if refresh || cached.is_none() {
            let answer = self
                .http
                .send(Request::get(self.key_url.clone()))
                .await
                .map_err(|e| anyhow::anyhow!("cannot fetch the target's public key: {}", describe(&e)))?;
            anyhow::ensure!(answer.is_success(), "GET {} answered {}", self.key_url, answer.status);
            *cached = Some(answer.json().context("the public key set is not a JWK set")?);
        }
        Ok(cached.clone().expect("just fetched"))
    }

    /// Fixes the body bytes of `call`: makes its JWEs.
    pub async fn prepare(&self, call: Call) -> anyhow::Result<Prepared> {
        let bytes = match &call.body {
            Body::Empty => Vec::new(),
            Body::Raw { bytes, .. } => bytes.clone(),
            Body::Json(value) => {
                let mut text = value.to_string();
                if !call.payloads.is_empty() {
                    let keys = self.keys(false).await?;
                    let mut profile = self.profile.clone();
                    profile.cards.extend(self.generated.lock().expect("cards").clone());
                    for (i, spec) in call.payloads.iter().enumerate() {
                        let jwe = spec.encrypt(&profile, &keys)?;
                        text = text.replace(&format!("@@payload{i}@@"), &jwe);
                    }
                }
                text.into_bytes()
            }
        };
        Ok(Prepared { call, bytes })
    }

    /// Prepares and sends once.
    pub async fn send(&self, call: Call) -> anyhow::Result<Answer> {
        let prepared = self.prepare(call).await?;
        self.send_prepared(&prepared).await
    }

    /// Sends a prepared call (a fresh `webhook-id` each time unless the call fixes one).
    /// A transport failure is an `Err` that names the URL; the target's answers are `Ok`.
    pub async fn send_prepared(&self, prepared: &Prepared) -> anyhow::Result<Answer> {
        let call = &prepared.call;
        let mut request = Request::new(call.method.clone(), call.url());
        if let Some(ct) = &call.content_type {
            request = request.header("content-type", ct);
        }
        if let Some(key) = &call.idempotency_key {
            request = request.header(tmp_protocol::headers::IDEMPOTENCY_KEY, key);
        }
        if let Some(id) = &call.correlation_id {
            request = request.header(tmp_protocol::headers::CORRELATION_ID, id);
        }
        if let Some(bearer) = &call.bearer {
            request = request.header("authorization", &format!("Bearer {}", bearer.token.as_str()));
        }
        let mut body = prepared.bytes.clone();
        let mut webhook_id = None;
        if let Some(signer) = call.signer {
            let secret = self.secret(signer).context("no secret to sign with: set the variable the profile names")?;
            if let Some((id, pairs)) = signature_headers(&call.signing, &secret, &body)? {
                webhook_id = Some(id);
                for (name, value) in pairs {
                    request = request.header(name, &value);
                }
            }
            if call.signing == Signing::TamperedBody {
                body.push(b' ');
            }
        }
        request.body = body.into();
        let started = Instant::now();
        let (status, headers, bytes) = match self.http.send(request).await {
            Ok(response) => (response.status.as_u16(), response.headers, response.body.to_vec()),
            Err(e) => anyhow::bail!("{} {}: no answer: {}", call.method, call.url(), describe(&e)),
        };
        let elapsed = started.elapsed();
        let exchange = Arc::new(Exchange {
            call: call.clone(),
            webhook_id,
            status: Some(status),
            response: truncate(&String::from_utf8_lossy(&bytes), 2000),
            elapsed,
        });
        Ok(Answer { status, headers, body: bytes, elapsed, exchange })
    }
}

/// The `webhook-*` headers for `signing`, or `None` when none are sent.
#[allow(clippy::type_complexity)]
pub fn signature_headers(
    signing: &Signing,
    secret: &WebhookSecret,
    body: &[u8],
) -> anyhow::Result<Option<(String, Vec<(&'static str, String)>)>> {
    let id = match signing {
        Signing::Missing => return Ok(None),
        Signing::WithId(id) => id.clone(),
        _ => tmp_protocol::webhook::new_message_id(),
    };
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp() + signing.skew();
    let secret = match signing {
        Signing::WrongSecret => WebhookSecret::generate().0,
        _ => secret.clone(),
    };
    let headers = SignatureHeaders::sign(&[secret], &id, timestamp, body)?;
    let mut pairs: Vec<(&'static str, String)> = headers.to_header_pairs().into_iter().collect();
    if *signing == Signing::SeveralEntries {
        let other = tmp_protocol::webhook::sign(&WebhookSecret::generate().0, &id, timestamp, body);
        pairs[2].1 = format!("{other} v1a,c2lnbmVkIHdpdGggYW5vdGhlciBzY2hlbWU= {}", pairs[2].1);
    }
    if *signing == Signing::MalformedHeader {
        pairs[2].1 = "not-a-signature".to_owned();
    }
    Ok(Some((id, pairs)))
}

/// The digit that makes `digits` + it pass the Luhn check.
/// A new, random Luhn-valid 16-digit test PAN in the `400000` range, for cards a run makes up.
pub fn generate_pan() -> tmp_protocol::sensitive::Pan {
    let mut digits: Vec<u8> = vec![4, 0, 0, 0, 0, 0];
    digits.extend((0..9).map(|_| rand::random_range(0..10u8)));
    digits.push(luhn_check_digit(&digits));
    let pan: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
    tmp_protocol::sensitive::Pan::parse(&pan).expect("16 digits with a Luhn check digit")
}

fn luhn_check_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

fn describe(error: &SendError) -> String {
    match error {
        SendError::Timeout => "timed out".to_owned(),
        SendError::Connect => "connection refused or unreachable".to_owned(),
        SendError::Dropped => "the connection broke off before a complete answer".to_owned(),
        other => other.to_string(),
    }
}

pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}
