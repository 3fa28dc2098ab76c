//! The profile: the example documents every key the suite reads, unknown keys are errors, and
//! a declared policy answers for the requestor the contract's lookup order picks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tmp_conformance::profile::{ContactDisclosure, Profile};

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/conformance-profile.example.yaml")
}

fn load(text: &str) -> anyhow::Result<Profile> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("profile.yaml");
    std::fs::write(&path, text)?;
    Profile::load(&path)
}

/// The example with `extra` appended under `section` (the top level when empty).
fn example_with(section: &str, extra: &str) -> String {
    let example = std::fs::read_to_string(example_path()).expect("the example");
    if section.is_empty() {
        return format!("{example}\n{extra}\n");
    }
    let at = example.find(&format!("\n{section}:\n")).expect("the section") + section.len() + 3;
    format!("{}  {extra}\n{}", &example[..at], &example[at..])
}

/// The field names serde lists when it refuses `unknown_key` under `section`.
fn known_keys(section: &str) -> Vec<String> {
    let error = load(&example_with(section, "no_such_key: 1")).expect_err("an unknown key is an error");
    let message = format!("{error:#}");
    assert!(message.contains("no_such_key"), "the error names the key: {message}");
    let listed = message.split("expected one of").nth(1).expect("serde lists the known keys");
    listed.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

#[test]
fn the_example_profile_loads_and_declares_a_policy() {
    let profile = Profile::load(&example_path()).expect("the example profile is valid");
    assert_eq!(profile.cards.len(), 7);
    assert_eq!(profile.card("active").expect("active").card_id.as_deref(), Some("card-active"));
    let policy = &profile.policy;
    // Apple Pay has its own entry; Google Pay falls back to the default.
    assert_eq!(policy.require_cvc("50110030273", "APPLE_PAY"), Ok(true));
    assert_eq!(policy.require_cvc("50120834693", "GOOGLE_PAY"), Ok(false));
    assert_eq!(policy.step_up_below_score("50120834693", "GOOGLE_PAY"), Ok(3));
    assert_eq!(policy.contact_disclosure(), Ok(ContactDisclosure::StepUpOnly));
    // Three failed attempts: 1 + 5 + 30 s, 20 % jitter, one 250 ms poll, 10 s of slack.
    assert_eq!(profile.forwarding.delivery_after(3), Ok(Duration::from_millis(43_200 + 250 + 10_000)));
    assert_eq!(profile.forwarding.delivery_after(0), Ok(Duration::from_millis(250 + 10_000)));
}

#[test]
fn every_key_the_suite_reads_is_documented_in_the_example() {
    let example = std::fs::read_to_string(example_path()).expect("the example");
    let documented = |key: &str| {
        example.lines().any(|line| {
            let line = line.trim_start().trim_start_matches("# ").trim_start();
            line.starts_with(&format!("{key}:"))
                || line.contains(&format!("{{ {key}:"))
                || line.contains(&format!(", {key}:"))
        })
    };
    for (section, at_least) in [("", 12), ("policy", 4), ("forwarding", 3)] {
        let keys = known_keys(section);
        assert!(keys.len() >= at_least, "{section}: {keys:?}");
        for key in keys {
            assert!(documented(&key), "`{section}.{key}` is not in config/conformance-profile.example.yaml");
        }
    }
    // The keys of a policy entry.
    let error = load(&example_with("policy", "token_requestors: {\"9\": {require_cvc: true, no_such_key: 1}}"))
        .expect_err("unknown");
    let message = format!("{error:#}");
    for key in ["require_cvc", "step_up_below_score", "max_live_tokens_per_card"] {
        assert!(message.contains(key) && documented(key), "{key}: {message}");
    }
}

#[test]
fn a_silent_profile_names_the_key_a_case_would_need() {
    let example = std::fs::read_to_string(example_path()).expect("the example");
    let start = example.find("\npolicy:\n").expect("policy");
    let end = example.find("\nforwarding:\n").expect("forwarding");
    let without_policy = format!("{}{}", &example[..start], &example[end..]);
    let profile = load(&without_policy).expect("a profile without a policy is valid");
    let reason = profile.policy.require_cvc("50120834693", "GOOGLE_PAY").expect_err("silent");
    assert!(reason.contains("`policy.default`"), "{reason}");
    assert!(profile.policy.contact_disclosure().expect_err("silent").contains("`policy.contact_disclosure`"));

    let partial =
        load(&example_with("policy", "token_requestors: {\"50120834693\": {require_cvc: true}}")).expect("valid");
    assert_eq!(partial.policy.require_cvc("50120834693", "GOOGLE_PAY"), Ok(true));
    let reason = partial.policy.step_up_below_score("50120834693", "GOOGLE_PAY").expect_err("silent");
    assert!(reason.contains("`policy.token_requestors.50120834693.step_up_below_score`"), "{reason}");

    let start = example.find("\nforwarding:\n").expect("forwarding");
    let end = example.find("\n# The card id the token-event").expect("next section");
    let without_schedule = format!("{}{}", &example[..start], &example[end..]);
    let reason = load(&without_schedule).expect("valid").forwarding.delivery_after(3).expect_err("silent");
    assert!(reason.contains("`forwarding.retry_schedule_ms`"), "{reason}");
}

#[test]
fn impossible_declarations_are_refused_with_the_key() {
    for (section, extra, key) in [
        (
            "policy",
            "token_requestors: {\"1\": {step_up_below_score: 6}}",
            "policy.token_requestors.1.step_up_below_score",
        ),
        ("policy", "token_requestors: {\"1\": {max_live_tokens_per_card: 0}}", "max_live_tokens_per_card"),
        ("", "token_event_card_id: 5\nunknown_top_level: true", "unknown_top_level"),
    ] {
        let message = format!("{:#}", load(&example_with(section, extra)).expect_err(extra));
        assert!(message.contains(key), "{extra}: {message}");
    }
    let example = std::fs::read_to_string(example_path()).expect("the example");
    let bad_wallet = example.replace("    APPLE_PAY: {", "    APPEL_PAY: {");
    let message = format!("{:#}", load(&bad_wallet).expect_err("a wallet that does not exist"));
    assert!(message.contains("APPEL_PAY") && message.contains("is not a wallet"), "{message}");
    let lower = example.replace("    APPLE_PAY: {", "    apple_pay: {");
    assert_eq!(load(&lower).expect("any case").policy.require_cvc("x", "APPLE_PAY"), Ok(true));
    let stray_card = example.replace("  cap:     {", "  capp:    {");
    assert!(format!("{:#}", load(&stray_card).expect_err("unknown fixture")).contains("`cards.capp`"));
    for (from, to, named) in [
        ("cvc_max_attempts: 3", "cvc_max_attempts: 1", "at least 2"),
        ("secret_env: TMP_CONFORMANCE_SECRET", "secret_env: \"TMP SECRET\"", "not an environment variable name"),
        ("# token_event_card_id: \"card-token-events\"", "token_event_card_id: \"card-active\"", "is a fixture's card"),
        ("\"4242424242424242\"", "\"4111111111111111\"", "the PAN of another fixture"),
        ("card_id: \"card-cap\"", "card_id: \"card-active\"", "the card_id of another fixture"),
        (
            "  # token_requestors:",
            "    apple_pay: { require_cvc: false }\n  # token_requestors:",
            "names APPLE_PAY twice",
        ),
    ] {
        assert!(example.contains(from), "{from}");
        let message = format!("{:#}", load(&example.replace(from, to)).expect_err(named));
        assert!(message.contains(named), "{to}: {message}");
    }
}

#[test]
fn a_profile_written_by_a_harness_loads_back_as_it_was() {
    let mut profile = Profile::load(&example_path()).expect("example");
    profile.tls = Some(tmp_conformance::profile::TlsProfile {
        ca_file: "/etc/ca: a path # with signs.pem".into(),
        client_cert_file: Some("client.pem".into()),
        client_key_file: None,
    });
    let again = load(&profile.to_yaml()).expect("to_yaml loads");
    assert_eq!(again.tls.as_ref().map(|t| t.ca_file.clone()), profile.tls.as_ref().map(|t| t.ca_file.clone()));
    assert_eq!(again.to_yaml(), profile.to_yaml());
    assert_eq!(again.policy.require_cvc("50110030273", "APPLE_PAY"), Ok(true));
    assert_eq!(again.forwarding.delivery_after(2), profile.forwarding.delivery_after(2));
    assert_eq!(again.card("lockout").expect("lockout").cvc.as_ref().map(|c| c.expose().to_owned()), Some("456".into()));
}
