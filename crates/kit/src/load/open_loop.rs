//! An open-loop load generator: request `i` is due at `start + i / rate`, whether or not the
//! earlier ones have been answered, and its latency is measured from that due time, not from
//! when it was sent. A server that stalls therefore shows up as latency (no coordinated
//! omission): the requests that would have been sent during the stall are late, and counted so.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use hdrhistogram::Histogram;

/// One request's outcome: `Ok(())` when the target answered what the scenario expects.
pub type Outcome = anyhow::Result<()>;
/// Sends request `i`.
pub type Send =
    Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = Outcome> + std::marker::Send>> + Sync + std::marker::Send>;

/// What one open-loop run measured.
#[derive(Debug, Clone)]
pub struct RunStats {
    pub offered_rate: f64,
    /// Wall-clock time of request 0's due time.
    pub started_at: time::OffsetDateTime,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    /// The first error, for the report (never card data: the target's answer or a transport error).
    pub first_error: Option<String>,
    /// Requests answered OK per second, from the start to the last answer.
    pub achieved_rate: f64,
    /// Latency from each request's due time to its answer, in microseconds (OK answers only).
    pub latency_us: Histogram<u64>,
}

impl RunStats {
    /// Achieved at least 95% of the offered rate, with no error.
    pub fn kept_up(&self) -> bool {
        self.errors == 0 && self.achieved_rate >= 0.95 * self.offered_rate
    }

    pub fn percentile_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
}

pub fn histogram() -> Histogram<u64> {
    // 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Runs `send` at `rate` per second for `duration`, then waits for every request still out
/// (each bounded by the client's timeout).
pub async fn run(rate: f64, duration: Duration, send: Send) -> RunStats {
    assert!(rate > 0.0, "a rate above zero");
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Duration, Result<(), String>, Instant)>();
    let started_at = time::OffsetDateTime::now_utc();
    let start = Instant::now();
    let scheduler = tokio::spawn(async move {
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            let send = send.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let outcome = send(i).await.map_err(|e| format!("{e:#}"));
                let done = Instant::now();
                let _ = tx.send((done.saturating_duration_since(due), outcome, done));
            });
        }
    });
    let mut stats = RunStats {
        offered_rate: rate,
        started_at,
        sent: total,
        ok: 0,
        errors: 0,
        first_error: None,
        achieved_rate: 0.0,
        latency_us: histogram(),
    };
    let mut last = start;
    for _ in 0..total {
        let Some((latency, outcome, done)) = rx.recv().await else { break };
        last = last.max(done);
        match outcome {
            Ok(()) => {
                stats.ok += 1;
                stats.latency_us.saturating_record(latency.as_micros().max(1) as u64);
            }
            Err(e) => {
                stats.errors += 1;
                stats.first_error.get_or_insert(e);
            }
        }
    }
    let _ = scheduler.await;
    // The run lasts at least its schedule: answering faster than offered is not a higher rate.
    let elapsed = last.duration_since(start).max(Duration::from_secs_f64((total - 1) as f64 / rate)).as_secs_f64();
    stats.achieved_rate = if elapsed > 0.0 { stats.ok as f64 / elapsed } else { stats.ok as f64 };
    stats
}

/// The highest rate the target keeps up with ([`RunStats::kept_up`]): doubles from `start_rate`
/// until a step fails, then bisects between the last good and the first bad rate `refine`
/// times. `step` runs the target at a rate.
pub async fn find_peak<F, Fut>(
    start_rate: f64,
    max_rate: f64,
    refine: u32,
    mut step: F,
    mut on_step: impl FnMut(&RunStats),
) -> f64
where
    F: FnMut(f64) -> Fut,
    Fut: Future<Output = RunStats>,
{
    let mut good = 0.0;
    let mut bad = None;
    let mut rate = start_rate;
    while rate <= max_rate {
        let stats = step(rate).await;
        on_step(&stats);
        if stats.kept_up() {
            good = rate;
            rate *= 2.0;
        } else {
            bad = Some(rate);
            break;
        }
        // Let the target drain what the step left (outbox rows, connections).
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(mut bad) = bad {
        for _ in 0..refine {
            let rate = ((good + bad) / 2.0).round();
            if rate <= good || rate >= bad {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let stats = step(rate).await;
            on_step(&stats);
            if stats.kept_up() {
                good = rate;
            } else {
                bad = rate;
            }
        }
    }
    good
}
