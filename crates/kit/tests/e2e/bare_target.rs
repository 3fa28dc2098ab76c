//! The suite as a third party runs it: the `tmp-conformance` binary pointed at an adapter with a
//! profile and the TMP secret only — no mock, no harness. Every case that needs only the Issuer
//! API runs (and passes against the kit's adapter); every other case is skipped with its need
//! named.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;
use tmp_conformance::case::{Approach, Needs};
use tmp_kit::{KitOptions, TestKit};

use crate::reports::{conformance_bin_dir, profile_yaml};

#[tokio::test]
async fn a_bare_target_runs_the_issuer_api_cases_and_skips_the_rest_naming_the_need() {
    let kit = Arc::new(TestKit::start(&KitOptions::new(tmp_adapter::config::Approach::External)).await.expect("kit"));
    // The fixture cards go in as the kit's check loads them; the session is not used further.
    tmp_kit::harness::spawned_session(&kit, &kit.adapter_url, Approach::External, 0).await.expect("fixtures");
    let dir = tempfile::tempdir().expect("dir");
    let profile = dir.path().join("profile.yaml");
    std::fs::write(&profile, profile_yaml(&kit.profile)).expect("profile");
    let report = dir.path().join("report.json");
    let secret = kit.secrets.tmp.as_ref().expect("secret").to_whsec_string();
    let bin_dir = conformance_bin_dir();
    let binary = bin_dir.path().join("tmp-conformance");
    let target = kit.adapter_url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(binary)
            .args(["run", "--target", &target, "--approach", "external"])
            .arg("--profile")
            .arg(&profile)
            .arg("--json")
            .arg(&report)
            .env("TMP_CONFORMANCE_SECRET", &secret)
            .env_remove("TMP_CONFORMANCE_PROCESSOR_SECRET")
            .env_remove("TMP_CONFORMANCE_ISSUER_SECRET")
            .output()
            .expect("tmp-conformance runs")
    })
    .await
    .expect("run");
    kit.stop().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));

    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).expect("report")).expect("json");
    let needs: BTreeMap<&str, Needs> =
        tmp_conformance::catalogue::select(Approach::External, None).iter().map(|c| (c.id, c.needs)).collect();
    let cases = report["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), needs.len(), "every external case is reported");
    let mut ran = 0;
    for case in cases {
        let id = case["id"].as_str().expect("id");
        let verdict = case["verdict"].as_str().expect("verdict");
        match needs[id] {
            Needs::IssuerApi => {
                assert_eq!(verdict, "passed", "{id}: {case}");
                ran += 1;
            }
            need => {
                assert_eq!(verdict, "skipped", "{id}: {case}");
                let reason = case["skipped_because"].as_str().expect("a reason");
                let named = match need.capability() {
                    Some(capability) => reason.contains(&format!("`{}`", capability.as_str())),
                    None => reason.contains("mock-tmp"),
                };
                assert!(named, "{id} ({}): {reason}", need.as_str());
            }
        }
    }
    assert!(ran >= 60, "{ran} Issuer API cases ran");
    assert!(stdout.trim_end().ends_with("0 failed"), "{stdout}");
}
