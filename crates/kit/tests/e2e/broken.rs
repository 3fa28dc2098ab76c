//! Each broken Issuer API fails exactly the cases that catch its fault and passes the others;
//! the honest proxy passes them all.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tmp_conformance::case::Approach;
use tmp_conformance::runner::{Capabilities, Run, Verdict};
use tmp_kit::{KitOptions, TestKit};

use crate::proxy::{Fault, Proxy};

/// A spawned kit behind a proxy with `fault`, and the Issuer API cases run against the proxy.
pub struct Checked {
    pub kit: Arc<TestKit>,
    pub proxy: Proxy,
    pub run: Run,
}

pub async fn run_against(fault: Fault) -> Checked {
    let kit = Arc::new(
        TestKit::start(&KitOptions::new(tmp_adapter::config::Approach::External)).await.expect("the kit starts"),
    );
    let secret = kit.secrets.tmp.clone().expect("the kit's TMP secret");
    let proxy = Proxy::start(&kit.adapter_url, fault, secret).await;
    let mut session =
        tmp_kit::harness::spawned_session(&kit, &proxy.url, Approach::External, 0).await.expect("session");
    // A short deadline and few requests keep the late answers of `AnswersLate` quick to see.
    session.client.profile.deadline_ms = 250;
    session.client.profile.latency_requests = 5;
    let session = Arc::new(session);
    // The Issuer API cases only: forwarding and journeys do not pass through the proxy.
    let caps = Capabilities { mock: false, harness: Vec::new() };
    let cases = tmp_conformance::catalogue::select(Approach::External, None);
    let run = tmp_conformance::runner::run(session, cases, &caps, &mut std::io::sink()).await;
    Checked { kit, proxy, run }
}

impl Checked {
    pub async fn stop(&self) {
        self.proxy.stop().await;
        self.kit.stop().await;
    }
}

pub fn failed(run: &Run) -> BTreeSet<&'static str> {
    run.results.iter().filter(|r| r.verdict == Verdict::Failed).map(|r| r.id).collect()
}

fn ids(ids: &[&'static str]) -> BTreeSet<&'static str> {
    ids.iter().copied().collect()
}

async fn expect_failures(fault: Fault, expected: &[&'static str]) {
    let checked = run_against(fault).await;
    let failed = failed(&checked.run);
    let passed = checked.run.count(Verdict::Passed);
    checked.stop().await;
    let details: Vec<String> = checked
        .run
        .results
        .iter()
        .filter_map(|r| r.failure.as_ref().map(|f| format!("{}: expected {}, got {}", r.id, f.expected, f.actual)))
        .collect();
    assert_eq!(failed, ids(expected), "{fault:?}: failed cases\n{}", details.join("\n"));
    // Every Issuer API case ran, and the ones not listed passed.
    let issuer_api = tmp_conformance::catalogue::select(Approach::External, None)
        .iter()
        .filter(|c| c.needs == tmp_conformance::case::Needs::IssuerApi)
        .count();
    assert_eq!(passed + failed.len(), issuer_api, "{fault:?}: every Issuer API case ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_proxy_passes_every_issuer_api_case() {
    expect_failures(Fault::None, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_blocked_cards_fails_the_blocked_card_case() {
    expect_failures(Fault::ApprovesBlockedCards, &["ISS-VERIFY-003"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_bad_signatures_fails_every_signature_case() {
    // ISS-INPUT-012 sends unsigned requests among its hostile ones and expects 401s.
    let expected = [
        "ISS-SIG-001",
        "ISS-SIG-002",
        "ISS-SIG-003",
        "ISS-SIG-004",
        "ISS-SIG-005",
        "ISS-SIG-006",
        "ISS-SIG-007",
        "ISS-SIG-008",
        "ISS-INPUT-012",
    ];
    expect_failures(Fault::AcceptsBadSignatures, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_idempotency_keys_fails_the_idempotency_cases() {
    // Without idempotency a replayed wrong CVC counts again: ISS-IDEM-006 locks the active
    // card, so ISS-KEYS-002 (which runs later and needs a MATCH) fails too — a real
    // consequence of the fault. ISS-IDEM-005 only needs keys not to be spent by refusals.
    let expected = [
        "ISS-IDEM-001",
        "ISS-IDEM-002",
        "ISS-IDEM-003",
        "ISS-IDEM-004",
        "ISS-IDEM-006",
        "ISS-IDEM-007",
        "ISS-KEYS-002",
    ];
    expect_failures(Fault::IgnoresIdempotencyKeys, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_after_the_deadline_fails_the_latency_case() {
    expect_failures(Fault::AnswersLate(Duration::from_millis(400)), &["ISS-LATENCY-001"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_body_fails_the_cases_that_read_it() {
    // Every case that reads a token-event acknowledgement; the 422 cases and the replay
    // cases that compare two (equally broken) answers are not about its shape.
    let mut expected: Vec<&'static str> = vec![
        "ISS-TOKEN-001",
        "ISS-TOKEN-002",
        "ISS-TOKEN-003",
        "ISS-TOKEN-004",
        "ISS-TOKEN-005",
        "ISS-TOKEN-006",
        "ISS-TOKEN-007",
        "ISS-TOKEN-008",
        "ISS-TOKEN-009",
        "ISS-TOKEN-010",
        "ISS-TOKEN-011",
        "ISS-TOKEN-014",
    ];
    // The token-cap case gives its card tokens through token events and checks each ack.
    expected.extend(["ISS-IDEM-005", "ISS-SIG-008", "ISS-INPUT-012", "ISS-VERIFY-016"]);
    expect_failures(Fault::MalformedTokenAcks, &expected).await;
}
