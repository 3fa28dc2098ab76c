//! The outbox relay: delivers what the adapter committed to its outbox — processor events to
//! TMP or DataCore, token events and notifications to the issuer's webhook sinks.
//!
//! Modelled on svix's worker: a loop per destination claims due rows up to a concurrency cap
//! and runs one task per delivery; a failed attempt is rescheduled from the configured retry schedule with
//! jitter (a destination's `Retry-After` honoured within bounds) or, when permanent or out of
//! schedule, the row goes `dead` for an operator. What differs from a webhook service:
//!
//! - **order**: only the oldest pending row of an ordering key (a card) is ever claimed, so a
//!   card's next message waits until the previous one is delivered or dead; different cards
//!   go in parallel;
//! - **durability**: rows are committed with the state change that caused them, and a claimed
//!   row is only *leased*: if this process dies, another one (or this one restarted) takes it
//!   over once the lease ends. Delivery is therefore at least once; receivers deduplicate on
//!   `X-Idempotency-Key`, which is the row's id and the same on every attempt;
//! - **several processes** share one PostgreSQL database (`FOR UPDATE SKIP LOCKED` + lease).
//!
//! On shutdown each destination's loop stops claiming and waits for its deliveries in flight.

mod deliver;
mod results;
mod wakeup;

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context;
use time::OffsetDateTime;
use tmp_edge::correlation;
use tmp_edge::otlp::Exporter;
use tmp_protocol::trace_context::TraceParent;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Settings;
use crate::keys::KeyMaterial;
use crate::metrics::Metrics;
use crate::outbox::Destination;
use crate::store::{
    DeliveryResult, DynStore, FinishedAttempt, NotificationStore, OutboxEntry, OutboxStore, Recorded, StoreError,
};
use results::ResultWriter;

pub use crate::outbox::NO_SINK;
pub use deliver::Attempt;
pub use deliver::Destinations;
pub use wakeup::Wakeup;

pub struct Relay {
    /// The relay's part of the store: the outbox (deliveries read notifications too, see
    /// `Destinations`).
    store: Arc<dyn OutboxStore>,
    settings: crate::config::RelaySettings,
    /// Where messages go, with the secrets and TLS they are sent with: replaced by a reload
    /// (a delivery in flight finishes with the set it started with).
    destinations: RwLock<Arc<Destinations>>,
    /// What a reload builds new destinations from.
    notifications: Arc<dyn NotificationStore>,
    keys: Arc<KeyMaterial>,
    metrics: Metrics,
    /// Names this process's leases.
    owner: String,
    wakeup: Arc<Wakeup>,
    /// Where each delivery and its calls are exported as spans (`log.otlp`), when they are.
    exporter: Option<Exporter>,
}

impl Relay {
    pub fn new(
        settings: &Settings,
        store: DynStore,
        keys: Arc<KeyMaterial>,
        metrics: Metrics,
        wakeup: Arc<Wakeup>,
    ) -> anyhow::Result<Relay> {
        let notifications: Arc<dyn NotificationStore> = store.clone();
        let destinations =
            Destinations::new(settings, notifications.clone(), keys.clone()).context("setting up the relay")?;
        let owner = format!("{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..12]);
        Ok(Relay {
            store,
            settings: settings.relay.clone(),
            destinations: RwLock::new(Arc::new(destinations)),
            notifications,
            keys,
            metrics,
            owner,
            wakeup,
            exporter: None,
        })
    }

    /// Deliveries exported as spans through `exporter`.
    pub fn with_exporter(mut self, exporter: Option<Exporter>) -> Relay {
        self.exporter = exporter;
        self
    }

    /// Builds the destinations `settings` names — the TMP and Lifecycle API clients and the sinks,
    /// with their secrets, TLS and keys — without putting them in force (a reload checks
    /// everything before it changes anything).
    pub fn prepare_destinations(&self, settings: &Settings) -> anyhow::Result<Destinations> {
        Destinations::new(settings, self.notifications.clone(), self.keys.clone())
    }

    /// Deliveries from now on use `destinations`.
    pub fn install_destinations(&self, destinations: Destinations) {
        *self.destinations.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(destinations);
    }

    fn destinations(&self) -> Arc<Destinations> {
        self.destinations.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Delivers until `shutdown` turns true, then waits for the deliveries in flight.
    ///
    /// Each destination has a claim loop of its own, running concurrently: a claim that is slow
    /// for one (a deep queue of one card makes the claim's second step walk it) never delays the
    /// claims of another. (Measured on PostgreSQL with one loop for all three: the token-event
    /// sink's backlog of one card made every TMP API claim wait ≈ 23 ms behind it, and processor
    /// ingest → delivery fell from 800/s to 400/s.)
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let (results, result_writer) = ResultWriter::start(self.store.clone(), self.owner.clone());
        tracing::info!(owner = %self.owner, concurrency = self.settings.concurrency, "outbox relay started");
        let loops = DESTINATIONS
            .iter()
            .map(|destination| self.clone().claim_loop(*destination, results.clone(), shutdown.clone()));
        tokio::join!(futures_util::future::join_all(loops), self.refresh_stats_until(shutdown));
        drop(results);
        if let Err(error) = result_writer.await {
            tracing::error!(error = %error, "the outbox relay's result writer failed");
        }
        tracing::info!("outbox relay stopped");
    }

    /// Claims `destination`'s due rows and runs a task per delivery, at most
    /// `relay.concurrency` at a time: a receiver that is slow or has a backlog never takes the
    /// slots of another. It claims on a wake-up, on every poll, and when a delivery ended that
    /// may have made a row claimable: its card's next row (the store says whether there is one),
    /// or any due row that the previous claim had no free slot for (it filled every slot). A
    /// delivery that ends with nothing behind it claims nothing: that claim found nothing at
    /// low load, and was the most frequent statement of ingest → delivery on PostgreSQL (1.85
    /// claims per event, each planned anew: measured with `pg_stat_statements`). On shutdown it
    /// stops claiming and waits for its deliveries in flight.
    async fn claim_loop(
        self: Arc<Self>,
        destination: Destination,
        results: ResultWriter,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        let mut tasks: JoinSet<bool> = JoinSet::new();
        let mut due = true;
        // The last claim took as many rows as it had slots for: due rows may be waiting for one.
        let mut saturated = false;
        // A poll is due `poll` after the last claim (any claim sees what a poll would), however
        // many deliveries end meanwhile without calling for one.
        let mut next_poll = tokio::time::Instant::now() + poll;
        while !*shutdown.borrow() {
            let free = self.settings.concurrency.saturating_sub(tasks.len());
            // With no slot free a wake-up stays due until a delivery ends.
            if free > 0 && std::mem::take(&mut due) {
                next_poll = tokio::time::Instant::now() + poll;
                let now = OffsetDateTime::now_utc();
                let lease_until = now + Duration::from_secs(self.settings.lease_secs);
                match self.store.claim_outbox(&self.owner, destination, now, lease_until, free as u32).await {
                    Ok(entries) => {
                        saturated = entries.len() == free;
                        for entry in entries {
                            tasks.spawn(self.clone().process(entry, results.clone()));
                        }
                    }
                    Err(error) => tracing::warn!(error = ?error, %destination, "outbox claim failed; will retry"),
                }
            }
            tokio::select! {
                Some(done) = tasks.join_next(), if !tasks.is_empty() => due |= claim_after(done) || saturated,
                _ = self.wakeup.rows_due(destination) => due = true,
                _ = tokio::time::sleep_until(next_poll) => {
                    // Also when no slot is free and nothing is claimed: never a poll in the past.
                    next_poll = tokio::time::Instant::now() + poll;
                    due = true;
                }
                // A sender gone is a stop too (the application is ending).
                changed = shutdown.changed() => if changed.is_err() { break },
            }
            // Reap every finished delivery before claiming again: one claim for many.
            while let Some(done) = tasks.try_join_next() {
                due |= claim_after(done) || saturated;
            }
        }
        let in_flight = tasks.len();
        tracing::info!(in_flight, %destination, "outbox relay stopping: finishing deliveries in flight");
        while tasks.join_next().await.is_some() {}
    }

    /// Refreshes the outbox gauges every `relay.stats_interval_secs` until shutdown.
    async fn refresh_stats_until(&self, mut shutdown: watch::Receiver<bool>) {
        let mut stats = tokio::time::interval(Duration::from_secs(self.settings.stats_interval_secs));
        stats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !*shutdown.borrow() {
            tokio::select! {
                _ = stats.tick() => self.refresh_stats().await,
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
    }

    async fn refresh_stats(&self) {
        match self.store.outbox_stats().await {
            Ok(stats) => {
                self.metrics.outbox_pending.set(i64::try_from(stats.pending).unwrap_or(i64::MAX));
                self.metrics.outbox_dead_rows.set(i64::try_from(stats.dead).unwrap_or(i64::MAX));
                self.metrics.outbox_held_rows.set(i64::try_from(stats.held).unwrap_or(i64::MAX));
                let age = stats
                    .oldest_pending_created_at
                    .map_or(0.0, |t| (OffsetDateTime::now_utc() - t).as_seconds_f64().max(0.0));
                self.metrics.outbox_oldest_pending_age.set(age);
            }
            Err(error) => tracing::warn!(error = ?error, "outbox stats failed"),
        }
    }

    /// One attempt at one row, and its bookkeeping. Returns whether a claim is called for: the
    /// card's next row became claimable, or what became of the row is not known.
    async fn process(self: Arc<Self>, entry: OutboxEntry, results: ResultWriter) -> bool {
        let correlation_id = entry.record.correlation_id.clone().unwrap_or_else(|| entry.record.id.to_string());
        // The trace of the request that queued the row, continued by this delivery (every
        // attempt a new hop of it); a row queued without one starts its own.
        let trace = entry.record.traceparent.map(|t| t.child()).unwrap_or_else(TraceParent::start);
        let span = tracing::info_span!(
            "deliver",
            %correlation_id,
            trace_id = %trace.trace_id(),
            outbox_id = %entry.record.id,
            destination = %entry.record.destination,
            event_type = %entry.record.event_type(),
            attempt = entry.attempts + 1,
        );
        let destination = entry.record.destination.as_str();
        let result = if entry.record.not_after.is_some_and(|t| t <= OffsetDateTime::now_utc()) {
            // An activation code past its expiry is useless and must not be sent: it goes dead
            // and blocks nothing.
            DeliveryResult::Dead { error: "expired before delivery (not_after passed)".into() }
        } else {
            let destinations = self.destinations();
            let started = std::time::SystemTime::now();
            let delivery = correlation::scope_exported(
                correlation_id.clone(),
                trace,
                self.exporter.clone(),
                destinations.deliver(&entry),
            );
            let attempt = tracing::Instrument::instrument(delivery, span.clone()).await;
            if let Some(exporter) = &self.exporter {
                exporter.record(delivery_span(&entry, trace, started, &attempt));
            }
            if let Attempt::Unauthorized(error) = &attempt {
                self.metrics.outbox_auth_failures.with_label_values(&[destination]).inc();
                tracing::warn!(parent: &span, %error, "the destination refused our credentials; check clocks and secrets");
            }
            decide(&self.settings, &entry, attempt, OffsetDateTime::now_utc())
        };
        let now = OffsetDateTime::now_utc();
        let unrouted = matches!(&result, DeliveryResult::Dead { error } if error == NO_SINK);
        let outcome = match &result {
            DeliveryResult::Delivered => "delivered",
            DeliveryResult::Retry { .. } => "retry",
            DeliveryResult::Held { .. } => "held",
            DeliveryResult::Dead { .. } if unrouted => "unrouted",
            DeliveryResult::Dead { .. } => "dead",
        };
        self.metrics.outbox_attempts.with_label_values(&[destination, outcome]).inc();
        match &result {
            DeliveryResult::Delivered => tracing::info!(parent: &span, "delivered"),
            DeliveryResult::Retry { at, error } => {
                tracing::warn!(parent: &span, %error, retry_at = %at, "delivery failed; will retry")
            }
            DeliveryResult::Held { error } => {
                self.metrics.outbox_held.with_label_values(&[destination]).inc();
                tracing::error!(
                    parent: &span,
                    %error,
                    ordering_key = %entry.record.ordering_key,
                    "delivery failed for good: held for an operator, the card's later messages wait \
                     (outbox retry or skip)"
                );
            }
            // A choice of the configuration, not a failure: no dead letter to alert on.
            DeliveryResult::Dead { .. } if unrouted => tracing::info!(parent: &span, "{NO_SINK}"),
            DeliveryResult::Dead { error } => {
                self.metrics.outbox_dead.with_label_values(&[destination]).inc();
                tracing::warn!(parent: &span, %error, "not delivered: dead");
            }
        }
        record(&results, &entry, FinishedAttempt { id: entry.record.id, at: now, result }, &span).await
    }
}

/// Records an attempt's result (with those of other deliveries, see [`ResultWriter`]). A
/// database that fails just then (a cut connection, a failover) is tried again, backing off, for
/// as long as the lease is ours: giving up at the first error would leave the row leased and its
/// card stopped until the lease ends (a minute by default) although the database came back in a
/// second. Once the lease is over the row is someone else's to deliver again, with the same
/// idempotency key. Returns whether a claim is called for (see [`Relay::process`]).
async fn record(results: &ResultWriter, entry: &OutboxEntry, attempt: FinishedAttempt, span: &tracing::Span) -> bool {
    let mut backoff = RECORD_RETRY_FIRST;
    loop {
        // Bounded by the lease: a write that hangs (a half-open connection) frees the delivery's
        // slot when the row stops being ours anyway.
        let written = match entry.lease_until {
            Some(lease) => {
                let left = Duration::try_from(lease - OffsetDateTime::now_utc()).unwrap_or(Duration::ZERO);
                tokio::time::timeout(left, results.record(attempt.clone()))
                    .await
                    .unwrap_or_else(|_| Err(Arc::new(StoreError::NotDurable("timed out until the lease ended"))))
            }
            None => results.record(attempt.clone()).await,
        };
        match written {
            Ok(Recorded::Written { next_in_line }) => return next_in_line,
            Ok(Recorded::LeaseLost) => {
                tracing::info!(parent: span, "the row changed hands while in flight; result not recorded");
                return true;
            }
            Err(error) => {
                let retry_at = OffsetDateTime::now_utc() + backoff;
                if entry.lease_until.is_none_or(|lease| retry_at >= lease) {
                    tracing::warn!(parent: span, error = ?error, "cannot record the attempt; the lease will run out");
                    return true;
                }
                tracing::warn!(parent: span, error = ?error, "cannot record the attempt; trying again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RECORD_RETRY_MAX);
            }
        }
    }
}

/// First and longest pause between attempts to record a delivery's result (see
/// [`record`]).
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(100);
const RECORD_RETRY_MAX: Duration = Duration::from_secs(2);

/// The destinations the relay claims for, each on its own (see [`Relay::run`]); [`Wakeup`]
/// relies on this order.
const DESTINATIONS: [Destination; 3] = [Destination::TmpApi, Destination::LifecycleApi, Destination::IssuerWebhook];

/// A delivery task that panicked (a bug) is logged: its row's lease runs out and the row is
/// delivered again.
/// Whether the delivery that ended with `done` calls for a claim (see `claim_loop`): yes when
/// its task failed (logged), as nothing is known of its row.
fn claim_after(done: Result<bool, tokio::task::JoinError>) -> bool {
    done.unwrap_or_else(|error| {
        tracing::error!(error = %error, "an outbox delivery task failed");
        true
    })
}

/// A delivery attempt as an exported span, under the request that queued the row: the
/// destination, the message type and the attempt — no ids, no payload.
fn delivery_span(
    entry: &OutboxEntry,
    trace: TraceParent,
    started: std::time::SystemTime,
    attempt: &Attempt,
) -> tmp_edge::otlp::SpanRecord {
    use tmp_edge::otlp::AttributeValue::{Int, Str};
    tmp_edge::otlp::SpanRecord {
        name: format!("deliver {}", entry.record.destination),
        kind: tmp_edge::otlp::SpanKind::Internal,
        position: trace,
        parent: entry.record.traceparent,
        start: started,
        end: std::time::SystemTime::now(),
        failed: !matches!(attempt, Attempt::Delivered),
        attributes: vec![
            ("tmp.outbox.destination", Str(entry.record.destination.to_string())),
            ("tmp.outbox.event_type", Str(entry.record.event_type().to_string())),
            ("tmp.outbox.attempt", Int(i64::from(entry.attempts) + 1)),
        ],
    }
}

/// The row's next state after `attempt`: delivered, retried after the scheduled (jittered)
/// delay — at least, and at most `retry_after_max_secs`, what the destination's `Retry-After`
/// asked — or, refused for good or out of schedule, held at the head of its card.
pub fn decide(
    settings: &crate::config::RelaySettings,
    entry: &OutboxEntry,
    attempt: Attempt,
    now: OffsetDateTime,
) -> DeliveryResult {
    match attempt {
        Attempt::Delivered => DeliveryResult::Delivered,
        // Nothing to wait for: the row is done, as dead, and says why.
        Attempt::Unrouted => DeliveryResult::Dead { error: NO_SINK.into() },
        Attempt::Permanent(error) => DeliveryResult::Held { error },
        Attempt::Unauthorized(error) => decide(settings, entry, Attempt::Transient { error, retry_after: None }, now),
        Attempt::Transient { error, retry_after } => {
            let made = entry.attempts as usize;
            match settings.retry_schedule_ms.get(made) {
                None => DeliveryResult::Held {
                    error: format!("retry schedule exhausted after {} attempts; last: {error}", made + 1),
                },
                Some(base_ms) => {
                    let delay = jitter(Duration::from_millis(*base_ms), settings.jitter_percent);
                    let delay = match retry_after {
                        Some(asked) => {
                            asked.clamp(delay, delay.max(Duration::from_secs(settings.retry_after_max_secs)))
                        }
                        None => delay,
                    };
                    DeliveryResult::Retry { at: now + delay, error }
                }
            }
        }
    }
}

/// `base` varied uniformly by up to `percent` either way, so retries of many rows that failed
/// together do not hit the destination together again.
fn jitter(base: Duration, percent: u8) -> Duration {
    if percent == 0 {
        return base;
    }
    let unit = (uuid::Uuid::new_v4().as_u128() % 1_000_001) as f64 / 1_000_000.0; // [0, 1]
    let factor = 1.0 + f64::from(percent) / 100.0 * (2.0 * unit - 1.0);
    base.mul_f64(factor.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OutboxRecord;

    fn settings() -> crate::config::RelaySettings {
        crate::config::RelaySettings {
            enabled: true,
            concurrency: 1,
            poll_interval_ms: 10,
            lease_secs: 30,
            request_timeout_ms: 1000,
            retry_schedule_ms: vec![1000, 10_000],
            jitter_percent: 0,
            retry_after_max_secs: 60,
            stats_interval_secs: 10,
        }
    }

    fn entry(attempts: u32) -> OutboxEntry {
        let now = OffsetDateTime::now_utc();
        OutboxEntry {
            seq: 1,
            record: OutboxRecord {
                id: uuid::Uuid::new_v4(),
                destination: Destination::TmpApi,
                ordering_key: "card".into(),
                message: crate::outbox::OutboxMessage::from_stored(
                    "card.closed",
                    r#"{"event": {"id": "e1", "cardId": "card", "type": "card.closed",
                                  "occurredAt": "2026-03-01T10:00:00Z", "data": {}}}"#,
                )
                .expect("a stored card event"),
                created_at: now,
                not_after: None,
                correlation_id: None,
                traceparent: None,
            },
            status: crate::outbox::OutboxStatus::Pending,
            held_at: None,
            attempts,
            next_attempt_at: now,
            lease_owner: None,
            lease_until: None,
            last_error: None,
            delivered_at: None,
        }
    }

    fn transient(retry_after: Option<u64>) -> Attempt {
        Attempt::Transient { error: "HTTP 503".into(), retry_after: retry_after.map(Duration::from_secs) }
    }

    #[test]
    fn transient_failures_follow_the_schedule_then_are_held() {
        let now = OffsetDateTime::now_utc();
        let s = settings();
        assert_eq!(
            decide(&s, &entry(0), transient(None), now),
            DeliveryResult::Retry { at: now + Duration::from_secs(1), error: "HTTP 503".into() }
        );
        assert_eq!(
            decide(&s, &entry(1), transient(None), now),
            DeliveryResult::Retry { at: now + Duration::from_secs(10), error: "HTTP 503".into() }
        );
        assert!(matches!(decide(&s, &entry(2), transient(None), now), DeliveryResult::Held { .. }));
        assert!(matches!(
            decide(&s, &entry(0), Attempt::Permanent("HTTP 404".into()), now),
            DeliveryResult::Held { .. }
        ));
    }

    #[test]
    fn an_authentication_refusal_is_retried_on_the_schedule() {
        let now = OffsetDateTime::now_utc();
        let s = settings();
        let refused = || Attempt::Unauthorized("HTTP 401 STALE_TIMESTAMP".into());
        assert_eq!(
            decide(&s, &entry(0), refused(), now),
            DeliveryResult::Retry { at: now + Duration::from_secs(1), error: "HTTP 401 STALE_TIMESTAMP".into() }
        );
        assert!(matches!(decide(&s, &entry(2), refused(), now), DeliveryResult::Held { .. }));
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let now = OffsetDateTime::now_utc();
        let s = settings();
        let at = |r| match decide(&s, &entry(0), transient(Some(r)), now) {
            DeliveryResult::Retry { at, .. } => at - now,
            other => panic!("{other:?}"),
        };
        assert_eq!(at(5), time::Duration::seconds(5));
        assert_eq!(at(0), time::Duration::seconds(1), "never sooner than the schedule");
        assert_eq!(at(3600), time::Duration::seconds(60), "never later than retry_after_max_secs");
    }

    #[test]
    fn jitter_stays_within_its_percentage() {
        for _ in 0..1000 {
            let d = jitter(Duration::from_millis(1000), 20);
            assert!(d >= Duration::from_millis(800) && d <= Duration::from_millis(1200), "{d:?}");
        }
    }
}
