//! Traceability: every rule the documents define has a case (or a stated reason it has none
//! yet), every case names a rule, and every rule a case names exists. `docs/conformance.md`
//! shows the table; `UPDATE_CONFORMANCE_DOC=1` rewrites it.

use std::collections::BTreeSet;

use tmp_conformance::rules::{Rule, SOURCES, UNCHECKED, cases_by_rule, defined_in, traceability};

fn repository_rules() -> Vec<Rule> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    SOURCES
        .iter()
        .flat_map(|source| {
            let text = std::fs::read_to_string(root.join(source)).unwrap_or_else(|e| panic!("{source}: {e}"));
            defined_in(source, &text)
        })
        .collect()
}

#[test]
fn every_rule_has_a_case_and_every_case_names_a_rule() {
    let rules = repository_rules();
    assert!(rules.len() >= 100, "{} rules", rules.len());
    let mut ids = BTreeSet::new();
    for rule in &rules {
        assert!(ids.insert(rule.id.as_str()), "{} is defined twice", rule.id);
    }
    let cases = cases_by_rule();
    let unchecked: BTreeSet<&str> = UNCHECKED.iter().map(|(id, _)| *id).collect();
    let without: Vec<&str> =
        rules.iter().map(|r| r.id.as_str()).filter(|id| !cases.contains_key(id) && !unchecked.contains(id)).collect();
    assert!(without.is_empty(), "rules without a case (write one, or say why in rules::UNCHECKED): {without:?}");
    for id in &unchecked {
        assert!(ids.contains(id), "UNCHECKED names {id}, which no document defines");
        assert!(!cases.contains_key(id), "{id} has a case now: take it out of UNCHECKED");
    }
    for case in tmp_conformance::catalogue::all() {
        assert!(!case.rules.is_empty(), "{} names no rule", case.id);
        for rule in case.rules {
            assert!(ids.contains(rule), "{} names {rule}, which no document defines", case.id);
        }
    }
}

#[test]
fn the_documented_traceability_table_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/conformance.md");
    let doc = std::fs::read_to_string(&path).expect("docs/conformance.md");
    let (start, end) =
        ("<!-- traceability:start (generated from the [R-…] markers and the cases) -->\n", "<!-- traceability:end -->");
    let from = doc.find(start).expect("the traceability start marker") + start.len();
    let to = doc.find(end).expect("the traceability end marker");
    let table = traceability(&repository_rules());
    if std::env::var_os("UPDATE_CONFORMANCE_DOC").is_some() {
        std::fs::write(&path, format!("{}{table}{}", &doc[..from], &doc[to..])).expect("rewrite");
        return;
    }
    assert_eq!(
        &doc[from..to],
        table,
        "docs/conformance.md's traceability table is stale: run with UPDATE_CONFORMANCE_DOC=1"
    );
}
