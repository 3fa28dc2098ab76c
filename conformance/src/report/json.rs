//! The JSON report: the run and every case's result, failures with their reproduction.

use serde_json::json;

use crate::runner::{Run, Verdict};

pub fn render(run: &Run) -> String {
    let report = json!({
        "target": run.target,
        "approach": run.approach,
        "seed": run.seed,
        "durationMs": run.duration.as_millis() as u64,
        "passed": run.count(Verdict::Passed),
        "failed": run.count(Verdict::Failed),
        "skipped": run.count(Verdict::Skipped),
        "scope": run.scope,
        "sections": crate::rules::section_scores(&run.results),
        "areas": crate::report::area_scores(run),
        "cases": run.results,
    });
    serde_json::to_string_pretty(&report).expect("the report serialises")
}
