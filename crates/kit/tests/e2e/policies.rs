//! The suite judges the policy the target declares, not the kit's: the adapter configured with
//! three different legitimate policies passes every card-check case with each declared in the
//! profile, and the same adapter judged against a profile that declares another policy fails
//! exactly the cases whose expectation depends on it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tmp_adapter::config::Settings;
use tmp_adapter::domain::policy::{ContactDisclosure, RequestorPolicy};
use tmp_conformance::case::Approach;
use tmp_conformance::runner::{Capabilities, Run, Verdict};
use tmp_kit::{KitOptions, TestKit};
use tmp_protocol::enums::Wallet;

use crate::variants::failed;

/// The card-check cases: every one whose expectation a policy can change, and their neighbours.
const CASES: &str = "ISS-VERIFY-*,ISS-CVC-*";
/// The cases whose expectation depends on the declared policy.
const POLICY_CASES: [&str; 8] = [
    "ISS-VERIFY-002",
    "ISS-VERIFY-009",
    "ISS-VERIFY-012",
    "ISS-VERIFY-014",
    "ISS-VERIFY-016",
    "ISS-VERIFY-017",
    "ISS-VERIFY-018",
    "ISS-VERIFY-019",
];

fn entry(
    require_cvc: bool,
    step_up_below_score: u8,
    max_live_tokens_per_card: u32,
    max_tokenizations_per_device: u32,
) -> RequestorPolicy {
    RequestorPolicy {
        require_cvc,
        step_up_below_score,
        max_live_tokens_per_card,
        max_tokenizations_per_card: 0,
        max_tokenizations_per_device,
        step_up_methods: tmp_adapter::domain::policy::default_step_up_methods(),
        app_id: None,
    }
}

/// The shipped policy (config/base.yaml), unchanged.
fn shipped(_: &mut Settings) {}

/// A CVC everywhere, no step-up by score, two tokens per requestor, three tokenizations per
/// device, the contact disclosed with approvals too.
pub(crate) fn strict(settings: &mut Settings) {
    let policy = &mut settings.policy;
    policy.default = entry(true, 0, 2, 3);
    policy.wallets = BTreeMap::new();
    policy.contact_disclosure = ContactDisclosure::ApprovedAndStepUp;
}

/// No CVC required anywhere; every score below 5 steps up; Google Pay's requestor has an entry
/// of its own with one token and two tokenizations per device, Apple Pay a wallet entry; a
/// stand-in steps up instead of declining.
pub(crate) fn cautious(settings: &mut Settings) {
    let policy = &mut settings.policy;
    policy.stand_in_decision = tmp_protocol::enums::Decision::RequireAdditionalAuthentication;
    policy.default = entry(false, 5, 10, 0);
    policy.wallets = BTreeMap::from([(Wallet::ApplePay, entry(false, 4, 3, 0))]);
    policy.token_requestors = BTreeMap::from([("50120834693".to_owned(), entry(false, 5, 1, 2))]);
}

/// The card-check cases against a kit configured by `configure`, judged by the profile the
/// kit declares after `declare` changed it.
async fn judge(configure: fn(&mut Settings), declare: Option<fn(&mut Settings)>) -> Run {
    let options = KitOptions::new(tmp_adapter::config::Approach::External);
    let kit = Arc::new(TestKit::start_with(&options, configure, |_| {}).await.expect("the kit starts"));
    let mut session =
        tmp_kit::harness::spawned_session(&kit, &kit.adapter_url, Approach::External, 0).await.expect("session");
    if let Some(declare) = declare {
        let mut other = kit.settings().clone();
        declare(&mut other);
        session.client.profile.policy = tmp_kit::test_kit::declared_policy(&other.policy);
    }
    session.client.profile.latency_requests = 5;
    // The window case (it waits the lockout window out) is not about the policy.
    session.client.profile.cvc_lockout_window_secs = None;
    let caps = Capabilities { mock: false, harness: Vec::new() };
    let cases = tmp_conformance::catalogue::select(Approach::External, Some(CASES));
    let run = tmp_conformance::runner::run(Arc::new(session), cases, &caps, &mut std::io::sink()).await;
    kit.stop().await;
    run
}

fn details(run: &Run) -> String {
    let lines: Vec<String> = run
        .results
        .iter()
        .filter(|r| r.verdict != Verdict::Passed)
        .map(|r| {
            format!("{} {:?}: {:?} {:?}", r.id, r.verdict, r.skipped_because, r.failure.as_ref().map(|f| &f.actual))
        })
        .collect();
    lines.join("\n")
}

#[tokio::test]
async fn three_legitimate_policies_each_pass_when_declared() {
    for (name, configure) in [("shipped", shipped as fn(&mut Settings)), ("strict", strict), ("cautious", cautious)] {
        let run = judge(configure, None).await;
        assert!(run.results.len() >= 23, "{name}: {} cases", run.results.len());
        assert_eq!(run.count(Verdict::Passed), run.results.len() - 1, "{name}:\n{}", details(&run));
        assert_eq!(run.count(Verdict::Skipped), 1, "{name}: only ISS-CVC-009 is skipped");
    }
}

#[tokio::test]
async fn a_policy_other_than_the_declared_one_fails_the_cases_that_depend_on_it() {
    // Configured strict, declared cautious, and the other way round: every policy case fails
    // in one direction or the other, and no case that does not depend on the policy fails.
    let mut caught = BTreeSet::new();
    for (configure, declared) in
        [(strict as fn(&mut Settings), cautious as fn(&mut Settings)), (cautious, strict), (shipped, strict)]
    {
        let run = judge(configure, Some(declared)).await;
        let failed = failed(&run);
        assert!(failed.iter().all(|id| POLICY_CASES.contains(id)), "{failed:?}:\n{}", details(&run));
        caught.extend(failed);
    }
    assert_eq!(caught, POLICY_CASES.into_iter().collect(), "the policy cases that a wrong declaration fails");
}
