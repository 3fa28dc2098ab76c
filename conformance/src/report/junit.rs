//! JUnit XML, as CI systems read it: one `<testsuite>` per API area inside `<testsuites>`, one
//! `<testcase>` per case, `<failure>` with the rules, the expected and actual result and the
//! reproduction, `<skipped>` with what the case needs; the score per contract section as the
//! properties of a last, empty suite.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::case::Area;
use crate::runner::{CaseResult, Run, Verdict};

pub fn render(run: &Run) -> String {
    let mut by_area: BTreeMap<Area, Vec<&CaseResult>> = BTreeMap::new();
    for result in &run.results {
        by_area.entry(result.area).or_default().push(result);
    }
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"tmp-conformance ({})\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\">",
        run.approach.as_str(),
        run.results.len(),
        run.count(Verdict::Failed),
        run.count(Verdict::Skipped),
        run.duration.as_secs_f64()
    );
    for (area, results) in by_area {
        let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
        let time: f64 = results.iter().map(|r| r.duration.as_secs_f64()).sum();
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}.{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{time:.3}\">",
            run.approach.as_str(),
            area.as_str(),
            results.len(),
            count(Verdict::Failed),
            count(Verdict::Skipped)
        );
        for result in results {
            let _ = write!(
                xml,
                "    <testcase classname=\"{}.{}\" name=\"{} {}\" time=\"{:.3}\"",
                run.approach.as_str(),
                area.as_str(),
                result.id,
                escape(result.title),
                result.duration.as_secs_f64()
            );
            match (&result.verdict, &result.failure) {
                (Verdict::Failed, Some(failure)) => {
                    let _ = writeln!(xml, ">");
                    let _ = writeln!(
                        xml,
                        "      <failure message=\"{}\" type=\"ConformanceFailure\">{}</failure>",
                        escape(&format!("expected {}", failure.expected)),
                        escape(&format!(
                            "requirement: {}\nrules: {}\nexpected: {}\nactual: {}\n\nreproduction:\n{}",
                            result.requirement,
                            result.rules.join(", "),
                            failure.expected,
                            failure.actual,
                            failure.reproduction
                        ))
                    );
                    let _ = writeln!(xml, "    </testcase>");
                }
                (Verdict::Skipped, _) => {
                    let _ = writeln!(xml, ">");
                    let reason = result.skipped_because.as_deref().unwrap_or_default();
                    let _ = writeln!(xml, "      <skipped message=\"{}\"/>", escape(reason));
                    let _ = writeln!(xml, "    </testcase>");
                }
                _ if !result.notes.is_empty() => {
                    let _ = writeln!(xml, ">");
                    let _ = writeln!(xml, "      <system-out>{}</system-out>", escape(&result.notes.join("\n")));
                    let _ = writeln!(xml, "    </testcase>");
                }
                _ => {
                    let _ = writeln!(xml, "/>");
                }
            }
        }
        let _ = writeln!(xml, "  </testsuite>");
    }
    // The score per section of the contract, as properties of a suite of its own (JUnit has
    // no place for scores; CI systems show properties).
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{}.contract-sections\" tests=\"0\" failures=\"0\" errors=\"0\" skipped=\"0\" time=\"0\">",
        run.approach.as_str()
    );
    let _ = writeln!(xml, "    <properties>");
    for score in crate::rules::section_scores(&run.results) {
        let percent = score.percent().map_or("—".to_owned(), |p| format!("{p:.0}%"));
        let _ = writeln!(
            xml,
            "      <property name=\"score: {}\" value=\"{percent} ({} passed, {} failed, {} skipped)\"/>",
            escape(&score.section),
            score.passed,
            score.failed,
            score.skipped
        );
    }
    let _ = writeln!(xml, "    </properties>");
    let _ = writeln!(xml, "  </testsuite>");
    xml.push_str("</testsuites>\n");
    xml
}

/// XML (and HTML) text and attribute escaping; characters XML 1.0 cannot hold are dropped.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_and_control_characters_are_escaped() {
        assert_eq!(super::escape("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
    }
}
