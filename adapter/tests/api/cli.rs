//! The `tmp-adapter` binary's subcommands, run as a user runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::helpers::app::*;

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    /// A config directory with the repository's base.yaml and a local.yaml whose keys and
    /// database live in the sandbox.
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::create_dir(dir.path().join("config")).unwrap();
        std::fs::copy(root.join("config/base.yaml"), dir.path().join("config/base.yaml")).unwrap();
        let local = std::fs::read_to_string(root.join("config/local.yaml")).unwrap();
        std::fs::write(dir.path().join("config/local.yaml"), local).unwrap();
        std::fs::copy(root.join("config/production.yaml"), dir.path().join("config/production.yaml")).unwrap();
        Sandbox { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the binary in the sandbox (relative paths such as ./data resolve there).
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tmp-adapter"));
        command.current_dir(self.dir.path()).args(args).env_remove("RUST_LOG").env("TMP_ADAPTER_ENV", "local");
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().expect("tmp-adapter runs")
    }
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

async fn count_cards(sandbox: &Sandbox, ids: &[&str]) -> usize {
    let url = format!("sqlite://{}", sandbox.path("data/tmp-adapter.db").display());
    let store = tmp_adapter::store::connect(&url, 1).await.unwrap();
    store.migrate().await.unwrap();
    let mut found = 0;
    for id in ids {
        if store.find_card(id).await.unwrap().is_some() {
            found += 1;
        }
    }
    found
}

#[tokio::test]
async fn import_reports_every_bad_line_and_writes_nothing() {
    let sandbox = Sandbox::new();
    let lines = [
        r#"{"cardId": "c1", "pan": "4111111111111111", "expiry": "12/30"}"#,
        r#"{"cardId": "c2", "pan": "4111111111111112", "expiry": "12/30"}"#,
        r#"{"cardId": "c3", "pan": "5555555555554444", "expiry": "13/30"}"#,
        r#"{"cardId": "c4", "pan": "5555555555554444", "expiry": "12/30", "status": "FROZEN"}"#,
        r#"not json"#,
        r#"{"cardId": "c1", "pan": "4012888888881881", "expiry": "12/30"}"#,
        r#"{"cardId": "c6", "pan": "4111111111111111", "expiry": "12/30"}"#,
    ];
    std::fs::write(sandbox.path("cards.jsonl"), lines.join("\n")).unwrap();
    let output = sandbox.run(&["import", "cards.jsonl"], &[]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(2), "{out}");
    for line in ["line 2: ", "line 3: ", "line 4: ", "line 5: ", "line 6: ", "line 7: "] {
        assert!(out.contains(line), "missing {line}: {out}");
    }
    assert!(!out.contains("line 1: "), "{out}");
    assert!(out.contains("Luhn"), "{out}");
    assert!(out.contains("nothing written"), "{out}");
    for pan in ["4111111111111111", "4111111111111112", "5555555555554444", "4012888888881881"] {
        assert!(!out.contains(pan), "a PAN was printed: {out}");
    }
    assert_eq!(count_cards(&sandbox, &["c1", "c2", "c3", "c4", "c6"]).await, 0);

    let output = sandbox.run(&["import", "cards.jsonl", "--skip-invalid"], &[]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("1 card(s) imported"), "{}", text(&output));
    assert_eq!(count_cards(&sandbox, &["c1"]).await, 1);

    // A PAN already registered under another card id is a bad line, reported with its number.
    let again = [
        r#"{"cardId": "c8", "pan": "5555555555554444", "expiry": "12/30"}"#,
        r#"{"cardId": "c9", "pan": "4111111111111111", "expiry": "12/30"}"#,
    ];
    std::fs::write(sandbox.path("again.jsonl"), again.join("\n")).unwrap();
    let output = sandbox.run(&["import", "again.jsonl"], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("line 2: this PAN is already registered under card id `c1`"), "{}", text(&output));
    assert_eq!(count_cards(&sandbox, &["c8", "c9"]).await, 0);
}

#[tokio::test]
async fn import_reads_csv_and_cards_are_found_by_the_adapter() {
    let sandbox = Sandbox::new();
    let csv = "cardId,pan,expiry,status,phone,email,productCategory\n\
               csv-1,4111111111111111,12/30,ACTIVE,+48500100200,a@example.com,CONSUMER_DEBIT\n\
               csv-2,5555555555554444,12/30,BLOCKED,,,\n";
    std::fs::write(sandbox.path("cards.csv"), csv).unwrap();
    let output = sandbox.run(&["import", "cards.csv"], &[]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("2 card(s) imported"));
    let url = format!("sqlite://{}", sandbox.path("data/tmp-adapter.db").display());
    let store = tmp_adapter::store::connect(&url, 1).await.unwrap();
    let card = store.find_card("csv-2").await.unwrap().expect("imported");
    assert_eq!(card.status, tmp_protocol::enums::IssuerCardStatus::Blocked);
    assert_eq!(card.pan_last4, "4444");
    assert_eq!(card.expiry_yymm, "3012");
    assert!(card.cardholder_phone.is_none());

    let bad = "cardId,pan,expiry\ncsv-3,4111111111111111\n";
    std::fs::write(sandbox.path("bad.csv"), bad).unwrap();
    let output = sandbox.run(&["import", "bad.csv"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("line 2: "), "{}", text(&output));
}

#[test]
fn production_refuses_development_keys_and_secrets() {
    let sandbox = Sandbox::new();
    // The development HMAC secret from local.yaml, in production.
    let output = sandbox.run(
        &["check-config"],
        &[
            ("TMP_ADAPTER_ENV", "production"),
            ("TMP_ADAPTER__AUTH__HMAC_SECRETS", "whsec_ZGV2ZWxvcG1lbnQtb25seS10bXAtYWRhcHRlci1zZWNyZXQ="),
        ],
    );
    assert!(!output.status.success());
    assert!(text(&output).contains("development secret"), "{}", text(&output));

    // Generating development keys, in production.
    let (_, fresh) = tmp_protocol::webhook::WebhookSecret::generate();
    let output = sandbox.run(
        &["check-config"],
        &[
            ("TMP_ADAPTER_ENV", "production"),
            ("TMP_ADAPTER__AUTH__HMAC_SECRETS", &fresh),
            ("TMP_ADAPTER__KEYS__GENERATE_MISSING_IN", "./data/dev-keys"),
        ],
    );
    assert!(!output.status.success());
    assert!(text(&output).contains("generate_missing_in"), "{}", text(&output));

    // A clean production configuration, with keys made by `keys generate`, passes the check
    // (which reads every key) and prints no secret.
    for (kind, file) in [("jwe", "keys/jwe.pem"), ("data", "keys/data.hex"), ("fingerprint", "keys/fp.hex")] {
        let output = sandbox.run(&["keys", "generate", kind, "--out", file], &[]);
        assert!(output.status.success(), "{}", text(&output));
    }
    let production = std::fs::read_to_string(sandbox.path("config/production.yaml")).unwrap();
    let production = production
        .replace("/etc/tmp-adapter/keys/jwe-adapter-1.pem", "./keys/jwe.pem")
        .replace("/etc/tmp-adapter/keys/data-key-1.hex", "./keys/data.hex")
        .replace("/etc/tmp-adapter/keys/fingerprint-key.hex", "./keys/fp.hex");
    std::fs::write(sandbox.path("config/production.yaml"), production).unwrap();
    let (_, bridge) = tmp_protocol::webhook::WebhookSecret::generate();
    let unsigned_bridge = [("TMP_ADAPTER_ENV", "production"), ("TMP_ADAPTER__AUTH__HMAC_SECRETS", fresh.as_str())];
    let production_env = [
        unsigned_bridge[0],
        unsigned_bridge[1],
        ("TMP_ADAPTER__CARD_SOURCE__PROCESSOR_BRIDGE__HMAC_SECRET", bridge.as_str()),
    ];
    let output = sandbox.run(&["check-config"], &production_env);
    assert!(output.status.success(), "{}", text(&output));
    let summary = text(&output);
    assert!(!summary.contains(&fresh) && !summary.contains(&bridge), "{summary}");
    assert!(summary.contains("Issuer API: 0.0.0.0:8080 (https)"), "{summary}");
    assert!(summary.contains("processor ingest: off"), "{summary}");

    // What production refuses, each named: one setting changed at a time from the clean one.
    let (_, outbound) = tmp_protocol::webhook::WebhookSecret::generate();
    let output = sandbox.run(&["check-config"], &unsigned_bridge);
    assert!(!output.status.success() && text(&output).contains("processor_bridge.hmac_secret must be set"));
    let refusals: [(&[(&str, &str)], &str); 7] = [
        (&[("TMP_ADAPTER__POLICY__STAND_IN_DECISION", "APPROVED")], "stand_in_approved_acknowledged"),
        // Ingest on, with the shipped placeholder TMP address (plain http, this host).
        (&[("TMP_ADAPTER__PROCESSOR__HMAC_SECRETS", outbound.as_str())], "forwarding.tmp_api.base_url must be https"),
        (
            &[
                ("TMP_ADAPTER__PROCESSOR__HMAC_SECRETS", outbound.as_str()),
                ("TMP_ADAPTER__FORWARDING__TMP_API__BASE_URL", "https://localhost:9100"),
            ],
            "points at this host",
        ),
        (
            &[
                ("TMP_ADAPTER__PROCESSOR__HMAC_SECRETS", outbound.as_str()),
                ("TMP_ADAPTER__FORWARDING__TMP_API__BASE_URL", "https://tmp.verestro.example"),
            ],
            "forwarding.tmp_api.hmac_secrets",
        ),
        (
            &[
                ("TMP_ADAPTER__PROCESSOR__HMAC_SECRETS", outbound.as_str()),
                ("TMP_ADAPTER__FORWARDING__APPROACH", "datacore"),
                ("TMP_ADAPTER__FORWARDING__LIFECYCLE_API__BASE_URL", "https://[::1]:9100"),
            ],
            "forwarding.lifecycle_api.base_url points at this host",
        ),
        // The ops API calls TMP too.
        (&[("TMP_ADAPTER__OPS__ENABLED", "true")], "forwarding.tmp_api.base_url must be https"),
        (
            &[
                ("TMP_ADAPTER__OPS__ENABLED", "true"),
                ("TMP_ADAPTER__OPS__HOST", "0.0.0.0"),
                ("TMP_ADAPTER__FORWARDING__TMP_API__BASE_URL", "https://tmp.verestro.example"),
                ("TMP_ADAPTER__FORWARDING__TMP_API__HMAC_SECRETS", outbound.as_str()),
            ],
            "ops listener",
        ),
    ];
    for (changes, expected) in refusals {
        let mut env = production_env.to_vec();
        env.extend_from_slice(changes);
        let output = sandbox.run(&["check-config"], &env);
        assert!(!output.status.success(), "{changes:?} passed: {}", text(&output));
        assert!(text(&output).contains(expected), "{changes:?}: {}", text(&output));
        assert!(!text(&output).contains(&outbound), "{}", text(&output));
    }
    // A plain-http Issuer API is refused...
    let with_tls = std::fs::read_to_string(sandbox.path("config/production.yaml")).unwrap();
    let tls_block = with_tls.find("  tls:\n").expect("production.yaml serves https");
    let end = with_tls[tls_block..].find("\n\n").map_or(with_tls.len(), |e| tls_block + e);
    let plain = format!("{}  tls: null{}", &with_tls[..tls_block], &with_tls[end..]);
    std::fs::write(sandbox.path("config/production.yaml"), plain).unwrap();
    let output = sandbox.run(&["check-config"], &production_env);
    assert!(!output.status.success() && text(&output).contains("server.tls is unset"), "{}", text(&output));
    // ...and, like an APPROVED stand-in, passes once acknowledged.
    let mut env = production_env.to_vec();
    env.extend_from_slice(&[
        ("TMP_ADAPTER__POLICY__STAND_IN_DECISION", "APPROVED"),
        ("TMP_ADAPTER__POLICY__STAND_IN_APPROVED_ACKNOWLEDGED", "true"),
        ("TMP_ADAPTER__SERVER__TLS_TERMINATED_BY_PROXY", "true"),
    ]);
    let output = sandbox.run(&["check-config"], &env);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("TLS terminated by a proxy"), "{}", text(&output));
    assert!(text(&output).contains("stand-in decision: Approved"), "{}", text(&output));
}

#[tokio::test]
async fn production_refuses_key_files_generated_for_development() {
    let sandbox = Sandbox::new();
    // Start once in development: keys are generated and marked.
    let output = sandbox.run(&["migrate"], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let db = crate::helpers::db::test_databases().await.remove(0);
    let mut settings = base_settings(&db.url);
    let dev = sandbox.path("data/dev-keys");
    settings.keys.generate_missing_in = Some(dev.clone());
    settings.keys.jwe[0].private_key_file = dev.join("jwe-adapter-dev-1.pem");
    settings.keys.data_keys.files.insert("data-1".into(), dev.join("data-key-1.hex"));
    settings.keys.fingerprint_key_file = dev.join("fingerprint-key.hex");
    settings.card_source.local_registry.cvk_file = dev.join("cvk.hex");
    let material = tmp_adapter::keys::KeyMaterial::load(&settings).unwrap();
    assert!(material.uses_development_keys);
    assert!(dev.join(tmp_adapter::keys::DEVELOPMENT_MARKER).exists());

    settings.environment = tmp_adapter::config::Environment::Production;
    settings.keys.generate_missing_in = None;
    let refused = tmp_adapter::keys::KeyMaterial::load(&settings).err().expect("refused");
    assert!(refused.to_string().contains("development key"), "{refused}");
}

#[test]
fn print_default_config_prints_the_reference_file() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["print-default-config"], &[]);
    assert!(output.status.success());
    let reference = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/base.yaml")).unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), reference);
}

#[test]
fn policy_per_wallet_can_be_set_from_the_environment() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(
        &["check-config"],
        &[
            ("TMP_ADAPTER__POLICY__WALLETS__GOOGLE_PAY__REQUIRE_CVC", "true"),
            ("TMP_ADAPTER__POLICY__WALLETS__GOOGLE_PAY__STEP_UP_BELOW_SCORE", "4"),
            ("TMP_ADAPTER__POLICY__WALLETS__GOOGLE_PAY__MAX_LIVE_TOKENS_PER_CARD", "3"),
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    let output = sandbox.run(&["check-config"], &[("TMP_ADAPTER__POLICY__DEFAULT__MAX_LIVE_TOKENS_PER_CARD", "0")]);
    assert!(!output.status.success());
    assert!(text(&output).contains("max_live_tokens_per_card"), "{}", text(&output));
}

#[test]
fn invalid_configuration_names_the_key() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["check-config"], &[("TMP_ADAPTER__POLICY__DEADLINE_MS", "0")]);
    assert!(!output.status.success());
    assert!(text(&output).contains("policy.deadline_ms"), "{}", text(&output));
    let output = sandbox.run(&["check-config"], &[("TMP_ADAPTER__SERVER__PORT", "eighty")]);
    assert!(!output.status.success());
    assert!(text(&output).contains("server.port"), "{}", text(&output));
    let output = sandbox.run(&["check-config"], &[("TMP_ADAPTER__POLICY__STAND_IN_DECISION", "MAYBE")]);
    assert!(!output.status.success());
    assert!(text(&output).contains("stand_in_decision"), "{}", text(&output));
    // Run where there is no configuration directory: the error says that is the cause.
    let output = sandbox.run(&["check-config", "--config-dir", "nowhere"], &[]);
    assert!(!output.status.success());
    assert!(text(&output).contains("no configuration directory at `nowhere`"), "{}", text(&output));
}

#[test]
fn keys_generate_writes_private_files_and_never_overwrites() {
    let sandbox = Sandbox::new();
    for (kind, file, len) in [("data", "d.hex", 64), ("fingerprint", "f.hex", 64), ("cvk", "c.hex", 32)] {
        let output = sandbox.run(&["keys", "generate", kind, "--out", file], &[]);
        assert!(output.status.success(), "{}", text(&output));
        let contents = std::fs::read_to_string(sandbox.path(file)).unwrap();
        assert_eq!(contents.trim().len(), len);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(sandbox.path(file)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{file} is readable by others");
        }
        let again = sandbox.run(&["keys", "generate", kind, "--out", file], &[]);
        assert!(!again.status.success(), "must not overwrite {file}");
    }
    let output = sandbox.run(&["keys", "generate", "jwe", "--out", "k.pem"], &[]);
    assert!(output.status.success());
    let pem = std::fs::read_to_string(sandbox.path("k.pem")).unwrap();
    assert!(tmp_protocol::jwk::RsaKeyPair::from_pkcs8_pem("k", &pem).is_ok());
    let output = sandbox.run(&["keys", "generate", "hmac"], &[]);
    let secret = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(tmp_protocol::webhook::WebhookSecret::parse(&secret).is_ok(), "{secret}");
}

#[test]
fn serve_starts_with_development_keys_warns_and_reloads_keys_on_sighup() {
    let sandbox = Sandbox::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tmp-adapter"))
        .current_dir(sandbox.dir.path())
        .env("TMP_ADAPTER_ENV", "local")
        .env("TMP_ADAPTER__SERVER__PORT", "0")
        .env("TMP_ADAPTER__LOG__FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(stdout).lines();
    // Reads log lines into `seen` up to the first that holds `needle`.
    let mut read_until = |needle: &str| {
        for line in lines.by_ref() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(needle) {
                break;
            }
        }
    };
    read_until("tmp-adapter listening");
    // SIGHUP: the configuration and its keys are loaded again and swapped in.
    let hup = Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    read_until("configuration reload");
    // Ctrl-C drains and stops cleanly, as SIGTERM does.
    let int = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(int.success());
    read_until("tmp-adapter stopped");
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}: {}\n{seen}", output.status, String::from_utf8_lossy(&output.stderr));
    assert!(seen.contains("DEVELOPMENT KEY"), "{seen}");
    assert!(seen.contains("configuration reloaded: keys, secrets and certificates replaced"), "{seen}");
    assert!(seen.contains("adapter-dev-1"), "the kids in force are named: {seen}");
    assert!(seen.contains("finishing the requests in flight"), "{seen}");
    assert!(sandbox.path("data/tmp-adapter.db").exists());
    assert!(sandbox.path("data/dev-keys/jwe-adapter-dev-1.pem").exists());
}

#[test]
fn ops_token_prints_a_new_token_and_the_digest_the_configuration_takes() {
    use sha2::{Digest, Sha256};
    let sandbox = Sandbox::new();
    let field = |output: &Output, name: &str| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no `{name}` in {}", text(output)))
    };
    let first = sandbox.run(&["ops", "token"], &[]);
    assert!(first.status.success(), "{}", text(&first));
    let (token, digest) = (field(&first, "token:"), field(&first, "digest:"));
    assert!(token.starts_with("tmpops_") && token.len() > 40, "{token}");
    assert_eq!(digest, hex::encode(Sha256::digest(token.as_bytes())));
    let second = sandbox.run(&["ops", "token"], &[]);
    assert_ne!(field(&second, "token:"), token, "a new token each time");

    let env = [("TMP_ADAPTER__OPS__ENABLED", "true"), ("TMP_ADAPTER__OPS__API_TOKENS", digest.as_str())];
    let checked = sandbox.run(&["check-config"], &env);
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(
        text(&checked).contains("ops API: 127.0.0.1:8081 (plain http; 1 operator token digest(s), 0 mTLS subject(s)"),
        "{}",
        text(&checked)
    );
    // The token itself is refused where a digest belongs.
    let env = [("TMP_ADAPTER__OPS__ENABLED", "true"), ("TMP_ADAPTER__OPS__API_TOKENS", token.as_str())];
    let refused = sandbox.run(&["check-config"], &env);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("ops.api_tokens[0]"), "{}", text(&refused));
}

#[test]
fn apikey_create_prints_the_key_once_list_never_shows_it_and_revoke_ends_it() {
    let sandbox = Sandbox::new();
    let field = |output: &Output, name: &str| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no `{name}` in {}", text(output)))
    };
    let created = sandbox.run(
        &[
            "apikey",
            "create",
            "--name",
            "back office",
            "--scope",
            "audit:read",
            "--scope",
            "tokens:read",
            "--rate-limit-per-minute",
            "30",
        ],
        &[],
    );
    assert!(created.status.success(), "{}", text(&created));
    let (id, key) = (field(&created, "id:"), field(&created, "key:"));
    assert!(key.starts_with(&format!("tmpk_{id}_")) && key.len() == 5 + 16 + 1 + 64, "{key}");
    assert_eq!(field(&created, "scopes:"), "tokens:read audit:read");

    let listed = sandbox.run(&["apikey", "list"], &[]);
    assert!(listed.status.success(), "{}", text(&listed));
    let listing = text(&listed);
    assert!(listing.contains(&id) && listing.contains("back office"), "{listing}");
    assert!(listing.contains("scopes=tokens:read,audit:read") && listing.contains("rate_limit=30/min"), "{listing}");
    assert!(listing.contains("live") && !listing.contains(&key[22..]), "{listing}");

    let bad = sandbox.run(&["apikey", "create", "--name", "x", "--scope", "tokens:delete"], &[]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("`tokens:delete` is not a scope"), "{}", text(&bad));

    let revoked = sandbox.run(&["apikey", "revoke", &id, "--reason", "laptop lost"], &[]);
    assert!(revoked.status.success(), "{}", text(&revoked));
    assert!(text(&sandbox.run(&["apikey", "list"], &[])).contains("revoked="));
    let again = sandbox.run(&["apikey", "revoke", &id], &[]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
}

#[test]
fn a_missing_postgresql_database_is_named_with_the_statement_that_creates_it() {
    let Ok(admin) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("notice: TEST_DATABASE_URL is not set: skipping");
        return;
    };
    let server = admin.rsplit_once('/').map_or(admin.as_str(), |(server, _)| server);
    let missing = format!("missing_{}", uuid::Uuid::new_v4().simple());
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["migrate"], &[("TMP_ADAPTER__DATABASE__URL", &format!("{server}/{missing}"))]);
    assert!(!output.status.success());
    assert!(text(&output).contains(&format!("CREATE DATABASE \"{missing}\"")), "{}", text(&output));
}

/// `keys reseal`, as an operator runs it: cards imported under `data-1`, a new active key
/// `data2` (a development key generated on first use), then the command moves every card to it
/// with a progress line per kind in a log (no terminal), prints the counts, audits the run, and
/// a second run has nothing to do.
#[tokio::test]
async fn keys_reseal_moves_the_cards_to_the_active_key_and_reports_progress() {
    let sandbox = Sandbox::new();
    let csv = "cardId,pan,expiry\nr-1,4111111111111111,12/30\nr-2,5555555555554444,12/30\nr-3,4012888888881881,12/30\n";
    std::fs::write(sandbox.path("cards.csv"), csv).unwrap();
    let output = sandbox.run(&["import", "cards.csv"], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let new_key = [
        ("TMP_ADAPTER__KEYS__DATA_KEYS__ACTIVE", "data2"),
        ("TMP_ADAPTER__KEYS__DATA_KEYS__FILES__DATA2", "./data/dev-keys/data-key-2.hex"),
    ];
    let output = sandbox.run(&["keys", "reseal", "--batch", "2"], &new_key);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("card PANs          [##############################] 3/3"), "{out}");
    assert!(out.contains("card PANs: 3 re-sealed"), "{out}");
    assert!(out.contains("everything is sealed under data key `data2`"), "{out}");

    let url = format!("sqlite://{}", sandbox.path("data/tmp-adapter.db").display());
    let store = tmp_adapter::store::connect(&url, 1).await.unwrap();
    for id in ["r-1", "r-2", "r-3"] {
        assert_eq!(store.find_card(id).await.unwrap().unwrap().pan_key_id, "data2");
    }
    let audit = store.list_ops_audit(&tmp_adapter::store::OpsAuditFilter { card_id: None, limit: 5 }).await.unwrap();
    assert_eq!(audit[0].action, "keys.reseal");
    assert_eq!(audit[0].reason.as_deref(), Some("3 value(s) moved"));

    let again = sandbox.run(&["keys", "reseal"], &new_key);
    assert!(again.status.success() && text(&again).contains("card PANs: 0 re-sealed"), "{}", text(&again));
    // Without the key that sealed them, the values cannot move: exit 2, naming the key to add back.
    let lost = sandbox.run(&["keys", "reseal"], &[("TMP_ADAPTER__KEYS__DATA_KEYS__ACTIVE", "data-1")]);
    assert_eq!(lost.status.code(), Some(2), "{}", text(&lost));
    assert!(text(&lost).contains("`data2`, which is not in keys.data_keys.files"), "{}", text(&lost));
}

/// Completions and man pages come from the command line's own definition: every subcommand is
/// in them, down to `tokens reconcile`.
#[test]
fn completions_and_man_pages_cover_every_subcommand() {
    let sandbox = Sandbox::new();
    let bash = sandbox.run(&["completions", "bash"], &[]);
    assert!(bash.status.success(), "{}", text(&bash));
    let script = String::from_utf8_lossy(&bash.stdout);
    for word in ["reconcile", "outbox", "replay", "apikey", "--config-dir"] {
        assert!(script.contains(word), "{word} missing from the bash completions");
    }
    let fish = sandbox.run(&["completions", "fish"], &[]);
    assert!(String::from_utf8_lossy(&fish.stdout).contains("complete -c tmp-adapter"));
    let main_page = sandbox.run(&["man"], &[]);
    assert!(String::from_utf8_lossy(&main_page.stdout).contains(".TH tmp-adapter 1"));
    let dir = sandbox.path("man1");
    let written = sandbox.run(&["man", "--out", dir.to_str().unwrap()], &[]);
    assert!(written.status.success(), "{}", text(&written));
    let page = std::fs::read_to_string(dir.join("tmp-adapter-tokens-reconcile.1")).expect("a page per subcommand");
    assert!(page.contains(".TH tmp-adapter-tokens-reconcile 1"), "{page}");
    assert!(page.contains("tmp\\-adapter tokens reconcile"), "typed as it is run: {page}");
    assert!(page.contains("\\-\\-all"), "{page}");
    let pages = std::fs::read_dir(&dir).unwrap().count();
    assert!(pages >= 20, "{pages} pages");
    let bad = sandbox.run(&["completions", "tcsh"], &[]);
    assert_eq!(bad.status.code(), Some(2), "an unknown shell is a usage error");
}
