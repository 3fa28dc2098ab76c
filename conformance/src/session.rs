//! One run against one target: the client, the optional mock and harness, unique ids, and
//! the log of the current case's exchanges (the material of a failure's reproduction).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::case::{Approach, Failure, Outcome};
use crate::client::{Answer, Call, Client, Exchange, Prepared};
use crate::harness::{Capability, Harness};
use crate::mock_api::MockApi;

/// How long a case waits for a delivery that meets no injected failure (the target's first
/// attempt). Deliveries through failures wait as the profile's retry schedule says
/// ([`Session::delivery_through`]).
pub const DEFAULT_DELIVERY_WITHIN: Duration = Duration::from_secs(30);

pub struct Session {
    pub client: Client,
    /// The Issuer API's base URL.
    pub target: String,
    pub approach: Approach,
    /// The mock the target forwards to and that drives it (forwarding and journey cases).
    pub mock: Option<MockApi>,
    /// What a local deployment of the target can do for the suite (`tmp-kit check`).
    pub harness: Option<Arc<dyn Harness>>,
    /// How long a case waits for a delivery that meets no injected failure.
    pub delivery_within: Duration,
    /// `--delivery-within`: replaces the waits the profile's retry schedule gives.
    pub delivery_within_override: Option<Duration>,
    /// Where the reproduction finds the profile (`tmp-conformance encrypt --profile …`).
    pub profile_path: Option<String>,
    pub seed: u64,
    run_id: String,
    counter: AtomicU64,
    log: Mutex<Vec<Arc<Exchange>>>,
    notes: Mutex<Vec<String>>,
}

impl Session {
    pub fn new(client: Client, target: &str, approach: Approach, seed: u64) -> Session {
        // Ids must be new on every run (a persistent target remembers earlier runs' ids), so
        // they carry the start time; the seed fixes everything else.
        let run_id = format!("{:x}", time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000 % 0xffff_ffff);
        Session {
            client,
            target: target.trim_end_matches('/').to_owned(),
            approach,
            mock: None,
            harness: None,
            delivery_within: DEFAULT_DELIVERY_WITHIN,
            delivery_within_override: None,
            profile_path: None,
            seed,
            run_id,
            counter: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            notes: Mutex::new(Vec::new()),
        }
    }

    /// A new id, unique in this run and across runs: `<prefix>-<run>-<n>`.
    pub fn id(&self, prefix: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{}-{n}", self.run_id)
    }

    /// How long the target may take to deliver an event through `failures` failed attempts:
    /// from the retry schedule the profile declares (or `--delivery-within`); the case is
    /// skipped when neither says.
    pub fn delivery_through(&self, failures: usize) -> Result<Duration, Failure> {
        let within = match self.delivery_within_override {
            Some(within) => within,
            None => crate::case::declared(self.client.profile.forwarding.delivery_after(failures))?,
        };
        // The case must finish within its own time limit, with room for what precedes the wait.
        let longest = crate::runner::CASE_TIMEOUT.saturating_sub(Duration::from_secs(20));
        if within > longest {
            return Err(Failure::skip(format!(
                "a delivery through {failures} failed attempt(s) may take {} s on the declared retry schedule, more \
                 than the {} s a case may wait",
                within.as_secs(),
                longest.as_secs()
            )));
        }
        Ok(within)
    }

    /// The mock, or a failure saying the case needs one.
    pub fn mock(&self) -> Result<&MockApi, Failure> {
        self.mock.as_ref().ok_or_else(|| Failure::new("a mock-tmp to drive (--mock)", "none"))
    }

    /// The harness, or a failure saying the case needs `capability` of one.
    pub fn harness(&self, capability: Capability) -> Result<&Arc<dyn Harness>, Failure> {
        self.harness
            .as_ref()
            .filter(|h| h.capabilities().contains(&capability))
            .ok_or_else(|| Failure::new(format!("a harness that can {}", capability.describe()), "none"))
    }

    /// The harness's ops API access.
    pub fn ops_api(&self) -> Result<&crate::harness::OpsAccess, Failure> {
        self.harness(Capability::OpsApi)?
            .ops_api()
            .ok_or_else(|| Failure::new("the harness's ops API credentials", "none"))
    }

    /// A call to the target's Issuer API.
    pub fn post(&self, path: &str, body: serde_json::Value) -> Call {
        Call::post(&self.target, path, body)
    }

    pub fn get(&self, path: &str) -> Call {
        Call::get(&self.target, path)
    }

    pub async fn prepare(&self, call: Call) -> Result<Prepared, Failure> {
        Ok(self.client.prepare(call).await?)
    }

    pub async fn send(&self, call: Call) -> Result<Answer, Failure> {
        let prepared = self.prepare(call).await?;
        self.send_prepared(&prepared).await
    }

    pub async fn send_prepared(&self, prepared: &Prepared) -> Result<Answer, Failure> {
        let mut waits = 0;
        loop {
            let answer = self.send_once(prepared).await?;
            // The ops API limits each caller's rate (docs/ops-api.md §2.5), and the suite is one
            // caller sending many requests: a 429 is the target pacing the suite, not an answer
            // to judge. Waited out as a client must, a few times; the exchanges stay in the log.
            let pause = answer.header("retry-after").and_then(|s| s.trim().parse::<u64>().ok()).filter(|s| *s <= 10);
            match pause {
                Some(secs) if answer.status == 429 && prepared.call.bearer.is_some() && waits < 5 => {
                    waits += 1;
                    tokio::time::sleep(Duration::from_secs(secs.max(1))).await;
                }
                _ => return Ok(answer),
            }
        }
    }

    async fn send_once(&self, prepared: &Prepared) -> Result<Answer, Failure> {
        match self.client.send_prepared(prepared).await {
            Ok(answer) => {
                self.log.lock().expect("log").push(answer.exchange.clone());
                Ok(answer)
            }
            Err(e) => {
                let exchange = Arc::new(Exchange {
                    call: prepared.call.clone(),
                    webhook_id: None,
                    status: None,
                    response: format!("{e:#}"),
                    elapsed: Duration::ZERO,
                });
                self.log.lock().expect("log").push(exchange.clone());
                Err(Failure { exchanges: vec![exchange], ..Failure::new("an answer", format!("{e:#}")) })
            }
        }
    }

    /// Starts a new case's exchange log.
    pub fn begin_case(&self) {
        self.log.lock().expect("log").clear();
        self.notes.lock().expect("notes").clear();
    }

    /// A measurement or remark reported with the case's result (e.g. latency percentiles).
    pub fn note(&self, text: String) {
        self.notes.lock().expect("notes").push(text);
    }

    pub fn case_notes(&self) -> Vec<String> {
        self.notes.lock().expect("notes").clone()
    }

    /// The exchanges of the current case so far.
    pub fn case_log(&self) -> Vec<Arc<Exchange>> {
        self.log.lock().expect("log").clone()
    }
}

/// Retries `check` until it passes or `within` has elapsed; fails with its last failure.
/// For effects that happen asynchronously (the outbox relay, the mock's callbacks).
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> Outcome
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Outcome>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(()) => return Ok(()),
            Err(failure) if failure.skipped.is_some() => return Err(failure),
            Err(failure) if Instant::now() >= deadline => {
                return Err(Failure {
                    actual: format!("{} (still after {} s)", failure.actual, within.as_secs()),
                    ..failure
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
