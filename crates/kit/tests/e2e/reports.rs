//! The reports a CI and a reviewer read: valid JUnit XML, JSON, and a reproduction that shows
//! the same failure when run by hand.

use std::process::Command;

use tmp_conformance::runner::Verdict;

use crate::proxy::Variant;
use crate::variants::{failed, run_against};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junit_json_and_the_reproduction_of_a_failure() {
    let checked = run_against(Variant::ApprovesBlockedCards, None).await;
    let run = &checked.run;
    assert_eq!(failed(run).into_iter().collect::<Vec<_>>(), ["ISS-VERIFY-003"]);

    // JUnit: well-formed XML in the shape CI systems read, counts that add up.
    let xml = tmp_conformance::report::junit::render(run);
    let doc = roxmltree::Document::parse(&xml).expect("the JUnit report is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let attr = |node: roxmltree::Node<'_, '_>, name: &str| -> usize {
        node.attribute(name).unwrap_or_else(|| panic!("{name} missing")).parse().expect("a count")
    };
    assert_eq!(attr(root, "tests"), run.results.len());
    assert_eq!(attr(root, "failures"), 1);
    assert_eq!(attr(root, "skipped"), run.count(Verdict::Skipped));
    let mut cases = 0;
    for suite in root.children().filter(|n| n.is_element()) {
        assert_eq!(suite.tag_name().name(), "testsuite");
        let testcases: Vec<_> = suite.children().filter(|n| n.is_element() && !n.has_tag_name("properties")).collect();
        assert_eq!(attr(suite, "tests"), testcases.len());
        let failures = testcases.iter().filter(|c| c.children().any(|n| n.has_tag_name("failure"))).count();
        assert_eq!(attr(suite, "failures"), failures);
        for case in testcases {
            assert_eq!(case.tag_name().name(), "testcase");
            assert!(case.attribute("name").is_some() && case.attribute("classname").is_some());
            case.attribute("time").expect("time").parse::<f64>().expect("a number of seconds");
            cases += 1;
        }
    }
    assert_eq!(cases, run.results.len());
    let failure = doc.descendants().find(|n| n.has_tag_name("failure")).expect("the failure");
    assert!(failure.attribute("message").is_some_and(|m| m.contains("DECLINED")));
    assert!(failure.text().is_some_and(|t| t.contains("curl")));

    // JSON: the same counts.
    let json: serde_json::Value = serde_json::from_str(&tmp_conformance::report::json::render(run)).expect("JSON");
    assert_eq!(json["failed"], 1);
    assert_eq!(json["cases"].as_array().map(Vec::len), Some(run.results.len()));

    assert!(json["sections"].as_array().is_some_and(|s| s.len() >= 15), "{}", json["sections"]);

    // HTML: one self-contained page (no scripts, nothing loaded from elsewhere) that a real
    // browser renders with the score per contract section and the failure with its rule, the
    // answer and the reproduction.
    let html = tmp_conformance::report::html::render(run);
    assert!(!html.contains("<script") && !html.contains(" src=") && !html.contains(" href="), "self-contained");
    let reports = tempfile::tempdir().expect("dir");
    let page = reports.path().join("conformance.html");
    std::fs::write(&page, &html).expect("write the page");
    if let Some(rendered) = crate::browser::render(&page) {
        for shown in [
            "Score by contract section",
            "7.2 Order of checks (card verification)",
            "5.2 Request signatures (Standard Webhooks)",
            "ISS-VERIFY-003 — Blocked card is declined",
            "R-POLICY-5",
            "All of these decline",
            "\"decision\":\"APPROVED\"",
            "curl -sS -i -X POST",
        ] {
            assert!(rendered.text.contains(shown), "the rendered page shows {shown:?}");
        }
        assert!(rendered.screenshot_bytes > 10_000, "a screenshot of the page: {} bytes", rendered.screenshot_bytes);
    }

    // The reproduction names no secret and no card number.
    let result = run.results.iter().find(|r| r.id == "ISS-VERIFY-003").expect("the case");
    let script = result.failure.as_ref().expect("its failure").reproduction.clone();
    let profile = &checked.kit.profile;
    for card in profile.cards.values() {
        assert!(!script.contains(card.pan.expose()), "a PAN in the reproduction:\n{script}");
    }
    let secret = checked.kit.secrets.tmp.as_ref().expect("secret").to_whsec_string();
    assert!(!script.contains(&secret) && !script.contains(secret.trim_start_matches("whsec_")));

    // Run by hand (bash, curl, tmp-conformance on PATH, the secret in the environment and
    // the cards in a profile file), it shows the same failure: the blocked card approved.
    let dir = tempfile::tempdir().expect("dir");
    let profile_path = dir.path().join("conformance-profile.yaml");
    std::fs::write(&profile_path, profile.to_yaml()).expect("profile");
    let script = script.replace("PROFILE='conformance-profile.yaml'", &format!("PROFILE='{}'", profile_path.display()));
    let bin_dir = conformance_bin_dir();
    let path = format!("{}:{}", bin_dir.path().display(), std::env::var("PATH").unwrap_or_default());
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("PATH", path)
        .env("TMP_CONFORMANCE_SECRET", &secret)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    checked.stop().await;
    assert!(output.status.success(), "the script failed:\n{script}\n{stdout}\n{stderr}");
    assert!(stdout.starts_with("HTTP/1.1 200"), "{stdout}");
    assert!(stdout.contains(r#""decision":"APPROVED""#) && stdout.contains(r#""cardStatus":"BLOCKED""#), "{stdout}");
}

/// A directory holding a `tmp-conformance` that runs the suite's command line of this build
/// (`tmp-kit conformance …`, the binary cargo built for this test), to put on `PATH`.
pub(crate) fn conformance_bin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let script = dir.path().join("tmp-conformance");
    let body = format!("#!/bin/sh\nexec '{}' conformance \"$@\"\n", env!("CARGO_BIN_EXE_tmp-kit"));
    std::fs::write(&script, body).expect("write the wrapper");
    let mut permissions = std::fs::metadata(&script).expect("metadata").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&script, permissions).expect("chmod");
    dir
}
