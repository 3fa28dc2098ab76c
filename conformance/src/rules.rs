//! The contract's rules as data. Every normative statement of `docs/contract.md` (and of the ops
//! API in `docs/ops-api.md`) carries a stable id, written `[R-AREA-n]` after the statement;
//! every case names the rules it checks ([`crate::case::Case::rules`]). The suite's own tests
//! read the documents and fail when a rule has no case (unless [`UNCHECKED`] says why), when a
//! case names no rule, or names one the documents do not define; `docs/conformance.md` shows
//! the traceability table [`traceability`] renders.

use std::collections::BTreeMap;

/// The documents the rules are defined in, relative to the repository root.
pub const SOURCES: [&str; 2] = ["docs/contract.md", "docs/ops-api.md"];

/// Rules no case checks yet, and why: each is a gap in the suite, shown in the traceability
/// table, not a rule a target may ignore.
pub const UNCHECKED: &[(&str, &str)] = &[
    (
        "R-CVC-6",
        "needs a target whose card source can be made to fail (a harness capability the suite does not define yet)",
    ),
    ("R-HDR-6", "needs a target that answers 503 (a failing card source or database)"),
    ("R-STANDIN-1", "needs a target whose card source can be made to miss the deadline or fail"),
    ("R-COUNT-7", "needs a run that waits out the target's lockout window"),
    ("R-NOTIFY-3", "needs a delivery held past an activation code's expiry (a harness capability)"),
    ("R-INGEST-4", "no case sends a plaintext PAN in a processor event yet"),
];

/// One rule as a document defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    /// The document it is defined in.
    pub source: &'static str,
    /// The heading of the section it is defined under.
    pub section: String,
}

/// The rules `text` (the document `source`) defines, in order: each `[R-…]` marker, with the
/// section heading above it.
pub fn defined_in(source: &'static str, text: &str) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut section = String::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if let Some(heading) = line.strip_prefix("## ").or_else(|| line.strip_prefix("### ")) {
            section = heading.trim().to_owned();
        }
        let mut rest = line;
        while let Some(start) = rest.find("[R-") {
            let after = &rest[start + 1..];
            let Some(end) = after.find(']') else { break };
            let id = &after[..end];
            if is_rule_id(id) {
                rules.push(Rule { id: id.to_owned(), source, section: section.clone() });
            }
            rest = &after[end..];
        }
    }
    rules
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
    let mut out = format!(
        "{} rules; {checked} checked by at least one case, {} not yet (the reason is given).\n\n\
         | Rule | Defined in | Checked by |\n|---|---|---|\n",
        rules.len(),
        rules.len() - checked
    );
    for rule in rules {
        let by = match cases.get(rule.id.as_str()) {
            Some(ids) => ids.iter().map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", "),
            None => format!("— not yet: {}", unchecked.get(rule.id.as_str()).copied().unwrap_or("no case")),
        };
        let file = rule.source.trim_start_matches("docs/");
        out.push_str(&format!("| `{}` | {file} — {} | {by} |\n", rule.id, rule.section.replace('|', "\\|")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_under_their_section_and_code_blocks_are_skipped() {
        let text =
            "## 1. A\n\nA rule. [R-A-1] And [R-A-2].\n```\n[R-A-9]\n```\n### 1.1 B\n- x [R-B-10] [R-x-1] [R-B-01]\n";
        let rules = defined_in("docs/x.md", text);
        let ids: Vec<(&str, &str)> = rules.iter().map(|r| (r.id.as_str(), r.section.as_str())).collect();
        assert_eq!(ids, [("R-A-1", "1. A"), ("R-A-2", "1. A"), ("R-B-10", "1.1 B")]);
    }
}
