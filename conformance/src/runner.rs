//! Runs the selected cases one after another (cases share the target's state: one card's CVC
//! counter, the mock's faults), with live progress, and collects their results.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::case::{Approach, Area, Case, Failure, Needs};
use crate::client::Exchange;
use crate::harness::Capability;
use crate::session::Session;

/// The longest one case may take before it counts as failed.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Passed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub id: &'static str,
    pub area: Area,
    pub title: &'static str,
    pub requirement: &'static str,
    /// The contract rules the case checks.
    pub rules: &'static [&'static str],
    pub verdict: Verdict,
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_because: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailureReport {
    pub expected: String,
    pub actual: String,
    /// A bash script that sends the case's requests again, secrets and card data redacted.
    pub reproduction: String,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// What the run could do: which needs are met.
pub struct Capabilities {
    /// A mock-tmp the target forwards to, and the processor secret.
    pub mock: bool,
    /// What the run's harness offers (none without one).
    pub harness: Vec<Capability>,
}

impl Capabilities {
    fn lacks(&self, needs: Needs) -> Option<String> {
        let mut missing = Vec::new();
        if needs.mock() && !self.mock {
            missing.push("a mock-tmp the target forwards to and the processor secret (--mock)".to_owned());
        }
        if let Some(capability) = needs.capability().filter(|c| !self.harness.contains(c)) {
            missing.push(format!(
                "the harness capability `{}` ({}; tmp-kit check offers it)",
                capability.as_str(),
                capability.describe()
            ));
        }
        (!missing.is_empty()).then(|| format!("needs {}", missing.join(" and ")))
    }
}

pub struct Run {
    pub approach: Approach,
    pub target: String,
    pub seed: u64,
    pub results: Vec<CaseResult>,
    pub duration: Duration,
    /// Which part of the catalogue the run covered.
    pub scope: Scope,
}

/// How the run's cases relate to the whole catalogue: what a reviewer needs to read a score.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    /// Every case of the catalogue, both approaches.
    pub catalogue: usize,
    /// The cases of the run's approach.
    pub for_approach: usize,
    /// Those `--case` selected.
    pub selected: usize,
}

impl Run {
    pub fn count(&self, verdict: Verdict) -> usize {
        self.results.iter().filter(|r| r.verdict == verdict).count()
    }
    pub fn passed(&self) -> bool {
        self.count(Verdict::Failed) == 0
    }

    /// The skipped cases grouped by their reason, most frequent first.
    pub fn skip_reasons(&self) -> Vec<(String, usize)> {
        let mut reasons: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for result in self.results.iter().filter(|r| r.verdict == Verdict::Skipped) {
            *reasons.entry(result.skipped_because.as_deref().unwrap_or("no reason given")).or_default() += 1;
        }
        let mut reasons: Vec<(String, usize)> = reasons.into_iter().map(|(r, n)| (r.to_owned(), n)).collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        reasons
    }
}

/// Runs `cases`, printing one line per case to `progress` as it finishes.
pub async fn run(session: Arc<Session>, cases: Vec<Case>, caps: &Capabilities, progress: &mut dyn Write) -> Run {
    let started = Instant::now();
    let total = cases.len();
    let mut results = Vec::with_capacity(total);
    for (i, case) in cases.into_iter().enumerate() {
        let _ = write!(progress, "[{:>3}/{total}] {:<16} {} … ", i + 1, case.id, case.title);
        let _ = progress.flush();
        let result = run_case(&session, &case, caps).await;
        let mark = match result.verdict {
            Verdict::Passed => format!("ok ({} ms)", result.duration.as_millis()),
            Verdict::Failed => format!("FAILED ({} ms)", result.duration.as_millis()),
            Verdict::Skipped => format!("skipped: {}", result.skipped_because.as_deref().unwrap_or_default()),
        };
        let _ = writeln!(progress, "{mark}");
        for note in &result.notes {
            let _ = writeln!(progress, "          {note}");
        }
        if let Some(failure) = &result.failure {
            let _ = writeln!(progress, "          expected: {}", failure.expected);
            let _ = writeln!(progress, "          actual:   {}", failure.actual);
        }
        results.push(result);
    }
    Run {
        approach: session.approach,
        target: session.target.clone(),
        seed: session.seed,
        results,
        duration: started.elapsed(),
        scope: Scope::default(),
    }
}

async fn run_case(session: &Arc<Session>, case: &Case, caps: &Capabilities) -> CaseResult {
    let mut result = CaseResult {
        id: case.id,
        area: case.area,
        title: case.title,
        requirement: case.requirement,
        rules: case.rules,
        verdict: Verdict::Passed,
        duration: Duration::ZERO,
        notes: Vec::new(),
        skipped_because: None,
        failure: None,
    };
    if let Some(reason) = caps.lacks(case.needs) {
        result.verdict = Verdict::Skipped;
        result.skipped_because = Some(reason);
        return result;
    }
    session.begin_case();
    let started = Instant::now();
    // Each case runs as its own task: a panic in one is that case's failure, not the run's end.
    let task = tokio::spawn((case.run)(session.clone()));
    let outcome = match tokio::time::timeout(CASE_TIMEOUT, task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(join)) => Err(Failure::new("the case to run to its end", format!("it panicked: {join}"))),
        Err(_) => Err(Failure::new(format!("the case to finish within {} s", CASE_TIMEOUT.as_secs()), "it did not")),
    };
    result.duration = started.elapsed();
    result.notes = session.case_notes();
    if let Err(Failure { skipped: Some(reason), .. }) = outcome {
        result.verdict = Verdict::Skipped;
        result.skipped_because = Some(reason);
    } else if let Err(failure) = outcome {
        result.verdict = Verdict::Failed;
        let log = session.case_log();
        let exchanges = relevant(&log, &failure.exchanges);
        result.failure = Some(FailureReport {
            expected: failure.expected,
            actual: failure.actual,
            reproduction: crate::report::repro::script(session, case.id, &exchanges, log.len()),
        });
    }
    result
}

/// The exchanges a reproduction replays: the case's requests up to the one that failed, at
/// most the last six.
fn relevant(log: &[Arc<Exchange>], failed: &[Arc<Exchange>]) -> Vec<Arc<Exchange>> {
    let end = failed.last().and_then(|f| log.iter().rposition(|e| Arc::ptr_eq(e, f))).map_or(log.len(), |i| i + 1);
    let start = end.saturating_sub(6);
    log[start..end].to_vec()
}
