//! The contract's rules as data. Every normative statement of `docs/contract.md` (and of the ops
//! API in `docs/ops-api.md`) carries a stable id, written `[R-AREA-n]` after the statement;
//! every case names the rules it checks ([`crate::case::Case::rules`]). The suite's own tests
//! read the documents and fail when a rule has no case (unless [`UNCHECKED`] says why), when a
//! case names no rule, or names one the documents do not define; `docs/conformance.md` shows
//! the traceability table [`traceability`] renders.

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The documents the rules are defined in, relative to the repository root.
pub const SOURCES: [&str; 2] = ["docs/contract.md", "docs/ops-api.md"];

/// The documents themselves, built into the suite so a report can quote each rule and score
/// each section of the contract the binary was built from.
const EMBEDDED: [(&str, &str); 2] = [
    ("docs/contract.md", include_str!("../../docs/contract.md")),
    ("docs/ops-api.md", include_str!("../../docs/ops-api.md")),
];

/// Every rule the built-in documents define.
pub fn all() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| EMBEDDED.iter().flat_map(|(source, text)| defined_in(source, text)).collect())
}

/// A rule by id.
pub fn find(id: &str) -> Option<&'static Rule> {
    all().iter().find(|r| r.id == id)
}

/// Rules no case checks yet, and why: each is a gap in the suite, shown in the traceability
/// table, not a rule a target may ignore.
pub const UNCHECKED: &[(&str, &str)] = &[];

/// One rule as a document defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    /// The document it is defined in.
    pub source: &'static str,
    /// The heading of the section it is defined under (`5.2 Request signatures …`), prefixed
    /// `ops API` for the ops API's document.
    pub section: String,
    /// The statement: the paragraph, bullet or table row that carries the marker, without
    /// markers.
    pub text: String,
}

/// The rules `text` (the document `source`) defines, in order: each `[R-…]` marker, with the
/// section heading above it.
pub fn defined_in(source: &'static str, text: &str) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut section = String::new();
    let mut in_code = false;
    // The lines of the current paragraph, bullet or table row, and the markers met in it: a
    // rule's text is its whole block, so the rules are emitted when the block ends.
    let mut block: Vec<&str> = Vec::new();
    let mut pending: Vec<(String, String)> = Vec::new();
    let flush = |block: &mut Vec<&str>, pending: &mut Vec<(String, String)>, rules: &mut Vec<Rule>| {
        let text = strip_markers(&block.join(" "));
        for (id, section) in pending.drain(..) {
            rules.push(Rule { id, source, section, text: text.clone() });
        }
        block.clear();
    };
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            flush(&mut block, &mut pending, &mut rules);
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let trimmed = line.trim_start();
        let numbered =
            trimmed.split_once(". ").is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        let heading = line.strip_prefix("## ").or_else(|| line.strip_prefix("### "));
        if line.trim().is_empty()
            || trimmed.starts_with("- ")
            || trimmed.starts_with('|')
            || numbered
            || heading.is_some()
        {
            flush(&mut block, &mut pending, &mut rules);
        }
        if let Some(heading) = heading {
            section = strip_markers(heading).replace('`', "");
            if source != SOURCES[0] {
                section = format!("ops API {section}");
            }
        }
        if !line.trim().is_empty() {
            block.push(line.trim());
        }
        let mut rest = line;
        while let Some(start) = rest.find("[R-") {
            let after = &rest[start + 1..];
            let Some(end) = after.find(']') else { break };
            let id = &after[..end];
            if is_rule_id(id) {
                pending.push((id.to_owned(), section.clone()));
            }
            rest = &after[end..];
        }
    }
    flush(&mut block, &mut pending, &mut rules);
    rules
}

/// `text` without its `[R-…]` markers, table pipes and list dashes.
fn strip_markers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[R-") {
        out.push_str(&rest[..start]);
        match rest[start..].find(']') {
            Some(end) if is_rule_id(&rest[start + 1..start + end]) => rest = &rest[start + end + 1..],
            _ => {
                out.push_str("[R-");
                rest = &rest[start + 3..];
            }
        }
    }
    out.push_str(rest);
    let out = out.trim().trim_start_matches("- ").trim_matches('|').replace(" | ", " — ");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The score of one section of the contract in a run: the cases that check a rule of the
/// section, passed out of those that ran.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SectionScore {
    pub section: String,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl SectionScore {
    pub fn new(section: impl Into<String>) -> SectionScore {
        SectionScore { section: section.into(), passed: 0, failed: 0, skipped: 0 }
    }

    /// Counts one case's verdict.
    pub fn count(&mut self, verdict: crate::runner::Verdict) {
        use crate::runner::Verdict;
        match verdict {
            Verdict::Passed => self.passed += 1,
            Verdict::Failed => self.failed += 1,
            Verdict::Skipped => self.skipped += 1,
        }
    }

    /// Passed out of run, as a percentage; `None` when nothing ran.
    pub fn percent(&self) -> Option<f64> {
        let ran = self.passed + self.failed;
        (ran > 0).then(|| 100.0 * self.passed as f64 / ran as f64)
    }
}

/// Per section of the contract (in the documents' order), the verdicts of the cases that check
/// one of its rules; a case that checks rules of several sections counts in each.
pub fn section_scores(results: &[crate::runner::CaseResult]) -> Vec<SectionScore> {
    let mut order: Vec<&str> = Vec::new();
    for rule in all() {
        if !order.contains(&rule.section.as_str()) {
            order.push(&rule.section);
        }
    }
    let mut scores: BTreeMap<&str, SectionScore> = BTreeMap::new();
    for result in results {
        let mut sections: Vec<&str> =
            result.rules.iter().filter_map(|id| find(id)).map(|r| r.section.as_str()).collect();
        sections.sort_unstable();
        sections.dedup();
        for section in sections {
            scores.entry(section).or_insert_with(|| SectionScore::new(section)).count(result.verdict);
        }
    }
    order.into_iter().filter_map(|section| scores.remove(section)).collect()
}

/// `R-<AREA>-<n>`: capitals for the area, a number without leading zeros.
pub fn is_rule_id(id: &str) -> bool {
    let Some(body) = id.strip_prefix("R-") else { return false };
    let Some((area, n)) = body.rsplit_once('-') else { return false };
    !area.is_empty()
        && area.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && !n.is_empty()
        && !n.starts_with('0')
        && n.chars().all(|c| c.is_ascii_digit())
}

/// Rule id → the cases that name it, in catalogue order.
pub fn cases_by_rule() -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut map: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
    for case in crate::catalogue::all() {
        for rule in case.rules {
            map.entry(rule).or_default().push(case.id);
        }
    }
    map
}

/// The traceability table of docs/conformance.md: per rule, where it is defined and the cases
/// that check it.
pub fn traceability(rules: &[Rule]) -> String {
    let cases = cases_by_rule();
    let unchecked: BTreeMap<&str, &str> = UNCHECKED.iter().copied().collect();
    let checked = rules.iter().filter(|r| cases.contains_key(r.id.as_str())).count();
    let gaps = match rules.len() - checked {
        0 => String::new(),
        n => format!(", {n} not yet (the reason is given)"),
    };
    let mut out = format!(
        "{} rules, {checked} checked by at least one case{gaps}.\n\n| Rule | Defined in | Checked by |\n|---|---|---|\n",
        rules.len()
    );
    for rule in rules {
        let by = match cases.get(rule.id.as_str()) {
            Some(ids) => ids.iter().map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", "),
            None => format!("— not yet: {}", unchecked.get(rule.id.as_str()).copied().unwrap_or("no case")),
        };
        let file = rule.source.trim_start_matches("docs/");
        let section = rule.section.trim_start_matches("ops API ").replace('|', "\\|");
        out.push_str(&format!("| `{}` | {file} — {section} | {by} |\n", rule.id));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_under_their_section_and_code_blocks_are_skipped() {
        let text = "## 1. A\n\nA rule. [R-A-1] And [R-A-2].\n```\n[R-A-9]\n```\n### 1.1 B\n- x\n  continued [R-B-10] [R-x-1] [R-B-01]\n  and the end.\n| a | b [R-B-2] |\n";
        let rules = defined_in("docs/contract.md", text);
        let ids: Vec<(&str, &str, &str)> =
            rules.iter().map(|r| (r.id.as_str(), r.section.as_str(), r.text.as_str())).collect();
        assert_eq!(
            ids,
            [
                ("R-A-1", "1. A", "A rule. And ."),
                ("R-A-2", "1. A", "A rule. And ."),
                ("R-B-10", "1.1 B", "x continued [R-x-1] [R-B-01] and the end."),
                ("R-B-2", "1.1 B", "a — b"),
            ]
        );
    }

    #[test]
    fn the_built_in_documents_define_the_rules_the_cases_name() {
        assert!(all().len() >= 100);
        for case in crate::catalogue::all() {
            for rule in case.rules {
                let found = find(rule).unwrap_or_else(|| panic!("{}: {rule}", case.id));
                assert!(!found.text.is_empty() && !found.text.contains("[R-"), "{rule}: {}", found.text);
            }
        }
        assert_eq!(find("R-SIG-4").map(|r| r.section.as_str()), Some("5.2 Request signatures (Standard Webhooks)"));
        // A rule's text is its whole bullet, not the line its marker is on.
        let count4 = find("R-COUNT-4").expect("R-COUNT-4");
        assert!(count4.text.ends_with("declined with `CVC_ATTEMPTS_EXCEEDED`."), "{}", count4.text);
    }
}
