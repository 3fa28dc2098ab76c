//! `tmp-kit prepare`: makes a running development tmp-adapter — the quick start's — a target of
//! the conformance suite. It reads the adapter's configuration (as `tmp-kit up` does), puts a
//! fresh set of test cards into the running adapter through its processor ingest (new card
//! ids and PANs on every run, so no CVC counter or token of an earlier run is in the way),
//! damages one of them in the adapter's database (`cards.failing`, when it can reach it), and
//! writes the profile that declares the adapter's policy, limits and retry schedule, with the
//! CVCs its CVK gives the cards, and an environment file naming its secrets. Production
//! configurations are refused: this writes test cards.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tmp_adapter::config::{Environment, Settings};
use tmp_adapter::keys::KeyMaterial;
use tmp_conformance::client::{Client, Secrets, generate_pan};
use tmp_conformance::mock_api::MockApi;
use tmp_conformance::session::Session;
use tmp_protocol::sensitive::Expiry;

use crate::harness::{damage_failing_card, load_fixtures, suite_approach};
use crate::test_kit::declared_profile;

#[derive(Debug, clap::Args)]
pub struct PrepareArgs {
    /// The running adapter's configuration directory (the one `tmp-kit up` reads).
    #[arg(long, default_value = "config")]
    pub adapter_config_dir: PathBuf,
    /// The running adapter's Issuer API; by default `http://` and the configuration's
    /// `server.host` and `server.port`.
    #[arg(long)]
    pub target: Option<String>,
    /// Where the profile (`profile.yaml`) and the secrets (`secrets.env`) are written.
    #[arg(long, default_value = "data/conformance")]
    pub out_dir: PathBuf,
}

/// The fixtures: every card the suite's profile names, with its expiry.
const CARDS: [(&str, &str); 8] = [
    ("active", "12/30"),
    ("blocked", "12/30"),
    ("closed", "12/30"),
    ("expired", "01/20"),
    ("lockout", "12/30"),
    ("cap", "12/30"),
    ("failing", "12/30"),
    ("unknown", "12/30"),
];

pub async fn run(args: PrepareArgs) -> anyhow::Result<()> {
    let settings = Settings::load(&args.adapter_config_dir)?;
    if settings.environment == Environment::Production {
        bail!("tmp-kit prepare writes test cards into the adapter: it refuses a production configuration");
    }
    if settings.processor.hmac_secrets.is_empty() {
        bail!(
            "the adapter serves no processor ingest (processor.hmac_secrets is empty): prepare loads the cards through it"
        );
    }
    let keys = KeyMaterial::load(&settings)?;
    let target = args.target.clone().unwrap_or_else(|| {
        let host = if settings.server.host == "0.0.0.0" { "127.0.0.1" } else { settings.server.host.as_str() };
        format!("http://{host}:{}", settings.server.port)
    });
    let run = format!("{:x}", time::OffsetDateTime::now_utc().unix_timestamp());
    let cards = CARDS
        .iter()
        .map(|(name, expiry)| {
            let card_id = (*name != "unknown").then(|| format!("conformance-{run}-{name}"));
            Ok((name.to_string(), generate_pan(), Expiry::parse(expiry)?, card_id))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let profile = declared_profile(&keys, &settings, cards)?;

    let secrets = Secrets {
        tmp: settings.auth.hmac_secrets.first().cloned(),
        processor: settings.processor.hmac_secrets.first().cloned(),
        issuer: settings.forwarding.tmp_api.hmac_secrets.first().cloned(),
    };
    let approach = suite_approach(settings.forwarding.approach);
    let mock_url = settings.forwarding.tmp_api.base_url.clone();
    let client = Client::new(profile.clone(), &target, secrets.clone())?;
    let mut session = Session::new(client, &target, approach, 0);
    session.mock = Some(MockApi::new(&mock_url)?);
    load_fixtures(&session)
        .await
        .with_context(|| format!("loading the test cards into the adapter at {target} (is `tmp-kit up` running?)"))?;
    // Written straight into the adapter's database, which prepare may not reach (a relative
    // SQLite path from elsewhere, a server inside a container, another --target): without it
    // the two card-source cases skip, naming `cards.failing`.
    let mut profile = profile;
    if let Err(error) = damage_failing_card(&session, &settings.database.url).await {
        eprintln!(
            "note: could not damage the failing card's record in {}: {error:#}; ISS-VERIFY-017 and ISS-CVC-010 \
             will be skipped",
            settings.database.url
        );
        profile.cards.remove("failing");
    }

    std::fs::create_dir_all(&args.out_dir).with_context(|| format!("creating {}", args.out_dir.display()))?;
    let profile_path = args.out_dir.join("profile.yaml");
    write_private(&profile_path, &profile.to_yaml())?;
    let env_path = args.out_dir.join("secrets.env");
    let mut env = String::from(
        "# The secrets of the adapter tmp-kit prepare loaded the cards into (tmp-conformance reads them).\n",
    );
    for (variable, secret) in [
        (&profile.secret_env, &secrets.tmp),
        (&profile.processor_secret_env, &secrets.processor),
        (&profile.issuer_secret_env, &secrets.issuer),
    ] {
        if let Some(secret) = secret {
            env.push_str(&format!("{variable}={}\n", secret.to_whsec_string()));
        }
    }
    write_private(&env_path, &env)?;

    let loaded = profile.cards.values().filter(|card| card.card_id.is_some()).count();
    println!(
        "Loaded {loaded} test cards into the adapter at {target} (card ids conformance-{run}-…; the failing one damaged on purpose)."
    );
    println!("Profile: {} · secrets: {}", profile_path.display(), env_path.display());
    println!("Run the suite against the running kit:");
    println!();
    println!("  set -a; . {}; set +a", env_path.display());
    println!(
        "  cargo run -p tmp-conformance -- run --target {target} --mock {mock_url} --approach {} --profile {}",
        approach.as_str(),
        profile_path.display()
    );
    Ok(())
}

/// Writes `text` readable by its owner only: the profile holds the test cards' CVCs, the
/// environment file the adapter's secrets.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // `mode` applies to a new file only: an existing one is narrowed too.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}
