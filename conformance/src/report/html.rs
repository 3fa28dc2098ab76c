//! One self-contained HTML page a certification reviewer reads: the run, a score per section
//! of the contract and per API area, each failure with its rules (quoted from the contract),
//! what was expected, the answer and the reproduction script, then every case. No scripts, no
//! external resources: it opens from a file or an e-mail attachment as it is.

use std::fmt::Write as _;

use crate::rules::{SectionScore, find, section_scores};
use crate::runner::{Run, Verdict};

pub fn render(run: &Run) -> String {
    let mut page = String::with_capacity(64 * 1024);
    let passed = run.count(Verdict::Passed);
    let failed = run.count(Verdict::Failed);
    let skipped = run.count(Verdict::Skipped);
    let verdict = if failed == 0 { "conforms on every case that ran" } else { "does not conform" };
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Conformance of {target} ({approach})</title><style>{STYLE}</style></head><body>\n\
         <h1>Conformance of <code>{target}</code></h1>\n\
         <p class=\"{class}\" id=\"verdict\"><strong>{passed} passed, {failed} failed, {skipped} skipped</strong> — {verdict}.</p>\n\
         <p>Approach <code>{approach}</code>, seed {seed}, {duration:.1} s, contract v1 as built into tmp-conformance {version}. \
         Ran {ran} of the catalogue's {catalogue} cases: {other} are for the other approach, {unselected} were not selected.</p>\n",
        target = esc(&run.target),
        approach = run.approach.as_str(),
        class = if failed == 0 { "ok" } else { "bad" },
        seed = run.seed,
        duration = run.duration.as_secs_f64(),
        version = env!("CARGO_PKG_VERSION"),
        ran = passed + failed,
        catalogue = run.scope.catalogue,
        other = run.scope.catalogue.saturating_sub(run.scope.for_approach),
        unselected = run.scope.for_approach.saturating_sub(run.scope.selected),
    );

    page.push_str("<h2 id=\"sections\">Score by contract section</h2>\n");
    scores_table(&mut page, "Section", &section_scores(&run.results));
    page.push_str("<h2 id=\"areas\">Score by API area</h2>\n");
    let areas = crate::report::area_scores(run);
    scores_table(&mut page, "Area", &areas);

    let failures: Vec<_> = run.results.iter().filter(|r| r.verdict == Verdict::Failed).collect();
    if !failures.is_empty() {
        page.push_str("<h2 id=\"failures\">Failures</h2>\n");
    }
    for result in failures {
        let failure = result.failure.as_ref().expect("a failed case has its failure");
        let _ = write!(
            page,
            "<section class=\"failure\" id=\"{id}\"><h3>{id} — {title}</h3>\n<p>{requirement}</p>\n<ul class=\"rules\">",
            id = result.id,
            title = esc(result.title),
            requirement = esc(result.requirement)
        );
        for id in result.rules {
            match find(id) {
                Some(rule) => {
                    let _ = write!(
                        page,
                        "<li><code>{id}</code> ({section}): {text}</li>",
                        section = esc(&rule.section),
                        text = esc(&rule.text)
                    );
                }
                None => {
                    let _ = write!(page, "<li><code>{id}</code></li>");
                }
            }
        }
        let _ = write!(
            page,
            "</ul>\n<dl><dt>Expected</dt><dd>{}</dd><dt>Answer</dt><dd><pre>{}</pre></dd></dl>\n\
             <details open><summary>Reproduction (bash; secrets are read from the environment, the profile's card data from the profile)</summary><pre>{}</pre></details></section>\n",
            esc(&failure.expected),
            esc(&failure.actual),
            esc(&failure.reproduction)
        );
    }

    page.push_str("<h2 id=\"cases\">Every case</h2>\n<table><thead><tr><th>Case</th><th>Verdict</th><th>Rules</th><th>Title</th><th>Time</th></tr></thead><tbody>\n");
    for result in &run.results {
        let (class, word) = match result.verdict {
            Verdict::Passed => ("ok", "passed".to_owned()),
            Verdict::Failed => ("bad", "failed".to_owned()),
            Verdict::Skipped => {
                ("skip", format!("skipped: {}", esc(result.skipped_because.as_deref().unwrap_or_default())))
            }
        };
        let _ = writeln!(
            page,
            "<tr class=\"{class}\"><td><code>{}</code></td><td>{word}</td><td>{}</td><td>{}</td><td>{} ms</td></tr>",
            result.id,
            result.rules.join(", "),
            esc(result.title),
            result.duration.as_millis()
        );
    }
    page.push_str("</tbody></table>\n</body></html>\n");
    page
}

fn scores_table(page: &mut String, what: &str, scores: &[SectionScore]) {
    let _ = writeln!(
        page,
        "<table class=\"scores\"><thead><tr><th>{what}</th><th>Passed</th><th>Failed</th><th>Skipped</th><th>Score</th></tr></thead><tbody>"
    );
    for score in scores {
        let (text, width, class) = match score.percent() {
            Some(p) => (format!("{p:.0}%"), p, if score.failed == 0 { "ok" } else { "bad" }),
            None => ("—".to_owned(), 0.0, "skip"),
        };
        let _ = writeln!(
            page,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"score\"><span class=\"bar\" style=\"width:{width:.0}px\"></span> {text}</td></tr>",
            esc(&score.section),
            score.passed,
            score.failed,
            score.skipped
        );
    }
    page.push_str("</tbody></table>\n");
}

use super::junit::escape as esc;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:70em;color:#1d1d1f;line-height:1.45}\
code,pre{font-family:ui-monospace,monospace;font-size:.92em}pre{white-space:pre-wrap;background:#f5f5f7;padding:.6em;border-radius:4px}\
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}\
tr.bad td:first-child{border-left:4px solid #c62828}tr.ok td:first-child{border-left:4px solid #2e7d32}tr.skip{color:#666}\
p.ok{color:#2e7d32}p.bad{color:#c62828}.bar{display:inline-block;height:.7em;background:#2e7d32;max-width:100px}\
tr.bad .bar{background:#c62828}section.failure{border:1px solid #e0b4b4;border-radius:6px;padding:0 1em 1em;margin:1em 0}\
dt{font-weight:600}";

#[cfg(test)]
mod tests {
    #[test]
    fn markup_in_answers_is_escaped() {
        assert_eq!(
            super::esc("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
    }
}
