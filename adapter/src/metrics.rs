//! Prometheus metrics, one registry per application instance (so tests can run several).
//! Labels never carry card data: routes are the matched pattern, not the path.

use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::store::GroupCommitStats;

/// The prefix of every metric the adapter exports.
const PREFIX: &str = "tmp_adapter";

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub decisions: IntCounterVec,
    /// The decision hook's outcomes: answered, timeout, invalid, failed.
    pub decision_hook: IntCounterVec,
    pub stand_ins: IntCounterVec,
    pub card_source_duration: HistogramVec,
    pub rejected_requests: IntCounterVec,
    pub token_events: IntCounterVec,
    pub notifications: IntCounterVec,
    pub processor_events: IntCounterVec,
    /// Delivery attempts by destination and outcome (`delivered`, `retry`, `held`, `dead`).
    pub outbox_attempts: IntCounterVec,
    /// Rows that went dead (expired before delivery), by destination.
    pub outbox_dead: IntCounterVec,
    /// Rows held for an operator, by destination: alert on any increase.
    pub outbox_held: IntCounterVec,
    /// Attempts the destination refused as unauthenticated or forbidden (401, 403), by
    /// destination: retried, but a clock or a secret needs a look. Alert on any increase.
    pub outbox_auth_failures: IntCounterVec,
    /// Configuration reloads (`SIGHUP`) by outcome (`applied`, `refused`): alert on `refused`.
    pub config_reloads: IntCounterVec,
    /// Token mirror drift found by reconciliation, by kind.
    pub token_drift: IntCounterVec,
    pub outbox_pending: IntGauge,
    pub outbox_held_rows: IntGauge,
    pub outbox_dead_rows: IntGauge,
    pub outbox_oldest_pending_age: Gauge,
    store_flushes: IntCounter,
    store_flushed_commits: IntCounter,
    store_flush_failures: IntCounter,
    store_durability_lost: IntGauge,
    /// Serialises [`Metrics::observe_group_commit`]: two scrapes must not both add a delta.
    observe: Arc<Mutex<()>>,
    /// Every family's name as exported (`tmp_adapter_…`).
    families: Arc<Vec<String>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some(PREFIX.into()), None).expect("valid prefix");
        let mut families = Vec::new();
        let buckets = vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route, method and status"),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route and status")
                .buckets(buckets.clone()),
            &["route", "status"],
        )
        .expect("valid metric");
        let decisions = IntCounterVec::new(
            Opts::new("decisions_total", "Card verification decisions by decision and reason"),
            &["decision", "reason"],
        )
        .expect("valid metric");
        let decision_hook = IntCounterVec::new(
            Opts::new("decision_hook_total", "Decision hook calls by outcome: ANSWERED, TIMEOUT, INVALID, FAILED"),
            &["outcome"],
        )
        .expect("valid metric");
        let stand_ins = IntCounterVec::new(
            Opts::new("stand_ins_total", "Stand-in decisions by cause (timeout, unavailable)"),
            &["cause"],
        )
        .expect("valid metric");
        let card_source_duration = HistogramVec::new(
            HistogramOpts::new("card_source_duration_seconds", "Card source call latency").buckets(buckets),
            &["source", "operation"],
        )
        .expect("valid metric");
        let rejected_requests = IntCounterVec::new(
            Opts::new("rejected_requests_total", "Requests rejected before processing, by error code"),
            &["code"],
        )
        .expect("valid metric");
        let token_events =
            IntCounterVec::new(Opts::new("token_events_total", "Token events received, by status"), &["status"])
                .expect("valid metric");
        let notifications =
            IntCounterVec::new(Opts::new("notifications_total", "Notifications received, by type"), &["type"])
                .expect("valid metric");
        let processor_events =
            IntCounterVec::new(Opts::new("processor_events_total", "Processor events stored, by type"), &["type"])
                .expect("valid metric");
        let outbox_attempts = IntCounterVec::new(
            Opts::new("outbox_attempts_total", "Outbox delivery attempts by destination and outcome"),
            &["destination", "outcome"],
        )
        .expect("valid metric");
        let outbox_dead = IntCounterVec::new(
            Opts::new("outbox_dead_total", "Outbox rows that went dead (expired before delivery), by destination"),
            &["destination"],
        )
        .expect("valid metric");
        let outbox_held = IntCounterVec::new(
            Opts::new(
                "outbox_held_total",
                "Outbox rows held for an operator (failed for good; their card's later rows wait), by destination",
            ),
            &["destination"],
        )
        .expect("valid metric");
        let config_reloads = IntCounterVec::new(
            Opts::new("config_reloads_total", "Configuration reloads (SIGHUP) by outcome: applied or refused"),
            &["outcome"],
        )
        .expect("valid metric");
        let token_drift = IntCounterVec::new(
            Opts::new(
                "token_drift_total",
                "Tokens the mirror had wrong when reconciled with TMP's list, by kind: missing, status, unknown_at_tmp",
            ),
            &["kind"],
        )
        .expect("valid metric");
        for kind in crate::ops::tokens::DriftKind::ALL {
            token_drift.with_label_values(&[kind.as_str()]);
        }
        let outbox_auth_failures = IntCounterVec::new(
            Opts::new(
                "outbox_auth_failures_total",
                "Delivery attempts refused with 401 or 403 (retried; check clocks and secrets), by destination",
            ),
            &["destination"],
        )
        .expect("valid metric");
        // Alerts on these counters fire on an increase, and the first increase of a series that
        // did not exist before is invisible to `increase()`: every label value starts at 0.
        for destination in crate::outbox::Destination::ALL {
            for family in [&outbox_dead, &outbox_held, &outbox_auth_failures] {
                family.with_label_values(&[destination.as_str()]);
            }
        }
        for outcome in ["applied", "refused"] {
            config_reloads.with_label_values(&[outcome]);
        }
        for outcome in crate::domain::verification::HookOutcome::ALL {
            decision_hook.with_label_values(&[outcome.as_str()]);
        }
        let outbox_held_rows = IntGauge::new("outbox_held", "Outbox rows held for an operator, each blocking its card")
            .expect("valid metric");
        let outbox_pending = IntGauge::new("outbox_pending", "Outbox rows waiting for delivery").expect("valid metric");
        let outbox_dead_rows = IntGauge::new("outbox_dead", "Outbox rows dead (dead letters)").expect("valid metric");
        let outbox_oldest_pending_age = Gauge::new(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox row waiting for delivery (0 when none)",
        )
        .expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let store_flushes = counter("store_flushes_total", "Group-commit flushes (WAL fsyncs / synchronous commits)");
        let store_flushed_commits = counter(
            "store_flushed_commits_total",
            "Durable commits (and replays' waits) covered by the flushes (÷ flushes = batch)",
        );
        let store_flush_failures = counter("store_flush_failures_total", "Group-commit flushes that failed");
        let store_durability_lost = IntGauge::new(
            "store_durability_lost",
            "1 after a failed SQLite WAL fsync: no write is acknowledged until a restart",
        )
        .expect("valid metric");
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(decisions.clone()),
            Box::new(decision_hook.clone()),
            Box::new(stand_ins.clone()),
            Box::new(card_source_duration.clone()),
            Box::new(rejected_requests.clone()),
            Box::new(token_events.clone()),
            Box::new(notifications.clone()),
            Box::new(processor_events.clone()),
            Box::new(outbox_attempts.clone()),
            Box::new(outbox_dead.clone()),
            Box::new(outbox_held.clone()),
            Box::new(outbox_auth_failures.clone()),
            Box::new(config_reloads.clone()),
            Box::new(token_drift.clone()),
            Box::new(outbox_held_rows.clone()),
            Box::new(outbox_pending.clone()),
            Box::new(outbox_dead_rows.clone()),
            Box::new(outbox_oldest_pending_age.clone()),
            Box::new(store_flushes.clone()),
            Box::new(store_flushed_commits.clone()),
            Box::new(store_flush_failures.clone()),
            Box::new(store_durability_lost.clone()),
        ] {
            // The registry adds its prefix when it renders, not to the descriptions.
            families.extend(collector.desc().iter().map(|d| format!("{PREFIX}_{}", d.fq_name)));
            registry.register(collector).expect("metric registered once");
        }
        Metrics {
            registry,
            http_requests,
            http_duration,
            decisions,
            decision_hook,
            stand_ins,
            card_source_duration,
            rejected_requests,
            token_events,
            notifications,
            processor_events,
            outbox_attempts,
            outbox_dead,
            outbox_held,
            outbox_auth_failures,
            config_reloads,
            token_drift,
            outbox_pending,
            outbox_held_rows,
            outbox_dead_rows,
            outbox_oldest_pending_age,
            store_flushes,
            store_flushed_commits,
            store_flush_failures,
            store_durability_lost,
            observe: Arc::new(Mutex::new(())),
            families: Arc::new(families),
        }
    }

    /// Brings the group-commit metrics up to the store's counters (at each scrape).
    pub fn observe_group_commit(&self, stats: GroupCommitStats) {
        let _serialised = self.observe.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (counter, total) in [
            (&self.store_flushes, stats.flushes),
            (&self.store_flushed_commits, stats.commits),
            (&self.store_flush_failures, stats.failures),
        ] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        self.store_durability_lost.set(i64::from(stats.poisoned));
    }

    /// The text exposition format.
    /// The name of every metric family the adapter exports, labelled or not, observed yet or
    /// not: what a dashboard or an alert rule may use (`config/monitoring` is checked against it).
    pub fn family_names(&self) -> &[String] {
        &self.families
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
