//! What a run leaves behind: the summary tables with a score per section of the contract and
//! per API area and the last line `N passed, N failed` (for a person), JUnit XML and JSON (for
//! a CI), one self-contained HTML page (for a reviewer), and a reproduction for each failure.

pub mod html;
pub mod json;
pub mod junit;
pub mod repro;

use std::collections::BTreeMap;
use std::io::Write;

use crate::case::Area;
use crate::rules::SectionScore;
use crate::runner::{Run, Verdict};

/// The verdicts per API area, in the catalogue's order of areas.
pub fn area_scores(run: &Run) -> Vec<SectionScore> {
    let mut areas: BTreeMap<Area, SectionScore> = BTreeMap::new();
    for result in &run.results {
        areas.entry(result.area).or_insert_with(|| SectionScore::new(result.area.as_str())).count(result.verdict);
    }
    areas.into_values().collect()
}

fn scores_table(out: &mut dyn Write, title: &str, width: usize, scores: &[SectionScore]) -> std::io::Result<()> {
    writeln!(out, "{title:<width$} {:>6} {:>6} {:>7} {:>7}", "passed", "failed", "skipped", "score")?;
    writeln!(out, "{}", "-".repeat(width + 30))?;
    for score in scores {
        let percent = score.percent().map_or("—".to_owned(), |p| format!("{p:.0}%"));
        let name: String = score.section.chars().take(width).collect();
        writeln!(out, "{name:<width$} {:>6} {:>6} {:>7} {percent:>7}", score.passed, score.failed, score.skipped)?;
    }
    Ok(())
}

/// The summary tables: per section of the contract and per area, passed / run and a score;
/// then the failures; then the run's scope and the last line.
pub fn summary(run: &Run, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(out, "Conformance of {} (approach {}, seed {})", run.target, run.approach.as_str(), run.seed)?;
    scores_table(out, "contract section", 48, &crate::rules::section_scores(&run.results))?;
    writeln!(out)?;
    scores_table(out, "area", 15, &area_scores(run))?;
    let failures: Vec<_> = run.results.iter().filter(|r| r.verdict == Verdict::Failed).collect();
    if !failures.is_empty() {
        writeln!(out)?;
        writeln!(out, "Failures:")?;
        for result in failures {
            let failure = result.failure.as_ref().expect("a failed case has its failure");
            writeln!(out)?;
            writeln!(out, "{} — {}", result.id, result.title)?;
            writeln!(out, "  requirement: {}", result.requirement)?;
            for id in result.rules {
                let rule = crate::rules::find(id).map_or(String::new(), |r| format!(" ({}): {}", r.section, r.text));
                writeln!(out, "  rule:        {id}{rule}")?;
            }
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
