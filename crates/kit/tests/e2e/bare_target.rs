//! The suite as a third party runs it: the `tmp-conformance` binary pointed at an adapter with a
//! profile and the TMP secret only — no mock, no harness. Every case that needs only the Issuer
//! API runs (and passes against the kit's adapter); every other case is skipped with its need
//! named.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;
use tmp_conformance::case::{Approach, Needs};
use tmp_conformance::profile::Profile;
use tmp_kit::{KitOptions, TestKit};

use crate::reports::conformance_bin_dir;

#[tokio::test]
async fn a_bare_target_runs_the_issuer_api_cases_and_skips_the_rest_naming_the_need() {
    let kit = Arc::new(TestKit::start(&KitOptions::new(tmp_adapter::config::Approach::External)).await.expect("kit"));
    // The fixture cards go in as the kit's check loads them; the session is not used further.
    tmp_kit::harness::spawned_session(&kit, &kit.adapter_url, Approach::External, 0).await.expect("fixtures");
    let secret = kit.secrets.tmp.as_ref().expect("secret").to_whsec_string();
    let (stdout, report) =
        run_binary(&kit.profile, &["--target", &kit.adapter_url], &[("TMP_CONFORMANCE_SECRET", secret)]).await;
    kit.stop().await;

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

#[tokio::test]
async fn with_a_mock_what_the_profile_does_not_declare_is_skipped_naming_the_key_or_variable() {
    let kit = Arc::new(TestKit::start(&KitOptions::new(tmp_adapter::config::Approach::External)).await.expect("kit"));
    tmp_kit::harness::spawned_session(&kit, &kit.adapter_url, Approach::External, 0).await.expect("fixtures");
    // The kit's profile without its retry schedule; the issuer's TMP API secret is not given.
    let mut declared = kit.profile.clone();
    declared.forwarding.retry_schedule_ms = None;
    let secret = kit.secrets.tmp.as_ref().expect("secret").to_whsec_string();
    let processor = kit.secrets.processor.as_ref().expect("processor secret").to_whsec_string();
    let args = ["--target", &kit.adapter_url, "--mock", &kit.mock_url, "--case", "FWD-001,FWD-011,JRN-005,JRN-007"];
    let envs = [("TMP_CONFORMANCE_SECRET", secret), ("TMP_CONFORMANCE_PROCESSOR_SECRET", processor)];
    let (stdout, report) = run_binary(&declared, &args, &envs).await;
    kit.stop().await;

    let verdicts: BTreeMap<&str, (&str, &str)> = report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let reason = c["skipped_because"].as_str().unwrap_or_default();
            (c["id"].as_str().expect("id"), (c["verdict"].as_str().expect("verdict"), reason))
        })
        .collect();
    assert_eq!(verdicts["FWD-001"].0, "passed", "{stdout}");
    assert_eq!(verdicts["FWD-011"].0, "skipped", "{stdout}");
    assert!(verdicts["FWD-011"].1.contains("`forwarding.retry_schedule_ms`"), "{stdout}");
    for id in ["JRN-005", "JRN-007"] {
        assert_eq!(verdicts[id].0, "skipped", "{stdout}");
        assert!(verdicts[id].1.contains("set TMP_CONFORMANCE_ISSUER_SECRET"), "{id}: {stdout}");
    }
    // The closing summary: how much of the catalogue ran, and why the rest did not.
    let total = tmp_conformance::catalogue::all().len();
    let selected = tmp_conformance::catalogue::select(Approach::External, None).len();
    assert_eq!(report["scope"]["catalogue"], total);
    assert!(
        stdout.contains(&format!(
            "Ran 1 of the catalogue's {total} cases: {} are for the other approach, {} were not selected (--case), 3 skipped.",
            total - selected,
            selected - 4
        )),
        "{stdout}"
    );
    assert!(stdout.contains("  2 skipped: push provisioning signs the card"), "{stdout}");
    assert!(stdout.contains("  1 skipped: the profile does not declare the target's retry schedule"), "{stdout}");
}

/// Runs the `tmp-conformance` binary (`run --approach external --json`) with `profile` written
/// to a file, `args`, and only the secret variables in `envs`; it must exit 0. Its stdout and
/// JSON report.
async fn run_binary(profile: &Profile, args: &[&str], envs: &[(&str, String)]) -> (String, Value) {
    let dir = tempfile::tempdir().expect("dir");
    let profile_path = dir.path().join("profile.yaml");
    std::fs::write(&profile_path, profile.to_yaml()).expect("profile");
    let report = dir.path().join("report.json");
    let bin_dir = conformance_bin_dir();
    let mut command = Command::new(bin_dir.path().join("tmp-conformance"));
    command.args(["run", "--approach", "external"]).args(args).arg("--profile").arg(&profile_path);
    command.arg("--json").arg(&report);
    for variable in ["TMP_CONFORMANCE_SECRET", "TMP_CONFORMANCE_PROCESSOR_SECRET", "TMP_CONFORMANCE_ISSUER_SECRET"] {
        command.env_remove(variable);
    }
    command.envs(envs.iter().map(|(k, v)| (*k, v.as_str())));
    let output =
        tokio::task::spawn_blocking(move || command.output().expect("tmp-conformance runs")).await.expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    (stdout, report)
}
