//! What a run leaves behind: the summary table with a score per API area and the last line
//! `N passed, N failed` (for a person), JUnit XML and JSON (for a CI), and a reproduction for
//! each failure.

pub mod json;
pub mod junit;
pub mod repro;

use std::collections::BTreeMap;
use std::io::Write;

use crate::case::Area;
use crate::runner::{Run, Verdict};

/// The summary table: per area, passed / run and a score; then the failures; then the last line.
pub fn summary(run: &Run, out: &mut dyn Write) -> std::io::Result<()> {
    let mut areas: BTreeMap<Area, (usize, usize, usize)> = BTreeMap::new();
    for result in &run.results {
        let entry = areas.entry(result.area).or_default();
        match result.verdict {
            Verdict::Passed => entry.0 += 1,
            Verdict::Failed => entry.1 += 1,
            Verdict::Skipped => entry.2 += 1,
        }
    }
    writeln!(out)?;
    writeln!(out, "Conformance of {} (approach {}, seed {})", run.target, run.approach.as_str(), run.seed)?;
    writeln!(out, "{:<15} {:>6} {:>6} {:>7} {:>7}", "area", "passed", "failed", "skipped", "score")?;
    writeln!(out, "{}", "-".repeat(45))?;
    for (area, (passed, failed, skipped)) in &areas {
        let ran = passed + failed;
        let score = if ran == 0 { "—".to_owned() } else { format!("{:.0}%", 100.0 * *passed as f64 / ran as f64) };
        writeln!(out, "{:<15} {passed:>6} {failed:>6} {skipped:>7} {score:>7}", area.as_str())?;
    }
    let failures: Vec<_> = run.results.iter().filter(|r| r.verdict == Verdict::Failed).collect();
    if !failures.is_empty() {
        writeln!(out)?;
        writeln!(out, "Failures:")?;
        for result in failures {
            let failure = result.failure.as_ref().expect("a failed case has its failure");
            writeln!(out)?;
            writeln!(out, "{} — {}", result.id, result.title)?;
            writeln!(out, "  requirement: {}", result.requirement)?;
            writeln!(out, "  rules:       {} (docs/contract.md)", result.rules.join(", "))?;
            writeln!(out, "  expected:    {}", failure.expected)?;
            writeln!(out, "  actual:      {}", failure.actual)?;
            writeln!(out, "  reproduction:")?;
            for line in failure.reproduction.lines() {
                writeln!(out, "    {line}")?;
            }
        }
    }
    writeln!(out)?;
    scope(run, out)?;
    writeln!(out, "{:.1} s", run.duration.as_secs_f64())?;
    writeln!(out, "{} passed, {} failed", run.count(Verdict::Passed), run.count(Verdict::Failed))
}

/// What the run covered of the catalogue, and why each case that did not run was left out.
fn scope(run: &Run, out: &mut dyn Write) -> std::io::Result<()> {
    let scope = run.scope;
    let skipped = run.count(Verdict::Skipped);
    let ran = run.results.len() - skipped;
    writeln!(
        out,
        "Ran {ran} of the catalogue's {} cases: {} are for the other approach, {} were not selected (--case), {skipped} skipped.",
        scope.catalogue,
        scope.catalogue.saturating_sub(scope.for_approach),
        scope.for_approach.saturating_sub(scope.selected),
    )?;
    for (reason, count) in run.skip_reasons() {
        writeln!(out, "  {count:>3} skipped: {reason}")?;
    }
    Ok(())
}
