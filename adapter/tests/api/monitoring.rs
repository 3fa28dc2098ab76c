//! The monitoring artefacts in `config/monitoring`: the Prometheus rules pass `promtool check
//! rules` and their unit tests (`promtool test rules`), every alert is unit-tested and has a
//! runbook entry in docs/operations.md, and the rules and the Grafana dashboard use only
//! metrics the adapter exports — while the dashboard shows every one of them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tmp_adapter::metrics::Metrics;

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/monitoring")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const RULES: &str = "tmp-adapter.rules.yml";
const RULE_TESTS: &str = "tmp-adapter.rules.test.yml";
const DASHBOARD: &str = "tmp-adapter.dashboard.json";

/// Every `tmp_adapter_…` metric name a text mentions (recorded series, `tmp_adapter:…`, are
/// not metrics the adapter exports and do not match).
fn metrics_named_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("tmp_adapter_") {
        let name: String =
            rest[at..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// The exported family a name used in a query belongs to: a histogram is queried through its
/// `_bucket`, `_sum` and `_count` series.
fn family<'a>(name: &str, exported: &'a [String]) -> Option<&'a String> {
    let base = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| name.strip_suffix(suffix));
    exported.iter().find(|family| *family == name || Some(family.as_str()) == base)
}

/// The dashboard's PromQL expressions.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let panels = dashboard["panels"].as_array().expect("panels");
    panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("every target has an expr").to_owned())
        .collect()
}

fn alert_names(rules: &str) -> Vec<String> {
    rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).map(str::to_owned).collect()
}

#[test]
fn rules_and_dashboard_use_only_exported_metrics_and_the_dashboard_shows_every_one() {
    let metrics = Metrics::new();
    let exported = metrics.family_names();
    assert!(exported.len() >= 20, "the adapter exports {} families", exported.len());
    let dashboard: Value = serde_json::from_str(&read(&monitoring().join(DASHBOARD))).expect("the dashboard is JSON");
    let queries = dashboard_queries(&dashboard).join("\n");
    let rules = read(&monitoring().join(RULES));
    for (what, text) in [("the rules", &rules), ("the dashboard", &queries)] {
        let unknown: Vec<String> =
            metrics_named_in(text).into_iter().filter(|name| family(name, exported).is_none()).collect();
        assert!(unknown.is_empty(), "{what} use metrics the adapter does not export: {unknown:?}");
    }
    let shown: BTreeSet<&String> = metrics_named_in(&queries).iter().filter_map(|n| family(n, exported)).collect();
    let missing: Vec<&String> = exported.iter().filter(|f| !shown.contains(f)).collect();
    assert!(missing.is_empty(), "the dashboard shows no panel for {missing:?}");
    // And the operations guide documents each one.
    let operations = read(&monitoring().join("../../docs/operations.md"));
    let undocumented: Vec<&String> = exported.iter().filter(|f| !operations.contains(&format!("`{f}`"))).collect();
    assert!(undocumented.is_empty(), "docs/operations.md does not list {undocumented:?}");
}

#[test]
fn the_dashboard_is_provisionable() {
    let dashboard: Value = serde_json::from_str(&read(&monitoring().join(DASHBOARD))).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "tmp-adapter", "a fixed uid: provisioning updates it in place");
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(variables, ["datasource", "job", "instance"]);
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert!(ids.insert(panel["id"].as_u64().expect("an id")), "panel id of {title:?} used twice");
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{title:?} has no position");
        if panel["type"] == "row" {
            continue;
        }
        // No data source uid of one Grafana: whoever imports it picks theirs.
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title:?}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title:?} queries nothing");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title:?}");
            let expr = target["expr"].as_str().expect("expr");
            assert!(expr.contains("$job") || expr.contains("$instance"), "{title:?} ignores the job: {expr}");
        }
    }
}

#[test]
fn every_alert_is_unit_tested_and_has_a_runbook_entry() {
    let rules = read(&monitoring().join(RULES));
    let tests = read(&monitoring().join(RULE_TESTS));
    let operations = read(&monitoring().join("../../docs/operations.md"));
    let alerts = alert_names(&rules);
    assert!(alerts.len() >= 10, "{} alerts", alerts.len());
    for alert in &alerts {
        // Fired with its labels at least once (an `exp_alerts: []` alone proves nothing).
        let fired = tests
            .split("alertname: ")
            .skip(1)
            .any(|t| t.starts_with(&format!("{alert}\n")) && t.contains("exp_labels"));
        assert!(fired, "{RULE_TESTS} never fires {alert}");
        let anchor = alert.to_lowercase();
        assert!(rules.contains(&format!("runbook: \"docs/operations.md#{anchor}\"")), "{alert}: no runbook annotation");
        assert!(
            operations.contains(&format!("\n#### {alert}\n")),
            "docs/operations.md has no runbook entry for {alert}"
        );
    }
}

/// `increase()` cannot see the first event of a series that did not exist before it: every
/// counter an alert watches for an increase is exported at 0, for each label value, from the start.
#[test]
fn the_counters_alerts_watch_exist_at_zero_before_the_first_event() {
    let rules = read(&monitoring().join("tmp-adapter.rules.yml"));
    let watched: BTreeSet<String> = rules
        .split("increase(")
        .skip(1)
        .map(|rest| rest.split(['[', '{']).next().unwrap_or_default().to_string())
        .collect();
    assert!(watched.len() >= 4, "{watched:?}");
    let rendered = Metrics::new().render();
    for name in &watched {
        let series: Vec<&str> = rendered.lines().filter(|l| l.starts_with(&format!("{name}{{"))).collect();
        let unlabelled = rendered.lines().any(|l| l == format!("{name} 0"));
        assert!(unlabelled || !series.is_empty(), "{name} is not exported before its first event");
        assert!(series.iter().all(|l| l.ends_with(" 0")), "{series:?}");
    }
    for destination in tmp_adapter::outbox::Destination::ALL {
        for family in ["outbox_dead_total", "outbox_held_total", "outbox_auth_failures_total"] {
            let line = format!("tmp_adapter_{family}{{destination=\"{}\"}} 0", destination.as_str());
            assert!(rendered.lines().any(|l| l == line), "{line} missing");
        }
    }
    assert!(rendered.lines().any(|l| l == "tmp_adapter_config_reloads_total{outcome=\"refused\"} 0"));
}

fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
        assert!(!ci, "CI needs promtool for the alert rules (.ci/run installs Debian's prometheus)");
        eprintln!("note: no promtool on PATH; the rules are not run through it");
        return None;
    }
    Some("promtool")
}

#[test]
fn the_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    for args in [["check", "rules", RULES], ["test", "rules", RULE_TESTS]] {
        let output = Command::new(promtool).args(args).current_dir(monitoring()).output().expect("promtool runs");
        assert!(
            output.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
